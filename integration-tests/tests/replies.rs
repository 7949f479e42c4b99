//! Inbound SMS end to end: a reply injected through the simulator (signed as Twilio signs) joins
//! the right customer's thread, an unknown number gets its own, forged and replayed webhooks change
//! nothing, and carrier keywords work: STOP blocks the next automated SMS (failed, opted_out),
//! START restores it, HELP is answered, a sentence with "stop" in it is just a message; replies to
//! a number whose account is still being listed are all recorded.

use chrono::Utc;
use messaging_domain::signing::twilio_signature;
use messaging_integration_tests::client::{count, sim_inbound, sim_requests, start_with};
use messaging_integration_tests::events::{account, business_number, customer, event, invoice, job};
use messaging_integration_tests::stack::TWILIO_AUTH_TOKEN;
use messaging_proto::v1::{Channel, Direction, MessageStatus, MessageType};
use serde_json::json;

const ACCOUNT: &str = "acc_ace";
const DANA: &str = "+15125550199";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_joins_the_customers_thread_and_an_unknown_number_gets_its_own() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("replies", &setup).await?;
    let dana = customer("cus_dana", "Dana Reyes", DANA, "");
    let body = json!({"customer": dana, "job": job("job_1", Utc::now() + chrono::Duration::days(2))});
    publisher.event(&event("e1", "job.scheduled", ACCOUNT, Utc::now(), body)).await?;
    dashboard.settled(1).await?;
    stack.quiesce().await?;

    let sim = stack.ports.sim;
    let answer = sim_inbound(sim, DANA, &business_number(ACCOUNT), "Can you come at 10 instead?").await?;
    assert_eq!(answer["webhook_status"], 200, "{answer}");
    sim_inbound(sim, "+15125550777", &business_number(ACCOUNT), "Who is this?").await?;
    let all = dashboard.settled(3).await?;
    let thread = dashboard.clone().thread("cus_dana").await?;
    assert_eq!(thread.len(), 2, "the confirmation and the reply: {thread:#?}");
    let reply = &thread[1];
    assert_eq!(reply.direction, Direction::Inbound as i32);
    assert_eq!(reply.r#type, MessageType::Reply as i32);
    assert_eq!(reply.status, MessageStatus::Received as i32);
    assert_eq!(reply.preview, "Can you come at 10 instead?");
    let stranger = all.iter().find(|m| m.preview == "Who is this?").expect("the unknown number's message");
    let who = stranger.customer.clone().unwrap_or_default();
    assert_eq!((who.customer_id.as_str(), who.phone.as_str()), ("", "+15125550777"), "a thread of its own");

    // Straight at the webhook: a forged signature is refused; a replay of a signed one changes nothing.
    let url = format!("http://127.0.0.1:{}/webhooks/twilio/inbound", stack.ports.webhook);
    let params: Vec<(String, String)> =
        [("MessageSid", "SMreplayed0000"), ("From", DANA), ("To", &business_number(ACCOUNT)), ("Body", "Replayed")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    let signature = twilio_signature(TWILIO_AUTH_TOKEN, &url, &params);
    let http = reqwest::Client::new();
    let forged = http.post(&url).header("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJl").form(&params).send().await?;
    assert_eq!(forged.status().as_u16(), 403);
    for _ in 0..3 {
        let sent = http.post(&url).header("X-Twilio-Signature", &signature).form(&params).send().await?;
        assert_eq!(sent.status().as_u16(), 200);
    }
    dashboard.settled(4).await?;
    stack.quiesce().await?;
    let all = dashboard.settled(4).await?;
    assert_eq!(all.len(), 4, "one message for three deliveries of the same signed webhook: {all:#?}");

    // The business adds the stranger as a customer: their earlier message joins the new customer's thread.
    let pat = customer("cus_pat", "Pat Newman", "+15125550777", "");
    publisher.event(&event("c1", "customer.updated", ACCOUNT, Utc::now(), json!({"customer": pat}))).await?;
    let thread = messaging_integration_tests::eventually(std::time::Duration::from_secs(30), "Pat's thread", || {
        let mut dashboard = dashboard.clone();
        async move { dashboard.thread("cus_pat").await.ok().filter(|t| !t.is_empty()) }
    })
    .await?;
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].preview, "Who is this?");
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_blocks_automated_sms_and_start_restores_it() -> anyhow::Result<()> {
    let setup = account("evt_acc", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, dashboard) = start_with("keywords", &setup).await?;
    // The account's listing reaches delivery-status before any reply is sent.
    stack.quiesce().await?;
    let sim = stack.ports.sim;
    let dana = customer("cus_dana", "Dana Reyes", DANA, "");
    let mut invoices = 0;
    let mut send_invoice = || {
        invoices += 1;
        let body = json!({"customer": dana, "invoice": invoice(&format!("inv_{invoices}"))});
        event(&format!("e{invoices}"), "invoice.sent", ACCOUNT, Utc::now(), body)
    };

    // A sentence is a message, not an opt-out.
    sim_inbound(sim, DANA, &business_number(ACCOUNT), "please stop calling").await?;
    stack.quiesce().await?;
    publisher.event(&send_invoice()).await?;
    let all = dashboard.settled(2).await?;
    assert_eq!(count(&all, "cus_dana", MessageType::PaymentLink, Channel::Sms), 1);
    assert!(all.iter().any(|m| m.status == MessageStatus::Delivered as i32));

    // STOP: the next automated SMS is recorded, refused, and never reaches the provider.
    sim_inbound(sim, DANA, &business_number(ACCOUNT), " Stop. ").await?;
    stack.quiesce().await?;
    publisher.event(&send_invoice()).await?;
    let all = dashboard.settled(4).await?;
    let refused = all
        .iter()
        .filter(|m| m.r#type == MessageType::PaymentLink as i32 && m.status == MessageStatus::Failed as i32)
        .collect::<Vec<_>>();
    assert_eq!(refused.len(), 1, "{all:#?}");
    assert_eq!(refused[0].failure_reason, "opted_out");
    assert_eq!(sim_requests(sim).await?.len(), 1, "the provider got only the first invoice");

    // HELP is answered with who is texting and how to stop.
    let help = sim_inbound(sim, DANA, &business_number(ACCOUNT), "help").await?;
    let reply = help["webhook_body"].as_str().unwrap_or_default();
    assert!(reply.contains("<Message>Ace Plumbing") && reply.contains("Reply STOP to opt out"), "{help}");

    // START: automated SMS go out again.
    sim_inbound(sim, DANA, &business_number(ACCOUNT), "START").await?;
    stack.quiesce().await?;
    publisher.event(&send_invoice()).await?;
    let all = dashboard.settled(7).await?;
    let delivered = all
        .iter()
        .filter(|m| m.r#type == MessageType::PaymentLink as i32 && m.status == MessageStatus::Delivered as i32)
        .count();
    assert_eq!(delivered, 2, "{all:#?}");
    assert_eq!(sim_requests(sim).await?.len(), 2);
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_number_no_account_uses_yet_is_kept_until_one_does() -> anyhow::Result<()> {
    let first = account("evt_acc", "acc_other", "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, _) = start_with("pending-reply", &first).await?;
    stack.quiesce().await?;
    // A reply to a number the directory does not know yet: answered, and kept.
    let answer = sim_inbound(stack.ports.sim, DANA, "+15125550155", "Is this still the plumber?").await?;
    assert_eq!(answer["webhook_status"], 200, "{answer}");
    let mut newcomer = account("evt_new", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    newcomer["account"]["sms_number"] = "+15125550155".into();
    publisher.event(&newcomer).await?;
    let dashboard = messaging_integration_tests::client::Dashboard::connect(stack.ports.grpc, ACCOUNT).await?;
    let all = dashboard.settled(1).await?;
    assert_eq!(all[0].preview, "Is this still the plumber?");
    assert_eq!(all[0].direction, Direction::Inbound as i32);
    stack.quiesce().await?;
    assert_eq!(dashboard.clone().all().await.len(), 1);
    stack.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_racing_a_new_accounts_listing_are_all_recorded() -> anyhow::Result<()> {
    const SENDERS: usize = 4;
    const EACH: usize = 15;
    let first = account("evt_acc", "acc_other", "America/Chicago", ("00:00", "00:00"));
    let (mut stack, publisher, _) = start_with("racing-replies", &first).await?;
    stack.quiesce().await?;
    // Replies keep arriving for a number while the account that takes it is being listed: each is
    // either recorded at once or kept and recorded with the listing, never left behind.
    let sim = stack.ports.sim;
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            tokio::spawn(async move {
                for n in 0..EACH {
                    let from = format!("+1512555{:04}", 2000 + s * 100 + n);
                    sim_inbound(sim, &from, "+15125550156", &format!("reply {s}-{n}")).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let mut newcomer = account("evt_new", ACCOUNT, "America/Chicago", ("00:00", "00:00"));
    newcomer["account"]["sms_number"] = "+15125550156".into();
    publisher.event(&newcomer).await?;
    for sender in senders {
        sender.await??;
    }
    let dashboard = messaging_integration_tests::client::Dashboard::connect(stack.ports.grpc, ACCOUNT).await?;
    dashboard.settled(SENDERS * EACH).await?;
    stack.quiesce().await?;
    let all = dashboard.clone().all().await;
    assert_eq!(all.len(), SENDERS * EACH, "every reply, once");
    assert!(all.iter().all(|m| m.direction == Direction::Inbound as i32));
    stack.stop().await;
    Ok(())
}
