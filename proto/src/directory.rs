//! Reading the `DIRECTORY` stream: a listing decoded and checked against the subject it came on
//! (`directory.<account>.account`, `directory.<account>.customer.<customer>`,
//! `directory.<account>.job.<job>`), so a consumer never stores a listing under another account,
//! customer or job than its subject names.

use chrono::{DateTime, Utc};
use prost::Message as _;

use crate::bus::{AccountListing, CustomerListing, JobListing};

/// One directory message.
#[derive(Debug, Clone)]
pub enum Listing {
    Account(AccountListing),
    Customer(CustomerListing),
    Job(JobListing),
}

/// When a listing was true (its `as_of`); one without a time is taken as of now.
pub fn as_of(at: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    crate::time::datetime(at).unwrap_or_else(Utc::now)
}

/// The listing on `subject`; `Ok(None)` for a subject that carries no listing, `Err` with the
/// reason for one that cannot be decoded or does not match its subject.
pub fn decode(subject: &str, payload: &[u8]) -> Result<Option<Listing>, String> {
    let parts: Vec<&str> = subject.split('.').collect();
    match parts.as_slice() {
        ["directory", account, "account"] => match AccountListing::decode(payload) {
            Ok(listing) if listing.account_id == *account => Ok(Some(Listing::Account(listing))),
            Ok(_) => Err(format!("account listing on {subject} names another account")),
            Err(error) => Err(format!("undecodable account listing: {error}")),
        },
        ["directory", account, "customer", customer] => match CustomerListing::decode(payload) {
            Ok(listing)
                if listing.account_id == *account
                    && listing.customer.as_ref().is_some_and(|c| c.customer_id == *customer) =>
            {
                Ok(Some(Listing::Customer(listing)))
            }
            Ok(_) => Err(format!("customer listing on {subject} names another account or customer")),
            Err(error) => Err(format!("undecodable customer listing: {error}")),
        },
        ["directory", account, "job", job] => match JobListing::decode(payload) {
            Ok(listing) if listing.account_id == *account && listing.job_id == *job => Ok(Some(Listing::Job(listing))),
            Ok(_) => Err(format!("job listing on {subject} names another account or job")),
            Err(error) => Err(format!("undecodable job listing: {error}")),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::CustomerSnapshot;

    #[test]
    fn listings_must_match_their_subject() {
        let listing = CustomerListing {
            account_id: "acc_a".into(),
            customer: Some(CustomerSnapshot { customer_id: "cus_1".into(), ..Default::default() }),
            as_of: None,
        };
        let bytes = listing.encode_to_vec();
        assert!(matches!(decode("directory.acc_a.customer.cus_1", &bytes), Ok(Some(Listing::Customer(_)))));
        assert!(decode("directory.acc_b.customer.cus_1", &bytes).is_err());
        assert!(decode("directory.acc_a.customer.cus_2", &bytes).is_err());
        assert!(decode("directory.acc_a.customer.cus_1", b"\xff\xff").is_err());
        assert!(matches!(decode("directory.acc_a.other", &bytes), Ok(None)));
        let job = JobListing { account_id: "acc_a".into(), job_id: "job_1".into(), ..Default::default() };
        let bytes = job.encode_to_vec();
        assert!(matches!(decode("directory.acc_a.job.job_1", &bytes), Ok(Some(Listing::Job(_)))));
        assert!(decode("directory.acc_b.job.job_1", &bytes).is_err());
        assert!(decode("directory.acc_a.job.job_2", &bytes).is_err());
    }
}
