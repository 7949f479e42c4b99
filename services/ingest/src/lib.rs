//! ingest: consumes job events from `jobs.>`, keeps account, customer and job snapshots, and turns
//! each event into notification requests for dispatch, exactly once per event.

mod handler;
mod notify;
mod store;

use std::sync::Arc;

use messaging_platform::bus::{self, ConsumerSpec, Relay, streams};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Runtime, Shutdown};
use serde::{Deserialize, Serialize};

pub use handler::EventHandler;

messaging_platform::service_config!(Config);

/// The Postgres schema ingest owns.
pub const SCHEMA: &str = "ingest";

/// ingest's configuration (`MSG_…` variables; see `deploy/config/reference.toml`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub consumer: ConsumerConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    pub concurrency: usize,
    pub max_deliver: i64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self { concurrency: 16, max_deliver: 10 }
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
        &[streams::JOB_EVENTS, streams::NOTIFY, streams::DEAD_LETTER],
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
        let handler = Arc::new(EventHandler::new(self.runtime.pool.clone(), self.relay.clone()));
        let mut spec = ConsumerSpec::new(streams::JOB_EVENTS.name, "ingest", "jobs.>");
        spec.concurrency = self.config.consumer.concurrency;
        spec.max_deliver = self.config.consumer.max_deliver;
        bus::consumer::run(self.runtime.jetstream.clone(), "ingest", spec, handler, shutdown.clone()).await?;
        let _ = relay_task.await;
        Ok(())
    }
}
