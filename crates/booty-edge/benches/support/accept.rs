//! The sink the edge's benchmarks measure with, shared by the `handle` bench and the `ingest_server`
//! example (`cargo xtask bench ingest`): it routes each delivery with booty-event's trigger rule, as
//! booty-service's sink does, and accepts every trigger at once, as a queue with room would, keeping
//! nothing. So both measure the edge plus the one parse of the payload, and no store.

use booty_edge::{Sink, SinkAnswer, Webhook};
use booty_event::{Decision, TriggerRule};

/// Routes with its trigger rule; a trigger is `Accepted` as job `{issue}-{delivery}`.
pub(crate) struct Accept(pub(crate) TriggerRule);

impl Sink for Accept {
    async fn deliver(&self, webhook: Webhook) -> SinkAnswer {
        match self.0.decide(webhook.delivery.event(), &webhook.payload) {
            Ok(Decision::Trigger(trigger)) => SinkAnswer::Accepted {
                job_id: format!("{}-{}", trigger.issue.number, webhook.delivery.id()),
            },
            // No queue, so no job to cancel.
            Ok(Decision::Cancel(_)) => SinkAnswer::Ignored("no_job_to_cancel".to_owned()),
            Ok(Decision::Ignored(reason)) => SinkAnswer::Ignored(reason.to_string()),
            Err(err) => SinkAnswer::BadRequest(err.to_string()),
        }
    }
}
