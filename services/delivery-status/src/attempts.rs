//! Consumes the gateways' `message.<account>.attempt` events: sent, failed or unknown.

use chrono::Utc;
use messaging_domain::signing::unsubscribe_token;
use messaging_domain::{Channel, MessageId, Status};
use messaging_platform::bus::{Delivery, OutboxMessage, Outcome, Relay, TxHandler, consume_span, decode_all};
use messaging_proto::bus::{AttemptOutcome, OptOutChanged, SendAttempt};
use prost::Message as _;
use sqlx::PgConnection;

use crate::store::{self, Report};

/// The attempt-event handler.
pub struct AttemptHandler {
    pub(crate) relay: Relay,
    /// Derives each email's one-click unsubscribe token, as the email gateway did.
    pub(crate) token_secret: Vec<u8>,
}

impl TxHandler for AttemptHandler {
    fn committed(&self) {
        self.relay.wake();
    }

    /// The message whose rows the attempt writes (webhook batches lock them in this order too).
    fn lock_key(&self, delivery: &Delivery) -> Option<String> {
        SendAttempt::decode(delivery.payload.as_ref()).ok().map(|attempt| attempt.message_id)
    }

    /// Runs in the delivery's consume span already.
    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        match self.report(delivery) {
            Ok(report) => record(tx, vec![report]).await.pop().unwrap_or(Outcome::Ack),
            Err(dead) => dead,
        }
    }

    /// The batch's reports in one statement per round (see [`store::apply_all`]).
    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        deliveries: &[Delivery],
        service: &'static str,
    ) -> Vec<Outcome> {
        // Each report is made in its delivery's own span: the status event it causes continues its trace.
        match decode_all(deliveries, |delivery| consume_span(service, delivery).in_scope(|| self.report(delivery))) {
            Ok(reports) => record(tx, reports).await,
            Err(outcomes) => outcomes,
        }
    }
}

/// Applies the attempts' reports; one outcome per report.
async fn record(tx: &mut PgConnection, reports: Vec<Report>) -> Vec<Outcome> {
    match store::apply_all(tx, &reports.iter().collect::<Vec<_>>()).await {
        Ok(results) => {
            for (report, applied) in reports.iter().zip(results) {
                report.span.in_scope(|| {
                    tracing::info!(message_id = %report.message_id, status = %report.status, ?applied, "gateway attempt recorded");
                });
            }
            vec![Outcome::Ack; reports.len()]
        }
        Err(error) => vec![Outcome::retry(format!("database: {error}")); reports.len()],
    }
}

impl AttemptHandler {
    /// The report an attempt makes, or the dead letter of one that is not an attempt.
    fn report(&self, delivery: &Delivery) -> Result<Report, Outcome> {
        let attempt = delivery.decode::<SendAttempt>()?;
        let (status, tag) = match AttemptOutcome::try_from(attempt.outcome) {
            Ok(AttemptOutcome::Sent) => (Status::Sent, "sent"),
            Ok(AttemptOutcome::Failed) => (Status::Failed, "failed"),
            Ok(AttemptOutcome::Unknown) => (Status::Unknown, "unknown"),
            _ => return Err(Outcome::DeadLetter(format!("attempt has no outcome ({})", attempt.outcome))),
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let occurred_at = messaging_proto::time::datetime(attempt.occurred_at.as_ref()).unwrap_or_else(Utc::now);
        Ok(Report {
            message_id: attempt.message_id.clone(),
            account_id: attempt.account_id.clone(),
            channel: Channel::from_proto(attempt.channel),
            status,
            provider_id: non_empty(&attempt.provider_id),
            failure_reason: non_empty(&attempt.failure_reason),
            error_code: non_empty(&attempt.provider_error_code),
            error_text: non_empty(&attempt.provider_error_text),
            source: "gateway",
            dedupe_key: format!("attempt:{}:{tag}", attempt.message_id),
            detail: serde_json::json!({
                "outcome": tag,
                "provider_id": attempt.provider_id,
                "failure_reason": attempt.failure_reason,
                "error_code": attempt.provider_error_code,
                "error_text": attempt.provider_error_text,
            }),
            occurred_at,
            implies: opt_out_implied(&attempt, status),
            recipient: non_empty(&attempt.to),
            unsubscribe_token: (Channel::from_proto(attempt.channel) == Some(Channel::Email))
                .then(|| MessageId::parse(&attempt.message_id).ok())
                .flatten()
                .map(|message| unsubscribe_token(&self.token_secret, &message)),
            span: tracing::Span::current(),
        })
    }
}

/// Twilio's 21610 means the recipient replied STOP to this sender: an opt-out dispatch must honour.
fn opt_out_implied(attempt: &SendAttempt, status: Status) -> Option<OutboxMessage> {
    let sms = Channel::from_proto(attempt.channel) == Some(Channel::Sms);
    if !(sms && status == Status::Failed && attempt.provider_error_code == "21610" && !attempt.to.is_empty()) {
        return None;
    }
    let event = OptOutChanged {
        account_id: attempt.account_id.clone(),
        channel: Channel::Sms.to_proto(),
        address: attempt.to.clone(),
        opted_out: true,
        source: "provider_21610".into(),
        occurred_at: attempt.occurred_at,
    };
    Some(OutboxMessage::of(&event, &attempt.message_id))
}
