//! End to end through every service: a job event in, a delivered SMS and a sent email visible in
//! the feed over gRPC; bad events dead-lettered with a reason while the system keeps serving.

use std::time::Duration;

use futures::StreamExt as _;
use messaging_integration_tests::client::{Dashboard, Publisher, account_updated, job_scheduled, sim_messages};
use messaging_integration_tests::{Ports, Scratch, Stack, eventually};
use messaging_proto::v1::{Channel, Direction, MessageStatus, MessageType};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_is_confirmed_by_sms_and_email() -> anyhow::Result<()> {
    let dir = Scratch::new("e2e-path");
    let mut stack = Stack::start(&dir, Ports::default(), false).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account_updated("evt_acc_1", "acc_ace")).await?;
    publisher.event(&job_scheduled("evt_job_1", "acc_ace", "cus_42", "+1 (512) 555-0199", "dana@example.com")).await?;
    // The same event again, as an at-least-once publisher would send it: nothing doubles.
    publisher.event(&job_scheduled("evt_job_1", "acc_ace", "cus_42", "+1 (512) 555-0199", "dana@example.com")).await?;

    let dashboard = Dashboard::connect(stack.ports.grpc, "acc_ace").await?;
    let messages = eventually(Duration::from_secs(60), "a delivered SMS and a sent email in the feed", || {
        let mut dashboard = dashboard.clone();
        async move {
            let all = dashboard.all().await;
            let sms_delivered =
                all.iter().any(|m| m.channel == Channel::Sms as i32 && m.status == MessageStatus::Delivered as i32);
            let email_sent =
                all.iter().any(|m| m.channel == Channel::Email as i32 && m.status == MessageStatus::Sent as i32);
            (sms_delivered && email_sent).then_some(all)
        }
    })
    .await?;
    assert_eq!(messages.len(), 2, "one SMS and one email: {messages:#?}");
    let sms = messages.iter().find(|m| m.channel == Channel::Sms as i32).expect("sms");
    assert_eq!(sms.r#type, MessageType::AppointmentConfirmation as i32);
    assert_eq!(sms.direction, Direction::Outbound as i32);
    let customer = sms.customer.clone().unwrap_or_default();
    assert_eq!(customer.name, "Dana Reyes");
    assert_eq!(customer.phone, "+15125550199");
    assert!(sms.sent_at.is_some(), "time sent is shown");
    assert!(sms.preview.contains("Water heater install"), "{}", sms.preview);

    let sent = sim_messages(stack.ports.sim).await?;
    assert_eq!(sent.len(), 1, "the provider got exactly one SMS: {sent:#?}");
    assert_eq!(sent[0]["to"], "+15125550199");
    assert_eq!(sent[0]["from"], messaging_integration_tests::events::business_number("acc_ace"));

    eventually(Duration::from_secs(20), "one email at the SMTP server", || {
        let count = stack.mail_count();
        async move { (count >= 1).then_some(()) }
    })
    .await?;
    let mails = stack.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.contains("To: dana@example.com"), "{mail}");
    assert!(mail.contains("Subject: Your appointment with Ace Plumbing is confirmed"), "{mail}");
    assert!(mail.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{mail}");

    // Another account sees none of it.
    let mut stranger = Dashboard::connect(stack.ports.grpc, "acc_other").await?;
    assert!(stranger.all().await.is_empty());
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_job_events_are_dead_lettered_and_change_nothing() -> anyhow::Result<()> {
    let dir = Scratch::new("e2e-dlq");
    let mut stack = Stack::start(&dir, Ports::default(), false).await?;
    let publisher = Publisher::connect(&stack.infra.nats_url()).await?;
    publisher.event(&account_updated("evt_acc_1", "acc_ace")).await?;

    publisher.raw("jobs.acc_ace.job.scheduled", "bad_json", b"{\"event_id\": ".to_vec()).await?;
    let mut unknown = job_scheduled("bad_type", "acc_ace", "cus_1", "+15125550199", "");
    unknown["type"] = "job.exploded".into();
    publisher.raw("jobs.acc_ace.job.exploded", "bad_type", serde_json::to_vec(&unknown)?).await?;
    let mut no_customer = job_scheduled("bad_customer", "acc_ace", "cus_1", "+15125550199", "");
    no_customer.as_object_mut().map(|o| o.remove("customer"));
    publisher.event(&no_customer).await?;
    publisher.event(&job_scheduled("bad_phone", "acc_ace", "cus_1", "call the office", "")).await?;
    let wrong_account = job_scheduled("bad_subject", "acc_ace", "cus_1", "+15125550199", "");
    publisher.raw("jobs.acc_evil.job.scheduled", "bad_subject", serde_json::to_vec(&wrong_account)?).await?;
    // A good event after the bad ones is still served.
    publisher.event(&job_scheduled("good_1", "acc_ace", "cus_2", "+15125550142", "")).await?;

    let client = async_nats::connect(stack.infra.nats_url()).await?;
    let jetstream = async_nats::jetstream::new(client);
    let reasons = eventually(Duration::from_secs(30), "five dead letters", || {
        let jetstream = jetstream.clone();
        async move {
            let stream = jetstream.get_stream("DEAD_LETTER").await.ok()?;
            let consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::Config {
                    filter_subject: "dlq.ingest.>".into(),
                    ..Default::default()
                })
                .await
                .ok()?;
            let mut batch =
                consumer.fetch().max_messages(20).expires(Duration::from_millis(500)).messages().await.ok()?;
            let mut reasons = Vec::new();
            while let Some(Ok(message)) = batch.next().await {
                let header = message.headers.as_ref().and_then(|h| h.get("Dlq-Reason")).map(|v| v.as_str().to_owned());
                reasons.push(header.unwrap_or_default());
            }
            (reasons.len() >= 5).then_some(reasons)
        }
    })
    .await?;
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    let joined = reasons.join("\n");
    for expected in [
        "malformed JSON",
        "unknown event type \"job.exploded\"",
        "missing required field customer",
        "invalid customer phone",
        "does not match",
    ] {
        assert!(joined.contains(expected), "no dead letter says {expected:?}:\n{joined}");
    }

    let dashboard = Dashboard::connect(stack.ports.grpc, "acc_ace").await?;
    let all = eventually(Duration::from_secs(60), "the good event's SMS", || {
        let mut dashboard = dashboard.clone();
        async move {
            let all = dashboard.all().await;
            all.iter().any(|m| m.status == MessageStatus::Delivered as i32).then_some(all)
        }
    })
    .await?;
    assert_eq!(all.len(), 1, "only the good event produced a message: {all:#?}");
    assert_eq!(all[0].customer.clone().unwrap_or_default().customer_id, "cus_2");
    stack.stop().await;
    Ok(())
}
