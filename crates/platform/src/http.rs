//! A small HTTP server every service runs for liveness (`/livez`), readiness (`/readyz`, which
//! really probes NATS and Postgres) and Prometheus metrics (`/metrics`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::shutdown::Shutdown;

/// Where the health server listens; empty disables it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    pub listen: String,
}

const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Probes NATS (connected) and Postgres (`SELECT 1`).
pub fn dependency_probe(nats: async_nats::Client, pool: Option<sqlx::PgPool>) -> Probe {
    Arc::new(move || {
        let nats = nats.clone();
        let pool = pool.clone();
        Box::pin(async move {
            if nats.connection_state() != async_nats::connection::State::Connected {
                return Err("nats: not connected".to_owned());
            }
            if let Some(pool) = pool {
                // A probe answers within its own deadline, whatever Postgres does.
                match tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&pool)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Err(format!("postgres: {error}")),
                    Err(_) => return Err("postgres: no answer within 2 s".to_owned()),
                }
            }
            Ok(())
        })
    })
}

/// Serves the health endpoints until shutdown; returns the bound address.
pub async fn serve(config: &HealthConfig, probe: Probe, shutdown: Shutdown) -> anyhow::Result<Option<SocketAddr>> {
    if config.listen.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let address = listener.local_addr()?;
    let router = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    crate::metrics::render(),
                )
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let probe = probe.clone();
                async move {
                    match probe().await {
                        Ok(()) => (StatusCode::OK, "ready".to_owned()),
                        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
                    }
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
    });
    Ok(Some(address))
}
