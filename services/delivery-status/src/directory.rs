//! The directory of accounts and customers, kept from ingest's `DIRECTORY` listings (newest wins),
//! and the lookups inbound routing needs: the account by its business number, the customer by
//! phone number.

use chrono::{DateTime, Utc};
use messaging_platform::bus::{self, Delivery, Outcome, TxHandler, in_rounds};
use messaging_proto::bus::{AccountListing, CustomerListing, CustomerSnapshot};
use messaging_proto::directory::{self, Listing};
use sqlx::{PgConnection, Row};

/// Consumes the directory's account and customer listings.
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
        match decode(delivery) {
            Ok(listing) => Outcome::of_writes(apply(tx, vec![listing]).await),
            Err(dead) => dead,
        }
    }

    /// Customer listings set-based, a round per repeat of a subject.
    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        deliveries: &[Delivery],
        service: &'static str,
    ) -> Vec<Outcome> {
        bus::write_all(deliveries, service, decode, move |listings| apply(tx, listings)).await
    }
}

/// The listing with its subject.
fn decode(delivery: &Delivery) -> Result<(&str, Listing), Outcome> {
    match directory::decode(&delivery.subject, delivery.payload.as_ref()) {
        Ok(Some(listing)) => Ok((delivery.subject.as_str(), listing)),
        Ok(None) => Err(Outcome::DeadLetter(format!("unexpected subject {}", delivery.subject))),
        Err(reason) => Err(Outcome::DeadLetter(reason)),
    }
}

/// Applies listings (in stream order) in rounds that hold each subject once: accounts one by one,
/// a round's customers in one statement.
async fn apply(tx: &mut PgConnection, listings: Vec<(&str, Listing)>) -> sqlx::Result<()> {
    for round in in_rounds(listings, |(subject, _)| *subject) {
        let mut customers_of_round = Vec::new();
        for (_, listing) in round {
            match listing {
                Listing::Account(listing) => account(tx, listing).await?,
                Listing::Customer(listing) => customers_of_round.push(listing),
                // Not on its consumer's subjects: who works a job is the feed's concern.
                Listing::Job(_) => {}
            }
        }
        if !customers_of_round.is_empty() {
            customers(tx, customers_of_round).await?;
        }
    }
    Ok(())
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

/// Stores listings about distinct customers in one statement; older ones never overwrite newer.
async fn customers(tx: &mut PgConnection, listings: Vec<CustomerListing>) -> sqlx::Result<()> {
    let customers: Vec<(String, CustomerSnapshot, DateTime<Utc>)> = listings
        .into_iter()
        .map(|l| (l.account_id, l.customer.unwrap_or_default(), directory::as_of(l.as_of.as_ref())))
        .collect();
    let column = |f: fn(&CustomerSnapshot) -> &str| customers.iter().map(|(_, c, _)| f(c)).collect::<Vec<&str>>();
    sqlx::query(
        "INSERT INTO delivery_status.contacts AS c (account_id, customer_id, name, phone, email, as_of)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
         ORDER BY 1, 2
         ON CONFLICT (account_id, customer_id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone,
             email = EXCLUDED.email, as_of = EXCLUDED.as_of
         WHERE c.as_of <= EXCLUDED.as_of",
    )
    .bind(customers.iter().map(|(account, _, _)| account.as_str()).collect::<Vec<_>>())
    .bind(column(|c| &c.customer_id))
    .bind(column(|c| &c.name))
    .bind(column(|c| &c.phone))
    .bind(column(|c| &c.email))
    .bind(customers.iter().map(|(_, _, at)| *at).collect::<Vec<_>>())
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
