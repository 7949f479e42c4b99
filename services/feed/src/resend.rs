//! ResendMessage: a failed outbound message sent again as a new manual message linked to it, with
//! the same words, by the channel it failed on or the other. It goes SendMessage's way, so the
//! customer's reachability is checked now and a request id makes one message however often it
//! comes.

use messaging_domain::sms::OPT_OUT_NOTICE;
use messaging_domain::{AccountId, Channel};
use messaging_proto::v1 as api;
use sqlx::PgPool;
use tonic::Status;

use crate::convert::internal;
use crate::scope::Scope;
use crate::send::{Compose, MAX_SMS_CHARS};
use crate::store;

/// The manual message that resends the request's failed message, or why there can be none.
/// A message outside the caller's `scope` is not found, like another account's.
pub async fn compose(
    pool: &PgPool,
    account: &AccountId,
    scope: &Scope,
    r: api::ResendMessageRequest,
) -> Result<Compose, Status> {
    if r.message_id.is_empty() {
        return Err(Status::invalid_argument("message_id is required"));
    }
    let channel = match r.channel {
        0 => None,
        n => Some(Channel::from_proto(n).ok_or_else(|| Status::invalid_argument("channel must be SMS or email"))?),
    };
    let failed = store::get(pool, account, &r.message_id).await.map_err(internal)?;
    let Some(failed) = failed.filter(|m| scope.allows(&m.customer_id)) else {
        return Err(Status::not_found(format!("no message {}", r.message_id)));
    };
    if failed.direction != "outbound" {
        return Err(Status::invalid_argument("only a message the business sent can be resent, not a reply"));
    }
    match failed.status.as_str() {
        "failed" => {}
        "unknown" => {
            return Err(Status::failed_precondition(
                "its delivery is unknown: it may have reached the customer, and a resend could send it twice",
            ));
        }
        other => {
            return Err(Status::failed_precondition(format!(
                "only a failed message can be resent; this one is {other}"
            )));
        }
    }
    let was = Channel::parse(&failed.channel).unwrap_or(Channel::Sms);
    let channel = channel.unwrap_or(was);
    let text = words(was, &failed.body);
    if channel == Channel::Sms && text.chars().count() > MAX_SMS_CHARS {
        return Err(Status::failed_precondition(format!(
            "its text is {} characters; an SMS carries at most {MAX_SMS_CHARS}",
            text.chars().count()
        )));
    }
    let subject = match (was, channel) {
        (_, Channel::Sms) => r.subject,
        (Channel::Email, Channel::Email) if r.subject.trim().is_empty() => failed.subject.clone(),
        (_, Channel::Email) if r.subject.trim().is_empty() => default_subject(pool, account).await?,
        (_, Channel::Email) => r.subject,
    };
    // An unknown sender's thread has no customer: it can only be texted back at its number.
    let to_sender = failed.customer_id.is_empty();
    if to_sender && channel == Channel::Email {
        return Err(Status::failed_precondition(
            "no_customer: this number belongs to no customer, so it can only be texted back",
        ));
    }
    Ok(Compose {
        request_id: r.request_id,
        customer_id: if to_sender { failed.customer_phone.clone() } else { failed.customer_id.clone() },
        to_sender,
        channel,
        text,
        subject,
        resend_of: Some(failed.message_id),
    })
}

/// What the failed message said: an SMS without the opt-out notice (dispatch adds it again when
/// the number's first SMS needs it), an email's text part as it was.
fn words(channel: Channel, body: &str) -> String {
    match channel {
        Channel::Sms => body.strip_suffix(OPT_OUT_NOTICE).unwrap_or(body).trim_end().to_owned(),
        Channel::Email => body.to_owned(),
    }
}

/// "A message from <business>", for an SMS resent by email.
async fn default_subject(pool: &PgPool, account: &AccountId) -> Result<String, Status> {
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM feed.accounts WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_optional(pool)
        .await
        .map_err(internal)?;
    Ok(match name.filter(|n| !n.trim().is_empty()) {
        Some(name) => format!("A message from {}", name.trim()),
        None => "A message about your service".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sms_is_resent_without_its_opt_out_notice_and_an_email_as_it_was() {
        let sms = messaging_domain::sms::with_opt_out_notice("Ace: see you at 9.");
        assert_eq!(words(Channel::Sms, &sms), "Ace: see you at 9.");
        assert_eq!(words(Channel::Sms, "No notice here."), "No notice here.");
        assert_eq!(
            words(Channel::Email, "Hi,\nsee you.\nReply STOP to opt out."),
            "Hi,\nsee you.\nReply STOP to opt out."
        );
    }
}
