//! Backends: the pool, how one is picked, and their health (active checks
//! and passive marking on failed connections).
//!
//! A backend is down after `unhealthy_threshold` consecutive failures
//! (failed health checks, or real requests that could not connect) and up
//! again after `healthy_threshold` consecutive successful checks. With
//! active checks disabled, a down backend is tried again after one check
//! interval, as a probe. When every backend is down the gateway answers 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Uri;
use rampart_config::{BalanceStrategy, HealthConfig};
use serde::Serialize;
use tokio::sync::Mutex;

/// One backend and its live state.
#[derive(Debug)]
pub struct Backend {
    /// `host:port`.
    pub authority: String,
    /// The configured URL.
    pub url: String,
    healthy: AtomicBool,
    failures_in_row: AtomicU32,
    successes_in_row: AtomicU32,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    /// When a down backend may be probed by a real request (no active checks).
    retry_at: Mutex<Option<Instant>>,
    last_check: Mutex<Option<CheckResult>>,
}

/// The last health check of a backend.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Status answered, if any.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub millis: u64,
    /// When, as RFC 3339.
    pub at: String,
}

/// A backend's state for `/health` and `/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    /// The configured URL.
    pub url: String,
    /// Whether requests go to it.
    pub healthy: bool,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Requests forwarded to it so far.
    pub requests: u64,
    /// Failed attempts so far.
    pub failures: u64,
    /// Consecutive failures now.
    pub failures_in_row: u32,
    /// The last active health check.
    pub last_check: Option<CheckResult>,
}

impl Backend {
    fn new(url: String, authority: String) -> Self {
        Self {
            authority,
            url,
            healthy: AtomicBool::new(true),
            failures_in_row: AtomicU32::new(0),
            successes_in_row: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retry_at: Mutex::new(None),
            last_check: Mutex::new(None),
        }
    }

    /// Whether requests go to it now.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The URI of `path_and_query` on this backend.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme("http")
            .authority(self.authority.as_str())
            .path_and_query(path_and_query)
            .build()
    }

    /// Requests forwarded to it so far.
    pub fn status_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The state for the admin endpoints.
    pub async fn status(&self) -> BackendStatus {
        BackendStatus {
            url: self.url.clone(),
            healthy: self.is_healthy(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            failures_in_row: self.failures_in_row.load(Ordering::Relaxed),
            last_check: self.last_check.lock().await.clone(),
        }
    }
}

/// A request's hold on a backend; counts it in flight until dropped.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    index: usize,
}

impl Lease {
    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.pool.backends[self.index]
    }

    /// Its position in the pool.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.backends[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The backends and the balancing strategy.
#[derive(Debug)]
pub struct Pool {
    backends: Vec<Backend>,
    strategy: BalanceStrategy,
    next: AtomicUsize,
    health: HealthConfig,
}

/// What the health state of a backend became after a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// No change.
    None,
    /// It went down.
    Down,
    /// It came back.
    Up,
}

impl Pool {
    /// A pool of `(url, authority)` backends, all healthy at first.
    pub fn new(
        backends: Vec<(String, String)>,
        strategy: BalanceStrategy,
        health: HealthConfig,
    ) -> Self {
        Self {
            backends: backends
                .into_iter()
                .map(|(url, authority)| Backend::new(url, authority))
                .collect(),
            strategy,
            next: AtomicUsize::new(0),
            health,
        }
    }

    /// The backends.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Picks a healthy backend not in `tried` and leases it. `None` when
    /// there is none (every backend down, or all tried).
    pub fn pick(self: &Arc<Self>, tried: &[usize]) -> Option<Lease> {
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let usable = |i: usize| !tried.contains(&i) && self.usable(i);
        let index = match self.strategy {
            BalanceStrategy::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|k| (start + k) % n).find(|&i| usable(i))?
            }
            BalanceStrategy::LeastConnections => {
                // Ties go round-robin so equal backends share the load.
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| usable(i))
                    .min_by_key(|&i| self.backends[i].in_flight.load(Ordering::Relaxed))?
            }
        };
        Some(self.lease_at(index))
    }

    /// A lease on backend `index`, chosen by a hook: `None` when it is
    /// not in the pool, was tried already, or is not usable.
    pub fn lease(self: &Arc<Self>, index: usize, tried: &[usize]) -> Option<Lease> {
        if index >= self.backends.len() || tried.contains(&index) || !self.usable(index) {
            return None;
        }
        Some(self.lease_at(index))
    }

    fn lease_at(self: &Arc<Self>, index: usize) -> Lease {
        let backend = &self.backends[index];
        backend.in_flight.fetch_add(1, Ordering::Relaxed);
        backend.requests.fetch_add(1, Ordering::Relaxed);
        Lease {
            pool: Arc::clone(self),
            index,
        }
    }

    /// Healthy, or down but due for a probe when active checks are off.
    fn usable(&self, i: usize) -> bool {
        let backend = &self.backends[i];
        if backend.is_healthy() {
            return true;
        }
        if self.health.enabled {
            return false;
        }
        match backend.retry_at.try_lock() {
            Ok(mut at) => match *at {
                Some(t) if Instant::now() >= t => {
                    // One probe per interval.
                    *at = Some(Instant::now() + self.health.interval.0);
                    true
                }
                _ => false,
            },
            Err(_) => false,
        }
    }

    /// A real request reached backend `i` (whatever it answered).
    pub fn report_success(&self, i: usize) -> Transition {
        let backend = &self.backends[i];
        backend.failures_in_row.store(0, Ordering::Relaxed);
        if !self.health.enabled && !backend.healthy.swap(true, Ordering::Relaxed) {
            return Transition::Up;
        }
        Transition::None
    }

    /// A real request could not connect to backend `i`, or timed out.
    pub fn report_failure(&self, i: usize) -> Transition {
        let backend = &self.backends[i];
        backend.failures.fetch_add(1, Ordering::Relaxed);
        backend.successes_in_row.store(0, Ordering::Relaxed);
        let in_row = backend.failures_in_row.fetch_add(1, Ordering::Relaxed) + 1;
        if in_row >= self.health.unhealthy_threshold
            && backend.healthy.swap(false, Ordering::Relaxed)
        {
            if let Ok(mut at) = backend.retry_at.try_lock() {
                *at = Some(Instant::now() + self.health.interval.0);
            }
            return Transition::Down;
        }
        Transition::None
    }

    /// Records an active check of backend `i`.
    pub async fn report_check(&self, i: usize, result: CheckResult) -> Transition {
        let backend = &self.backends[i];
        let ok = result.error.is_none();
        *backend.last_check.lock().await = Some(result);
        if ok {
            backend.failures_in_row.store(0, Ordering::Relaxed);
            let in_row = backend.successes_in_row.fetch_add(1, Ordering::Relaxed) + 1;
            if in_row >= self.health.healthy_threshold
                && !backend.healthy.swap(true, Ordering::Relaxed)
            {
                return Transition::Up;
            }
            Transition::None
        } else {
            backend.successes_in_row.store(0, Ordering::Relaxed);
            backend.failures.fetch_add(1, Ordering::Relaxed);
            let in_row = backend.failures_in_row.fetch_add(1, Ordering::Relaxed) + 1;
            if in_row >= self.health.unhealthy_threshold
                && backend.healthy.swap(false, Ordering::Relaxed)
            {
                return Transition::Down;
            }
            Transition::None
        }
    }

    /// The health-check settings.
    pub fn health(&self) -> &HealthConfig {
        &self.health
    }

    /// Time between checks.
    pub fn interval(&self) -> Duration {
        self.health.interval.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, strategy: BalanceStrategy, active: bool) -> Arc<Pool> {
        let health = HealthConfig {
            enabled: active,
            ..HealthConfig::default()
        };
        Arc::new(Pool::new(
            (0..n)
                .map(|i| (format!("http://b{i}"), format!("b{i}:80")))
                .collect(),
            strategy,
            health,
        ))
    }

    #[test]
    fn round_robin_cycles_over_healthy_backends() {
        let p = pool(3, BalanceStrategy::RoundRobin, true);
        let picks: Vec<usize> = (0..6).map(|_| p.pick(&[]).expect("pick").index()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        for _ in 0..3 {
            p.report_failure(1);
        }
        assert!(!p.backends()[1].is_healthy());
        let picks: Vec<usize> = (0..4).map(|_| p.pick(&[]).expect("pick").index()).collect();
        assert!(picks.iter().all(|&i| i != 1), "{picks:?}");
        assert_eq!(p.pick(&[0, 2]).map(|l| l.index()), None);
    }

    #[test]
    fn least_connections_prefers_the_idlest() {
        let p = pool(2, BalanceStrategy::LeastConnections, true);
        let a = p.pick(&[]).expect("first");
        let b = p.pick(&[]).expect("second");
        assert_ne!(a.index(), b.index());
        let held = p.pick(&[]).expect("third");
        // Now one backend holds two; the next goes to the other.
        let busy = held.index();
        let next = p.pick(&[]).expect("fourth");
        assert_ne!(next.index(), busy);
        drop((a, b, held, next));
        assert!(
            p.backends()
                .iter()
                .all(|b| b.in_flight.load(Ordering::Relaxed) == 0)
        );
    }

    #[tokio::test]
    async fn checks_take_down_and_bring_back() {
        let p = pool(1, BalanceStrategy::RoundRobin, true);
        let fail = || CheckResult {
            status: Some(500),
            error: Some("status 500".into()),
            millis: 1,
            at: String::new(),
        };
        let ok = || CheckResult {
            status: Some(200),
            error: None,
            millis: 1,
            at: String::new(),
        };
        assert_eq!(p.report_check(0, fail()).await, Transition::None);
        assert_eq!(p.report_check(0, fail()).await, Transition::None);
        assert_eq!(p.report_check(0, fail()).await, Transition::Down);
        assert!(p.pick(&[]).is_none());
        assert_eq!(p.report_check(0, ok()).await, Transition::None);
        assert_eq!(p.report_check(0, ok()).await, Transition::Up);
        assert!(p.pick(&[]).is_some());
    }

    #[test]
    fn without_active_checks_a_down_backend_is_probed_after_an_interval() {
        let p = pool(1, BalanceStrategy::RoundRobin, false);
        for _ in 0..3 {
            p.report_failure(0);
        }
        assert!(p.pick(&[]).is_none(), "down and not due");
        if let Ok(mut at) = p.backends()[0].retry_at.try_lock() {
            *at = Some(Instant::now());
        }
        let probe = p.pick(&[]).expect("probe allowed");
        assert_eq!(p.report_success(probe.index()), Transition::Up);
        assert!(p.backends()[0].is_healthy());
    }
}
