//! The directory ingest publishes for delivery-status and the feed: each account's, customer's
//! and job's newest listing on its own subject of the compacted `DIRECTORY` stream, in the
//! transaction that stored the snapshot, so replies can be routed (and a technician's view
//! scoped) without reading ingest's tables.

use chrono::{DateTime, Utc};
use messaging_domain::event::{AccountSettings, Contact};
use messaging_domain::{AccountId, EventId};
use messaging_platform::bus::OutboxMessage;
use messaging_proto::bus::{AccountListing, CustomerListing, JobListing};
use messaging_proto::time::timestamp;

use crate::notify;
use crate::store::StoredJob;

/// The account's listing, as of the event that described it.
pub fn account(
    event: &EventId,
    account_id: &AccountId,
    settings: &AccountSettings,
    as_of: DateTime<Utc>,
) -> OutboxMessage {
    let listing = AccountListing {
        account_id: account_id.to_string(),
        name: settings.name.clone(),
        sms_number: settings.sms_number.to_string(),
        email_from: settings.email_from.clone(),
        as_of: Some(timestamp(as_of)),
        sms_registration: settings.sms_registration.as_ref().map(|r| r.state.as_str().to_owned()).unwrap_or_default(),
        sms_registration_reason: settings.sms_registration.as_ref().map(|r| r.reason.clone()).unwrap_or_default(),
    };
    OutboxMessage::of(&listing, format_args!("{event}:account"))
}

/// The job's listing (who works it, for whom, when), as the event that changed it left it.
pub fn job(event: &EventId, account_id: &AccountId, job: &StoredJob, as_of: DateTime<Utc>) -> OutboxMessage {
    let listing = JobListing {
        account_id: account_id.to_string(),
        job_id: job.snapshot.job_id.clone(),
        customer_id: job.customer_id.clone(),
        state: job.state.clone(),
        starts_at: job.snapshot.starts_at,
        ends_at: job.snapshot.ends_at,
        technician_id: job.snapshot.technician_id.clone(),
        helper_ids: job.snapshot.helper_ids.clone(),
        as_of: Some(timestamp(as_of)),
    };
    OutboxMessage::of(&listing, format_args!("{event}:job"))
}

/// The customer's listing, as of the event that described them.
pub fn customer(event: &EventId, account_id: &AccountId, contact: &Contact, as_of: DateTime<Utc>) -> OutboxMessage {
    let listing = CustomerListing {
        account_id: account_id.to_string(),
        customer: Some(notify::customer_snapshot(contact)),
        as_of: Some(timestamp(as_of)),
    };
    OutboxMessage::of(&listing, format_args!("{event}:customer"))
}
