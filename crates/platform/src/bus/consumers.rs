//! The consumer catalog: every durable consumer of every service, with the stream and subjects it
//! reads. Services build their consumers from it and the test harness waits on all of it before
//! asserting that something did not happen, so a consumer added here cannot be forgotten there.

use super::streams::{self, StreamSpec};

/// A durable consumer: its stream, its name, and the subjects it takes (only what its handler uses).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerDef {
    pub stream: &'static StreamSpec,
    pub durable: &'static str,
    pub subjects: &'static [&'static str],
}

/// The directory's account and customer listings (not the templates it also keeps).
const LISTINGS: &[&str] = &["directory.*.account", "directory.*.customer.*"];

/// Ingest: job events.
pub const INGEST: ConsumerDef = ConsumerDef { stream: &streams::JOB_EVENTS, durable: "ingest", subjects: &["jobs.>"] };
/// Dispatch: notification requests.
pub const DISPATCH: ConsumerDef =
    ConsumerDef { stream: &streams::NOTIFY, durable: "dispatch", subjects: &["notify.>"] };
/// Dispatch: opt-outs and opt-ins, for its suppression list.
pub const DISPATCH_OPT_OUTS: ConsumerDef =
    ConsumerDef { stream: &streams::MESSAGE_EVENTS, durable: "dispatch-opt-outs", subjects: &["message.*.opt_out"] };
/// Dispatch: the templates accounts word themselves, as the feed publishes them.
pub const DISPATCH_TEMPLATES: ConsumerDef =
    ConsumerDef { stream: &streams::DIRECTORY, durable: "dispatch-templates", subjects: &["directory.*.template.>"] };
/// The SMS gateways' shared work queue.
/// dispatch: messages that failed, for the SMS→email fallback.
pub const DISPATCH_FALLBACKS: ConsumerDef =
    ConsumerDef { stream: &streams::MESSAGE_EVENTS, durable: "dispatch-fallbacks", subjects: &["message.*.failed"] };

pub const SMS_GATEWAY: ConsumerDef =
    ConsumerDef { stream: &streams::SEND_SMS, durable: "sms-gateway", subjects: &["send.sms.>"] };
/// The email gateways' shared work queue.
pub const EMAIL_GATEWAY: ConsumerDef =
    ConsumerDef { stream: &streams::SEND_EMAIL, durable: "email-gateway", subjects: &["send.email.>"] };
/// Delivery-status: the gateways' send attempts.
pub const DELIVERY_STATUS: ConsumerDef =
    ConsumerDef { stream: &streams::MESSAGE_EVENTS, durable: "delivery-status", subjects: &["message.*.attempt"] };
/// Delivery-status: who accounts and customers are (to match replies to them).
pub const DELIVERY_STATUS_DIRECTORY: ConsumerDef =
    ConsumerDef { stream: &streams::DIRECTORY, durable: "delivery-status-directory", subjects: LISTINGS };
/// The feed: the message events it projects (the gateways' `attempt` events are delivery-status's alone).
pub const FEED: ConsumerDef = ConsumerDef {
    stream: &streams::MESSAGE_EVENTS,
    durable: "feed",
    subjects: &[
        "message.*.queued",
        "message.*.status",
        "message.*.received",
        "message.*.delivery_unknown",
        "message.*.opt_out",
        "message.*.waiting",
    ],
};
/// The feed: customer and account listings.
pub const FEED_LISTINGS: ConsumerDef =
    ConsumerDef { stream: &streams::DIRECTORY, durable: "feed-listings", subjects: LISTINGS };

/// The feed: job listings (who works a job, for whom), read from the stream's start.
pub const FEED_JOBS: ConsumerDef =
    ConsumerDef { stream: &streams::DIRECTORY, durable: "feed-jobs", subjects: &["directory.*.job.*"] };

/// Every consumer of every service.
pub const ALL: [ConsumerDef; 12] = [
    INGEST,
    DISPATCH,
    DISPATCH_OPT_OUTS,
    DISPATCH_TEMPLATES,
    DISPATCH_FALLBACKS,
    SMS_GATEWAY,
    EMAIL_GATEWAY,
    DELIVERY_STATUS,
    DELIVERY_STATUS_DIRECTORY,
    FEED,
    FEED_LISTINGS,
    FEED_JOBS,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether NATS subject `subject` (possibly with wildcards) lies within `filter`.
    fn within(subject: &str, filter: &str) -> bool {
        let (mut s, mut f) = (subject.split('.'), filter.split('.'));
        loop {
            match (s.next(), f.next()) {
                (_, Some(">")) => return true,
                (Some(a), Some(b)) if a == b || (b == "*" && a != ">") => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn every_consumer_reads_its_own_streams_subjects_under_a_name_of_its_own() {
        let mut names = std::collections::BTreeSet::new();
        for consumer in ALL {
            assert!(names.insert((consumer.stream.name, consumer.durable)), "{} twice", consumer.durable);
            assert!(!consumer.subjects.is_empty(), "{} reads nothing", consumer.durable);
            for subject in consumer.subjects {
                assert!(
                    within(subject, consumer.stream.subjects),
                    "{} reads {subject}, outside {}",
                    consumer.durable,
                    consumer.stream.name
                );
            }
        }
        // The message events' kinds are the bus messages' own.
        use messaging_proto::BusMessage;
        use messaging_proto::bus::{
            DeliveryUnknown, MessageFailed, MessageQueued, MessageReceived, NotificationWaiting, OptOutChanged,
            SendAttempt, StatusChanged,
        };
        let events = |kinds: &[&str]| kinds.iter().map(|k| format!("message.*.{k}")).collect::<Vec<_>>();
        assert_eq!(
            FEED.subjects,
            events(&[
                MessageQueued::KIND,
                StatusChanged::KIND,
                MessageReceived::KIND,
                DeliveryUnknown::KIND,
                OptOutChanged::KIND,
                NotificationWaiting::KIND
            ])
        );
        assert_eq!(DELIVERY_STATUS.subjects, events(&[SendAttempt::KIND]));
        assert_eq!(DISPATCH_OPT_OUTS.subjects, events(&[OptOutChanged::KIND]));
        assert_eq!(DISPATCH_FALLBACKS.subjects, events(&[MessageFailed::KIND]));
        assert!(within("message.*.queued", "message.>"));
        assert!(!within("message.*.queued", "jobs.>"));
        assert!(!within("message.>", "message.*.queued"));
    }
}
