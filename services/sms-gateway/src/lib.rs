//! sms-gateway: a stateless worker on the shared `SEND_SMS` work queue. It claims each message in
//! its own table before calling the provider, records the result with the `attempt` event in one
//! transaction, and reconciles ambiguous sends through the provider's list API.

mod handler;
mod metrics;
pub mod pace;
pub mod reconcile;
pub mod twilio;

use std::sync::Arc;
use std::time::Duration;

use messaging_domain::Channel;
use messaging_gateway::Claims;
use messaging_platform::bus::{self, ConsumerSpec, Relay, consumers, streams};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Runtime, Shutdown};
use serde::{Deserialize, Serialize};

pub use handler::{CrashPoint, SmsSender};
use pace::{Pace, RateLimitConfig};
use reconcile::ReconcileTiming;
use twilio::{Twilio, TwilioConfig};

/// The Postgres schema sms-gateway owns.
pub const SCHEMA: &str = "sms_gateway";

/// sms-gateway's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub twilio: TwilioConfig,
    /// Public base URL of delivery-status's webhooks, as the provider will call it.
    pub callback_base_url: String,
    /// Shared with delivery-status: signs the message token in the callback URL.
    pub callback_secret: String,
    pub concurrency: usize,
    /// How long a claim is held; must exceed the provider timeout.
    pub lease_secs: u64,
    pub reconcile_interval_ms: u64,
    pub unknown_grace_secs: u64,
    pub unknown_deadline_secs: u64,
    pub rate_limit: RateLimitConfig,
    /// Fault injection for tests only: abort the process at this point of the send path.
    pub crash_at: CrashPoint,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            common: CommonConfig::default(),
            twilio: TwilioConfig::default(),
            callback_base_url: "http://127.0.0.1:8080".into(),
            callback_secret: "dev-callback-secret".into(),
            concurrency: 32,
            lease_secs: 30,
            reconcile_interval_ms: 2_000,
            unknown_grace_secs: 5,
            unknown_deadline_secs: 600,
            rate_limit: RateLimitConfig::default(),
            crash_at: CrashPoint::Never,
        }
    }
}

messaging_platform::service_config!(Config,
    secrets: |c| {
        use messaging_platform::secrets::Secret;
        [Secret::credential("twilio.auth_token", &c.twilio.auth_token), Secret::key("callback_secret", &c.callback_secret)]
    },
    switches: |c| [("crash_at", c.crash_at != CrashPoint::Never)]
);

/// A built service, ready to run.
pub struct App {
    config: Config,
    runtime: Runtime,
    sender: Arc<SmsSender<Twilio>>,
    relay: Relay,
}

pub async fn build(config: Config, shutdown: &Shutdown) -> anyhow::Result<App> {
    anyhow::ensure!(
        config.lease_secs * 1000 > config.twilio.timeout_ms,
        "lease_secs must exceed twilio.timeout_ms, or a slow send could be taken over while in flight"
    );
    let runtime = Runtime::connect(
        &config.common,
        "sms-gateway",
        &[streams::SEND_SMS, streams::MESSAGE_EVENTS, streams::DEAD_LETTER],
        shutdown,
    )
    .await?;
    let relay = runtime.relay(SCHEMA);
    let sender = Arc::new(SmsSender {
        provider: Arc::new(Twilio::new(config.twilio.clone(), &config.common.tls)?),
        claims: Claims::new(
            runtime.pool.clone(),
            relay.clone(),
            SCHEMA,
            Channel::Sms,
            Duration::from_secs(config.lease_secs),
        ),
        pace: Pace::new(runtime.pool.clone(), config.rate_limit.clone()),
        callback_base: config.callback_base_url.clone(),
        callback_secret: config.callback_secret.as_bytes().to_vec(),
        crash_at: config.crash_at,
    });
    if config.crash_at != CrashPoint::Never {
        tracing::warn!(crash_at = ?config.crash_at, "fault injection is on: this process will abort on purpose");
    }
    Ok(App { config, runtime, sender, relay })
}

impl App {
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.runtime.serve_health(&self.config.common, shutdown.clone()).await?;
        let relay_task = tokio::spawn(self.relay.clone().run(shutdown.clone()));
        let timing = ReconcileTiming {
            interval: Duration::from_millis(self.config.reconcile_interval_ms),
            grace: Duration::from_secs(self.config.unknown_grace_secs),
            deadline: Duration::from_secs(self.config.unknown_deadline_secs),
        };
        let reconcile_task = tokio::spawn(reconcile::run(self.sender.clone(), timing, shutdown.clone()));
        let mut spec = ConsumerSpec::of(&consumers::SMS_GATEWAY);
        spec.concurrency = self.config.concurrency;
        spec.ack_wait = Duration::from_secs(self.config.lease_secs + 5);
        bus::consumer::run(self.runtime.jetstream.clone(), "sms-gateway", spec, self.sender.clone(), shutdown.clone())
            .await?;
        let _ = reconcile_task.await;
        let _ = relay_task.await;
        Ok(())
    }
}
