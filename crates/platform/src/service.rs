//! The body of every service binary: load config (exit 64 if unusable), set up telemetry,
//! listen for SIGTERM / Ctrl-C, run the service, log the whole error chain once if it fails.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{self, TelemetryConfig};
use crate::shutdown::{self, Shutdown};
use crate::telemetry;

/// A service's configuration.
pub trait ServiceConfig: DeserializeOwned + Serialize + Default {
    fn telemetry(&self) -> &TelemetryConfig;
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
