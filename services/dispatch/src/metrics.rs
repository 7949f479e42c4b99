//! dispatch's counters: messages created by type, channel and outcome, automated messages
//! nobody could receive, custom templates that could not render a message, and SMS→email fallbacks.

use std::sync::LazyLock;

use messaging_domain::{Channel, MessageType};
use messaging_platform::metrics::{self, CounterFamily};

static MESSAGES: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "dispatch_messages",
        "Outbound messages created, by type, channel and outcome (queued or opted_out)",
    )
});

static NO_USABLE_CHANNEL: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter("dispatch_no_usable_channel", "Notifications dropped because the customer has no usable channel")
});

pub fn message_created(kind: MessageType, channel: Channel, outcome: &str) {
    metrics::inc(&MESSAGES, &[("type", kind.as_str()), ("channel", channel.as_str()), ("outcome", outcome)]);
}

pub fn no_usable_channel(kind: MessageType) {
    metrics::inc(&NO_USABLE_CHANNEL, &[("type", kind.as_str())]);
}

static TEMPLATE_FALLBACKS: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "dispatch_template_fallbacks",
        "Messages sent in the built-in wording because the account's template could not render them, by type and channel",
    )
});

pub fn template_fallback(kind: MessageType, channel: Channel) {
    metrics::inc(&TEMPLATE_FALLBACKS, &[("type", kind.as_str()), ("channel", channel.as_str())]);
}

static EMAIL_FALLBACKS: LazyLock<CounterFamily> = LazyLock::new(|| {
    metrics::counter(
        "dispatch_email_fallbacks",
        "Automatic SMS that failed permanently and went by email instead (sent), or could not (email_opted_out), by type",
    )
});

pub fn email_fallback(kind: MessageType, outcome: &str) {
    metrics::inc(&EMAIL_FALLBACKS, &[("type", kind.as_str()), ("outcome", outcome)]);
}
