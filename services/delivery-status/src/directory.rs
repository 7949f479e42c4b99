//! The directory of accounts and customers, kept from ingest's `DIRECTORY` listings (newest wins),
//! and the lookups inbound routing needs: the account by its business number, the customer by
//! phone number.

use messaging_platform::bus::{Delivery, Outcome, TxHandler};
use messaging_proto::bus::{AccountListing, CustomerListing, CustomerSnapshot};
use messaging_proto::directory::{self, Listing};
use sqlx::{PgConnection, Row};

/// Consumes `directory.>`.
pub struct DirectoryHandler {
    pub relay: messaging_platform::bus::Relay,
}

impl TxHandler for DirectoryHandler {
    fn committed(&self) {
        self.relay.wake();
    }

    /// A listing writes its own subject's rows: concurrent batches lock them in subject order.
    fn lock_key(&self, delivery: &Delivery) -> Option<String> {
        Some(delivery.subject.clone())
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        let result = match directory::decode(&delivery.subject, delivery.payload.as_ref()) {
            Ok(Some(Listing::Account(listing))) => account(tx, listing).await,
            Ok(Some(Listing::Customer(listing))) => customer(tx, listing).await,
            Ok(None) => return Outcome::DeadLetter(format!("unexpected subject {}", delivery.subject)),
            Err(reason) => return Outcome::DeadLetter(reason),
        };
        match result {
            Ok(()) => Outcome::Ack,
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
    }
}

/// Stores the listing and records the replies kept for its number until now.
async fn account(tx: &mut PgConnection, listing: AccountListing) -> sqlx::Result<()> {
    let as_of = directory::as_of(listing.as_of.as_ref());
    lock_number(tx, &listing.sms_number).await?;
    let stored = sqlx::query(
        "INSERT INTO delivery_status.accounts AS a (account_id, name, sms_number, email_from, as_of)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, sms_number = EXCLUDED.sms_number,
             email_from = EXCLUDED.email_from, as_of = EXCLUDED.as_of
         WHERE a.as_of <= EXCLUDED.as_of",
    )
    .bind(&listing.account_id)
    .bind(&listing.name)
    .bind(&listing.sms_number)
    .bind(&listing.email_from)
    .bind(as_of)
    .execute(&mut *tx)
    .await?;
    // Only the number's newest owner gets its kept replies.
    let kept = if stored.rows_affected() == 1 {
        crate::inbound::apply_pending(tx, &listing.account_id, &listing.sms_number).await?
    } else {
        0
    };
    if kept > 0 {
        tracing::info!(account_id = %listing.account_id, kept, "replies kept for a new number recorded");
    }
    Ok(())
}

async fn customer(tx: &mut PgConnection, listing: CustomerListing) -> sqlx::Result<()> {
    let customer = listing.customer.unwrap_or_default();
    let as_of = directory::as_of(listing.as_of.as_ref());
    sqlx::query(
        "INSERT INTO delivery_status.contacts AS c (account_id, customer_id, name, phone, email, as_of)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id, customer_id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
             email = EXCLUDED.email, as_of = EXCLUDED.as_of
         WHERE c.as_of <= EXCLUDED.as_of",
    )
    .bind(&listing.account_id)
    .bind(&customer.customer_id)
    .bind(&customer.name)
    .bind(&customer.phone)
    .bind(&customer.email)
    .bind(as_of)
    .execute(tx)
    .await?;
    Ok(())
}

/// Holds `number` until the transaction ends. An inbound SMS takes it before looking the number up
/// and a listing before naming the number's account, so a reply either finds the account or is
/// kept where the listing's transaction will see it: without it a reply kept while a listing's
/// batch was in flight was never recorded.
pub async fn lock_number(tx: &mut PgConnection, number: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(number).execute(tx).await?;
    Ok(())
}

/// The account a business number belongs to now: (account id, business name).
pub async fn account_by_number(tx: &mut PgConnection, number: &str) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT account_id, name FROM delivery_status.accounts WHERE sms_number = $1 ORDER BY as_of DESC LIMIT 1",
    )
    .bind(number)
    .fetch_optional(tx)
    .await?;
    row.map(|row| Ok((row.try_get("account_id")?, row.try_get("name")?))).transpose()
}

/// The account's customer with this phone number; an unknown number is a customer with no id.
pub async fn customer_by_phone(tx: &mut PgConnection, account: &str, phone: &str) -> sqlx::Result<CustomerSnapshot> {
    let row = sqlx::query(
        "SELECT customer_id, name, email FROM delivery_status.contacts WHERE account_id = $1 AND phone = $2
         ORDER BY as_of DESC LIMIT 1",
    )
    .bind(account)
    .bind(phone)
    .fetch_optional(tx)
    .await?;
    Ok(match row {
        Some(row) => CustomerSnapshot {
            customer_id: row.try_get("customer_id")?,
            name: row.try_get("name")?,
            phone: phone.to_owned(),
            email: row.try_get("email")?,
            sms_allowed: true,
            email_allowed: true,
        },
        None => CustomerSnapshot { phone: phone.to_owned(), ..Default::default() },
    })
}
