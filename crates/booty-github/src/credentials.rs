//! Who the client is: a [`Token`], or a GitHub App ([`AppCredentials`]: its id and RSA private key), and the
//! App's JWT.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{self, PemObject as _};

use crate::secret::{Jwt, Token};
use crate::time::unix_seconds;

/// How far in the past the JWT's `iat` is put, against clocks that drift (GitHub's recommendation).
pub const JWT_ISSUED_BEFORE: Duration = Duration::from_mins(1);
/// How far ahead the JWT's `exp` is put: GitHub allows at most 10 minutes; 9, as octocrab does, leaves room
/// for a clock that runs a little fast.
pub const JWT_LIFETIME: Duration = Duration::from_mins(9);

/// The credentials a [`crate::GitHub`] client acts with.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A token (a personal access token, or any token booty should use as it is), sent on every call. With
    /// it, [`crate::GitHub::token_for`] returns the token itself.
    Token(Token),
    /// A GitHub App: the client signs JWTs for the App's endpoints and mints narrowed installation tokens for
    /// the rest.
    App(AppCredentials),
    /// None: only the calls that take none ([`crate::GitHub::create_app_from_manifest`]); any other call
    /// fails with [`crate::ErrorKind::Credentials`].
    Anonymous,
}

/// A GitHub App's identifier, the JWT's `iss`: the client id (`Iv23li...`, what GitHub now recommends) or the
/// numeric app id. [`FromStr`] takes either: all digits is an app id, anything else a client id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AppId {
    /// The numeric app id.
    Id(u64),
    /// The client id.
    ClientId(String),
}

/// A string that is not an [`AppId`].
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid github app id {input:?}: expected the app's client id (Iv...) or its numeric app id"
)]
pub struct AppIdError {
    input: String,
}

impl FromStr for AppId {
    type Err = AppIdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || AppIdError {
            input: input.chars().take(64).collect(),
        };
        if input.is_empty() || input.len() > 64 {
            return Err(invalid());
        }
        if input.bytes().all(|b| b.is_ascii_digit()) {
            return input.parse().map(Self::Id).map_err(|_| invalid());
        }
        if input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            Ok(Self::ClientId(input.to_owned()))
        } else {
            Err(invalid())
        }
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::ClientId(id) => f.write_str(id),
        }
    }
}

impl serde::Serialize for AppId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Id(id) => serializer.serialize_u64(*id),
            Self::ClientId(id) => serializer.serialize_str(id),
        }
    }
}

/// A GitHub App's credentials: its [`AppId`] and its RSA private key, ready to sign JWTs.
///
/// Built with [`AppCredentials::from_pem`] (or [`AppCredentials::from_pem_file`]), which parses the key and
/// signs one JWT, so a configuration check that builds it knows the credentials work as far as they can be
/// known without the network. `Debug` shows the id only. Cloning is cheap.
#[derive(Clone)]
pub struct AppCredentials {
    id: AppId,
    key: Arc<RsaKeyPair>,
}

/// Why an App's private key could not be used. No variant holds or prints any part of the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("reading the github app private key {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The bytes hold no PEM section at all.
    #[error(
        "the github app private key is not PEM: expected `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1, as GitHub \
         hands it out) or `-----BEGIN PRIVATE KEY-----` (PKCS#8)"
    )]
    NotPem,
    /// A PEM section is broken (no end line, a bad start line, bad base64).
    #[error("the github app private key's PEM is malformed: {reason}")]
    Malformed {
        /// What is wrong, without any of the key's text.
        reason: &'static str,
    },
    /// The PEM holds something other than an RSA private key in PKCS#1 or PKCS#8.
    #[error(
        "the github app private key is a `{label}` PEM section, not an RSA private key: expected `BEGIN RSA \
         PRIVATE KEY` (PKCS#1) or `BEGIN PRIVATE KEY` (PKCS#8)"
    )]
    Unsupported {
        /// The PEM label found, e.g. `EC PRIVATE KEY`, `OPENSSH PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`.
        label: String,
    },
    /// ring refused the key: not RSA (inside PKCS#8), smaller than 2048 or larger than 8192 bits, a public
    /// exponent below 65537, more than two primes, or inconsistent components.
    #[error("ring refuses the github app private key ({format}): {reason} ({hint})")]
    Rejected {
        /// `PKCS#1` or `PKCS#8`.
        format: &'static str,
        /// ring's reason (`TooSmall`, `WrongAlgorithm`, `InvalidEncoding`, ...).
        reason: String,
        /// What the reason means.
        hint: &'static str,
    },
    /// Signing a JWT failed (ring gave no reason).
    #[error("signing the github app's jwt failed")]
    Sign,
}

impl AppCredentials {
    /// Parses a PEM private key (PKCS#1 `RSA PRIVATE KEY` as GitHub hands it out, or PKCS#8 `PRIVATE KEY`)
    /// and signs one JWT with it.
    ///
    /// # Errors
    /// [`KeyError`] saying what the PEM holds instead, or why ring refuses the key.
    pub fn from_pem(id: AppId, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match PrivateKeyDer::from_pem_slice(pem) {
            Ok(PrivateKeyDer::Pkcs1(der)) => RsaKeyPair::from_der(der.secret_pkcs1_der())
                .map_err(|rejected| rejection("PKCS#1", rejected))?,
            Ok(PrivateKeyDer::Pkcs8(der)) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
                .map_err(|rejected| rejection("PKCS#8", rejected))?,
            Ok(_) => {
                return Err(KeyError::Unsupported {
                    label: "EC PRIVATE KEY".to_owned(),
                });
            }
            Err(pem::Error::NoItemsFound) => {
                return Err(match first_label(pem) {
                    Some(label) => KeyError::Unsupported { label },
                    None => KeyError::NotPem,
                });
            }
            Err(pem::Error::MissingSectionEnd { .. }) => {
                return Err(KeyError::Malformed {
                    reason: "a section has no END line",
                });
            }
            Err(pem::Error::IllegalSectionStart { .. }) => {
                return Err(KeyError::Malformed {
                    reason: "a BEGIN line is malformed",
                });
            }
            Err(pem::Error::Base64Decode(_)) => {
                return Err(KeyError::Malformed {
                    reason: "the body is not valid base64",
                });
            }
            Err(_) => {
                return Err(KeyError::Malformed {
                    reason: "the PEM could not be read",
                });
            }
        };
        let credentials = Self {
            id,
            key: Arc::new(key),
        };
        credentials.jwt(SystemTime::now())?;
        Ok(credentials)
    }

    /// [`AppCredentials::from_pem`] on the contents of a file.
    ///
    /// # Errors
    /// [`KeyError::Read`] naming the file, or what [`AppCredentials::from_pem`] returns.
    pub fn from_pem_file(id: AppId, path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(id, &pem)
    }

    /// The App's id, the JWT's `iss`.
    pub fn id(&self) -> &AppId {
        &self.id
    }

    /// The key's modulus size in bits.
    pub fn key_bits(&self) -> usize {
        self.key.public().modulus_len() * 8
    }

    /// A JWT for the App as of `now` (the client passes its clock's time, corrected by what it learnt of
    /// GitHub's): RS256, `iat` = `now` − [`JWT_ISSUED_BEFORE`], `exp` = `now` + [`JWT_LIFETIME`], `iss` = the
    /// id.
    ///
    /// # Errors
    /// [`KeyError::Sign`] if ring fails to sign.
    pub fn jwt(&self, now: SystemTime) -> Result<Jwt, KeyError> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iat: i64,
            exp: i64,
            iss: &'a AppId,
        }
        // Constant, so the encoded header is too: `{"alg":"RS256","typ":"JWT"}`.
        const HEADER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";
        let now = unix_seconds(now);
        let claims = Claims {
            iat: now.saturating_sub(secs(JWT_ISSUED_BEFORE)),
            exp: now.saturating_add(secs(JWT_LIFETIME)),
            iss: &self.id,
        };
        let claims = serde_json::to_vec(&claims).map_err(|_| KeyError::Sign)?;
        let mut compact = String::with_capacity(HEADER.len() + claims.len() * 4 / 3 + 350);
        compact.push_str(HEADER);
        compact.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut compact);
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                compact.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeyError::Sign)?;
        compact.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut compact);
        Ok(Jwt::new(compact))
    }
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("id", &self.id)
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

fn rejection(format: &'static str, rejected: ring::error::KeyRejected) -> KeyError {
    let reason = rejected.to_string();
    let hint = match reason.as_str() {
        "TooSmall" => {
            "ring needs a modulus of 2048 to 8192 bits and a public exponent of at least 65537"
        }
        "TooLarge" => "ring takes RSA moduli up to 8192 bits",
        "WrongAlgorithm" => "the key is not an RSA key",
        "VersionNotSupported" => "a multi-prime RSA key, which ring does not support",
        "InvalidEncoding" => "the DER inside the PEM is not a valid key",
        "InconsistentComponents" | "InvalidComponent" => "the key's numbers do not form an RSA key",
        _ => "see ring's KeyRejected",
    };
    KeyError::Rejected {
        format,
        reason,
        hint,
    }
}

/// The label of the first `-----BEGIN ...-----` line, if any (labels are not secret).
fn first_label(pem: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(pem);
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = text[start..].find("-----")?;
    let label = &text[start..start + end];
    (label.len() <= 64 && label.bytes().all(|b| b.is_ascii_uppercase() || b == b' '))
        .then(|| label.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_parse_as_numbers_or_client_ids() {
        assert_eq!("12345".parse::<AppId>().unwrap(), AppId::Id(12345));
        assert_eq!(
            "Iv23liABC.def_1-2".parse::<AppId>().unwrap(),
            AppId::ClientId("Iv23liABC.def_1-2".to_owned())
        );
        for bad in ["", "Iv1 x", "a/b", &"9".repeat(30), &"x".repeat(65)] {
            let err = bad.parse::<AppId>().unwrap_err().to_string();
            assert!(err.starts_with("invalid github app id"), "{err}");
        }
        assert_eq!(serde_json::to_string(&AppId::Id(7)).unwrap(), "7");
        assert_eq!(
            serde_json::to_string(&AppId::ClientId("Iv1.x".into())).unwrap(),
            "\"Iv1.x\""
        );
    }

    #[test]
    fn the_header_constant_is_rs256() {
        let header = URL_SAFE_NO_PAD
            .decode("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9")
            .unwrap();
        assert_eq!(header, br#"{"alg":"RS256","typ":"JWT"}"#);
    }

    #[test]
    fn the_jwt_has_githubs_claims_and_an_rs256_signature() {
        use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
        let key = booty_testkit::keys::test_key();
        let app =
            AppCredentials::from_pem(AppId::ClientId("Iv23li".into()), key.pkcs8_pem.as_bytes())
                .unwrap();
        let now = crate::time::from_unix_seconds(1_700_000_000);
        let jwt = app.jwt(now).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iat": 1_700_000_000 - 60, "exp": 1_700_000_000 + 540, "iss": "Iv23li"})
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.public_der)
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn what_is_not_a_pem_rsa_key_is_named() {
        let id = AppId::Id(1);
        let err = AppCredentials::from_pem(id.clone(), b"not a key").unwrap_err();
        assert!(matches!(err, KeyError::NotPem), "{err}");
        let openssh = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----\n";
        let err = AppCredentials::from_pem(id.clone(), openssh).unwrap_err();
        assert!(err.to_string().contains("`OPENSSH PRIVATE KEY`"), "{err}");
        let truncated = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow==\n";
        let err = AppCredentials::from_pem(id.clone(), truncated).unwrap_err();
        assert!(matches!(err, KeyError::Malformed { .. }), "{err}");
        let garbage =
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n";
        let err = AppCredentials::from_pem(id, garbage).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::Rejected {
                    format: "PKCS#1",
                    ..
                }
            ),
            "{err}"
        );
    }
}
