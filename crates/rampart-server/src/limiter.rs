//! The login limiter: failed logins per client address, bounded.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed logins per client address, in a sliding window.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: HashMap<IpAddr, VecDeque<Instant>>,
}

impl LoginLimiter {
    /// Seconds until `addr` may try again, when it is over the limit.
    pub fn blocked_for(
        &mut self,
        addr: IpAddr,
        attempts: u32,
        per: Duration,
        now: Instant,
    ) -> Option<u64> {
        let list = self.failures.get_mut(&addr)?;
        while list.front().is_some_and(|t| now.duration_since(*t) >= per) {
            list.pop_front();
        }
        if list.is_empty() {
            self.failures.remove(&addr);
            return None;
        }
        let oldest = *list.front()?;
        (list.len() >= attempts as usize).then(|| (per - now.duration_since(oldest)).as_secs() + 1)
    }

    /// Records a failure.
    pub fn fail(&mut self, addr: IpAddr, now: Instant) {
        self.failures.entry(addr).or_default().push_back(now);
        if self.failures.len() > 100_000 {
            // Forget the quietest addresses rather than grow without bound.
            self.failures.retain(|_, l| l.len() > 1);
        }
    }

    /// Forgets an address's failures (after a successful login).
    pub fn forget(&mut self, addr: IpAddr) {
        self.failures.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_the_allowed_failures_and_forgets_after_the_window() {
        let mut l = LoginLimiter::default();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        let per = Duration::from_secs(60);
        for i in 0..3 {
            assert_eq!(l.blocked_for(addr, 3, per, t0), None, "attempt {i}");
            l.fail(addr, t0);
        }
        let wait = l.blocked_for(addr, 3, per, t0 + Duration::from_secs(10));
        assert_eq!(wait, Some(51));
        assert_eq!(l.blocked_for(other, 3, per, t0), None);
        assert_eq!(l.blocked_for(addr, 3, per, t0 + per), None);
    }
}
