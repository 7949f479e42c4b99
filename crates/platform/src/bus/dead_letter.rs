//! The dead-letter path: a message that can never be handled goes to `dlq.<service>.<subject>`
//! with its reason, whole where the broker can carry it and cut to fit where it cannot (never
//! dropped), and is terminated only once JetStream has it.

use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;

use crate::bus::Delivery;
use crate::bus::outbox::{self, OutboxMessage};

/// Input a handler applied only in part (one unusable field set aside, the rest applied): the
/// whole message goes to `dlq.<service>.<subject>` with the reason and `Dlq-Partial: true`,
/// through the outbox, so the publisher hears of it exactly when the rest commits.
pub async fn enqueue_partial(
    connection: &mut sqlx::PgConnection,
    schema: &str,
    service: &'static str,
    delivery: &Delivery,
    reason: &str,
) -> sqlx::Result<()> {
    tracing::warn!(%reason, "part of the message set aside; dead-lettering a copy");
    let message = OutboxMessage {
        id: format!("dlq-{service}-partial-{}", delivery.stream_sequence),
        subject: format!("dlq.{service}.{}", delivery.subject),
        payload: delivery.payload.to_vec(),
    };
    let headers = [
        ("Dlq-Reason", sanitize_header(reason)),
        ("Dlq-Service", service.to_owned()),
        ("Dlq-Subject", delivery.subject.clone()),
        ("Dlq-Delivered", delivery.delivered.to_string()),
        ("Dlq-Partial", "true".to_owned()),
    ];
    outbox::enqueue_with_headers(connection, schema, &message, &headers).await
}

pub(crate) async fn publish(
    context: &jetstream::Context,
    service: &'static str,
    delivery: &Delivery,
    reason: &str,
    message: &jetstream::Message,
) -> Result<(), async_nats::Error> {
    tracing::warn!(%reason, "dead-lettering message");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        format!("dlq-{service}-{}-{}", message_stream(message), delivery.stream_sequence).as_str(),
    );
    headers.insert("Dlq-Reason", sanitize_header(reason).as_str());
    headers.insert("Dlq-Service", service);
    headers.insert("Dlq-Subject", delivery.subject.as_str());
    headers.insert("Dlq-Delivered", delivery.delivered.to_string().as_str());
    let subject = format!("dlq.{service}.{}", delivery.subject);
    let max_payload = context.client().server_info().max_payload;
    let (payload, truncated) = fit(&delivery.payload, max_payload.saturating_sub(DLQ_HEADER_ROOM));
    if truncated {
        tracing::warn!(
            bytes = delivery.payload.len(),
            "dead letter too large for the broker; its payload is truncated"
        );
        headers.insert("Dlq-Truncated-From", delivery.payload.len().to_string().as_str());
    }
    let ack = context.publish_with_headers(subject, headers, payload).await?;
    ack.await?;
    message.ack_with(AckKind::Term).await
}

/// Room for a dead letter's headers (the reason, the subject, the ids) beside its payload.
const DLQ_HEADER_ROOM: usize = 8 * 1024;

/// The payload cut to `limit` bytes if it is longer (a dead letter is kept whole where it fits and
/// never dropped where it does not); says whether it was cut.
fn fit(payload: &Bytes, limit: usize) -> (Bytes, bool) {
    match payload.len() > limit {
        true => (payload.slice(..limit), true),
        false => (payload.clone(), false),
    }
}

fn message_stream(message: &jetstream::Message) -> String {
    message.info().map(|info| info.stream.to_owned()).unwrap_or_default()
}

/// Header values cannot carry CR/LF; keep reasons on one line and bounded.
fn sanitize_header(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_too_large_for_the_broker_is_cut_to_fit_never_dropped() {
        let payload = Bytes::from(vec![b'x'; 2_000]);
        assert_eq!(fit(&payload, 5_000), (payload.clone(), false));
        let (cut, truncated) = fit(&payload, 1_500);
        assert!(truncated);
        assert_eq!(cut.len(), 1_500);
    }
}
