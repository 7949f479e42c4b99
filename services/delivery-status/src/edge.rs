//! The webhook server's edge: the internet reaches it, so every connection and request is bounded.
//! A client gets `header_timeout` to send its request head (no slow-loris connections held open),
//! each request `request_timeout` to be read and answered (408 past it), and at most `max_in_flight`
//! requests are handled at once (503 with Retry-After beyond: providers retry, and the database
//! pool is never queued behind a flood). At most `max_connections` connections are open at once;
//! past it the server stops accepting, so the rest wait in the kernel's queue, not in memory.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use messaging_platform::Shutdown;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The webhook server's limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EdgeLimits {
    /// Time to send the request line and headers after connecting (or between keep-alive requests).
    pub header_timeout_ms: u64,
    /// Time to send the body and get the answer.
    pub request_timeout_ms: u64,
    /// Requests handled at once; more are answered 503.
    pub max_in_flight: usize,
    /// Connections open at once (each holds its buffers, idle keep-alive ones too); more wait to
    /// be accepted.
    pub max_connections: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self { header_timeout_ms: 10_000, request_timeout_ms: 30_000, max_in_flight: 256, max_connections: 512 }
    }
}

struct Gate {
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
}

/// `router` with the per-request limits.
pub fn bounded(router: Router, limits: &EdgeLimits) -> Router {
    let gate = Arc::new(Gate {
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        request_timeout: Duration::from_millis(limits.request_timeout_ms.max(1)),
    });
    router.layer(middleware::from_fn_with_state(gate, guard))
}

async fn guard(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let Ok(_permit) = gate.in_flight.clone().try_acquire_owned() else {
        tracing::warn!("webhook server at its in-flight limit; request shed");
        let mut busy = (StatusCode::SERVICE_UNAVAILABLE, "busy; retry shortly").into_response();
        busy.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        return busy;
    };
    match tokio::time::timeout(gate.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?gate.request_timeout, "webhook request not done in time; dropped");
            (StatusCode::REQUEST_TIMEOUT, "request took too long").into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(listener: TcpListener, router: Router, limits: EdgeLimits, shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let header_timeout = Duration::from_millis(limits.header_timeout_ms.max(1));
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "webhook connection ended");
            }
            drop(permit);
        });
    }
    let grace = Duration::from_millis(limits.request_timeout_ms.max(1));
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("webhook connections still open at shutdown; closed");
    }
}
