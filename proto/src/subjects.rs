//! Where each bus message goes and how its copies are told apart: every bus message names its own
//! subject (from the account it carries) and builds its dedupe id (`Nats-Msg-Id`, the outbox row's
//! key) as `<kind>:<what makes it unique>`, so no service spells either by hand.

use std::fmt::Display;

use crate::bus::{
    AccountListing, CustomerListing, DeliveryUnknown, JobListing, MessageFailed, MessageQueued, MessageReceived,
    NotificationRequest, NotificationWaiting, OptOutChanged, SendAttempt, SendCommand, StatusChanged,
    TemplatePublished,
};
use crate::v1::Channel;

/// A message the services publish on NATS.
pub trait BusMessage: prost::Message + Default + Sized {
    /// What it is: its dedupe ids' prefix, and for message events its subject's last token.
    const KIND: &'static str;

    /// The subject it is published on.
    fn subject(&self) -> String;

    /// Decodes one from `bytes`.
    fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        Self::decode(bytes)
    }

    /// Its encoded bytes.
    fn payload(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Its dedupe id, from what makes this copy unique (a message id, a timeline entry, …).
    fn dedupe_id(&self, unique: impl Display) -> String {
        format!("{}:{unique}", Self::KIND)
    }
}

/// A message lifecycle event: `message.<account>.<kind>`.
macro_rules! message_event {
    ($($event:ty => $kind:literal),* $(,)?) => {$(
        impl BusMessage for $event {
            const KIND: &'static str = $kind;
            fn subject(&self) -> String {
                format!("message.{}.{}", self.account_id, $kind)
            }
        }
    )*};
}

message_event!(
    MessageQueued => "queued",
    SendAttempt => "attempt",
    StatusChanged => "status",
    MessageReceived => "received",
    DeliveryUnknown => "delivery_unknown",
    NotificationWaiting => "waiting",
    MessageFailed => "failed",
);

/// `message.<account>.opt_out`; one id format for every cause: the change's source and what caused
/// it (the message that carried a STOP, the provider's 21610 on a message, an unsubscribe link, a
/// provider's event).
impl BusMessage for OptOutChanged {
    const KIND: &'static str = "opt_out";
    fn subject(&self) -> String {
        format!("message.{}.{}", self.account_id, Self::KIND)
    }
    fn dedupe_id(&self, cause: impl Display) -> String {
        format!("{}:{}:{cause}", Self::KIND, self.source)
    }
}

/// `notify.<account>`.
impl BusMessage for NotificationRequest {
    const KIND: &'static str = "notify";
    fn subject(&self) -> String {
        format!("notify.{}", self.account.as_ref().map_or("", |a| a.account_id.as_str()))
    }
}

/// `send.<channel>.<account>`, the gateways' work queues.
impl BusMessage for SendCommand {
    const KIND: &'static str = "send";
    fn subject(&self) -> String {
        let channel = match self.channel() {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Unspecified => "unspecified",
        };
        format!("send.{channel}.{}", self.account_id)
    }
}

/// `directory.<account>.account`.
impl BusMessage for AccountListing {
    const KIND: &'static str = "directory";
    fn subject(&self) -> String {
        format!("directory.{}.account", self.account_id)
    }
}

/// `directory.<account>.customer.<customer>`.
/// `directory.<account>.job.<job>`.
impl BusMessage for JobListing {
    const KIND: &'static str = "directory";
    fn subject(&self) -> String {
        format!("directory.{}.job.{}", self.account_id, self.job_id)
    }
}

impl BusMessage for CustomerListing {
    const KIND: &'static str = "directory";
    fn subject(&self) -> String {
        format!(
            "directory.{}.customer.{}",
            self.account_id,
            self.customer.as_ref().map_or("", |c| c.customer_id.as_str())
        )
    }
}

/// `directory.<account>.template.<type>.<channel>`.
impl BusMessage for TemplatePublished {
    const KIND: &'static str = "template";
    fn subject(&self) -> String {
        let kind = crate::v1::MessageType::try_from(self.r#type).unwrap_or_default().as_str_name();
        let channel = Channel::try_from(self.channel).unwrap_or_default().as_str_name();
        let kind = kind.trim_start_matches("MESSAGE_TYPE_").to_ascii_lowercase();
        let channel = channel.trim_start_matches("CHANNEL_").to_ascii_lowercase();
        format!("directory.{}.template.{kind}.{channel}", self.account_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_names_its_subject_and_id() {
        let status = StatusChanged { account_id: "acc_1".into(), ..Default::default() };
        assert_eq!(status.subject(), "message.acc_1.status");
        assert_eq!(status.dedupe_id("msg_9:41"), "status:msg_9:41");
        let command = SendCommand { account_id: "acc_1".into(), channel: Channel::Email as i32, ..Default::default() };
        assert_eq!(command.subject(), "send.email.acc_1");
        let stop = OptOutChanged { account_id: "acc_1".into(), source: "keyword".into(), ..Default::default() };
        assert_eq!(stop.subject(), "message.acc_1.opt_out");
        assert_eq!(stop.dedupe_id("msg_7"), "opt_out:keyword:msg_7");
        let who = crate::bus::CustomerSnapshot { customer_id: "cus_2".into(), ..Default::default() };
        let customer = CustomerListing { account_id: "acc_1".into(), customer: Some(who), ..Default::default() };
        assert_eq!(customer.subject(), "directory.acc_1.customer.cus_2");
        assert_eq!(NotificationRequest::default().subject(), "notify.");
        let template = TemplatePublished {
            account_id: "acc_1".into(),
            r#type: crate::v1::MessageType::AppointmentConfirmation as i32,
            channel: Channel::Sms as i32,
            ..Default::default()
        };
        assert_eq!(template.subject(), "directory.acc_1.template.appointment_confirmation.sms");
    }
}
