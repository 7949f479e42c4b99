//! The provider-facing HTTP server. Every request is verified before anything is stored:
//! X-Twilio-Signature against the configured public URL, and our signed message token in the path.

use std::sync::Arc;
use tracing::Instrument as _;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Form, Router};
use messaging_domain::signing::{twilio_signature_matches, verify_message_token};
use messaging_domain::{Channel, Status};
use messaging_platform::bus::Relay;
use sqlx::PgPool;

use crate::store::Report;

/// What the webhook handlers share.
pub struct WebhookState {
    pub pool: PgPool,
    pub relay: Relay,
    /// Applies status reports, many requests' to a transaction.
    pub commits: crate::commits::Commits,
    /// The base URL the provider calls (differs from the listen address behind a proxy).
    pub public_base_url: String,
    pub twilio_auth_token: String,
    pub token_secret: Vec<u8>,
    /// The secret in the inbound-email URL (`/webhooks/sendgrid/inbound/<secret>`); empty refuses all.
    pub inbound_email_secret: String,
    /// Verifies SendGrid's signed event webhook; `None` refuses events unless `sendgrid_unsigned`.
    pub sendgrid_key: Option<messaging_domain::signing::SendgridKey>,
    pub sendgrid_unsigned: bool,
}

/// The routes.
pub fn router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/webhooks/twilio/status/{token}", post(twilio_status))
        .route("/webhooks/twilio/inbound", post(crate::inbound::twilio_inbound))
        .route("/webhooks/sendgrid/events", post(crate::sendgrid::events).layer(DefaultBodyLimit::max(4 * 1024 * 1024)))
        .route(
            "/webhooks/sendgrid/inbound/{secret}",
            post(crate::inbound_email::sendgrid_inbound).layer(DefaultBodyLimit::max(8 * 1024 * 1024)),
        )
        .route("/o/{file}", get(crate::engagement::open_pixel))
        .route("/unsubscribe/{token}", get(crate::engagement::unsubscribe_page).post(crate::engagement::unsubscribe))
        .route("/livez", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

/// Whether the request carries Twilio's signature over the public URL it was sent to and its
/// parameters (constant-time; with and without the default port).
pub(crate) fn signed_by_twilio(
    state: &WebhookState,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> bool {
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
    let url = format!("{}{}", state.public_base_url.trim_end_matches('/'), path);
    let valid = !signature.is_empty() && twilio_signature_matches(&state.twilio_auth_token, &url, params, signature);
    if !valid {
        tracing::warn!(%url, "webhook with a bad Twilio signature refused");
    }
    valid
}

async fn twilio_status(
    State(state): State<Arc<WebhookState>>,
    Path(token): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> StatusCode {
    if !signed_by_twilio(&state, &uri, &headers, &params) {
        return StatusCode::FORBIDDEN;
    }
    let Some((account, message)) = verify_message_token(&state.token_secret, &token) else {
        tracing::warn!("status callback with a bad message token refused");
        return StatusCode::FORBIDDEN;
    };
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let Some(raw_status) = param("MessageStatus").or_else(|| param("SmsStatus")) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(provider_id) = param("MessageSid").or_else(|| param("SmsSid")) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(status) = Status::from_twilio(&raw_status) else {
        // queued / sending / accepted say nothing the gateway has not.
        return StatusCode::NO_CONTENT;
    };
    let error_code = param("ErrorCode");
    let failure_reason = (status == Status::Failed)
        .then(|| error_code.as_deref().map(|c| failure_reason_for(c).to_owned()).unwrap_or_else(|| raw_status.clone()));
    let detail = params.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    let report = Report {
        provider_id: Some(provider_id.clone()),
        failure_reason,
        error_text: param("ErrorMessage"),
        error_code,
        ..Report::new(
            message.as_str(),
            account.as_str(),
            Channel::Sms,
            status,
            "provider",
            format!("twilio:{provider_id}:{raw_status}"),
            serde_json::Value::Object(detail),
        )
    };
    let span = tracing::info_span!("twilio.status_callback", otel.kind = "server", message_id = %message);
    if let Some(traceparent) = traceparent_of(&uri) {
        messaging_platform::bus::trace::adopt_traceparent(&span, traceparent);
    }
    match state.commits.apply(report).instrument(span).await {
        Ok(applied) => {
            tracing::info!(message_id = %message, account_id = %account, %raw_status, ?applied, "status callback");
            StatusCode::NO_CONTENT
        }
        Err(error) => {
            tracing::warn!(%error, "status callback not stored; the provider may retry");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The `traceparent` the gateway put in the callback URL (hex digits and dashes only).
fn traceparent_of(uri: &Uri) -> Option<&str> {
    let value = uri.query()?.split('&').find_map(|pair| pair.strip_prefix("traceparent="))?;
    value.chars().all(|c| c.is_ascii_hexdigit() || c == '-').then_some(value)
}

/// Carrier-side delivery failures reported in status callbacks (the shared table in
/// `messaging_domain::registration`; an unknown code is `undelivered`).
pub(crate) fn failure_reason_for(code: &str) -> &'static str {
    messaging_domain::registration::twilio_failure_reason(code).unwrap_or("undelivered")
}
