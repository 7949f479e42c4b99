//! Handles one SMS send command: claim, call the provider, settle. A redelivered command whose
//! claim was orphaned by a crash is reconciled against the provider before anything is resent.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use messaging_domain::signing::message_token;
use messaging_domain::sms::segments;
use messaging_domain::{AccountId, MessageId};
use messaging_gateway::claims::body_digest;
use messaging_gateway::{Claim, Claims, OpenAttempt, Settlement};
use messaging_platform::bus::{Delivery, Handler, Outcome};
use messaging_proto::bus::SendCommand;

use crate::pace::{Pace, Slot};
use crate::reconcile::Found;
use crate::twilio::{SendError, SmsProvider, SmsRequest, failure_reason};

/// Where a test may have the process abort, as `kill -9` would, around the provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    #[default]
    Never,
    /// The claim is committed; the provider has not been called.
    AfterClaim,
    /// The provider accepted the message; nothing is recorded yet.
    AfterProvider,
    /// The result is recorded; the command is not acknowledged yet.
    AfterRecord,
}

/// The send-command handler.
pub struct SmsSender<P> {
    pub(crate) provider: Arc<P>,
    pub(crate) claims: Claims,
    pub(crate) pace: Pace,
    /// Public base URL of delivery-status, for `StatusCallback`.
    pub(crate) callback_base: String,
    pub(crate) callback_secret: Vec<u8>,
    pub(crate) crash_at: CrashPoint,
}

impl<P: SmsProvider> Handler for SmsSender<P> {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        // Its subject names its channel, so a command decoded here is for this gateway's.
        let command = match delivery.decode::<SendCommand>() {
            Ok(command) => command,
            Err(dead) => return dead,
        };
        let (Ok(account), Ok(message)) = (AccountId::parse(&command.account_id), MessageId::parse(&command.message_id))
        else {
            return Outcome::DeadLetter("send command has invalid ids".into());
        };
        match self.process(&command, &account, &message, delivery.delivered).await {
            Ok(outcome) => {
                self.crash_if(CrashPoint::AfterRecord);
                outcome
            }
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
    }
}

impl<P: SmsProvider> SmsSender<P> {
    /// Aborts the process at `point` when configured to (fault-injection tests only).
    fn crash_if(&self, point: CrashPoint) {
        if self.crash_at == point {
            tracing::error!(?point, "crashing on purpose (fault injection)");
            std::process::abort();
        }
    }

    async fn process(
        &self,
        command: &SendCommand,
        account: &AccountId,
        message: &MessageId,
        delivered: i64,
    ) -> sqlx::Result<Outcome> {
        let claim =
            self.claims.claim(message.as_str(), account.as_str(), &command.to, &command.from, &command.body).await?;
        match claim {
            Claim::Won => {
                self.crash_if(CrashPoint::AfterClaim);
                self.send(command, account, message, delivered).await
            }
            Claim::Settled => {
                tracing::info!(message_id = %message, delivered, "already settled: publishing its attempt again");
                self.claims.publish_settled(message.as_str()).await?;
                Ok(Outcome::Ack)
            }
            Claim::Busy { retry_in } => {
                Ok(Outcome::Retry { delay: retry_in, reason: "another gateway holds the claim".into() })
            }
            Claim::Orphaned { claimed_at } => {
                if !self.claims.take_over(message.as_str()).await? {
                    return Ok(Outcome::Retry {
                        delay: Duration::from_secs(1),
                        reason: "claim taken over elsewhere".into(),
                    });
                }
                let attempt = OpenAttempt {
                    message_id: message.to_string(),
                    account_id: account.to_string(),
                    recipient: command.to.clone(),
                    sender: command.from.clone(),
                    body_digest: body_digest(&command.body),
                    claimed_at,
                };
                match crate::reconcile::lookup(self, &attempt).await? {
                    Found::Sent(provider_id) => {
                        tracing::info!(message_id = %message, %provider_id, "orphaned claim: provider already has it");
                        let sent = Settlement::Sent { provider_id };
                        self.claims.settle(message.as_str(), account.as_str(), &command.to, &sent).await?;
                        Ok(Outcome::Ack)
                    }
                    Found::Absent => {
                        tracing::info!(message_id = %message, "orphaned claim: provider has no such message; sending");
                        self.send(command, account, message, delivered).await
                    }
                    Found::Unavailable(error) => {
                        self.claims.release_lease(message.as_str()).await?;
                        Ok(Outcome::retry(format!("could not ask the provider about an orphaned claim: {error}")))
                    }
                }
            }
        }
    }

    async fn send(
        &self,
        command: &SendCommand,
        account: &AccountId,
        message: &MessageId,
        delivered: i64,
    ) -> sqlx::Result<Outcome> {
        let segments = if command.segments > 0 { command.segments } else { segments(&command.body).count };
        match self.pace.reserve(message.as_str(), &command.from, segments).await? {
            Slot::After(wait) => tokio::time::sleep(wait).await,
            Slot::Later(retry_in) => {
                self.claims.release(message.as_str()).await?;
                crate::metrics::rate_limited(true);
                return Ok(Outcome::Retry { delay: retry_in, reason: "sending number at its rate limit".into() });
            }
        }
        let token = message_token(&self.callback_secret, account, message);
        let call = tracing::info_span!("provider.send", otel.kind = "client", message_id = %message);
        // The status callback carries the trace back, so the provider's reports join it.
        let traceparent = call.in_scope(messaging_platform::bus::trace::current_traceparent);
        let mut status_callback =
            format!("{}/webhooks/twilio/status/{token}", self.callback_base.trim_end_matches('/'));
        if let Some(traceparent) = traceparent {
            status_callback.push_str(&format!("?traceparent={traceparent}"));
        }
        let request = SmsRequest {
            to: command.to.clone(),
            from: command.from.clone(),
            body: command.body.clone(),
            status_callback,
            validity_seconds: command.validity_seconds,
        };
        let started = std::time::Instant::now();
        let result = self.provider.send(&request).instrument(call).await;
        if let Err(error) = self.pace.release(message.as_str(), &command.from).await {
            tracing::warn!(message_id = %message, %error, "could not forget the message's rate-limit slot");
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        crate::metrics::provider_call(started.elapsed(), outcome_label(&result));
        if result.is_ok() {
            self.crash_if(CrashPoint::AfterProvider);
        }
        let settlement = match result {
            Ok(sent) => {
                tracing::info!(message_id = %message, account_id = %account, provider_id = %sent.sid, elapsed_ms, "sms accepted by provider");
                Settlement::Sent { provider_id: sent.sid }
            }
            Err(SendError::Permanent { status, code, message: text }) => {
                tracing::info!(message_id = %message, status, %code, "sms refused by provider");
                Settlement::Failed { reason: failure_reason(&code).to_owned(), code, text }
            }
            Err(SendError::RateLimited { retry_after }) => {
                self.claims.release(message.as_str()).await?;
                crate::metrics::rate_limited(false);
                return Ok(Outcome::backoff(delivered, retry_after, "provider rate limit"));
            }
            Err(SendError::NotSent(detail)) => {
                self.claims.release(message.as_str()).await?;
                return Ok(Outcome::backoff(delivered, Duration::ZERO, format!("provider unreachable: {detail}")));
            }
            Err(SendError::Misconfigured(detail)) => {
                return self.claims.release_misconfigured(message.as_str(), &detail).await;
            }
            Err(SendError::Ambiguous(detail)) => {
                tracing::warn!(message_id = %message, %detail, "sms outcome unknown; reconciliation will settle it");
                Settlement::Unknown { detail }
            }
        };
        self.claims.settle(message.as_str(), account.as_str(), &command.to, &settlement).await?;
        Ok(Outcome::Ack)
    }
}

fn outcome_label(result: &Result<crate::twilio::ProviderMessage, SendError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(SendError::Permanent { .. }) => "refused",
        Err(SendError::RateLimited { .. }) => "rate_limited",
        Err(SendError::NotSent(_)) => "not_sent",
        Err(SendError::Ambiguous(_)) => "ambiguous",
        Err(SendError::Misconfigured(_)) => "misconfigured",
    }
}
