//! One trace per job event: every service exports its spans over OTLP to a real receiver
//! (opentelemetry-proto's gRPC service, in Python), and the spans of one booking — ingest,
//! dispatch, the SMS gateway and its provider call, delivery-status with the provider's status
//! callback, the feed — share one trace id and form one tree, carried by `traceparent` in NATS
//! headers and the status-callback URL; and a dashboard call's `traceparent` in gRPC metadata
//! starts the trace its manual message follows.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use messaging_integration_tests::client::{Dashboard, Publisher};
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_integration_tests::process::Managed;
use messaging_integration_tests::stack::{SERVICES, python};
use messaging_integration_tests::{Scratch, Stack};
use messaging_integration_tests::{free_port, repo_root};
use messaging_proto::v1::{Channel, SendMessageRequest};
use serde_json::{Value, json};

fn spans(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_one_trace_across_every_service() -> anyhow::Result<()> {
    let dir = Scratch::new("e2e-traces-sink");
    std::fs::create_dir_all(&*dir)?;
    let file = dir.join("spans.jsonl");
    let port = free_port();
    let args = vec![
        repo_root().join("integration-tests/python/otlp_sink.py").display().to_string(),
        "127.0.0.1".to_owned(),
        port.to_string(),
        file.display().to_string(),
    ];
    let mut sink = Managed::start("otlp", &python(), &args, &[], &dir)?;
    messaging_integration_tests::wait_for_port(port, "otlp sink").await?;
    let export = [
        ("MSG_TELEMETRY__OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
    ];
    let overrides: Vec<(&'static str, &[(&str, String)])> = SERVICES.iter().map(|s| (*s, &export[..])).collect();
    let mut stack = Stack::start_fresh_with("traces", &overrides).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account("evt_acc", "acc_trace", "America/Chicago", ("00:00", "00:00"))).await?;
    let dashboard = Dashboard::connect(stack.ports.grpc, "acc_trace").await?;
    let body = json!({"customer": customer("cus_t", "Tess Tracer", "+15125550193", ""),
                      "job": job("job_t", Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event("e_trace", "job.scheduled", "acc_trace", Utc::now(), body)).await?;
    dashboard.settled(1).await?;
    stack.quiesce().await?;

    let wanted = ["ingest", "dispatch", "sms-gateway", "delivery-status", "feed"];
    let trace =
        messaging_integration_tests::eventually(Duration::from_secs(30), "one trace across the services", || {
            let file = file.clone();
            async move {
                let all = spans(&file);
                let mut services: HashMap<String, HashSet<String>> = HashMap::new();
                for span in &all {
                    let trace = span["trace_id"].as_str().unwrap_or_default().to_owned();
                    services.entry(trace).or_default().insert(span["service"].as_str().unwrap_or_default().to_owned());
                }
                services.into_iter().find(|(_, s)| wanted.iter().all(|w| s.contains(*w))).map(|(trace, _)| trace)
            }
        })
        .await;
    let all = spans(&file);
    let trace = match trace {
        Ok(trace) => trace,
        Err(error) => {
            let summary: Vec<String> = all
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {} {}",
                        &s["trace_id"].as_str().unwrap_or("")[..8.min(s["trace_id"].as_str().unwrap_or("").len())],
                        s["service"],
                        s["name"],
                        s["parent_span_id"]
                    )
                })
                .collect();
            anyhow::bail!("{error}\n{}", summary.join("\n"));
        }
    };
    let tree: Vec<&Value> = all.iter().filter(|s| s["trace_id"] == trace.as_str()).collect();
    let ids: HashSet<&str> = tree.iter().filter_map(|s| s["span_id"].as_str()).collect();
    let roots: Vec<&&Value> = tree.iter().filter(|s| s["parent_span_id"].as_str().unwrap_or("").is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    for span in &tree {
        let parent = span["parent_span_id"].as_str().unwrap_or("");
        assert!(parent.is_empty() || ids.contains(parent), "every parent is in the trace: {span}");
    }
    let named =
        |service: &str, name: &str| tree.iter().filter(|s| s["service"] == service && s["name"] == name).count();
    assert_eq!(named("sms-gateway", "provider.send"), 1, "the provider call is a span of the trace");
    assert!(named("delivery-status", "twilio.status_callback") >= 1, "the provider's callbacks join the trace");
    assert!(named("feed", "consume") >= 3, "the feed applies queued, sent and delivered in the trace");

    // A dashboard call's `traceparent` (gRPC metadata) starts the trace of the manual message.
    let trace_id = format!("{:032x}", rand::random::<u128>());
    let mut request = dashboard.authed(SendMessageRequest {
        request_id: "traced-1".into(),
        customer_id: "cus_t".into(),
        channel: Channel::Sms as i32,
        text: "Traced hello".into(),
        subject: String::new(),
    });
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-{:016x}-01", rand::random::<u64>()).parse()?);
    dashboard.grpc().send_message(request).await?;
    let wanted = ["feed", "dispatch", "sms-gateway", "delivery-status"];
    messaging_integration_tests::eventually(Duration::from_secs(30), "the manual message's trace", || {
        let (file, trace_id) = (file.clone(), trace_id.clone());
        async move {
            let services: HashSet<String> = spans(&file)
                .iter()
                .filter(|s| s["trace_id"] == trace_id.as_str())
                .map(|s| s["service"].as_str().unwrap_or_default().to_owned())
                .collect();
            wanted.iter().all(|w| services.contains(*w)).then_some(())
        }
    })
    .await?;
    stack.stop().await;
    sink.stop().await;
    Ok(())
}
