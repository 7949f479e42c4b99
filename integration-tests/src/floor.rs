//! The floor `make bench` compares the system with: the broker and database operations the
//! system did per job event — counted off JetStream and `pg_stat_database` during a run — done
//! again by one minimal program with no services, as fast as it can.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt as _;
use tokio::task::JoinSet;

/// Broker and database counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Messages stored in any stream.
    pub published: u64,
    /// Deliveries to any consumer, redeliveries included.
    pub delivered: u64,
    pub commits: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl Counters {
    /// Reads the counters now. Postgres publishes a backend's statistics up to ten seconds after it
    /// goes idle, so read them only once the system has been idle that long.
    pub async fn read(jetstream: &jetstream::Context, pool: &sqlx::PgPool) -> anyhow::Result<Self> {
        let mut counters = Self::default();
        let mut streams = jetstream.streams();
        while let Some(info) = streams.next().await {
            let info = info?;
            counters.published += info.state.last_sequence;
            let stream = jetstream.get_stream(&info.config.name).await?;
            let mut consumers = stream.consumers();
            while let Some(consumer) = consumers.next().await {
                counters.delivered += consumer?.delivered.consumer_sequence;
            }
        }
        let (commits, inserted, updated, deleted): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database \
             WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await?;
        counters.commits = commits as u64;
        counters.inserted = inserted as u64;
        counters.updated = updated as u64;
        counters.deleted = deleted as u64;
        Ok(counters)
    }

    /// What happened between `earlier` and `self`, per event for `events` events.
    pub fn per_event(&self, earlier: &Self, events: usize) -> Ops {
        let per = |now: u64, then: u64| now.saturating_sub(then) as f64 / events.max(1) as f64;
        Ops {
            publishes: per(self.published, earlier.published),
            deliveries: per(self.delivered, earlier.delivered),
            commits: per(self.commits, earlier.commits),
            inserts: per(self.inserted, earlier.inserted),
            updates: per(self.updated, earlier.updated),
            deletes: per(self.deleted, earlier.deleted),
        }
    }
}

/// Operations per job event.
#[derive(Debug, Clone, Copy)]
pub struct Ops {
    pub publishes: f64,
    pub deliveries: f64,
    pub commits: f64,
    pub inserts: f64,
    pub updates: f64,
    pub deletes: f64,
}

/// How many of a fractional per-event count event `n` does, so `n` events do the total.
fn share(per_event: f64, n: usize) -> usize {
    ((n + 1) as f64 * per_event).floor() as usize - (n as f64 * per_event).floor() as usize
}

const PAYLOAD: usize = 400;

/// Does `ops` for each of `events` events with `concurrency` events in flight: the database work
/// in `ops.commits` transactions per event (row writes spread over them, the rest single-row
/// reads), the publishes acknowledged one by one, and as many pull consumers as there are
/// deliveries per publish, each acknowledging every message. Returns events per second.
pub async fn run(
    jetstream: &jetstream::Context,
    pool: &sqlx::PgPool,
    ops: Ops,
    events: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    sqlx::query("DROP SCHEMA IF EXISTS floor CASCADE").execute(pool).await?;
    sqlx::query("CREATE SCHEMA floor").execute(pool).await?;
    sqlx::query("CREATE TABLE floor.rows (id bigserial PRIMARY KEY, event bigint NOT NULL, body text NOT NULL)")
        .execute(pool)
        .await?;
    sqlx::query("CREATE INDEX ON floor.rows (event, id)").execute(pool).await?;
    let _ = jetstream.delete_stream("FLOOR").await;
    let stream = jetstream
        .create_stream(stream::Config {
            name: "FLOOR".into(),
            subjects: vec!["floor.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let consumer_count = (ops.deliveries / ops.publishes.max(f64::MIN_POSITIVE)).round().max(1.0) as usize;
    let total_publishes: usize = (0..events).map(|n| share(ops.publishes, n)).sum();
    let mut consumers = JoinSet::new();
    for c in 0..consumer_count {
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(format!("floor-{c}")),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await?;
        consumers.spawn(async move {
            let mut messages = consumer.messages().await?;
            let mut seen = 0;
            while seen < total_publishes {
                let Some(message) = messages.next().await else { break };
                message.map_err(|e| anyhow::anyhow!("{e}"))?.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                seen += 1;
            }
            anyhow::Ok(())
        });
    }

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (jetstream, pool, next) = (jetstream.clone(), pool.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    return anyhow::Ok(());
                }
                one_event(&jetstream, &pool, ops, n).await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    while let Some(done) = consumers.join_next().await {
        done??;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    jetstream.delete_stream("FLOOR").await?;
    sqlx::query("DROP SCHEMA floor CASCADE").execute(pool).await?;
    Ok(rate)
}

async fn one_event(jetstream: &jetstream::Context, pool: &sqlx::PgPool, ops: Ops, n: usize) -> anyhow::Result<()> {
    let body = "x".repeat(PAYLOAD);
    let transactions = share(ops.commits, n).max(1);
    let (mut inserts, mut updates, mut deletes) = (share(ops.inserts, n), share(ops.updates, n), share(ops.deletes, n));
    for t in 0..transactions {
        let left = transactions - t;
        let (i, u, d) = (inserts.div_ceil(left), updates.div_ceil(left), deletes.div_ceil(left));
        (inserts, updates, deletes) = (inserts - i, updates - u, deletes - d);
        let mut tx = pool.begin().await?;
        if i + u + d == 0 {
            sqlx::query("SELECT id FROM floor.rows WHERE id = $1").bind(n as i64).fetch_optional(&mut *tx).await?;
        }
        for _ in 0..i {
            sqlx::query("INSERT INTO floor.rows (event, body) VALUES ($1, $2)")
                .bind(n as i64)
                .bind(&body)
                .execute(&mut *tx)
                .await?;
        }
        for _ in 0..u {
            sqlx::query("UPDATE floor.rows SET body = $2 WHERE id = (SELECT max(id) FROM floor.rows WHERE event = $1)")
                .bind(n as i64)
                .bind(&body)
                .execute(&mut *tx)
                .await?;
        }
        for _ in 0..d {
            sqlx::query("DELETE FROM floor.rows WHERE id = (SELECT min(id) FROM floor.rows WHERE event = $1)")
                .bind(n as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    for p in 0..share(ops.publishes, n) {
        let ack = jetstream.publish(format!("floor.{n}.{p}"), body.clone().into()).await?;
        ack.await?;
    }
    Ok(())
}

/// A pause long enough for every Postgres backend to publish its statistics.
pub const STATS_SETTLE: Duration = Duration::from_secs(11);
