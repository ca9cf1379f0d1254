//! The guard against clock jumps: detection never sees time run wild.

use chrono::{DateTime, Duration, Utc};

/// How far behind the newest time an event may be before it counts as a jump.
const BACKWARD_TOLERANCE: i64 = 3600;
/// How far after the reference time (now, or the file's age) an event may be.
const FORWARD_TOLERANCE: i64 = 86_400;
/// After this many consecutive events behind the newest time, the source's
/// clock is taken to have been set back for good and its new time is accepted.
const ACCEPT_AFTER: u32 = 16;

/// Drops events whose time jumps: more than a day after the reference time
/// (the future), or more than an hour behind the newest time seen (unless
/// the jump persists, as after a clock really set back: then the new time
/// is accepted after a few events). Detection never sees time run wild.
#[derive(Debug, Default)]
pub struct ClockGuard {
    newest: Option<DateTime<Utc>>,
    behind: u32,
}

impl ClockGuard {
    /// Whether an event at `at` may pass, given the reference time `now`.
    pub fn admit(&mut self, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        if at > now + Duration::seconds(FORWARD_TOLERANCE) {
            return false;
        }
        match self.newest {
            Some(newest) if at < newest - Duration::seconds(BACKWARD_TOLERANCE) => {
                self.behind += 1;
                if self.behind < ACCEPT_AFTER {
                    return false;
                }
                self.newest = Some(at);
                self.behind = 0;
                true
            }
            _ => {
                self.behind = 0;
                if self.newest.is_none_or(|n| at > n) {
                    self.newest = Some(at);
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn future_and_backward_jumps_are_dropped_then_a_lasting_step_back_is_accepted() {
        let mut g = ClockGuard::default();
        let now = t(10_000);
        assert!(g.admit(t(0), now));
        assert!(g.admit(t(5), now));
        assert!(
            !g.admit(t(10_000 + 2 * 86_400), now),
            "two days in the future"
        );
        assert!(g.admit(t(3), now), "a little out of order is fine");
        assert!(!g.admit(t(-7200), now), "two hours back");
        for i in 0..ACCEPT_AFTER - 2 {
            assert!(!g.admit(t(-7200 + i64::from(i)), now));
        }
        assert!(g.admit(t(-7000), now), "the step back lasted: accepted");
        assert!(g.admit(t(-6999), now));
    }
}
