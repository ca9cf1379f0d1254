//! A client's behaviour, kept incrementally in a fixed amount of memory
//! (about 400 bytes a client), and the [`Features`] read from it.
//!
//! - Rates come from rings of counters: ten 100 ms slots (the last second),
//!   ten 1 s slots (the last 10 s) and six 10 s slots (the last minute).
//!   Slots are aligned on the clock (`now_ms / 100`…), so "the last second"
//!   is the current 100 ms slot and the nine before it: 0.9 to 1 s.
//! - Inter-arrival times and body sizes use Welford's running mean and
//!   variance.
//! - Paths and user agents are hashed, never stored: paths go to 32 counting
//!   buckets (entropy) and a 256-bit bitmap (distinct count by linear
//!   counting); user agents to a set of at most 8 hashes.
//! - Shares (cookie, referer, methods…) are ratios of counters; every
//!   counter is halved when the client reaches 2048 requests (responses:
//!   2048 responses), so old behaviour fades and counters stay bounded.

use std::hash::Hasher;

use rustc_hash::FxHasher;
use serde::Serialize;

use super::RequestInfo;

/// Counters are halved when the request (or response) count reaches this.
const DECAY_AT: u32 = 2048;
/// Distinct user agents remembered per client.
const AGENT_SLOTS: usize = 8;
/// Counting buckets for path entropy (so at most 5 bits).
const PATH_BUCKETS: usize = 32;
/// Bits of the distinct-path bitmap.
const PATH_BITS: usize = 256;

/// A snapshot of one client's behaviour, taken when a request is observed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Features {
    /// Requests since the client was first seen (not decayed).
    pub requests: u64,
    /// Milliseconds since the client was first seen.
    pub seen_ms: u64,
    /// Requests within the last second (0.9–1 s, in 100 ms slots).
    pub rate_1s: u32,
    /// Requests within the last 10 s (9–10 s, in 1 s slots).
    pub rate_10s: u32,
    /// Requests within the last minute (50–60 s, in 10 s slots).
    pub rate_60s: u32,
    /// Most requests in one 100 ms slot within the last 10 s.
    pub burst_100ms: u32,
    /// Share of the 100 ms slots of the last second holding a request (of
    /// the slots since first seen, for a client younger than a second).
    pub steadiness: f64,
    /// Inter-arrival times measured.
    pub intervals: u32,
    /// Mean time between requests, ms.
    pub interval_mean_ms: f64,
    /// Standard deviation of the time between requests, ms.
    pub interval_stddev_ms: f64,
    /// Distinct user agents seen (at most 8, meaning 8 or more).
    pub user_agents: u32,
    /// Share of requests without a user agent.
    pub no_user_agent_share: f64,
    /// Share of requests whose user agent does not start like a browser's
    /// (`Mozilla/`, `Opera/`).
    pub tool_user_agent_share: f64,
    /// Distinct paths seen, estimated (linear counting; saturates near 1400).
    pub distinct_paths: u32,
    /// Shannon entropy of the paths, in bits (at most 5: 32 hash buckets).
    pub path_entropy_bits: f64,
    /// Share of `GET` requests.
    pub get_share: f64,
    /// Share of `POST` requests.
    pub post_share: f64,
    /// Share of `HEAD` requests.
    pub head_share: f64,
    /// Share of requests with any other method.
    pub other_method_share: f64,
    /// Responses recorded.
    pub responses: u32,
    /// Share of responses with a 4xx status.
    pub client_error_share: f64,
    /// Share of responses with a 5xx status.
    pub server_error_share: f64,
    /// Mean header count.
    pub header_count_mean: f64,
    /// Share of requests with a cookie.
    pub cookie_share: f64,
    /// Share of requests with a referer.
    pub referer_share: f64,
    /// Share of requests with `Accept-Language`.
    pub accept_language_share: f64,
    /// Requests with a known body length.
    pub bodies: u32,
    /// Mean body length, bytes.
    pub body_len_mean: f64,
    /// Standard deviation of the body length, bytes.
    pub body_len_stddev: f64,
}

/// Everything kept about one client.
#[derive(Debug, Clone)]
pub(crate) struct ClientState {
    first_seen: u64,
    /// Newest time of a request or response.
    pub(crate) last_seen: u64,
    last_request: u64,
    requests: u64,
    window: RateWindow,
    intervals: Welford,
    counts: Counts,
    statuses: Statuses,
    bodies: Welford,
    paths: PathSketch,
    agents: AgentSet,
    /// Since when the score has stayed at or above the monitor threshold.
    pub(crate) monitor_since: Option<u64>,
}

impl ClientState {
    pub(crate) fn new(now_ms: u64) -> Self {
        Self {
            first_seen: now_ms,
            last_seen: now_ms,
            last_request: now_ms,
            requests: 0,
            window: RateWindow::new(now_ms),
            intervals: Welford::default(),
            counts: Counts::default(),
            statuses: Statuses::default(),
            bodies: Welford::default(),
            paths: PathSketch::default(),
            agents: AgentSet::default(),
            monitor_since: None,
        }
    }

    /// Whether nothing was seen of the client for `idle_ms` before `now_ms`.
    pub(crate) fn is_idle(&self, now_ms: u64, idle_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_seen) >= idle_ms
    }

    /// Adds a request. A time before the newest seen counts as the newest
    /// (threads may pass slightly older times).
    pub(crate) fn record(&mut self, req: &RequestInfo<'_>, now_ms: u64) {
        let now = now_ms.max(self.last_seen);
        if self.requests > 0 {
            // Lossless below 2^53 ms.
            self.intervals
                .push(now.saturating_sub(self.last_request) as f64);
        }
        self.requests = self.requests.saturating_add(1);
        self.last_request = now;
        self.last_seen = now;
        self.window.record(now);

        let c = &mut self.counts;
        c.requests += 1;
        c.cookie += u32::from(req.has_cookie);
        c.referer += u32::from(req.has_referer);
        c.accept_language += u32::from(req.has_accept_language);
        c.headers = c
            .headers
            .saturating_add(u32::try_from(req.header_count).unwrap_or(u32::MAX));
        match req.method {
            "GET" => c.get += 1,
            "POST" => c.post += 1,
            "HEAD" => c.head += 1,
            _ => c.other += 1,
        }
        match req.user_agent {
            None | Some("") => c.no_user_agent += 1,
            Some(ua) => {
                if !(ua.starts_with("Mozilla/") || ua.starts_with("Opera/")) {
                    c.tool_user_agent += 1;
                }
                self.agents.insert(hash(ua.as_bytes()));
            }
        }
        self.paths.insert(hash(req.path.as_bytes()));
        if let Some(len) = req.body_len {
            // Lossless below 2^53 bytes; beyond, precision does not matter.
            self.bodies.push(len as f64);
        }
        if c.requests >= DECAY_AT {
            c.halve();
            self.paths.halve();
            self.intervals.halve();
            self.bodies.halve();
        }
    }

    /// Adds the status of a response to one of the client's requests.
    pub(crate) fn record_response(&mut self, status: u16, now_ms: u64) {
        self.last_seen = self.last_seen.max(now_ms);
        let s = &mut self.statuses;
        s.responses += 1;
        s.client_errors += u32::from((400..500).contains(&status));
        s.server_errors += u32::from((500..600).contains(&status));
        if s.responses >= DECAY_AT {
            s.responses /= 2;
            s.client_errors /= 2;
            s.server_errors /= 2;
        }
    }

    /// The features as of `now_ms`.
    pub(crate) fn features(&mut self, now_ms: u64) -> Features {
        let now = now_ms.max(self.last_seen);
        self.window.advance(now);
        let c = &self.counts;
        let n = f64::from(c.requests.max(1));
        let share = |k: u32| f64::from(k) / n;
        let responses = f64::from(self.statuses.responses.max(1));
        let slots_seen = (now / 100)
            .saturating_sub(self.first_seen / 100)
            .saturating_add(1)
            .min(10);
        let active = self.window.deci.iter().filter(|&&k| k > 0).count();
        Features {
            requests: self.requests,
            seen_ms: now.saturating_sub(self.first_seen),
            rate_1s: sum(&self.window.deci),
            rate_10s: sum(&self.window.secs),
            rate_60s: sum(&self.window.tens),
            burst_100ms: u32::from(self.window.sec_peak.iter().copied().max().unwrap_or(0)),
            // slots_seen ≤ 10, active ≤ 10: exact in f64.
            steadiness: (active as f64 / slots_seen as f64).min(1.0),
            intervals: self.intervals.n,
            interval_mean_ms: self.intervals.mean,
            interval_stddev_ms: self.intervals.variance().sqrt(),
            user_agents: u32::from(self.agents.len),
            no_user_agent_share: share(c.no_user_agent),
            tool_user_agent_share: share(c.tool_user_agent),
            distinct_paths: self.paths.distinct(),
            path_entropy_bits: self.paths.entropy(),
            get_share: share(c.get),
            post_share: share(c.post),
            head_share: share(c.head),
            other_method_share: share(c.other),
            responses: self.statuses.responses,
            client_error_share: f64::from(self.statuses.client_errors) / responses,
            server_error_share: f64::from(self.statuses.server_errors) / responses,
            header_count_mean: f64::from(c.headers) / n,
            cookie_share: share(c.cookie),
            referer_share: share(c.referer),
            accept_language_share: share(c.accept_language),
            bodies: self.bodies.n,
            body_len_mean: self.bodies.mean,
            body_len_stddev: self.bodies.variance().sqrt(),
        }
    }
}

fn sum(slots: &[u16]) -> u32 {
    slots.iter().map(|&k| u32::from(k)).sum()
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    // Spread the bits: FxHasher's low bits are weak and both sketches
    // take their index from the hash.
    let x = h.finish();
    let x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 29)
}

/// Request counts in 100 ms, 1 s and 10 s slots.
#[derive(Debug, Clone)]
struct RateWindow {
    /// The current 100 ms slot: `now_ms / 100`.
    slot: u64,
    /// Per 100 ms, the last 10 (index `slot % 10`).
    deci: [u16; 10],
    /// Per second, the last 10 (index `second % 10`).
    secs: [u16; 10],
    /// Per second, its busiest 100 ms slot.
    sec_peak: [u16; 10],
    /// Per 10 s, the last 6 (index `(slot / 100) % 6`).
    tens: [u16; 6],
}

impl RateWindow {
    fn new(now_ms: u64) -> Self {
        Self {
            slot: now_ms / 100,
            deci: [0; 10],
            secs: [0; 10],
            sec_peak: [0; 10],
            tens: [0; 6],
        }
    }

    /// Moves to `now_ms`, emptying the slots that went by. Never backwards.
    fn advance(&mut self, now_ms: u64) {
        let to = now_ms / 100;
        let from = self.slot;
        if to <= from {
            return;
        }
        clear_between(&mut self.deci, from, to);
        clear_between(&mut self.secs, from / 10, to / 10);
        clear_between(&mut self.sec_peak, from / 10, to / 10);
        clear_between(&mut self.tens, from / 100, to / 100);
        self.slot = to;
    }

    fn record(&mut self, now_ms: u64) {
        self.advance(now_ms);
        let slot = self.slot;
        let d = index(slot, self.deci.len());
        let s = index(slot / 10, self.secs.len());
        let t = index(slot / 100, self.tens.len());
        self.deci[d] = self.deci[d].saturating_add(1);
        self.secs[s] = self.secs[s].saturating_add(1);
        self.tens[t] = self.tens[t].saturating_add(1);
        self.sec_peak[s] = self.sec_peak[s].max(self.deci[d]);
    }
}

/// `i % len` as an index (len is a small array length).
fn index(i: u64, len: usize) -> usize {
    // The remainder is below len, so it fits.
    (i % len as u64) as usize
}

/// Empties the ring slots after `from` up to and including `to`.
fn clear_between(ring: &mut [u16], from: u64, to: u64) {
    if to <= from {
        return;
    }
    if to - from >= ring.len() as u64 {
        ring.fill(0);
        return;
    }
    for i in from + 1..=to {
        let at = index(i, ring.len());
        ring[at] = 0;
    }
}

/// Welford's running mean and variance.
#[derive(Debug, Clone, Copy, Default)]
struct Welford {
    n: u32,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn push(&mut self, x: f64) {
        self.n = self.n.saturating_add(1);
        let d = x - self.mean;
        self.mean += d / f64::from(self.n);
        self.m2 += d * (x - self.mean);
    }

    /// Sample variance; 0 below two values.
    fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / f64::from(self.n - 1)).max(0.0)
        }
    }

    /// Halves the weight of what was seen, keeping mean and variance.
    fn halve(&mut self) {
        if self.n < 4 {
            return;
        }
        let old = f64::from(self.n - 1);
        self.n /= 2;
        self.m2 *= f64::from(self.n - 1) / old;
    }
}

/// Per-request counters (halved at [`DECAY_AT`]).
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    requests: u32,
    cookie: u32,
    referer: u32,
    accept_language: u32,
    no_user_agent: u32,
    tool_user_agent: u32,
    get: u32,
    post: u32,
    head: u32,
    other: u32,
    headers: u32,
}

impl Counts {
    fn halve(&mut self) {
        for k in [
            &mut self.requests,
            &mut self.cookie,
            &mut self.referer,
            &mut self.accept_language,
            &mut self.no_user_agent,
            &mut self.tool_user_agent,
            &mut self.get,
            &mut self.post,
            &mut self.head,
            &mut self.other,
            &mut self.headers,
        ] {
            *k /= 2;
        }
    }
}

/// Response counters (halved at [`DECAY_AT`] responses).
#[derive(Debug, Clone, Copy, Default)]
struct Statuses {
    responses: u32,
    client_errors: u32,
    server_errors: u32,
}

/// Paths, hashed: counting buckets for entropy, a bitmap for distinct count.
#[derive(Debug, Clone, Default)]
struct PathSketch {
    buckets: [u16; PATH_BUCKETS],
    total: u32,
    /// Σ c·log2(c) over the buckets, kept as buckets change.
    sum_clogc: f64,
    seen: [u64; PATH_BITS / 64],
}

fn xlog2x(c: u16) -> f64 {
    if c <= 1 {
        0.0
    } else {
        let c = f64::from(c);
        c * c.log2()
    }
}

impl PathSketch {
    fn insert(&mut self, h: u64) {
        // Top 5 bits pick the bucket, the next 8 the bitmap bit.
        let bucket = (h >> 59) as usize;
        let bit = ((h >> 51) & 0xff) as usize;
        if let Some(c) = self.buckets.get_mut(bucket) {
            // Counters are halved at DECAY_AT requests, far below u16::MAX.
            let old = *c;
            *c = old.saturating_add(1);
            self.sum_clogc += xlog2x(*c) - xlog2x(old);
            self.total += 1;
        }
        if let Some(word) = self.seen.get_mut(bit / 64) {
            *word |= 1 << (bit % 64);
        }
    }

    /// Shannon entropy of the bucket distribution, bits.
    fn entropy(&self) -> f64 {
        if self.total < 2 {
            return 0.0;
        }
        let n = f64::from(self.total);
        (n.log2() - self.sum_clogc / n).max(0.0)
    }

    /// Distinct paths by linear counting over the bitmap.
    fn distinct(&self) -> u32 {
        let set: u32 = self.seen.iter().map(|w| w.count_ones()).sum();
        let m = PATH_BITS as f64;
        let empty = f64::from(PATH_BITS as u32 - set.min(PATH_BITS as u32));
        // A full bitmap means "more than the sketch can tell": report the
        // estimate for one empty bit.
        let estimate = -m * (empty.max(0.5) / m).ln();
        // Rounded and within u32: the estimate is at most m·ln(2m).
        estimate.round() as u32
    }

    fn halve(&mut self) {
        let mut total = 0;
        let mut sum = 0.0;
        for c in &mut self.buckets {
            *c /= 2;
            total += u32::from(*c);
            sum += xlog2x(*c);
        }
        self.total = total;
        self.sum_clogc = sum;
    }
}

/// Up to [`AGENT_SLOTS`] distinct user-agent hashes.
#[derive(Debug, Clone, Copy, Default)]
struct AgentSet {
    hashes: [u32; AGENT_SLOTS],
    len: u8,
}

impl AgentSet {
    fn insert(&mut self, h: u64) {
        // 32 bits are plenty to tell a handful of agents apart; |1 keeps 0 free.
        let h = (h >> 32) as u32 | 1;
        let len = usize::from(self.len);
        if self.hashes[..len].contains(&h) {
            return;
        }
        if let Some(slot) = self.hashes.get_mut(len) {
            *slot = h;
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> RequestInfo<'_> {
        RequestInfo {
            method: "GET",
            path,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
            header_count: 9,
            has_cookie: true,
            has_accept_language: true,
            ..RequestInfo::default()
        }
    }

    #[test]
    fn a_client_is_small() {
        let size = std::mem::size_of::<ClientState>();
        eprintln!("ClientState: {size} bytes");
        assert!(size <= 512, "{size}");
    }

    #[test]
    fn rates_slide_with_time() {
        let mut s = ClientState::new(1_000_000);
        for i in 0..50 {
            s.record(&get("/"), 1_000_000 + i * 20); // 50/s for 1 s
        }
        let f = s.features(1_000_990);
        assert_eq!(f.rate_1s, 50);
        assert_eq!(f.rate_10s, 50);
        assert_eq!(f.burst_100ms, 5);
        assert_eq!(f.steadiness, 1.0);
        let f = s.features(1_002_000);
        assert_eq!(f.rate_1s, 0);
        assert_eq!(f.rate_10s, 50);
        assert_eq!(f.burst_100ms, 5);
        let f = s.features(1_011_000);
        assert_eq!((f.rate_1s, f.rate_10s, f.burst_100ms), (0, 0, 0));
        assert_eq!(f.rate_60s, 50);
        let f = s.features(1_070_000);
        assert_eq!(f.rate_60s, 0);
        assert_eq!(f.requests, 50);
    }

    #[test]
    fn time_going_backwards_is_taken_as_now() {
        let mut s = ClientState::new(10_000);
        s.record(&get("/"), 10_000);
        s.record(&get("/"), 9_000);
        let f = s.features(5_000);
        assert_eq!(f.rate_1s, 2);
        assert_eq!(f.interval_mean_ms, 0.0);
    }

    #[test]
    fn intervals_have_mean_and_stddev() {
        let mut s = ClientState::new(0);
        for t in [0, 100, 300, 600] {
            s.record(&get("/"), t);
        }
        let f = s.features(600);
        assert_eq!(f.intervals, 3);
        assert!((f.interval_mean_ms - 200.0).abs() < 1e-9);
        assert!((f.interval_stddev_ms - 100.0).abs() < 1e-9);
    }

    #[test]
    fn paths_give_entropy_and_distinct_count() {
        let mut one = ClientState::new(0);
        let mut many = ClientState::new(0);
        for i in 0..200 {
            one.record(&get("/login"), i * 10);
            many.record(&get(&format!("/page/{i}")), i * 10);
        }
        let (one, many) = (one.features(2000), many.features(2000));
        assert_eq!(one.path_entropy_bits, 0.0);
        assert_eq!(one.distinct_paths, 1);
        assert!(many.path_entropy_bits > 4.5, "{}", many.path_entropy_bits);
        assert!(
            (170..=230).contains(&many.distinct_paths),
            "{}",
            many.distinct_paths
        );
    }

    #[test]
    fn shares_methods_agents_and_statuses() {
        let mut s = ClientState::new(0);
        let curl = RequestInfo {
            method: "HEAD",
            path: "/",
            user_agent: Some("curl/8.5.0"),
            header_count: 3,
            ..RequestInfo::default()
        };
        s.record(&get("/"), 0);
        s.record(&curl, 1);
        s.record(
            &RequestInfo {
                user_agent: None,
                body_len: Some(10),
                method: "POST",
                ..curl
            },
            2,
        );
        s.record(
            &RequestInfo {
                method: "PUT",
                body_len: Some(30),
                ..get("/")
            },
            3,
        );
        for status in [200, 404, 404, 503] {
            s.record_response(status, 4);
        }
        let f = s.features(4);
        assert_eq!(f.user_agents, 2);
        assert_eq!(f.no_user_agent_share, 0.25);
        assert_eq!(f.tool_user_agent_share, 0.25);
        assert_eq!(
            (
                f.get_share,
                f.post_share,
                f.head_share,
                f.other_method_share
            ),
            (0.25, 0.25, 0.25, 0.25)
        );
        assert_eq!(f.cookie_share, 0.5);
        assert_eq!(f.accept_language_share, 0.5);
        assert_eq!(f.referer_share, 0.0);
        assert_eq!(f.header_count_mean, 6.0);
        assert_eq!((f.client_error_share, f.server_error_share), (0.5, 0.25));
        assert_eq!(f.bodies, 2);
        assert_eq!(f.body_len_mean, 20.0);
    }

    #[test]
    fn user_agents_are_bounded() {
        let mut s = ClientState::new(0);
        for i in 0..100 {
            let ua = format!("Mozilla/5.0 bot{i}");
            s.record(
                &RequestInfo {
                    user_agent: Some(&ua),
                    ..get("/")
                },
                i,
            );
        }
        assert_eq!(s.features(100).user_agents, 8);
    }

    #[test]
    fn counters_decay_and_keep_shares() {
        let mut s = ClientState::new(0);
        for i in 0..10_000u64 {
            let req = RequestInfo {
                has_cookie: i % 4 != 0,
                ..get(if i % 2 == 0 { "/a" } else { "/b" })
            };
            s.record(&req, i * 10);
        }
        let f = s.features(100_000);
        assert_eq!(f.requests, 10_000);
        assert!((f.cookie_share - 0.75).abs() < 0.01, "{}", f.cookie_share);
        assert!((f.path_entropy_bits - 1.0).abs() < 0.01);
        assert!((f.interval_mean_ms - 10.0).abs() < 1e-6);
        assert!(s.counts.requests < DECAY_AT);
    }
}
