//! ingest: consumes job events from `jobs.>`, keeps account, customer and job snapshots, turns
//! each event into notification requests for dispatch exactly once, and keeps the durable schedule
//! (day-before reminders, requests waiting out quiet hours).

mod directory;
mod handler;
mod jobs;
mod notify;
mod release;
mod schedule;
mod scheduler;
mod senders;
mod store;
mod waiting;

use std::sync::Arc;
use std::time::Duration;

use messaging_platform::bus::{self, ConsumerSpec, Relay, consumers, streams};
use messaging_platform::clock::{SharedClock, SystemClock};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Runtime, Shutdown};
use serde::{Deserialize, Serialize};

pub use handler::{EventHandler, IngestError};
pub use scheduler::{Scheduler, Tick};
pub use senders::Taken;

messaging_platform::service_config!(Config,
    secrets: |_c| [],
    switches: |c| [("scheduler.clock_offset_secs", c.scheduler.clock_offset_secs != 0)]
);

/// The Postgres schema ingest owns.
pub const SCHEMA: &str = "ingest";

/// ingest's configuration (`MSG_…` variables; see `deploy/config/reference.toml`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub consumer: ConsumerConfig,
    pub scheduler: SchedulerConfig,
}

/// The reminder and quiet-hours scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// How often due reminders and deferred requests are looked for.
    pub interval_ms: u64,
    /// Reminders and held requests settled per transaction.
    pub batch: i64,
    /// Shifts the scheduler's clock (dev and tests only: "tomorrow" without waiting). 0 in production.
    pub clock_offset_secs: i64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { interval_ms: 1000, batch: 200, clock_offset_secs: 0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Transactions at once.
    pub concurrency: usize,
    /// The most job events one transaction applies (as many as are waiting).
    pub batch: usize,
    pub max_deliver: i64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self { concurrency: 4, batch: 100, max_deliver: 10 }
    }
}

/// A built service, ready to run.
pub struct App {
    config: Config,
    runtime: Runtime,
    relay: Relay,
}

/// Connects to Postgres and NATS, migrates, and ensures the streams ingest uses.
pub async fn build(config: Config, shutdown: &Shutdown) -> anyhow::Result<App> {
    let runtime = Runtime::connect(
        &config.common,
        "ingest",
        &[streams::JOB_EVENTS, streams::NOTIFY, streams::DIRECTORY, streams::DEAD_LETTER],
        shutdown,
    )
    .await?;
    let relay = runtime.relay(SCHEMA);
    Ok(App { config, runtime, relay })
}

impl App {
    /// Consumes until shutdown, then finishes in-flight events.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.runtime.serve_health(&self.config.common, shutdown.clone()).await?;
        let relay_task = tokio::spawn(self.relay.clone().run(shutdown.clone()));
        let clock: SharedClock = Arc::new(SystemClock::shifted(self.config.scheduler.clock_offset_secs));
        if self.config.scheduler.clock_offset_secs != 0 {
            tracing::warn!(offset_secs = self.config.scheduler.clock_offset_secs, "the scheduler's clock is shifted");
        }
        let scheduler = Scheduler::new(
            self.runtime.pool.clone(),
            self.relay.clone(),
            clock.clone(),
            Duration::from_millis(self.config.scheduler.interval_ms.max(10)),
            self.config.scheduler.batch,
        );
        let scheduler_task = tokio::spawn(scheduler.run(shutdown.clone()));
        let handler = Arc::new(EventHandler::new(self.relay.clone(), clock));
        let consumer = &self.config.consumer;
        let mut spec = ConsumerSpec::of(&consumers::INGEST).batched(consumer.concurrency, consumer.batch);
        spec.max_deliver = consumer.max_deliver;
        let pool = self.runtime.pool.clone();
        bus::batch::run(self.runtime.jetstream.clone(), "ingest", spec, pool, handler, shutdown.clone()).await?;
        let _ = scheduler_task.await;
        let _ = relay_task.await;
        Ok(())
    }
}
