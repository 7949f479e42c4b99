//! Layered configuration: built-in defaults, then an optional file named by `MSG_CONFIG`,
//! then `MSG_…` environment variables (`MSG_NATS__URL` sets `nats.url`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Exit code for a configuration that cannot be used (EX_CONFIG's neighbour EX_USAGE, as linkerd does).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// Loads `T`, starting from `T::default()`.
pub fn load<T>() -> Result<T, config::ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut builder = config::Config::builder().add_source(config::Config::try_from(&T::default())?);
    if let Ok(path) = std::env::var("MSG_CONFIG") {
        builder = builder.add_source(config::File::with_name(&path).required(true));
    }
    builder
        .add_source(config::Environment::with_prefix("MSG").prefix_separator("_").separator("__"))
        .build()?
        .try_deserialize()
}

/// A number or flag given either as itself (a TOML file) or as text (an environment variable
/// inside a flattened section, which reaches serde untyped).
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given<T> {
        Typed(T),
        Text(String),
    }
    match Given::<T>::deserialize(deserializer)? {
        Given::Typed(value) => Ok(value),
        Given::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// Where NATS is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsConfig {
    /// One server, or several separated by commas (a cluster's nodes).
    pub url: String,
    /// The service's NATS user (`deploy/nats/users.conf`); empty connects without credentials.
    pub user: String,
    pub password: String,
    /// Servers each stream is kept on: 3 on a 3-node cluster.
    #[serde(deserialize_with = "lenient")]
    pub stream_replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self { url: "nats://127.0.0.1:4222".into(), user: String::new(), password: String::new(), stream_replicas: 1 }
    }
}

/// Where Postgres is and how many connections a process may hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    pub url: String,
    #[serde(deserialize_with = "lenient")]
    pub max_connections: u32,
    /// Run the migrations in `migrations/` at start-up.
    #[serde(deserialize_with = "lenient")]
    pub migrate: bool,
    /// Cancels any statement running longer (milliseconds), so one runaway query cannot hold a
    /// connection and its locks for good; 0 leaves Postgres's own setting. Migrations run without it.
    #[serde(deserialize_with = "lenient")]
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/messaging".into(),
            max_connections: 10,
            migrate: true,
            statement_timeout_ms: 30_000,
        }
    }
}

/// Logs and traces.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// `json` (one object per line) or `pretty`.
    pub log_format: String,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// OTLP/gRPC endpoint for traces, e.g. `http://127.0.0.1:4317`; empty exports nothing.
    pub otlp_endpoint: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { log_format: "json".into(), log_filter: "info".into(), otlp_endpoint: String::new() }
    }
}

/// Sections every service has.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonConfig {
    /// `development` (the default) or `production`, which refuses development secrets and switches.
    pub environment: crate::secrets::Environment,
    pub nats: NatsConfig,
    pub database: DatabaseConfig,
    pub telemetry: TelemetryConfig,
    pub health: crate::http::HealthConfig,
    pub tls: crate::tls::TlsConfig,
}

impl CommonConfig {
    /// The secrets every service holds: the NATS password (when it has a user) and the database
    /// URL's password (when it has one).
    pub fn secrets(&self) -> Vec<crate::secrets::Secret<'_>> {
        use crate::secrets::{Secret, url_password};
        let mut secrets = Vec::new();
        if !self.nats.user.is_empty() {
            secrets.push(Secret::credential("nats.password", &self.nats.password));
        }
        if let Some(password) = url_password(&self.database.url) {
            secrets.push(Secret::credential("database.url's password", password));
        }
        secrets
    }
}

/// Services whose config embeds [`CommonConfig`] flattened get [`crate::service::ServiceConfig`]
/// from this macro; `secrets` lists the service's own secrets and `switches` its development-only
/// settings (key, whether on), both checked in production.
#[macro_export]
macro_rules! service_config {
    ($config:ty) => {
        $crate::service_config!($config, secrets: |_c| [], switches: |_c| []);
    };
    ($config:ty, secrets: |$s:ident| $secrets:expr, switches: |$w:ident| $switches:expr) => {
        impl $crate::service::ServiceConfig for $config {
            fn common(&self) -> &$crate::config::CommonConfig {
                &self.common
            }
            fn secrets(&self) -> Vec<$crate::secrets::Secret<'_>> {
                let $s = self;
                let own: Vec<$crate::secrets::Secret<'_>> = $secrets.into_iter().collect();
                let mut all = self.common.secrets();
                all.extend(own);
                all
            }
            fn switches(&self) -> Vec<(&'static str, bool)> {
                let $w = self;
                let switches: Vec<(&'static str, bool)> = $switches.into_iter().collect();
                switches
            }
        }
    };
}

#[cfg(test)]
mod lenient_tests {
    use super::{DatabaseConfig, NatsConfig};

    #[test]
    fn numbers_and_flags_come_typed_or_as_text() {
        let from_env: NatsConfig = serde_json::from_str(r#"{"stream_replicas": "3"}"#).expect("text");
        let from_file: NatsConfig = serde_json::from_str(r#"{"stream_replicas": 3}"#).expect("typed");
        assert_eq!((from_env.stream_replicas, from_file.stream_replicas), (3, 3));
        let db: DatabaseConfig =
            serde_json::from_str(r#"{"max_connections": "7", "migrate": "false"}"#).expect("text flags");
        assert_eq!((db.max_connections, db.migrate), (7, false));
        assert!(serde_json::from_str::<NatsConfig>(r#"{"stream_replicas": "three"}"#).is_err());
    }
}
