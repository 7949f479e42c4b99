//! SMS→email fallback, end to end: an on-my-way text a landline cannot take (the provider's 21614)
//! and one to a customer who texted STOP go by email instead, each once, even with dispatch
//! killed right after committing the first fallback; the thread shows each SMS linked to its
//! email; an account that turns fallback off gets no email for the next failed text.

use std::time::Duration;

use chrono::Utc;
use messaging_integration_tests::client::{sim_inbound, start_with};
use messaging_integration_tests::events::{account, business_number, customer, event, job, send_address};
use messaging_integration_tests::eventually;
use messaging_proto::v1::{Channel, Message, MessageStatus, MessageType};
use serde_json::json;

const ACCOUNT: &str = "acc_fallback";
const LANA: &str = "+15005550009";
const OTTO: &str = "+15125550144";

/// The on-my-way emails the SMTP server got, by recipient.
fn on_my_way_mails(mails: &[String], to: &str) -> usize {
    mails.iter().filter(|m| m.contains(to) && m.contains("is on the way")).count()
}

fn on_my_way(thread: &[Message], channel: Channel) -> Vec<Message> {
    thread.iter().filter(|m| m.r#type == MessageType::OnMyWay as i32 && m.channel == channel as i32).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_that_can_never_arrive_goes_by_email_once_even_through_a_crash() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, mut dashboard) = start_with("fallback", &setup).await?;
    let now = Utc::now();

    // Lana's number is a landline. dispatch dies right after committing her fallback email.
    stack.restart_with("dispatch", &[("MSG_CRASH_AT", "after_fallback_commit".to_owned())]).await?;
    let lana = customer("cus_lana", "Lana Landline", LANA, "lana@example.com");
    let coming = json!({"customer": lana, "job": job("job_lana", now + chrono::Duration::minutes(20))});
    publisher.event(&event("e_lana", "job.en_route", ACCOUNT, now, coming)).await?;
    eventually(Duration::from_secs(60), "dispatch to die after committing the fallback", || {
        let exited = stack.has_exited("dispatch");
        async move { exited.then_some(()) }
    })
    .await?;
    stack.restart_with("dispatch", &[]).await?;

    // Otto texted STOP: his on-my-way SMS is refused (opted_out), and he gets it by email.
    sim_inbound(stack.ports.sim, OTTO, &business_number(ACCOUNT), "STOP").await?;
    stack.quiesce().await?;
    let otto = customer("cus_otto", "Otto Out", OTTO, "otto@example.com");
    let coming = json!({"customer": otto, "job": job("job_otto", now + chrono::Duration::minutes(30))});
    publisher.event(&event("e_otto", "job.en_route", ACCOUNT, now, coming)).await?;
    dashboard.settled(5).await?; // each SMS and its email, and Otto's STOP
    stack.quiesce().await?;

    let mails = stack.mails();
    assert_eq!(on_my_way_mails(&mails, "lana@example.com"), 1, "once, though dispatch died: {mails:#?}");
    assert_eq!(on_my_way_mails(&mails, "otto@example.com"), 1, "{mails:#?}");
    let lanas = mails.iter().find(|m| m.contains("lana@example.com")).cloned().unwrap_or_default();
    assert!(lanas.contains("Subject: Luis Ortega from Ace Plumbing is on the way"), "{lanas}");
    assert!(lanas.contains(&send_address(ACCOUNT)), "from the account's send address: {lanas}");
    assert!(!lanas.contains("Reply STOP"), "{lanas}");

    // Each thread shows the failed SMS and the email sent in its place, linked.
    for (who, reason) in [("cus_lana", "not_sms_capable"), ("cus_otto", "opted_out")] {
        let thread = dashboard.thread(who).await?;
        let (sms, email) = (on_my_way(&thread, Channel::Sms), on_my_way(&thread, Channel::Email));
        assert_eq!((sms.len(), email.len()), (1, 1), "{who}: {thread:#?}");
        let (sms, email) = (&sms[0], &email[0]);
        assert_eq!((sms.status, sms.failure_reason.as_str()), (MessageStatus::Failed as i32, reason), "{who}");
        assert_eq!(
            (sms.resent_as.as_str(), email.resent_from.as_str()),
            (email.message_id.as_str(), sms.message_id.as_str())
        );
        assert!(sms.fallback && email.fallback, "{who}: both marked as the fallback's");
        assert_eq!(email.subject, "Luis Ortega from Ace Plumbing is on the way");
    }

    // The account turns fallback off: Lana's next on-my-way text fails and stays failed.
    let mut off = account("evt_acc_2", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    off["occurred_at"] = json!(Utc::now().to_rfc3339());
    off["account"]["email_fallback"] = json!(false);
    publisher.event(&off).await?;
    stack.quiesce().await?;
    let lana = customer("cus_lana", "Lana Landline", LANA, "lana@example.com");
    let coming = json!({"customer": lana, "job": job("job_lana_2", now + chrono::Duration::hours(3))});
    publisher.event(&event("e_lana_2", "job.en_route", ACCOUNT, Utc::now(), coming)).await?;
    dashboard.settled(6).await?;
    stack.quiesce().await?;
    let thread = dashboard.thread("cus_lana").await?;
    let texts = on_my_way(&thread, Channel::Sms);
    assert_eq!(texts.len(), 2, "{thread:#?}");
    assert!(texts.iter().all(|m| m.status == MessageStatus::Failed as i32));
    assert_eq!(on_my_way(&thread, Channel::Email).len(), 1, "no second email: {thread:#?}");
    assert_eq!(on_my_way_mails(&stack.mails(), "lana@example.com"), 1);
    // Counted by the restarted dispatch: Otto's (Lana's was made before the crash).
    let metrics = stack.metrics("dispatch").await?;
    assert!(metrics.contains("dispatch_email_fallbacks_total{type=\"on_my_way\",outcome=\"sent\"} 1"), "{metrics}");
    stack.stop().await;
    Ok(())
}
