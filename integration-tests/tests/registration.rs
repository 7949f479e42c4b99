//! A2P 10DLC end to end: while the account's events report its number's registration pending,
//! a booking's SMS is recorded failed `sms_not_registered` and never reaches the provider while
//! its email goes; a manual SMS is refused with that reason (an email is not); GetAccount and the
//! thread say why. A reminder booked while the registration was active re-checks it when it
//! fires, after the registration was rejected; once active again, SMS goes. An account that
//! reports nothing sends, and when the carrier finds its number unregistered (Twilio's 30034,
//! from the simulator) the message fails with the same reason.

use chrono::{Duration, Utc};
use chrono_tz::America::Chicago;
use messaging_domain::schedule::{DEFAULT_REMINDER_TIME, reminder_due};
use messaging_integration_tests::client::{Dashboard, sim_faults, sim_messages, start_with};
use messaging_integration_tests::events::{account, business_number, customer, event, job};
use messaging_proto::v1::{
    Channel, GetAccountRequest, GetMessageRequest, GetThreadRequest, Message, MessageStatus, MessageType,
    SendMessageRequest,
};
use serde_json::{Value, json};

const ACCOUNT: &str = "acc_ace";

/// `account.updated` reporting the registration `status` (and `reason`), at `seconds` after a day ago.
fn registration(id: &str, status: &str, reason: &str, seconds: i64) -> Value {
    let mut updated = account(id, ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    updated["account"]["sms_registration"] = json!({"status": status, "reason": reason});
    updated["occurred_at"] = json!((Utc::now() - Duration::days(1) + Duration::seconds(seconds)).to_rfc3339());
    updated
}

fn of(messages: &[Message], customer: &str, kind: MessageType, channel: Channel) -> Vec<Message> {
    messages
        .iter()
        .filter(|m| m.customer.as_ref().is_some_and(|c| c.customer_id == customer))
        .filter(|m| m.r#type == kind as i32 && m.channel == channel as i32)
        .cloned()
        .collect()
}

async fn sends_sms(dashboard: &Dashboard) -> anyhow::Result<(String, bool)> {
    let got = dashboard.grpc().get_account(dashboard.authed(GetAccountRequest {})).await?.into_inner();
    let registration = got.sms_registration.unwrap_or_default();
    Ok((registration.status, registration.sends_sms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_goes_only_from_a_registered_number_and_a_reminder_rechecks_when_it_fires() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) = start_with("registration", &registration("a1", "active", "", 0)).await?;
    let now = Utc::now();
    // Booked while active: Ann's reminder is due two days from now.
    let ann = customer("cus_ann", "Ann Early", "+15125550101", "ann@example.com");
    let ann_visit = now + Duration::days(3);
    publisher
        .event(&event("e1", "job.scheduled", ACCOUNT, now, json!({"customer": ann, "job": job("job_a", ann_visit)})))
        .await?;
    dashboard.settled(2).await?;
    assert_eq!(sends_sms(&dashboard).await?, ("active".to_owned(), true));

    // The campaign is being re-vetted: pending. Bo's booking texts nothing, emails as ever.
    publisher.event(&registration("a2", "campaign_pending", "", 10)).await?;
    stack.quiesce().await?;
    assert_eq!(sends_sms(&dashboard).await?, ("campaign_pending".to_owned(), false));
    let bo = customer("cus_bo", "Bo Later", "+15125550102", "bo@example.com");
    publisher
        .event(&event(
            "e2",
            "job.scheduled",
            ACCOUNT,
            now,
            json!({"customer": bo, "job": job("job_b", now + Duration::days(5))}),
        ))
        .await?;
    let all = dashboard.settled(4).await?;
    let sms = of(&all, "cus_bo", MessageType::AppointmentConfirmation, Channel::Sms);
    assert_eq!(sms.len(), 1, "{all:#?}");
    assert_eq!((sms[0].status, sms[0].failure_reason.as_str()), (MessageStatus::Failed as i32, "sms_not_registered"));
    assert_eq!(of(&all, "cus_bo", MessageType::AppointmentConfirmation, Channel::Email).len(), 1);
    let texts = sim_messages(stack.ports.sim).await?;
    assert!(texts.iter().all(|m| m["to"] != "+15125550102"), "nothing reached the provider: {texts:#?}");

    // A manual SMS is refused with the reason, the thread says so before a send; email is not refused.
    let manual = |channel: Channel, id: &str| SendMessageRequest {
        request_id: id.into(),
        customer_id: "cus_bo".into(),
        channel: channel as i32,
        text: "Running late".into(),
        subject: if channel == Channel::Email { "Today".into() } else { String::new() },
    };
    let refused = dashboard.grpc().send_message(dashboard.authed(manual(Channel::Sms, "m1"))).await.err();
    let refused = refused.map(|s| (s.code(), s.message().to_owned())).unwrap_or((tonic::Code::Ok, String::new()));
    assert_eq!(refused.0, tonic::Code::FailedPrecondition);
    assert!(refused.1.starts_with("sms_not_registered: ") && refused.1.contains("campaign pending"), "{}", refused.1);
    dashboard.grpc().send_message(dashboard.authed(manual(Channel::Email, "m2"))).await?;
    let thread = GetThreadRequest { customer_id: "cus_bo".into(), ..Default::default() };
    let reach = dashboard.grpc().get_thread(dashboard.authed(thread)).await?.into_inner().reach;
    let sms_reach = reach.iter().find(|r| r.channel == Channel::Sms as i32).cloned().unwrap_or_default();
    assert_eq!((sms_reach.reachable, sms_reach.reason.as_str()), (false, "sms_not_registered"));

    // Rejected by the time Ann's reminder fires: it re-checks and texts nothing.
    publisher.event(&registration("a3", "rejected", "Brand details do not match the EIN", 20)).await?;
    stack.quiesce().await?;
    assert_eq!(sends_sms(&dashboard).await?, ("rejected".to_owned(), false));
    let due = reminder_due(ann_visit, Chicago, DEFAULT_REMINDER_TIME);
    let offset = (due + Duration::minutes(1) - Utc::now()).num_seconds();
    stack.restart_with("ingest", &[("MSG_SCHEDULER__CLOCK_OFFSET_SECS", offset.to_string())]).await?;
    let all = dashboard.settled(7).await?;
    let reminder = of(&all, "cus_ann", MessageType::Reminder, Channel::Sms);
    assert_eq!(reminder.len(), 1, "{all:#?}");
    assert_eq!(reminder[0].failure_reason, "sms_not_registered");
    assert_eq!(of(&all, "cus_ann", MessageType::Reminder, Channel::Email).len(), 1, "the reminder's email goes");

    // Active again: the next booking texts.
    publisher.event(&registration("a4", "active", "", 30)).await?;
    stack.quiesce().await?;
    let cy = customer("cus_cy", "Cy Next", "+15125550103", "");
    publisher
        .event(&event(
            "e3",
            "job.scheduled",
            ACCOUNT,
            Utc::now(),
            json!({"customer": cy, "job": job("job_c", now + Duration::days(6))}),
        ))
        .await?;
    dashboard.settled(8).await?;
    let texts = sim_messages(stack.ports.sim).await?;
    assert!(texts.iter().any(|m| m["to"] == "+15125550103"), "{texts:#?}");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_the_carrier_finds_unregistered_fails_with_the_registration_reason() -> anyhow::Result<()> {
    let (mut stack, publisher, dashboard) =
        start_with("registration-carrier", &account("a1", ACCOUNT, "America/Chicago", ("00:00", "00:00"))).await?;
    assert_eq!(sends_sms(&dashboard).await?, (String::new(), true), "never reported: not tracked, sends");
    // As at Twilio: the create call accepts it, then the carrier refuses it with 30034.
    let faults =
        json!({"unregistered_senders": [business_number(ACCOUNT)], "callback_delay_ms": 50, "callback_retries": 8});
    sim_faults(stack.ports.sim, faults).await?;
    let dana = customer("cus_dana", "Dana Reyes", "+15125550199", "");
    let booked = json!({"customer": dana, "job": job("job_d", Utc::now() + Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, Utc::now(), booked)).await?;
    let all = dashboard.settled(1).await?;
    stack.quiesce().await?;
    let sms = of(&all, "cus_dana", MessageType::AppointmentConfirmation, Channel::Sms);
    assert_eq!(sms.len(), 1, "{all:#?}");
    assert_eq!((sms[0].status, sms[0].failure_reason.as_str()), (MessageStatus::Failed as i32, "sms_not_registered"));
    let request = GetMessageRequest { message_id: sms[0].message_id.clone() };
    let got = dashboard.grpc().get_message(dashboard.authed(request)).await?.into_inner();
    assert_eq!(got.provider_error_code, "30034");
    stack.stop().await;
    Ok(())
}
