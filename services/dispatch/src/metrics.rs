//! dispatch's counters: messages created by type, channel and outcome, and automated messages
//! nobody could receive.

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
