//! The provider-sim binary. Settings from environment variables:
//! `SIM_LISTEN` (default 127.0.0.1:4010), `SIM_ACCOUNT_SID`, `SIM_AUTH_TOKEN`, `SIM_INBOUND_URL`,
//! `SIM_TLS_CERT` and `SIM_TLS_KEY` (PEM files: serve HTTPS),
//! and faults: `SIM_LATENCY_MS`, `SIM_ERROR_500_RATE`, `SIM_ACCEPT_THEN_500_RATE`, `SIM_ERROR_429_RATE`,
//! `SIM_TIMEOUT_RATE`, `SIM_OUTCOME`, `SIM_CALLBACK_DELAY_MS`, `SIM_CALLBACK_RETRIES`.

use messaging_provider_sim::{Faults, SimConfig};

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| {
            eprintln!("provider-sim: {name}={value:?} is not a number");
            std::process::exit(64);
        }),
        Err(_) => default,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(var("RUST_LOG", "info")).init();
    let config = SimConfig {
        listen: var("SIM_LISTEN", "127.0.0.1:4010"),
        account_sid: var("SIM_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        auth_token: var("SIM_AUTH_TOKEN", "dev-auth-token"),
        inbound_url: var("SIM_INBOUND_URL", ""),
        faults: Faults {
            latency_ms: number("SIM_LATENCY_MS", 0),
            error_500_rate: number("SIM_ERROR_500_RATE", 0.0),
            accept_then_500_rate: number("SIM_ACCEPT_THEN_500_RATE", 0.0),
            error_429_rate: number("SIM_ERROR_429_RATE", 0.0),
            timeout_rate: number("SIM_TIMEOUT_RATE", 0.0),
            outcome: var("SIM_OUTCOME", "delivered"),
            callback_delay_ms: number("SIM_CALLBACK_DELAY_MS", 200),
            callback_retries: number("SIM_CALLBACK_RETRIES", 8),
            failure_code: number("SIM_FAILURE_CODE", 0),
            unregistered_senders: var("SIM_UNREGISTERED_SENDERS", "")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        },
        tls_cert_file: var("SIM_TLS_CERT", ""),
        tls_key_file: var("SIM_TLS_KEY", ""),
    };
    let simulator = messaging_provider_sim::build(config).await?;
    tracing::info!(listen = %simulator.local_addr()?, "provider simulator listening");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        trigger.cancel();
    });
    #[cfg(unix)]
    {
        let trigger = shutdown.clone();
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::spawn(async move {
                term.recv().await;
                trigger.cancel();
            });
        }
    }
    simulator.run(shutdown).await
}
