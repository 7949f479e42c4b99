//! A2P 10DLC: an SMS from an account whose registration is reported and not active is recorded
//! failed with reason `sms_not_registered` and never reaches the SMS gateway, while its email goes
//! as ever; an active registration, or none ever reported, sends; a redelivered request publishes
//! the same refusal.

use messaging_integration_tests::Database;
use messaging_integration_tests::database::delivery;
use messaging_platform::bus::{Outcome, TxHandler, outbox};
use messaging_proto::BusMessage;
use messaging_proto::bus::{SendAttempt, SendCommand};
use messaging_proto::v1::Channel;

mod common;
use common::notification;

const ACCOUNT: &str = "acc_reg";

#[test]
fn an_unregistered_number_sends_no_sms_and_its_email_still_goes() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(Database::start("dispatch-registration")).expect("postgres");
    let pool = database.pool.clone();
    runtime.block_on(async {
        let dispatcher = common::dispatcher(&database).await;
        for (state, sends) in [("brand_pending", false), ("rejected", false), ("active", true), ("", true)] {
            // A confirmation to a customer reachable by SMS and email, a customer of its own each time.
            let mut request = notification(ACCOUNT, 0);
            request.request_id = format!("req_{state}");
            if let Some(customer) = request.customer.as_mut() {
                customer.phone = format!("+1512555{:04}", 200 + state.len());
            }
            if let Some(account) = request.account.as_mut() {
                account.sms_registration = state.to_owned();
            }
            for delivered in 0..2 {
                let mut tx = pool.begin().await.expect("begin");
                let batch = [delivery(&request)];
                let (outcomes, rows) = outbox::collecting(dispatcher.handle_batch(&mut tx, &batch, "dispatch")).await;
                assert_eq!(outcomes, [Outcome::Ack]);
                tx.commit().await.expect("commit");
                let messages: Vec<_> = rows.iter().map(|row| row.message()).collect();
                let commands: Vec<SendCommand> = messages
                    .iter()
                    .filter(|m| m.subject.starts_with("send."))
                    .map(|m| SendCommand::from_bytes(&m.payload).expect("a send command"))
                    .collect();
                let refused: Vec<SendAttempt> = messages
                    .iter()
                    .filter(|m| m.subject.ends_with(".attempt"))
                    .map(|m| SendAttempt::from_bytes(&m.payload).expect("an attempt"))
                    .collect();
                let by = |channel: Channel| commands.iter().filter(|c| c.channel == channel as i32).count();
                let case = format!("{state:?}, delivery {delivered}");
                assert_eq!(by(Channel::Email), 1, "{case}: email goes whatever the registration");
                assert_eq!(by(Channel::Sms), usize::from(sends), "{case}");
                let reasons: Vec<&str> = refused.iter().map(|a| a.failure_reason.as_str()).collect();
                assert_eq!(reasons, if sends { vec![] } else { vec!["sms_not_registered"] }, "{case}");
            }
            let stored: Option<String> =
                sqlx::query_scalar("SELECT failure_reason FROM dispatch.messages WHERE idempotency_key = $1 || ':sms'")
                    .bind(&request.request_id)
                    .fetch_one(&pool)
                    .await
                    .expect("the SMS message row");
            assert_eq!(stored.as_deref(), (!sends).then_some("sms_not_registered"), "{state:?}");
        }
    });
}
