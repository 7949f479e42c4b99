//! dispatch: turns notification requests into outbound messages. It picks the channels a customer
//! has and allows, words each message (the account's own template, or the built-in one), persists
//! each message once (idempotency key = request id + channel), and publishes the send command and
//! the `queued` event once that commits. An automatic SMS that fails permanently goes by email
//! instead ([`fallback`]).

mod create;
mod fallback;
mod handler;
mod metrics;
mod render;
mod suppression;
mod templates;
mod wording;

use std::sync::Arc;

use messaging_platform::bus::{self, ConsumerSpec, Relay, consumers, streams};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Runtime, Shutdown};
use serde::{Deserialize, Serialize};

pub use fallback::FallbackHandler;
pub use handler::{CrashPoint, Dispatcher};
pub use suppression::OptOutHandler;
pub use templates::TemplateHandler;

/// The Postgres schema dispatch owns.
pub const SCHEMA: &str = "dispatch";

/// dispatch's configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    /// Transactions at once.
    pub concurrency: usize,
    /// The most notification requests one transaction takes (as many as are waiting).
    pub batch: usize,
    /// How long the provider may hold an on-my-way SMS before dropping it.
    pub on_my_way_validity_secs: u32,
    /// Fault injection (tests only; refused in production): abort the process there.
    pub crash_at: CrashPoint,
}

messaging_platform::service_config!(Config,
    secrets: |_c| [],
    switches: |c| [("crash_at", c.crash_at != CrashPoint::Never)]
);

/// A built service, ready to run.
pub struct App {
    config: Config,
    runtime: Runtime,
    relay: Relay,
}

pub async fn build(mut config: Config, shutdown: &Shutdown) -> anyhow::Result<App> {
    if config.concurrency == 0 {
        config.concurrency = 4;
    }
    if config.batch == 0 {
        config.batch = 100;
    }
    if config.on_my_way_validity_secs == 0 {
        config.on_my_way_validity_secs = 1800;
    }
    let runtime = Runtime::connect(
        &config.common,
        "dispatch",
        &[
            streams::NOTIFY,
            streams::SEND_SMS,
            streams::SEND_EMAIL,
            streams::MESSAGE_EVENTS,
            streams::DIRECTORY,
            streams::DEAD_LETTER,
        ],
        shutdown,
    )
    .await?;
    let relay = runtime.relay(SCHEMA);
    Ok(App { config, runtime, relay })
}

impl App {
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.runtime.serve_health(&self.config.common, shutdown.clone()).await?;
        let relay_task = tokio::spawn(self.relay.clone().run(shutdown.clone()));
        if self.config.crash_at != CrashPoint::Never {
            tracing::warn!(crash_at = ?self.config.crash_at, "fault injection is on: this process will abort on purpose");
        }
        let handler = Arc::new(
            Dispatcher::new(self.relay.clone(), self.config.on_my_way_validity_secs).crashing_at(self.config.crash_at),
        );
        let spec = ConsumerSpec::of(&consumers::DISPATCH).batched(self.config.concurrency, self.config.batch);
        let opt_outs = ConsumerSpec::of(&consumers::DISPATCH_OPT_OUTS);
        let opt_out_task = tokio::spawn(bus::consumer::run(
            self.runtime.jetstream.clone(),
            "dispatch",
            opt_outs,
            Arc::new(OptOutHandler { pool: self.runtime.pool.clone() }),
            shutdown.clone(),
        ));
        let templates_task = tokio::spawn(bus::consumer::run(
            self.runtime.jetstream.clone(),
            "dispatch",
            ConsumerSpec::of(&consumers::DISPATCH_TEMPLATES),
            Arc::new(TemplateHandler { pool: self.runtime.pool.clone() }),
            shutdown.clone(),
        ));
        let fallbacks =
            FallbackHandler::new(self.relay.clone(), self.config.on_my_way_validity_secs, self.config.crash_at);
        let fallbacks_task = tokio::spawn(bus::batch::run(
            self.runtime.jetstream.clone(),
            "dispatch",
            ConsumerSpec::of(&consumers::DISPATCH_FALLBACKS),
            self.runtime.pool.clone(),
            Arc::new(fallbacks),
            shutdown.clone(),
        ));
        let sweep_task = tokio::spawn(fallback::sweep(self.runtime.pool.clone(), shutdown.clone()));
        let pool = self.runtime.pool.clone();
        bus::batch::run(self.runtime.jetstream.clone(), "dispatch", spec, pool, handler, shutdown.clone()).await?;
        opt_out_task.await??;
        templates_task.await??;
        fallbacks_task.await??;
        let _ = sweep_task.await;
        let _ = relay_task.await;
        Ok(())
    }
}
