//! The NATS users in `deploy/nats/users.conf`, on a real nats-server: each service may publish
//! its own subjects and nothing else (a gateway cannot fake a delivery status, the scheduling
//! system cannot skip ingest, only the feed words templates); the whole system runs with each service as its own user; and the
//! configuration files are ones `nats-server -t` accepts.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use messaging_integration_tests::client::{Dashboard, Publisher};
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_integration_tests::infra::nats_server;
use messaging_integration_tests::process::Managed;
use messaging_integration_tests::stack::SERVICES;
use messaging_integration_tests::{Scratch, Stack};
use messaging_integration_tests::{free_port, repo_root, wait_for_port};
use messaging_platform::bus::streams::{self, StreamSpec};
use serde_json::json;

const USERS: &[&str] =
    &["scheduler", "ingest", "dispatch", "sms-gateway", "email-gateway", "delivery-status", "feed", "admin"];

fn password_var(user: &str) -> String {
    format!("NATS_{}_PASSWORD", user.to_uppercase().replace('-', "_"))
}

fn passwords() -> Vec<(String, String)> {
    USERS.iter().map(|u| (password_var(u), format!("secret-of-{u}"))).collect()
}

async fn connect(port: u16, user: &str, password: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .user_and_password(user.to_owned(), password.to_owned())
        .connect(format!("127.0.0.1:{port}"))
        .await
}

async fn publishes(port: u16, user: &str, subject: &str) -> anyhow::Result<bool> {
    let client = connect(port, user, &format!("secret-of-{user}")).await?;
    let mut jetstream = async_nats::jetstream::new(client);
    jetstream.set_timeout(Duration::from_millis(700));
    let acked = match jetstream.publish(subject.to_owned(), "{}".into()).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    Ok(acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_publishes_only_its_own_subjects() -> anyhow::Result<()> {
    let deploy = repo_root().join("deploy/nats");
    for file in ["nats-server.conf", "nats-cluster-1.conf", "nats-cluster-2.conf", "nats-cluster-3.conf"] {
        let checked =
            Command::new(nats_server()?).arg("-t").arg("-c").arg(deploy.join(file)).envs(passwords()).output()?;
        assert!(checked.status.success(), "{file}: {}", String::from_utf8_lossy(&checked.stderr));
    }

    let dir = Scratch::new("e2e-nats-users");
    std::fs::create_dir_all(dir.join("js"))?;
    std::fs::copy(deploy.join("users.conf"), dir.join("users.conf"))?;
    let port = free_port();
    let config = format!(
        "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {} }}\ninclude ./users.conf\n",
        dir.join("js").display()
    );
    std::fs::write(dir.join("test.conf"), config)?;
    let args = vec!["-c".to_owned(), dir.join("test.conf").display().to_string()];
    let mut server = Managed::start("nats-users", &nats_server()?, &args, &passwords(), &dir)?;
    wait_for_port(port, "nats-server").await?;

    let admin = connect(port, "admin", "secret-of-admin").await?;
    let specs: [StreamSpec; 7] = [
        streams::JOB_EVENTS,
        streams::NOTIFY,
        streams::SEND_SMS,
        streams::SEND_EMAIL,
        streams::MESSAGE_EVENTS,
        streams::DEAD_LETTER,
        streams::DIRECTORY,
    ];
    streams::ensure(&async_nats::jetstream::new(admin), &specs, 1).await?;

    let cases: &[(&str, &str, bool)] = &[
        ("scheduler", "jobs.acc_a.job.scheduled", true),
        ("scheduler", "notify.acc_a", false),
        ("scheduler", "send.sms.acc_a", false),
        ("ingest", "notify.acc_a", true),
        ("ingest", "directory.acc_a.customer.cus_1", true),
        ("ingest", "directory.acc_a.account", true),
        ("ingest", "directory.acc_a.job.job_1", true),
        ("ingest", "directory.acc_a.template.reminder.sms", false),
        ("ingest", "send.sms.acc_a", false),
        ("ingest", "jobs.acc_a.job.scheduled", false),
        ("dispatch", "send.sms.acc_a", true),
        ("dispatch", "message.acc_a.queued", true),
        ("dispatch", "message.acc_a.status", false),
        ("sms-gateway", "message.acc_a.attempt", true),
        ("sms-gateway", "message.acc_a.status", false),
        ("sms-gateway", "send.sms.acc_a", false),
        ("email-gateway", "send.email.acc_a", false),
        ("delivery-status", "message.acc_a.status", true),
        ("delivery-status", "message.acc_a.opt_out", true),
        ("delivery-status", "message.acc_a.failed", true),
        ("sms-gateway", "message.acc_a.failed", false),
        ("delivery-status", "send.sms.acc_a", false),
        ("delivery-status", "notify.acc_a", false),
        ("feed", "notify.acc_a", true),
        ("feed", "directory.acc_a.template.reminder.sms", true),
        ("feed", "directory.acc_a.customer.cus_1", false),
        ("feed", "message.acc_a.status", false),
        ("feed", "dlq.ingest.jobs.acc_a.x", false),
        ("feed", "dlq.feed.message.acc_a.status", true),
    ];
    for (user, subject, allowed) in cases {
        assert_eq!(publishes(port, user, subject).await?, *allowed, "{user} publishing {subject}");
    }
    let wrong = connect(port, "feed", "not-its-password").await;
    assert!(wrong.is_err(), "a wrong password is refused");
    server.stop().await;
    Ok(())
}

/// `users.conf` with the passwords written in, and connections without credentials taken as the
/// admin (the test's own publisher and probes).
fn users_config() -> anyhow::Result<String> {
    let mut users = std::fs::read_to_string(repo_root().join("deploy/nats/users.conf"))?;
    for (var, password) in passwords() {
        users = users.replace(&format!("${var}"), &format!("\"{password}\""));
    }
    Ok(format!("{users}\nno_auth_user: admin\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_runs_with_each_service_as_its_own_user() -> anyhow::Result<()> {
    let credentials: Vec<[(&str, String); 2]> = SERVICES
        .iter()
        .map(|s| [("MSG_NATS__USER", (*s).to_owned()), ("MSG_NATS__PASSWORD", format!("secret-of-{s}"))])
        .collect();
    let overrides: Vec<(&'static str, &[(&str, String)])> =
        SERVICES.iter().zip(&credentials).map(|(s, c)| (*s, &c[..])).collect();
    let mut stack = Stack::start_fresh_with_nats_config("nats-users-system", &overrides, &users_config()?).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account("evt_acc", "acc_users", "America/Chicago", ("00:00", "00:00"))).await?;
    let dashboard = Dashboard::connect(stack.ports.grpc, "acc_users").await?;
    let body = json!({"customer": customer("cus_u", "Uma User", "+15125550197", "uma@example.com"),
                      "job": job("job_u", Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event("e_u", "job.scheduled", "acc_users", Utc::now(), body)).await?;
    let settled = dashboard.settled(2).await?;
    assert_eq!(settled.len(), 2, "SMS and email through services that each hold only their own permissions");
    stack.quiesce().await?;
    for service in SERVICES {
        let log = std::fs::read_to_string(stack.infra.dir.join("logs").join(format!("{service}.log")))?;
        assert!(!log.contains("ermissions Violation"), "{service} was refused a subject it needs");
    }
    stack.stop().await;
    Ok(())
}
