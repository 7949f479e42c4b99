//! Inbound SMS from Twilio: verified, routed to the account by the signed To number and to the
//! customer by the From number (an unknown number gets a thread of its own), recorded once per
//! MessageSid, published to the feed, and acted on when it is a carrier keyword: STOP opts the
//! number out of this business's SMS, START opts it back in, HELP is answered in TwiML.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use messaging_domain::keywords::{self, Keyword};
use messaging_domain::{Channel, E164, MessageId};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::{MessageReceived, OptOutChanged};
use messaging_proto::time::timestamp;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};

use crate::directory;
use crate::webhook::{WebhookState, signed_by_twilio};

/// The message id of an inbound message: derived from the provider's id, so a retried webhook
/// names the same message.
fn inbound_message_id(provider_id: &str) -> MessageId {
    let digest = Sha256::digest(provider_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    MessageId::from_u128(u128::from_be_bytes(bytes))
}

fn twiml(reply: Option<&str>) -> Response {
    let body = match reply {
        Some(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            escape_xml(text)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_owned(),
    };
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

pub async fn twilio_inbound(
    State(state): State<Arc<WebhookState>>,
    uri: Uri,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    if !signed_by_twilio(&state, &uri, &headers, &params) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let (provider_id, body) = (param("MessageSid"), param("Body"));
    let (Ok(to), Ok(from)) = (E164::parse_strict(&param("To")), E164::parse_strict(&param("From"))) else {
        return (StatusCode::BAD_REQUEST, "To and From must be E.164 numbers").into_response();
    };
    if provider_id.is_empty() {
        return (StatusCode::BAD_REQUEST, "MessageSid is required").into_response();
    }
    match record(&state, &provider_id, to.as_str(), from.as_str(), &body).await {
        Ok(Some(business)) => {
            state.relay.wake();
            let reply = (keywords::classify(&body) == Some(Keyword::Help))
                .then(|| format!("{business}: reply to this number to reach us. Reply STOP to opt out."));
            twiml(reply.as_deref())
        }
        // Signed for a number no account has yet (the directory may lag a new account): kept.
        Ok(None) => twiml(None),
        Err(error) => {
            tracing::warn!(%error, "inbound SMS not stored; Twilio will retry");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Stores the message and its events once; returns the business name, or `None` when the To
/// number is no account's yet (the message is then kept until the directory names its account).
async fn record(
    state: &WebhookState,
    provider_id: &str,
    to: &str,
    from: &str,
    body: &str,
) -> sqlx::Result<Option<String>> {
    let mut tx = state.pool.begin().await?;
    directory::lock_number(&mut tx, to).await?;
    let Some((account_id, business)) = directory::account_by_number(&mut tx, to).await? else {
        sqlx::query(
            "INSERT INTO delivery_status.pending_inbound (provider_id, to_number, from_number, body)
             VALUES ($1, $2, $3, $4) ON CONFLICT (provider_id) DO NOTHING",
        )
        .bind(provider_id)
        .bind(to)
        .bind(from)
        .bind(body)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::warn!(to, "inbound SMS to a number no account uses yet; kept until one does");
        return Ok(None);
    };
    record_for(&mut tx, &account_id, provider_id, from, body).await?;
    tx.commit().await?;
    Ok(Some(business))
}

/// Records kept messages to `sms_number` now that `account_id` uses it; returns how many.
pub(crate) async fn apply_pending(tx: &mut PgConnection, account_id: &str, sms_number: &str) -> sqlx::Result<usize> {
    let rows = sqlx::query(
        "DELETE FROM delivery_status.pending_inbound WHERE to_number = $1
         RETURNING provider_id, from_number, body",
    )
    .bind(sms_number)
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let (provider_id, from, body): (String, String, String) =
            (row.try_get("provider_id")?, row.try_get("from_number")?, row.try_get("body")?);
        record_for(tx, account_id, &provider_id, &from, &body).await?;
    }
    Ok(rows.len())
}

/// Records one inbound SMS for `account_id` and enqueues what it implies, inside `tx`; false when
/// it was recorded before.
async fn record_for(
    tx: &mut PgConnection,
    account_id: &str,
    provider_id: &str,
    from: &str,
    body: &str,
) -> sqlx::Result<bool> {
    let customer = directory::customer_by_phone(&mut *tx, account_id, from).await?;
    let keyword = keywords::classify(body);
    let message_id = inbound_message_id(provider_id);
    let inserted = sqlx::query(
        "INSERT INTO delivery_status.inbound (provider_id, message_id, account_id, channel, sender, customer_id, body, keyword)
         VALUES ($1, $2, $3, 'sms', $4, $5, $6, $7) ON CONFLICT (provider_id) DO NOTHING",
    )
    .bind(provider_id)
    .bind(message_id.as_str())
    .bind(account_id)
    .bind(from)
    .bind(&customer.customer_id)
    .bind(body)
    .bind(keyword.map(|k| format!("{k:?}").to_ascii_lowercase()))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    let now = Utc::now();
    let received = MessageReceived {
        message_id: message_id.to_string(),
        account_id: account_id.to_owned(),
        channel: Channel::Sms.to_proto(),
        customer: Some(customer.clone()),
        body: body.to_owned(),
        subject: String::new(),
        received_at: Some(timestamp(now)),
        provider_id: provider_id.to_owned(),
        sender_unverified: false,
    };
    let event = OutboxMessage::of(&received, &message_id);
    outbox::enqueue(&mut *tx, crate::SCHEMA, &event).await?;
    if let Some(opted_out) = match keyword {
        Some(Keyword::Stop) => Some(true),
        Some(Keyword::Start) => Some(false),
        _ => None,
    } {
        let change = OptOutChanged {
            account_id: account_id.to_owned(),
            channel: Channel::Sms.to_proto(),
            address: from.to_owned(),
            opted_out,
            source: "keyword".into(),
            occurred_at: Some(timestamp(now)),
        };
        let event = OutboxMessage::of(&change, &message_id);
        outbox::enqueue(&mut *tx, crate::SCHEMA, &event).await?;
        tracing::info!(account_id, customer_id = %customer.customer_id, opted_out, "SMS keyword applied");
    }
    tracing::info!(account_id, message_id = %message_id, customer_id = %customer.customer_id, "inbound SMS recorded");
    Ok(true)
}
