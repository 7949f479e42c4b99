//! The variables a business's template may use: a fixed catalogue, each with its meaning, the
//! message types whose data carries it, a sample value for previews and the longest value the
//! event contract allows (for the worst case a template must survive).

use messaging_domain::{Channel, MessageType};

/// What a variable holds; every value reaches a template as text, already formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Phone,
    /// "Sat, Nov 28", in the account's time zone.
    Date,
    /// "9:00 AM", in the account's time zone.
    Time,
    /// "Sat, Nov 28 between 9:00 AM and 11:00 AM", in the account's time zone.
    Window,
    /// "$1,234.50" for US dollars, "1,234.50 EUR" otherwise.
    Money,
    Link,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Phone => "phone",
            Kind::Date => "date",
            Kind::Time => "time",
            Kind::Window => "window",
            Kind::Money => "money",
            Kind::Link => "link",
        }
    }
}

/// One variable of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub kind: Kind,
    pub meaning: &'static str,
    /// The message types whose data carries it; every automatic type when empty.
    pub types: &'static [MessageType],
    pub sample: &'static str,
    /// The longest value it can take, in characters.
    pub longest: usize,
}

impl Variable {
    /// Whether a message of type `kind` carries this variable.
    pub fn carried_by(&self, kind: MessageType) -> bool {
        self.types.is_empty() || self.types.contains(&kind)
    }

    /// The longest value the event contract allows, in the costliest SMS alphabet where the
    /// value is free text (a name in Cyrillic forces UCS-2 and halves a segment).
    pub fn worst(&self) -> String {
        match self.kind {
            Kind::Text => "Ж".repeat(self.longest),
            Kind::Link => format!("https://pay.example/{}", "x".repeat(self.longest.saturating_sub(20))),
            Kind::Phone => format!("+{}", "9".repeat(self.longest.saturating_sub(1))),
            Kind::Date => "Wed, Sep 30".to_owned(),
            Kind::Time => "12:00 PM".to_owned(),
            Kind::Window => "Wed, Sep 30 between 12:00 PM and 12:00 PM".to_owned(),
            Kind::Money => "-92,233,720,368,547,758.08 EUR".to_owned(),
        }
    }
}

/// The message types a business can word its own templates for.
pub const AUTOMATIC: &[MessageType] = &[
    MessageType::AppointmentConfirmation,
    MessageType::Reminder,
    MessageType::OnMyWay,
    MessageType::JobCompleted,
    MessageType::PaymentLink,
    MessageType::PaymentReceipt,
];

use MessageType::{AppointmentConfirmation, JobCompleted, OnMyWay, PaymentLink, PaymentReceipt, Reminder};

const JOB: &[MessageType] = &[AppointmentConfirmation, Reminder, OnMyWay, JobCompleted];
const VISIT: &[MessageType] = &[AppointmentConfirmation, Reminder];
const INVOICE: &[MessageType] = &[JobCompleted, PaymentLink];

/// Every variable, in the order an editor lists them.
pub const CATALOGUE: &[Variable] = &[
    Variable {
        name: "business_name",
        kind: Kind::Text,
        meaning: "The business's name",
        types: &[],
        sample: "Ace Plumbing",
        longest: 200,
    },
    Variable {
        name: "business_phone",
        kind: Kind::Phone,
        meaning: "The number the business texts from",
        types: &[],
        sample: "+1 512-555-0100",
        longest: 32,
    },
    Variable {
        name: "customer_first_name",
        kind: Kind::Text,
        meaning: "The customer's first name (\"there\" when none is known)",
        types: &[],
        sample: "Dana",
        longest: 200,
    },
    Variable {
        name: "customer_last_name",
        kind: Kind::Text,
        meaning: "The customer's last name (may be empty)",
        types: &[],
        sample: "Reyes",
        longest: 200,
    },
    Variable {
        name: "job_title",
        kind: Kind::Text,
        meaning: "What the job is (\"appointment\" when it has no title)",
        types: JOB,
        sample: "Water heater install",
        longest: 200,
    },
    Variable {
        name: "job_date",
        kind: Kind::Date,
        meaning: "The day the job starts, in the business's time zone",
        types: VISIT,
        sample: "Sat, Nov 28",
        longest: 11,
    },
    Variable {
        name: "job_time",
        kind: Kind::Time,
        meaning: "The time the job starts, in the business's time zone",
        types: VISIT,
        sample: "9:00 AM",
        longest: 8,
    },
    Variable {
        name: "job_window",
        kind: Kind::Window,
        meaning: "The arrival window, in the business's time zone",
        types: VISIT,
        sample: "Sat, Nov 28 between 9:00 AM and 11:00 AM",
        longest: 41,
    },
    Variable {
        name: "job_address",
        kind: Kind::Text,
        meaning: "Where the job is (may be empty)",
        types: JOB,
        sample: "12 Elm St, Austin, TX 78701",
        longest: 500,
    },
    Variable {
        name: "technician_name",
        kind: Kind::Text,
        meaning: "The technician assigned (may be empty)",
        types: JOB,
        sample: "Luis",
        longest: 100,
    },
    Variable {
        name: "invoice_number",
        kind: Kind::Text,
        meaning: "The invoice's number",
        types: INVOICE,
        sample: "INV-1042",
        longest: 64,
    },
    Variable {
        name: "invoice_amount",
        kind: Kind::Money,
        meaning: "What the invoice asks for, with its currency",
        types: INVOICE,
        sample: "$125.00",
        longest: 30,
    },
    Variable {
        name: "payment_link",
        kind: Kind::Link,
        meaning: "Where the customer pays the invoice",
        types: INVOICE,
        sample: "https://pay.example/inv/1042",
        longest: 2048,
    },
    Variable {
        name: "payment_amount",
        kind: Kind::Money,
        meaning: "What the customer paid, with its currency",
        types: &[PaymentReceipt],
        sample: "$125.00",
        longest: 30,
    },
    Variable {
        name: "receipt_link",
        kind: Kind::Link,
        meaning: "The payment's receipt (may be empty)",
        types: &[PaymentReceipt],
        sample: "https://pay.example/receipts/77",
        longest: 2048,
    },
];

/// The variable called `name`, if the catalogue has one.
pub fn variable(name: &str) -> Option<&'static Variable> {
    CATALOGUE.iter().find(|v| v.name == name)
}

/// The channels a message of type `kind` goes by, so the ones it has templates for: on-my-way by
/// SMS only (the event contract's rule: it is about the next minutes), the others by both.
pub fn channels(kind: MessageType) -> &'static [Channel] {
    match kind {
        MessageType::OnMyWay => &[Channel::Sms],
        _ => &[Channel::Sms, Channel::Email],
    }
}

/// The variables a message of type `kind` carries.
pub fn carried_by(kind: MessageType) -> impl Iterator<Item = &'static Variable> {
    CATALOGUE.iter().filter(move |v| v.carried_by(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_automatic_type_carries_the_business_and_customer_and_only_its_own_data() {
        for kind in AUTOMATIC {
            let names: Vec<&str> = carried_by(*kind).map(|v| v.name).collect();
            assert!(names.starts_with(&["business_name", "business_phone", "customer_first_name"]), "{kind}");
        }
        let reminder: Vec<&str> = carried_by(MessageType::Reminder).map(|v| v.name).collect();
        assert!(reminder.contains(&"job_window") && !reminder.contains(&"invoice_number"), "{reminder:?}");
        let receipt: Vec<&str> = carried_by(MessageType::PaymentReceipt).map(|v| v.name).collect();
        assert!(receipt.contains(&"payment_amount") && !receipt.contains(&"job_title"), "{receipt:?}");
    }

    #[test]
    fn worst_values_are_as_long_as_the_contract_allows_and_samples_fit_within_them() {
        for v in CATALOGUE {
            assert!(v.sample.chars().count() <= v.longest, "{}", v.name);
            assert!(v.worst().chars().count() >= v.sample.chars().count(), "{}", v.name);
        }
        let name = variable("customer_first_name").map(Variable::worst).unwrap_or_default();
        assert_eq!(name.chars().count(), 200);
        assert_eq!(variable("payment_link").map(|v| v.worst().len()), Some(2048));
        assert!(variable("no_such_thing").is_none());
    }
}
