//! What `make chaos` sends: job events over ten accounts, each for a customer of its own. Every
//! event's customer has a phone; every fourth an email (some at addresses the test SMTP server
//! answers 451 twice, or keeps and then drops the connection after DATA); every fifth job is
//! tomorrow, so its reminder fires during the run at the accounts' reminder time; every fiftieth
//! customer texts STOP before it. Every tenth event is published twice under one `Nats-Msg-Id`
//! (the broker's dedupe) and every tenth, offset by five, again under a new one (ingest's own).

use chrono::{DateTime, Duration, DurationRound, Timelike as _, Utc};
use serde_json::{Value, json};

use crate::load::Load;

/// A message the plan expects: event `n`'s, on `channel`, of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub n: usize,
    pub email: bool,
    pub reminder: bool,
}

/// How an event is published again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    No,
    /// Under the same `Nats-Msg-Id`: JetStream's duplicate window drops it.
    SameId,
    /// Under a new `Nats-Msg-Id`: only ingest's dedupe on `event_id` catches it.
    NewId,
}

/// One chaos run's events.
#[derive(Debug, Clone)]
pub struct Plan {
    pub run: String,
    pub accounts: usize,
    pub events: usize,
    /// When the reminders of tomorrow's jobs fire (a whole minute: accounts set it as "HH:MM", UTC).
    pub reminders_at: DateTime<Utc>,
}

impl Plan {
    /// A plan whose reminders fire no sooner than `publishing` plus a minute from now.
    pub fn new(run: &str, events: usize, publishing: std::time::Duration) -> Self {
        let earliest = Utc::now() + Duration::from_std(publishing).unwrap_or_default() + Duration::seconds(60);
        let reminders_at = earliest.duration_trunc(Duration::minutes(1)).unwrap_or(earliest) + Duration::minutes(1);
        Self { run: run.to_owned(), accounts: 10, events, reminders_at }
    }

    pub fn account_ids(&self) -> Vec<String> {
        (0..self.accounts).map(|a| format!("acc_chaos_{a}")).collect()
    }

    fn account_of(&self, n: usize) -> usize {
        n % self.accounts
    }

    /// Account `a`'s business number.
    pub fn number(a: usize) -> String {
        format!("+1512555{:04}", 1000 + a)
    }

    /// The number event `n`'s customer texts STOP to.
    pub fn number_of(&self, n: usize) -> String {
        Self::number(self.account_of(n))
    }

    /// `account.updated` for account `a`: UTC, no quiet hours, reminders at `reminders_at`.
    pub fn account_event(&self, a: usize) -> Value {
        let at = self.reminders_at;
        json!({
            "event_id": format!("{}-account-{a}", self.run), "type": "account.updated",
            "occurred_at": (Utc::now() - Duration::days(1)).to_rfc3339(), "account_id": format!("acc_chaos_{a}"),
            "account": {"name": format!("Chaos Plumbing {a}"), "timezone": "UTC", "sms_number": Self::number(a),
                        "email_from": format!("office+{a}@chaos.example"),
                        "reminder_time": format!("{:02}:{:02}", at.hour(), at.minute()),
                        "quiet_hours": {"start": "00:00", "end": "00:00"}}
        })
    }

    /// Customer `n`'s email address, if they have one.
    pub fn email(n: usize) -> Option<String> {
        match (n % 4, n % 40) {
            (_, 1) => Some(format!("drop-after-data+{n}@chaos.example")),
            (_, 21) => Some(format!("defer451+{n}@chaos.example")),
            (1, _) => Some(format!("cust{n}@chaos.example")),
            _ => None,
        }
    }

    /// Which customer an address or number belongs to.
    pub fn customer_of(address: &str) -> Option<usize> {
        if let Some(digits) = address.strip_prefix("+1737") {
            return digits.parse::<usize>().ok()?.checked_sub(2_000_000);
        }
        // The digits that end the local part: cust41@, drop-after-data+41@, defer451+21@.
        let local = address.split('@').next()?;
        let start = local.rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
        local[start..].parse().ok()
    }

    /// Whether event `n`'s job is tomorrow, so its reminder fires during the run.
    pub fn reminded(n: usize) -> bool {
        n.is_multiple_of(5)
    }

    /// Whether customer `n` texts STOP (before their reminder).
    pub fn stops(n: usize) -> bool {
        n.is_multiple_of(50)
    }

    pub fn again(n: usize) -> Again {
        match n % 10 {
            0 => Again::SameId,
            5 => Again::NewId,
            _ => Again::No,
        }
    }

    /// Event `n`.
    pub fn event(&self, n: usize) -> Value {
        let starts = if Self::reminded(n) {
            (self.reminders_at + Duration::days(1)).duration_trunc(Duration::days(1)).unwrap_or(self.reminders_at)
                + Duration::hours(15)
        } else {
            self.reminders_at + Duration::days(3)
        };
        json!({
            "event_id": format!("{}-{n}", self.run), "type": "job.scheduled", "occurred_at": Utc::now().to_rfc3339(),
            "account_id": format!("acc_chaos_{}", self.account_of(n)),
            "customer": {"id": format!("cust_{n}"), "name": format!("Customer {n}"), "phone": Load::phone(n),
                         "email": Self::email(n).unwrap_or_default(), "notifications": {"sms": true, "email": true}},
            "job": {"id": format!("job_{n}"), "title": "Water heater install", "starts_at": starts.to_rfc3339(),
                    "ends_at": (starts + Duration::hours(2)).to_rfc3339(),
                    "technician": {"name": "Luis Ortega"}, "address": "12 Elm St, Austin, TX"}
        })
    }

    /// Subject, `Nats-Msg-Id` and payload of event `n`.
    pub fn message(&self, n: usize) -> (String, String, Vec<u8>) {
        let event = self.event(n);
        let subject = format!("jobs.acc_chaos_{}.job.scheduled", self.account_of(n));
        (subject, format!("{}-{n}", self.run), serde_json::to_vec(&event).unwrap_or_default())
    }

    /// Every message the events should cause.
    pub fn expected(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        for n in 0..self.events {
            let email = Self::email(n).is_some();
            keys.push(Key { n, email: false, reminder: false });
            keys.extend(email.then_some(Key { n, email: true, reminder: false }));
            if Self::reminded(n) {
                keys.push(Key { n, email: false, reminder: true });
                keys.extend(email.then_some(Key { n, email: true, reminder: true }));
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_numbers_lead_back_to_their_customer() {
        for n in [0, 1, 21, 45, 2999] {
            assert_eq!(Plan::customer_of(&Load::phone(n)), Some(n));
            if let Some(email) = Plan::email(n) {
                assert_eq!(Plan::customer_of(&email), Some(n), "{email}");
            }
        }
        assert_eq!(Plan::email(0), None);
        assert!(Plan::email(41).is_some_and(|e| e.starts_with("drop-after-data+41@")));
    }

    #[test]
    fn reminders_fall_on_a_whole_minute_after_publishing() {
        let plan = Plan::new("t", 100, std::time::Duration::from_secs(30));
        assert_eq!(plan.reminders_at.second(), 0);
        assert!(plan.reminders_at > Utc::now() + Duration::seconds(90));
        let starts: DateTime<Utc> =
            plan.event(0)["job"]["starts_at"].as_str().unwrap_or_default().parse().expect("time");
        assert_eq!(starts.date_naive(), plan.reminders_at.date_naive() + Duration::days(1));
    }
}
