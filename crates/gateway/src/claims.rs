//! Claim before send. A worker inserts the message's row (`claimed`, with a lease) before calling
//! the provider, settles it (`sent` / `failed` / `unknown`), and publishes the `attempt` event once
//! that commits, before the command is acked. A redelivered command finds the row, never calls the
//! provider blindly, and publishes the event of a settled row again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_domain::Channel;
use messaging_platform::bus::outbox::{Collected, OutboxMessage};
use messaging_platform::bus::{Outcome, Relay};
use messaging_proto::bus::{AttemptOutcome, SendAttempt};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::batched::{self, ClaimRow, SettleRow};
use crate::group::Group;

/// How long a send our configuration prevents waits between tries ([`Claims::release_misconfigured`]).
pub const MISCONFIGURED_RETRY: Duration = Duration::from_secs(60);

/// What the claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This worker owns the send.
    Won,
    /// Already settled earlier: nothing to do.
    Settled,
    /// Another worker holds a live lease.
    Busy { retry_in: Duration },
    /// A worker claimed it and vanished (its lease expired) without settling.
    Orphaned { claimed_at: DateTime<Utc> },
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Sent {
        provider_id: String,
    },
    Failed {
        reason: String,
        code: String,
        text: String,
    },
    /// The provider may or may not have the message; reconciliation decides.
    Unknown {
        detail: String,
    },
}

/// A claim waiting for reconciliation.
#[derive(Debug, Clone)]
pub struct OpenAttempt {
    pub message_id: String,
    pub account_id: String,
    pub recipient: String,
    pub sender: String,
    pub body_digest: String,
    pub claimed_at: DateTime<Utc>,
}

/// One gateway's attempts table.
#[derive(Clone)]
pub struct Claims {
    pool: PgPool,
    relay: Relay,
    schema: &'static str,
    channel: Channel,
    lease: Duration,
    /// Claims and settlements are group-committed: many in one statement under load (the
    /// settler publishes the `attempt` events, or wakes the outbox relay for those it enqueued).
    claimer: Group<ClaimRow, bool>,
    settler: Group<SettleRow, bool>,
}

/// The most claims or settlements one statement takes.
const GROUP: usize = 64;

/// Group statements at once, each kind.
const GROUP_IN_FLIGHT: usize = 2;

/// The digest stored instead of the body, to recognise the message in the provider's list.
pub fn body_digest(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

impl Claims {
    /// The table of `schema`; starts the group-commit tasks (inside a Tokio runtime).
    pub fn new(pool: PgPool, relay: Relay, schema: &'static str, channel: Channel, lease: Duration) -> Self {
        let lease_secs = lease.as_secs_f64();
        let claimer = Group::start(GROUP, GROUP_IN_FLIGHT, {
            let pool = pool.clone();
            move |rows| {
                let pool = pool.clone();
                async move { batched::claim_all(&pool, schema, lease_secs, rows).await }
            }
        });
        let settler = Group::start(GROUP, GROUP_IN_FLIGHT, {
            let (pool, relay) = (pool.clone(), relay.clone());
            move |rows: Vec<SettleRow>| {
                let (pool, relay) = (pool.clone(), relay.clone());
                async move {
                    let applied = batched::settle_all(&pool, schema, &rows).await?;
                    let mut publish = Vec::new();
                    for (row, applied) in rows.into_iter().zip(&applied) {
                        match (*applied, row.relayed) {
                            (true, true) => relay.wake(),
                            (true, false) => publish.push(row.event),
                            (false, _) => {}
                        }
                    }
                    relay.publish_committed(publish).await?;
                    Ok(applied)
                }
            }
        });
        Self { pool, relay, schema, channel, lease, claimer, settler }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Claims `message_id` for this worker, or reports who has it.
    pub async fn claim(
        &self,
        message_id: &str,
        account_id: &str,
        recipient: &str,
        sender: &str,
        body: &str,
    ) -> sqlx::Result<Claim> {
        let row = ClaimRow {
            message_id: message_id.to_owned(),
            account_id: account_id.to_owned(),
            recipient: recipient.to_owned(),
            sender: sender.to_owned(),
            body_digest: body_digest(body),
        };
        if self.claimer.submit(row).await? {
            return Ok(Claim::Won);
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT state, claimed_at, GREATEST(EXTRACT(EPOCH FROM lease_until - now()), 0)::float8 AS remaining
             FROM {}.attempts WHERE message_id = $1",
            self.schema
        )))
        .bind(message_id)
        .fetch_one(&self.pool)
        .await?;
        let state: String = row.try_get("state")?;
        let remaining: f64 = row.try_get("remaining")?;
        Ok(match state.as_str() {
            "claimed" if remaining > 0.0 => {
                Claim::Busy { retry_in: Duration::from_secs_f64(remaining.min(60.0)) + Duration::from_millis(100) }
            }
            "claimed" => Claim::Orphaned { claimed_at: row.try_get("claimed_at")? },
            _ => Claim::Settled,
        })
    }

    /// Takes over an orphaned claim with a fresh lease; false if someone else did first.
    pub async fn take_over(&self, message_id: &str) -> sqlx::Result<bool> {
        let updated = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {}.attempts SET lease_until = now() + make_interval(secs => $2), updated_at = now()
             WHERE message_id = $1 AND state = 'claimed' AND lease_until <= now()",
            self.schema
        )))
        .bind(message_id)
        .bind(self.lease.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Gives the claim back when the provider certainly did not get the message (refused connection, 429).
    pub async fn release(&self, message_id: &str) -> sqlx::Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {}.attempts WHERE message_id = $1 AND state = 'claimed'",
            self.schema
        )))
        .bind(message_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A send our own configuration prevents (an untrusted certificate, refused credentials):
    /// nothing reached the provider, so the claim is released, an operator is told, and the
    /// command waits [`MISCONFIGURED_RETRY`] before it tries again (it neither spins nor is lost).
    pub async fn release_misconfigured(&self, message_id: &str, detail: &str) -> sqlx::Result<Outcome> {
        self.release(message_id).await?;
        tracing::error!(message_id, detail, "cannot reach the provider until the configuration is fixed");
        Ok(Outcome::Retry { delay: MISCONFIGURED_RETRY, reason: format!("configuration: {detail}") })
    }

    /// Expires the lease now, so a later delivery may take the claim over again.
    pub async fn release_lease(&self, message_id: &str) -> sqlx::Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {}.attempts SET lease_until = now() WHERE message_id = $1 AND state = 'claimed'",
            self.schema
        )))
        .bind(message_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how the send to `recipient` ended, for the command being handled, and publishes the
    /// `attempt` event once that commits (a statement shared with other settlements waiting
    /// then); a redelivered command publishes it again ([`Claims::publish_settled`]). Only a
    /// `claimed` or `unknown` row can be settled; returns false if it already was.
    pub async fn settle(
        &self,
        message_id: &str,
        account_id: &str,
        recipient: &str,
        settlement: &Settlement,
    ) -> sqlx::Result<bool> {
        self.submit(message_id, account_id, recipient, settlement, false).await
    }

    /// As [`Claims::settle`], for a settlement no command prompted (reconciliation): the event is
    /// enqueued in the outbox by the same statement, since nothing would publish it again.
    pub async fn settle_relayed(
        &self,
        message_id: &str,
        account_id: &str,
        recipient: &str,
        settlement: &Settlement,
    ) -> sqlx::Result<bool> {
        self.submit(message_id, account_id, recipient, settlement, true).await
    }

    async fn submit(
        &self,
        message_id: &str,
        account_id: &str,
        recipient: &str,
        settlement: &Settlement,
        relayed: bool,
    ) -> sqlx::Result<bool> {
        let (state, provider_id, reason, code, text) = match settlement {
            Settlement::Sent { provider_id } => ("sent", Some(provider_id.as_str()), None, None, None),
            Settlement::Failed { reason, code, text } => {
                ("failed", None, Some(reason.as_str()), Some(code.as_str()), Some(text.as_str()))
            }
            Settlement::Unknown { detail } => ("unknown", None, None, None, Some(detail.as_str())),
        };
        let event = attempt_event(message_id, account_id, recipient, self.channel, settlement);
        let owned = |value: Option<&str>| value.map(str::to_owned);
        self.settler
            .submit(SettleRow {
                message_id: message_id.to_owned(),
                state,
                provider_id: owned(provider_id),
                reason: owned(reason),
                code: owned(code),
                text: owned(text),
                // The caller's trace, carried by the event.
                event: Collected::new(self.schema, event),
                relayed,
            })
            .await
    }

    /// Publishes again the `attempt` event of a message already settled, for a redelivered
    /// command: the first publish may have been lost to a crash after the settlement committed.
    /// JetStream's duplicate window, or delivery-status's idempotence, absorbs a repeat.
    pub async fn publish_settled(&self, message_id: &str) -> sqlx::Result<()> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT account_id, recipient, state, provider_id, failure_reason, error_code, error_text
             FROM {}.attempts WHERE message_id = $1",
            self.schema
        )))
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(()) };
        let text = |column: &str| -> sqlx::Result<String> {
            Ok(row.try_get::<Option<String>, _>(column)?.unwrap_or_default())
        };
        let settlement = match row.try_get::<&str, _>("state")? {
            "sent" => Settlement::Sent { provider_id: text("provider_id")? },
            "failed" => Settlement::Failed {
                reason: text("failure_reason")?,
                code: text("error_code")?,
                text: text("error_text")?,
            },
            "unknown" => Settlement::Unknown { detail: text("error_text")? },
            _ => return Ok(()),
        };
        let (account_id, recipient): (String, String) = (row.try_get("account_id")?, row.try_get("recipient")?);
        let event = attempt_event(message_id, &account_id, &recipient, self.channel, &settlement);
        self.relay.publish_committed(vec![Collected::new(self.schema, event)]).await
    }

    /// Attempts left `unknown` for longer than `min_age`, oldest first.
    /// Which of `provider_ids` the attempts of messages other than `except` already hold.
    pub async fn held_elsewhere(&self, provider_ids: &[String], except: &str) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT provider_id FROM {}.attempts WHERE provider_id = ANY($1) AND message_id <> $2",
            self.schema
        )))
        .bind(provider_ids)
        .bind(except)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn open_attempts(&self, min_age: Duration, limit: i64) -> sqlx::Result<Vec<OpenAttempt>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT message_id, account_id, recipient, sender, body_digest, claimed_at FROM {}.attempts
             WHERE state = 'unknown' AND updated_at < now() - make_interval(secs => $1)
             ORDER BY claimed_at LIMIT $2",
            self.schema
        )))
        .bind(min_age.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OpenAttempt {
                    message_id: row.try_get("message_id")?,
                    account_id: row.try_get("account_id")?,
                    recipient: row.try_get("recipient")?,
                    sender: row.try_get("sender")?,
                    body_digest: row.try_get("body_digest")?,
                    claimed_at: row.try_get("claimed_at")?,
                })
            })
            .collect()
    }
}

/// The `message.<account>.attempt` event for delivery-status.
pub fn attempt_event(
    message_id: &str,
    account_id: &str,
    recipient: &str,
    channel: Channel,
    settlement: &Settlement,
) -> OutboxMessage {
    let mut event = SendAttempt {
        message_id: message_id.to_owned(),
        account_id: account_id.to_owned(),
        channel: channel.to_proto(),
        to: recipient.to_owned(),
        occurred_at: Some(messaging_proto::time::now()),
        ..Default::default()
    };
    let outcome = match settlement {
        Settlement::Sent { provider_id } => {
            event.provider_id = provider_id.clone();
            AttemptOutcome::Sent
        }
        Settlement::Failed { reason, code, text } => {
            event.failure_reason = reason.clone();
            event.provider_error_code = code.clone();
            event.provider_error_text = text.clone();
            AttemptOutcome::Failed
        }
        Settlement::Unknown { detail } => {
            event.provider_error_text = detail.clone();
            AttemptOutcome::Unknown
        }
    };
    event.outcome = outcome as i32;
    let tag = match outcome {
        AttemptOutcome::Sent => "sent",
        AttemptOutcome::Failed => "failed",
        _ => "unknown",
    };
    OutboxMessage::of(&event, format_args!("{message_id}:{tag}"))
}
