//! Conversions between `google.protobuf.Timestamp` and `chrono`, in one place.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

/// A protobuf timestamp for a UTC time.
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: at.timestamp(), nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0) }
}

/// The current time as a protobuf timestamp.
pub fn now() -> Timestamp {
    timestamp(Utc::now())
}

/// The UTC time of a protobuf timestamp; `None` when absent or out of range.
pub fn datetime(at: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    let at = at?;
    DateTime::<Utc>::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let at = DateTime::<Utc>::from_timestamp(1_795_878_000, 123_000_000).expect("time");
        assert_eq!(datetime(Some(&timestamp(at))), Some(at));
        assert_eq!(datetime(Some(&Timestamp { seconds: 0, nanos: -1 })), None);
        assert_eq!(datetime(None), None);
    }
}
