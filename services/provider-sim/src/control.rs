//! The simulator's own endpoints for tests and demos: inspect what it received, change faults at
//! run time, inject an inbound SMS (signed like Twilio's), and a health check.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::callbacks::post_signed_response;
use crate::state::{Faults, SimState, new_sid};

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/sim/messages", get(messages))
        .route("/sim/requests", get(requests))
        .route("/sim/stats", get(stats))
        .route("/sim/faults", get(get_faults).post(set_faults))
        .route("/sim/inbound", post(inbound))
        .route("/healthz", get(|| async { "ok" }))
}

async fn messages(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "messages": state.all() }))
}

/// Every authorised create request, accepted or refused (a refused one leaves no message).
async fn requests(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "requests": state.requests() }))
}

/// How many messages were accepted and create requests received: cheap to poll in benchmarks.
async fn stats(State(state): State<Arc<SimState>>) -> Json<Value> {
    let messages = state.messages.lock().map(|m| m.len()).unwrap_or(0);
    let requests = state.requests.lock().map(|r| r.len()).unwrap_or(0);
    Json(json!({ "messages": messages, "requests": requests }))
}

async fn get_faults(State(state): State<Arc<SimState>>) -> Json<Faults> {
    Json(state.faults())
}

async fn set_faults(State(state): State<Arc<SimState>>, Json(faults): Json<Faults>) -> Json<Faults> {
    if let Ok(mut current) = state.faults.lock() {
        *current = faults.clone();
    }
    Json(faults)
}

#[derive(Deserialize)]
struct Inbound {
    from: String,
    to: String,
    body: String,
}

/// Delivers an inbound SMS to the configured webhook; answers with the webhook's reply.
async fn inbound(State(state): State<Arc<SimState>>, Json(message): Json<Inbound>) -> (StatusCode, Json<Value>) {
    if state.config.inbound_url.is_empty() {
        return (StatusCode::CONFLICT, Json(json!({ "error": "no inbound_url configured" })));
    }
    let sid = new_sid("SM");
    let params: Vec<(String, String)> = [
        ("AccountSid", state.config.account_sid.clone()),
        ("ApiVersion", "2010-04-01".to_owned()),
        ("Body", message.body),
        ("From", message.from),
        ("MessageSid", sid.clone()),
        ("NumMedia", "0".to_owned()),
        ("NumSegments", "1".to_owned()),
        ("SmsMessageSid", sid.clone()),
        ("SmsSid", sid.clone()),
        ("SmsStatus", "received".to_owned()),
        ("To", message.to),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    match post_signed_response(&state, &state.config.inbound_url, &params, 3).await {
        Some((status, body)) => {
            (StatusCode::OK, Json(json!({ "sid": sid, "webhook_status": status, "webhook_body": body })))
        }
        None => (StatusCode::BAD_GATEWAY, Json(json!({ "sid": sid, "error": "webhook unreachable" }))),
    }
}
