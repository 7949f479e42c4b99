//! When automated messages may go out: the day-before reminder moment and the account's quiet
//! hours, both in the account's IANA zone and correct across DST changes.

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The account's default reminder time, local.
pub const DEFAULT_REMINDER_TIME: NaiveTime = hm(9, 0);
/// The account's default quiet hours, local.
pub const DEFAULT_QUIET_HOURS: QuietHours = QuietHours { start: hm(21, 0), end: hm(8, 0) };

const fn hm(hour: u32, minute: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(hour, minute, 0) {
        Some(time) => time,
        None => panic!("invalid constant time"),
    }
}

/// The instant a local wall-clock time names in `zone`.
///
/// A time that does not exist (skipped by a spring-forward change) moves forward by the gap,
/// as a wall clock would show it: 02:30 on the night clocks jump from 02:00 to 03:00 is 03:30.
/// A time that exists twice (fall-back) is its first occurrence.
pub fn resolve_local(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Read the wall time with the offset in force before the gap; that lands after it.
            let before = zone.offset_from_utc_datetime(&(local - chrono::Duration::hours(24)));
            let offset = chrono::Offset::fix(&before);
            (local - chrono::Duration::seconds(i64::from(offset.local_minus_utc()))).and_utc()
        }
    }
}

/// The reminder moment for an appointment: the local day before it, at `reminder_time`.
pub fn reminder_due(starts_at: DateTime<Utc>, zone: Tz, reminder_time: NaiveTime) -> DateTime<Utc> {
    let appointment_day: NaiveDate = starts_at.with_timezone(&zone).date_naive();
    let day_before = appointment_day.checked_sub_days(Days::new(1)).unwrap_or(appointment_day);
    resolve_local(zone, day_before.and_time(reminder_time))
}

/// The reminder moment, or `None` when it has already passed at `now` (no reminder then).
pub fn reminder_for(
    starts_at: DateTime<Utc>,
    zone: Tz,
    reminder_time: NaiveTime,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let due = reminder_due(starts_at, zone, reminder_time);
    (due > now).then_some(due)
}

/// A local window, `start` inclusive and `end` exclusive, in which automated messages wait.
/// It wraps midnight when `start > end` (21:00–08:00); `start == end` means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Whether the local wall-clock time falls in the window.
    pub fn contains(&self, local: NaiveTime) -> bool {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Equal => false,
            std::cmp::Ordering::Less => self.start <= local && local < self.end,
            std::cmp::Ordering::Greater => local >= self.start || local < self.end,
        }
    }

    /// When something due at `at` may go out: `at` itself outside quiet hours, else the end of
    /// the window it falls in.
    pub fn release_at(&self, at: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        let local = at.with_timezone(&zone).naive_local();
        if !self.contains(local.time()) {
            return at;
        }
        let today = local.date();
        let end_day = if self.start > self.end && local.time() >= self.start {
            today.checked_add_days(Days::new(1)).unwrap_or(today)
        } else {
            today
        };
        let end = end_day.and_time(self.end);
        match zone.from_local_datetime(&end) {
            // The end exists twice (fall-back night): the first occurrence not already passed.
            LocalResult::Ambiguous(first, second) => {
                let first = first.with_timezone(&Utc);
                if first >= at { first } else { second.with_timezone(&Utc).max(at) }
            }
            _ => resolve_local(zone, end),
        }
    }
}

impl Default for QuietHours {
    fn default() -> Self {
        DEFAULT_QUIET_HOURS
    }
}

#[cfg(test)]
mod tests;
