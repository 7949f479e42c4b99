//! The per-sending-number rate limit (default 1 segment per second), correct across any number of
//! gateway processes: each send reserves its segments on the number's virtual schedule in
//! Postgres with one conditional upsert, then waits for its slot; a slot further off than
//! `max_wait` is not taken, and the command is retried when the schedule has room.

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
    /// The longest a send waits for its slot while holding its message; beyond it, it retries later.
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
    /// The schedule is full for now: try again in this long.
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

    /// Reserves `segments` on `sender`'s schedule.
    pub async fn reserve(&self, sender: &str, segments: u32) -> sqlx::Result<Slot> {
        let rate = self.rate(sender);
        if rate <= 0.0 {
            return Ok(Slot::After(Duration::ZERO));
        }
        let cost_secs = f64::from(segments.max(1)) / rate;
        let max_wait_secs = self.config.max_wait_ms as f64 / 1000.0;
        // The slot starts at the later of now and the schedule's end; it is taken only if it starts
        // within max_wait. Returns the wait before the slot, or nothing when the schedule is full.
        let wait: Option<f64> = sqlx::query_scalar(
            "INSERT INTO sms_gateway.sender_pace AS p (sender, next_at) VALUES ($1, now() + make_interval(secs => $2))
             ON CONFLICT (sender) DO UPDATE SET next_at = GREATEST(p.next_at, now()) + make_interval(secs => $2)
             WHERE p.next_at <= now() + make_interval(secs => $3)
             RETURNING GREATEST(EXTRACT(EPOCH FROM (next_at - now())) - $2, 0)::float8",
        )
        .bind(sender)
        .bind(cost_secs)
        .bind(max_wait_secs)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(wait) = wait {
            return Ok(Slot::After(Duration::from_secs_f64(wait)));
        }
        let full_for: f64 = sqlx::query_scalar(
            "SELECT GREATEST(EXTRACT(EPOCH FROM (next_at - now())) - $2, 0)::float8 FROM sms_gateway.sender_pace WHERE sender = $1",
        )
        .bind(sender)
        .bind(max_wait_secs)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0.0);
        Ok(Slot::Later(Duration::from_secs_f64(full_for) + Duration::from_millis(50)))
    }
}
