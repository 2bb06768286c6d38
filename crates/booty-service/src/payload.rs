//! What the service queues for a trigger: the job's payload, persisted by durable stores.

use booty_event::IssueTrigger;
use serde::{Deserialize, Serialize};

use crate::sink::Submission;

/// A job's payload: the trigger, and the event as GitHub sent it (for `BOOTY_EVENT_PATH`). Durable stores
/// persist it, so it is plain serde data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobPayload {
    /// The `X-GitHub-Event` name (always `issues` today).
    pub event: String,
    /// The issue, repository, label and sender.
    pub trigger: IssueTrigger,
    /// The webhook payload JSON, verbatim.
    #[serde(with = "verbatim")]
    pub payload: String,
}

impl JobPayload {
    /// The payload of the job for `submission`.
    ///
    /// # Errors
    /// When the webhook payload is not UTF-8 (the edge hands over JSON, which always is).
    pub fn from_submission(submission: &Submission) -> Result<Self, std::string::FromUtf8Error> {
        Ok(Self {
            event: submission.delivery.event().to_owned(),
            trigger: submission.trigger.clone(),
            payload: String::from_utf8(submission.payload.to_vec())?,
        })
    }
}

/// How a durable store keeps [`JobPayload::payload`]: the JSON object itself inside the job's JSON, not a
/// string holding it, so nothing is escaped on the way in (a webhook is some 12 KB of quotes and
/// slashes) and the stored job is smaller. A payload that is not a JSON object exactly (with nothing
/// around it) is kept as a string, and both forms are read, so the text comes back byte for byte.
mod verbatim {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub(super) fn serialize<S: Serializer>(json: &str, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(json) {
            Ok(raw) if raw.get().len() == json.len() && json.starts_with('{') => {
                raw.serialize(serializer)
            }
            _ => serializer.serialize_str(json),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<String, D::Error> {
        let raw = <Box<RawValue>>::deserialize(deserializer)?;
        if raw.get().starts_with('{') {
            Ok(raw.get().to_owned())
        } else {
            serde_json::from_str(raw.get()).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Stored {
        #[serde(with = "super::verbatim")]
        payload: String,
    }

    fn round_trip(payload: &str) -> (String, String) {
        let stored = serde_json::to_string(&Stored {
            payload: payload.to_owned(),
        })
        .expect("serializes");
        let back: Stored = serde_json::from_str(&stored).expect("deserializes");
        (stored, back.payload)
    }

    #[test]
    fn an_object_is_stored_as_json_and_read_back_byte_for_byte() {
        let payload = r#"{"action":"labeled","issue":{"title":"a \"quoted\" title\n","number":7}}"#;
        let (stored, back) = round_trip(payload);
        assert_eq!(stored, format!(r#"{{"payload":{payload}}}"#));
        assert_eq!(back, payload);
    }

    #[test]
    fn anything_else_is_stored_as_a_string_and_read_back_byte_for_byte() {
        for payload in [
            "{\"a\":1}\n",
            " {\"a\":1}",
            "[1,2]",
            "\"text\"",
            "not json",
            "{\"a\":",
        ] {
            let (stored, back) = round_trip(payload);
            assert!(
                stored.starts_with(r#"{"payload":""#),
                "{payload:?} -> {stored}"
            );
            assert_eq!(back, payload);
        }
    }

    #[test]
    fn a_payload_stored_as_a_string_by_an_earlier_version_still_reads() {
        let earlier = serde_json::json!({ "payload": r#"{"action":"labeled"}"# }).to_string();
        let read: Stored = serde_json::from_str(&earlier).expect("deserializes");
        assert_eq!(read.payload, r#"{"action":"labeled"}"#);
    }
}
