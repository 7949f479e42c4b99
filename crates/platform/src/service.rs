//! The body of every service binary: load config (exit 64 if unusable, or if production is given
//! development secrets or switches), set up telemetry,
//! listen for SIGTERM / Ctrl-C, run the service, log the whole error chain once if it fails.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{self, CommonConfig, TelemetryConfig};
use crate::secrets::{self, Secret};
use crate::shutdown::{self, Shutdown};
use crate::telemetry;

/// A service's configuration.
pub trait ServiceConfig: DeserializeOwned + Serialize + Default {
    fn common(&self) -> &CommonConfig;
    /// Every secret the service holds, by its key.
    fn secrets(&self) -> Vec<Secret<'_>>;
    /// Development-only settings (key, whether on).
    fn switches(&self) -> Vec<(&'static str, bool)>;

    fn telemetry(&self) -> &TelemetryConfig {
        &self.common().telemetry
    }
}

/// Runs a service to completion; exits the process non-zero on failure.
pub async fn main<C, F, Fut>(name: &'static str, run: F)
where
    C: ServiceConfig,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config: C = match config::load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{name}: bad configuration: {error}");
            std::process::exit(config::EXIT_BAD_CONFIG);
        }
    };
    if let Err(refusal) = secrets::check(config.common().environment, &config.secrets(), &config.switches()) {
        eprintln!("{name}: bad configuration: {refusal}");
        std::process::exit(config::EXIT_BAD_CONFIG);
    }
    let _telemetry = match telemetry::init(name, config.telemetry()) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("{name}: telemetry: {error:#}");
            std::process::exit(config::EXIT_BAD_CONFIG);
        }
    };
    let shutdown = shutdown::on_signals();
    tracing::info!(service = name, version = env!("CARGO_PKG_VERSION"), "starting");
    if let Err(error) = run(config, shutdown).await {
        tracing::error!(service = name, error = %format!("{error:#}"), "stopped with an error");
        std::process::exit(1);
    }
    tracing::info!(service = name, "stopped");
}
