//! `environment = "production"` refuses, before anything starts, a secret left empty, at a known
//! development default or too short, and a development-only switch, naming the key (exit 64);
//! development accepts them, and production with real secrets starts.

use std::process::{Command, Stdio};
use std::time::Duration;

use messaging_integration_tests::bin_dir;

const STRONG: &str = "4c7e1f0a9b2d48e6a3f5c8d0e2b4a6c8";

/// Runs `service` with only `env`; `Some((code, stderr))` if it exited within two seconds.
fn run(service: &str, env: &[(&str, &str)]) -> Option<(i32, String)> {
    let mut child = Command::new(bin_dir().join(format!("messaging-{service}")))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MSG_TELEMETRY__LOG_FORMAT", "pretty")
        .env("MSG_NATS__URL", "nats://127.0.0.1:9")
        .env("MSG_DATABASE__URL", "postgres://postgres@127.0.0.1:9/messaging")
        .env("MSG_HEALTH__LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the service binary (cargo build first)");
    for _ in 0..20 {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut stderr).expect("read");
            return Some((status.code().unwrap_or(-1), stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("kill");
    child.wait().expect("reaped");
    None
}

fn refused(service: &str, env: &[(&str, &str)], says: &str) {
    let mut with_production = vec![("MSG_ENVIRONMENT", "production")];
    with_production.extend_from_slice(env);
    match run(service, &with_production) {
        Some((code, stderr)) => {
            assert_eq!(code, 64, "{service}: {stderr}");
            assert!(stderr.contains(says), "{service} should say {says:?}: {stderr}");
        }
        None => panic!("{service} started in production with {env:?}"),
    }
}

#[test]
fn production_refuses_development_secrets_and_switches_naming_the_key() {
    let twilio = ("MSG_TWILIO__AUTH_TOKEN", STRONG);
    let callback = ("MSG_CALLBACK_SECRET", STRONG);
    refused(
        "sms-gateway",
        &[("MSG_TWILIO__AUTH_TOKEN", "dev-auth-token"), callback],
        "twilio.auth_token is a development default",
    );
    refused("sms-gateway", &[twilio], "callback_secret is a development default");
    refused("sms-gateway", &[twilio, callback, ("MSG_CRASH_AT", "after_claim")], "crash_at is for development only");
    refused("dispatch", &[("MSG_CRASH_AT", "after_commit")], "crash_at is for development only");
    refused("feed", &[("MSG_JWT_SECRET", "short-secret")], "jwt_secret is 12 characters; production needs at least 32");
    refused("feed", &[], "jwt_secret is required in production");
    refused(
        "delivery-status",
        &[twilio, callback, ("MSG_SENDGRID_EVENTS_UNSIGNED", "true")],
        "sendgrid_events_unsigned is for development only",
    );
    refused(
        "delivery-status",
        &[twilio, callback, ("MSG_INBOUND_EMAIL_SECRET", "dev-inbound-secret")],
        "inbound_email_secret",
    );
    refused(
        "email-gateway",
        &[callback, ("MSG_SMTP__USERNAME", "relay-user"), ("MSG_SMTP__PASSWORD", "")],
        "smtp.password is required in production",
    );
    refused(
        "ingest",
        &[("MSG_NATS__USER", "ingest"), ("MSG_NATS__PASSWORD", "dev-ingest")],
        "nats.password is a development default",
    );
    refused(
        "ingest",
        &[("MSG_SCHEDULER__CLOCK_OFFSET_SECS", "86400")],
        "scheduler.clock_offset_secs is for development only",
    );
    refused(
        "dispatch",
        &[("MSG_DATABASE__URL", "postgres://messaging:dev-postgres@127.0.0.1:9/messaging")],
        "database.url's password is a development default",
    );
}

#[test]
fn development_accepts_them_and_production_starts_with_real_secrets() {
    let dev = [("MSG_TWILIO__AUTH_TOKEN", "dev-auth-token"), ("MSG_CALLBACK_SECRET", "dev-callback-secret")];
    assert_eq!(run("sms-gateway", &dev), None, "development starts (and waits for NATS)");
    let real = [("MSG_ENVIRONMENT", "production"), ("MSG_TWILIO__AUTH_TOKEN", STRONG), ("MSG_CALLBACK_SECRET", STRONG)];
    assert_eq!(run("sms-gateway", &real), None, "production with real secrets starts");
    let unknown = run("feed", &[("MSG_ENVIRONMENT", "staging"), ("MSG_JWT_SECRET", STRONG)]);
    assert!(
        unknown.as_ref().is_some_and(|(code, stderr)| *code == 64 && stderr.contains("environment")),
        "{unknown:?}"
    );
}
