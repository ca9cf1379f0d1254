//! From [`Features`] to a score in 0..1: behaviour signals, the [`Scorer`]
//! trait and the default [`WeightedScorer`].
//!
//! Each signal maps features to 0..1 with a saturating ramp (documented on
//! [`Reason`] and in docs/gateway-detection.md); the default scorer is a
//! logistic model over them:
//!
//! ```text
//! score = 1 / (1 + exp(-(bias + Σ weight_i × signal_i)))
//! ```
//!
//! so each weight is what a signal adds to the log-odds, a signal without
//! evidence (no responses yet, too few requests) adds nothing, and a learned
//! logistic regression can fill `bias` and the weights as they are. Another
//! model can replace it entirely through [`Scorer`].

use std::fmt;

use rampart_config::HttpDetectionConfig;
use serde::{Serialize, Serializer};

use super::Features;

/// Why a client scored as it did: behaviour signals that counted, and the
/// two hard rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Reason {
    /// Request rate: `max(ramp(rate_1s, 10, 40), ramp(rate_10s, 60, 200))`.
    Rate,
    /// Busiest 100 ms slot within 10 s: `ramp(burst_100ms, 12, 40)`.
    Burst,
    /// Continuous traffic: `ramp(steadiness, 0.6, 0.9)`, from 400 ms of history.
    Steady,
    /// Regular timing: `ramp(cv, 0.8, 0.3)` with `cv = stddev / mean` of
    /// inter-arrival times, from 8 intervals and 5 s of history.
    Regular,
    /// `1 - cookie_share`.
    NoCookie,
    /// `1 - accept_language_share`.
    NoAcceptLanguage,
    /// `1 - referer_share`.
    NoReferer,
    /// Few paths: `ramp(path_entropy_bits, 2.5, 1.0)`, from 4 requests.
    SamePath,
    /// `ramp(client_error_share, 0.3, 0.8)`, from 4 responses.
    ClientErrors,
    /// `ramp(server_error_share, 0.5, 0.9)`, from 4 responses.
    ServerErrors,
    /// `no_user_agent_share`.
    NoUserAgent,
    /// `tool_user_agent_share`.
    ToolUserAgent,
    /// `ramp(user_agents, 3, 8)`.
    UserAgentRotation,
    /// `max(ramp(head_share + other_method_share, 0.2, 0.6), ramp(post_share, 0.6, 0.95))`, from 4 requests.
    MethodMix,
    /// `ramp(header_count_mean, 6, 3)`.
    FewHeaders,
    /// `ramp(body_len_stddev, 16, 1)`, from 5 bodies.
    FixedBody,
    /// The hard flood rule: `flood_rps` in 1 s or `flood_10s` in 10 s.
    Flood,
    /// The score stayed at or above `monitor_threshold` for `escalate_after`.
    Persistent,
}

/// The behaviour signals, in the order of [`Signals`] and of
/// `HttpDetectionWeights::named`.
pub const SIGNALS: [Reason; 16] = [
    Reason::Rate,
    Reason::Burst,
    Reason::Steady,
    Reason::Regular,
    Reason::NoCookie,
    Reason::NoAcceptLanguage,
    Reason::NoReferer,
    Reason::SamePath,
    Reason::ClientErrors,
    Reason::ServerErrors,
    Reason::NoUserAgent,
    Reason::ToolUserAgent,
    Reason::UserAgentRotation,
    Reason::MethodMix,
    Reason::FewHeaders,
    Reason::FixedBody,
];

/// Every reason: the signals, then the two rules.
const ALL_REASONS: [Reason; SIGNALS.len() + 2] = {
    let mut all = [Reason::Flood; SIGNALS.len() + 2];
    let mut i = 0;
    while i < SIGNALS.len() {
        all[i] = SIGNALS[i];
        i += 1;
    }
    all[SIGNALS.len() + 1] = Reason::Persistent;
    all
};

impl Reason {
    /// The name used in config (`weights.<name>`), logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rate => "rate",
            Reason::Burst => "burst",
            Reason::Steady => "steady",
            Reason::Regular => "regular",
            Reason::NoCookie => "no_cookie",
            Reason::NoAcceptLanguage => "no_accept_language",
            Reason::NoReferer => "no_referer",
            Reason::SamePath => "same_path",
            Reason::ClientErrors => "client_errors",
            Reason::ServerErrors => "server_errors",
            Reason::NoUserAgent => "no_user_agent",
            Reason::ToolUserAgent => "tool_user_agent",
            Reason::UserAgentRotation => "user_agent_rotation",
            Reason::MethodMix => "method_mix",
            Reason::FewHeaders => "few_headers",
            Reason::FixedBody => "fixed_body",
            Reason::Flood => "flood",
            Reason::Persistent => "persistent",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`Reason`]s (a bitset: `Copy`, no allocation). Serialises as a
/// list of names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reasons(u32);

impl Reasons {
    /// Adds a reason.
    pub fn insert(&mut self, r: Reason) {
        self.0 |= 1 << (r as u8);
    }

    /// Whether the set holds `r`.
    pub fn contains(self, r: Reason) -> bool {
        self.0 & (1 << (r as u8)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The reasons, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        ALL_REASONS.into_iter().filter(move |&r| self.contains(r))
    }
}

impl fmt::Display for Reasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for Reasons {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Reason::as_str))
    }
}

/// What the gateway should do with a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing unusual.
    Allow,
    /// Unusual: record it, let it through.
    Monitor,
    /// Refuse it (and ban).
    Block,
}

impl Verdict {
    /// `allow`, `monitor` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Monitor => "monitor",
            Verdict::Block => "block",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The behaviour signals of one feature snapshot, each in 0..=1, in the
/// order of [`SIGNALS`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Signals(pub [f64; 16]);

/// `(x - from) / (to - from)` clamped to 0..=1: 0 at `from`, 1 at `to`
/// (`to < from` makes a falling ramp).
fn ramp(x: f64, from: f64, to: f64) -> f64 {
    let v = (x - from) / (to - from);
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
}

impl Signals {
    /// The signals for a snapshot (mappings on [`Reason`]).
    pub fn of(f: &Features) -> Self {
        let enough_requests = f.requests >= 4;
        let enough_responses = f.responses >= 4;
        let cv = if f.interval_mean_ms > 0.0 {
            f.interval_stddev_ms / f.interval_mean_ms
        } else {
            0.0
        };
        Signals([
            ramp(f64::from(f.rate_1s), 10.0, 40.0).max(ramp(f64::from(f.rate_10s), 60.0, 200.0)),
            ramp(f64::from(f.burst_100ms), 12.0, 40.0),
            if f.seen_ms >= 400 {
                ramp(f.steadiness, 0.6, 0.9)
            } else {
                0.0
            },
            if f.intervals >= 8 && f.seen_ms >= 5000 {
                ramp(cv, 0.8, 0.3)
            } else {
                0.0
            },
            1.0 - f.cookie_share,
            1.0 - f.accept_language_share,
            1.0 - f.referer_share,
            if enough_requests {
                ramp(f.path_entropy_bits, 2.5, 1.0)
            } else {
                0.0
            },
            if enough_responses {
                ramp(f.client_error_share, 0.3, 0.8)
            } else {
                0.0
            },
            if enough_responses {
                ramp(f.server_error_share, 0.5, 0.9)
            } else {
                0.0
            },
            f.no_user_agent_share,
            f.tool_user_agent_share,
            ramp(f64::from(f.user_agents), 3.0, 8.0),
            if enough_requests {
                ramp(f.head_share + f.other_method_share, 0.2, 0.6).max(ramp(
                    f.post_share,
                    0.6,
                    0.95,
                ))
            } else {
                0.0
            },
            ramp(f.header_count_mean, 6.0, 3.0),
            if f.bodies >= 5 {
                ramp(f.body_len_stddev, 16.0, 1.0)
            } else {
                0.0
            },
        ])
    }
}

/// Turns a client's features into a score. Implementations must be cheap
/// (it runs on every request, under the client's shard lock), pure and
/// deterministic.
pub trait Scorer: Send + Sync {
    /// The score in 0..=1 for these features, and the signals that drove
    /// it. The client table applies the thresholds, the minimum request
    /// count and the hard rules; it adds [`Reason::Flood`] and
    /// [`Reason::Persistent`] itself.
    fn score(&self, features: &Features) -> (f64, Reasons);
}

/// The default scorer: logistic over the weighted signals.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedScorer {
    /// Log-odds with every signal at 0.
    pub bias: f64,
    /// Weight of each signal, in the order of [`SIGNALS`].
    pub weights: [f64; 16],
}

/// A signal is named as a reason when it adds at least this to the log-odds.
const REASON_MIN_CONTRIBUTION: f64 = 0.5;

impl WeightedScorer {
    /// Bias and weights from `[gateway.detection]`.
    pub fn new(cfg: &HttpDetectionConfig) -> Self {
        Self {
            bias: cfg.bias,
            weights: cfg.weights.named().map(|(_, w)| w),
        }
    }

    /// The log-odds and reasons for a set of signals.
    pub fn log_odds(&self, signals: &Signals) -> (f64, Reasons) {
        let mut z = self.bias;
        let mut reasons = Reasons::default();
        for ((&s, &w), reason) in signals.0.iter().zip(&self.weights).zip(SIGNALS) {
            let c = s * w;
            z += c;
            if c >= REASON_MIN_CONTRIBUTION {
                reasons.insert(reason);
            }
        }
        (z, reasons)
    }
}

impl Scorer for WeightedScorer {
    fn score(&self, features: &Features) -> (f64, Reasons) {
        let (z, reasons) = self.log_odds(&Signals::of(features));
        let score = 1.0 / (1.0 + (-z).exp());
        (if score.is_nan() { 0.0 } else { score }, reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_saturate_both_ways() {
        assert_eq!(ramp(5.0, 10.0, 40.0), 0.0);
        assert_eq!(ramp(25.0, 10.0, 40.0), 0.5);
        assert_eq!(ramp(99.0, 10.0, 40.0), 1.0);
        assert_eq!(ramp(0.3, 0.8, 0.3), 1.0);
        assert_eq!(ramp(0.9, 0.8, 0.3), 0.0);
        assert_eq!(ramp(f64::NAN, 0.8, 0.3), 0.0);
    }

    #[test]
    fn weights_line_up_with_signals() {
        let names = HttpDetectionConfig::default().weights.named();
        for ((name, _), reason) in names.iter().zip(SIGNALS) {
            assert_eq!(*name, reason.as_str());
        }
    }

    #[test]
    fn zero_features_score_the_bias_and_reasons_list_in_order() {
        let scorer = WeightedScorer::new(&HttpDetectionConfig::default());
        let quiet = Features {
            cookie_share: 1.0,
            referer_share: 1.0,
            accept_language_share: 1.0,
            header_count_mean: 10.0,
            ..Features::default()
        };
        let (score, reasons) = scorer.score(&quiet);
        assert!((score - 1.0 / (1.0 + 5.5f64.exp())).abs() < 1e-12);
        assert!(reasons.is_empty());
        let mut r = Reasons::default();
        r.insert(Reason::NoCookie);
        r.insert(Reason::Flood);
        assert_eq!(r.to_string(), "no_cookie,flood");
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            [Reason::NoCookie, Reason::Flood]
        );
    }
}
