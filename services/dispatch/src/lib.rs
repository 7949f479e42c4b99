//! dispatch: turns notification requests into outbound messages. It picks the channels a customer
//! has and allows, renders the templates, persists each message once (idempotency key = request id
//! + channel), and in the same transaction enqueues the send command and the `queued` event.

mod handler;
mod render;

use std::sync::Arc;

use messaging_platform::bus::{self, ConsumerSpec, Relay, streams};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Shutdown, db, http};
use serde::{Deserialize, Serialize};

pub use handler::Dispatcher;

/// The Postgres schema dispatch owns.
pub const SCHEMA: &str = "dispatch";

/// dispatch's configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub concurrency: usize,
    /// How long the provider may hold an on-my-way SMS before dropping it.
    pub on_my_way_validity_secs: u32,
}

messaging_platform::service_config!(Config);

/// A built service, ready to run.
pub struct App {
    config: Config,
    nats: async_nats::Client,
    pool: sqlx::PgPool,
    jetstream: async_nats::jetstream::Context,
    relay: Relay,
}

pub async fn build(mut config: Config, shutdown: &Shutdown) -> anyhow::Result<App> {
    if config.concurrency == 0 {
        config.concurrency = 16;
    }
    if config.on_my_way_validity_secs == 0 {
        config.on_my_way_validity_secs = 1800;
    }
    let pool = db::connect(&config.common.database, shutdown).await?;
    let nats = bus::connect(&config.common.nats, "dispatch", shutdown).await?;
    let jetstream = bus::jetstream(
        nats.clone(),
        &[streams::NOTIFY, streams::SEND_SMS, streams::SEND_EMAIL, streams::MESSAGE_EVENTS, streams::DEAD_LETTER],
    )
    .await?;
    let relay = Relay::new(pool.clone(), jetstream.clone(), SCHEMA);
    Ok(App { config, nats, pool, jetstream, relay })
}

impl App {
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let probe = http::dependency_probe(self.nats.clone(), Some(self.pool.clone()));
        http::serve(&self.config.common.health, probe, shutdown.clone()).await?;
        let relay_task = tokio::spawn(self.relay.clone().run(shutdown.clone()));
        let handler =
            Arc::new(Dispatcher::new(self.pool.clone(), self.relay.clone(), self.config.on_my_way_validity_secs));
        let mut spec = ConsumerSpec::new(streams::NOTIFY.name, "dispatch", "notify.>");
        spec.concurrency = self.config.concurrency;
        bus::consumer::run(self.jetstream.clone(), "dispatch", spec, handler, shutdown.clone()).await?;
        let _ = relay_task.await;
        Ok(())
    }
}
