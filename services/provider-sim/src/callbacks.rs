//! Status callbacks: `sent`, then the configured outcome, POSTed form-encoded to the message's
//! `StatusCallback` and signed with X-Twilio-Signature exactly as Twilio signs them.

use std::sync::Arc;
use std::time::Duration;

use messaging_domain::signing::twilio_signature;

use crate::state::{SimMessage, SimState};

/// Moves a message through its life, reporting each step.
pub fn spawn_lifecycle(state: Arc<SimState>, sid: String) {
    tokio::spawn(async move {
        let faults = state.faults();
        let delay = Duration::from_millis(faults.callback_delay_ms.max(1));
        let unregistered = state.get(&sid).is_some_and(|m| faults.unregistered_senders.contains(&m.from));
        let outcome = match faults.outcome.as_str() {
            _ if unregistered => "failed".to_owned(),
            "" => "delivered".to_owned(),
            other => other.to_owned(),
        };
        let code = match (unregistered, faults.failure_code) {
            (true, _) => 30034,
            (false, 0) => 30003,
            (false, code) => code,
        };
        let mut steps = vec!["sent".to_owned()];
        if outcome == "queued" {
            steps.clear();
        } else if outcome != "sent" {
            steps.push(outcome);
        }
        for status in steps {
            tokio::time::sleep(delay).await;
            let failed = status == "undelivered" || status == "failed";
            let Some(message) = state.update(&sid, |m| {
                m.status = status.clone();
                if failed {
                    m.error_code = Some(code);
                    m.error_message = Some(error_message(code).into());
                }
            }) else {
                return;
            };
            if !message.status_callback.is_empty() {
                let delivered = post_signed(
                    &state,
                    &message.status_callback,
                    &callback_params(&state, &message),
                    faults.callback_retries,
                )
                .await;
                state.update(&sid, |m| if delivered { m.callbacks_delivered += 1 } else { m.callbacks_failed += 1 });
            }
        }
    });
}

fn callback_params(state: &SimState, m: &SimMessage) -> Vec<(String, String)> {
    let mut params = vec![
        ("AccountSid", state.config.account_sid.clone()),
        ("ApiVersion", "2010-04-01".to_owned()),
        ("From", m.from.clone()),
        ("MessageSid", m.sid.clone()),
        ("MessageStatus", m.status.clone()),
        ("SmsSid", m.sid.clone()),
        ("SmsStatus", m.status.clone()),
        ("To", m.to.clone()),
    ];
    if let Some(code) = m.error_code {
        params.push(("ErrorCode", code.to_string()));
    }
    if let Some(service) = &m.messaging_service_sid {
        params.push(("MessagingServiceSid", service.clone()));
    }
    params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// POSTs `params` to `url` signed with the auth token; retries on failure. True once answered 2xx.
pub async fn post_signed(state: &SimState, url: &str, params: &[(String, String)], retries: u32) -> bool {
    post_signed_response(state, url, params, retries).await.is_some_and(|(status, _)| (200..300).contains(&status))
}

/// Like [`post_signed`], returning the final status and body.
pub async fn post_signed_response(
    state: &SimState,
    url: &str,
    params: &[(String, String)],
    retries: u32,
) -> Option<(u16, String)> {
    let signature = twilio_signature(&state.config.auth_token, url, params);
    let mut backoff = Duration::from_millis(200);
    let mut last = None;
    for attempt in 0..=retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        let sent = state
            .http
            .post(url)
            .header("X-Twilio-Signature", &signature)
            .header("I-Twilio-Idempotency-Token", format!("{:x}", rand::random::<u64>()))
            .form(params)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                if (200..300).contains(&status) || (400..500).contains(&status) {
                    return Some((status, body));
                }
                last = Some((status, body));
            }
            Err(error) => tracing::debug!(%url, %error, "callback not delivered; will retry"),
        }
    }
    last
}

/// Twilio's title for a delivery error code the simulator reports.
fn error_message(code: i64) -> &'static str {
    match code {
        30003 => "Unreachable destination handset",
        30004 => "Message blocked",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Message filtered",
        30008 => "Unknown error",
        30032 => "Toll-Free Number Has Not Been Verified",
        30033 => "US A2P 10DLC - Campaign Suspended",
        30034 => "US A2P 10DLC - Message from an Unregistered Number",
        30035 => "US A2P 10DLC - Messaging Service Number Pool Size Limit Reached",
        _ => "Message delivery failed",
    }
}
