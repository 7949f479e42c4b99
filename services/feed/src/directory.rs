//! The directory as the feed needs it (`directory.<account>.account`, `…customer.<id>`): accounts
//! to send manual messages from, customers to search and send to. A customer listing also claims
//! the account's messages from its phone number or email address that no customer owned, so the
//! customer's thread shows them. Older listings never overwrite newer ones.

use messaging_domain::search;
use messaging_platform::bus::{Delivery, Outcome, TxHandler};
use messaging_proto::bus::{AccountListing, CustomerListing};
use messaging_proto::directory::{self, Listing, as_of};
use sqlx::{AssertSqlSafe, PgConnection};

/// Consumes the directory.
pub struct Directory;

impl TxHandler for Directory {
    /// A listing writes its own subject's rows: concurrent batches lock them in subject order.
    fn lock_key(&self, delivery: &Delivery) -> Option<String> {
        Some(delivery.subject.clone())
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Outcome {
        let result = match directory::decode(&delivery.subject, delivery.payload.as_ref()) {
            Ok(Some(Listing::Account(listing))) => account(tx, listing).await,
            Ok(Some(Listing::Customer(listing))) => customer(tx, listing).await,
            Ok(None) => return Outcome::Ack,
            Err(reason) => return Outcome::DeadLetter(reason),
        };
        match result {
            Ok(()) => Outcome::Ack,
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
    }
}

async fn account(tx: &mut PgConnection, listing: AccountListing) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO feed.accounts AS a (account_id, name, sms_number, email_from, as_of) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, sms_number = EXCLUDED.sms_number,
             email_from = EXCLUDED.email_from, as_of = EXCLUDED.as_of
         WHERE a.as_of <= EXCLUDED.as_of",
    )
    .bind(&listing.account_id)
    .bind(&listing.name)
    .bind(&listing.sms_number)
    .bind(&listing.email_from)
    .bind(as_of(listing.as_of.as_ref()))
    .execute(tx)
    .await?;
    Ok(())
}

async fn customer(tx: &mut PgConnection, listing: CustomerListing) -> sqlx::Result<()> {
    let customer = listing.customer.unwrap_or_default();
    sqlx::query(
        "INSERT INTO feed.customers AS c (account_id, customer_id, name, phone, email, sms_allowed, email_allowed,
             search_name, phone_digits, as_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (account_id, customer_id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
             email = EXCLUDED.email, sms_allowed = EXCLUDED.sms_allowed, email_allowed = EXCLUDED.email_allowed,
             search_name = EXCLUDED.search_name, phone_digits = EXCLUDED.phone_digits, as_of = EXCLUDED.as_of
         WHERE c.as_of <= EXCLUDED.as_of",
    )
    .bind(&listing.account_id)
    .bind(&customer.customer_id)
    .bind(&customer.name)
    .bind(&customer.phone)
    .bind(&customer.email)
    .bind(customer.sms_allowed)
    .bind(customer.email_allowed)
    .bind(search::fold(&customer.name))
    .bind(search::digits(&customer.phone))
    .bind(as_of(listing.as_of.as_ref()))
    .execute(&mut *tx)
    .await?;
    let attached = sqlx::query(AssertSqlSafe(format!(
        "WITH claimed AS (
             UPDATE feed.messages SET customer_id = $2, customer_name = $3
             WHERE account_id = $1 AND customer_id = '' AND NOT sender_unverified
               AND ((customer_phone <> '' AND customer_phone = $4) OR (customer_email <> '' AND lower(customer_email) = lower($5)))
             RETURNING account_id, message_id),
         {}",
        crate::changes::record_from("claimed")
    )))
    .bind(&listing.account_id)
    .bind(&customer.customer_id)
    .bind(&customer.name)
    .bind(&customer.phone)
    .bind(&customer.email)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if attached > 0 {
        tracing::info!(account_id = %listing.account_id, customer_id = %customer.customer_id, attached,
            "unknown sender's messages attached to a customer");
    }
    Ok(())
}
