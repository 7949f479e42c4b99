//! The adapter's lookup against the simulator's list API, which answers as Twilio's does: messages
//! still queued (no `date_sent`) are found, a message created before the claim is not, paging keeps
//! the filters, and a messaging service's message (no `From` while accepted) is found by service.

use std::time::Duration;

use chrono::Utc;
use messaging_provider_sim::Faults;
use messaging_sms_gateway::twilio::{SmsProvider, SmsRequest, Twilio, TwilioConfig};
use serde_json::Value;

mod sim;

use sim::{SID, TOKEN};

const CUSTOMER: &str = "+15125550199";
const OTHER: &str = "+15125550198";
const BUSINESS: &str = "+15125550100";

async fn simulator() -> String {
    // Every message stays queued at the provider.
    sim::start(Faults { outcome: "queued".into(), ..Default::default() }, None).await
}

fn twilio(base: &str, service: &str) -> Twilio {
    let config = TwilioConfig {
        base_url: base.into(),
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
        messaging_service_sid: service.into(),
        ..Default::default()
    };
    Twilio::new(config, &Default::default()).expect("client")
}

fn sms(to: &str, body: &str) -> SmsRequest {
    SmsRequest {
        to: to.into(),
        from: BUSINESS.into(),
        body: body.into(),
        status_callback: String::new(),
        validity_seconds: 0,
    }
}

#[tokio::test]
async fn a_lookup_finds_queued_messages_created_after_the_claim_across_pages() {
    let base = simulator().await;
    let provider = twilio(&base, "");
    let earlier = provider.send(&sms(CUSTOMER, "On my way!")).await.expect("accepted");
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let claimed_at = Utc::now();
    for n in 0..55 {
        provider.send(&sms(CUSTOMER, &format!("message {n}"))).await.expect("accepted");
    }
    for n in 0..3 {
        provider.send(&sms(OTHER, &format!("other {n}"))).await.expect("accepted");
    }
    let found = provider.list(CUSTOMER, BUSINESS, claimed_at).await.expect("listed");
    assert_eq!(found.len(), 55, "two pages, both filtered by recipient and sender");
    assert!(found.iter().all(|m| m.to.as_deref() == Some(CUSTOMER) && m.status.as_deref() == Some("queued")));
    assert!(found.iter().all(|m| m.sid != earlier.sid), "the message created before the claim is not its");
    let everything =
        provider.list(CUSTOMER, BUSINESS, claimed_at - chrono::Duration::seconds(10)).await.expect("listed");
    assert_eq!(everything.len(), 56);

    // Twilio's DateSent filters read date_sent, which a queued message does not have yet.
    let today = Utc::now().format("%Y-%m-%d").to_string();
    let url = format!("{base}/2010-04-01/Accounts/{SID}/Messages.json");
    let client = reqwest::Client::new();
    let by_date: Value = client
        .get(&url)
        .basic_auth(SID, Some(TOKEN))
        .query(&[("To", CUSTOMER), ("DateSent>", today.as_str())])
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(by_date["messages"].as_array().map(Vec::len), Some(0), "{by_date}");
}

#[tokio::test]
async fn a_messaging_services_message_is_found_by_service_not_by_from() {
    let base = simulator().await;
    let claimed_at = Utc::now();
    let provider = twilio(&base, "MG00000000000000000000000000000001");
    let sent = provider.send(&sms(CUSTOMER, "The part arrived")).await.expect("accepted");
    assert_eq!(sent.status.as_deref(), Some("accepted"));
    assert_eq!(sent.from, None, "the service has not picked a number yet");
    let found = provider.list(CUSTOMER, BUSINESS, claimed_at).await.expect("listed");
    assert_eq!(found.iter().map(|m| m.sid.as_str()).collect::<Vec<_>>(), [sent.sid.as_str()]);
    // Another service's message, and one sent from a number, are not this service's.
    twilio(&base, "MG00000000000000000000000000000002").send(&sms(CUSTOMER, "x")).await.expect("accepted");
    twilio(&base, "").send(&sms(CUSTOMER, "y")).await.expect("accepted");
    assert_eq!(provider.list(CUSTOMER, BUSINESS, claimed_at).await.expect("listed").len(), 1);
}
