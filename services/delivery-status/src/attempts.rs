//! Consumes the gateways' `message.<account>.attempt` events: sent, failed or unknown.

use chrono::Utc;
use messaging_domain::signing::unsubscribe_token;
use messaging_domain::{Channel, MessageId, Status};
use messaging_platform::bus::{Delivery, OutboxMessage, Outcome, Relay, TxHandler};
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

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        let attempt = match delivery.decode::<SendAttempt>() {
            Ok(attempt) => attempt,
            Err(dead) => return dead,
        };
        let (status, tag) = match AttemptOutcome::try_from(attempt.outcome) {
            Ok(AttemptOutcome::Sent) => (Status::Sent, "sent"),
            Ok(AttemptOutcome::Failed) => (Status::Failed, "failed"),
            Ok(AttemptOutcome::Unknown) => (Status::Unknown, "unknown"),
            _ => return Outcome::DeadLetter(format!("attempt has no outcome ({})", attempt.outcome)),
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let occurred_at = messaging_proto::time::datetime(attempt.occurred_at.as_ref()).unwrap_or_else(Utc::now);
        let report = Report {
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
        };
        match store::apply_in(tx, &report).await {
            Ok(applied) => {
                tracing::info!(message_id = %report.message_id, status = %status, ?applied, "gateway attempt recorded");
                Outcome::Ack
            }
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
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
