//! The directory as the feed needs it (`directory.<account>.account`, `…customer.<id>`,
//! `…job.<id>`): accounts to send manual messages from, customers to search and send to, who
//! works which job ([`crate::scope`]). A customer listing also claims
//! the account's messages from its phone number or email address that no customer owned, so the
//! customer's thread shows them. Older listings never overwrite newer ones.

use chrono::{DateTime, Utc};
use messaging_domain::search;
use messaging_platform::bus::{self, Delivery, Outcome, TxHandler, in_rounds};
use messaging_proto::bus::{AccountListing, CustomerListing, CustomerSnapshot};
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
        match decode(delivery) {
            Ok(listing) => Outcome::of_writes(apply(tx, vec![listing]).await),
            Err(dead) => dead,
        }
    }

    /// Customer listings set-based, a round per repeat of a subject (see [`customers`]).
    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        deliveries: &[Delivery],
        service: &'static str,
    ) -> Vec<Outcome> {
        bus::write_all(deliveries, service, decode, move |listings| apply(tx, listings)).await
    }
}

/// The listing with its subject (`None`: a directory subject the feed does not keep).
fn decode(delivery: &Delivery) -> Result<(&str, Option<Listing>), Outcome> {
    let listing = directory::decode(&delivery.subject, delivery.payload.as_ref()).map_err(Outcome::DeadLetter)?;
    Ok((delivery.subject.as_str(), listing))
}

/// Applies listings (in stream order) in rounds that hold each subject once: accounts one by one,
/// a round's customers together.
async fn apply(tx: &mut PgConnection, listings: Vec<(&str, Option<Listing>)>) -> sqlx::Result<()> {
    for round in in_rounds(listings, |(subject, _)| *subject) {
        let mut customers_of_round = Vec::new();
        for (_, listing) in round {
            match listing {
                Some(Listing::Account(listing)) => account(tx, listing).await?,
                Some(Listing::Customer(listing)) => customers_of_round.push(listing),
                Some(Listing::Job(listing)) => crate::scope::keep_job(tx, &listing).await?,
                None => {}
            }
        }
        if !customers_of_round.is_empty() {
            customers(tx, customers_of_round).await?;
        }
    }
    Ok(())
}

async fn account(tx: &mut PgConnection, listing: AccountListing) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO feed.accounts AS a (account_id, name, sms_number, email_from, as_of, sms_registration,
             sms_registration_reason)
         VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7)
         ON CONFLICT (account_id) DO UPDATE SET name = EXCLUDED.name, sms_number = EXCLUDED.sms_number,
             email_from = EXCLUDED.email_from, as_of = EXCLUDED.as_of, sms_registration = EXCLUDED.sms_registration,
             sms_registration_reason = EXCLUDED.sms_registration_reason
         WHERE a.as_of <= EXCLUDED.as_of",
    )
    .bind(&listing.account_id)
    .bind(&listing.name)
    .bind(&listing.sms_number)
    .bind(&listing.email_from)
    .bind(as_of(listing.as_of.as_ref()))
    .bind(&listing.sms_registration)
    .bind(&listing.sms_registration_reason)
    .execute(tx)
    .await?;
    Ok(())
}

/// Stores customer listings about distinct customers in one statement (older listings never
/// overwrite newer ones), then lets each claim its number's or address's unowned messages —
/// only in accounts that have any.
async fn customers(tx: &mut PgConnection, listings: Vec<CustomerListing>) -> sqlx::Result<()> {
    let customers: Vec<(String, CustomerSnapshot, DateTime<Utc>)> =
        listings.into_iter().map(|l| (l.account_id, l.customer.unwrap_or_default(), as_of(l.as_of.as_ref()))).collect();
    let column = |f: fn(&CustomerSnapshot) -> &str| customers.iter().map(|(_, c, _)| f(c)).collect::<Vec<&str>>();
    sqlx::query(
        "INSERT INTO feed.customers AS c (account_id, customer_id, name, phone, email, sms_allowed, email_allowed,
             search_name, phone_digits, as_of)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bool[],
                              $8::text[], $9::text[], $10::timestamptz[])
         ORDER BY 1, 2
         ON CONFLICT (account_id, customer_id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
             email = EXCLUDED.email, sms_allowed = EXCLUDED.sms_allowed, email_allowed = EXCLUDED.email_allowed,
             search_name = EXCLUDED.search_name, phone_digits = EXCLUDED.phone_digits, as_of = EXCLUDED.as_of
         WHERE c.as_of <= EXCLUDED.as_of",
    )
    .bind(customers.iter().map(|(account, _, _)| account.as_str()).collect::<Vec<_>>())
    .bind(column(|c| &c.customer_id))
    .bind(column(|c| &c.name))
    .bind(column(|c| &c.phone))
    .bind(column(|c| &c.email))
    .bind(customers.iter().map(|(_, c, _)| c.sms_allowed).collect::<Vec<_>>())
    .bind(customers.iter().map(|(_, c, _)| c.email_allowed).collect::<Vec<_>>())
    .bind(customers.iter().map(|(_, c, _)| search::fold(&c.name)).collect::<Vec<_>>())
    .bind(customers.iter().map(|(_, c, _)| search::digits(&c.phone)).collect::<Vec<_>>())
    .bind(customers.iter().map(|(_, _, at)| *at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let accounts: Vec<&str> = customers.iter().map(|(account, _, _)| account.as_str()).collect();
    let with_strangers: Vec<String> = sqlx::query_scalar(
        "SELECT a FROM (SELECT DISTINCT unnest($1::text[]) AS a) accounts
         WHERE EXISTS (SELECT 1 FROM feed.messages WHERE account_id = a AND customer_id = '')",
    )
    .bind(&accounts)
    .fetch_all(&mut *tx)
    .await?;
    for (account, customer, _) in &customers {
        if with_strangers.contains(account) {
            attach(tx, account, customer).await?;
        }
    }
    Ok(())
}

/// The customer claims the account's unowned messages from their number or address.
async fn attach(tx: &mut PgConnection, account_id: &str, customer: &CustomerSnapshot) -> sqlx::Result<()> {
    let attached = sqlx::query(AssertSqlSafe(format!(
        "WITH claimed AS (
             UPDATE feed.messages SET customer_id = $2, customer_name = $3
             WHERE account_id = $1 AND customer_id = '' AND NOT sender_unverified
               AND ((customer_phone <> '' AND customer_phone = $4) OR (customer_email <> '' AND lower(customer_email) = lower($5)))
             RETURNING account_id, message_id),
         {}",
        crate::changes::record_from("claimed")
    )))
    .bind(account_id)
    .bind(&customer.customer_id)
    .bind(&customer.name)
    .bind(&customer.phone)
    .bind(&customer.email)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if attached > 0 {
        tracing::info!(account_id, customer_id = %customer.customer_id, attached,
            "unknown sender's messages attached to a customer");
    }
    Ok(())
}
