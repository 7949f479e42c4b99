//! The time services schedule by, injectable: the system clock, optionally shifted by a
//! configured offset (dev and tests only: "tomorrow" without waiting a day).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

/// Something that says what time it is.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// A shareable clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock plus a fixed offset (zero in production).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock {
    offset: Duration,
}

impl SystemClock {
    /// The system clock shifted by `offset_secs`: a test or a demo can run "tomorrow" without waiting.
    pub fn shifted(offset_secs: i64) -> Self {
        Self { offset: Duration::seconds(offset_secs) }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}
