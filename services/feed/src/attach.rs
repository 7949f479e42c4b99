//! Threads of unknown senders attach to a customer once the directory names them: a customer
//! listing (`directory.<account>.customer.<id>`) claims the account's messages from its phone
//! number or email address that no customer owned, so the customer's thread shows them.

use messaging_platform::bus::{Delivery, Handler, Outcome};
use messaging_proto::bus::CustomerListing;
use prost::Message as _;
use sqlx::PgPool;

/// Consumes customer listings.
pub struct Attacher {
    pub(crate) pool: PgPool,
}

impl Handler for Attacher {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let listing = match CustomerListing::decode(delivery.payload.as_ref()) {
            Ok(listing) => listing,
            Err(error) => return Outcome::DeadLetter(format!("undecodable customer listing: {error}")),
        };
        let customer = listing.customer.unwrap_or_default();
        let expected = format!("directory.{}.customer.{}", listing.account_id, customer.customer_id);
        if delivery.subject != expected {
            return Outcome::DeadLetter(format!("subject {} does not match the listing", delivery.subject));
        }
        let attached = sqlx::query(
            "UPDATE feed.messages SET customer_id = $2, customer_name = $3
             WHERE account_id = $1 AND customer_id = ''
               AND ((customer_phone <> '' AND customer_phone = $4) OR (customer_email <> '' AND lower(customer_email) = lower($5)))",
        )
        .bind(&listing.account_id)
        .bind(&customer.customer_id)
        .bind(&customer.name)
        .bind(&customer.phone)
        .bind(&customer.email)
        .execute(&self.pool)
        .await;
        match attached {
            Ok(result) => {
                if result.rows_affected() > 0 {
                    tracing::info!(account_id = %listing.account_id, customer_id = %customer.customer_id,
                        attached = result.rows_affected(), "unknown sender's messages attached to a customer");
                }
                Outcome::Ack
            }
            Err(error) => Outcome::retry(format!("database: {error}")),
        }
    }
}
