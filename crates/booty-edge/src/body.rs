//! Reading a request body into one buffer that never grows past the limit.

use std::fmt;

use http_body_util::BodyExt;
use hyper::body::{Body, Buf, Bytes};

/// The first allocation for a body, whatever `Content-Length` promises: a client that announces 25 MiB
/// and sends nothing must not make us reserve 25 MiB per connection.
const INITIAL_CAPACITY: u64 = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is, or says it will be, longer than the limit.
    TooLarge { limit: u64 },
    /// The body stream failed: the client closed or reset before sending everything it announced.
    Broken { received: u64, reason: String },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "request body is larger than {limit} bytes"),
            Self::Broken { received, reason } => write!(
                f,
                "request body ended after {received} bytes, before it was complete: {reason}"
            ),
        }
    }
}

/// Whether the body announces (through `Content-Length`, which hyper reports as its size hint) more than
/// `limit` bytes. Checked before reading anything, so a client is refused without sending its body.
pub(crate) fn announces_more_than(body: &impl Body, limit: u64) -> bool {
    body.size_hint().lower() > limit
}

/// Reads `body` into one buffer, refusing it as soon as it passes `limit` bytes.
///
/// A body that arrives as one chunk (the usual case for a webhook: hyper reads the whole request at once)
/// is returned as that chunk, without a copy. Otherwise the chunks are copied into one buffer that starts
/// at the announced length (up to [`INITIAL_CAPACITY`]) and grows, but never to more than `limit` bytes.
pub(crate) async fn read_limited<B>(body: B, limit: u64) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: fmt::Display,
{
    if announces_more_than(&body, limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let announced = body.size_hint().upper().unwrap_or(0);
    let mut first: Option<Bytes> = None;
    let mut buffer: Vec<u8> = Vec::new();
    let mut received = 0;
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| BodyError::Broken {
            received: received as u64,
            reason: err.to_string(),
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue; // Trailers carry nothing the webhook needs.
        };
        let len = data.remaining();
        if received + len > limit_usize {
            return Err(BodyError::TooLarge { limit });
        }
        received += len;
        if first.is_none() && buffer.capacity() == 0 {
            first = Some(data.copy_to_bytes(len));
            continue;
        }
        if buffer.capacity() == 0 {
            let initial = usize::try_from(announced.min(INITIAL_CAPACITY)).unwrap_or(0);
            buffer.reserve_exact(initial.max(received).min(limit_usize));
            if let Some(first) = first.take() {
                buffer.extend_from_slice(&first);
            }
        }
        if received > buffer.capacity() {
            // Double as a Vec would, but never past the limit.
            let target = received.max(buffer.capacity() * 2).min(limit_usize);
            buffer.reserve_exact(target - buffer.len());
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            buffer.extend_from_slice(chunk);
            let read = chunk.len();
            data.advance(read);
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(buffer)))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body_util::Full;
    use hyper::body::Frame;

    use super::*;

    /// A body that yields the given chunks (or errors) one frame at a time, with no length announced.
    struct Chunks(VecDeque<Result<&'static [u8], &'static str>>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let next = self.0.pop_front();
            Poll::Ready(next.map(|chunk| chunk.map(|bytes| Frame::data(Bytes::from_static(bytes)))))
        }
    }

    fn chunked(chunks: Vec<Result<&'static [u8], &'static str>>) -> Chunks {
        Chunks(chunks.into())
    }

    #[tokio::test]
    async fn reads_a_body_split_in_chunks() {
        let body = chunked(vec![Ok(b"hello, "), Ok(b"world")]);
        assert_eq!(read_limited(body, 12).await.unwrap(), "hello, world");
    }

    #[tokio::test]
    async fn a_body_in_one_chunk_is_handed_over_without_a_copy() {
        let bytes = Bytes::from(vec![b'x'; 1000]);
        let body = Full::new(bytes.clone());
        let read = read_limited(body, 1000).await.unwrap();
        assert_eq!(read, bytes);
        assert_eq!(read.as_ptr(), bytes.as_ptr());
        assert_eq!(read_limited(chunked(vec![]), 10).await.unwrap(), "");
    }

    #[tokio::test]
    async fn a_body_exactly_at_the_limit_is_accepted_and_one_byte_more_is_not() {
        let body = chunked(vec![Ok(b"12345"), Ok(b"678")]);
        assert_eq!(read_limited(body, 8).await.unwrap(), "12345678");
        let body = chunked(vec![Ok(b"12345"), Ok(b"6789")]);
        assert!(matches!(
            read_limited(body, 8).await,
            Err(BodyError::TooLarge { limit: 8 })
        ));
    }

    #[tokio::test]
    async fn an_announced_length_over_the_limit_is_refused_before_reading() {
        let body = Full::new(Bytes::from_static(b"0123456789"));
        assert!(announces_more_than(&body, 9));
        assert!(!announces_more_than(&body, 10));
        let err = read_limited(body, 9).await.unwrap_err();
        assert_eq!(err.to_string(), "request body is larger than 9 bytes");
    }

    #[tokio::test]
    async fn a_broken_stream_says_how_much_arrived() {
        let body = chunked(vec![Ok(b"abc"), Err("connection reset")]);
        let err = read_limited(body, 100).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "request body ended after 3 bytes, before it was complete: connection reset"
        );
    }
}
