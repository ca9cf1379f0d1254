//! The gateway's view of detection: what `rampart-detect`'s per-client
//! behaviour table and request signatures make of one request. Kept in one
//! module so the detection library can change without touching the proxy.

use std::net::IpAddr;

use ipnet::IpNet;
use rampart_config::HttpDetectionConfig;
use rampart_detect::http::{
    ClientTable, RequestInfo, SignatureError, SignatureKind, Signatures, Verdict as DetectVerdict,
};

/// What detection made of a request, before policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The client's key (its address, or its IPv6 /64).
    pub key: IpNet,
    /// The client's anomaly score, 0..1.
    pub score: f64,
    /// What should happen.
    pub verdict: Verdict,
    /// One line of why, when not allowed.
    pub reason: Option<String>,
    /// Requests seen from this client (for evidence).
    pub seen: u64,
}

/// What should happen to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward.
    Allow,
    /// Forward, but the client looks suspicious.
    Monitor,
    /// Refuse and ban: a flood.
    Flood,
    /// Refuse and ban: the behaviour score is too high.
    Anomaly,
    /// Refuse and ban: a request signature matched (label names it).
    Attack(&'static str),
}

/// The request facts detection looks at.
pub type RequestFacts<'a> = RequestInfo<'a>;

/// Detection state shared by every connection: the per-client behaviour
/// table and the request signatures.
pub struct Inspector {
    table: ClientTable,
    signatures: Signatures,
    max_body_bytes: usize,
}

impl Inspector {
    /// Builds the behaviour table and signatures from config.
    pub fn new(config: &HttpDetectionConfig) -> Result<Self, SignatureError> {
        Ok(Self {
            table: ClientTable::new(config),
            signatures: Signatures::with_libinjection(&config.signatures)?,
            max_body_bytes: config.signatures.max_body_bytes,
        })
    }

    /// The key a client is tracked and banned under.
    pub fn key(&self, client: IpAddr) -> IpNet {
        self.table.client_key(client)
    }

    /// Judges a request from `client` at `now_ms` (monotonic milliseconds):
    /// signatures first (one attack is enough), then the client's behaviour.
    pub fn judge(&self, client: IpAddr, facts: &RequestFacts<'_>, now_ms: u64) -> Judgement {
        let key = self.key(client);
        if let Some(hit) = self.signatures.check(facts) {
            let label = label_of(hit.kind);
            // Still count the request in the client's behaviour.
            let assessment = self.table.observe(key, facts, now_ms);
            return Judgement {
                key,
                score: assessment.score.max(1.0),
                verdict: Verdict::Attack(label),
                reason: Some(format!("{label}: {} in {}", hit.detail, hit.location)),
                seen: assessment.features.requests,
            };
        }
        let assessment = self.table.observe(key, facts, now_ms);
        let verdict = match (assessment.verdict, assessment.flood) {
            (_, true) => Verdict::Flood,
            (DetectVerdict::Block, false) => Verdict::Anomaly,
            (DetectVerdict::Monitor, false) => Verdict::Monitor,
            (DetectVerdict::Allow, false) => Verdict::Allow,
        };
        let reason = (verdict != Verdict::Allow).then(|| {
            let f = &assessment.features;
            format!(
                "score {:.2} ({}); {} req in 1s, {} in 10s",
                assessment.score, assessment.reasons, f.rate_1s, f.rate_10s
            )
        });
        Judgement {
            key,
            score: assessment.score,
            verdict,
            reason,
            seen: assessment.features.requests,
        }
    }

    /// Largest form body inspected (0: bodies are not inspected).
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Checks an `application/x-www-form-urlencoded` body: the ban label
    /// and the reason when a signature matches.
    pub fn check_form(&self, body: &[u8]) -> Option<(&'static str, String)> {
        let hit = self.signatures.check_body_form(body)?;
        let label = label_of(hit.kind);
        Some((
            label,
            format!("{label}: {} in {}", hit.detail, hit.location),
        ))
    }

    /// Feeds back the status a backend answered to a request of `key`.
    pub fn response(&self, key: IpNet, status: u16, now_ms: u64) {
        self.table.observe_response(key, status, now_ms);
    }

    /// Forgets a client (after an operator unban).
    pub fn forget(&self, key: &IpNet) {
        self.table.forget(key);
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }
}

/// The ban label of a signature kind.
fn label_of(kind: SignatureKind) -> &'static str {
    match kind {
        SignatureKind::Sqli => "gateway-sqli",
        SignatureKind::Xss => "gateway-xss",
        SignatureKind::Traversal => "gateway-traversal",
        SignatureKind::Scanner => "gateway-scanner",
        SignatureKind::SensitivePath => "gateway-sensitive-path",
    }
}
