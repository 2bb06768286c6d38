//! The delivery: what GitHub says about a request in its `X-GitHub-*` headers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The header naming the event (`issues`, `push`, ...), lowercase as `http::HeaderName` spells it.
pub const EVENT_HEADER: &str = "x-github-event";

/// The header carrying the delivery GUID, lowercase as `http::HeaderName` spells it.
pub const DELIVERY_HEADER: &str = "x-github-delivery";

/// A header this module reads: the lowercase name to look up, and the name errors show.
#[derive(Clone, Copy)]
struct Header {
    lookup: &'static str,
    shown: &'static str,
}

const EVENT: Header = Header {
    lookup: EVENT_HEADER,
    shown: "X-GitHub-Event",
};
const DELIVERY: Header = Header {
    lookup: DELIVERY_HEADER,
    shown: "X-GitHub-Delivery",
};
const HOOK_ID: Header = Header {
    lookup: "x-github-hook-id",
    shown: "X-GitHub-Hook-ID",
};
const TARGET_TYPE: Header = Header {
    lookup: "x-github-hook-installation-target-type",
    shown: "X-GitHub-Hook-Installation-Target-Type",
};
const TARGET_ID: Header = Header {
    lookup: "x-github-hook-installation-target-id",
    shown: "X-GitHub-Hook-Installation-Target-ID",
};
const USER_AGENT: Header = Header {
    lookup: "user-agent",
    shown: "User-Agent",
};
const ENTERPRISE_HOST: Header = Header {
    lookup: "x-github-enterprise-host",
    shown: "X-GitHub-Enterprise-Host",
};
const ENTERPRISE_VERSION: Header = Header {
    lookup: "x-github-enterprise-version",
    shown: "X-GitHub-Enterprise-Version",
};

/// The longest event name accepted; GitHub's longest today is 31 bytes.
const MAX_EVENT_LEN: usize = 64;

/// What GitHub's headers say about one delivery.
///
/// Build it with [`Delivery::from_headers`]. The event name and the delivery id are required and validated
/// so that both can go into log fields, job ids and file names as they are; the other headers are
/// informational and `None` when absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    event: String,
    id: DeliveryId,
    hook_id: Option<u64>,
    installation_target_type: Option<String>,
    installation_target_id: Option<u64>,
    user_agent: Option<String>,
    enterprise_host: Option<String>,
    enterprise_version: Option<String>,
}

impl Delivery {
    /// Every header [`Delivery::from_headers`] may look up, lowercase: a caller whose map parses names on
    /// each lookup (`http::HeaderMap::get` with a `&str` does) can make these into names once.
    pub const HEADERS: [&'static str; 8] = [
        EVENT.lookup,
        DELIVERY.lookup,
        HOOK_ID.lookup,
        TARGET_TYPE.lookup,
        TARGET_ID.lookup,
        USER_AGENT.lookup,
        ENTERPRISE_HOST.lookup,
        ENTERPRISE_VERSION.lookup,
    ];

    /// Reads the delivery from request headers through `header`, which is given a lowercase header name and
    /// returns the raw value of that header, if present. From an `http::HeaderMap`, that closure is
    /// `|name| headers.get(name).map(HeaderValue::as_bytes)`; the crate-level example uses a slice.
    ///
    /// # Errors
    /// [`HeaderError::Missing`] without `X-GitHub-Event` or `X-GitHub-Delivery`;
    /// [`HeaderError::DeliveryId`] when the delivery id is not 1 to 64 letters, digits and `-`;
    /// [`HeaderError::Invalid`] when the event name is not letters, digits and `_`, a numeric header is not
    /// a decimal number, or a text header is not UTF-8. Every error names the header.
    pub fn from_headers<'h, F>(header: F) -> Result<Self, HeaderError>
    where
        F: Fn(&str) -> Option<&'h [u8]>,
    {
        let required =
            |spec: Header| header(spec.lookup).ok_or(HeaderError::Missing { header: spec.shown });
        let event = parse_event(required(EVENT)?)?;
        let id = DeliveryId::from_bytes(required(DELIVERY)?).map_err(HeaderError::DeliveryId)?;
        let optional_text = |spec: Header| {
            header(spec.lookup)
                .map(|value| text(spec, value))
                .transpose()
        };
        let optional_number = |spec: Header| {
            header(spec.lookup)
                .map(|value| number(spec, value))
                .transpose()
        };
        Ok(Self {
            event,
            id,
            hook_id: optional_number(HOOK_ID)?,
            installation_target_type: optional_text(TARGET_TYPE)?,
            installation_target_id: optional_number(TARGET_ID)?,
            user_agent: optional_text(USER_AGENT)?,
            enterprise_host: optional_text(ENTERPRISE_HOST)?,
            enterprise_version: optional_text(ENTERPRISE_VERSION)?,
        })
    }

    /// The event name (`X-GitHub-Event`): ASCII letters, digits and `_`, at most 64 bytes.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The delivery id (`X-GitHub-Delivery`), the same on every hook and every redelivery of one event.
    pub fn id(&self) -> &DeliveryId {
        &self.id
    }

    /// The id of the hook that sent it (`X-GitHub-Hook-ID`).
    pub fn hook_id(&self) -> Option<u64> {
        self.hook_id
    }

    /// What the hook is installed on (`X-GitHub-Hook-Installation-Target-Type`): `repository`,
    /// `organization`, `integration` (a GitHub App)...
    pub fn installation_target_type(&self) -> Option<&str> {
        self.installation_target_type.as_deref()
    }

    /// The id of what the hook is installed on (`X-GitHub-Hook-Installation-Target-ID`).
    pub fn installation_target_id(&self) -> Option<u64> {
        self.installation_target_id
    }

    /// `User-Agent`, `GitHub-Hookshot/...` when GitHub sent it.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// The GitHub Enterprise Server host (`X-GitHub-Enterprise-Host`); `None` for github.com.
    pub fn enterprise_host(&self) -> Option<&str> {
        self.enterprise_host.as_deref()
    }

    /// The GitHub Enterprise Server version (`X-GitHub-Enterprise-Version`); `None` for github.com.
    pub fn enterprise_version(&self) -> Option<&str> {
        self.enterprise_version.as_deref()
    }
}

fn parse_event(value: &[u8]) -> Result<String, HeaderError> {
    let valid = !value.is_empty()
        && value.len() <= MAX_EVENT_LEN
        && value
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_');
    if !valid {
        return Err(HeaderError::Invalid {
            header: EVENT.shown,
            reason: "not an event name (1 to 64 ASCII letters, digits and `_`)",
        });
    }
    Ok(ascii(value))
}

/// Bytes already checked to be ASCII, as a `String` (ASCII is UTF-8, so nothing is replaced).
fn ascii(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

fn text(spec: Header, value: &[u8]) -> Result<String, HeaderError> {
    String::from_utf8(value.to_vec()).map_err(|_| HeaderError::Invalid {
        header: spec.shown,
        reason: "not valid UTF-8",
    })
}

fn number(spec: Header, value: &[u8]) -> Result<u64, HeaderError> {
    // `u64::from_str` would also take a leading `+`; GitHub sends bare digits.
    std::str::from_utf8(value)
        .ok()
        .filter(|digits| digits.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .ok_or(HeaderError::Invalid {
            header: spec.shown,
            reason: "not a decimal number that fits in 64 bits",
        })
}

/// The request's GitHub headers are missing or unusable (an edge answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A required header is absent.
    #[error("missing {header} header")]
    Missing {
        /// The header, e.g. `X-GitHub-Event`.
        header: &'static str,
    },
    /// `X-GitHub-Delivery` is not a delivery id this crate accepts.
    #[error("invalid X-GitHub-Delivery header: {0}")]
    DeliveryId(DeliveryIdError),
    /// A header is present but its value is unusable.
    #[error("invalid {header} header: {reason}")]
    Invalid {
        /// The header, e.g. `X-GitHub-Hook-ID`.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl HeaderError {
    /// The header at fault, spelled as GitHub documents it (e.g. `X-GitHub-Delivery`).
    pub fn header(&self) -> &'static str {
        match self {
            Self::Missing { header } | Self::Invalid { header, .. } => header,
            Self::DeliveryId(_) => DELIVERY.shown,
        }
    }
}

/// The longest delivery id accepted, in bytes (a GUID is 36).
pub const MAX_DELIVERY_ID_LEN: usize = 64;

/// A delivery id (`X-GitHub-Delivery`): 1 to 64 ASCII letters, digits and `-`.
///
/// GitHub sends a GUID such as `72d3162e-cc78-11e3-81ab-4c9367dc0958`. Anything outside that alphabet is
/// refused, so the id can go into job ids (`{issue}-{delivery}`), file names and log fields unescaped.
/// `Deserialize` checks the same rules, so an id read back from a store is as safe as one from a header.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct DeliveryId(String);

impl DeliveryId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Validates a raw header value, e.g. to tag an answer with the delivery id even when
    /// [`Delivery::from_headers`] refused another header.
    ///
    /// # Errors
    /// [`DeliveryIdError`] when the value is not 1 to 64 ASCII letters, digits and `-`.
    pub fn from_bytes(value: &[u8]) -> Result<Self, DeliveryIdError> {
        check_delivery_id(value)?;
        Ok(Self(ascii(value)))
    }
}

fn check_delivery_id(value: &[u8]) -> Result<(), DeliveryIdError> {
    if value.is_empty() {
        return Err(DeliveryIdError::Empty);
    }
    if value.len() > MAX_DELIVERY_ID_LEN {
        return Err(DeliveryIdError::TooLong { len: value.len() });
    }
    match value
        .iter()
        .position(|byte| !byte.is_ascii_alphanumeric() && *byte != b'-')
    {
        Some(position) => Err(DeliveryIdError::Byte {
            position,
            byte: value[position],
        }),
        None => Ok(()),
    }
}

impl FromStr for DeliveryId {
    type Err = DeliveryIdError;

    fn from_str(value: &str) -> Result<Self, DeliveryIdError> {
        Self::from_bytes(value.as_bytes())
    }
}

impl TryFrom<String> for DeliveryId {
    type Error = DeliveryIdError;

    fn try_from(value: String) -> Result<Self, DeliveryIdError> {
        check_delivery_id(value.as_bytes())?;
        Ok(Self(value))
    }
}

impl Serialize for DeliveryId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl AsRef<str> for DeliveryId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a [`DeliveryId`]. The message never repeats the value, only where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryIdError {
    /// The id is empty.
    #[error("the delivery id is empty")]
    Empty,
    /// The id is longer than [`MAX_DELIVERY_ID_LEN`].
    #[error("the delivery id is {len} bytes long, more than 64")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The id has a byte other than an ASCII letter, digit or `-`.
    #[error("the delivery id has {} at byte {position}; only ASCII letters, digits and `-` are allowed", shown(*.byte))]
    Byte {
        /// Where, counting from 0.
        position: usize,
        /// The byte.
        byte: u8,
    },
}

/// A byte as a message can show it: printable ASCII in backticks, anything else in hex.
fn shown(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("`{}`", char::from(byte))
    } else {
        format!("byte 0x{byte:02x}")
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[test]
    fn headers_lists_every_name_from_headers_asks_for() {
        let asked = RefCell::new(Vec::new());
        let present = [
            (EVENT_HEADER, &b"issues"[..]),
            (DELIVERY_HEADER, b"72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ];
        let delivery = Delivery::from_headers(|name| {
            asked.borrow_mut().push(name.to_owned());
            present
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, value)| *value)
        })
        .unwrap();
        assert_eq!(delivery.event(), "issues");
        assert_eq!(asked.into_inner(), Delivery::HEADERS);
    }

    #[test]
    fn delivery_id_rules() {
        let guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        assert_eq!(guid.parse::<DeliveryId>().unwrap().as_str(), guid);
        assert_eq!(
            DeliveryId::from_bytes(guid.as_bytes()).unwrap().as_str(),
            guid
        );
        assert_eq!(
            DeliveryId::from_bytes(b"\xff"),
            Err(DeliveryIdError::Byte {
                position: 0,
                byte: 0xff
            })
        );
        assert!("A".repeat(64).parse::<DeliveryId>().is_ok());
        assert_eq!("".parse::<DeliveryId>(), Err(DeliveryIdError::Empty));
        assert_eq!(
            "a".repeat(65).parse::<DeliveryId>(),
            Err(DeliveryIdError::TooLong { len: 65 })
        );
        assert_eq!(
            "ab/c".parse::<DeliveryId>(),
            Err(DeliveryIdError::Byte {
                position: 2,
                byte: b'/'
            })
        );
        assert_eq!(
            "ab\nc".parse::<DeliveryId>().unwrap_err().to_string(),
            "the delivery id has byte 0x0a at byte 2; only ASCII letters, digits and `-` are allowed"
        );
        assert_eq!(
            "a_b".parse::<DeliveryId>().unwrap_err().to_string(),
            "the delivery id has `_` at byte 1; only ASCII letters, digits and `-` are allowed"
        );
    }

    #[test]
    fn delivery_id_serde_checks_the_same_rules() {
        let id: DeliveryId = serde_json::from_str(r#""abc-123""#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""abc-123""#);
        let err = serde_json::from_str::<DeliveryId>(r#""../etc""#).unwrap_err();
        assert!(err.to_string().contains("`.` at byte 0"), "{err}");
    }

    #[test]
    fn numbers_are_bare_digits() {
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b" 1",
            b"1.0",
            b"18446744073709551616",
        ] {
            assert!(number(HOOK_ID, bad).is_err(), "{bad:?}");
        }
        assert_eq!(number(HOOK_ID, b"18446744073709551615"), Ok(u64::MAX));
    }
}
