//! The durable schedule end to end: day-before reminders that move on reschedule, vanish on
//! cancel, are skipped when already past and carry the latest details; quiet hours that hold
//! messages (all but on-my-way) until they end; what waits, listed for the page until it goes.
//! ingest's clock is shifted by restarting it with `MSG_SCHEDULER__CLOCK_OFFSET_SECS`, so nothing
//! waits a day, and every restart also proves the schedule lives in Postgres.

use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::America::Chicago;
use messaging_domain::schedule::{DEFAULT_REMINDER_TIME, reminder_due};
use messaging_integration_tests::Stack;
use messaging_integration_tests::client::{Dashboard, count, start_with};
use messaging_integration_tests::events::{account, customer, event, job};
use messaging_proto::v1::{Channel, ListWaitingRequest, MessageType, WaitingMessage};
use serde_json::json;

const ACCOUNT: &str = "acc_ace";

/// The variable that puts ingest's clock at `at`.
fn clock_at(at: DateTime<Utc>) -> [(&'static str, String); 1] {
    [("MSG_SCHEDULER__CLOCK_OFFSET_SECS", (at - Utc::now()).num_seconds().max(0).to_string())]
}

/// Restarts ingest with its clock at `at`.
async fn travel_to(stack: &mut Stack, at: DateTime<Utc>) -> anyhow::Result<()> {
    stack.restart_with("ingest", &clock_at(at)).await
}

/// What the account's page lists as going out later.
async fn waiting(dashboard: &Dashboard) -> anyhow::Result<Vec<WaitingMessage>> {
    let request = dashboard.authed(ListWaitingRequest::default());
    Ok(dashboard.grpc().list_waiting(request).await?.into_inner().waiting)
}

fn reminders(messages: &[messaging_proto::v1::Message], customer: &str) -> usize {
    count(messages, customer, MessageType::Reminder, Channel::Sms)
        + count(messages, customer, MessageType::Reminder, Channel::Email)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_move_with_reschedules_vanish_on_cancel_and_skip_the_past() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) =
        start_with("reminders", &account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"))).await?;
    let now = Utc::now();
    let (ann, bo, cy, di) = (
        customer("cus_ann", "Ann Moved", "+15125550101", "ann@example.com"),
        customer("cus_bo", "Bo Cancelled", "+15125550102", "bo@example.com"),
        customer("cus_cy", "Cy Soon", "+15125550103", "cy@example.com"),
        customer("cus_di", "Di Kept", "+15125550104", "di@example.com"),
    );
    let first_time = now + Duration::days(3);
    let later_time = now + Duration::days(4);
    let booked = |id: &str, who: &serde_json::Value, job_id: &str, at| {
        event(id, "job.scheduled", ACCOUNT, now, json!({"customer": who, "job": job(job_id, at)}))
    };
    publisher.event(&booked("a1", &ann, "job_a", first_time)).await?;
    publisher.event(&booked("b1", &bo, "job_b", first_time)).await?;
    publisher.event(&booked("c1", &cy, "job_c", now + Duration::hours(2))).await?;
    publisher.event(&booked("d1", &di, "job_d", first_time)).await?;
    // Events are applied concurrently; the changes below must find the bookings applied.
    dashboard.settled(8).await?;
    let later = now + Duration::seconds(1);
    // Same time again: no second confirmation. Then a real move: a new confirmation.
    let same = json!({"customer": ann, "job": job("job_a", first_time)});
    publisher.event(&event("a2", "job.rescheduled", ACCOUNT, later, same)).await?;
    let moved = json!({"customer": ann, "job": job("job_a", later_time)});
    publisher.event(&event("a3", "job.rescheduled", ACCOUNT, later + Duration::seconds(1), moved)).await?;
    let cancel = json!({"customer": bo, "job": job("job_b", first_time)});
    publisher.event(&event("b2", "job.cancelled", ACCOUNT, later, cancel)).await?;
    // Di's name changes before her reminder: the reminder uses the latest.
    let mut renamed = di.clone();
    renamed["name"] = "Diane Kept".into();
    publisher.event(&event("d2", "customer.updated", ACCOUNT, later, json!({"customer": renamed}))).await?;

    let messages = dashboard.settled(10).await?;
    stack.quiesce().await?;
    assert_eq!(messages.len(), 10, "five confirmations by SMS and email: {messages:#?}");
    assert_eq!(count(&messages, "cus_ann", MessageType::AppointmentConfirmation, Channel::Sms), 2);

    // The moment Bo's, Di's and Ann's original reminders were due.
    let first_due = reminder_due(first_time, Chicago, DEFAULT_REMINDER_TIME);
    travel_to(&mut stack, first_due + Duration::minutes(1)).await?;
    let messages = dashboard.settled(12).await?;
    stack.quiesce().await?;
    assert_eq!(reminders(&messages, "cus_di"), 2, "Di's reminder by SMS and email");
    let di_sms = messages
        .iter()
        .find(|m| m.r#type == MessageType::Reminder as i32 && m.channel == Channel::Sms as i32)
        .expect("Di's SMS reminder");
    assert!(di_sms.preview.contains("Reminder, Diane"), "latest name: {}", di_sms.preview);
    assert_eq!(reminders(&messages, "cus_ann"), 0, "Ann's reminder moved with her appointment");
    assert_eq!(reminders(&messages, "cus_bo"), 0, "Bo's job was cancelled");
    assert_eq!(reminders(&messages, "cus_cy"), 0, "Cy's reminder moment had passed when booked");

    let moved_due = reminder_due(later_time, Chicago, DEFAULT_REMINDER_TIME);
    travel_to(&mut stack, moved_due + Duration::minutes(1)).await?;
    let messages = dashboard.settled(14).await?;
    stack.quiesce().await?;
    assert_eq!(reminders(&messages, "cus_ann"), 2, "Ann's reminder at its new moment");
    assert_eq!(messages.len(), 14, "{messages:#?}");
    let local_day = later_time.with_timezone(&Chicago).format("%a, %b %-d").to_string();
    let ann_sms = messages
        .iter()
        .find(|m| {
            m.r#type == MessageType::Reminder as i32
                && m.channel == Channel::Sms as i32
                && m.customer.as_ref().is_some_and(|c| c.customer_id == "cus_ann")
        })
        .expect("Ann's SMS reminder");
    assert!(ann_sms.preview.contains(&local_day), "{} names {local_day}", ann_sms.preview);
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_messages_until_they_end_but_not_on_my_way() -> anyhow::Result<()> {
    // Quiet from an hour ago until two hours from now, Chicago time.
    let local = Utc::now().with_timezone(&Chicago);
    let hhmm = |t: chrono::DateTime<chrono_tz::Tz>| format!("{:02}:{:02}", t.hour(), t.minute());
    let quiet = (hhmm(local - Duration::hours(1)), hhmm(local + Duration::hours(2)));
    let (mut stack, publisher, dashboard) =
        start_with("quiet-hours", &account("evt_acc", ACCOUNT, "America/Chicago", (&quiet.0, &quiet.1))).await?;
    let now = Utc::now();
    let dana = customer("cus_dana", "Dana Reyes", "+15125550199", "dana@example.com");
    let body = json!({"customer": dana, "job": job("job_1", now + Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, now, body.clone())).await?;
    publisher.event(&event("e2", "job.en_route", ACCOUNT, now, body.clone())).await?;
    let sam = customer("cus_sam", "Sam Ortiz", "+15125550133", "");
    let booked = json!({"customer": sam, "job": job("job_2", now + Duration::days(3))});
    publisher.event(&event("e4", "job.scheduled", ACCOUNT, now, booked.clone())).await?;

    dashboard.settled(1).await?;
    stack.quiesce().await?;
    let messages = dashboard.settled(1).await?;
    assert_eq!(messages.len(), 1, "only on-my-way goes out in quiet hours: {messages:#?}");
    assert_eq!(messages[0].r#type, MessageType::OnMyWay as i32);
    // The page can say what waits and until when: both held confirmations, and Sam's reminder.
    let shown = waiting(&dashboard).await?;
    let held: Vec<_> = shown.iter().filter(|w| w.reason == "quiet_hours").collect();
    assert_eq!(held.len(), 2, "{shown:#?}");
    for w in &held {
        assert_eq!(w.r#type, MessageType::AppointmentConfirmation as i32);
        let release = messaging_proto::time::datetime(w.due_at.as_ref()).expect("due");
        assert!(
            (release - (now + Duration::hours(2))).num_minutes().abs() <= 1,
            "held until quiet hours end: {release}"
        );
    }
    let names: Vec<_> = held.iter().filter_map(|w| w.customer.as_ref().map(|c| c.name.as_str())).collect();
    assert!(names.contains(&"Dana Reyes") && names.contains(&"Sam Ortiz"), "{names:?}");
    let reminder = shown.iter().find(|w| w.key == "reminder:job_2").expect("Sam's reminder");
    assert_eq!((reminder.reason.as_str(), reminder.job_id.as_str()), ("reminder", "job_2"));
    assert_eq!(reminder.r#type, MessageType::Reminder as i32);
    assert_eq!(reminder.customer.as_ref().map(|c| c.customer_id.as_str()), Some("cus_sam"));

    // Restarted past the end of quiet hours, ingest releases the held confirmations.
    travel_to(&mut stack, now + Duration::hours(2) + Duration::minutes(1)).await?;
    let messages = dashboard.settled(4).await?;
    stack.quiesce().await?;
    assert_eq!(count(&messages, "cus_dana", MessageType::AppointmentConfirmation, Channel::Sms), 1);
    assert_eq!(count(&messages, "cus_dana", MessageType::AppointmentConfirmation, Channel::Email), 1);
    assert_eq!(count(&messages, "cus_sam", MessageType::AppointmentConfirmation, Channel::Sms), 1);
    assert_eq!(messages.len(), 4);
    let shown = waiting(&dashboard).await?;
    assert!(shown.iter().all(|w| w.reason == "reminder"), "released: {shown:#?}");
    assert!(shown.iter().any(|w| w.key == "reminder:job_2"));
    // A cancelled job's reminder no longer waits.
    let later = now + Duration::seconds(5);
    publisher.event(&event("e3", "job.cancelled", ACCOUNT, later, body)).await?;
    publisher.event(&event("e5", "job.cancelled", ACCOUNT, later, booked)).await?;
    stack.quiesce().await?;
    assert!(waiting(&dashboard).await?.is_empty());
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_replicas_fire_each_reminder_once() -> anyhow::Result<()> {
    const JOBS: usize = 12;
    let (mut stack, publisher, dashboard) =
        start_with("replicas", &account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"))).await?;
    let now = Utc::now();
    let starts = now + Duration::days(3);
    for n in 0..JOBS {
        let who = customer(&format!("cus_{n}"), "Dana Reyes", &format!("+1512555{:04}", 2000 + n), "");
        let body = json!({"customer": who, "job": job(&format!("job_{n}"), starts)});
        publisher.event(&event(&format!("e{n}"), "job.scheduled", ACCOUNT, now, body)).await?;
    }
    dashboard.settled(JOBS).await?;
    stack.quiesce().await?;

    // Both replicas come up a few seconds before the reminders are due, then race for them one row
    // per transaction.
    let due = reminder_due(starts, Chicago, DEFAULT_REMINDER_TIME);
    let racing = |at| {
        let [clock] = clock_at(at);
        [clock, ("MSG_SCHEDULER__BATCH", "1".to_owned()), ("MSG_SCHEDULER__INTERVAL_MS", "20".to_owned())]
    };
    stack.start_replica("ingest", &racing(due - Duration::seconds(4))).await?;
    stack.restart_with("ingest", &racing(due - Duration::seconds(4))).await?;
    dashboard.settled(2 * JOBS).await?;
    stack.quiesce().await?;
    let messages = dashboard.settled(2 * JOBS).await?;
    assert_eq!(messages.len(), 2 * JOBS, "a confirmation and a reminder per job: {messages:#?}");
    let requests = messaging_integration_tests::client::sim_requests(stack.ports.sim).await?;
    assert_eq!(requests.len(), 2 * JOBS, "the provider got each reminder once");
    stack.stop().await;
    Ok(())
}
