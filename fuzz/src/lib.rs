//! What booty's fuzz targets share: the plain-text request format their inputs are read in.
//!
//! A fuzz input is read as the head and body of an HTTP request, so that seeds (written by
//! `cargo xtask fuzz`, see `xtask/src/fuzz.rs`) and crash artifacts can be read and edited as text:
//!
//! ```text
//! x-github-event: issues
//! x-github-delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958
//! content-type: application/json
//!
//! {"action":"labeled",...}
//! ```
//!
//! - The head is everything before the first empty line; without one, the whole input is the head and the
//!   body is empty. The body is every byte after the empty line, as is.
//! - Head lines end at `\n`. A line is `name:value`; the value starts after the colon and any spaces or
//!   tabs, and keeps every other byte (a trailing `\r`, control bytes, invalid UTF-8), because hostile
//!   clients send those. A line without a colon is skipped.
//! - [`Message::header`] looks a name up the way `http::HeaderMap::get` does: ASCII case-insensitively,
//!   first match wins.
//!
//! The format cannot put `\n` in a header value; HTTP cannot either.
//!
//! The `edge` target reads a whole request ([`Request`]): a request line `METHOD TARGET` first, then a
//! message as above.

/// A fuzz input read as a request line and a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The bytes before the first space of the first line (`POST`).
    pub method: &'a [u8],
    /// The rest of the first line (`/webhooks/github`), empty when it has no space.
    pub target: &'a [u8],
    /// The headers and body after the first line.
    pub message: Message<'a>,
}

impl<'a> Request<'a> {
    /// Reads `data` as a request line, then [`Message::parse`] of the rest. Every input is a request.
    pub fn parse(data: &'a [u8]) -> Self {
        let (line, rest) = match data.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&data[..end], &data[end + 1..]),
            None => (data, &[][..]),
        };
        let (method, target) = match line.iter().position(|byte| *byte == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &[][..]),
        };
        Self {
            method,
            target,
            message: Message::parse(rest),
        }
    }
}

/// A fuzz input read as request headers and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    headers: Vec<(&'a [u8], &'a [u8])>,
    /// The request body, byte for byte.
    pub body: &'a [u8],
}

impl<'a> Message<'a> {
    /// Reads `data` in the format the crate documentation describes. Every input is a message.
    pub fn parse(data: &'a [u8]) -> Self {
        let (head, body) = split_head(data);
        let headers = head
            .split(|byte| *byte == b'\n')
            .filter_map(|line| {
                let colon = line.iter().position(|byte| *byte == b':')?;
                let value = &line[colon + 1..];
                let start = value
                    .iter()
                    .position(|byte| *byte != b' ' && *byte != b'\t')
                    .unwrap_or(value.len());
                Some((&line[..colon], &value[start..]))
            })
            .collect();
        Self { headers, body }
    }

    /// The value of the first header called `name` (ASCII case-insensitively), if any.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| *value)
    }

    /// Every header, in input order, duplicates included.
    pub fn headers(&self) -> &[(&'a [u8], &'a [u8])] {
        &self.headers
    }
}

/// Splits at the first empty line: `\n\n` after the head, or a `\n` that starts the input.
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    if let Some(body) = data.strip_prefix(b"\n") {
        return (&[], body);
    }
    match data.windows(2).position(|pair| pair == b"\n\n") {
        Some(end) => (&data[..end], &data[end + 2..]),
        None => (data, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_and_body() {
        let message = Message::parse(b"A: 1\nb:\t 2\r\nno colon\nc:\n\n{\"x\":\n\n1}");
        assert_eq!(
            message.headers(),
            [(&b"A"[..], &b"1"[..]), (b"b", b"2\r"), (b"c", b"")]
        );
        assert_eq!(message.body, b"{\"x\":\n\n1}");
        assert_eq!(message.header("a"), Some(&b"1"[..]));
        assert_eq!(message.header("B"), Some(&b"2\r"[..]));
        assert_eq!(message.header("d"), None);
    }

    #[test]
    fn first_header_wins_and_odd_shapes_are_messages() {
        let message = Message::parse(b"x: 1\nX: 2\n\n");
        assert_eq!(message.header("x"), Some(&b"1"[..]));
        assert_eq!(message.body, b"");

        let no_blank_line = Message::parse(b"x: 1\nbody?");
        assert_eq!(no_blank_line.header("x"), Some(&b"1"[..]));
        assert_eq!(no_blank_line.body, b"");

        let body_only = Message::parse(b"\nx: 1");
        assert!(body_only.headers().is_empty());
        assert_eq!(body_only.body, b"x: 1");

        assert_eq!(Message::parse(b"").body, b"");
    }

    #[test]
    fn a_request_is_a_request_line_then_a_message() {
        let request = Request::parse(b"POST /webhooks/github?x=1 y\nx-a: 1\n\nbody");
        assert_eq!(request.method, b"POST");
        assert_eq!(request.target, b"/webhooks/github?x=1 y");
        assert_eq!(request.message.header("x-a"), Some(&b"1"[..]));
        assert_eq!(request.message.body, b"body");

        let headless = Request::parse(b"GET /health\n\n{}");
        assert!(headless.message.headers().is_empty());
        assert_eq!(headless.message.body, b"{}");

        let bare = Request::parse(b"GET");
        assert_eq!((bare.method, bare.target), (&b"GET"[..], &b""[..]));
        assert_eq!(bare.message, Message::parse(b""));
    }
}
