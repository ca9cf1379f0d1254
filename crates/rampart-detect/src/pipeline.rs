//! The detector: engine and policy together.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rampart_core::{Action, Event, EventKind, Finding};

use crate::engine::Engine;
use crate::policy::{Outcome, Policy};
use crate::rules::Ruleset;

/// Runs scenarios over events and policy over their findings. Each ban it
/// decides is fed back to the engine as a [`EventKind::Ban`] event, so
/// scenarios over bans (recidive) see it.
pub struct Detector {
    engine: Engine,
    policy: Policy,
    findings: Vec<Finding>,
}

impl Detector {
    /// A detector for `rules` deciding with `policy`.
    pub fn new(rules: &Ruleset, policy: Policy) -> Self {
        Self {
            engine: Engine::new(rules),
            policy,
            findings: Vec::new(),
        }
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
        self.engine.process(event, &mut self.findings);
        self.decide(event, now, out);
    }

    /// [`handle`](Self::handle) for an event whose selection was computed
    /// already with [`crate::Ruleset::select`] (on a parser thread).
    pub fn handle_selected(
        &mut self,
        event: &Event,
        selection: crate::rules::Selection,
        now: Option<DateTime<Utc>>,
        out: &mut Vec<Outcome>,
    ) {
        self.engine
            .process_selected(event, selection, &mut self.findings);
        self.decide(event, now, out);
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
                    self.engine.process(&ban, &mut self.findings);
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
