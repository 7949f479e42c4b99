//! The whole system as separate processes: infrastructure, simulator, SMTP server and the six
//! services, configured through `MSG_…` environment variables as an operator would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::infra::{Infra, Nats};
use crate::process::Managed;
use crate::scratch::Scratch;
use crate::{bin_dir, free_port, repo_root, wait_for_port};

/// The six services, in start order.
pub const SERVICES: &[&str] = &["ingest", "dispatch", "sms-gateway", "email-gateway", "delivery-status", "feed"];

/// Shared development secrets; `make run` prints how to mint a token with the JWT one.
pub const JWT_SECRET: &str = "dev-jwt-secret-change-me";
pub const CALLBACK_SECRET: &str = "dev-callback-secret";
pub const TWILIO_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
pub const TWILIO_AUTH_TOKEN: &str = "dev-auth-token";
/// The secret path segment of delivery-status's inbound-email URL.
pub const INBOUND_EMAIL_SECRET: &str = "dev-inbound-secret";

/// Ports; 0 picks a free one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub nats: u16,
    pub postgres: u16,
    pub grpc: u16,
    /// gRPC-Web and the Messages page.
    pub web: u16,
    pub webhook: u16,
    pub sim: u16,
    pub smtp: u16,
}

impl Ports {
    fn resolve(self) -> Self {
        let pick = |p: u16| if p == 0 { free_port() } else { p };
        Self {
            nats: self.nats,
            postgres: self.postgres,
            grpc: pick(self.grpc),
            web: pick(self.web),
            webhook: pick(self.webhook),
            sim: pick(self.sim),
            smtp: pick(self.smtp),
        }
    }
}

/// A running system.
pub struct Stack {
    pub infra: Infra,
    pub ports: Ports,
    pub mail_dir: PathBuf,
    pub sim: Managed,
    smtp: Managed,
    services: BTreeMap<&'static str, Managed>,
    env: Vec<(String, String)>,
    /// Each service's health server (`/livez`, `/readyz`, `/metrics`).
    pub health_ports: BTreeMap<&'static str, u16>,
    /// Extra variables per service, applied at its next (re)start.
    overrides: BTreeMap<&'static str, Vec<(String, String)>>,
    /// Further processes of a service, as ops scale it out.
    replicas: Vec<Managed>,
    /// The throwaway directory of a fresh system, removed after everything above has stopped.
    scratch: Option<Scratch>,
}

/// The Python with aiosmtpd (the project's venv unless `MSG_PYTHON` says otherwise).
pub fn python() -> PathBuf {
    std::env::var("MSG_PYTHON").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".venv/bin/python"))
}

impl Stack {
    /// Starts everything under `dir`.
    pub async fn start(dir: &Path, ports: Ports, durable: bool) -> anyhow::Result<Self> {
        Self::start_configured(dir, ports, durable, &[]).await
    }

    /// Starts everything under `dir`, some services with extra variables from the first start.
    pub async fn start_configured(
        dir: &Path,
        ports: Ports,
        durable: bool,
        overrides: &[(&'static str, &[(&str, String)])],
    ) -> anyhow::Result<Self> {
        Self::start_with_nats(dir, ports, durable, overrides, Nats::Plain).await
    }

    /// A fresh system on a 3-node NATS cluster, every stream replicated to all three nodes.
    pub async fn start_fresh_clustered(
        name: &str,
        overrides: &[(&'static str, &[(&str, String)])],
    ) -> anyhow::Result<Self> {
        Self::fresh(name, overrides, Nats::Cluster).await
    }

    /// A fresh system whose nats-server also reads `nats_config` (users and permissions).
    pub async fn start_fresh_with_nats_config(
        name: &str,
        overrides: &[(&'static str, &[(&str, String)])],
        nats_config: &str,
    ) -> anyhow::Result<Self> {
        Self::fresh(name, overrides, Nats::Config(nats_config)).await
    }

    /// [`Stack::start_fresh_with`] on a Postgres that syncs every commit (fsync on), as production.
    pub async fn start_fresh_durable(
        name: &str,
        overrides: &[(&'static str, &[(&str, String)])],
    ) -> anyhow::Result<Self> {
        let scratch = Scratch::new(&format!("e2e-{name}"));
        let mut stack = Self::start_with_nats(&scratch, Ports::default(), true, overrides, Nats::Plain).await?;
        stack.scratch = Some(scratch);
        Ok(stack)
    }

    /// A fresh system in a throwaway directory named after the test, removed by a clean stop.
    async fn fresh(
        name: &str,
        overrides: &[(&'static str, &[(&str, String)])],
        nats: Nats<'_>,
    ) -> anyhow::Result<Self> {
        let scratch = Scratch::new(&format!("e2e-{name}"));
        let mut stack = Self::start_with_nats(&scratch, Ports::default(), false, overrides, nats).await?;
        stack.scratch = Some(scratch);
        Ok(stack)
    }

    async fn start_with_nats(
        dir: &Path,
        ports: Ports,
        durable: bool,
        overrides: &[(&'static str, &[(&str, String)])],
        nats: Nats<'_>,
    ) -> anyhow::Result<Self> {
        let infra = Infra::start_with(dir, ports.nats, ports.postgres, durable, nats).await?;
        let ports = Ports { nats: infra.nats_port, postgres: infra.postgres_port, ..ports }.resolve();
        let logs = infra.dir.join("logs");
        let mail_dir = infra.dir.join("mail");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(mail_dir.join(sub))?;
        }

        let webhook_base = format!("http://127.0.0.1:{}", ports.webhook);
        let sim_env: Vec<(String, String)> = [
            ("SIM_LISTEN", format!("127.0.0.1:{}", ports.sim)),
            ("SIM_ACCOUNT_SID", TWILIO_ACCOUNT_SID.to_owned()),
            ("SIM_AUTH_TOKEN", TWILIO_AUTH_TOKEN.to_owned()),
            ("SIM_INBOUND_URL", format!("{webhook_base}/webhooks/twilio/inbound")),
            ("SIM_CALLBACK_DELAY_MS", "100".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let sim = Managed::start("provider-sim", &bin_dir().join("messaging-provider-sim"), &[], &sim_env, &logs)?;

        let smtp_args: Vec<String> = vec![
            repo_root().join("integration-tests/python/smtp_sink.py").display().to_string(),
            "127.0.0.1".to_owned(),
            ports.smtp.to_string(),
            mail_dir.display().to_string(),
        ];
        let smtp = Managed::start("smtp", &python(), &smtp_args, &[], &logs)?;

        let env: Vec<(String, String)> = [
            ("MSG_NATS__URL", infra.nats_url()),
            ("MSG_NATS__STREAM_REPLICAS", if infra.clustered() { "3" } else { "1" }.to_owned()),
            ("MSG_DATABASE__URL", infra.database_url()),
            ("MSG_TELEMETRY__LOG_FORMAT", "json".to_owned()),
            ("MSG_TWILIO__BASE_URL", format!("http://127.0.0.1:{}", ports.sim)),
            ("MSG_TWILIO__ACCOUNT_SID", TWILIO_ACCOUNT_SID.to_owned()),
            ("MSG_TWILIO__AUTH_TOKEN", TWILIO_AUTH_TOKEN.to_owned()),
            ("MSG_CALLBACK_BASE_URL", webhook_base.clone()),
            ("MSG_CALLBACK_SECRET", CALLBACK_SECRET.to_owned()),
            ("MSG_PUBLIC_BASE_URL", webhook_base.clone()),
            ("MSG_SMTP__HOST", "127.0.0.1".to_owned()),
            ("MSG_SMTP__PORT", ports.smtp.to_string()),
            ("MSG_JWT_SECRET", JWT_SECRET.to_owned()),
            ("MSG_INBOUND_EMAIL_SECRET", INBOUND_EMAIL_SECRET.to_owned()),
            // Tests and the demo send many SMS from one business number at once; the per-number limit
            // (1 segment/s by default) has tests of its own, which turn it on.
            ("MSG_RATE_LIMIT__SEGMENTS_PER_SECOND", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let health_ports = SERVICES.iter().map(|service| (*service, free_port())).collect();
        let mut stack = Self {
            infra,
            ports,
            mail_dir,
            sim,
            smtp,
            services: BTreeMap::new(),
            env,
            health_ports,
            overrides: overrides
                .iter()
                .map(|(service, vars)| (*service, vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()))
                .collect(),
            replicas: Vec::new(),
            scratch: None,
        };
        for service in SERVICES {
            stack.start_service(service)?;
        }
        let waits = [(ports.sim, "provider-sim"), (ports.smtp, "smtp server"), (ports.webhook, "delivery-status")];
        for (port, what) in waits.into_iter().chain([(ports.grpc, "feed"), (ports.web, "feed's gRPC-Web")]) {
            if let Err(error) = wait_for_port(port, what).await {
                return Err(error.context(stack.process_report()));
            }
        }
        Ok(stack)
    }

    /// Which processes are running, with the log tail of each that exited.
    fn process_report(&mut self) -> String {
        let mut lines = vec!["processes:".to_owned()];
        lines.extend(self.infra.nats_processes().map(|node| node.report(20)));
        lines.extend(self.services.values_mut().map(|service| service.report(20)));
        lines.push(self.sim.report(20));
        lines.push(self.smtp.report(20));
        lines.join("\n  ")
    }

    /// Starts everything in a fresh temporary folder named after the test, on free ports.
    pub async fn start_fresh(name: &str) -> anyhow::Result<Self> {
        Self::start_fresh_with(name, &[]).await
    }

    /// [`Stack::start_fresh`] with extra variables for some services.
    pub async fn start_fresh_with(name: &str, overrides: &[(&'static str, &[(&str, String)])]) -> anyhow::Result<Self> {
        Self::fresh(name, overrides, Nats::Plain).await
    }

    /// Whether a service's process has exited (crashed, say).
    pub fn has_exited(&mut self, service: &str) -> bool {
        self.services.get_mut(service).is_some_and(Managed::has_exited)
    }

    fn service_env(&self, service: &str) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        match service {
            "delivery-status" => env.push(("MSG_LISTEN".into(), format!("127.0.0.1:{}", self.ports.webhook))),
            "feed" => {
                env.push(("MSG_LISTEN".into(), format!("127.0.0.1:{}", self.ports.grpc)));
                env.push(("MSG_WEB_LISTEN".into(), format!("127.0.0.1:{}", self.ports.web)));
                env.push(("MSG_WEB_ROOT".into(), repo_root().join("web/dist").display().to_string()));
            }
            _ => {}
        }
        if let Some(port) = self.health_ports.get(service) {
            env.push(("MSG_HEALTH__LISTEN".into(), format!("127.0.0.1:{port}")));
        }
        env.extend(self.overrides.get(service).into_iter().flatten().cloned());
        env
    }

    fn start_service(&mut self, service: &'static str) -> anyhow::Result<()> {
        let binary = bin_dir().join(format!("messaging-{service}"));
        let managed = Managed::start(service, &binary, &[], &self.service_env(service), &self.infra.dir.join("logs"))?;
        self.services.insert(service, managed);
        Ok(())
    }

    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The process id of a running service.
    pub fn pid(&self, service: &str) -> Option<u32> {
        self.services.get(service).and_then(Managed::pid)
    }

    /// kill -9 one service.
    pub async fn kill9(&mut self, service: &str) -> anyhow::Result<()> {
        let managed = self.services.get_mut(service).ok_or_else(|| anyhow::anyhow!("no service {service}"))?;
        managed.kill9().await;
        Ok(())
    }

    /// Starts a killed service again.
    pub fn restart(&mut self, service: &str) -> anyhow::Result<()> {
        let managed = self.services.get_mut(service).ok_or_else(|| anyhow::anyhow!("no service {service}"))?;
        managed.restart()
    }

    /// Stops a service (SIGTERM) and starts it again with `extra` variables on top of its own,
    /// as an operator changing its configuration would.
    pub async fn restart_with(&mut self, service: &'static str, extra: &[(&str, String)]) -> anyhow::Result<()> {
        if let Some(managed) = self.services.get_mut(service) {
            managed.stop().await;
        }
        self.overrides.insert(service, extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect());
        self.start_service(service)?;
        let port = self.health_ports.get(service).copied().unwrap_or_default();
        wait_for_port(port, service).await
    }

    /// Starts one more process of `service` (its own health port, `extra` variables on top).
    pub async fn start_replica(&mut self, service: &'static str, extra: &[(&str, String)]) -> anyhow::Result<()> {
        let health = free_port();
        let mut env = self.service_env(service);
        env.push(("MSG_HEALTH__LISTEN".into(), format!("127.0.0.1:{health}")));
        if service == "feed" {
            env.push(("MSG_WEB_LISTEN".into(), format!("127.0.0.1:{}", free_port())));
        }
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let name = format!("{service}-{}", self.replicas.len() + 2);
        let binary = bin_dir().join(format!("messaging-{service}"));
        self.replicas.push(Managed::start(&name, &binary, &[], &env, &self.infra.dir.join("logs"))?);
        wait_for_port(health, &name).await
    }

    /// Stops every extra process started with [`Stack::start_replica`].
    pub async fn stop_replicas(&mut self) {
        for mut replica in self.replicas.drain(..) {
            replica.stop().await;
        }
    }

    /// A service's Prometheus metrics as text.
    pub async fn metrics(&self, service: &str) -> anyhow::Result<String> {
        let port = self.health_ports.get(service).copied().unwrap_or_default();
        Ok(reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await?.error_for_status()?.text().await?)
    }

    /// Keeps a fresh system's directory (logs, data) after it is dropped.
    pub fn keep_dir(&mut self) {
        if let Some(scratch) = &mut self.scratch {
            scratch.keep();
        }
    }

    /// SIGTERM every service and wait; then the simulator and SMTP server.
    pub async fn stop(&mut self) {
        for replica in &mut self.replicas {
            replica.stop().await;
        }
        for service in SERVICES.iter().rev() {
            if let Some(managed) = self.services.get_mut(service) {
                managed.stop().await;
            }
        }
        self.sim.stop().await;
        self.smtp.stop().await;
        self.infra.stop();
    }

    /// Number of emails the SMTP server stored.
    pub fn mail_count(&self) -> usize {
        ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.mail_dir.join(d)).ok())
            .map(|entries| entries.count())
            .sum()
    }

    /// Every stored email's raw text.
    pub fn mails(&self) -> Vec<String> {
        ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.mail_dir.join(d)).ok())
            .flat_map(|entries| entries.filter_map(Result::ok).filter_map(|e| std::fs::read_to_string(e.path()).ok()))
            .collect()
    }
}
