//! Inbound email in SendGrid's inbound-parse format (multipart form), at a URL that carries the
//! configured secret. The account is found from where the email was delivered (the SMTP envelope's
//! recipient; the `To` header only when no envelope is given): by the signed token of a
//! `reply+<token>@` address (the account of the message it answers), else by the account's send
//! address. The sender is a customer only when SPF or DKIM vouch for its From address; otherwise,
//! or when no customer has that address, it gets a thread of its own (an unverified one marked so).
//! Quoted earlier text is stripped; each email is recorded once (by its Message-ID).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use messaging_domain::reply::{MAX_INBOUND_SUBJECT_CHARS, MAX_INBOUND_TEXT_CHARS, bounded, strip_quoted};
use messaging_domain::sender::{self, SenderCheck, Verdicts};
use messaging_domain::signing::verify_message_ref_token;
use messaging_domain::{Channel, MessageId};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::{CustomerSnapshot, MessageReceived};
use messaging_proto::time::timestamp;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};
use subtle::ConstantTimeEq;

use crate::webhook::WebhookState;

/// The fields of an inbound-parse post we read; anything else (attachments) is skipped.
const FIELDS: &[&str] = &["from", "to", "subject", "text", "headers", "envelope", "SPF", "dkim"];

/// One inbound email as SendGrid posted it.
struct Inbound<'a> {
    /// The From header's address, lowercased.
    sender: String,
    /// Where it was delivered: the envelope's recipients, else the `To` header.
    recipients: Vec<String>,
    check: SenderCheck,
    subject: &'a str,
    text: &'a str,
    headers: &'a str,
}

/// The SMTP envelope SendGrid reports: `{"to": ["…"], "from": "…"}`.
#[derive(serde::Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    from: Option<String>,
}

pub async fn sendgrid_inbound(
    State(state): State<Arc<WebhookState>>,
    Path(secret): Path<String>,
    mut multipart: Multipart,
) -> StatusCode {
    let expected = state.inbound_email_secret.as_bytes();
    if expected.is_empty() || !bool::from(secret.as_bytes().ct_eq(expected)) {
        // Read the upload (bounded by the route's body limit) before refusing: a refusal sent
        // while the sender is still writing is cut off, and it would see a broken pipe, not 403.
        while let Ok(Some(_)) = multipart.next_field().await {}
        return StatusCode::FORBIDDEN;
    }
    let mut fields: HashMap<String, String> = HashMap::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                if !FIELDS.contains(&name.as_str()) {
                    continue;
                }
                match field.text().await {
                    Ok(text) => {
                        fields.insert(name, text);
                    }
                    Err(_) => return StatusCode::BAD_REQUEST,
                }
            }
            Ok(None) => break,
            Err(_) => return StatusCode::BAD_REQUEST,
        }
    }
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let Some(sender) = address_in(field("from")) else { return StatusCode::BAD_REQUEST };
    let envelope: Envelope = match fields.get("envelope") {
        Some(json) => match serde_json::from_str(json) {
            Ok(envelope) => envelope,
            Err(_) => return StatusCode::BAD_REQUEST,
        },
        None => Envelope::default(),
    };
    let recipients = if envelope.to.is_empty() {
        field("to").split(',').filter_map(raw_address).map(str::to_owned).collect()
    } else {
        envelope.to.iter().filter_map(|to| raw_address(to)).map(str::to_owned).collect()
    };
    let verdicts =
        Verdicts { from: &sender, envelope_from: envelope.from.as_deref(), spf: field("SPF"), dkim: field("dkim") };
    let check = sender::check(verdicts);
    let inbound = Inbound {
        sender,
        recipients,
        check,
        subject: field("subject"),
        text: field("text"),
        headers: field("headers"),
    };
    match record(&state, &inbound).await {
        Ok(true) => {
            state.relay.wake();
            StatusCode::OK
        }
        // Not ours to thread: SendGrid must not retry it.
        Ok(false) => StatusCode::OK,
        Err(error) => {
            tracing::warn!(%error, "inbound email not stored; SendGrid will retry");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The address in `Name <address>` or a bare address, as written.
fn raw_address(field: &str) -> Option<&str> {
    let inner = match (field.rfind('<'), field.rfind('>')) {
        (Some(open), Some(close)) if open < close => &field[open + 1..close],
        _ => field,
    };
    let address = inner.trim();
    (address.contains('@') && !address.contains(char::is_whitespace)).then_some(address)
}

/// The address in `Name <address>` or a bare address, lowercased for comparison.
fn address_in(field: &str) -> Option<String> {
    raw_address(field).map(str::to_ascii_lowercase)
}

/// The token of a `reply+<token>@` recipient, if any (case kept: the token's MAC is case-sensitive).
fn reply_token(recipients: &[String]) -> Option<String> {
    recipients.iter().find_map(|address| {
        let local = address.split('@').next()?;
        local.strip_prefix("reply+").map(str::to_owned)
    })
}

/// The account the email belongs to: by the message its reply token names, else by the send address it went to.
async fn account_for(
    state: &WebhookState,
    tx: &mut PgConnection,
    recipients: &[String],
) -> sqlx::Result<Option<String>> {
    let token = reply_token(recipients);
    if let Some(message) = token.and_then(|token| verify_message_ref_token(&state.token_secret, &token)) {
        let account: Option<String> =
            sqlx::query_scalar("SELECT account_id FROM delivery_status.messages WHERE message_id = $1")
                .bind(message.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if account.is_some() {
            return Ok(account);
        }
    }
    for address in recipients.iter().map(|address| address.to_ascii_lowercase()) {
        let account: Option<String> = sqlx::query_scalar(
            "SELECT account_id FROM delivery_status.accounts WHERE lower(email_from) = $1 ORDER BY as_of DESC LIMIT 1",
        )
        .bind(&address)
        .fetch_optional(&mut *tx)
        .await?;
        if account.is_some() {
            return Ok(account);
        }
    }
    Ok(None)
}

async fn customer_by_email(tx: &mut PgConnection, account: &str, email: &str) -> sqlx::Result<CustomerSnapshot> {
    let row = sqlx::query(
        "SELECT customer_id, name, phone FROM delivery_status.contacts WHERE account_id = $1 AND lower(email) = $2
         ORDER BY as_of DESC LIMIT 1",
    )
    .bind(account)
    .bind(email)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match row {
        Some(row) => CustomerSnapshot {
            customer_id: row.try_get("customer_id")?,
            name: row.try_get("name")?,
            phone: row.try_get("phone")?,
            email: email.to_owned(),
            sms_allowed: true,
            email_allowed: true,
        },
        None => CustomerSnapshot { email: email.to_owned(), ..Default::default() },
    })
}

/// The email's identity for deduplication: its Message-ID header, else a digest of what it says.
fn provider_id(sender: &str, subject: &str, text: &str, headers: &str) -> String {
    let message_id = headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("message-id").then(|| value.trim().to_owned())
    });
    let identity = message_id.unwrap_or_else(|| format!("{sender}\n{subject}\n{text}"));
    format!("email:{}", hex::encode(&Sha256::digest(identity.as_bytes())[..16]))
}

async fn record(state: &WebhookState, inbound: &Inbound<'_>) -> sqlx::Result<bool> {
    let Inbound { sender, subject, text, headers, .. } = inbound;
    let sender = sender.as_str();
    let mut tx = state.pool.begin().await?;
    let Some(account_id) = account_for(state, &mut tx, &inbound.recipients).await? else {
        tracing::info!("inbound email for no account of ours; ignored");
        return Ok(false);
    };
    let unverified = match &inbound.check {
        SenderCheck::Verified(_) => None,
        SenderCheck::Unverified(why) => Some(why.clone()),
    };
    let customer = match unverified {
        None => customer_by_email(&mut tx, &account_id, sender).await?,
        Some(_) => CustomerSnapshot { email: sender.to_owned(), ..Default::default() },
    };
    let provider_id = provider_id(sender, subject, text, headers);
    let digest = Sha256::digest(provider_id.as_bytes());
    let message_id = MessageId::from_u128(u128::from_be_bytes(digest[..16].try_into().unwrap_or_default()));
    let body = bounded(&strip_quoted(text), MAX_INBOUND_TEXT_CHARS);
    let inserted = sqlx::query(
        "INSERT INTO delivery_status.inbound
             (provider_id, message_id, account_id, channel, sender, customer_id, body, sender_unverified)
         VALUES ($1, $2, $3, 'email', $4, $5, $6, $7) ON CONFLICT (provider_id) DO NOTHING",
    )
    .bind(&provider_id)
    .bind(message_id.as_str())
    .bind(&account_id)
    .bind(sender)
    .bind(&customer.customer_id)
    .bind(&body)
    .bind(&unverified)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(true);
    }
    let received = MessageReceived {
        message_id: message_id.to_string(),
        account_id: account_id.clone(),
        channel: Channel::Email.to_proto(),
        customer: Some(customer),
        body,
        subject: subject.chars().filter(|c| !c.is_control()).take(MAX_INBOUND_SUBJECT_CHARS).collect(),
        received_at: Some(timestamp(Utc::now())),
        provider_id,
        sender_unverified: unverified.is_some(),
    };
    let event = OutboxMessage::of(&received, &message_id);
    outbox::enqueue(&mut tx, crate::SCHEMA, &event).await?;
    tx.commit().await?;
    match &unverified {
        None => tracing::info!(account_id, message_id = %message_id, "inbound email recorded"),
        Some(why) => {
            tracing::warn!(account_id, message_id = %message_id, %why, "inbound email recorded; its sender is unverified, so it is attributed to no customer")
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_reply_tokens() {
        assert_eq!(address_in("Dana Reyes <Dana@Example.com>").as_deref(), Some("dana@example.com"));
        assert_eq!(address_in("dana@example.com").as_deref(), Some("dana@example.com"));
        assert_eq!(address_in("not an address"), None);
        let recipients = ["office@ace.example".to_owned(), "reply+msg_1.aBc@reply.example".to_owned()];
        assert_eq!(reply_token(&recipients).as_deref(), Some("msg_1.aBc"));
        assert_eq!(reply_token(&recipients[..1]), None);
    }
}
