//! The change log behind WatchFeed. Every write to a feed row records `(xid, seq)` in
//! `feed.changes` and notifies `feed_changes` with the account. A watcher reads the log in
//! `(xid, seq)` order, only from transactions older than every one still running (the snapshot's
//! xmin), so a transaction that commits late can never fall behind a cursor already handed out.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use messaging_platform::Shutdown;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::broadcast;

use crate::store::{self, FeedRow};

const CHANNEL: &str = "feed_changes";

/// A position in the change log, as handed to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchCursor {
    pub xid: u64,
    pub seq: i64,
    /// When the cursor was handed out; one older than the log's retention has expired (changes
    /// after it may have been pruned).
    pub at: DateTime<Utc>,
}

impl WatchCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("w1|{}|{}|{}", self.xid, self.seq, self.at.timestamp_micros()))
    }

    pub fn decode(token: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let mut parts = raw.split('|');
        if parts.next()? != "w1" {
            return None;
        }
        let xid = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let at = DateTime::from_timestamp_micros(parts.next()?.parse().ok()?)?;
        parts.next().is_none().then_some(Self { xid, seq, at })
    }
}

/// Records that `message_id` changed, inside the transaction that changed it.
pub async fn record(tx: &mut PgConnection, account_id: &str, message_id: &str) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH changed AS (SELECT $1::text AS account_id, $2::text AS message_id), {}",
        record_from("changed")
    )))
    .bind(account_id)
    .bind(message_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// The tail of a statement whose CTE `source` returns `(account_id, message_id)` of the rows it
/// changed: records each in the change log and notifies its account's watchers when the
/// transaction commits, in the same round trip as the change itself.
pub fn record_from(source: &str) -> String {
    format!(
        "recorded AS (INSERT INTO feed.changes (account_id, message_id) SELECT account_id, message_id FROM {source})
         SELECT pg_notify('{CHANNEL}', account_id) FROM {source}"
    )
}

/// The cursor for "from now on": nothing committed so far, everything still to come.
pub async fn now(pool: &PgPool) -> sqlx::Result<WatchCursor> {
    let xid: String =
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetch_one(pool).await?;
    Ok(WatchCursor { xid: xid.parse().unwrap_or(0), seq: 0, at: Utc::now() })
}

/// Changes after `cursor`, oldest first, each with the row as it is now. A change to a row whose
/// own event has not arrived yet is skipped (its cursor still advances).
pub async fn after(
    pool: &PgPool,
    account_id: &str,
    cursor: &WatchCursor,
    limit: i64,
) -> sqlx::Result<Vec<(WatchCursor, Option<FeedRow>)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT c.xid::text AS change_xid, c.seq AS change_seq, c.changed_at, {}
         FROM feed.changes c JOIN feed.messages USING (account_id, message_id)
         WHERE c.account_id = $1 AND (c.xid, c.seq) > ($2::text::xid8, $3)
           AND c.xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY c.xid, c.seq LIMIT $4",
        store::COLUMNS
    )))
    .bind(account_id)
    .bind(cursor.xid.to_string())
    .bind(cursor.seq)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let xid: String = row.try_get("change_xid")?;
            let next = WatchCursor {
                xid: xid.parse().unwrap_or(0),
                seq: row.try_get("change_seq")?,
                at: row.try_get("changed_at")?,
            };
            let direction: Option<String> = row.try_get("direction")?;
            Ok((next, direction.is_some().then(|| store::read(row)).transpose()?))
        })
        .collect()
}

/// Deletes changes older than `retention`; returns how many.
pub async fn prune(pool: &PgPool, retention: Duration) -> sqlx::Result<u64> {
    let cutoff = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(1));
    Ok(sqlx::query("DELETE FROM feed.changes WHERE changed_at < $1").bind(cutoff).execute(pool).await?.rows_affected())
}

/// Listens for change notifications and fans them out by account to this process's watchers.
/// Missed notifications only delay a watcher until its next poll.
pub async fn listen(pool: PgPool, signals: broadcast::Sender<String>, shutdown: Shutdown) {
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "change listener cannot connect; retrying");
                tokio::select! { () = shutdown.cancelled() => return, () = tokio::time::sleep(Duration::from_secs(1)) => continue }
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "change listener cannot listen; retrying");
            tokio::select! { () = shutdown.cancelled() => return, () = tokio::time::sleep(Duration::from_secs(1)) => continue }
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                received = listener.recv() => match received {
                    Ok(notification) => { let _ = signals.send(notification.payload().to_owned()); }
                    Err(error) => {
                        tracing::warn!(%error, "change listener lost its connection; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = WatchCursor {
            xid: 7_000_123,
            seq: 42,
            at: DateTime::from_timestamp_micros(1_800_000_000_123_456).expect("a valid time"),
        };
        assert_eq!(WatchCursor::decode(&cursor.encode()), Some(cursor));
        for garbage in ["", "x", "w1|1|2", "dzF8MXwy", "!!!"] {
            assert_eq!(WatchCursor::decode(garbage), None, "{garbage}");
        }
    }
}
