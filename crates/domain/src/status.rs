//! Delivery status and its forward-only ranking:
//! queued < sent = unknown < delivered = failed < opened = read. `received` is inbound-only.

use crate::message::vocabulary;

vocabulary!(
    /// Where a message is in its life; the feed's Status column.
    Status {
        Queued = "queued" / 1,
        Sent = "sent" / 2,
        Delivered = "delivered" / 3,
        Failed = "failed" / 4,
        Opened = "opened" / 5,
        Read = "read" / 6,
        Received = "received" / 7,
        Unknown = "unknown" / 8,
    }
);

impl Status {
    /// Position in the forward-only order; a status never moves to a lower rank.
    pub fn rank(self) -> u8 {
        match self {
            Status::Queued => 0,
            Status::Sent | Status::Unknown => 1,
            Status::Delivered | Status::Failed => 2,
            Status::Opened | Status::Read => 3,
            Status::Received => 4,
        }
    }

    /// Whether moving from `self` to `next` is progress. Equal ranks do not replace each other,
    /// except that a settled `sent` replaces an ambiguous `unknown`.
    pub fn advances_to(self, next: Status) -> bool {
        next.rank() > self.rank() || (self == Status::Unknown && next == Status::Sent)
    }

    /// The status after applying `next`: the higher-ranked of the two.
    pub fn apply(self, next: Status) -> Status {
        if self.advances_to(next) { next } else { self }
    }

    /// Maps a Twilio `MessageStatus` to ours; statuses that say nothing new map to `None`.
    pub fn from_twilio(status: &str) -> Option<Status> {
        match status {
            "queued" | "accepted" | "scheduled" | "sending" => None,
            "sent" => Some(Status::Sent),
            "delivered" => Some(Status::Delivered),
            "undelivered" | "failed" | "canceled" => Some(Status::Failed),
            "read" => Some(Status::Read),
            "received" | "receiving" => Some(Status::Received),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_status() -> impl Strategy<Value = Status> {
        proptest::sample::select(Status::ALL.to_vec())
    }

    #[test]
    fn the_documented_order_holds() {
        use Status::*;
        assert!(Queued.advances_to(Sent));
        assert!(Sent.advances_to(Delivered));
        assert!(Delivered.advances_to(Read));
        assert!(Unknown.advances_to(Sent));
        assert!(!Sent.advances_to(Unknown));
        assert!(!Delivered.advances_to(Sent));
        assert!(!Failed.advances_to(Delivered));
        assert!(!Delivered.advances_to(Failed));
        assert!(Failed.advances_to(Opened));
    }

    proptest! {
        #[test]
        fn applying_in_any_order_never_regresses(updates in proptest::collection::vec(any_status(), 0..12)) {
            let mut current = Status::Queued;
            for next in &updates {
                let after = current.apply(*next);
                prop_assert!(after.rank() >= current.rank());
                current = after;
            }
            let top = updates.iter().map(|s| s.rank()).max().unwrap_or(0);
            prop_assert_eq!(current.rank(), top);
        }
    }

    #[test]
    fn twilio_statuses_map() {
        assert_eq!(Status::from_twilio("delivered"), Some(Status::Delivered));
        assert_eq!(Status::from_twilio("undelivered"), Some(Status::Failed));
        assert_eq!(Status::from_twilio("queued"), None);
    }
}
