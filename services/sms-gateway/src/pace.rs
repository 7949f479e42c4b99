//! The per-sending-number rate limit (default 1 segment per second), correct across any number of
//! gateway processes: each message reserves its segments on the number's virtual schedule in
//! Postgres, in one statement, and waits for its slot. A slot further off than `max_wait` is kept
//! for the message, which goes back to the queue until then: waiting costs one redelivery, never
//! a dead letter, and a backlog on one number does not hold the workers other numbers need.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// Segments per second for each sending number.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// For numbers not listed below; 0 turns the limit off.
    pub segments_per_second: f64,
    /// Per-number overrides, by E.164 number ("+15125550100" = 10.0).
    pub per_number: BTreeMap<String, f64>,
    /// The longest a send waits for its slot while holding its message; a later slot is kept and
    /// the message goes back to the queue until then.
    pub max_wait_ms: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { segments_per_second: 1.0, per_number: BTreeMap::new(), max_wait_ms: 2_000 }
    }
}

/// What a reservation got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// Send after waiting this long.
    After(Duration),
    /// The slot is this far off: come back then.
    Later(Duration),
}

/// The shared pace of every sending number.
#[derive(Clone)]
pub struct Pace {
    pool: PgPool,
    config: RateLimitConfig,
}

impl Pace {
    pub fn new(pool: PgPool, config: RateLimitConfig) -> Self {
        Self { pool, config }
    }

    fn rate(&self, sender: &str) -> f64 {
        self.config.per_number.get(sender).copied().unwrap_or(self.config.segments_per_second)
    }

    /// The slot for `message_id`: the one it reserved before, or a new one for `segments` on
    /// `sender`'s schedule. A slot further off than `max_wait` is kept for the message's return.
    pub async fn reserve(&self, message_id: &str, sender: &str, segments: u32) -> sqlx::Result<Slot> {
        let rate = self.rate(sender);
        if rate <= 0.0 {
            return Ok(Slot::After(Duration::ZERO));
        }
        let cost_secs = f64::from(segments.max(1)) / rate;
        // One statement: reuse the message's slot, or move the number's schedule on and record the
        // new slot. Returns seconds until the slot starts.
        let wait: f64 = sqlx::query_scalar(
            "WITH previous AS (
                 SELECT slot_at FROM sms_gateway.pace_reservations WHERE message_id = $1
             ), moved AS (
                 INSERT INTO sms_gateway.sender_pace AS p (sender, next_at)
                 SELECT $2, now() + make_interval(secs => $3) WHERE NOT EXISTS (SELECT 1 FROM previous)
                 ON CONFLICT (sender) DO UPDATE SET next_at = GREATEST(p.next_at, now()) + make_interval(secs => $3)
                 RETURNING next_at - make_interval(secs => $3) AS slot_at
             ), recorded AS (
                 INSERT INTO sms_gateway.pace_reservations (message_id, sender, slot_at)
                 SELECT $1, $2, slot_at FROM moved
                 ON CONFLICT (message_id) DO NOTHING
             )
             SELECT GREATEST(EXTRACT(EPOCH FROM (slot_at - now())), 0)::float8
             FROM (SELECT slot_at FROM previous UNION ALL SELECT slot_at FROM moved) AS slot LIMIT 1",
        )
        .bind(message_id)
        .bind(sender)
        .bind(cost_secs)
        .fetch_one(&self.pool)
        .await?;
        let wait = Duration::from_secs_f64(wait);
        Ok(if wait <= Duration::from_millis(self.config.max_wait_ms) { Slot::After(wait) } else { Slot::Later(wait) })
    }

    /// Forgets slots a day past: their messages were settled elsewhere (a duplicate delivery, a
    /// claim found already settled) and will not come back for them.
    pub async fn forget_stale(&self) -> sqlx::Result<u64> {
        let forgotten =
            sqlx::query("DELETE FROM sms_gateway.pace_reservations WHERE slot_at < now() - interval '1 day'")
                .execute(&self.pool)
                .await?;
        Ok(forgotten.rows_affected())
    }

    /// Forgets the message's slot once its send was attempted.
    pub async fn release(&self, message_id: &str, sender: &str) -> sqlx::Result<()> {
        if self.rate(sender) <= 0.0 {
            return Ok(());
        }
        sqlx::query("DELETE FROM sms_gateway.pace_reservations WHERE message_id = $1")
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
