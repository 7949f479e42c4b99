//! The built-in wording of every automatic message, written in the template subset: what an
//! account's own template starts from, and what a reset returns to. dispatch sends the built-in
//! wording with its own code; a test there renders these sources with the same requests and
//! proves the two identical, type by type. An email's HTML part is its text part made HTML.

use messaging_domain::{Channel, MessageType};

/// The parts of one built-in template (an SMS template uses only `sms_body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub sms_body: &'static str,
    pub subject: &'static str,
    pub text: &'static str,
}

/// The built-in wording of `kind` on `channel`; `None` where there is none (on-my-way is SMS only,
/// manual messages are written by hand).
pub fn builtin(kind: MessageType, channel: Channel) -> Option<Builtin> {
    let (sms_body, subject, text) = match kind {
        MessageType::AppointmentConfirmation => (
            "{{ business_name }}: Hi {{ customer_first_name }}, your {{ job_title }} is confirmed for {{ job_window }}.\
             {% if technician_name %} Your technician is {{ technician_name }}.{% endif %}",
            "Your appointment with {{ business_name }} is confirmed",
            "Hi {{ customer_first_name }},\nyour {{ job_title }} is confirmed for {{ job_window }}.\
             {% if technician_name %}\nYour technician is {{ technician_name }}.{% endif %}\
             {% if job_address %}\nAddress: {{ job_address }}{% endif %}\n\n{{ business_name }}\n",
        ),
        MessageType::Reminder => (
            "{{ business_name }}: Reminder, {{ customer_first_name }}: your {{ job_title }} is tomorrow, {{ job_window }}.",
            "Reminder: your appointment with {{ business_name }} is tomorrow",
            "Hi {{ customer_first_name }},\na reminder that your {{ job_title }} is tomorrow, {{ job_window }}.\
             {% if job_address %}\nAddress: {{ job_address }}{% endif %}\n\n{{ business_name }}\n",
        ),
        MessageType::OnMyWay => (
            "{{ business_name }}: Hi {{ customer_first_name }}, \
             {% if technician_name %}{{ technician_name }}{% else %}your technician{% endif %} is on the way to you now.",
            "",
            "",
        ),
        MessageType::JobCompleted => (
            "{{ business_name }}: Your {{ job_title }} is complete. Thank you, {{ customer_first_name }}! \
             Invoice {{ invoice_number }}: {{ payment_link }}",
            "Your {{ job_title }} is complete",
            "Hi {{ customer_first_name }},\nthank you for choosing {{ business_name }}. \
             Your invoice {{ invoice_number }} is here: {{ payment_link }}\n\n{{ business_name }}\n",
        ),
        MessageType::PaymentLink => (
            "{{ business_name }}: Invoice {{ invoice_number }} for {{ invoice_amount }} is ready. Pay here: {{ payment_link }}",
            "Invoice {{ invoice_number }} from {{ business_name }}",
            "Hi {{ customer_first_name }},\ninvoice {{ invoice_number }} for {{ invoice_amount }} is ready. \
             Pay here: {{ payment_link }}\n\n{{ business_name }}\n",
        ),
        MessageType::PaymentReceipt => (
            "{{ business_name }}: We received your payment of {{ payment_amount }}. Thank you, {{ customer_first_name }}!",
            "Payment received: thank you from {{ business_name }}",
            "Hi {{ customer_first_name }},\nwe received your payment of {{ payment_amount }}. Thank you!\
             {% if receipt_link %}\nYour receipt: {{ receipt_link }}{% endif %}\n\n{{ business_name }}\n",
        ),
        MessageType::Manual | MessageType::Reply => return None,
    };
    match channel {
        Channel::Sms => Some(Builtin { sms_body, subject: "", text: "" }),
        Channel::Email if text.is_empty() => None,
        Channel::Email => Some(Builtin { sms_body: "", subject, text }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Part, catalogue, validate};

    #[test]
    fn every_built_in_passes_the_checks_an_accounts_template_must() {
        for kind in catalogue::AUTOMATIC {
            let sms = builtin(*kind, Channel::Sms).map(|b| b.sms_body).unwrap_or_default();
            assert!(validate(*kind, Part::Sms, sms).is_ok(), "{kind} sms: {:?}", validate(*kind, Part::Sms, sms));
            let Some(email) = builtin(*kind, Channel::Email) else {
                assert_eq!(*kind, MessageType::OnMyWay, "only on-my-way has no email");
                continue;
            };
            for (part, source) in [(Part::Subject, email.subject), (Part::Text, email.text)] {
                assert!(validate(*kind, part, source).is_ok(), "{kind} {part:?}: {:?}", validate(*kind, part, source));
            }
        }
        assert!(builtin(MessageType::Manual, Channel::Sms).is_none());
    }
}
