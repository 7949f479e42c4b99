//! email-gateway: a stateless worker on the shared `SEND_EMAIL` work queue, sending through an SMTP
//! relay with lettre, with the same claim-before-send rule as the SMS gateway.

mod handler;
pub mod relay;
pub mod smtp;

use std::sync::Arc;
use std::time::Duration;

use messaging_domain::Channel;
use messaging_gateway::Claims;
use messaging_platform::bus::{self, ConsumerSpec, Relay, consumers, streams};
use messaging_platform::config::CommonConfig;
use messaging_platform::{Runtime, Shutdown};
use serde::{Deserialize, Serialize};

pub use handler::EmailSender;
use relay::Smtp;
use smtp::SmtpConfig;

/// The Postgres schema email-gateway owns.
pub const SCHEMA: &str = "email_gateway";

/// email-gateway's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub smtp: SmtpConfig,
    /// Public base URL of delivery-status (unsubscribe and tracking links).
    pub public_base_url: String,
    /// Domain of the Reply-To address that threads replies back; empty omits Reply-To.
    pub reply_domain: String,
    /// Right-hand side of the `Message-ID` header.
    pub message_id_domain: String,
    /// Signs the tokens in links and unique args; the secret delivery-status verifies them with.
    pub callback_secret: String,
    pub concurrency: usize,
    pub lease_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            common: CommonConfig::default(),
            smtp: SmtpConfig::default(),
            public_base_url: "http://127.0.0.1:8080".into(),
            reply_domain: "reply.messages.localhost".into(),
            message_id_domain: "messages.localhost".into(),
            callback_secret: "dev-callback-secret".into(),
            concurrency: 16,
            lease_secs: 60,
        }
    }
}

messaging_platform::service_config!(Config,
    secrets: |c| {
        use messaging_platform::secrets::Secret;
        let mut secrets = vec![Secret::key("callback_secret", &c.callback_secret)];
        if !c.smtp.username.is_empty() {
            secrets.push(Secret::credential("smtp.password", &c.smtp.password));
        }
        secrets
    },
    switches: |_c| []
);

/// A built service, ready to run.
pub struct App {
    config: Config,
    runtime: Runtime,
    sender: Arc<EmailSender<Smtp>>,
    relay: Relay,
}

pub async fn build(config: Config, shutdown: &Shutdown) -> anyhow::Result<App> {
    anyhow::ensure!(config.lease_secs * 1000 > config.smtp.timeout_ms, "lease_secs must exceed smtp.timeout_ms");
    let runtime = Runtime::connect(
        &config.common,
        "email-gateway",
        &[streams::SEND_EMAIL, streams::MESSAGE_EVENTS, streams::DEAD_LETTER],
        shutdown,
    )
    .await?;
    let relay = runtime.relay(SCHEMA);
    let sender = Arc::new(EmailSender {
        mailer: Arc::new(Smtp::new(&config.smtp, &config.common.tls, &config.message_id_domain)?),
        claims: Claims::new(
            runtime.pool.clone(),
            relay.clone(),
            SCHEMA,
            Channel::Email,
            Duration::from_secs(config.lease_secs),
        ),
        public_base_url: config.public_base_url.clone(),
        reply_domain: config.reply_domain.clone(),
        secret: config.callback_secret.as_bytes().to_vec(),
    });
    Ok(App { config, runtime, sender, relay })
}

impl App {
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.runtime.serve_health(&self.config.common, shutdown.clone()).await?;
        let relay_task = tokio::spawn(self.relay.clone().run(shutdown.clone()));
        let mut spec = ConsumerSpec::of(&consumers::EMAIL_GATEWAY);
        spec.concurrency = self.config.concurrency;
        spec.ack_wait = Duration::from_secs(self.config.lease_secs + 5);
        bus::consumer::run(
            self.runtime.jetstream.clone(),
            "email-gateway",
            spec,
            self.sender.clone(),
            shutdown.clone(),
        )
        .await?;
        let _ = relay_task.await;
        Ok(())
    }
}
