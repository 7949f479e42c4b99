//! `make bench-gateways`: SMS gateway throughput with 1, 2 and 4 processes against the simulator
//! (50 ms provider latency, no per-number limit), each beside its floor: the same provider calls
//! made directly with the gateways' total concurrency. Then the per-number limit, turned on,
//! holding across three processes.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use messaging_domain::{Channel, MessageId};
use messaging_integration_tests::client::{Publisher, sim_faults, sim_messages};
use messaging_integration_tests::stack::{TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN};
use messaging_integration_tests::{Stack, setting};
use messaging_proto::bus::SendCommand;
use prost::Message as _;
use serde_json::{Value, json};

const ACCOUNT: &str = "acc_bench";
const FROM: &str = "+15125550100";
const CONCURRENCY_PER_PROCESS: usize = 32;

fn command(n: usize, from: &str) -> SendCommand {
    SendCommand {
        message_id: MessageId::from_u128(uuid::Uuid::new_v4().as_u128()).to_string(),
        account_id: ACCOUNT.into(),
        channel: Channel::Sms.to_proto(),
        to: format!("+1737555{:04}", n % 10_000),
        from: from.into(),
        body: format!("Ace Plumbing: benchmark message {n}"),
        segments: 1,
        ..Default::default()
    }
}

async fn sim_count(port: u16) -> anyhow::Result<u64> {
    let stats: Value = reqwest::get(format!("http://127.0.0.1:{port}/sim/stats")).await?.json().await?;
    Ok(stats["messages"].as_u64().unwrap_or(0))
}

/// Publishes `count` send commands and returns how long until the simulator accepted them all.
async fn run(stack: &Stack, publisher: &Publisher, count: usize, from: &str) -> anyhow::Result<Duration> {
    let port = stack.ports.sim;
    let target = sim_count(port).await? + count as u64;
    let started = Instant::now();
    for n in 0..count {
        let command = command(n, from);
        publisher.raw(&format!("send.sms.{ACCOUNT}"), &command.message_id.clone(), command.encode_to_vec()).await?;
    }
    while sim_count(port).await? < target {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "the gateways did not finish in 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

/// The floor: `count` creates straight at the simulator, `concurrency` at a time.
async fn floor(port: u16, count: usize, concurrency: usize) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json");
    let started = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..count)
        .map(|n| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let form =
                    [("To", format!("+1737555{:04}", n % 10_000)), ("From", FROM.into()), ("Body", "floor".into())];
                http.post(url)
                    .basic_auth(TWILIO_ACCOUNT_SID, Some(TWILIO_AUTH_TOKEN))
                    .form(&form)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    anyhow::ensure!(results.iter().all(|ok| *ok), "the simulator refused floor requests");
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = setting("BENCH_MESSAGES", 1000);
    let mut stack = Stack::start_fresh("bench-gateways").await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    sim_faults(stack.ports.sim, json!({"latency_ms": 50, "callback_delay_ms": 0})).await?;
    println!("sms-gateway throughput: {count} messages, provider latency 50 ms, no per-number limit");
    println!("{:>9} {:>12} {:>14} {:>8}", "processes", "messages/s", "floor msgs/s", "ratio");
    for processes in [1, 2, 4] {
        stack.stop_replicas().await;
        for _ in 1..processes {
            stack.start_replica("sms-gateway", &[]).await?;
        }
        // Warm-up: connections, prepared statements, the consumer's first pulls.
        run(&stack, &publisher, 50, FROM).await?;
        let took = run(&stack, &publisher, count, FROM).await?;
        let floor_took = floor(stack.ports.sim, count, processes * CONCURRENCY_PER_PROCESS).await?;
        let rate = count as f64 / took.as_secs_f64();
        let floor_rate = count as f64 / floor_took.as_secs_f64();
        println!("{processes:>9} {rate:>12.0} {floor_rate:>14.0} {:>8.2}", rate / floor_rate);
    }

    const LIMIT: f64 = 5.0;
    const LIMITED: usize = 30;
    let limited = [("MSG_RATE_LIMIT__SEGMENTS_PER_SECOND", LIMIT.to_string())];
    stack.stop_replicas().await;
    stack.restart_with("sms-gateway", &limited).await?;
    stack.start_replica("sms-gateway", &limited).await?;
    stack.start_replica("sms-gateway", &limited).await?;
    let from = "+15125550177";
    run(&stack, &publisher, LIMITED, from).await?;
    let mut times: Vec<chrono::DateTime<chrono::Utc>> = sim_messages(stack.ports.sim)
        .await?
        .iter()
        .filter(|m| m["from"] == from)
        .filter_map(|m| m["date_created"].as_str().and_then(|t| t.parse().ok()))
        .collect();
    times.sort();
    let span = times.last().zip(times.first()).map(|(l, f)| (*l - *f).num_milliseconds()).unwrap_or(0) as f64 / 1000.0;
    println!(
        "per-number limit {LIMIT} segments/s, 3 processes, {LIMITED} one-segment messages: observed {:.2} segments/s",
        (times.len().saturating_sub(1)) as f64 / span.max(0.001)
    );
    stack.stop().await;
    Ok(())
}
