//! kill -9 of each service in the middle of the path loses nothing and sends nothing twice; nor
//! does dispatch aborting at the worst moment for publishing after commit (committed, unpublished).

use std::collections::HashMap;
use std::time::Duration;

use messaging_integration_tests::client::{
    Dashboard, Publisher, account_updated, job_scheduled, sim_messages, start_with,
};
use messaging_integration_tests::stack::SERVICES;
use messaging_integration_tests::{Ports, Scratch, Stack, eventually, wait_for_port};
use messaging_proto::v1::{Channel, MessageStatus};

const EVENTS_PER_KILL: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_any_service_mid_path_loses_nothing_and_doubles_nothing() -> anyhow::Result<()> {
    let dir = Scratch::new("e2e-crash");
    let mut stack = Stack::start(&dir, Ports::default(), false).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account_updated("evt_acc", "acc_ace")).await?;

    let mut published = 0;
    for (round, service) in SERVICES.iter().enumerate() {
        for i in 0..EVENTS_PER_KILL {
            let n = round * EVENTS_PER_KILL + i;
            let phone = format!("+1512555{:04}", 1000 + n);
            let email = format!("customer{n}@example.com");
            publisher
                .event(&job_scheduled(&format!("evt_{n}"), "acc_ace", &format!("cus_{n}"), &phone, &email))
                .await?;
            published += 1;
        }
        tokio::time::sleep(Duration::from_millis(40 + 30 * round as u64)).await;
        stack.kill9(service).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stack.restart(service)?;
    }

    let expected = published * 2;
    wait_for_port(stack.ports.grpc, "feed after its restart").await?;
    let dashboard = Dashboard::connect(stack.ports.grpc, "acc_ace").await?;
    let messages = eventually(Duration::from_secs(150), "every SMS delivered and every email settled", || {
        let mut dashboard = dashboard.clone();
        async move {
            let all = dashboard.all().await;
            let settled = all.iter().all(|m| {
                if m.channel == Channel::Sms as i32 {
                    m.status == MessageStatus::Delivered as i32
                } else {
                    m.status == MessageStatus::Sent as i32 || m.status == MessageStatus::Unknown as i32
                }
            });
            (all.len() >= expected && settled).then_some(all)
        }
    })
    .await?;
    assert_eq!(messages.len(), expected, "exactly one SMS and one email per event");

    // The provider saw each SMS message id at most once, and every SMS exactly once.
    let sent = sim_messages(stack.ports.sim).await?;
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for message in &sent {
        let callback = message["status_callback"].as_str().unwrap_or_default();
        *per_message.entry(callback.to_owned()).or_default() += 1;
    }
    let doubled: Vec<_> = per_message.iter().filter(|(_, count)| **count > 1).collect();
    assert!(doubled.is_empty(), "duplicate provider sends: {doubled:?}");
    assert_eq!(sent.len(), published, "one SMS per event at the provider");

    // The SMTP server got no message twice, and one per email the feed calls sent.
    let mails = stack.mails();
    let mut ids: Vec<String> = mails
        .iter()
        .filter_map(|m| m.lines().find(|l| l.to_ascii_lowercase().starts_with("message-id:")).map(str::to_owned))
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "an email was sent twice");
    let emails = |status: MessageStatus| {
        messages.iter().filter(|m| m.channel == Channel::Email as i32 && m.status == status as i32).count()
    };
    let (emails_sent, emails_unknown) = (emails(MessageStatus::Sent), emails(MessageStatus::Unknown));
    // A gateway killed between the relay's acceptance and recording it leaves the email `unknown`
    // (SMTP has no way to ask): it may or may not have arrived, but never twice.
    assert!(
        (emails_sent..=emails_sent + emails_unknown).contains(&total),
        "{total} emails at the SMTP server; the feed calls {emails_sent} sent and {emails_unknown} unknown"
    );
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_killed_between_its_commit_and_its_publishes_loses_nothing_and_doubles_nothing() -> anyhow::Result<()>
{
    let (mut stack, publisher, dashboard) =
        start_with("crash-dispatch", &account_updated("evt_acc", "acc_ace")).await?;
    stack.restart_with("dispatch", &[("MSG_CRASH_AT", "after_commit".to_owned())]).await?;
    publisher.event(&job_scheduled("evt_1", "acc_ace", "cus_1", "+15125550177", "dana@example.com")).await?;
    eventually(Duration::from_secs(30), "dispatch to crash after its commit", || {
        let exited = stack.has_exited("dispatch");
        async move { exited.then_some(()) }
    })
    .await?;
    // The messages are committed and nothing went out: the request was not acked.
    assert!(sim_messages(stack.ports.sim).await?.is_empty() && stack.mails().is_empty());
    stack.restart_with("dispatch", &[]).await?;
    // Redelivered, the request finds its messages and publishes them; each is sent once.
    let messages = dashboard.settled(2).await?;
    stack.quiesce().await?;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let texts = sim_messages(stack.ports.sim).await?;
    assert_eq!(texts.iter().filter(|m| m["to"] == "+15125550177").count(), 1, "{texts:#?}");
    assert_eq!(stack.mails().len(), 1);
    stack.stop().await;
    Ok(())
}
