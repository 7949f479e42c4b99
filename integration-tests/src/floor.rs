//! The floor `make bench` compares the system with: the least work the contracts require to turn a
//! job event into one SMS whose `sent` and `delivered` reports are recorded, done by one minimal
//! program as a good engineer would batch it — on the same broker, database, simulator and
//! durability settings as the system under test.
//!
//! Per event: the job event pulled from JetStream and acknowledged after the commit that records
//! its message (the claim that must precede the provider call), the provider call, the provider's
//! id recorded, and each signed status callback verified and recorded (forward only), answered
//! after its commit with one NOTIFY per transaction for live readers. Every database step is one
//! statement over arrays per batch; provider calls run concurrently. Nothing is published beyond
//! the events themselves.

mod callbacks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::{FutureExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use crate::load::{Load, publish_paced_on};
use crate::stack::{TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN};

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
    /// Statements run (round trips), when pg_stat_statements is loaded (`BENCH_STATEMENTS=1`).
    pub statements: Option<u64>,
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
        counters.statements = sqlx::query_scalar::<_, i64>("SELECT sum(calls)::int8 FROM pg_stat_statements")
            .fetch_one(pool)
            .await
            .ok()
            .map(|calls| calls as u64);
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
            statements: self.statements.zip(earlier.statements).map(|(now, then)| per(now, then)),
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
    pub statements: Option<f64>,
}

impl std::fmt::Display for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} publishes, {:.2} deliveries, {:.2} commits, {:.2} inserts, {:.2} updates, {:.2} deletes",
            self.publishes, self.deliveries, self.commits, self.inserts, self.updates, self.deletes
        )?;
        match self.statements {
            Some(statements) => write!(f, ", {statements:.2} statements"),
            None => Ok(()),
        }
    }
}

/// A pause long enough for every Postgres backend to publish its statistics.
pub const STATS_SETTLE: Duration = Duration::from_secs(11);

/// The most rows one statement takes.
const BATCH: usize = 64;
/// Provider calls in flight (the bench's sms-gateway concurrency).
pub const PROVIDER_CONCURRENCY: usize = 256;

const SCHEMA: &str = "
CREATE SCHEMA floor;
CREATE TABLE floor.messages (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    account_id text NOT NULL,
    recipient text NOT NULL,
    sender text NOT NULL,
    body text NOT NULL,
    provider_id text UNIQUE,
    status text NOT NULL,
    rank int NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)";

/// Runs the floor over events `first..first + events` of `load` (published first, untimed) and
/// returns events per second from the first pull to the last `delivered` recorded.
pub async fn run(
    jetstream: &jetstream::Context,
    pool: &sqlx::PgPool,
    sim_port: u16,
    load: &Load,
    first: usize,
    events: usize,
) -> anyhow::Result<f64> {
    sqlx::query("DROP SCHEMA IF EXISTS floor CASCADE").execute(pool).await?;
    sqlx::raw_sql(SCHEMA).execute(pool).await?;
    let _ = jetstream.delete_stream("FLOOR").await;
    let stream = jetstream
        .create_stream(stream::Config {
            name: "FLOOR".into(),
            subjects: vec!["floor.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    publish(jetstream, load, first, events).await?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("floor".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 4096,
            ..Default::default()
        })
        .await?;

    let (delivered_tx, mut delivered_rx) = mpsc::unbounded_channel();
    let callbacks = callbacks::serve(pool.clone(), delivered_tx).await?;
    let started = Instant::now();
    let consuming = tokio::spawn(consume(consumer, pool.clone(), sim_port, callbacks.url.clone()));
    let mut done = 0;
    while done < events {
        match tokio::time::timeout(Duration::from_secs(60), delivered_rx.recv()).await {
            Ok(Some(count)) => done += count,
            _ => anyhow::bail!("the floor stalled at {done} of {events} delivered"),
        }
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    consuming.abort();
    callbacks.stop();
    jetstream.delete_stream("FLOOR").await?;
    sqlx::query("DROP SCHEMA floor CASCADE").execute(pool).await?;
    Ok(rate)
}

/// The events, on `floor.<account>` (where the system's ingest does not read them), at once.
async fn publish(jetstream: &jetstream::Context, load: &Load, first: usize, events: usize) -> anyhow::Result<()> {
    let on_floor = |subject: &str| format!("floor.{}", subject.split('.').nth(1).unwrap_or("none"));
    let published = publish_paced_on(jetstream, load, first, first + events, f64::INFINITY, on_floor).await?;
    let acknowledged = published.acknowledged;
    anyhow::ensure!(acknowledged == events, "the broker acknowledged {acknowledged} of {events} floor events");
    Ok(())
}

/// A message to send: its row id, recipient, sender and body.
type Claimed = (i64, String, String, String);

/// Pulls events in batches (whatever has arrived, up to [`BATCH`]), records their messages in one
/// statement, acknowledges them, then calls the provider for each, [`PROVIDER_CONCURRENCY`] at once.
async fn consume(consumer: jetstream::consumer::PullConsumer, pool: sqlx::PgPool, sim_port: u16, callback: String) {
    let Ok(mut messages) = consumer.messages().await else { return };
    let (settle_tx, settle_rx) = mpsc::unbounded_channel();
    tokio::spawn(settle(pool.clone(), settle_rx));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{sim_port}/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json");
    let permits = Arc::new(Semaphore::new(PROVIDER_CONCURRENCY));
    while let Some(Ok(message)) = messages.next().await {
        let mut batch = vec![message];
        while batch.len() < BATCH {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                _ => break,
            }
        }
        let Ok(claimed) = claim(&pool, &batch).await else { continue };
        for message in &batch {
            let _ = message.ack().await;
        }
        for (id, to, from, body) in claimed {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let (http, url, callback, settle_tx) = (http.clone(), url.clone(), callback.clone(), settle_tx.clone());
            tokio::spawn(async move {
                let form = [("To", to), ("From", from), ("Body", body), ("StatusCallback", callback)];
                let sent = http.post(url).basic_auth(TWILIO_ACCOUNT_SID, Some(TWILIO_AUTH_TOKEN)).form(&form).send();
                if let Ok(response) = sent.await
                    && let Ok(created) = response.json::<Value>().await
                    && let Some(sid) = created["sid"].as_str()
                {
                    let _ = settle_tx.send((id, sid.to_owned()));
                }
                drop(permit);
            });
        }
    }
}

/// Records a batch's messages in one statement; a redelivered event claims nothing again.
async fn claim(pool: &sqlx::PgPool, batch: &[jetstream::Message]) -> anyhow::Result<Vec<Claimed>> {
    let (mut events, mut accounts, mut recipients, mut senders, mut bodies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for message in batch {
        let event: Value = serde_json::from_slice(&message.payload)?;
        let name = event["customer"]["name"].as_str().unwrap_or_default();
        let first_name = name.split_whitespace().next().unwrap_or(name);
        let starts = event["job"]["starts_at"].as_str().unwrap_or_default();
        let starts = chrono::DateTime::parse_from_rfc3339(starts)?.with_timezone(&chrono_tz::America::Chicago);
        events.push(event["event_id"].as_str().unwrap_or_default().to_owned());
        let account = event["account_id"].as_str().unwrap_or_default();
        senders.push(format!("+1512555{}", account.rsplit('_').next().unwrap_or("0").parse::<u32>()? + 1000));
        accounts.push(account.to_owned());
        recipients.push(event["customer"]["phone"].as_str().unwrap_or_default().to_owned());
        bodies.push(format!(
            "Hi {first_name}, your {} is booked for {}. Reply STOP to opt out.",
            event["job"]["title"].as_str().unwrap_or_default(),
            starts.format("%a %b %-d at %-I:%M %p")
        ));
    }
    let claimed: Vec<Claimed> = sqlx::query_as(
        "INSERT INTO floor.messages (event_id, account_id, recipient, sender, body, status, rank) \
         SELECT e, a, r, s, b, 'queued', 1 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
         AS t(e, a, r, s, b) ON CONFLICT (event_id) DO NOTHING RETURNING id, recipient, sender, body",
    )
    .bind(&events)
    .bind(&accounts)
    .bind(&recipients)
    .bind(&senders)
    .bind(&bodies)
    .fetch_all(pool)
    .await?;
    Ok(claimed)
}

/// Records the provider's ids, whatever has arrived at once, in one statement.
async fn settle(pool: sqlx::PgPool, mut settled: mpsc::UnboundedReceiver<(i64, String)>) {
    let mut batch = Vec::new();
    while settled.recv_many(&mut batch, BATCH).await > 0 {
        let (ids, sids): (Vec<i64>, Vec<String>) = batch.drain(..).unzip();
        let _ = sqlx::query(
            "UPDATE floor.messages m SET provider_id = u.sid, updated_at = now() \
             FROM UNNEST($1::bigint[], $2::text[]) AS u(id, sid) WHERE m.id = u.id",
        )
        .bind(&ids)
        .bind(&sids)
        .execute(&pool)
        .await;
    }
}
