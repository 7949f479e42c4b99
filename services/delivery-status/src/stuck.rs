//! Messages stuck in `sent`: a status callback can be lost. An SMS still `sent` after a configured
//! time is looked up at the provider (Twilio's fetch API) and its answer applied as the callback
//! would have been, under the same dedupe key, so a late callback changes nothing twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use messaging_domain::{Channel, Status};
use messaging_platform::Shutdown;
use messaging_platform::tls::certificate_fault;
use serde::Deserialize;
use sqlx::Row;

use crate::store::{self, Applied, Report};
use crate::webhook::{WebhookState, failure_reason_for};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::DeliveryUnknown;

/// Where and how often to ask.
#[derive(Debug, Clone)]
pub struct StuckCheck {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// A message `sent` for longer than this is asked about (and again after as long).
    pub after: Duration,
    pub interval: Duration,
    /// Still `sent` at the provider this long after it was sent: its delivery is unknown, and the feed says so.
    pub unknown_after: Duration,
}

#[derive(Deserialize)]
struct ProviderMessage {
    status: String,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    error_message: Option<String>,
}

/// Runs until shutdown; `http` is the provider client ([`messaging_platform::tls::TlsConfig::http_client`]).
pub async fn run(state: Arc<WebhookState>, check: StuckCheck, http: reqwest::Client, shutdown: Shutdown) {
    loop {
        match check_once(&state, &check, &http).await {
            Ok(0) => {}
            Ok(settled) => tracing::info!(settled, "stuck messages settled by asking the provider"),
            Err(error) => match error.chain().find_map(certificate_fault) {
                Some(fault) => {
                    tracing::error!(%fault, "stuck-message checks cannot reach the provider until the configuration is fixed")
                }
                None => tracing::warn!(error = format!("{error:#}"), "stuck-message check failed; will retry"),
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(check.interval) => {}
        }
    }
}

/// One pass; returns how many messages moved on.
pub async fn check_once(state: &WebhookState, check: &StuckCheck, http: &reqwest::Client) -> anyhow::Result<usize> {
    let after = check.after.as_secs_f64();
    let rows = sqlx::query(
        "UPDATE delivery_status.messages SET checked_at = now() WHERE message_id IN (
             SELECT message_id FROM delivery_status.messages
             WHERE status = 'sent' AND channel = 'sms' AND provider_id IS NOT NULL
               AND updated_at < now() - make_interval(secs => $1)
               AND (checked_at IS NULL OR checked_at < now() - make_interval(secs => $1))
             ORDER BY updated_at LIMIT 100 FOR UPDATE SKIP LOCKED)
         RETURNING message_id, account_id, provider_id, updated_at, unknown_reported_at IS NOT NULL AS reported",
    )
    .bind(after)
    .fetch_all(&state.pool)
    .await?;
    let mut settled = 0;
    for row in rows {
        let (message_id, account_id, provider_id): (String, String, String) =
            (row.try_get("message_id")?, row.try_get("account_id")?, row.try_get("provider_id")?);
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages/{provider_id}.json",
            check.base_url.trim_end_matches('/'),
            check.account_sid
        );
        let response = http.get(&url).basic_auth(&check.account_sid, Some(&check.auth_token)).send().await?;
        if !response.status().is_success() {
            tracing::warn!(%message_id, status = %response.status(), "provider could not say what became of a message");
            continue;
        }
        let found: ProviderMessage = response.json().await?;
        let Some(status) = Status::from_twilio(&found.status).filter(|s| s.rank() > Status::Sent.rank()) else {
            let sent_at: chrono::DateTime<Utc> = row.try_get("updated_at")?;
            let overdue = (Utc::now() - sent_at).to_std().unwrap_or_default() >= check.unknown_after;
            if overdue && !row.try_get::<bool, _>("reported")? {
                report_unknown(state, &message_id, &account_id, sent_at).await?;
            }
            continue;
        };
        let code = found.error_code.map(|c| c.to_string());
        let report = Report {
            provider_id: Some(provider_id.clone()),
            failure_reason: (status == Status::Failed)
                .then(|| code.as_deref().map(failure_reason_for).unwrap_or("undelivered").to_owned()),
            error_code: code,
            error_text: found.error_message,
            ..Report::new(
                message_id.as_str(),
                account_id,
                Channel::Sms,
                status,
                "provider_check",
                format!("twilio:{provider_id}:{}", found.status),
                serde_json::json!({"fetched": found.status, "at": Utc::now().to_rfc3339()}),
            )
        };
        if store::apply(&state.pool, &report).await? != Applied::Duplicate {
            state.relay.wake();
            settled += 1;
        }
    }
    Ok(settled)
}

/// Tells the feed, once, that the provider cannot confirm the message's delivery.
async fn report_unknown(
    state: &WebhookState,
    message_id: &str,
    account_id: &str,
    sent_at: chrono::DateTime<Utc>,
) -> sqlx::Result<()> {
    let mut tx = state.pool.begin().await?;
    sqlx::query("UPDATE delivery_status.messages SET unknown_reported_at = now() WHERE message_id = $1")
        .bind(message_id)
        .execute(&mut *tx)
        .await?;
    let event = DeliveryUnknown {
        message_id: message_id.to_owned(),
        account_id: account_id.to_owned(),
        sent_at: Some(messaging_proto::time::timestamp(sent_at)),
    };
    let message = OutboxMessage::of(&event, message_id);
    outbox::enqueue(&mut tx, crate::SCHEMA, &message).await?;
    tx.commit().await?;
    state.relay.wake();
    tracing::warn!(message_id, account_id, "the provider still reports the message sent: delivery unknown");
    Ok(())
}
