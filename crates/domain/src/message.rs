//! The vocabulary of a message: direction, channel and type, with their stable string forms
//! (used in Postgres and logs) and their protobuf numbers.

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal / $proto:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable lowercase name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The number of the matching value in `messaging.v1`.
            pub fn to_proto(self) -> i32 {
                match self { $($name::$variant => $proto),+ }
            }

            pub fn from_proto(value: i32) -> Option<Self> {
                match value { $($proto => Some($name::$variant),)+ _ => None }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use vocabulary;

vocabulary!(
    /// Relative to the business: outbound to a customer, inbound from one.
    Direction { Outbound = "outbound" / 1, Inbound = "inbound" / 2 }
);

vocabulary!(
    /// How a message travels.
    Channel { Sms = "sms" / 1, Email = "email" / 2 }
);

vocabulary!(
    /// What a message is about; the feed's Type column.
    MessageType {
        AppointmentConfirmation = "appointment_confirmation" / 1,
        Reminder = "reminder" / 2,
        OnMyWay = "on_my_way" / 3,
        JobCompleted = "job_completed" / 4,
        PaymentLink = "payment_link" / 5,
        PaymentReceipt = "payment_receipt" / 6,
        Manual = "manual" / 7,
        Reply = "reply" / 8,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for t in MessageType::ALL {
            assert_eq!(MessageType::parse(t.as_str()), Some(*t));
            assert_eq!(MessageType::from_proto(t.to_proto()), Some(*t));
        }
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(*c));
            assert_eq!(Channel::from_proto(c.to_proto()), Some(*c));
        }
        for d in Direction::ALL {
            assert_eq!(Direction::from_proto(d.to_proto()), Some(*d));
        }
        assert_eq!(Channel::from_proto(0), None);
    }
}
