//! What every service shares: layered configuration, telemetry, shutdown, the Postgres pool and
//! migrations, and the NATS plumbing (streams, the transactional outbox relay, the consumer loop).

pub mod bus;
pub mod clock;
pub mod config;
pub mod db;
pub mod http;
pub mod metrics;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use runtime::Runtime;
pub use shutdown::Shutdown;
