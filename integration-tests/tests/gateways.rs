//! The SMS gateway against the simulator's fault modes, scaled out to three processes, killed
//! at each point around the provider call, and held to the per-number rate limit; reconciliation
//! that takes only the claim's own message, queued or sent through a messaging service.

use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_integration_tests::client::{Dashboard, Publisher, sim_faults, sim_messages, sim_requests};
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_integration_tests::{Stack, eventually, wait_for_port};
use messaging_proto::v1::{Channel, MessageStatus, MessageType, SendMessageRequest};
use serde_json::{Value, json};

const ACCOUNT: &str = "acc_ace";

/// A gateway that gives up on the provider after 1 s and settles unknown sends within seconds.
fn quick_gateway() -> Vec<(&'static str, String)> {
    vec![
        ("MSG_LEASE_SECS", "3".into()),
        ("MSG_TWILIO__TIMEOUT_MS", "1000".into()),
        ("MSG_UNKNOWN_GRACE_SECS", "1".into()),
        ("MSG_UNKNOWN_DEADLINE_SECS", "4".into()),
        ("MSG_RECONCILE_INTERVAL_MS", "200".into()),
    ]
}

async fn start(name: &str, gateway: &[(&str, String)]) -> anyhow::Result<(Stack, Publisher, Dashboard)> {
    let stack = Stack::start_fresh_with(name, &[("sms-gateway", gateway)]).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"))).await?;
    let dashboard = Dashboard::connect(stack.ports.grpc, ACCOUNT).await?;
    Ok((stack, publisher, dashboard))
}

/// Books a job for a customer with only a phone: one SMS.
async fn book(publisher: &Publisher, n: usize, phone: &str) -> anyhow::Result<()> {
    let who = customer(&format!("cus_{n}"), "Dana Reyes", phone, "");
    let body = json!({"customer": who, "job": job(&format!("job_{n}"), Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event(&format!("e{n}"), "job.scheduled", ACCOUNT, Utc::now(), body)).await
}

/// Waits until customer `n`'s SMS has `status`; returns its failure reason.
async fn sms_reaches(dashboard: &Dashboard, n: usize, status: MessageStatus) -> anyhow::Result<String> {
    let customer = format!("cus_{n}");
    eventually(Duration::from_secs(60), &format!("{customer}'s SMS {status:?}"), || {
        let (mut dashboard, customer) = (dashboard.clone(), customer.clone());
        async move {
            let all = dashboard.all().await;
            let sms = all.iter().find(|m| m.customer.as_ref().is_some_and(|c| c.customer_id == customer))?;
            (sms.status == status as i32).then(|| sms.failure_reason.clone())
        }
    })
    .await
}

fn to(records: &[Value], phone: &str) -> usize {
    records.iter().filter(|r| r["to"] == phone).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_error_class_is_handled_as_it_must_be() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) = start("error-classes", &quick_gateway()).await?;
    let sim = stack.ports.sim;

    // Permanent refusals: failed with a normalised reason, never retried.
    book(&publisher, 1, "+15005550001").await?;
    book(&publisher, 2, "+15005550009").await?;
    assert_eq!(sms_reaches(&dashboard, 1, MessageStatus::Failed).await?, "invalid_number");
    assert_eq!(sms_reaches(&dashboard, 2, MessageStatus::Failed).await?, "not_sms_capable");

    // 429: waits (Retry-After) and retries until the provider takes it.
    sim_faults(sim, json!({"error_429_rate": 1.0})).await?;
    book(&publisher, 3, "+15125550103").await?;
    eventually(Duration::from_secs(30), "two refused tries", || async move {
        (to(&sim_requests(sim).await.ok()?, "+15125550103") >= 2).then_some(())
    })
    .await?;
    sim_faults(sim, json!({})).await?;
    sms_reaches(&dashboard, 3, MessageStatus::Delivered).await?;
    assert_eq!(to(&sim_messages(sim).await?, "+15125550103"), 1);
    let faults: Vec<Value> = sim_requests(sim)
        .await?
        .into_iter()
        .filter(|r| r["to"] == "+15125550103")
        .map(|r| r["fault"].clone())
        .collect();
    let (last, refused) = faults.split_last().expect("requests were made");
    assert!(last.is_null() && refused.iter().all(|f| f == "error_429"), "the simulator records its faults: {faults:?}");
    let metrics = stack.metrics("sms-gateway").await?;
    assert!(
        metrics.contains(r#"bus_errors_total{service="sms-gateway",class="provider"}"#),
        "429s are counted as provider errors:\n{metrics}"
    );

    // 500 before creating anything: ambiguous, so never resent; failed as send_unknown at the deadline.
    sim_faults(sim, json!({"error_500_rate": 1.0})).await?;
    book(&publisher, 4, "+15125550104").await?;
    assert_eq!(sms_reaches(&dashboard, 4, MessageStatus::Failed).await?, "send_unknown");
    sim_faults(sim, json!({})).await?;
    assert_eq!(to(&sim_requests(sim).await?, "+15125550104"), 1, "asked once, never blindly again");

    // Accepted, then a 500; accepted, then no answer in time: the list API shows it was sent.
    for (n, phone, fault) in [(5, "+15125550105", "accept_then_500_rate"), (6, "+15125550106", "timeout_rate")] {
        sim_faults(sim, json!({ fault: 1.0 })).await?;
        book(&publisher, n, phone).await?;
        sms_reaches(&dashboard, n, MessageStatus::Delivered).await?;
        sim_faults(sim, json!({})).await?;
        let requests = sim_requests(sim).await?;
        assert_eq!(to(&requests, phone), 1, "{fault}: one request");
        let recorded = requests.iter().find(|r| r["to"] == phone).map(|r| r["fault"].clone());
        assert_eq!(recorded, Some(json!(fault.trim_end_matches("_rate"))), "the simulator records {fault}");
        assert_eq!(to(&sim_messages(sim).await?, phone), 1, "{fault}: one message");
    }

    // Connection refused: certainly not sent, so retried until the provider is back.
    stack.sim.stop().await;
    book(&publisher, 7, "+15125550107").await?;
    let gateway = stack.health_ports["sms-gateway"];
    eventually(Duration::from_secs(30), "refused connections counted", || async move {
        let metrics = reqwest::get(format!("http://127.0.0.1:{gateway}/metrics")).await.ok()?.text().await.ok()?;
        metrics.contains("sms_gateway_provider_call_seconds_count{outcome=\"not_sent\"} 2").then_some(())
    })
    .await?;
    stack.sim.restart()?;
    wait_for_port(sim, "simulator").await?;
    sms_reaches(&dashboard, 7, MessageStatus::Delivered).await?;
    assert_eq!(to(&sim_requests(sim).await?, "+15125550107"), 1);
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sms_gateways_share_the_queue_and_send_each_message_once() -> anyhow::Result<()> {
    const MESSAGES: usize = 45;
    // 30 ms of provider latency, so no one process drains the queue before the others pull.
    let (mut stack, publisher, dashboard) = start("scale-out", &[]).await?;
    sim_faults(stack.ports.sim, json!({"latency_ms": 30})).await?;
    stack.start_replica("sms-gateway", &[]).await?;
    stack.start_replica("sms-gateway", &[]).await?;
    for n in 0..MESSAGES {
        book(&publisher, n, &format!("+1512555{:04}", 3000 + n)).await?;
    }
    dashboard.settled(MESSAGES).await?;
    let sent = sim_messages(stack.ports.sim).await?;
    assert_eq!(sent.len(), MESSAGES);
    let mut callbacks: Vec<&str> = sent.iter().filter_map(|m| m["status_callback"].as_str()).collect();
    callbacks.sort_unstable();
    callbacks.dedup();
    assert_eq!(callbacks.len(), MESSAGES, "each message id reached the provider once");
    let logs = stack.infra.dir.join("logs");
    let per_process: Vec<usize> = ["sms-gateway", "sms-gateway-2", "sms-gateway-3"]
        .iter()
        .map(|name| {
            let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
            log.matches("sms accepted by provider").count()
        })
        .collect();
    assert_eq!(per_process.iter().sum::<usize>(), MESSAGES, "{per_process:?}");
    assert!(per_process.iter().all(|&n| n > 0), "every process took a share: {per_process:?}");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_around_the_provider_call_never_sends_twice() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) = start("gateway-kill9", &quick_gateway()).await?;
    for (n, point) in ["after_claim", "after_provider", "after_record"].into_iter().enumerate() {
        let mut crashing = quick_gateway();
        crashing.push(("MSG_CRASH_AT", point.to_owned()));
        stack.restart_with("sms-gateway", &crashing).await?;
        let phone = format!("+1512555{:04}", 4000 + n);
        book(&publisher, n, &phone).await?;
        eventually(Duration::from_secs(30), &format!("the gateway to crash {point}"), || {
            let exited = stack.has_exited("sms-gateway");
            async move { exited.then_some(()) }
        })
        .await?;
        stack.restart_with("sms-gateway", &quick_gateway()).await?;
        sms_reaches(&dashboard, n, MessageStatus::Delivered).await?;
        // The crashed delivery comes back once its ack deadline passes and is settled, not resent.
        stack.quiesce().await?;
        let sim = stack.ports.sim;
        assert_eq!(to(&sim_messages(sim).await?, &phone), 1, "{point}: the provider has it once");
        assert_eq!(to(&sim_requests(sim).await?, &phone), 1, "{point}: and was asked once");
    }
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_number_rate_limit_holds_across_gateway_processes() -> anyhow::Result<()> {
    // About ten seconds of segments for one number: most messages wait well past max_wait, go back
    // to the queue for their slot, and must come back for it rather than run out of deliveries.
    const MESSAGES: usize = 20;
    const RATE: f64 = 4.0;
    let limited = [("MSG_RATE_LIMIT__SEGMENTS_PER_SECOND", RATE.to_string())];
    let (mut stack, publisher, dashboard) = start("rate-limit", &limited).await?;
    stack.start_replica("sms-gateway", &limited).await?;
    stack.start_replica("sms-gateway", &limited).await?;
    for n in 0..MESSAGES {
        book(&publisher, n, &format!("+1512555{:04}", 5000 + n)).await?;
    }
    dashboard.settled(MESSAGES).await?;
    let mut sent = sim_messages(stack.ports.sim).await?;
    sent.sort_by_key(|m| m["date_created"].as_str().unwrap_or_default().to_owned());
    let at = |m: &Value| m["date_created"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok());
    let (Some(first), Some(last)) = (sent.first().and_then(at), sent.last().and_then(at)) else {
        anyhow::bail!("no send times: {sent:#?}");
    };
    let segments: u64 = sent.iter().filter_map(|m| m["num_segments"].as_u64()).sum();
    let last_segments = sent.last().and_then(|m| m["num_segments"].as_u64()).unwrap_or(1);
    // Every segment before the last message's had to fit the schedule first (100 ms for clock noise).
    let floor = (segments - last_segments) as f64 / RATE - 0.1;
    let span = (last - first).num_milliseconds() as f64 / 1000.0;
    assert!(span >= floor, "{segments} segments at {RATE}/s went out over {span:.2}s, under {floor:.2}s");
    assert!(dashboard.clone().all().await.iter().all(|m| m.r#type == MessageType::AppointmentConfirmation as i32));
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_send_finishes_what_is_in_flight_and_loses_nothing() -> anyhow::Result<()> {
    const MESSAGES: usize = 12;
    let (mut stack, publisher, dashboard) = start("sigterm", &[]).await?;
    let sim = stack.ports.sim;
    // Slow provider calls, so the stop lands while sends are in flight.
    sim_faults(sim, json!({"latency_ms": 800})).await?;
    for n in 0..MESSAGES {
        book(&publisher, n, &format!("+1512555{:04}", 6000 + n)).await?;
    }
    let jetstream = async_nats::jetstream::new(async_nats::connect(stack.infra.nats_url()).await?);
    eventually(Duration::from_secs(30), "sends in flight", || {
        let jetstream = jetstream.clone();
        async move {
            let mut consumer = jetstream
                .get_stream("SEND_SMS")
                .await
                .ok()?
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>("sms-gateway")
                .await
                .ok()?;
            (consumer.info().await.ok()?.num_ack_pending > 0).then_some(())
        }
    })
    .await?;
    let stopping = std::time::Instant::now();
    stack.restart_with("sms-gateway", &[]).await?;
    let took = stopping.elapsed();
    let log = std::fs::read_to_string(stack.infra.dir.join("logs/sms-gateway.log"))?;
    assert!(!log.contains("did not finish within the grace period"), "in-flight sends finished before exit");
    dashboard.settled(MESSAGES).await?;
    stack.quiesce().await?;
    // Sends finished during the stop were acknowledged before exit: none came back. (A command the
    // pull had brought but no work had started on may come back, and is sent then, once.)
    let log = std::fs::read_to_string(stack.infra.dir.join("logs/sms-gateway.log"))?;
    assert!(!log.contains("already settled"), "a finished send came back after the stop ({took:?} to stop)");
    let sent = sim_messages(sim).await?;
    assert_eq!(sent.len(), MESSAGES, "every message sent");
    assert_eq!(sim_requests(sim).await?.len(), MESSAGES, "and none twice");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stuck_in_sent_is_settled_by_asking_the_provider() -> anyhow::Result<()> {
    // Status callbacks go to a port nobody listens on: they are lost, as callbacks sometimes are.
    let lost_callbacks = [("MSG_CALLBACK_BASE_URL", "http://127.0.0.1:9".to_owned())];
    let quick_check = [
        ("MSG_STUCK_AFTER_SECS", "1".to_owned()),
        ("MSG_STUCK_CHECK_INTERVAL_MS", "200".to_owned()),
        ("MSG_DELIVERY_UNKNOWN_AFTER_SECS", "2".to_owned()),
    ];
    let overrides: [(&str, &[(&str, String)]); 2] =
        [("sms-gateway", &lost_callbacks), ("delivery-status", &quick_check)];
    let mut stack = Stack::start_fresh_with("stuck", &overrides).await?;
    // The simulator gives up on a callback at once rather than retrying it for seconds.
    sim_faults(stack.ports.sim, json!({"callback_delay_ms": 100, "callback_retries": 0})).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"))).await?;
    let dashboard = Dashboard::connect(stack.ports.grpc, ACCOUNT).await?;
    book(&publisher, 1, "+15125550111").await?;
    sms_reaches(&dashboard, 1, MessageStatus::Delivered).await?;
    let sent = sim_messages(stack.ports.sim).await?;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["callbacks_delivered"], 0, "no callback reached us: the provider was asked");

    // A message the provider never gets past `sent`: after a while the feed says its delivery is unknown.
    sim_faults(stack.ports.sim, json!({"callback_delay_ms": 100, "callback_retries": 0, "outcome": "sent"})).await?;
    book(&publisher, 2, "+15125550112").await?;
    let unknown = eventually(Duration::from_secs(30), "delivery unknown", || {
        let mut dashboard = dashboard.clone();
        async move {
            let all = dashboard.all().await;
            all.into_iter()
                .find(|m| m.delivery_unknown && m.customer.as_ref().is_some_and(|c| c.customer_id == "cus_2"))
        }
    })
    .await?;
    assert_eq!(unknown.status, MessageStatus::Sent as i32, "still sent, and honestly unconfirmed");
    let first = dashboard
        .clone()
        .all()
        .await
        .into_iter()
        .find(|m| m.customer.as_ref().is_some_and(|c| c.customer_id == "cus_1"));
    assert!(first.is_some_and(|m| !m.delivery_unknown), "a delivered message is not unknown");
    stack.stop().await;
    Ok(())
}

/// Sends a manual SMS to `customer`; returns its message id.
async fn manual(dashboard: &Dashboard, request_id: &str, customer: &str, text: &str) -> anyhow::Result<String> {
    let request = SendMessageRequest {
        request_id: request_id.into(),
        customer_id: customer.into(),
        channel: Channel::Sms as i32,
        text: text.into(),
        subject: String::new(),
    };
    Ok(dashboard.grpc().send_message(dashboard.authed(request)).await?.into_inner().message_id)
}

/// Waits until message `id` has `status`; returns its failure reason.
async fn message_reaches(dashboard: &Dashboard, id: &str, status: MessageStatus) -> anyhow::Result<String> {
    eventually(Duration::from_secs(60), &format!("{id} {status:?}"), || {
        let mut dashboard = dashboard.clone();
        async move {
            let all = dashboard.all().await;
            let message = all.into_iter().find(|m| m.message_id == id)?;
            (message.status == status as i32).then_some(message.failure_reason)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_takes_only_the_claims_own_message_queued_or_sent_through_a_service() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) = start("reconcile", &quick_gateway()).await?;
    let sim = stack.ports.sim;
    let phone = "+15125550121";
    book(&publisher, 1, phone).await?;
    sms_reaches(&dashboard, 1, MessageStatus::Delivered).await?;

    // The same words to the same customer twice; the second meets a 500 before the provider took it.
    // The first is the provider's only such message, and it is the first's: the second is not sent.
    let first = manual(&dashboard, "r1", "cus_1", "On my way!").await?;
    message_reaches(&dashboard, &first, MessageStatus::Delivered).await?;
    sim_faults(sim, json!({"error_500_rate": 1.0})).await?;
    let second = manual(&dashboard, "r2", "cus_1", "On my way!").await?;
    assert_eq!(message_reaches(&dashboard, &second, MessageStatus::Failed).await?, "send_unknown");

    // Accepted but still queued at the provider (no date_sent yet), then a 500: it is found, so sent.
    sim_faults(sim, json!({"accept_then_500_rate": 1.0, "outcome": "queued"})).await?;
    let queued = manual(&dashboard, "r3", "cus_1", "Running 10 minutes late").await?;
    message_reaches(&dashboard, &queued, MessageStatus::Sent).await?;

    // Through a messaging service the provider picks the number (none while `accepted`): found too.
    sim_faults(sim, json!({})).await?;
    let mut service = quick_gateway();
    service.push(("MSG_TWILIO__MESSAGING_SERVICE_SID", "MG00000000000000000000000000000001".into()));
    stack.restart_with("sms-gateway", &service).await?;
    sim_faults(sim, json!({"accept_then_500_rate": 1.0, "outcome": "queued"})).await?;
    let serviced = manual(&dashboard, "r4", "cus_1", "The part arrived").await?;
    message_reaches(&dashboard, &serviced, MessageStatus::Sent).await?;
    sim_faults(sim, json!({})).await?;

    let requests = sim_requests(sim).await?;
    let asked = |body: &str| requests.iter().filter(|r| r["to"] == phone && r["body"] == body).count();
    assert_eq!(
        (asked("On my way!"), asked("Running 10 minutes late"), asked("The part arrived")),
        (2, 1, 1),
        "each asked once; nothing resent"
    );
    stack.stop().await;
    Ok(())
}
