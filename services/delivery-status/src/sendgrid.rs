//! SendGrid's event webhook: a JSON array of email events, verified with ECDSA (unsigned events are
//! refused unless a dev-only setting allows them), each attributed to our message by the signed
//! `message_token` the email gateway put in `X-SMTPAPI` unique args (never by an unsigned field,
//! never by the open pixel's token), deduplicated on `sg_event_id`, timed no later than now, kept in
//! the timeline and applied forward-only: delivered, bounce and dropped (failed with the reason),
//! open and click (opened); spamreport and unsubscribe opt out the message's stored recipient,
//! whatever address the event names.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{TimeZone, Utc};
use messaging_domain::signing::verify_message_token;
use messaging_domain::{Channel, Status};
use messaging_platform::bus::OutboxMessage;
use messaging_proto::bus::OptOutChanged;
use messaging_proto::time::timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::store::Report;
use crate::webhook::WebhookState;

/// The most events one request may carry.
const MAX_EVENTS: usize = 10_000;

#[derive(Debug, Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    sg_event_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    message_token: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// What an event means for the message: its status, a failure reason, and whether it opts out.
fn meaning(event: &str) -> Option<(Status, Option<&'static str>, bool)> {
    Some(match event {
        "processed" | "deferred" => (Status::Sent, None, false),
        "delivered" => (Status::Delivered, None, false),
        "bounce" => (Status::Failed, Some("bounced"), false),
        "dropped" => (Status::Failed, Some("dropped"), false),
        "open" | "click" => (Status::Opened, None, false),
        "spamreport" | "unsubscribe" | "group_unsubscribe" => (Status::Sent, None, true),
        _ => return None,
    })
}

pub async fn events(State(state): State<Arc<WebhookState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    match &state.sendgrid_key {
        Some(key) => {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
            let signature = header("x-twilio-email-event-webhook-signature");
            let signed_at = header("x-twilio-email-event-webhook-timestamp");
            if signature.is_empty() || !key.verifies(signed_at, &body, signature) {
                tracing::warn!("SendGrid event webhook with a bad signature refused");
                return StatusCode::FORBIDDEN;
            }
        }
        None if state.sendgrid_unsigned => {}
        None => {
            tracing::warn!("SendGrid event webhook refused: no sendgrid_public_key is configured to verify it");
            return StatusCode::FORBIDDEN;
        }
    }
    let raw: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(raw) => raw,
        Err(_) => return StatusCode::BAD_REQUEST,
    };
    if raw.len() > MAX_EVENTS {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    let mut unattributed = 0;
    for value in raw {
        let Some((mut report, opts_out)) =
            serde_json::from_value::<Event>(value).ok().and_then(|event| report(&state, &event))
        else {
            unattributed += 1;
            continue;
        };
        if opts_out {
            match stored_recipient(&state, &report).await {
                Ok(Some(address)) => report.implies = Some(opt_out_of(&report, address)),
                Ok(None) => {
                    tracing::info!(message_id = %report.message_id, "opt-out event for a message with no known recipient; not applied")
                }
                Err(error) => {
                    tracing::warn!(%error, "SendGrid event not stored; SendGrid will retry the batch");
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
            }
        }
        match state.commits.apply(report).await {
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "SendGrid event not stored; SendGrid will retry the batch");
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
    }
    if unattributed > 0 {
        tracing::info!(unattributed, "SendGrid events without a valid message token ignored");
    }
    StatusCode::OK
}

/// The report an event makes and whether it opts the recipient out, or `None` for an event we
/// cannot attribute or do not track.
fn report(state: &WebhookState, event: &Event) -> Option<(Report, bool)> {
    let (status, reason, opts_out) = meaning(&event.event)?;
    let (account, message) = verify_message_token(&state.token_secret, event.message_token.as_deref()?)?;
    let event_id = event.sg_event_id.as_deref().filter(|id| !id.is_empty())?;
    // A provider's clock may run ahead; an event "from the future" would outrank every later one.
    let now = Utc::now();
    let occurred_at = event.timestamp.and_then(|t| Utc.timestamp_opt(t, 0).single()).map_or(now, |at| at.min(now));
    let detail = serde_json::json!({
        "event": event.event, "email": event.email, "reason": event.reason, "status": event.status,
    });
    let report = Report {
        failure_reason: reason.map(str::to_owned),
        error_code: event.status.clone().filter(|s| !s.is_empty()),
        error_text: event.reason.clone().filter(|s| !s.is_empty()),
        occurred_at,
        ..Report::new(
            message.as_str(),
            account.as_str(),
            Channel::Email,
            status,
            "sendgrid",
            format!("sendgrid:{event_id}"),
            detail,
        )
    };
    Some((report, opts_out))
}

/// The address the message was sent to, as its gateway reported it: the only address an event
/// about the message may opt out.
async fn stored_recipient(state: &WebhookState, report: &Report) -> sqlx::Result<Option<String>> {
    let recipient: Option<Option<String>> = sqlx::query_scalar(
        "SELECT recipient FROM delivery_status.messages WHERE message_id = $1 AND account_id = $2 AND channel = 'email'",
    )
    .bind(&report.message_id)
    .bind(&report.account_id)
    .fetch_optional(&state.pool)
    .await?;
    Ok(recipient.flatten())
}

/// The opt-out event of `report`'s account for `address`, once per SendGrid event.
fn opt_out_of(report: &Report, address: String) -> OutboxMessage {
    let change = OptOutChanged {
        account_id: report.account_id.clone(),
        channel: Channel::Email.to_proto(),
        address,
        opted_out: true,
        source: format!("sendgrid_{}", report.detail["event"].as_str().unwrap_or("event")),
        occurred_at: Some(timestamp(report.occurred_at)),
    };
    OutboxMessage::of(&change, &report.dedupe_key)
}
