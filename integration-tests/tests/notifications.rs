//! Every trigger end to end through real nats-server and Postgres, exactly once under duplicate
//! and replayed events, on-my-way throttled, and opted-out recipients refused with a reason.

use chrono::{Duration, Utc};
use messaging_integration_tests::client::{count, sim_messages, sim_requests, start_with};
use messaging_integration_tests::events::{account, customer, event, invoice, job, payment};
use messaging_proto::bus::OptOutChanged;
use messaging_proto::v1::{Channel, MessageStatus, MessageType};
use prost::Message as _;
use serde_json::json;

const ACCOUNT: &str = "acc_ace";
const NO_QUIET_HOURS: (&str, &str) = ("00:00", "00:00");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trigger_sends_its_message_on_every_usable_channel() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) =
        start_with("triggers", &account("evt_acc", ACCOUNT, "America/Chicago", NO_QUIET_HOURS)).await?;
    let now = Utc::now();
    let dana = customer("cus_dana", "Dana Reyes", "+1 (512) 555-0199", "dana@example.com");
    let the_job = job("job_1", now + Duration::days(2));
    let mut pat = customer("cus_pat", "Pat Lee", "(512) 555-0142", "pat@example.com");
    pat["notifications"]["sms"] = false.into();
    let ghost = customer("cus_ghost", "Ghost Town", "", "");
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, now, json!({"customer": dana, "job": the_job}))).await?;
    publisher.event(&event("e2", "job.en_route", ACCOUNT, now, json!({"customer": dana, "job": the_job}))).await?;
    // Events are applied concurrently: a completion applied first would rightly drop the on-my-way.
    dashboard.settled(3).await?;
    for (id, kind, objects) in [
        ("e3", "job.completed", json!({"customer": dana, "job": the_job, "invoice": invoice("inv_1")})),
        ("e4", "invoice.sent", json!({"customer": dana, "invoice": invoice("inv_1")})),
        ("e5", "payment.received", json!({"customer": dana, "payment": payment("pay_1", "inv_1")})),
        ("e6", "job.scheduled", json!({"customer": pat, "job": job("job_2", now + Duration::days(3))})),
        ("e7", "job.scheduled", json!({"customer": ghost, "job": job("job_3", now + Duration::days(3))})),
    ] {
        publisher.event(&event(id, kind, ACCOUNT, now, objects)).await?;
    }

    let messages = dashboard.settled(10).await?;
    stack.quiesce().await?;
    assert_eq!(messages.len(), 10, "{messages:#?}");
    for kind in [
        MessageType::AppointmentConfirmation,
        MessageType::JobCompleted,
        MessageType::PaymentLink,
        MessageType::PaymentReceipt,
    ] {
        assert_eq!(count(&messages, "cus_dana", kind, Channel::Sms), 1, "{kind:?} by SMS");
        assert_eq!(count(&messages, "cus_dana", kind, Channel::Email), 1, "{kind:?} by email");
    }
    assert_eq!(count(&messages, "cus_dana", MessageType::OnMyWay, Channel::Sms), 1);
    assert_eq!(count(&messages, "cus_dana", MessageType::OnMyWay, Channel::Email), 0, "on-my-way is SMS only");
    assert_eq!(count(&messages, "cus_pat", MessageType::AppointmentConfirmation, Channel::Email), 1);
    assert_eq!(count(&messages, "cus_pat", MessageType::AppointmentConfirmation, Channel::Sms), 0, "SMS turned off");
    assert!(messages.iter().all(|m| m.customer.as_ref().is_some_and(|c| c.customer_id != "cus_ghost")));

    // The provider got Dana's five SMS; only the first to her number carries the opt-out notice.
    let sent = sim_messages(stack.ports.sim).await?;
    let to_dana: Vec<&str> =
        sent.iter().filter(|m| m["to"] == "+15125550199").filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(to_dana.len(), 5, "{to_dana:#?}");
    assert_eq!(to_dana.iter().filter(|b| b.ends_with("Reply STOP to opt out.")).count(), 1, "{to_dana:#?}");
    // Only on-my-way carries a ValidityPeriod (30 minutes by default): late, it expires instead of arriving.
    let validity: Vec<(bool, Option<u64>)> = sent
        .iter()
        .filter(|m| m["to"] == "+15125550199")
        .map(|m| (m["body"].as_str().unwrap_or_default().contains("on the way"), m["validity_period"].as_u64()))
        .collect();
    assert!(validity.iter().all(|(omw, period)| *period == omw.then_some(1800)), "{validity:?}");
    let mails = stack.mails();
    assert_eq!(mails.len(), 5, "four emails to Dana, one to Pat");
    for subject in [
        "Subject: Your appointment with Ace Plumbing is confirmed",
        "Subject: Your Water heater install is complete",
        "Subject: Invoice INV-1042 from Ace Plumbing",
        "Subject: Payment received: thank you from Ace Plumbing",
    ] {
        assert!(mails.iter().any(|m| m.contains(subject)), "no mail with {subject}");
    }

    // Nobody could be reached for the ghost's job: counted, not sent.
    let metrics = stack.metrics("dispatch").await?;
    assert!(metrics.contains("dispatch_no_usable_channel_total{type=\"appointment_confirmation\"} 1"), "{metrics}");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_replays_yield_one_message_per_event_type_and_channel() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) =
        start_with("duplicates", &account("evt_acc", ACCOUNT, "America/Chicago", NO_QUIET_HOURS)).await?;
    let dana = customer("cus_dana", "Dana Reyes", "+15125550199", "dana@example.com");
    let scheduled = event(
        "evt_dup",
        "job.scheduled",
        ACCOUNT,
        Utc::now(),
        json!({"customer": dana, "job": job("job_1", Utc::now() + Duration::days(2))}),
    );
    let payload = serde_json::to_vec(&scheduled)?;
    // Five times within JetStream's duplicate window (same Nats-Msg-Id)…
    for _ in 0..5 {
        publisher.event(&scheduled).await?;
    }
    // …and three times as a publisher would after the window, when JetStream no longer remembers the id.
    for retry in 0..3 {
        publisher
            .raw(&format!("jobs.{ACCOUNT}.job.scheduled"), &format!("after-window-{retry}"), payload.clone())
            .await?;
    }
    dashboard.settled(2).await?;
    stack.quiesce().await?;

    // A crash that loses consumer state: ingest and dispatch re-read their whole streams.
    let jetstream = async_nats::jetstream::new(async_nats::connect(stack.infra.nats_url()).await?);
    for (service, stream) in [("ingest", "JOB_EVENTS"), ("dispatch", "NOTIFY")] {
        stack.kill9(service).await?;
        jetstream.get_stream(stream).await?.delete_consumer(service).await?;
        stack.restart(service)?;
    }
    stack.quiesce().await?;

    let messages = dashboard.settled(2).await?;
    assert_eq!(messages.len(), 2, "one SMS and one email: {messages:#?}");
    assert_eq!(sim_requests(stack.ports.sim).await?.len(), 1, "the provider was asked once");
    assert_eq!(stack.mails().len(), 1, "the SMTP server got one email");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_my_way_goes_at_most_once_per_five_minutes_and_never_after_completion() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) =
        start_with("on-my-way", &account("evt_acc", ACCOUNT, "America/Chicago", NO_QUIET_HOURS)).await?;
    // Event times an hour and ten minutes back, so none is ahead of the receiver's clock.
    let t0 = Utc::now() - Duration::minutes(71);
    let dana = customer("cus_dana", "Dana Reyes", "+15125550199", "");
    let the_job = job("job_1", Utc::now() + Duration::hours(1));
    let body = json!({"customer": dana, "job": the_job});
    publisher.event(&event("omw_1", "job.en_route", ACCOUNT, t0, body.clone())).await?;
    publisher.event(&event("omw_2", "job.en_route", ACCOUNT, t0 + Duration::minutes(2), body.clone())).await?;
    publisher.event(&event("omw_3", "job.en_route", ACCOUNT, t0 + Duration::minutes(4), body.clone())).await?;
    dashboard.settled(1).await?;
    stack.quiesce().await?;
    publisher.event(&event("omw_4", "job.en_route", ACCOUNT, t0 + Duration::minutes(11), body.clone())).await?;
    dashboard.settled(2).await?;
    let completed = json!({"customer": dana, "job": the_job, "invoice": invoice("inv_1")});
    publisher.event(&event("done", "job.completed", ACCOUNT, t0 + Duration::minutes(60), completed)).await?;
    dashboard.settled(3).await?;
    // The tech taps "On my way" on a finished job: dropped.
    publisher.event(&event("omw_5", "job.en_route", ACCOUNT, t0 + Duration::minutes(70), body)).await?;
    stack.quiesce().await?;

    let messages = dashboard.settled(3).await?;
    assert_eq!(count(&messages, "cus_dana", MessageType::OnMyWay, Channel::Sms), 2, "{messages:#?}");
    assert_eq!(count(&messages, "cus_dana", MessageType::JobCompleted, Channel::Sms), 1);
    assert_eq!(messages.len(), 3);
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_out_customer_gets_no_automated_sms_and_the_feed_says_why() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) =
        start_with("opt-out", &account("evt_acc", ACCOUNT, "America/Chicago", NO_QUIET_HOURS)).await?;
    // The simulator answers 21610 (unsubscribed) for this number, as Twilio's test number does.
    let lee = customer("cus_lee", "Lee Park", "+15005550004", "lee@example.com");
    let now = Utc::now();
    let first = json!({"customer": lee, "job": job("job_1", now + Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, now, first)).await?;
    dashboard.settled(2).await?;
    stack.quiesce().await?;

    publisher
        .event(&event("e2", "invoice.sent", ACCOUNT, now, json!({"customer": lee, "invoice": invoice("inv_1")})))
        .await?;
    let messages = dashboard.settled(4).await?;
    stack.quiesce().await?;

    let refused: Vec<_> = messages
        .iter()
        .filter(|m| m.r#type == MessageType::PaymentLink as i32 && m.channel == Channel::Sms as i32)
        .collect();
    assert_eq!(refused.len(), 1, "{messages:#?}");
    assert_eq!(refused[0].status, MessageStatus::Failed as i32);
    assert_eq!(refused[0].failure_reason, "opted_out");
    let email = messages
        .iter()
        .find(|m| m.r#type == MessageType::PaymentLink as i32 && m.channel == Channel::Email as i32)
        .expect("the payment link by email");
    assert_eq!(email.status, MessageStatus::Sent as i32, "email is another channel: still sent");
    let requests = sim_requests(stack.ports.sim).await?;
    assert_eq!(requests.len(), 1, "only the first SMS reached the provider: {requests:#?}");

    // An email unsubscribe, as delivery-status publishes it, then a later opt back in: the first
    // blocks the receipt's email, the second lets the next one through.
    let opt = |opted_out: bool, at: chrono::DateTime<Utc>| OptOutChanged {
        account_id: ACCOUNT.into(),
        channel: Channel::Email as i32,
        address: "LEE@example.com".into(),
        opted_out,
        source: "unsubscribe".into(),
        occurred_at: Some(messaging_proto::time::timestamp(at)),
    };
    let subject = format!("message.{ACCOUNT}.opt_out");
    publisher.raw(&subject, "unsub-1", opt(true, now).encode_to_vec()).await?;
    stack.quiesce().await?;
    // An opt-in older than the opt-out arrives late: it changes nothing.
    publisher.raw(&subject, "unsub-0", opt(false, now - Duration::days(1)).encode_to_vec()).await?;
    stack.quiesce().await?;
    let paid = json!({"customer": lee, "payment": payment("pay_1", "inv_1")});
    publisher.event(&event("e3", "payment.received", ACCOUNT, now, paid.clone())).await?;
    let messages = dashboard.settled(6).await?;
    let receipt_email = messages
        .iter()
        .find(|m| m.r#type == MessageType::PaymentReceipt as i32 && m.channel == Channel::Email as i32)
        .expect("the receipt's email, refused");
    assert_eq!(receipt_email.failure_reason, "opted_out");
    // A newer opt-in lets email through again.
    publisher.raw(&subject, "resub-1", opt(false, now + Duration::seconds(1)).encode_to_vec()).await?;
    stack.quiesce().await?;
    publisher
        .event(&event("e4", "invoice.sent", ACCOUNT, now, json!({"customer": lee, "invoice": invoice("inv_2")})))
        .await?;
    let messages = dashboard.settled(8).await?;
    let emails_sent = messages
        .iter()
        .filter(|m| m.channel == Channel::Email as i32 && m.status == MessageStatus::Sent as i32)
        .count();
    assert_eq!(emails_sent, 3, "before the unsubscribe and after the opt-in: {messages:#?}");
    assert_eq!(stack.mails().len(), 3);
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_phone_or_email_is_set_aside_and_the_rest_of_the_event_applies() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) =
        start_with("unusable", &account("evt_acc", ACCOUNT, "America/Chicago", NO_QUIET_HOURS)).await?;
    let sam = customer("cus_sam", "Sam Ortiz", "call the office", "sam@example.com");
    let kim = customer("cus_kim", "Kim Ng", "+15125550177", "kim at example");
    let now = Utc::now();
    let starts = now + Duration::days(2);
    let booked = |who: &serde_json::Value, job_id: &str| json!({"customer": who, "job": job(job_id, starts)});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, now, booked(&sam, "job_1"))).await?;
    publisher.event(&event("e2", "job.scheduled", ACCOUNT, now, booked(&kim, "job_2"))).await?;
    let messages = dashboard.settled(2).await?;
    stack.quiesce().await?;
    let channels: Vec<(String, i32)> =
        messages.iter().map(|m| (m.customer.clone().unwrap_or_default().customer_id, m.channel)).collect();
    assert_eq!(channels.len(), 2, "{messages:#?}");
    assert!(channels.contains(&("cus_sam".into(), Channel::Email as i32)), "Sam's usable address: {channels:?}");
    assert!(channels.contains(&("cus_kim".into(), Channel::Sms as i32)), "Kim's usable number: {channels:?}");
    let requests = sim_requests(stack.ports.sim).await?;
    assert_eq!(requests.iter().map(|r| r["to"].clone()).collect::<Vec<_>>(), ["+15125550177"], "{requests:#?}");
    assert_eq!(stack.mails().len(), 1, "only Sam's address can take mail");

    // Sam's job is cancelled by an event that still carries the unusable phone: it cancels, and
    // the reminder that would have gone out the day before is gone with it.
    publisher.event(&event("e3", "job.cancelled", ACCOUNT, now + Duration::seconds(1), booked(&sam, "job_1"))).await?;
    stack.quiesce().await?;
    let pool = sqlx::PgPool::connect(&stack.infra.database_url()).await?;
    let state: String =
        sqlx::query_scalar("SELECT state FROM ingest.jobs WHERE job_id = 'job_1'").fetch_one(&pool).await?;
    assert_eq!(state, "cancelled");
    let reminders: Vec<String> =
        sqlx::query_scalar("SELECT job_id FROM ingest.reminders ORDER BY job_id").fetch_all(&pool).await?;
    assert_eq!(reminders, ["job_2"], "only Kim's job keeps its reminder");
    // Each event's publisher still hears what was set aside, as of any refused input.
    let dead =
        messaging_integration_tests::client::dead_letter_reasons(&stack.infra.nats_url(), "dlq.ingest.>").await?;
    assert_eq!(dead.len(), 3, "{dead:#?}");
    assert_eq!(dead.iter().filter(|r| r.starts_with("invalid customer phone")).count(), 2, "{dead:#?}");
    assert_eq!(dead.iter().filter(|r| r.starts_with("invalid email")).count(), 1, "{dead:#?}");
    assert!(dead.iter().all(|r| r.ends_with("the rest of the event was applied")), "{dead:#?}");
    stack.stop().await;
    Ok(())
}
