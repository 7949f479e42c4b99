//! Handles one email send command: claim, SMTP, settle. SMTP is not idempotent either, so an
//! orphaned claim (a crash mid-send) is settled as `unknown` rather than resent.

use std::sync::Arc;
use std::time::Duration;

use messaging_domain::signing::{message_ref_token, message_token, open_token, unsubscribe_token};
use messaging_domain::{AccountId, MessageId};
use messaging_gateway::{Claim, Claims, Settlement};
use messaging_platform::bus::{Delivery, Handler, Outcome};
use messaging_proto::bus::SendCommand;

use crate::smtp::{Email, MailError, Mailer};

/// The send-command handler.
pub struct EmailSender<M> {
    pub(crate) mailer: Arc<M>,
    pub(crate) claims: Claims,
    pub(crate) public_base_url: String,
    pub(crate) reply_domain: String,
    pub(crate) secret: Vec<u8>,
}

impl<M: Mailer> Handler for EmailSender<M> {
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
            Ok(outcome) => outcome,
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
    }
}

impl<M: Mailer> EmailSender<M> {
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
            Claim::Won => {}
            Claim::Settled => {
                self.claims.publish_settled(message.as_str()).await?;
                return Ok(Outcome::Ack);
            }
            Claim::Busy { retry_in } => {
                return Ok(Outcome::Retry { delay: retry_in, reason: "another gateway holds the claim".into() });
            }
            Claim::Orphaned { .. } => {
                if self.claims.take_over(message.as_str()).await? {
                    let detail =
                        "a gateway stopped while sending; the relay may or may not have the message".to_owned();
                    self.claims
                        .settle(message.as_str(), account.as_str(), &command.to, &Settlement::Unknown { detail })
                        .await?;
                }
                return Ok(Outcome::Ack);
            }
        }
        let token = message_token(&self.secret, account, message);
        let email = Email {
            message_id: message.to_string(),
            from_name: command.from_name.clone(),
            from: command.from.clone(),
            to: command.to.clone(),
            reply_to: if self.reply_domain.is_empty() {
                String::new()
            } else {
                format!("reply+{}@{}", message_ref_token(&self.secret, message), self.reply_domain)
            },
            subject: command.subject.clone(),
            text: command.body.clone(),
            html: command.html_body.clone(),
            unsubscribe_url: format!(
                "{}/unsubscribe/{}",
                self.public_base_url.trim_end_matches('/'),
                unsubscribe_token(&self.secret, message)
            ),
            open_pixel_url: format!(
                "{}/o/{}.gif",
                self.public_base_url.trim_end_matches('/'),
                open_token(&self.secret, account, message)
            ),
            tracking_token: token.clone(),
        };
        let settlement = match self.mailer.send(&email).await {
            Ok(()) => {
                tracing::info!(message_id = %message, account_id = %account, "email accepted by relay");
                Settlement::Sent { provider_id: format!("smtp-{message}") }
            }
            Err(MailError::Invalid(text)) => {
                Settlement::Failed { reason: "invalid_message".into(), code: String::new(), text }
            }
            Err(MailError::Permanent(text)) => {
                Settlement::Failed { reason: "rejected".into(), code: smtp_code(&text), text }
            }
            Err(MailError::Transient(text)) => {
                self.claims.release(message.as_str()).await?;
                return Ok(Outcome::backoff(delivered, Duration::ZERO, format!("smtp: {text}")));
            }
            Err(MailError::Misconfigured(text)) => {
                return self.claims.release_misconfigured(message.as_str(), &text).await;
            }
            Err(MailError::Ambiguous(detail)) => {
                tracing::warn!(message_id = %message, %detail, "email outcome unknown; it will not be sent again");
                Settlement::Unknown { detail }
            }
        };
        if let Settlement::Failed { reason, text, .. } = &settlement {
            tracing::warn!(message_id = %message, %reason, %text, "email failed");
        }
        self.claims.settle(message.as_str(), account.as_str(), &command.to, &settlement).await?;
        Ok(Outcome::Ack)
    }
}

/// The three-digit reply code at the start of an SMTP error, if any.
fn smtp_code(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit()).find(|part| part.len() == 3).unwrap_or_default().to_owned()
}
