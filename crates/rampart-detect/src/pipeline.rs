//! The detector trait, and the pipeline: detectors plus the policy.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rampart_core::{Action, Event, EventKind, Finding};

use crate::engine::Engine;
use crate::policy::{Outcome, Policy};
use crate::rules::{Ruleset, Selection};

/// Work done for an event before it reaches the pipeline, typically on a
/// parser thread so that the single detect thread does less. A detector
/// that finds nothing here for itself works it out from the event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prepared {
    /// The scenarios of the pipeline's rules that select the event
    /// ([`Ruleset::select`]).
    pub scenarios: Option<Selection>,
}

/// Something that watches events and reports findings: the scenario
/// engine today; the HTTP scorer, flow classifiers and resource
/// forecasters are further implementations.
///
/// The contract:
/// - `observe` is called once per event, in the order events happened
///   (or were read), on one thread; a detector keeps what state it needs
///   and bounds it (state for idle keys is forgotten, a key cap evicts).
/// - Time is the event's (`event.time`): no wall clock, so a replay gives
///   the findings a live run would.
/// - Findings are appended to `out`; the pipeline's policy turns them
///   into decisions. A detector never bans by itself.
/// - Bans the policy makes are fed back as [`EventKind::Ban`] events, so a
///   detector may watch for repeat offenders.
pub trait Detector: Send {
    /// A short name for logs and metrics (`scenarios`, `http-score`).
    fn name(&self) -> &'static str;

    /// Feeds one event; findings it completes are appended to `out`.
    fn observe(&mut self, event: &Event, prepared: &Prepared, out: &mut Vec<Finding>);

    /// Keys forgotten because the detector's state hit its cap.
    fn evicted(&self) -> u64 {
        0
    }
}

impl Detector for Engine {
    fn name(&self) -> &'static str {
        "scenarios"
    }

    fn observe(&mut self, event: &Event, prepared: &Prepared, out: &mut Vec<Finding>) {
        match prepared.scenarios {
            Some(selection) => self.process_selected(event, selection, out),
            None => self.process(event, out),
        }
    }

    fn evicted(&self) -> u64 {
        Engine::evicted(self)
    }
}

/// Runs detectors over events and the policy over their findings. Each
/// ban it decides is fed back to every detector as an [`EventKind::Ban`]
/// event, so scenarios over bans (recidive) see it.
pub struct Pipeline {
    detectors: Vec<Box<dyn Detector>>,
    policy: Policy,
    findings: Vec<Finding>,
}

impl Pipeline {
    /// The usual pipeline: the scenarios of `rules`, deciding with `policy`.
    pub fn new(rules: &Ruleset, policy: Policy) -> Self {
        Self::with_detectors(vec![Box::new(Engine::new(rules))], policy)
    }

    /// A pipeline of `detectors`, in the order they see each event.
    pub fn with_detectors(detectors: Vec<Box<dyn Detector>>, policy: Policy) -> Self {
        Self {
            detectors,
            policy,
            findings: Vec::new(),
        }
    }

    /// Adds a detector after the others.
    pub fn push(&mut self, detector: Box<dyn Detector>) {
        self.detectors.push(detector);
    }

    /// The detectors' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.detectors.iter().map(|d| d.name()).collect()
    }

    /// Per-scenario ban durations of `rules`, for [`Policy::new`].
    pub fn overrides(rules: &Ruleset) -> HashMap<String, rampart_core::HumanDuration> {
        rules
            .scenarios
            .iter()
            .filter_map(|s| s.ban_for.map(|d| (s.name.clone(), d)))
            .collect()
    }

    /// Feeds one event. Outcomes are appended to `out`. Decisions are made
    /// at `now` when given (a running agent's wall clock), else at the
    /// event's own time (a replay).
    pub fn handle(&mut self, event: &Event, now: Option<DateTime<Utc>>, out: &mut Vec<Outcome>) {
        self.handle_prepared(event, &Prepared::default(), now, out);
    }

    /// [`handle`](Self::handle) for an event whose scenario selection was
    /// computed already with [`crate::Ruleset::select`] (on a parser thread).
    pub fn handle_selected(
        &mut self,
        event: &Event,
        selection: Selection,
        now: Option<DateTime<Utc>>,
        out: &mut Vec<Outcome>,
    ) {
        let prepared = Prepared {
            scenarios: Some(selection),
        };
        self.handle_prepared(event, &prepared, now, out);
    }

    /// [`handle`](Self::handle) with what was [`Prepared`] for the event.
    pub fn handle_prepared(
        &mut self,
        event: &Event,
        prepared: &Prepared,
        now: Option<DateTime<Utc>>,
        out: &mut Vec<Outcome>,
    ) {
        self.observe(event, prepared);
        self.decide(event, now, out);
    }

    /// Keys forgotten by every detector because their state hit its cap.
    pub fn evicted(&self) -> u64 {
        self.detectors.iter().map(|d| d.evicted()).sum()
    }

    fn observe(&mut self, event: &Event, prepared: &Prepared) {
        for detector in &mut self.detectors {
            detector.observe(event, prepared, &mut self.findings);
        }
    }

    fn decide(&mut self, event: &Event, now: Option<DateTime<Utc>>, out: &mut Vec<Outcome>) {
        // Bans fed back may complete further findings (recidive); bounded
        // because each scenario blackholes the key it fired for.
        let mut rounds = 0;
        while !self.findings.is_empty() && rounds < 4 {
            rounds += 1;
            let findings = std::mem::take(&mut self.findings);
            for finding in findings {
                let outcome = self.policy.decide(finding, now.unwrap_or(event.time));
                if let Outcome::Decided(d) = &outcome
                    && d.action == Action::Ban
                {
                    let mut ban = Event::new(
                        event.time,
                        Arc::clone(&event.source),
                        EventKind::Ban,
                        Some(d.target.addr()),
                    );
                    ban.fields.set("scenario", d.origin.name().to_owned());
                    ban.raw = Some(Arc::from(d.reason.as_str()));
                    self.observe(&ban, &Prepared::default());
                }
                out.push(outcome);
            }
        }
    }

    /// The policy (to seed history, note operator bans, lift bans).
    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::PolicyConfig;
    use rampart_core::{Evidence, Level, Subject, Whitelist};

    /// Reports every third auth failure of an address as a HIGH finding.
    struct EveryThird(HashMap<std::net::IpAddr, u32>);

    impl Detector for EveryThird {
        fn name(&self) -> &'static str {
            "every-third"
        }

        fn observe(&mut self, event: &Event, _: &Prepared, out: &mut Vec<Finding>) {
            let Some(ip) = event.addr else { return };
            if event.kind != EventKind::AuthFailure {
                return;
            }
            let n = self.0.entry(ip).or_default();
            *n += 1;
            if n.is_multiple_of(3) {
                out.push(Finding {
                    time: event.time,
                    subject: Subject::Net(ipnet::IpNet::from(ip)),
                    label: "every-third".to_owned(),
                    score: 1.0,
                    level: Level::High,
                    evidence: Evidence {
                        count: u64::from(*n),
                        ..Evidence::default()
                    },
                });
            }
        }
    }

    /// Counts the ban events fed back to it.
    struct BanCounter(Arc<std::sync::atomic::AtomicUsize>);

    impl Detector for BanCounter {
        fn name(&self) -> &'static str {
            "ban-counter"
        }

        fn observe(&mut self, event: &Event, _: &Prepared, _: &mut Vec<Finding>) {
            if event.kind == EventKind::Ban {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn any_detector_in_the_list_reaches_the_policy_and_bans_are_fed_back_to_all() {
        let bans = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let policy = Policy::new(
            PolicyConfig::default(),
            Whitelist::default(),
            HashMap::new(),
        );
        let mut pipeline = Pipeline::with_detectors(
            vec![
                Box::new(EveryThird(HashMap::new())),
                Box::new(BanCounter(Arc::clone(&bans))),
            ],
            policy,
        );
        assert_eq!(pipeline.names(), ["every-third", "ban-counter"]);
        let source: Arc<str> = Arc::from("test");
        let t0 = chrono::Utc::now();
        let mut out = Vec::new();
        for i in 0..3 {
            let ev = Event::new(
                t0 + chrono::Duration::seconds(i),
                Arc::clone(&source),
                EventKind::AuthFailure,
                Some("198.51.100.7".parse().unwrap()),
            );
            pipeline.handle(&ev, None, &mut out);
        }
        let decided: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Outcome::Decided(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(decided.len(), 1, "{out:?}");
        assert_eq!(decided[0].target.to_string(), "198.51.100.7/32");
        assert_eq!(decided[0].origin.name(), "every-third");
        assert_eq!(bans.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
