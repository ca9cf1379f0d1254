//! Buckets: the per-key counters scenarios are built from.
//!
//! Every bucket answers one question when an event arrives: does this key
//! now overflow? Times come from events and may go backwards (clock jumps,
//! interleaved sources); a bucket never panics on that, it treats negative
//! elapsed time as zero.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

/// The kind of counter a scenario uses, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum BucketKind {
    /// Overflows when `threshold` events fall within `window`.
    Window {
        /// Events needed.
        threshold: u32,
        /// Sliding window.
        window: Duration,
    },
    /// A leaky bucket: each event adds one, one drains every `leak`;
    /// overflows when it holds `threshold`.
    Leaky {
        /// Events held to overflow.
        threshold: u32,
        /// Time for one event to drain.
        leak: Duration,
    },
    /// Overflows when `threshold` distinct values of a field are seen within `window`.
    Distinct {
        /// Distinct values needed.
        threshold: u32,
        /// Sliding window.
        window: Duration,
        /// The field whose values are counted.
        field: String,
    },
    /// Overflows on every matching event.
    Trigger,
}

impl BucketKind {
    /// How long a key may stay idle before its state can be forgotten.
    pub fn idle_after(&self) -> Duration {
        match self {
            BucketKind::Window { window, .. } | BucketKind::Distinct { window, .. } => *window,
            BucketKind::Leaky { threshold, leak } => {
                *leak * i32::try_from(*threshold).unwrap_or(i32::MAX)
            }
            BucketKind::Trigger => Duration::zero(),
        }
    }

    /// The threshold (1 for a trigger).
    pub fn threshold(&self) -> u32 {
        match self {
            BucketKind::Window { threshold, .. }
            | BucketKind::Leaky { threshold, .. }
            | BucketKind::Distinct { threshold, .. } => *threshold,
            BucketKind::Trigger => 1,
        }
    }
}

/// The state one key has in one scenario.
///
/// An *episode* is a run of matching events without an idle gap longer
/// than the kind's [`BucketKind::idle_after`]; `count`, `first_seen` and
/// `first_line` describe the current episode, so evidence never mixes an
/// attack with activity hours before it.
#[derive(Debug, Clone)]
pub struct Bucket {
    state: State,
    /// Matching events in the current episode.
    pub count: u64,
    /// Time of the episode's first event.
    pub first_seen: DateTime<Utc>,
    /// Time of the newest event seen.
    pub last_seen: DateTime<Utc>,
    /// The raw line of the episode's first event (shared with the event).
    pub first_line: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
enum State {
    /// The newest `threshold` event times, oldest first.
    Window(VecDeque<DateTime<Utc>>),
    Leaky {
        level: f64,
        at: DateTime<Utc>,
    },
    /// Distinct values with the time each was last seen.
    Distinct(Vec<(String, DateTime<Utc>)>),
    Trigger,
}

impl Bucket {
    /// A fresh bucket for `kind`, started by an event at `at`.
    pub fn new(kind: &BucketKind, at: DateTime<Utc>, first_line: Option<Arc<str>>) -> Self {
        let state = match kind {
            BucketKind::Window { threshold, .. } => State::Window(VecDeque::with_capacity(
                usize::try_from(*threshold).unwrap_or(8).min(64),
            )),
            BucketKind::Leaky { .. } => State::Leaky { level: 0.0, at },
            BucketKind::Distinct { .. } => State::Distinct(Vec::new()),
            BucketKind::Trigger => State::Trigger,
        };
        Self {
            state,
            count: 0,
            first_seen: at,
            last_seen: at,
            first_line,
        }
    }

    /// Adds an event at `at` (with the distinct field's value for distinct
    /// buckets, and its raw line). Returns true when the bucket overflows.
    pub fn add(
        &mut self,
        kind: &BucketKind,
        at: DateTime<Utc>,
        value: Option<&str>,
        line: Option<&Arc<str>>,
    ) -> bool {
        if self.count > 0 && at - self.last_seen > kind.idle_after() {
            // A new episode: what came before it has all expired.
            *self = Bucket::new(kind, at, line.cloned());
        } else if self.count == 0 {
            self.first_seen = at;
            self.first_line = line.cloned();
        }
        self.count += 1;
        if at > self.last_seen {
            self.last_seen = at;
        }
        match (&mut self.state, kind) {
            (State::Window(times), BucketKind::Window { threshold, window }) => {
                let threshold = usize::try_from(*threshold).unwrap_or(usize::MAX).max(1);
                times.push_back(at);
                while times.len() > threshold {
                    times.pop_front();
                }
                if times.len() < threshold {
                    return false;
                }
                let oldest = times.iter().min().copied().unwrap_or(at);
                let newest = times.iter().max().copied().unwrap_or(at);
                newest - oldest <= *window
            }
            (State::Leaky { level, at: last }, BucketKind::Leaky { threshold, leak }) => {
                let elapsed = (at - *last).max(Duration::zero());
                if at > *last {
                    *last = at;
                }
                let leak_ms = leak.num_milliseconds().max(1) as f64;
                let drained = elapsed.num_milliseconds() as f64 / leak_ms;
                *level = (*level - drained).max(0.0) + 1.0;
                *level >= f64::from(*threshold)
            }
            (
                State::Distinct(seen),
                BucketKind::Distinct {
                    threshold, window, ..
                },
            ) => {
                let Some(value) = value else { return false };
                let horizon = self.last_seen - *window;
                seen.retain(|(_, t)| *t >= horizon);
                if let Some(slot) = seen.iter_mut().find(|(v, _)| v == value) {
                    if at > slot.1 {
                        slot.1 = at;
                    }
                } else if at >= horizon {
                    // Bounded: at most `threshold` values are ever kept.
                    seen.push((truncate(value, 256), at));
                }
                seen.len() >= usize::try_from(*threshold).unwrap_or(usize::MAX)
            }
            (State::Trigger, BucketKind::Trigger) => true,
            // A bucket is always used with the kind it was made for.
            _ => false,
        }
    }

    /// For window buckets: how many events the window holds and the time
    /// of the oldest.
    pub fn window_span(&self) -> Option<(usize, DateTime<Utc>)> {
        match &self.state {
            State::Window(times) => times.iter().min().map(|oldest| (times.len(), *oldest)),
            _ => None,
        }
    }

    /// The distinct values held (distinct buckets), a bounded sample.
    pub fn distinct_values(&self) -> Vec<String> {
        match &self.state {
            State::Distinct(seen) => seen.iter().map(|(v, _)| v.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the state can be forgotten at `now` without changing any
    /// future answer.
    pub fn is_idle(&self, kind: &BucketKind, now: DateTime<Utc>) -> bool {
        now - self.last_seen > kind.idle_after()
    }
}

fn truncate(value: &str, max: usize) -> String {
    if value.len() <= max {
        return value.to_owned();
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn window_needs_threshold_events_within_the_window() {
        let kind = BucketKind::Window {
            threshold: 3,
            window: Duration::seconds(60),
        };
        let mut b = Bucket::new(&kind, t(0), None);
        assert!(!b.add(&kind, t(0), None, None));
        assert!(!b.add(&kind, t(50), None, None));
        assert!(
            !b.add(&kind, t(100), None, None),
            "t0 slid out of the window"
        );
        assert!(
            b.add(&kind, t(101), None, None),
            "50, 100, 101 are within 60 s"
        );
    }

    #[test]
    fn window_tolerates_times_going_backwards() {
        let kind = BucketKind::Window {
            threshold: 2,
            window: Duration::seconds(10),
        };
        let mut b = Bucket::new(&kind, t(100), None);
        assert!(!b.add(&kind, t(100), None, None));
        assert!(b.add(&kind, t(95), None, None));
    }

    #[test]
    fn leaky_bucket_drains_over_time() {
        let kind = BucketKind::Leaky {
            threshold: 3,
            leak: Duration::seconds(10),
        };
        let mut b = Bucket::new(&kind, t(0), None);
        assert!(!b.add(&kind, t(0), None, None));
        assert!(!b.add(&kind, t(0), None, None));
        assert!(
            !b.add(&kind, t(20), None, None),
            "two drained, level back to 1"
        );
        assert!(!b.add(&kind, t(20), None, None));
        assert!(b.add(&kind, t(20), None, None));
    }

    #[test]
    fn distinct_counts_values_not_events() {
        let kind = BucketKind::Distinct {
            threshold: 3,
            window: Duration::seconds(60),
            field: "user".into(),
        };
        let mut b = Bucket::new(&kind, t(0), None);
        for _ in 0..10 {
            assert!(!b.add(&kind, t(1), Some("root"), None));
        }
        assert!(!b.add(&kind, t(2), Some("admin"), None));
        assert!(
            !b.add(&kind, t(2), None, None),
            "events without the field do not count"
        );
        assert!(b.add(&kind, t(3), Some("oracle"), None));
        assert_eq!(b.distinct_values().len(), 3);
    }

    #[test]
    fn distinct_forgets_values_outside_the_window() {
        let kind = BucketKind::Distinct {
            threshold: 2,
            window: Duration::seconds(10),
            field: "path".into(),
        };
        let mut b = Bucket::new(&kind, t(0), None);
        assert!(!b.add(&kind, t(0), Some("/a"), None));
        assert!(!b.add(&kind, t(30), Some("/b"), None));
        assert!(b.add(&kind, t(31), Some("/c"), None));
    }
}
