//! The time rules across DST in America/New_York, America/Chicago and Europe/London: reminder
//! moments, quiet-hour edges, moments already passed, reschedules across midnight.

use chrono::{Duration, NaiveTime};
use chrono_tz::America::{Chicago, New_York};
use chrono_tz::Europe::London;
use proptest::prelude::*;

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 instant")
}

fn time(text: &str) -> NaiveTime {
    NaiveTime::parse_from_str(text, "%H:%M").expect("HH:MM")
}

const NINE: NaiveTime = DEFAULT_REMINDER_TIME;

#[test]
fn reminder_is_the_local_day_before_at_the_reminder_time() {
    // Sat Nov 28 09:00 CST appointment; reminder Fri Nov 27 09:00 CST.
    assert_eq!(reminder_due(utc("2026-11-28T15:00:00Z"), Chicago, NINE), utc("2026-11-27T15:00:00Z"));
}

#[test]
fn reminder_uses_the_local_date_not_the_utc_date() {
    // 03:00Z on Nov 28 is 21:00 on Fri Nov 27 in Chicago: the reminder is Thu Nov 26.
    assert_eq!(reminder_due(utc("2026-11-28T03:00:00Z"), Chicago, NINE), utc("2026-11-26T15:00:00Z"));
    // 23:30Z on Nov 27 is 23:30 on Nov 27 in London: Nov 26 09:00 GMT.
    assert_eq!(reminder_due(utc("2026-11-27T23:30:00Z"), London, NINE), utc("2026-11-26T09:00:00Z"));
}

#[test]
fn new_york_spring_forward() {
    // Clocks jump 02:00 EST -> 03:00 EDT on Sun Mar 8 2026.
    // Mon Mar 9 10:00 EDT appointment: the reminder is Sun Mar 8 09:00 EDT = 13:00Z.
    assert_eq!(reminder_due(utc("2026-03-09T14:00:00Z"), New_York, NINE), utc("2026-03-08T13:00:00Z"));
    // Sun Mar 8 10:00 EDT appointment: the reminder is Sat Mar 7 09:00 EST = 14:00Z.
    assert_eq!(reminder_due(utc("2026-03-08T14:00:00Z"), New_York, NINE), utc("2026-03-07T14:00:00Z"));
    // A reminder time in the skipped hour moves forward by the gap: 02:30 -> 03:30 EDT.
    assert_eq!(reminder_due(utc("2026-03-09T14:00:00Z"), New_York, time("02:30")), utc("2026-03-08T07:30:00Z"));
}

#[test]
fn new_york_fall_back() {
    // Clocks go back 02:00 EDT -> 01:00 EST on Sun Nov 1 2026.
    assert_eq!(reminder_due(utc("2026-11-02T15:00:00Z"), New_York, NINE), utc("2026-11-01T14:00:00Z"));
    // 01:30 happens twice that night: the first one (EDT) counts.
    assert_eq!(reminder_due(utc("2026-11-02T15:00:00Z"), New_York, time("01:30")), utc("2026-11-01T05:30:00Z"));
}

#[test]
fn chicago_both_changes() {
    // Spring: Sun Mar 8 2026 02:00 CST -> 03:00 CDT.
    assert_eq!(reminder_due(utc("2026-03-09T15:00:00Z"), Chicago, NINE), utc("2026-03-08T14:00:00Z"));
    assert_eq!(reminder_due(utc("2026-03-09T15:00:00Z"), Chicago, time("02:15")), utc("2026-03-08T08:15:00Z"));
    // Autumn: Sun Nov 1 2026 02:00 CDT -> 01:00 CST.
    assert_eq!(reminder_due(utc("2026-11-02T16:00:00Z"), Chicago, NINE), utc("2026-11-01T15:00:00Z"));
    assert_eq!(reminder_due(utc("2026-11-02T16:00:00Z"), Chicago, time("01:30")), utc("2026-11-01T06:30:00Z"));
}

#[test]
fn london_both_changes() {
    // Spring: Sun Mar 29 2026 01:00 GMT -> 02:00 BST.
    assert_eq!(reminder_due(utc("2026-03-30T08:00:00Z"), London, NINE), utc("2026-03-29T08:00:00Z"));
    assert_eq!(reminder_due(utc("2026-03-30T08:00:00Z"), London, time("01:30")), utc("2026-03-29T01:30:00Z"));
    // Autumn: Sun Oct 25 2026 02:00 BST -> 01:00 GMT.
    assert_eq!(reminder_due(utc("2026-10-26T10:00:00Z"), London, NINE), utc("2026-10-25T09:00:00Z"));
    assert_eq!(reminder_due(utc("2026-10-26T10:00:00Z"), London, time("01:30")), utc("2026-10-25T00:30:00Z"));
}

#[test]
fn no_reminder_when_its_moment_has_passed() {
    let starts = utc("2026-11-28T14:00:00Z"); // Sat 08:00 CST; reminder Fri 09:00 CST = 15:00Z
    assert_eq!(reminder_for(starts, Chicago, NINE, utc("2026-11-27T14:59:59Z")), Some(utc("2026-11-27T15:00:00Z")));
    assert_eq!(reminder_for(starts, Chicago, NINE, utc("2026-11-27T15:00:00Z")), None);
    assert_eq!(reminder_for(starts, Chicago, NINE, utc("2026-11-27T18:00:00Z")), None);
}

#[test]
fn reschedule_across_midnight_moves_the_reminder_a_day() {
    // 23:30 Sat Nov 28 CST -> 00:30 Sun Nov 29 CST.
    let before = reminder_due(utc("2026-11-29T05:30:00Z"), Chicago, NINE);
    let after = reminder_due(utc("2026-11-29T06:30:00Z"), Chicago, NINE);
    assert_eq!(before, utc("2026-11-27T15:00:00Z"));
    assert_eq!(after, utc("2026-11-28T15:00:00Z"));
}

#[test]
fn quiet_hour_edges() {
    let quiet = QuietHours::default();
    assert!(quiet.contains(time("21:00")), "the start is quiet");
    assert!(!quiet.contains(NaiveTime::from_hms_opt(20, 59, 59).expect("time")));
    assert!(quiet.contains(time("23:59")));
    assert!(quiet.contains(time("00:00")));
    assert!(quiet.contains(NaiveTime::from_hms_opt(7, 59, 59).expect("time")));
    assert!(!quiet.contains(time("08:00")), "the end is not quiet");
    let daytime = QuietHours { start: time("12:00"), end: time("13:00") };
    assert!(daytime.contains(time("12:30")) && !daytime.contains(time("13:00")) && !daytime.contains(time("11:59")));
    let none = QuietHours { start: time("08:00"), end: time("08:00") };
    assert!(!none.contains(time("08:00")) && !none.contains(time("03:00")));
}

#[test]
fn quiet_hours_defer_to_their_end() {
    let quiet = QuietHours::default();
    // 22:00 CST Fri -> 08:00 CST Sat.
    assert_eq!(quiet.release_at(utc("2026-11-28T04:00:00Z"), Chicago), utc("2026-11-28T14:00:00Z"));
    // 03:00 CST -> 08:00 the same day.
    assert_eq!(quiet.release_at(utc("2026-11-28T09:00:00Z"), Chicago), utc("2026-11-28T14:00:00Z"));
    // 21:00 exactly is quiet; 08:00 exactly is not.
    assert_eq!(quiet.release_at(utc("2026-11-28T03:00:00Z"), Chicago), utc("2026-11-28T14:00:00Z"));
    assert_eq!(quiet.release_at(utc("2026-11-28T14:00:00Z"), Chicago), utc("2026-11-28T14:00:00Z"));
    // Daytime is left alone.
    assert_eq!(quiet.release_at(utc("2026-11-28T20:00:00Z"), Chicago), utc("2026-11-28T20:00:00Z"));
}

#[test]
fn quiet_hours_across_dst_nights() {
    let quiet = QuietHours::default();
    // 01:00 EST on the spring-forward night: released at 08:00 EDT, six real hours later.
    assert_eq!(quiet.release_at(utc("2026-03-08T06:00:00Z"), New_York), utc("2026-03-08T12:00:00Z"));
    // 23:00 EDT on Oct 31 before fall-back: released at 08:00 EST on Nov 1, ten real hours later.
    assert_eq!(quiet.release_at(utc("2026-11-01T03:00:00Z"), New_York), utc("2026-11-01T13:00:00Z"));
    // London, 22:00 GMT on Mar 28 -> 08:00 BST on Mar 29.
    assert_eq!(quiet.release_at(utc("2026-03-28T22:00:00Z"), London), utc("2026-03-29T07:00:00Z"));
}

fn zones() -> impl Strategy<Value = Tz> {
    prop_oneof![Just(New_York), Just(Chicago), Just(London)]
}

fn instants() -> impl Strategy<Value = DateTime<Utc>> {
    // 2024-01-01 .. 2032-01-01, minute resolution: every DST change in between.
    (1_704_067_200i64 / 60..1_956_528_000i64 / 60).prop_map(|m| Utc.timestamp_opt(m * 60, 0).single().expect("ts"))
}

fn times() -> impl Strategy<Value = NaiveTime> {
    (0u32..24, 0u32..60).prop_map(|(h, m)| NaiveTime::from_hms_opt(h, m, 0).expect("time"))
}

proptest! {
    #[test]
    fn reminder_lands_on_the_day_before_at_its_time(starts in instants(), zone in zones(), at in times()) {
        let due = reminder_due(starts, zone, at).with_timezone(&zone);
        let day = starts.with_timezone(&zone).date_naive();
        prop_assert_eq!(due.date_naive(), day.pred_opt().expect("a day before"));
        let shift = due.time().signed_duration_since(at);
        // Exactly the reminder time, or later by a DST gap when that time does not exist that day.
        prop_assert!(shift == Duration::zero() || (shift > Duration::zero() && shift <= Duration::hours(1)),
            "due {due} for {at}");
    }

    #[test]
    fn release_is_never_quiet_never_early_and_within_a_day(
        at in instants(), zone in zones(), start in times(), end in times(),
    ) {
        let quiet = QuietHours { start, end };
        let release = quiet.release_at(at, zone);
        prop_assert!(release >= at);
        prop_assert!(release - at <= Duration::hours(25));
        let local = at.with_timezone(&zone).time();
        if !quiet.contains(local) {
            prop_assert_eq!(release, at);
        } else {
            let released = release.with_timezone(&zone);
            // Only a window end skipped by a DST gap can land later, possibly inside a near-24 h window.
            let end_skipped = matches!(zone.from_local_datetime(&released.date_naive().and_time(end)), LocalResult::None);
            prop_assert!(!quiet.contains(released.time()) || end_skipped, "released into quiet hours at {released}");
            prop_assert_eq!(quiet.release_at(release, zone), release, "releasing twice moves nothing");
        }
    }
}
