//! What the on-call engineer reads: every service's `/metrics` passes Prometheus's own linter
//! (`promtool check metrics`) after real traffic, `/livez` and `/readyz` answer, readiness
//! really depends on Postgres (it fails while Postgres is down and recovers after), and the feed's
//! gRPC health turns NOT_SERVING as soon as it begins to stop.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use messaging_integration_tests::client::start_with;
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_integration_tests::stack::SERVICES;
use serde_json::json;

fn promtool(exposition: &str) -> anyhow::Result<(bool, String)> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or_else(|| anyhow::anyhow!("stdin"))?.write_all(exposition.as_bytes())?;
    let output = child.wait_with_output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

async fn status(port: u16, path: &str) -> u16 {
    match reqwest::get(format!("http://127.0.0.1:{port}{path}")).await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_readiness_follows_postgres() -> anyhow::Result<()> {
    let setup = account("evt_acc", "acc_obs", "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("observability", &setup).await?;
    let body = json!({"customer": customer("cus_o", "Olga Observer", "+15125550191", "olga@example.com"),
                      "job": job("job_o", Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event("e_o", "job.scheduled", "acc_obs", Utc::now(), body)).await?;
    dashboard.settled(2).await?;
    stack.quiesce().await?;

    // Lag and backlog gauges, and the consumer loop's counts, on every service.
    for service in SERVICES {
        let wanted =
            ["bus_messages_handled_total", "bus_consumer_pending", "bus_consumer_ack_pending", "outbox_backlog"];
        let stack = &stack;
        messaging_integration_tests::eventually(
            Duration::from_secs(20),
            &format!("{service}'s metric families"),
            || async move {
                let exposition = stack.metrics(service).await.ok()?;
                wanted.iter().all(|name| exposition.contains(&format!("# TYPE {name} "))).then_some(())
            },
        )
        .await?;
    }
    for service in SERVICES {
        let exposition = stack.metrics(service).await?;
        assert!(!exposition.trim().is_empty(), "{service} exposes metrics");
        let (ok, problems) = promtool(&exposition)?;
        assert!(ok, "promtool check metrics on {service}:\n{problems}");
        let port = stack.health_ports[service];
        assert_eq!(status(port, "/livez").await, 200, "{service} /livez");
        assert_eq!(status(port, "/readyz").await, 200, "{service} /readyz");
    }

    // Postgres goes away: every service stays alive but says it is not ready; then recovers.
    stack.infra.stop_postgres()?;
    for service in SERVICES {
        let port = stack.health_ports[service];
        let not_ready = messaging_integration_tests::eventually(Duration::from_secs(30), "not ready", || async move {
            (status(port, "/readyz").await == 503).then_some(())
        })
        .await;
        assert!(not_ready.is_ok(), "{service} /readyz while Postgres is down");
        assert_eq!(status(port, "/livez").await, 200, "{service} stays alive");
    }
    stack.infra.start_postgres().await?;
    for service in SERVICES {
        let port = stack.health_ports[service];
        messaging_integration_tests::eventually(
            Duration::from_secs(60),
            &format!("{service} ready again"),
            || async move { (status(port, "/readyz").await == 200).then_some(()) },
        )
        .await?;
    }
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_says_not_serving_when_it_begins_to_stop() -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let mut stack = messaging_integration_tests::Stack::start_fresh("health-shutdown").await?;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", stack.ports.grpc))?.connect().await?;
    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest { service: "messaging.v1.FeedService".into() };
    let mut watch = health.watch(request).await?.into_inner();
    let first = watch.message().await?.map(|m| m.status);
    assert_eq!(first, Some(ServingStatus::Serving as i32));

    let pid = stack.pid("feed").ok_or_else(|| anyhow::anyhow!("feed is running"))?;
    Command::new("kill").arg("-TERM").arg(pid.to_string()).status()?;
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message()).await?;
    assert_eq!(
        next.ok().flatten().map(|m| m.status),
        Some(ServingStatus::NotServing as i32),
        "NOT_SERVING before it goes"
    );
    // The open Watch stream does not keep the process alive past its grace.
    let mut waited = Duration::ZERO;
    while !stack.has_exited("feed") {
        anyhow::ensure!(waited < Duration::from_secs(15), "the feed still runs 15 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
    stack.stop().await;
    Ok(())
}
