//! An unknown number's thread, end to end: the business texts it back (once per request id, however
//! often and however concurrently asked) and attaches it to a customer, after which the number's
//! next text joins that customer too. Another account can do neither; bad requests change nothing.

use chrono::Utc;
use messaging_integration_tests::client::{Dashboard, code, sim_inbound, sim_requests, start_with};
use messaging_integration_tests::events::{account, business_number, customer, event};
use messaging_proto::v1::{
    AttachThreadRequest, Channel, Direction, GetThreadRequest, MessageStatus, ReplyToSenderRequest,
};
use serde_json::json;

const ACCOUNT: &str = "acc_strangers";
const RIVAL: &str = "acc_strangers_rival";
const STRANGER: &str = "+15125550177";

fn reply(request_id: &str, sender: &str, text: &str) -> ReplyToSenderRequest {
    ReplyToSenderRequest { request_id: request_id.into(), sender: sender.into(), text: text.into() }
}

async fn send(dashboard: &Dashboard, request: ReplyToSenderRequest) -> Result<String, tonic::Status> {
    Ok(dashboard.grpc().reply_to_sender(dashboard.authed(request)).await?.into_inner().message_id)
}

async fn attach(dashboard: &Dashboard, sender: &str, customer_id: &str) -> Result<i64, tonic::Status> {
    let request = AttachThreadRequest { sender: sender.into(), customer_id: customer_id.into() };
    Ok(dashboard.grpc().attach_thread(dashboard.authed(request)).await?.into_inner().attached)
}

async fn texts_to(sim: u16, to: &str) -> anyhow::Result<usize> {
    Ok(sim_requests(sim).await?.iter().filter(|r| r["to"] == to).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_number_is_texted_back_once_and_attached_to_a_customer() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("strangers", &setup).await?;
    let sim = stack.ports.sim;
    let dana = customer("cus_dana", "Dana Reyes", "+15125550199", "dana@example.com");
    publisher.event(&event("c1", "customer.updated", ACCOUNT, Utc::now(), json!({"customer": dana}))).await?;
    let rival_setup = account("evt_rival", RIVAL, "America/Chicago", ("00:00", "00:00"));
    publisher.event(&rival_setup).await?;
    let rival_dana = customer("cus_dana", "Dana Elsewhere", "+15125550198", "");
    publisher.event(&event("c2", "customer.updated", RIVAL, Utc::now(), json!({"customer": rival_dana}))).await?;
    sim_inbound(sim, STRANGER, &business_number(ACCOUNT), "Is this the plumber? My sink is leaking.").await?;
    dashboard.settled(1).await?;
    stack.quiesce().await?;

    // The thread says a text back is possible and an email is not.
    let thread = GetThreadRequest { customer_id: STRANGER.into(), oldest_first: true, ..Default::default() };
    let answer = dashboard.grpc().get_thread(dashboard.authed(thread.clone())).await?.into_inner();
    let reach: Vec<_> = answer.reach.iter().map(|r| (r.channel, r.reachable, r.reason.as_str())).collect();
    assert_eq!(reach, [(Channel::Sms as i32, true, ""), (Channel::Email as i32, false, "unknown_sender")]);

    // One message however often and however concurrently the same request arrives.
    let text = "Yes, this is Ace Plumbing. We can come today at 3.";
    let first = send(&dashboard, reply("r-1", STRANGER, text)).await?;
    let racing: Vec<_> = (0..6)
        .map(|_| {
            let dashboard = dashboard.clone();
            tokio::spawn(async move { send(&dashboard, reply("r-1", STRANGER, text)).await })
        })
        .collect();
    for handle in racing {
        assert_eq!(handle.await??, first);
    }
    let settled = dashboard.settled(2).await?;
    let sent = settled.iter().find(|m| m.message_id == first).expect("the reply is in the feed");
    assert_eq!((sent.direction, sent.status), (Direction::Outbound as i32, MessageStatus::Delivered as i32));
    assert_eq!(sent.customer.as_ref().map(|c| (c.customer_id.as_str(), c.phone.as_str())), Some(("", STRANGER)));
    let thread_now = dashboard.grpc().get_thread(dashboard.authed(thread.clone())).await?.into_inner().messages;
    assert_eq!(thread_now.len(), 2, "the text and the answer share the number's thread");
    stack.quiesce().await?;
    assert_eq!(texts_to(sim, STRANGER).await?, 1, "one SMS for seven calls");

    // What cannot be done, and changes nothing.
    for (request, expected, why) in [
        (reply("r-2", "512 555 0177", "hi"), tonic::Code::InvalidArgument, "not E.164"),
        (reply("r-2", "+15125550100", "hi"), tonic::Code::NotFound, "a number with no thread"),
        (reply("r-2", STRANGER, "  "), tonic::Code::InvalidArgument, "no text"),
        (reply("", STRANGER, "hi"), tonic::Code::InvalidArgument, "no request id"),
        (reply("r-1", STRANGER, "other words"), tonic::Code::AlreadyExists, "a reused request id"),
    ] {
        assert_eq!(code(send(&dashboard, request).await), expected, "{why}");
    }
    let rival = Dashboard::connect(stack.ports.grpc, RIVAL).await?;
    assert_eq!(code(send(&rival, reply("r-9", STRANGER, "hi")).await), tonic::Code::NotFound, "another account's");
    assert_eq!(code(attach(&rival, STRANGER, "cus_dana").await), tonic::Code::NotFound, "another account's");
    assert_eq!(code(attach(&dashboard, STRANGER, "cus_nobody").await), tonic::Code::NotFound);
    assert_eq!(code(attach(&dashboard, "+15125550100", "cus_dana").await), tonic::Code::NotFound);
    assert_eq!(code(attach(&dashboard, "dana", "cus_dana").await), tonic::Code::InvalidArgument);
    stack.quiesce().await?;
    assert_eq!(texts_to(sim, STRANGER).await?, 1);

    // Attached: both messages join Dana's thread; again is a no-op; someone else is refused.
    assert_eq!(attach(&dashboard, STRANGER, "cus_dana").await?, 2);
    assert_eq!(attach(&dashboard, STRANGER, "cus_dana").await?, 0, "attaching again changes nothing");
    let other = customer("cus_sam", "Sam Ortiz", "+15125550133", "");
    publisher.event(&event("c3", "customer.updated", ACCOUNT, Utc::now(), json!({"customer": other}))).await?;
    stack.quiesce().await?;
    assert_eq!(code(attach(&dashboard, STRANGER, "cus_sam").await), tonic::Code::FailedPrecondition);
    let danas = dashboard.clone().thread("cus_dana").await?;
    assert_eq!(danas.len(), 2);
    assert!(danas.iter().all(|m| m.customer.as_ref().is_some_and(|c| c.name == "Dana Reyes")));
    assert_eq!(code(dashboard.grpc().get_thread(dashboard.authed(thread.clone())).await), tonic::Code::NotFound);

    // The number's next text joins Dana's thread, not a new unknown one.
    sim_inbound(sim, STRANGER, &business_number(ACCOUNT), "Great, 3 works. Gate code 4321.").await?;
    dashboard.settled(3).await?;
    let danas = dashboard.clone().thread("cus_dana").await?;
    assert_eq!(danas.len(), 3, "{danas:#?}");
    assert_eq!(danas[2].preview, "Great, 3 works. Gate code 4321.");
    let rivals = rival.clone().all().await;
    assert!(rivals.is_empty(), "nothing reached the other account: {rivals:#?}");
    stack.stop().await;
    Ok(())
}
