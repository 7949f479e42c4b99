//! The test harness: real nats-server and PostgreSQL on free ports in a throwaway folder, the
//! provider simulator, an SMTP server (aiosmtpd) and every service as its own process. `make run`
//! uses the same code through the `devstack` binary. Everything started is stopped on drop.

pub mod chaos;
pub mod client;
pub mod database;
pub mod events;
pub mod floor;
pub mod infra;
pub mod load;
pub mod measure;
pub mod mix;
pub mod process;
pub mod quiesce;
pub mod scratch;
pub mod seed;
pub mod stack;
pub mod tls;

pub use database::Database;
pub use infra::{Infra, Nats};
pub use scratch::Scratch;
pub use stack::{Ports, Stack};

use std::path::PathBuf;
use std::time::Duration;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the service binaries are (`target/debug` unless `MSG_BIN_DIR` says otherwise).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("MSG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug")
}

/// A port nobody is listening on right now, never handed out twice by this process nor, for a
/// quarter of an hour, to another test process on this machine.
///
/// Picked below Linux's ephemeral range (32768-60999), where the many client connections of a
/// running stack take their local ports: a port picked there can be taken by an outgoing
/// connection before the server that was meant to listen on it starts.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = rand::random_range(20_000..32_000);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && reserve(port) {
            given.push(port);
            return port;
        }
    }
}

/// Claims `port` across processes (tests run as concurrent processes, each starting servers a
/// moment after picking their ports) with a file created exclusively; a claim older than a
/// quarter of an hour is stale and may be taken over.
fn reserve(port: u16) -> bool {
    let dir = std::env::temp_dir().join("msg-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let claim = dir.join(port.to_string());
    let create = || std::fs::OpenOptions::new().write(true).create_new(true).open(&claim).is_ok();
    if create() {
        return true;
    }
    let stale = std::fs::metadata(&claim)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| at.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(900));
    stale && std::fs::remove_file(&claim).is_ok() && create()
}

/// A benchmark's setting from the environment, or `default` when unset or unparsable.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    eventually(Duration::from_secs(30), what, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await
}

/// A NATS client for `url`: one server, or a cluster's nodes separated by commas.
pub async fn nats_connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    let servers: Vec<&str> = url.split(',').collect();
    async_nats::ConnectOptions::new().connect(servers.as_slice()).await
}
