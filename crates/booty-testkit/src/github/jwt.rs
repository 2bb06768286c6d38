//! The App's JWT, checked as GitHub checks it: RS256 against the App's public key, `iss` the app id or
//! client id, `exp` in the future but at most 10 minutes ahead, `iat` not in the future. Refusals carry
//! GitHub's own messages, which clients match on to correct their clocks.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::Value;

/// GitHub's answer when a JWT does not parse or its signature does not verify.
pub(crate) const UNDECODABLE: &str = "A JSON web token could not be decoded";
/// GitHub's answer when `exp` is not in the future (the client's clock is behind GitHub's).
pub(crate) const EXPIRED: &str = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
/// GitHub's answer when `iat` is in the future (the client's clock is ahead).
pub(crate) const ISSUED_IN_FUTURE: &str = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
/// GitHub's answer when `exp` is more than 10 minutes ahead.
pub(crate) const TOO_FAR: &str = "'Expiration time' claim ('exp') is too far in the future";
/// The answer for an `iss` that names no App.
pub(crate) const UNKNOWN_ISSUER: &str = "Integration not found";

/// GitHub's limit on `exp` (`iat` and `exp` are whole seconds).
const MAX_AHEAD: i64 = 600;

/// Who the App is.
#[derive(Clone, Debug)]
pub(crate) struct AppIdentity {
    pub(crate) id: u64,
    pub(crate) client_id: String,
    pub(crate) public_key: Vec<u8>,
}

/// Checks `token` at GitHub's time `now` against the App its `iss` names among `apps` (the first when none
/// does, so a stranger's signature is refused before its issuer); the answer is the App's id, the error
/// GitHub's message.
pub(crate) fn verify(
    token: &str,
    apps: &[&AppIdentity],
    now: SystemTime,
) -> Result<u64, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(UNDECODABLE);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| UNDECODABLE);
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| UNDECODABLE)?;
    if header["alg"] != "RS256" {
        return Err(UNDECODABLE);
    }
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|_| UNDECODABLE)?;
    let issued_by = |app: &&&AppIdentity| match &claims["iss"] {
        Value::Number(number) => number.as_u64() == Some(app.id),
        Value::String(text) => *text == app.id.to_string() || *text == app.client_id,
        _ => false,
    };
    let named = apps.iter().find(issued_by);
    let Some(app) = named.or_else(|| apps.first()) else {
        return Err(UNKNOWN_ISSUER);
    };
    let signed = &token[..token.len() - signature.len() - 1];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &app.public_key)
        .verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| UNDECODABLE)?;
    let now = seconds(now);
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err(if claims["exp"].is_i64() {
            ISSUED_IN_FUTURE
        } else {
            EXPIRED
        });
    };
    if exp <= now {
        return Err(EXPIRED);
    }
    if iat > now {
        return Err(ISSUED_IN_FUTURE);
    }
    if exp > now + MAX_AHEAD {
        return Err(TOO_FAR);
    }
    if named.is_none() {
        return Err(UNKNOWN_ISSUER);
    }
    Ok(app.id)
}

/// Whether `token` looks like a JWT rather than a token (three base64url parts, the first a JSON header).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .split('.')
            .next()
            .and_then(|header| URL_SAFE_NO_PAD.decode(header).ok())
            .is_some_and(|header| header.starts_with(b"{"))
}

pub(crate) fn seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).expect("a time before 2^63 s"),
        Err(before) => -i64::try_from(before.duration().as_secs()).expect("a time after -2^63 s"),
    }
}
