//! Batched consumers: a backlog is taken many messages to a transaction; a bad message in a batch
//! is dead-lettered on its own and its neighbours are still applied, each exactly once.

use std::collections::HashMap;
use std::time::Duration;

use messaging_integration_tests::client::{
    account_updated, dead_letter_reasons, job_scheduled, sim_messages, start_with,
};
use messaging_integration_tests::eventually;
use messaging_proto::v1::{Channel, MessageStatus};

const EVENTS: usize = 40;

/// The value of the sample `name{labels…}` where every one of `labels` appears, if exposed.
fn sample(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_goes_in_batches_and_a_bad_message_spoils_only_itself() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) = start_with("batches", &account_updated("evt_acc", "acc_ace")).await?;
    eventually(Duration::from_secs(30), "the account applied", || {
        let stack = &stack;
        async move {
            let metrics = stack.metrics("ingest").await.ok()?;
            sample(&metrics, "bus_messages_handled_total", &[r#"kind="account.updated""#, r#"outcome="ack""#])
        }
    })
    .await?;

    // A backlog while ingest is down: good events, each also published a second time under
    // another broker id (so only ingest's dedupe can catch it), and three bad ones among them.
    stack.kill9("ingest").await?;
    for n in 0..EVENTS {
        let event =
            job_scheduled(&format!("evt_{n}"), "acc_ace", &format!("cus_{n}"), &format!("+1512555{:04}", 3000 + n), "");
        publisher.event(&event).await?;
        publisher.raw("jobs.acc_ace.job.scheduled", &format!("evt_{n}-again"), serde_json::to_vec(&event)?).await?;
        match n {
            10 => publisher.raw("jobs.acc_ace.job.scheduled", "bad_json", b"{\"event_id\": ".to_vec()).await?,
            20 => publisher.event(&job_scheduled("bad_phone", "acc_ace", "cus_x", "call the office", "")).await?,
            30 => {
                let foreign = job_scheduled("bad_subject", "acc_ace", "cus_y", "+15125559999", "");
                publisher.raw("jobs.acc_evil.job.scheduled", "bad_subject", serde_json::to_vec(&foreign)?).await?;
            }
            _ => {}
        }
    }
    stack.restart("ingest")?;

    let messages = dashboard.settled(EVENTS).await?;
    assert_eq!(messages.len(), EVENTS, "one SMS per good event, none for the bad or repeated ones");
    assert!(messages.iter().all(|m| m.channel == Channel::Sms as i32 && m.status == MessageStatus::Delivered as i32));
    let mut per_customer: HashMap<String, usize> = HashMap::new();
    for message in &messages {
        *per_customer
            .entry(message.customer.as_ref().map(|c| c.customer_id.clone()).unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(per_customer.len(), EVENTS, "every good event's customer, once each: {per_customer:?}");
    assert_eq!(sim_messages(stack.ports.sim).await?.len(), EVENTS, "one SMS per good event at the provider");

    let dead = dead_letter_reasons(&stack.infra.nats_url(), "dlq.ingest.>").await?;
    assert_eq!(dead.len(), 3, "the three bad events, each dead-lettered once: {dead:#?}");
    for expected in ["malformed JSON", "invalid customer phone", "does not match"] {
        assert!(dead.iter().any(|reason| reason.contains(expected)), "no dead letter says {expected:?}: {dead:#?}");
    }

    // The backlog went in batches, and a bad message rolled back only its batch, which was then
    // handled message by message.
    let metrics = stack.metrics("ingest").await?;
    let ingest = r#"consumer="ingest""#;
    let batches = sample(&metrics, "bus_batch_messages_count", &[ingest]).unwrap_or(0.0);
    let singles = sample(&metrics, "bus_batch_messages_bucket", &[ingest, r#"le="1.0""#]).unwrap_or(0.0);
    assert!(batches > singles, "some batch held more than one message:\n{metrics}");
    assert!(
        sample(&metrics, "bus_batches_split_total", &[ingest]).unwrap_or(0.0) >= 1.0,
        "a batch with a bad message was split:\n{metrics}"
    );
    stack.stop().await;
    Ok(())
}
