//! What the binary queues for a trigger, and the adapters that let the edge reach the queue without
//! knowing it: [`QueueSink`] (the edge's `Sink`) and [`QueueInspector`] (its `JobInspector`).

use booty_edge::{JobInspector, Sink, SinkAnswer, Submission};
use booty_event::IssueTrigger;
use booty_queue::{JobSnapshot, NewJob, Queue, QueueError, Submitted};
use serde::{Deserialize, Serialize};

/// A job's payload: the trigger, and the event as GitHub sent it (for `BOOTY_EVENT_PATH`). Durable stores
/// persist it, so it is plain serde data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobPayload {
    /// The `X-GitHub-Event` name (always `issues` today).
    pub(crate) event: String,
    /// The issue, repository, label and sender.
    pub(crate) trigger: IssueTrigger,
    /// The webhook payload JSON, verbatim.
    #[serde(with = "verbatim")]
    pub(crate) payload: String,
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

/// Hands the edge's triggers to the queue. The queue stores the job before answering, so `202` means
/// stored; a store that cannot be reached is `503` and leaves no trace.
pub(crate) struct QueueSink {
    pub(crate) queue: Queue<JobPayload>,
}

impl Sink for QueueSink {
    async fn submit(&self, submission: Submission) -> SinkAnswer {
        let Submission {
            delivery,
            trigger,
            payload,
            deadline,
            ..
        } = submission;
        let payload = match String::from_utf8(payload.to_vec()) {
            Ok(json) => json,
            Err(err) => return SinkAnswer::Failed(Box::new(err)),
        };
        let repository = trigger.repository.full_name.clone();
        let issue = trigger.issue.number;
        let job = NewJob::new(
            delivery.id().as_str(),
            JobPayload {
                event: delivery.event().to_owned(),
                trigger,
                payload,
            },
        )
        .for_issue(repository, issue);
        // Withdrawn if the store has not taken it by the request's deadline: never stored behind a 503.
        match self.queue.submit_before(job, Some(deadline)).await {
            Ok(Submitted::Accepted(id)) => SinkAnswer::Accepted {
                job_id: id.to_string(),
            },
            Ok(Submitted::Duplicate(id)) => SinkAnswer::Duplicate {
                job_id: id.to_string(),
            },
            Ok(Submitted::Busy) => SinkAnswer::Busy,
            Err(err @ QueueError::NotRecorded { .. }) => SinkAnswer::Unavailable(Box::new(err)),
            Err(err) => SinkAnswer::Failed(Box::new(err)),
        }
    }
}

/// The admin listener's read-only view of the queue.
pub(crate) struct QueueInspector {
    pub(crate) queue: Queue<JobPayload>,
}

impl JobInspector for QueueInspector {
    type View = JobSnapshot;
    type Error = QueueError;

    async fn recent(&self, limit: usize) -> Result<Vec<JobSnapshot>, QueueError> {
        self.queue.list(limit).await
    }

    async fn job(&self, job_id: &str) -> Result<Option<JobSnapshot>, QueueError> {
        self.queue.get(job_id).await
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
