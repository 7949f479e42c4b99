//! dispatch words a message with the account's own template for its type and channel (the newest
//! version it heard of), keeps the version on the message, and sends the built-in wording, with
//! the reason recorded, when the template cannot render the request. A customer's name is only
//! ever a value; a reset brings the built-in wording back; a message already worded keeps its
//! words when its request is delivered again. Every `queued` event carries its request's
//! variable values, which the business previews its templates with.

use messaging_dispatch::{Dispatcher, TemplateHandler};
use messaging_integration_tests::Database;
use messaging_integration_tests::database::delivery;
use messaging_platform::bus::outbox;
use messaging_platform::bus::{Delivery, Handler, Outcome, TxHandler};
use messaging_proto::BusMessage;
use messaging_proto::bus::{MessageQueued, SendCommand, TemplatePublished};
use messaging_proto::v1::{Channel, MessageType};
use sqlx::PgPool;

mod common;
use common::{notification, request};

const ACCOUNT: &str = "acc_t";

fn template(kind: MessageType, channel: Channel, version: u32, parts: [&str; 3]) -> Delivery {
    let [body, subject, text] = parts;
    let (sms_body, text) = if channel == Channel::Sms { (body, "") } else { ("", text) };
    delivery(&TemplatePublished {
        account_id: ACCOUNT.into(),
        r#type: kind as i32,
        channel: channel as i32,
        version,
        built_in: parts == ["", "", ""],
        sms_body: sms_body.into(),
        subject: subject.into(),
        text: text.into(),
        ..Default::default()
    })
}

/// The send commands handling `deliveries` as one batch publishes, in order.
async fn commands(pool: &PgPool, dispatcher: &Dispatcher, deliveries: &[Delivery]) -> Vec<SendCommand> {
    let mut tx = pool.begin().await.expect("begin");
    let (outcomes, rows) = outbox::collecting(dispatcher.handle_batch(&mut tx, deliveries, "dispatch")).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack), "{outcomes:?}");
    tx.commit().await.expect("commit");
    rows.iter()
        .map(|row| row.message())
        .filter(|m| m.subject.starts_with("send."))
        .map(|m| SendCommand::from_bytes(&m.payload).expect("a send command"))
        .collect()
}

/// (template version, fallback reason) of the message with `message_id`.
async fn recorded(pool: &PgPool, message_id: &str) -> (Option<i32>, Option<String>) {
    sqlx::query_as("SELECT template_version, template_fallback FROM dispatch.messages WHERE message_id = $1")
        .bind(message_id)
        .fetch_one(pool)
        .await
        .expect("message")
}

#[test]
fn the_accounts_template_words_its_messages_and_one_that_cannot_render_falls_back() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("dispatch-templates")).expect("postgres");
    let pool = database.pool.clone();
    runtime.block_on(async {
        let dispatcher = common::dispatcher(&database).await;
        let templates = TemplateHandler { pool: pool.clone() };
        let confirmation = MessageType::AppointmentConfirmation;
        let custom_sms = "{{ business_name }}: {{ customer_first_name }}, see you {{ job_window }}.";
        let email =
            ["", "Booked: {{ job_title }}", "Hi {{ customer_first_name }},\nsee you {{ job_date }} at {{ job_time }}."];
        for event in [
            template(confirmation, Channel::Sms, 2, [custom_sms, "", ""]),
            // An older version arriving late changes nothing.
            template(confirmation, Channel::Sms, 1, ["old wording", "", ""]),
            template(confirmation, Channel::Email, 1, email),
            // On-my-way messages carry no invoice: this template cannot render them.
            template(MessageType::OnMyWay, Channel::Sms, 1, ["{{ invoice_number }} is on the way", "", ""]),
        ] {
            assert_eq!(templates.handle(&event).await, Outcome::Ack);
        }

        // Request 0: a confirmation by SMS (the number's first) and email; 1: on my way by SMS;
        // 6: a confirmation to a customer whose name looks like template syntax.
        let mut injected = notification(ACCOUNT, 6);
        if let Some(customer) = injected.customer.as_mut() {
            customer.name = "{{business_name}} Reyes".into();
        }
        let first = [request(ACCOUNT, 0), request(ACCOUNT, 1), delivery(&injected)];
        let sent = commands(&pool, &dispatcher, &first).await;
        // In request order, SMS before email: 0 by SMS and email, 1 by SMS, 6 by SMS (no email allowed).
        assert_eq!(sent.len(), 4, "{sent:#?}");
        let (sms, mail) = (&sent[0], &sent[1]);
        assert!(
            sms.body.starts_with("Ace Plumbing: Dana, see you ") && sms.body.ends_with(". Reply STOP to opt out."),
            "{}",
            sms.body
        );
        assert_eq!(mail.subject, "Booked: Water heater");
        assert!(mail.body.starts_with("Hi Dana,\nsee you ") && mail.html_body.contains("<p>Hi Dana,</p>"), "{mail:?}");
        assert_eq!(recorded(&pool, &sms.message_id).await, (Some(2), None));
        assert_eq!(recorded(&pool, &mail.message_id).await, (Some(1), None));

        let on_my_way = &sent[2];
        assert!(on_my_way.body.contains("is on the way to you now"), "the built-in wording: {}", on_my_way.body);
        let (version, why) = recorded(&pool, &on_my_way.message_id).await;
        assert_eq!(version, None);
        assert!(why.as_deref().is_some_and(|w| w.contains("invoice_number")), "{why:?}");

        assert!(sent[3].body.contains("{{business_name}}, see you"), "a name is output as written: {}", sent[3].body);

        // A reset brings the built-in wording back for messages worded from now on; a message
        // already worded keeps its words when its request comes again.
        assert_eq!(templates.handle(&template(confirmation, Channel::Sms, 3, ["", "", ""])).await, Outcome::Ack);
        let later = commands(&pool, &dispatcher, &[request(ACCOUNT, 3)]).await;
        assert!(later[0].body.contains("is confirmed for"), "{}", later[0].body);
        assert_eq!(recorded(&pool, &later[0].message_id).await, (None, None));
        assert!(later[1].subject.starts_with("Booked: "), "the email template still holds");
        let again = commands(&pool, &dispatcher, &first[..1]).await;
        assert_eq!(again[0].body, sms.body, "worded once, never again");
    });
}

#[test]
fn every_queued_event_carries_its_requests_template_values() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("dispatch-template-values")).expect("postgres");
    let pool = database.pool.clone();
    runtime.block_on(async {
        let dispatcher = common::dispatcher(&database).await;
        let mut tx = pool.begin().await.expect("begin");
        let batch = [request(ACCOUNT, 0)];
        let (outcomes, rows) = outbox::collecting(dispatcher.handle_batch(&mut tx, &batch, "dispatch")).await;
        assert_eq!(outcomes, [Outcome::Ack]);
        tx.commit().await.expect("commit");
        let queued: Vec<MessageQueued> = rows
            .iter()
            .map(|row| row.message())
            .filter(|m| m.subject.ends_with(".queued"))
            .map(|m| MessageQueued::from_bytes(&m.payload).expect("a queued event"))
            .collect();
        assert_eq!(queued.len(), 2, "SMS and email");
        for event in &queued {
            let value = |name: &str| event.values.get(name).map(String::as_str);
            assert_eq!(value("business_name"), Some("Ace Plumbing"));
            assert_eq!(value("customer_first_name"), Some("Dana"));
            assert_eq!(value("job_title"), Some("Water heater"));
            assert!(value("job_window").is_some_and(|w| w.contains(" between ")), "{:?}", event.values);
            assert_eq!(value("invoice_number"), None, "a confirmation carries no invoice");
        }
    });
}
