//! SMS→email fallback on a real Postgres: an automatic SMS whose request left email out keeps its
//! request; a permanent failure of that SMS makes the same notification's email once (redelivered,
//! it makes nothing more), linked to the SMS; a transient failure, an email failure, a request
//! that sent its email already, a manual message, an account that turned fallback off, and a
//! customer without a usable email or opted out of email make none.

use messaging_dispatch::{CrashPoint, FallbackHandler, OptOutHandler};
use messaging_domain::MessageType;
use messaging_integration_tests::Database;
use messaging_integration_tests::database::delivery;
use messaging_platform::bus::{Handler, Outcome, TxHandler, outbox};
use messaging_proto::BusMessage;
use messaging_proto::bus::{MessageFailed, MessageQueued, NotificationRequest, OptOutChanged, SendCommand};
use messaging_proto::v1::Channel;
use sqlx::PgPool;

mod common;
use common::notification;

const ACCOUNT: &str = "acc_fallback";

/// An on-my-way request (SMS only, by contract) to customer `n`, who has an email address.
fn on_my_way(n: usize) -> NotificationRequest {
    let mut request = notification(ACCOUNT, 1);
    request.request_id = format!("req_omw_{n}");
    request.r#type = MessageType::OnMyWay.to_proto();
    request.channels = vec![Channel::Sms as i32];
    if let Some(customer) = request.customer.as_mut() {
        customer.customer_id = format!("cus_{n}");
        customer.phone = format!("+1512555{:04}", 300 + n);
        customer.email = format!("cus_{n}@example.com");
        customer.email_allowed = true;
    }
    request
}

fn failed(message_id: &str, channel: Channel, reason: &str) -> MessageFailed {
    MessageFailed {
        message_id: message_id.to_owned(),
        account_id: ACCOUNT.to_owned(),
        channel: channel as i32,
        failure_reason: reason.to_owned(),
        ..Default::default()
    }
}

/// What dispatch enqueued handling `handler`'s one delivery in a transaction of its own.
async fn handled<H: TxHandler>(pool: &PgPool, handler: &H, delivered: &impl BusMessage) -> Vec<(String, Vec<u8>)> {
    let mut tx = pool.begin().await.expect("begin");
    let batch = [delivery(delivered)];
    let (outcomes, rows) = outbox::collecting(handler.handle_batch(&mut tx, &batch, "dispatch")).await;
    assert_eq!(outcomes, [Outcome::Ack]);
    tx.commit().await.expect("commit");
    rows.iter().map(|row| row.message()).map(|m| (m.subject.clone(), m.payload.clone())).collect()
}

/// The SMS message the request made, if it kept its request for a fallback.
async fn sms_of(pool: &PgPool, request: &NotificationRequest) -> (String, bool) {
    let id: String =
        sqlx::query_scalar("SELECT message_id FROM dispatch.messages WHERE idempotency_key = $1 || ':sms'")
            .bind(&request.request_id)
            .fetch_one(pool)
            .await
            .expect("the SMS");
    let kept: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM dispatch.fallbacks WHERE message_id = $1)")
        .bind(&id)
        .fetch_one(pool)
        .await
        .expect("kept");
    (id, kept)
}

#[test]
fn a_permanently_failed_sms_goes_by_email_once() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("dispatch-fallback")).expect("postgres");
    let pool = database.pool.clone();
    runtime.block_on(async {
        let dispatcher = common::dispatcher(&database).await;
        let fallbacks = FallbackHandler::new(common::relay(&database).await, 900, CrashPoint::Never);
        let request = on_my_way(0);
        handled(&pool, &dispatcher, &request).await;
        let (sms, kept) = sms_of(&pool, &request).await;
        assert!(kept, "an on-my-way SMS to a customer with an email keeps its request");

        // Transient and ambiguous failures, and an email's failure, make no email.
        for (channel, reason) in
            [(Channel::Sms, "carrier_congestion"), (Channel::Sms, ""), (Channel::Email, "landline")]
        {
            let enqueued = handled(&pool, &fallbacks, &failed(&sms, channel, reason)).await;
            assert!(enqueued.is_empty(), "{reason:?} by {channel:?}: {enqueued:?}");
        }
        assert!(sms_of(&pool, &request).await.1, "still kept: a later report may say the failure is permanent");

        let enqueued = handled(&pool, &fallbacks, &failed(&sms, Channel::Sms, "landline")).await;
        let queued: Vec<MessageQueued> = enqueued
            .iter()
            .filter(|(subject, _)| subject.ends_with(".queued"))
            .map(|(_, payload)| MessageQueued::from_bytes(payload).expect("queued"))
            .collect();
        let commands: Vec<SendCommand> = enqueued
            .iter()
            .filter(|(subject, _)| subject == &format!("send.email.{ACCOUNT}"))
            .map(|(_, payload)| SendCommand::from_bytes(payload).expect("command"))
            .collect();
        assert_eq!((queued.len(), commands.len(), enqueued.len()), (1, 1, 2), "{enqueued:?}");
        let (email, command) = (&queued[0], &commands[0]);
        assert_eq!(email.fallback_of, sms, "the email names the SMS it stands in for");
        assert_eq!((email.channel, email.r#type), (Channel::Email as i32, MessageType::OnMyWay.to_proto()));
        assert_eq!(command.message_id, email.message_id);
        assert_eq!(command.to, "cus_0@example.com");
        assert_eq!(command.subject, "Luis from Ace Plumbing is on the way");
        assert!(command.body.contains("Luis is on the way to you now."), "{}", command.body);
        assert!(!sms_of(&pool, &request).await.1, "no longer kept");

        // The same failure again, or a later report of it, and the request redelivered: nothing more.
        for reason in ["landline", "invalid_number"] {
            assert!(handled(&pool, &fallbacks, &failed(&sms, Channel::Sms, reason)).await.is_empty());
        }
        handled(&pool, &dispatcher, &request).await;
        assert!(!sms_of(&pool, &request).await.1, "a redelivered request keeps nothing again");
        let emails: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.messages WHERE idempotency_key = $1")
            .bind(format!("{}:email", request.request_id))
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(emails, 1);
    });
}

#[test]
fn only_an_automatic_sms_without_its_email_and_with_a_usable_address_stands_by() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("dispatch-fallback-eligible")).expect("postgres");
    let pool = database.pool.clone();
    runtime.block_on(async {
        let dispatcher = common::dispatcher(&database).await;
        let both = {
            let mut request = on_my_way(1);
            request.r#type = MessageType::AppointmentConfirmation.to_proto();
            request.channels.clear();
            request
        };
        let off = {
            let mut request = on_my_way(2);
            request.account.as_mut().expect("account").email_fallback_off = true;
            request
        };
        let no_email = {
            let mut request = on_my_way(3);
            request.customer.as_mut().expect("customer").email_allowed = false;
            request
        };
        let manual = {
            let mut request = on_my_way(4);
            request.r#type = MessageType::Manual.to_proto();
            request.manual_text = "Running late, sorry!".into();
            request
        };
        for (request, why) in [
            (both, "its email went already"),
            (off, "the account turned fallback off"),
            (no_email, "the customer turned email off"),
            (manual, "a manual message"),
        ] {
            handled(&pool, &dispatcher, &request).await;
            assert!(!sms_of(&pool, &request).await.1, "{why}: nothing kept");
        }

        // A customer who opted out of email since gets no fallback.
        let request = on_my_way(5);
        handled(&pool, &dispatcher, &request).await;
        let (sms, kept) = sms_of(&pool, &request).await;
        assert!(kept);
        let opt_out = OptOutChanged {
            account_id: ACCOUNT.into(),
            channel: Channel::Email as i32,
            address: "CUS_5@example.com".into(),
            opted_out: true,
            source: "unsubscribe".into(),
            ..Default::default()
        };
        let opt_outs = OptOutHandler { pool: pool.clone() };
        assert_eq!(opt_outs.handle(&delivery(&opt_out)).await, Outcome::Ack);
        let fallbacks = FallbackHandler::new(common::relay(&database).await, 900, CrashPoint::Never);
        assert!(handled(&pool, &fallbacks, &failed(&sms, Channel::Sms, "opted_out")).await.is_empty());
        let emails: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatch.messages WHERE channel = 'email'")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(emails, 1, "only the confirmation's own email");
    });
}
