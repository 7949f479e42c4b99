//! SMS→email fallback: an automatic SMS whose request made no email (on-my-way goes by SMS only)
//! keeps its request here while the customer has a usable email and the account has not turned
//! fallback off. When delivery-status reports that SMS failed for a permanent reason
//! ([`messaging_domain::fallback`]), the kept request is dispatched again for email, in the same
//! transaction that deletes it: the email's key is the request's own (`<request id>:email`), its
//! events go through the outbox, so a redelivered failure, a second report or a `kill -9` after
//! the commit never makes a second email.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use messaging_domain::fallback::falls_back_to_email;
use messaging_domain::{Channel, MessageId, MessageType};
use messaging_platform::Shutdown;
use messaging_platform::bus::{Delivery, Outcome, Relay, TxHandler};
use messaging_proto::bus::{MessageFailed, NotificationRequest};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};
use tracing::Span;

use crate::handler::{Asked, CrashPoint, Dispatcher, email_usable};
use crate::suppression::{self, Recipient};

/// How long a kept request waits for its SMS to fail: far past the longest an SMS stays pending.
const KEPT_FOR: Duration = Duration::from_secs(3 * 24 * 3600);

/// Whether an SMS of `request` may fall back to email: an automatic type, an account that has not
/// turned fallback off, a customer with a usable email, and a request that left email out (one
/// that allowed it has sent its email already).
pub fn stands_by(request: &NotificationRequest, kind: MessageType) -> bool {
    let (Some(account), Some(customer)) = (&request.account, &request.customer) else { return false };
    let email = Channel::Email.to_proto();
    !matches!(kind, MessageType::Manual | MessageType::Reply)
        && !account.email_fallback_off
        && !request.channels.is_empty()
        && !request.channels.contains(&email)
        && email_usable(account, customer)
}

/// Keeps the requests behind `sms` (new messages, each with its request) in one statement.
pub async fn keep(tx: &mut PgConnection, sms: &[(MessageId, &NotificationRequest)]) -> sqlx::Result<()> {
    if sms.is_empty() {
        return Ok(());
    }
    let account = |r: &NotificationRequest| r.account.as_ref().map(|a| a.account_id.clone()).unwrap_or_default();
    sqlx::query(
        "INSERT INTO dispatch.fallbacks (message_id, account_id, request)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[]) ON CONFLICT DO NOTHING",
    )
    .bind(sms.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
    .bind(sms.iter().map(|(_, r)| account(r)).collect::<Vec<_>>())
    .bind(sms.iter().map(|(_, r)| r.encode_to_vec()).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// Consumes `message.*.failed`.
pub struct FallbackHandler {
    dispatcher: Dispatcher,
    relay: Relay,
    crash_at: CrashPoint,
    /// An email was committed by the last transaction (where the fault injection aborts).
    made: AtomicBool,
}

impl FallbackHandler {
    pub fn new(relay: Relay, on_my_way_validity_secs: u32, crash_at: CrashPoint) -> Self {
        let dispatcher = Dispatcher::new(relay.clone(), on_my_way_validity_secs);
        Self { dispatcher, relay, crash_at, made: AtomicBool::new(false) }
    }
}

impl TxHandler for FallbackHandler {
    fn committed(&self) {
        if self.made.swap(false, Ordering::SeqCst) && self.crash_at == CrashPoint::AfterFallbackCommit {
            tracing::error!(point = ?self.crash_at, "crashing on purpose (fault injection)");
            std::process::abort();
        }
        self.relay.wake();
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        let failed = match delivery.decode::<MessageFailed>() {
            Ok(failed) => failed,
            Err(dead) => return dead,
        };
        if Channel::from_proto(failed.channel) != Some(Channel::Sms) || !falls_back_to_email(&failed.failure_reason) {
            return Outcome::Ack;
        }
        let kept: Option<(Vec<u8>,)> = match sqlx::query_as(
            "DELETE FROM dispatch.fallbacks WHERE message_id = $1 AND account_id = $2 RETURNING request",
        )
        .bind(&failed.message_id)
        .bind(&failed.account_id)
        .fetch_optional(&mut *tx)
        .await
        {
            Ok(kept) => kept,
            Err(error) => return Outcome::retry(format!("database: {error}")),
        };
        // None kept: not an SMS that may fall back, or its fallback is made already.
        let Some((bytes,)) = kept else { return Outcome::Ack };
        let mut request = match NotificationRequest::decode(bytes.as_slice()) {
            Ok(request) => request,
            Err(error) => return Outcome::DeadLetter(format!("kept request of {}: {error}", failed.message_id)),
        };
        let Some(kind) = MessageType::from_proto(request.r#type) else {
            return Outcome::DeadLetter(format!("kept request of {} has no type", failed.message_id));
        };
        request.channels = vec![Channel::Email.to_proto()];
        request.message_id.clear();
        let address = request.customer.as_ref().map(|c| c.email.clone()).unwrap_or_default();
        let recipient = Recipient { account_id: &failed.account_id, channel: Channel::Email, address: &address };
        match suppression::suppressed(tx, &[recipient]).await {
            Ok(opted_out) if opted_out.first() == Some(&true) => {
                tracing::info!(account_id = %failed.account_id, message_id = %failed.message_id, "customer opted out of email; no fallback");
                crate::metrics::email_fallback(kind, "email_opted_out");
                return Outcome::Ack;
            }
            Ok(_) => {}
            Err(error) => return Outcome::retry(format!("database: {error}")),
        }
        tracing::info!(account_id = %failed.account_id, message_id = %failed.message_id,
            reason = %failed.failure_reason, "SMS failed permanently; sending it by email");
        let asked = [Asked { request, kind, fallback_of: Some(failed.message_id) }];
        let outcome = self.dispatcher.create_all(tx, &asked, &[Span::current()]).await.pop().unwrap_or(Outcome::Ack);
        if matches!(outcome, Outcome::Ack) {
            crate::metrics::email_fallback(kind, "sent");
            self.made.store(true, Ordering::SeqCst);
        }
        outcome
    }
}

/// Forgets, every hour until shutdown, the requests kept longer than [`KEPT_FOR`]: their SMS
/// settled without failing permanently.
pub async fn sweep(pool: PgPool, shutdown: Shutdown) {
    loop {
        let swept = sqlx::query("DELETE FROM dispatch.fallbacks WHERE created_at < now() - make_interval(secs => $1)")
            .bind(KEPT_FOR.as_secs_f64())
            .execute(&pool)
            .await;
        match swept {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::info!(forgotten = done.rows_affected(), "settled SMS no longer kept for email fallback")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sweeping kept fallback requests failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
