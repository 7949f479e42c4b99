//! The bench's realistic mix: a business's day compressed. Customers come back (each account has
//! a few hundred, a third with an email too), jobs are booked, moved, cancelled, on the way and
//! done, invoices and payments follow, the day-before reminders of the jobs booked so far fire
//! mid-run, and customers text back (one text in a hundred a STOP).

use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::client::Publisher;

/// The accounts' zone (their reminder time is a local time).
const ZONE: Tz = chrono_tz::America::Chicago;

/// What the mix does at step `n`.
#[derive(Debug, Clone)]
pub enum Step {
    /// A job event: subject, `Nats-Msg-Id`, payload.
    Event(String, String, Vec<u8>),
    /// A text from a customer to the business's number.
    Text { from: String, to: String, body: String },
}

/// The mix over `accounts` accounts of `customers` customers each.
#[derive(Debug, Clone)]
pub struct Mix {
    run: String,
    accounts: usize,
    customers: usize,
    /// When every job of the run starts: tomorrow, local time.
    starts: DateTime<Utc>,
}

impl Mix {
    pub fn new(run: &str, accounts: usize, customers: usize) -> Self {
        let local_tomorrow = (Utc::now().with_timezone(&ZONE) + Duration::days(1)).date_naive();
        let ten = local_tomorrow.and_time(NaiveTime::from_hms_opt(10, 0, 0).unwrap_or_default());
        let starts = ten.and_local_timezone(ZONE).earliest().map_or_else(Utc::now, |t| t.with_timezone(&Utc));
        Self { run: run.to_owned(), accounts: accounts.max(1), customers: customers.max(1), starts }
    }

    pub fn account_ids(&self) -> Vec<String> {
        (0..self.accounts).map(|a| format!("acc_mix_{a}")).collect()
    }

    fn account(&self, a: usize) -> String {
        format!("acc_mix_{}", a % self.accounts)
    }

    fn number(a: usize) -> String {
        format!("+1512556{:04}", 1000 + a)
    }

    /// `account.updated` for every account: no quiet hours, and a reminder time (minute-precise)
    /// at least `lead` ahead; returns that moment, when the jobs booked before it are reminded.
    pub async fn set_up_accounts(&self, publisher: &Publisher, lead: Duration) -> anyhow::Result<DateTime<Utc>> {
        let local = (Utc::now() + lead + Duration::seconds(59)).with_timezone(&ZONE);
        let at = local.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(local);
        for (a, account) in self.account_ids().iter().enumerate() {
            publisher
                .event(&json!({
                    "event_id": format!("{}-mix-account-{a}", self.run), "type": "account.updated",
                    "occurred_at": Utc::now().to_rfc3339(), "account_id": account,
                    "account": {"name": format!("Mix Heating {a}"), "timezone": ZONE.name(),
                                "sms_number": Self::number(a), "email_from": format!("office+{a}@mix.example"),
                                "reminder_time": at.format("%H:%M").to_string(),
                                "quiet_hours": {"start": "00:00", "end": "00:00"}}
                }))
                .await?;
        }
        Ok(at.with_timezone(&Utc))
    }

    /// Job `j`'s account and customer (a job of step `j`; customers repeat across jobs).
    fn parties(&self, j: usize) -> (usize, usize) {
        (j % self.accounts, (j * 7919 / self.accounts) % self.customers)
    }

    fn customer(&self, a: usize, c: usize) -> Value {
        let id = format!("cus_{a}_{c}");
        let email = if c.is_multiple_of(3) { format!("{id}@mix.example") } else { String::new() };
        json!({"id": id, "name": format!("Customer {c}"), "phone": Self::phone(a, c), "email": email,
               "notifications": {"sms": true, "email": true}})
    }

    fn phone(a: usize, c: usize) -> String {
        format!("+1738{:03}{:04}", 200 + a, c)
    }

    /// Step `n`. In each twenty: seven bookings; two moves, two on-my-ways, three completions and
    /// one cancellation of those bookings; two invoices and a payment; a customer's text.
    pub fn step(&self, n: usize) -> Step {
        let r = n % 20;
        // The booking a later step is about: one of the seven in its twenty.
        let j = n - r + r % 7;
        let (a, c) = self.parties(j);
        if r == 19 {
            let body = if n % 100 == 19 { "STOP" } else { "Thanks, see you then" };
            return Step::Text { from: Self::phone(a, c), to: Self::number(a), body: body.into() };
        }
        let starts = self.starts + Duration::hours(if matches!(r, 7 | 8) { 1 } else { 0 });
        let job = json!({"id": format!("job_{}_{j}", self.run), "title": "Furnace tune-up",
                         "starts_at": starts.to_rfc3339(), "ends_at": (starts + Duration::hours(2)).to_rfc3339(),
                         "technician": {"name": "Luis Ortega"}, "address": "12 Elm St, Austin, TX"});
        let invoice = json!({"id": format!("inv_{j}"), "number": format!("{j}"), "amount_cents": 18_900,
                             "currency": "USD", "url": format!("https://pay.example/inv_{j}")});
        let (kind, objects) = match r {
            0..=6 => ("job.scheduled", json!({"job": job})),
            7 | 8 => ("job.rescheduled", json!({"job": job})),
            9 | 10 => ("job.en_route", json!({"job": job})),
            11..=13 => ("job.completed", json!({"job": job, "invoice": invoice})),
            14 => ("job.cancelled", json!({"job": job})),
            15 | 16 => ("invoice.sent", json!({"invoice": invoice})),
            _ => (
                "payment.received",
                json!({"payment": {"id": format!("pay_{j}"), "amount_cents": 18_900,
                                                          "currency": "USD", "invoice_id": format!("inv_{j}")}}),
            ),
        };
        let id = format!("{}-mix-{n}", self.run);
        let mut event = json!({"event_id": id, "type": kind, "occurred_at": Utc::now().to_rfc3339(),
                               "account_id": self.account(a), "customer": self.customer(a, c)});
        if let (Some(event), Value::Object(objects)) = (event.as_object_mut(), objects) {
            event.extend(objects);
        }
        let subject = format!("jobs.{}.{kind}", self.account(a));
        Step::Event(subject, id, serde_json::to_vec(&event).unwrap_or_default())
    }
}
