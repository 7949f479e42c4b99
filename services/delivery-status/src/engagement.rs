//! What recipients do with an email: open it (the signed tracking pixel moves the message to
//! `opened`) and unsubscribe (RFC 8058: only a POST to the link unsubscribes; a GET shows a page
//! with the button, so link scanners change nothing). The unsubscribe token is opaque.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use messaging_domain::signing::{verify_message_token, verify_open_token};
use messaging_domain::{Channel, Status};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::OptOutChanged;
use messaging_proto::time::timestamp;

use crate::store::Report;
use crate::webhook::WebhookState;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// `GET /o/<token>.gif`: the first open of a message moves it to `opened`.
pub async fn open_pixel(State(state): State<Arc<WebhookState>>, Path(file): Path<String>) -> Response {
    let token = file.strip_suffix(".gif").unwrap_or(&file);
    // Emails sent before open tokens carried the message token in their pixel.
    let verified =
        verify_open_token(&state.token_secret, token).or_else(|| verify_message_token(&state.token_secret, token));
    let Some((account, message)) = verified else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let report = Report::new(
        message.as_str(),
        account.as_str(),
        Channel::Email,
        Status::Opened,
        "open_pixel",
        format!("open:{message}"),
        serde_json::json!({"event": "open"}),
    );
    if let Err(error) = state.commits.apply(report).await {
        tracing::warn!(%error, message_id = %message, "open not recorded");
    }
    let no_store = [(header::CONTENT_TYPE, "image/gif"), (header::CACHE_CONTROL, "no-store")];
    (no_store, PIXEL).into_response()
}

/// The email an unsubscribe token belongs to: (account, message, recipient). The token is opaque
/// (a keyed hash of the message id the attempt event told us), so it is looked up, never decoded.
async fn unsubscribe_target(
    state: &WebhookState,
    token: &str,
) -> sqlx::Result<Option<(String, String, Option<String>)>> {
    if token.len() != 22 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT account_id, message_id, recipient FROM delivery_status.messages
         WHERE unsubscribe_token = $1 AND channel = 'email'",
    )
    .bind(token)
    .fetch_optional(&state.pool)
    .await
}

/// `GET /unsubscribe/<token>`: a page with the button; changes nothing.
pub async fn unsubscribe_page(State(state): State<Arc<WebhookState>>, Path(token): Path<String>) -> Response {
    match unsubscribe_target(&state, &token).await {
        Ok(Some(_)) => Html(
            "<!DOCTYPE html><html><body><form method=\"post\"><p>Stop these emails?</p>\
             <button type=\"submit\" name=\"List-Unsubscribe\" value=\"One-Click\">Unsubscribe</button></form></body></html>",
        )
        .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `POST /unsubscribe/<token>`: opts the message's recipient out of this account's email.
pub async fn unsubscribe(State(state): State<Arc<WebhookState>>, Path(token): Path<String>) -> Response {
    let target = match unsubscribe_target(&state, &token).await {
        Ok(Some((account, message, Some(recipient)))) => (account, message, recipient),
        Ok(_) => return StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::warn!(%error, "unsubscribe not recorded");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let (account, message, recipient) = target;
    match opt_out(&state, &account, &message, recipient).await {
        Ok(()) => {
            state.relay.wake();
            tracing::info!(account_id = %account, message_id = %message, "unsubscribed by one-click");
            Html("<!DOCTYPE html><html><body><p>You are unsubscribed.</p></body></html>").into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "unsubscribe not recorded");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Publishes the opt-out of the message's recipient for the account's email.
async fn opt_out(state: &WebhookState, account: &str, message: &str, address: String) -> sqlx::Result<()> {
    let mut tx = state.pool.begin().await?;
    let change = OptOutChanged {
        account_id: account.to_owned(),
        channel: Channel::Email.to_proto(),
        address,
        opted_out: true,
        source: "unsubscribe".into(),
        occurred_at: Some(timestamp(Utc::now())),
    };
    let event = OutboxMessage::of(&change, message);
    outbox::enqueue(&mut tx, crate::SCHEMA, &event).await?;
    tx.commit().await?;
    Ok(())
}
