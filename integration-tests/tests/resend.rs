//! Resending a failed message (`ResendMessage`): a confirmation SMS the provider refused (a landline)
//! goes again by email with its words, once per request id however often it is asked, and the
//! thread shows the two linked; the SMS channel that failed is refused with its reason, as is a
//! customer who opted out; a delivered message, a reply and another account's message cannot be
//! resent.

use chrono::Utc;
use messaging_integration_tests::client::{Dashboard, sim_inbound, start_with};
use messaging_integration_tests::events::{account, business_number, customer, event, job};
use messaging_proto::v1::{Channel, Direction, MessageStatus, ResendMessageRequest};
use serde_json::json;

const ACCOUNT: &str = "acc_resend";
const LANA: &str = "+15005550009";
const OTTO: &str = "+15125550144";

fn resend(request_id: &str, message_id: &str, channel: Option<Channel>) -> ResendMessageRequest {
    ResendMessageRequest {
        request_id: request_id.into(),
        message_id: message_id.into(),
        channel: channel.map_or(0, |c| c as i32),
        subject: String::new(),
    }
}

async fn refused(dashboard: &Dashboard, request: ResendMessageRequest) -> (tonic::Code, String) {
    match dashboard.grpc().resend_message(dashboard.authed(request)).await {
        Ok(answer) => panic!("expected a refusal, got {answer:?}"),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_message_is_resent_once_by_a_channel_that_reaches_the_customer() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, mut dashboard) = start_with("resend", &setup).await?;
    // Lana's number is a landline: the provider refuses her confirmation SMS (21614); her email goes.
    let lana = customer("cus_lana", "Lana Landline", LANA, "lana@example.com");
    let booked = json!({"customer": lana, "job": job("job_lana", Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event("e_lana", "job.scheduled", ACCOUNT, Utc::now(), booked)).await?;
    // Otto opted out before his booking: his confirmation is recorded failed, opted_out.
    stack.quiesce().await?;
    sim_inbound(stack.ports.sim, OTTO, &business_number(ACCOUNT), "STOP").await?;
    stack.quiesce().await?;
    let otto = customer("cus_otto", "Otto Out", OTTO, "");
    let booked = json!({"customer": otto, "job": job("job_otto", Utc::now() + chrono::Duration::days(3))});
    publisher.event(&event("e_otto", "job.scheduled", ACCOUNT, Utc::now(), booked)).await?;
    // A stranger texts in: a reply, which is nobody's to resend.
    sim_inbound(stack.ports.sim, "+15125550177", &business_number(ACCOUNT), "Hello?").await?;
    dashboard.settled(3).await?;
    stack.quiesce().await?;

    let thread = dashboard.thread("cus_lana").await?;
    let failed = thread.iter().find(|m| m.channel == Channel::Sms as i32).cloned().unwrap_or_default();
    assert_eq!(failed.status, MessageStatus::Failed as i32, "{thread:#?}");
    let delivered = thread.iter().find(|m| m.channel == Channel::Email as i32).cloned().unwrap_or_default();
    let mails_before = stack.mails().len();

    // The failed channel and a customer who opted out are refused with their reason.
    let (code, why) = refused(&dashboard, resend("r0", &failed.message_id, None)).await;
    assert_eq!((code, why.split(':').next()), (tonic::Code::FailedPrecondition, Some("landline")), "{why}");
    let otto_thread = dashboard.thread("cus_otto").await?;
    let otto_sms = otto_thread.into_iter().find(|m| m.direction == Direction::Outbound as i32).unwrap_or_default();
    let (code, why) = refused(&dashboard, resend("r1", &otto_sms.message_id, None)).await;
    assert_eq!((code, why.split(':').next()), (tonic::Code::FailedPrecondition, Some("opted_out")), "{why}");
    let (code, why) = refused(&dashboard, resend("r2", &delivered.message_id, None)).await;
    assert_eq!(code, tonic::Code::FailedPrecondition, "a message that did not fail: {why}");
    let other = Dashboard::connect(stack.ports.grpc, "acc_other").await?;
    let (code, _) = refused(&other, resend("r3", &failed.message_id, Some(Channel::Email))).await;
    assert_eq!(code, tonic::Code::NotFound, "another account's message");
    let reply =
        dashboard.all().await.into_iter().find(|m| m.direction == Direction::Inbound as i32 && m.preview == "Hello?");
    let (code, _) = refused(&dashboard, resend("r5", &reply.unwrap_or_default().message_id, None)).await;
    assert_eq!(code, tonic::Code::InvalidArgument, "a reply");

    // By email: once, however often the same request comes.
    let listed = dashboard.all().await.len();
    let request = resend("r4", &failed.message_id, Some(Channel::Email));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(dashboard.grpc().resend_message(dashboard.authed(request.clone())).await?.into_inner().message_id);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    dashboard.settled(listed + 1).await?;
    stack.quiesce().await?;
    let mails = stack.mails();
    assert_eq!(mails.len(), mails_before + 1, "one email for the resend");
    // The relay's mails are not in the order they came: the resend is the one with its subject.
    let resent: Vec<&String> = mails.iter().filter(|m| m.contains("Subject: A message from Ace Plumbing")).collect();
    assert_eq!(resent.len(), 1, "{mails:#?}");
    let mail = resent[0].replace("=\r\n", "").replace("=\n", "");
    let words = failed.body.trim_end_matches("Reply STOP to opt out.").trim_end();
    assert!(mail.contains(words.split(',').next().unwrap_or(words)), "the SMS's words: {words}\n{mail}");
    assert!(!mail.contains("Reply STOP"), "no SMS opt-out notice in an email: {mail}");

    // The thread shows the two linked.
    let thread = dashboard.thread("cus_lana").await?;
    let old = thread.iter().find(|m| m.message_id == failed.message_id).cloned().unwrap_or_default();
    let new = thread.iter().find(|m| m.message_id == ids[0]).cloned().unwrap_or_default();
    assert_eq!(old.resent_as, ids[0]);
    assert_eq!(new.resent_from, failed.message_id);
    assert_eq!((new.channel, new.direction), (Channel::Email as i32, Direction::Outbound as i32));
    assert!(new.body.starts_with(words), "the same words (signed as every manual email is): {}", new.body);
    stack.stop().await;
    Ok(())
}
