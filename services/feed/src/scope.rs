//! Technician scope: a technician token sees only the customers of jobs the technician works, as
//! lead or helper, now (scheduled or on the way) or recently (completed or cancelled within the
//! configured window), from ingest's job listings (`directory.<account>.job.<job>`). Every call
//! resolves the scope afresh, so a reassignment takes effect on the next call and on a watcher's
//! next read; an out-of-scope id is not found, exactly like another account's. Threads of senders
//! no customer owns are the office's alone.

use std::collections::HashSet;
use std::time::Duration;

use messaging_domain::{AccountId, TechnicianId};
use messaging_proto::bus::JobListing;
use messaging_proto::directory::as_of;
use sqlx::PgConnection;

use crate::store::ThreadOf;

/// What a caller may see of its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole account (owner, office, a token without a role).
    Account,
    /// These customers' threads only (a technician).
    Customers(HashSet<String>),
}

impl Scope {
    /// Whether the caller may see customer `customer_id`'s messages (`""`: a sender no customer owns).
    pub fn allows(&self, customer_id: &str) -> bool {
        match self {
            Scope::Account => true,
            Scope::Customers(ids) => !customer_id.is_empty() && ids.contains(customer_id),
        }
    }

    /// The customers a query is limited to; `None` for the whole account.
    pub fn customers(&self) -> Option<Vec<String>> {
        match self {
            Scope::Account => None,
            Scope::Customers(ids) => {
                let mut ids: Vec<String> = ids.iter().cloned().collect();
                ids.sort();
                Some(ids)
            }
        }
    }

    /// Whether the caller sees `thread`.
    pub fn sees_thread(&self, thread: &ThreadOf) -> bool {
        match thread {
            ThreadOf::Customer(id) => self.allows(id),
            ThreadOf::Sender(_) => self.sees_strangers(),
        }
    }

    /// Whether the caller sees threads of senders no customer owns.
    pub fn sees_strangers(&self) -> bool {
        *self == Scope::Account
    }
}

/// The scope of a caller: the whole account, or the technician's customers as of now.
pub async fn resolve<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    account: &AccountId,
    technician: Option<&TechnicianId>,
    recent: Duration,
) -> sqlx::Result<Scope> {
    let Some(technician) = technician else { return Ok(Scope::Account) };
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT j.customer_id FROM feed.job_technicians t
         JOIN feed.jobs j ON j.account_id = t.account_id AND j.job_id = t.job_id
         WHERE t.account_id = $1 AND t.technician_id = $2 AND j.customer_id <> ''
           AND (j.state IN ('scheduled', 'en_route') OR j.as_of >= now() - make_interval(secs => $3))",
    )
    .bind(account.as_str())
    .bind(technician.as_str())
    .bind(recent.as_secs_f64())
    .fetch_all(executor)
    .await?;
    Ok(Scope::Customers(ids.into_iter().collect()))
}

/// Keeps a job listing, and who works the job, unless a newer listing of the job is kept.
pub async fn keep_job(tx: &mut PgConnection, listing: &JobListing) -> sqlx::Result<()> {
    let mut technicians: Vec<&str> = std::iter::once(&listing.technician_id)
        .chain(&listing.helper_ids)
        .map(String::as_str)
        .filter(|id| !id.is_empty())
        .collect();
    technicians.sort_unstable();
    technicians.dedup();
    sqlx::query(
        "WITH kept AS (
             INSERT INTO feed.jobs AS j (account_id, job_id, customer_id, state, as_of) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id, job_id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                 state = EXCLUDED.state, as_of = EXCLUDED.as_of
             WHERE j.as_of <= EXCLUDED.as_of
             RETURNING account_id, job_id),
         gone AS (DELETE FROM feed.job_technicians t USING kept
                  WHERE t.account_id = kept.account_id AND t.job_id = kept.job_id)
         INSERT INTO feed.job_technicians (account_id, technician_id, job_id)
         SELECT kept.account_id, technician, kept.job_id FROM kept, UNNEST($6::text[]) AS technician
         ON CONFLICT DO NOTHING",
    )
    .bind(&listing.account_id)
    .bind(&listing.job_id)
    .bind(&listing.customer_id)
    .bind(&listing.state)
    .bind(as_of(listing.as_of.as_ref()))
    .bind(&technicians)
    .execute(tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_technician_sees_their_customers_and_never_a_stranger() {
        let scope = Scope::Customers(["cus_1".to_owned()].into_iter().collect());
        assert!(scope.allows("cus_1") && !scope.allows("cus_2") && !scope.allows(""));
        assert_eq!(scope.customers(), Some(vec!["cus_1".to_owned()]));
        assert!(!scope.sees_strangers());
        assert!(Scope::Account.allows("") && Scope::Account.sees_strangers() && Scope::Account.customers().is_none());
    }
}
