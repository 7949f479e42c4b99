//! Unknown senders' threads: who such a sender is to the page (a number to text back), and
//! attaching a thread to one of the account's customers, for the messages it holds and, through
//! `feed.sender_links`, for every later message from that number or address.

use messaging_domain::AccountId;
use sqlx::{PgConnection, PgPool};

use crate::changes;
use crate::threads::{CustomerRow, customer_row};

/// Why a thread could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Taken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// How a sender's address is stored in links: E.164 as it is, an email address in lower case.
fn address_key(sender: &str) -> String {
    if sender.contains('@') { sender.to_lowercase() } else { sender.to_owned() }
}

/// A number with a thread of its own in the account (messages no customer owns), as a recipient.
pub async fn stranger(pool: &PgPool, account: &AccountId, phone: &str) -> sqlx::Result<Option<CustomerRow>> {
    let found: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM feed.messages
                        WHERE account_id = $1 AND customer_id = '' AND customer_phone = $2 AND direction IS NOT NULL)",
    )
    .bind(account.as_str())
    .bind(phone)
    .fetch_one(pool)
    .await?;
    Ok(found.then(|| CustomerRow {
        customer_id: String::new(),
        name: String::new(),
        phone: phone.to_owned(),
        email: String::new(),
        sms_allowed: true,
        email_allowed: true,
    }))
}

/// Gives `sender`'s thread to `customer_id`: its messages now (all but email whose sender failed
/// the checks, which stays no one's) and later ones. Attaching again to the same customer changes
/// nothing; a sender already attached to someone else is refused.
pub async fn attach(
    pool: &PgPool,
    account: &AccountId,
    sender: &str,
    customer_id: &str,
) -> Result<(u64, CustomerRow), AttachError> {
    if !(sender.starts_with('+') || sender.contains('@')) || sender.len() > 320 {
        return Err(AttachError::Invalid("sender must be an E.164 number or an email address".into()));
    }
    if customer_id.is_empty() {
        return Err(AttachError::Invalid("customer_id is required".into()));
    }
    let key = address_key(sender);
    let mut tx = pool.begin().await?;
    let customer = sqlx::query(
        "SELECT customer_id, name, phone, email, sms_allowed, email_allowed FROM feed.customers
         WHERE account_id = $1 AND customer_id = $2",
    )
    .bind(account.as_str())
    .bind(customer_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AttachError::NotFound(format!("no customer {customer_id}")))?;
    let customer = customer_row(&customer)?;
    // The link first: two attaches of one sender at once serialise on its row.
    let linked: Option<String> = sqlx::query_scalar(
        "INSERT INTO feed.sender_links (account_id, address, customer_id) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, address) DO UPDATE SET customer_id = feed.sender_links.customer_id
         RETURNING customer_id",
    )
    .bind(account.as_str())
    .bind(&key)
    .bind(customer_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(holder) = linked.filter(|holder| holder != customer_id) {
        return Err(AttachError::Taken(format!("{sender} is already attached to customer {holder}")));
    }
    let moved: Vec<String> = sqlx::query_scalar(
        "UPDATE feed.messages SET customer_id = $3, customer_name = $4
         WHERE account_id = $1 AND customer_id = '' AND NOT sender_unverified
           AND (customer_phone = $2 OR lower(customer_email) = $2)
         RETURNING message_id",
    )
    .bind(account.as_str())
    .bind(&key)
    .bind(customer_id)
    .bind(&customer.name)
    .fetch_all(&mut *tx)
    .await?;
    if moved.is_empty() && !attached_before(&mut tx, account, &key, customer_id).await? {
        // Nothing of this sender in the account: no thread to attach (and no link left behind).
        return Err(AttachError::NotFound(no_thread(sender)));
    }
    for id in &moved {
        changes::record(&mut tx, account.as_str(), id).await?;
    }
    tx.commit().await?;
    tracing::info!(account_id = %account, customer_id, attached = moved.len(), "unknown sender's thread attached");
    Ok((moved.len() as u64, customer))
}

/// Whether the customer's thread already holds messages of this sender (attached before).
async fn attached_before(
    tx: &mut PgConnection,
    account: &AccountId,
    key: &str,
    customer_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM feed.messages WHERE account_id = $1 AND customer_id = $3
                        AND (customer_phone = $2 OR lower(customer_email) = $2))",
    )
    .bind(account.as_str())
    .bind(key)
    .bind(customer_id)
    .fetch_one(tx)
    .await
}

/// Why a sender's thread cannot be attached when the caller sees no such thread.
pub fn no_thread(sender: &str) -> String {
    format!("no thread for {sender}")
}
