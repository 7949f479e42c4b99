//! The fault suite's verdict: every expected message as the provider (the simulator's record and
//! the SMTP server's maildir) and the feed (gRPC) show it, counted apart — delivered or sent,
//! failed by reason, unknown, lost, duplicated, never settled — and the invariants over them.

use std::collections::{BTreeMap, HashMap, HashSet};

use messaging_proto::v1::{Channel, Direction, ListMessagesRequest, Message, MessageStatus, MessageType};

use super::plan::{Key, Plan};
use crate::client::{Dashboard, sim_messages, sim_requests};

/// What happened to one expected message.
#[derive(Debug, Default)]
pub struct Fate {
    /// Copies the provider (or the SMTP server) holds.
    pub created: usize,
    /// A request for it was answered ambiguously (500 after accepting, or no answer).
    pub ambiguous: bool,
    /// Any provider fault touched a request for it.
    pub faulted: bool,
    pub in_feed: Vec<Message>,
}

impl Fate {
    fn status(&self) -> Option<MessageStatus> {
        self.in_feed.first().map(|m| MessageStatus::try_from(m.status).unwrap_or_default())
    }

    fn unknown(&self) -> bool {
        self.status() == Some(MessageStatus::Unknown) || self.in_feed.iter().any(|m| m.delivery_unknown)
    }

    fn failed(&self) -> Option<&str> {
        (self.status() == Some(MessageStatus::Failed)).then(|| self.in_feed[0].failure_reason.as_str())
    }

    /// Delivered (SMS) or handed to the relay (email, which reports no delivery here).
    fn done(&self, key: &Key) -> bool {
        match self.status() {
            Some(MessageStatus::Delivered) => true,
            Some(MessageStatus::Sent) => key.email,
            _ => false,
        }
    }
}

/// Every expected message's fate, and anything the system made that nobody expected.
pub struct Observed {
    pub fates: BTreeMap<Key, Fate>,
    pub unexpected: Vec<String>,
    pub provider_faults: BTreeMap<String, usize>,
}

fn key_of(n: usize, email: bool, reminder: bool) -> Key {
    Key { n, email, reminder }
}

/// Reads the simulator, the maildir and the feed.
pub async fn observe(plan: &Plan, sim_port: u16, grpc_port: u16, mails: &[String]) -> anyhow::Result<Observed> {
    let mut fates: BTreeMap<Key, Fate> = plan.expected().into_iter().map(|k| (k, Fate::default())).collect();
    let mut unexpected = Vec::new();
    let mut provider_faults: BTreeMap<String, usize> = BTreeMap::new();
    let mut faulted: HashMap<usize, bool> = HashMap::new();
    for request in sim_requests(sim_port).await? {
        let (Some(n), Some(fault)) = (request["to"].as_str().and_then(Plan::customer_of), request["fault"].as_str())
        else {
            continue;
        };
        *provider_faults.entry(fault.to_owned()).or_default() += 1;
        let ambiguous = matches!(fault, "accept_then_500" | "timeout");
        let entry = faulted.entry(n).or_default();
        *entry |= ambiguous;
    }
    let mut count = |key: Key, what: String| match fates.get_mut(&key) {
        Some(fate) => fate.created += 1,
        None => unexpected.push(what),
    };
    for message in sim_messages(sim_port).await? {
        let (to, body) = (message["to"].as_str().unwrap_or(""), message["body"].as_str().unwrap_or(""));
        let Some(n) = Plan::customer_of(to) else { continue };
        count(key_of(n, false, body.contains("Reminder,")), format!("an SMS to {to}: {body}"));
    }
    for mail in mails {
        let header = |name: &str| {
            mail.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned())).unwrap_or_default()
        };
        let (to, subject) = (header("X-RcptTo:"), header("Subject:"));
        let Some(n) = Plan::customer_of(&to) else { continue };
        count(key_of(n, true, subject.starts_with("Reminder:")), format!("an email to {to}: {subject}"));
    }
    for (key, fate) in fates.iter_mut() {
        if !key.email {
            fate.faulted = faulted.contains_key(&key.n);
            fate.ambiguous = faulted.get(&key.n).copied().unwrap_or(false);
        }
    }
    for message in feed(grpc_port, &plan.account_ids()).await? {
        let customer = message.customer.clone().unwrap_or_default();
        let email = message.channel == Channel::Email as i32;
        let address = if email { &customer.email } else { &customer.phone };
        let Some(n) = Plan::customer_of(address) else { continue };
        let key = key_of(n, email, message.r#type == MessageType::Reminder as i32);
        match fates.get_mut(&key) {
            Some(fate) => fate.in_feed.push(message),
            None => unexpected.push(format!("a feed row {key:?}: {}", message.preview)),
        }
    }
    Ok(Observed { fates, unexpected, provider_faults })
}

/// Every outbound message of every account, through ListMessages pages.
async fn feed(grpc_port: u16, accounts: &[String]) -> anyhow::Result<Vec<Message>> {
    let mut all = Vec::new();
    for account in accounts {
        let dashboard = Dashboard::connect(grpc_port, account).await?;
        let mut page_token = String::new();
        loop {
            let request = ListMessagesRequest {
                page_size: 200,
                page_token: page_token.clone(),
                directions: vec![Direction::Outbound as i32],
                ..Default::default()
            };
            let page = dashboard.grpc().list_messages(dashboard.authed(request)).await?.into_inner();
            all.extend(page.messages);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    Ok(all)
}

/// What became of the customers' STOPs.
#[derive(Debug, Default)]
pub struct Stops {
    pub acknowledged: HashSet<usize>,
    pub suppressed: HashSet<usize>,
    pub suppressed_early: HashSet<usize>,
}

/// The counts and whether every invariant held.
pub struct Verdict {
    pub rows: Vec<(String, usize)>,
    pub broken: Vec<String>,
}

impl Observed {
    /// Messages not settled yet (the caller waits for late callbacks while any are): neither done
    /// nor failed, nor an email left `unknown` (SMTP has no way to ask; an SMS's `unknown` is
    /// settled through the provider's list API, as sent or as failed `send_unknown`).
    pub fn unsettled(&self) -> usize {
        self.fates
            .iter()
            .filter(|(k, f)| {
                let settled = f.done(k) || f.failed().is_some() || (k.email && f.unknown());
                !f.in_feed.is_empty() && !settled
            })
            .count()
    }

    /// The verdict. `stops`: customers whose STOP delivery-status acknowledged; `suppressed`: those
    /// dispatch recorded as opted out, and `suppressed_early` those it recorded before the reminders
    /// fired (their reminder must be refused).
    pub fn verdict(&self, stops: &Stops) -> Verdict {
        let stopped = &stops.suppressed_early;
        let count = |check: &dyn Fn(&Key, &Fate) -> bool| self.fates.iter().filter(|(k, f)| check(k, f)).count();
        let mut failed: BTreeMap<String, usize> = BTreeMap::new();
        for fate in self.fates.values() {
            if let Some(reason) = fate.failed() {
                *failed.entry(reason.to_owned()).or_default() += 1;
            }
        }
        let lost = count(&|_, f| f.in_feed.is_empty());
        let feed_twice = count(&|_, f| f.in_feed.len() > 1);
        let twice_unknown = count(&|_, f| f.created > 1 && (f.ambiguous || f.unknown()));
        let twice_outside = count(&|_, f| f.created > 1) - twice_unknown;
        let unsettled = self.unsettled();
        let stop_ignored = count(&|k, f| k.reminder && !k.email && stopped.contains(&k.n) && f.created > 0);
        let stop_unrecorded =
            count(&|k, f| k.reminder && !k.email && stopped.contains(&k.n) && f.failed() != Some("opted_out"));
        let stop_lost = stops.acknowledged.difference(&stops.suppressed).count();
        let silently_failed = count(&|k, f| {
            let explained = matches!(f.failed(), Some("opted_out" | "send_unknown")) || (f.faulted && !k.email);
            f.failed().is_some() && !explained
        });
        let mut rows: Vec<(String, usize)> = vec![
            ("messages expected".into(), self.fates.len()),
            ("  of which emails".into(), count(&|k, _| k.email)),
            ("  of which reminders".into(), count(&|k, _| k.reminder)),
            ("STOPs acknowledged".into(), stops.acknowledged.len()),
            ("  recorded before the reminders fired".into(), stops.suppressed_early.len()),
            ("delivered (SMS) or handed to the relay (email)".into(), count(&|k, f| f.done(k))),
            (
                "unknown email: the relay's answer was lost (after DATA, or the gateway died mid-send)".into(),
                count(&|k, f| k.email && f.unknown()),
            ),
            ("  of which the relay had in fact kept".into(), count(&|k, f| k.email && f.unknown() && f.created > 0)),
            (
                "recovered (a fault on the way, sent once, done)".into(),
                count(&|k, f| f.faulted && f.created == 1 && f.done(k)),
            ),
        ];
        rows.extend(failed.into_iter().map(|(reason, n)| (format!("failed: {reason}"), n)));
        let violations = [
            ("lost (in no feed row)", lost),
            ("shown twice in the feed", feed_twice),
            ("sent twice outside unknown", twice_outside),
            ("never settled (an SMS left unknown included)", unsettled),
            ("STOPs acknowledged but never recorded", stop_lost),
            ("reminders sent after a STOP", stop_ignored),
            ("reminders after a STOP not refused as opted_out", stop_unrecorded),
            ("failed with no fault to explain it", silently_failed),
            ("made but never asked for", self.unexpected.len()),
        ];
        rows.push(("sent twice inside unknown".into(), twice_unknown));
        rows.extend(violations.iter().map(|(what, n)| ((*what).to_owned(), *n)));
        let mut broken: Vec<String> =
            violations.iter().filter(|(_, n)| *n > 0).map(|(what, n)| format!("{what}: {n}")).collect();
        broken.extend(self.unexpected.iter().take(5).cloned());
        Verdict { rows, broken }
    }
}
