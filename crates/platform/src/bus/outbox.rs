//! The transactional outbox (guarantee 1): a service writes its state change and the events it
//! must publish in one transaction; the relay publishes rows with `Nats-Msg-Id` = row id, waits
//! for JetStream's ack and only then deletes them. A crash between publish and delete re-publishes,
//! which JetStream's duplicate window and idempotent consumers absorb.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Row, Transaction};
use tokio::sync::Notify;

use messaging_proto::BusMessage;

use crate::bus::trace;
use crate::metrics::{self, CounterFamily, GaugeFamily};
use crate::shutdown::Shutdown;

/// An event to publish once the surrounding transaction commits.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// Deterministic where possible; becomes `Nats-Msg-Id`.
    pub id: String,
    pub subject: String,
    pub payload: Vec<u8>,
}

impl OutboxMessage {
    /// `message` on its own subject, under its dedupe id for `unique` ([`BusMessage::dedupe_id`]).
    pub fn of<M: BusMessage>(message: &M, unique: impl std::fmt::Display) -> Self {
        Self { id: message.dedupe_id(unique), subject: message.subject(), payload: message.payload() }
    }
}

/// Adds `message` to `schema`'s outbox inside the caller's transaction, with the current trace context.
/// A second enqueue of the same id is ignored. Inside [`collecting`] the row is kept until the
/// batch writes every row it collected at once ([`write_and_commit`]).
pub async fn enqueue(connection: &mut PgConnection, schema: &str, message: &OutboxMessage) -> sqlx::Result<()> {
    enqueue_with_headers(connection, schema, message, &[]).await
}

/// As [`enqueue`], with `extra` headers published beside the trace context.
pub async fn enqueue_with_headers(
    connection: &mut PgConnection,
    schema: &str,
    message: &OutboxMessage,
    extra: &[(&str, String)],
) -> sqlx::Result<()> {
    let mut headers = trace_headers();
    if let Some(map) = headers.as_object_mut() {
        for (name, value) in extra {
            map.insert((*name).to_owned(), serde_json::Value::String(value.clone()));
        }
    }
    let row = Collected { schema: schema.to_owned(), message: message.clone(), headers };
    if COLLECTED.try_with(|_| ()).is_ok() {
        COLLECTED.with(|rows| rows.borrow_mut().push(row));
        return Ok(());
    }
    write(connection, vec![row]).await
}

/// An outbox row enqueued inside [`collecting`], not written yet.
#[derive(Debug)]
pub struct Collected {
    pub(super) schema: String,
    pub(super) message: OutboxMessage,
    pub(super) headers: serde_json::Value,
}

impl Collected {
    /// A row of `schema`'s outbox carrying `message`, with the current trace context.
    pub fn new(schema: &str, message: OutboxMessage) -> Self {
        Self { schema: schema.to_owned(), message, headers: trace_headers() }
    }

    /// The event the row carries.
    pub fn message(&self) -> &OutboxMessage {
        &self.message
    }

    /// The headers stored with it (the trace context it was enqueued in).
    pub fn headers(&self) -> &serde_json::Value {
        &self.headers
    }
}

tokio::task_local! {
    static COLLECTED: RefCell<Vec<Collected>>;
}

/// Runs `work` (on this task) with every [`enqueue`] collected instead of written; returns its
/// output and the rows, in enqueue order, for [`write_and_commit`].
pub async fn collecting<F: Future>(work: F) -> (F::Output, Vec<Collected>) {
    COLLECTED
        .scope(RefCell::new(Vec::new()), async move {
            let output = work.await;
            (output, COLLECTED.with(|rows| rows.take()))
        })
        .await
}

/// Writes the rows collected in `tx` and commits it: how every collecting transaction ends.
pub async fn write_and_commit(mut tx: Transaction<'_, Postgres>, rows: Vec<Collected>) -> sqlx::Result<()> {
    write(&mut tx, rows).await?;
    tx.commit().await
}

/// Writes rows: one statement per schema, whatever their number.
pub(super) async fn write(connection: &mut PgConnection, rows: Vec<Collected>) -> sqlx::Result<()> {
    let mut by_schema: BTreeMap<String, Vec<Collected>> = BTreeMap::new();
    for row in rows {
        by_schema.entry(row.schema.clone()).or_default().push(row);
    }
    for (schema, rows) in by_schema {
        let ids: Vec<&str> = rows.iter().map(|r| r.message.id.as_str()).collect();
        let subjects: Vec<&str> = rows.iter().map(|r| r.message.subject.as_str()).collect();
        let payloads: Vec<&[u8]> = rows.iter().map(|r| r.message.payload.as_slice()).collect();
        let headers: Vec<&serde_json::Value> = rows.iter().map(|r| &r.headers).collect();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {schema}.outbox (id, subject, payload, headers)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::jsonb[]) ON CONFLICT (id) DO NOTHING"
        )))
        .bind(ids)
        .bind(subjects)
        .bind(payloads)
        .bind(headers)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// The trace context to store with an outbox row (its `headers`), so the relay's publish
/// continues the trace that enqueued it.
pub fn trace_headers() -> serde_json::Value {
    serde_json::to_value(trace::current_context_headers()).unwrap_or_default()
}

/// The headers a row is published with: those stored with it (trace context) and `Nats-Msg-Id`.
pub(super) fn nats_headers(id: &str, stored: serde_json::Value) -> async_nats::HeaderMap {
    let extra: BTreeMap<String, String> = serde_json::from_value(stored).unwrap_or_default();
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in &extra {
        headers.insert(name.as_str(), value.as_str());
    }
    headers.insert("Nats-Msg-Id", id);
    headers
}

/// How often the backlog gauge is refreshed.
const BACKLOG_REPORT: Duration = Duration::from_secs(5);

static BACKLOG: LazyLock<GaugeFamily> =
    LazyLock::new(|| metrics::gauge("outbox_backlog", "Rows committed to an outbox and not yet published, by schema"));

/// Publishes one schema's outbox. Woken after commits; also sweeps on an interval so rows left by
/// a crashed process or a NATS outage go out.
#[derive(Clone)]
pub struct Relay {
    pub(super) pool: PgPool,
    pub(super) jetstream: jetstream::Context,
    pub(super) schema: &'static str,
    wake: Arc<Notify>,
    sweep_interval: Duration,
    /// The largest message the broker takes (its `max_payload`).
    pub(super) max_payload: usize,
}

const BATCH: i64 = 500;

/// Room left in a message for its headers (trace context, `Nats-Msg-Id`) beside the payload.
pub(super) const HEADER_ROOM: usize = 4096;

static REJECTED: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "outbox_rejected",
        "Outbox rows that could never be published (too large), moved to <schema>.outbox_rejected, by schema",
    )
});

impl Relay {
    pub fn new(pool: PgPool, jetstream: jetstream::Context, schema: &'static str, max_payload: usize) -> Self {
        let sweep_interval = Duration::from_millis(500);
        Self { pool, jetstream, schema, wake: Arc::new(Notify::new()), sweep_interval, max_payload }
    }

    /// Call after committing a transaction that enqueued messages.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes until the outbox is empty or shutdown; returns when shutdown fires.
    pub async fn run(self, shutdown: Shutdown) {
        let mut failures = 0u32;
        let mut reported: Option<std::time::Instant> = None;
        loop {
            if reported.is_none_or(|at| at.elapsed() >= BACKLOG_REPORT) {
                if let Ok(rows) = self.backlog().await {
                    metrics::set(&BACKLOG, &[("schema", self.schema)], rows);
                }
                reported = Some(std::time::Instant::now());
            }
            match self.drain_once().await {
                Ok(published) if published as i64 == BATCH => continue,
                Ok(_) => failures = 0,
                Err(error) => {
                    failures += 1;
                    let level_error = failures > 20;
                    if level_error {
                        tracing::error!(schema = self.schema, error = %format!("{error:#}"), "outbox relay keeps failing");
                    } else {
                        tracing::warn!(schema = self.schema, error = %format!("{error:#}"), "outbox relay failed; will retry");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // One last attempt so events committed just before shutdown go out promptly.
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.drain_once()).await;
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.sweep_interval) => {}
            }
        }
    }

    /// Publishes one batch; returns how many rows left the outbox (published, or moved aside as
    /// never publishable). Rows are locked with SKIP LOCKED so
    /// several replicas can relay the same outbox.
    pub async fn drain_once(&self) -> anyhow::Result<usize> {
        let mut transaction = self.pool.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, subject, payload, headers FROM {}.outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
            self.schema
        )))
        .bind(BATCH)
        .fetch_all(&mut *transaction)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pending = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        let mut rejected = Vec::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let subject: String = row.try_get("subject")?;
            let payload: Vec<u8> = row.try_get("payload")?;
            if payload.len() + HEADER_ROOM > self.max_payload {
                let reason = format!(
                    "{} bytes: larger than the broker's largest message ({} bytes) allows",
                    payload.len(),
                    self.max_payload
                );
                tracing::error!(schema = self.schema, %id, %subject, %reason, "outbox row can never be published; moved aside");
                rejected.push((id, reason));
                continue;
            }
            let stored: serde_json::Value = row.try_get("headers")?;
            let headers = nats_headers(&id, stored);
            let ack = self
                .jetstream
                .publish_with_headers(subject, headers, Bytes::from(payload))
                .await
                .map_err(|e| anyhow::anyhow!("publishing outbox row {id}: {e}"))?;
            pending.push(ack);
            ids.push(id);
        }
        for ack in pending {
            tokio::time::timeout(Duration::from_secs(10), ack)
                .await
                .map_err(|_| anyhow::anyhow!("JetStream ack timed out"))?
                .map_err(|e| anyhow::anyhow!("JetStream refused an outbox row: {e}"))?;
        }
        if !rejected.is_empty() {
            let (rejected_ids, reasons): (Vec<String>, Vec<String>) = rejected.into_iter().unzip();
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {schema}.outbox_rejected (id, subject, payload, headers, reason)
                 SELECT o.id, o.subject, o.payload, o.headers, r.reason
                 FROM {schema}.outbox o JOIN UNNEST($1::text[], $2::text[]) AS r (id, reason) ON r.id = o.id
                 ON CONFLICT (id) DO NOTHING",
                schema = self.schema
            )))
            .bind(&rejected_ids)
            .bind(&reasons)
            .execute(&mut *transaction)
            .await?;
            metrics::add(&REJECTED, &[("schema", self.schema)], rejected_ids.len() as u64);
            ids.extend(rejected_ids);
        }
        // Losing this delete to a crash only re-publishes rows JetStream already holds, which its
        // duplicate window and idempotent consumers absorb (as for a crash before the delete), so
        // the commit need not wait for the WAL to reach disk.
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *transaction).await?;
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {}.outbox WHERE id IN (SELECT unnest($1::text[]))",
            self.schema
        )))
        .bind(&ids)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        tracing::debug!(schema = self.schema, published = ids.len(), "outbox relayed");
        Ok(ids.len())
    }

    /// Rows waiting to be published.
    pub async fn backlog(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {}.outbox", self.schema)))
            .fetch_one(&self.pool)
            .await
    }
}
