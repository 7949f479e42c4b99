//! The Twilio Messages API: create, fetch and list under `/2010-04-01/Accounts/{AccountSid}/`,
//! checked as Twilio checks (basic auth, required parameters, E.164) with Twilio's JSON errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use messaging_domain::E164;
use serde_json::{Value, json};

use crate::callbacks;
use crate::state::{SimMessage, SimRequest, SimState, new_sid};

type Shared = State<Arc<SimState>>;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/2010-04-01/Accounts/{account}/Messages.json", post(create).get(list))
        .route("/2010-04-01/Accounts/{account}/Messages/{sid}", get(fetch))
}

/// Twilio's error body.
pub fn twilio_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

fn authorized(state: &SimState, account: &str, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", state.config.account_sid, state.config.auth_token));
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "));
    if given != Some(expected.as_str()) || account != state.config.account_sid {
        return Err(Box::new(twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate")));
    }
    Ok(())
}

/// RFC 2822, as Twilio formats dates.
fn rfc2822(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn segments(body: &str) -> u32 {
    let gsm = body.chars().all(|c| c.is_ascii() && !matches!(c, '`' | '^' | '{' | '}' | '[' | ']' | '~' | '\\' | '|'));
    let len = if gsm { body.chars().count() } else { body.encode_utf16().count() } as u32;
    let (single, multi) = if gsm { (160, 153) } else { (70, 67) };
    if len <= single { 1 } else { len.div_ceil(multi) }
}

/// The message resource as Twilio returns it.
pub fn resource(state: &SimState, m: &SimMessage) -> Value {
    let account = &state.config.account_sid;
    json!({
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": m.body,
        "date_created": rfc2822(m.date_created),
        "date_sent": m.date_sent.map(rfc2822),
        "date_updated": rfc2822(m.date_updated),
        "direction": m.direction,
        "error_code": m.error_code,
        "error_message": m.error_message,
        // A messaging service picks the sender after accepting the message.
        "from": if m.status == "accepted" { Value::Null } else { Value::String(m.from.clone()) },
        "messaging_service_sid": m.messaging_service_sid,
        "num_media": "0",
        "num_segments": m.num_segments.to_string(),
        "price": Value::Null,
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status,
        "subresource_uris": { "media": format!("/2010-04-01/Accounts/{account}/Messages/{}/Media.json", m.sid) },
        "to": m.to,
        "uri": format!("/2010-04-01/Accounts/{account}/Messages/{}.json", m.sid),
    })
}

async fn create(
    State(state): Shared,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(denied) = authorized(&state, &account, &headers) {
        return *denied;
    }
    let arrived = Utc::now();
    let faults = state.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let Some(to) = param("To") else {
        return twilio_error(StatusCode::BAD_REQUEST, 21604, "A 'To' phone number is required.");
    };
    let body = param("Body");
    let request = state.record_request(SimRequest {
        to: to.clone(),
        body: body.clone().unwrap_or_default(),
        at: arrived,
        params: form.clone(),
        fault: None,
    });
    if body.is_none() && param("MediaUrl").is_none() && param("ContentSid").is_none() {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    let body = body.unwrap_or_default();
    if body.chars().count() > 1600 {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let from = param("From");
    let service = param("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return twilio_error(StatusCode::BAD_REQUEST, 21603, "A 'From' phone number is required.");
    }
    if E164::parse_strict(&to).is_err() {
        return twilio_error(StatusCode::BAD_REQUEST, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    if let Some(from) = &from
        && E164::parse_strict(from).is_err()
    {
        return twilio_error(StatusCode::BAD_REQUEST, 21212, &format!("Invalid 'From' Phone Number: {from}"));
    }
    let validity_period = match param("ValidityPeriod").map(|v| v.parse::<u32>()) {
        None => None,
        Some(Ok(v)) if (1..=36_000).contains(&v) => Some(v),
        Some(_) => {
            return twilio_error(StatusCode::BAD_REQUEST, 21623, "ValidityPeriod must be between 1 and 36000 seconds.");
        }
    };
    match to.as_str() {
        "+15005550001" => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            );
        }
        "+15005550004" => {
            return twilio_error(StatusCode::BAD_REQUEST, 21610, "Attempt to send to unsubscribed recipient");
        }
        "+15005550009" => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21614,
                &format!("'To' number {to} is not a valid mobile number"),
            );
        }
        _ => {}
    }
    let roll: f64 = rand::random();
    let mut threshold = faults.error_500_rate;
    if roll < threshold {
        state.mark_fault(request, "error_500");
        return twilio_error(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error");
    }
    threshold += faults.error_429_rate;
    if roll < threshold {
        state.mark_fault(request, "error_429");
        let mut response = twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
        response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return response;
    }
    let now = Utc::now();
    let message = SimMessage {
        sid: new_sid("SM"),
        to,
        from: from.clone().unwrap_or_else(|| "+15005550006".to_owned()),
        num_segments: segments(&body),
        body,
        status: if service.is_some() { "accepted" } else { "queued" }.into(),
        status_callback: param("StatusCallback").unwrap_or_default(),
        validity_period,
        messaging_service_sid: service,
        error_code: None,
        error_message: None,
        date_created: now,
        date_updated: now,
        date_sent: None,
        direction: "outbound-api".into(),
        callbacks_delivered: 0,
        callbacks_failed: 0,
    };
    state.insert(message.clone());
    callbacks::spawn_lifecycle(state.clone(), message.sid.clone());
    threshold += faults.accept_then_500_rate;
    if roll < threshold {
        state.mark_fault(request, "accept_then_500");
        return twilio_error(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error");
    }
    threshold += faults.timeout_rate;
    if roll < threshold {
        state.mark_fault(request, "timeout");
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    (StatusCode::CREATED, Json(resource(&state, &message))).into_response()
}

async fn fetch(State(state): Shared, Path((account, sid)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorized(&state, &account, &headers) {
        return *denied;
    }
    let sid = sid.trim_end_matches(".json");
    match state.get(sid) {
        Some(message) => Json(resource(&state, &message)).into_response(),
        None => twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("The requested resource /2010-04-01/Accounts/{account}/Messages/{sid}.json was not found"),
        ),
    }
}

async fn list(
    State(state): Shared,
    Path(account): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = authorized(&state, &account, &headers) {
        return *denied;
    }
    let date = |key: &str| query.get(key).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let (after, before, on) = (date("DateSent>"), date("DateSent<"), date("DateSent"));
    let by_date = after.is_some() || before.is_some() || on.is_some();
    let page_size: usize = query.get("PageSize").and_then(|p| p.parse().ok()).unwrap_or(50).clamp(1, 1000);
    let page: usize = query.get("Page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let mut matching: Vec<SimMessage> = state
        .all()
        .into_iter()
        .filter(|m| query.get("To").is_none_or(|to| &m.to == to))
        .filter(|m| query.get("From").is_none_or(|from| m.status != "accepted" && &m.from == from))
        // As Twilio: the date filters read `date_sent`, so a message not sent yet matches none of them.
        .filter(|m| match m.date_sent.map(|sent| sent.date_naive()) {
            Some(day) => {
                after.is_none_or(|d| day >= d) && before.is_none_or(|d| day <= d) && on.is_none_or(|d| day == d)
            }
            None => !by_date,
        })
        .collect();
    matching.sort_by_key(|m| std::cmp::Reverse(m.date_created));
    let start = page * page_size;
    let messages: Vec<Value> = matching.iter().skip(start).take(page_size).map(|m| resource(&state, m)).collect();
    // Page links keep the filters, as Twilio's do.
    let filters: String = ["To", "From", "DateSent", "DateSent<", "DateSent>"]
        .iter()
        .filter_map(|key| query.get(*key).map(|value| format!("&{}={}", encode(key), encode(value))))
        .collect();
    let base = format!("/2010-04-01/Accounts/{account}/Messages.json");
    let uri = |page: usize| format!("{base}?PageSize={page_size}&Page={page}{filters}");
    Json(json!({
        "messages": messages,
        "end": start + messages.len().saturating_sub(1),
        "first_page_uri": uri(0),
        "next_page_uri": (start + page_size < matching.len()).then(|| uri(page + 1)),
        "page": page,
        "page_size": page_size,
        "previous_page_uri": (page > 0).then(|| uri(page - 1)),
        "start": start,
        "uri": uri(page),
    }))
    .into_response()
}

/// Percent-encodes a query component (all but unreserved characters).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
