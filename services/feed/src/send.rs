//! Manual messages (`SendMessage`): checks a request, refuses one that cannot reach the customer
//! with the reason, and otherwise commits the queued row, the request id and the notification
//! request for dispatch in one transaction. The same `request_id` returns the same message.

use chrono::Utc;
use messaging_domain::{AccountId, Channel, MessageId, MessageType};
use messaging_platform::bus::outbox::{self, OutboxMessage};
use messaging_proto::bus::{AccountSnapshot, CustomerSnapshot, NotificationRequest};
use messaging_proto::time::timestamp;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::changes;
use crate::threads::{self, CustomerRow};

/// Twilio's limit for one message body.
pub const MAX_SMS_CHARS: usize = 1600;
pub const MAX_EMAIL_CHARS: usize = 20_000;
pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_REQUEST_ID_CHARS: usize = 100;

/// Why `request_id` cannot key a request (every call that acts once per request id checks it so).
pub fn check_request_id(request_id: &str) -> Result<(), &'static str> {
    if request_id.trim().is_empty() {
        return Err("request_id is required (any unique string; retries reuse it)");
    }
    if request_id.chars().count() > MAX_REQUEST_ID_CHARS || request_id.chars().any(char::is_control) {
        return Err("request_id must be at most 100 printable characters");
    }
    Ok(())
}

/// A manual message as asked for.
#[derive(Debug, Clone)]
pub struct Compose {
    pub request_id: String,
    /// The customer; or, with `to_sender`, the E.164 number of a sender no customer owns.
    pub customer_id: String,
    pub to_sender: bool,
    pub channel: Channel,
    pub text: String,
    pub subject: String,
    /// The failed message this one resends (ResendMessage), if it is a resend.
    pub resend_of: Option<String>,
}

/// Why a send did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Invalid(String),
    #[error("no customer {0}")]
    NoCustomer(String),
    #[error("no thread for {0}")]
    NoThread(String),
    #[error("{0}")]
    Refused(String),
    #[error("request_id {0} was already used for a different message")]
    Reused(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Compose {
    /// Checks what the caller controls; the text is trimmed.
    pub fn validate(mut self) -> Result<Self, SendError> {
        let invalid = |m: &str| Err(SendError::Invalid(m.to_owned()));
        if let Err(why) = check_request_id(&self.request_id) {
            return invalid(why);
        }
        if self.customer_id.is_empty() {
            return invalid(if self.to_sender { "sender is required" } else { "customer_id is required" });
        }
        if self.to_sender && messaging_domain::E164::parse_strict(&self.customer_id).is_err() {
            return invalid("sender must be an E.164 number, as its thread names it");
        }
        self.text = self.text.trim().to_owned();
        if self.text.is_empty() {
            return invalid("text is required");
        }
        match self.channel {
            Channel::Sms if !self.subject.is_empty() => return invalid("subject is for email only"),
            Channel::Sms if self.text.chars().count() > MAX_SMS_CHARS => {
                return invalid("an SMS text is at most 1600 characters");
            }
            Channel::Email if self.text.chars().count() > MAX_EMAIL_CHARS => {
                return invalid("an email text is at most 20000 characters");
            }
            Channel::Email => {
                self.subject = self.subject.trim().to_owned();
                if self.subject.is_empty() {
                    return invalid("subject is required for email");
                }
                if self.subject.chars().count() > MAX_SUBJECT_CHARS || self.subject.chars().any(char::is_control) {
                    return invalid("subject must be one line of at most 200 characters");
                }
            }
            Channel::Sms => {}
        }
        Ok(self)
    }

    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for part in [self.customer_id.as_str(), self.channel.as_str(), &self.text, &self.subject] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        // Only a resend hashes what it resends, so a manual message keeps the fingerprint it always had.
        if let Some(resent) = &self.resend_of {
            hash.update(b"resend-of");
            hash.update((resent.len() as u64).to_be_bytes());
            hash.update(resent.as_bytes());
        }
        hex(&hash.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What stands between a customer and a message on `channel`, if anything.
pub struct Reachability {
    pub opted_out: bool,
    pub landline: bool,
    pub sender: String,
    /// The account's A2P 10DLC registration when it is reported and does not send SMS.
    pub unregistered: Option<String>,
}

/// The refusal for a customer who cannot get the message, with a stable reason first.
pub fn refusal(channel: Channel, customer: &CustomerRow, reach: &Reachability) -> Option<String> {
    let reason = match channel {
        Channel::Sms if customer.phone.is_empty() => "no_phone: the customer has no phone number",
        Channel::Sms if reach.landline => "landline: the customer's number cannot receive SMS",
        Channel::Sms if reach.opted_out => "opted_out: the customer replied STOP to this business's texts",
        Channel::Sms if !customer.sms_allowed => "sms_off: the customer has turned off text messages",
        Channel::Sms if reach.sender.is_empty() => "no_sender: the account has no business phone number",
        Channel::Sms if let Some(state) = &reach.unregistered => {
            return Some(format!(
                "sms_not_registered: the business number's A2P 10DLC registration is {}; carriers block its texts until it is active",
                state.replace('_', " ")
            ));
        }
        Channel::Email if customer.email.is_empty() => "no_email: the customer has no email address",
        Channel::Email if reach.opted_out => "unsubscribed: the customer unsubscribed from this business's email",
        Channel::Email if !customer.email_allowed => "email_off: the customer has turned off email",
        Channel::Email if reach.sender.is_empty() => "no_sender: the account has no send address",
        _ => return None,
    };
    Some(reason.to_owned())
}

/// Why SendMessage would refuse `customer` on each of `channels` now, if it would.
pub async fn reach(
    pool: &PgPool,
    account: &AccountId,
    customer: &CustomerRow,
    channels: &[Channel],
) -> sqlx::Result<Vec<(Channel, Option<String>)>> {
    let mut reach = Vec::with_capacity(channels.len());
    for &channel in channels {
        let (found, _) = reachability(pool, account, channel, customer).await?;
        reach.push((channel, refusal(channel, customer, &found)));
    }
    Ok(reach)
}

/// The message a request id already created: (message id, status).
async fn existing(
    pool: &PgPool,
    account: &AccountId,
    compose: &Compose,
) -> Result<Option<(String, String)>, SendError> {
    let row = sqlx::query(
        "SELECT s.message_id, s.fingerprint, COALESCE(m.status, 'queued') AS status FROM feed.sends s
         LEFT JOIN feed.messages m ON m.message_id = s.message_id AND m.account_id = s.account_id
         WHERE s.account_id = $1 AND s.request_id = $2",
    )
    .bind(account.as_str())
    .bind(&compose.request_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let fingerprint: String = row.try_get("fingerprint")?;
    if fingerprint != compose.fingerprint() {
        return Err(SendError::Reused(compose.request_id.clone()));
    }
    Ok(Some((row.try_get("message_id")?, row.try_get("status")?)))
}

async fn reachability(
    pool: &PgPool,
    account: &AccountId,
    channel: Channel,
    customer: &CustomerRow,
) -> sqlx::Result<(Reachability, AccountSnapshot)> {
    let address = match channel {
        Channel::Sms => customer.phone.clone(),
        Channel::Email => customer.email.to_lowercase(),
    };
    let row = sqlx::query(
        "SELECT
             COALESCE((SELECT opted_out FROM feed.opt_outs WHERE account_id = $1 AND channel = $2 AND address = $3), false) AS opted_out,
             $2 = 'sms' AND EXISTS (SELECT 1 FROM feed.landlines WHERE account_id = $1 AND phone = $3) AS landline,
             a.name, a.sms_number, a.email_from, a.sms_registration
         FROM (SELECT 1) one LEFT JOIN feed.accounts a ON a.account_id = $1",
    )
    .bind(account.as_str())
    .bind(channel.as_str())
    .bind(&address)
    .fetch_one(pool)
    .await?;
    let snapshot = AccountSnapshot {
        account_id: account.as_str().to_owned(),
        name: row.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
        sms_number: row.try_get::<Option<String>, _>("sms_number")?.unwrap_or_default(),
        email_from: row.try_get::<Option<String>, _>("email_from")?.unwrap_or_default(),
        ..Default::default()
    };
    let sender = match channel {
        Channel::Sms => snapshot.sms_number.clone(),
        Channel::Email => snapshot.email_from.clone(),
    };
    let registration: Option<String> = row.try_get("sms_registration")?;
    let unregistered = registration.filter(|state| !messaging_domain::registration::sends_sms(Some(state)));
    let reach =
        Reachability { opted_out: row.try_get("opted_out")?, landline: row.try_get("landline")?, sender, unregistered };
    Ok((reach, snapshot))
}

/// Sends (or finds) the manual message; returns its id and status.
pub async fn send(pool: &PgPool, account: &AccountId, compose: Compose) -> Result<(String, String), SendError> {
    let compose = compose.validate()?;
    if let Some(found) = existing(pool, account, &compose).await? {
        return Ok(found);
    }
    let customer = if compose.to_sender {
        crate::attach::stranger(pool, account, &compose.customer_id)
            .await?
            .ok_or_else(|| SendError::NoThread(compose.customer_id.clone()))?
    } else {
        threads::customer(pool, account, &compose.customer_id)
            .await?
            .ok_or_else(|| SendError::NoCustomer(compose.customer_id.clone()))?
    };
    let (reach, account_snapshot) = reachability(pool, account, compose.channel, &customer).await?;
    if let Some(reason) = refusal(compose.channel, &customer, &reach) {
        return Err(SendError::Refused(reason));
    }
    let message_id = MessageId::from_u128(uuid::Uuid::now_v7().as_u128());
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO feed.sends (account_id, request_id, message_id, fingerprint) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(account.as_str())
    .bind(&compose.request_id)
    .bind(message_id.as_str())
    .bind(compose.fingerprint())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        return existing(pool, account, &compose).await?.ok_or_else(|| SendError::Reused(compose.request_id.clone()));
    }
    sqlx::query(
        "INSERT INTO feed.messages (message_id, account_id, customer_id, customer_name, customer_phone, customer_email,
             direction, channel, message_type, status, status_rank, preview, subject, created_at, updated_at, body,
             resent_from)
         VALUES ($1, $2, $3, $4, $5, $6, 'outbound', $7, 'manual', 'queued', 0, $8, $9, $10, $10, $11, $12)",
    )
    .bind(message_id.as_str())
    .bind(account.as_str())
    .bind(&customer.customer_id)
    .bind(&customer.name)
    .bind(&customer.phone)
    .bind(&customer.email)
    .bind(compose.channel.as_str())
    .bind(crate::store::preview(&compose.text))
    .bind(&compose.subject)
    .bind(now)
    .bind(crate::store::beyond_preview(&compose.text))
    .bind(&compose.resend_of)
    .execute(&mut *tx)
    .await?;
    if let Some(failed) = &compose.resend_of {
        // The failed message names its latest resend; watchers see it change.
        sqlx::query("UPDATE feed.messages SET resent_as = $3 WHERE account_id = $1 AND message_id = $2")
            .bind(account.as_str())
            .bind(failed)
            .bind(message_id.as_str())
            .execute(&mut *tx)
            .await?;
        changes::record(&mut tx, account.as_str(), failed).await?;
    }
    sqlx::query(
        "INSERT INTO feed.timeline (account_id, message_id, status, source, detail, occurred_at, event_key)
         VALUES ($1, $2, 'queued', 'dispatch', 'manual', $3, $4) ON CONFLICT (event_key) DO NOTHING",
    )
    .bind(account.as_str())
    .bind(message_id.as_str())
    .bind(now)
    .bind(format!("queued:{message_id}"))
    .execute(&mut *tx)
    .await?;
    changes::record(&mut tx, account.as_str(), message_id.as_str()).await?;
    let request = NotificationRequest {
        request_id: format!("manual:{}:{}", account.as_str(), compose.request_id),
        r#type: MessageType::Manual.to_proto(),
        account: Some(account_snapshot),
        customer: Some(CustomerSnapshot {
            customer_id: customer.customer_id.clone(),
            name: customer.name.clone(),
            phone: customer.phone.clone(),
            email: customer.email.clone(),
            sms_allowed: true,
            email_allowed: true,
        }),
        channels: vec![compose.channel.to_proto()],
        manual_text: compose.text.clone(),
        manual_subject: compose.subject.clone(),
        requested_at: Some(timestamp(now)),
        message_id: message_id.to_string(),
        ..Default::default()
    };
    let notify = OutboxMessage::of(&request, format_args!("manual:{message_id}"));
    outbox::enqueue(&mut tx, "feed", &notify).await?;
    tx.commit().await?;
    tracing::info!(account_id = %account, message_id = %message_id, channel = %compose.channel, "manual message queued");
    Ok((message_id.to_string(), "queued".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compose(channel: Channel, text: &str, subject: &str) -> Compose {
        Compose {
            request_id: "r1".into(),
            customer_id: "cus_1".into(),
            to_sender: false,
            channel,
            text: text.into(),
            subject: subject.into(),
            resend_of: None,
        }
    }

    #[test]
    fn requests_are_checked_before_anything_is_looked_up() {
        assert!(compose(Channel::Sms, "On our way", "").validate().is_ok());
        assert!(compose(Channel::Email, "Hello", "Your visit").validate().is_ok());
        for (bad, why) in [
            (compose(Channel::Sms, "  ", ""), "blank text"),
            (compose(Channel::Sms, "hi", "Subject"), "subject on SMS"),
            (compose(Channel::Sms, &"x".repeat(1601), ""), "SMS too long"),
            (compose(Channel::Email, "hi", ""), "email without subject"),
            (compose(Channel::Email, "hi", "a\r\nBcc: x@example.com"), "header injection"),
            (Compose { request_id: String::new(), ..compose(Channel::Sms, "hi", "") }, "no request id"),
        ] {
            assert!(matches!(bad.validate(), Err(SendError::Invalid(_))), "{why}");
        }
    }

    #[test]
    fn the_same_request_has_the_same_fingerprint_and_a_changed_one_does_not() {
        let a = compose(Channel::Sms, "hi", "");
        assert_eq!(a.fingerprint(), compose(Channel::Sms, "hi", "").fingerprint());
        assert_ne!(a.fingerprint(), compose(Channel::Sms, "hi!", "").fingerprint());
        assert_ne!(compose(Channel::Email, "ab", "c").fingerprint(), compose(Channel::Email, "a", "bc").fingerprint());
    }

    #[test]
    fn unreachable_customers_are_refused_with_a_reason() {
        let customer = CustomerRow {
            customer_id: "cus_1".into(),
            name: "Dana".into(),
            phone: "+15125550199".into(),
            email: String::new(),
            sms_allowed: true,
            email_allowed: true,
        };
        let reach = |opted_out, landline| Reachability {
            opted_out,
            landline,
            sender: "+15125550100".into(),
            unregistered: None,
        };
        assert_eq!(refusal(Channel::Sms, &customer, &reach(false, false)), None);
        assert!(refusal(Channel::Sms, &customer, &reach(true, false)).is_some_and(|r| r.starts_with("opted_out")));
        assert!(refusal(Channel::Sms, &customer, &reach(false, true)).is_some_and(|r| r.starts_with("landline")));
        assert!(refusal(Channel::Email, &customer, &reach(false, false)).is_some_and(|r| r.starts_with("no_email")));
        let off = CustomerRow { sms_allowed: false, ..customer.clone() };
        assert!(refusal(Channel::Sms, &off, &reach(false, false)).is_some_and(|r| r.starts_with("sms_off")));
        let none = Reachability { opted_out: false, landline: false, sender: String::new(), unregistered: None };
        assert!(refusal(Channel::Sms, &customer, &none).is_some_and(|r| r.starts_with("no_sender")));
        let pending = Reachability { unregistered: Some("campaign_pending".into()), ..reach(false, false) };
        let refused = refusal(Channel::Sms, &customer, &pending).unwrap_or_default();
        assert!(refused.starts_with("sms_not_registered: ") && refused.contains("campaign pending"), "{refused}");
        let with_email = CustomerRow { email: "dana@example.com".into(), ..customer.clone() };
        assert_eq!(refusal(Channel::Email, &with_email, &pending), None, "email is unaffected");
    }
}
