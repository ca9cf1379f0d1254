//! Policy: findings in, decisions out.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use rampart_config::PolicyConfig;
use rampart_core::{Action, Decision, Finding, HumanDuration, Level, Origin, Subject, Whitelist};

/// What policy made of a finding.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A decision to store and carry out.
    Decided(Decision),
    /// No decision, and why (`whitelisted`, `already banned until …`).
    Skipped {
        /// The finding.
        finding: Finding,
        /// Why nothing was decided.
        note: String,
    },
}

/// Turns findings into decisions: ban duration by level (or the scenario's
/// own), escalation for repeat offenders, whitelist, dry-run, and no
/// duplicate ban for a target already banned at least as long.
pub struct Policy {
    config: PolicyConfig,
    whitelist: Whitelist,
    overrides: HashMap<String, HumanDuration>,
    /// Ban times per target within the escalation lookback.
    history: HashMap<IpNet, VecDeque<DateTime<Utc>>>,
    /// Bans in force: target → (until, level of the finding behind it).
    active: HashMap<IpNet, (DateTime<Utc>, Level)>,
    decided: u64,
}

impl Policy {
    /// A policy from config; `whitelist` already holds the configured
    /// entries and the host's addresses; `overrides` maps scenario names to
    /// their own ban durations.
    pub fn new(
        config: PolicyConfig,
        whitelist: Whitelist,
        overrides: HashMap<String, HumanDuration>,
    ) -> Self {
        Self {
            config,
            whitelist,
            overrides,
            history: HashMap::new(),
            active: HashMap::new(),
            decided: 0,
        }
    }

    /// Remembers earlier bans (from the store) for escalation.
    pub fn seed_history(&mut self, bans: impl IntoIterator<Item = (IpNet, DateTime<Utc>)>) {
        for (target, at) in bans {
            self.history.entry(target).or_default().push_back(at);
        }
        for times in self.history.values_mut() {
            times.make_contiguous().sort_unstable();
        }
    }

    /// Remembers a ban in force (from the store, or made by an operator:
    /// those count as [`Level::Critical`], so detection never overrides them).
    pub fn note_active(&mut self, target: IpNet, until: DateTime<Utc>, level: Level) {
        let slot = self.active.entry(target).or_insert((until, level));
        if until > slot.0 {
            slot.0 = until;
        }
        slot.1 = slot.1.max(level);
    }

    /// Forgets bans in force on `target` and inside it (`None`: all), after an unban.
    pub fn lift(&mut self, target: Option<&IpNet>) {
        match target {
            None => self.active.clear(),
            Some(t) => self.active.retain(|k, _| !(t == k || t.contains(k))),
        }
    }

    /// The ban covering `target` in force at `now` that ends last: until
    /// when, and the highest level among the covering bans.
    pub fn banned_until(
        &self,
        target: &IpNet,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, Level)> {
        self.active
            .iter()
            .filter(|(k, (until, _))| *until > now && (*k == target || k.contains(target)))
            .map(|(_, v)| *v)
            .reduce(|a, b| (a.0.max(b.0), a.1.max(b.1)))
    }

    /// Decides on `finding` at time `now` (the event time in a replay, the
    /// wall clock in a running agent).
    pub fn decide(&mut self, finding: Finding, now: DateTime<Utc>) -> Outcome {
        self.decided += 1;
        if self.decided.is_multiple_of(4096) {
            self.prune(now);
        }
        let Subject::Net(target) = finding.subject else {
            return Outcome::Skipped {
                finding,
                note: "not about an address".into(),
            };
        };
        if self.whitelist.overlaps(&target) {
            return Outcome::Skipped {
                finding,
                note: "whitelisted".into(),
            };
        }
        let base = self
            .overrides
            .get(&finding.label)
            .copied()
            .or_else(|| self.config.ban.for_level(finding.level));
        let origin = Origin::Scenario(finding.label.clone());
        let reason = format!("{}: {}", finding.label, finding.evidence.summary);
        let Some(base) = base else {
            return Outcome::Decided(Decision {
                id: None,
                action: Action::Log,
                target,
                at: now,
                until: None,
                reason,
                origin,
                dry_run: self.config.dry_run,
                escalation: 0,
                findings: vec![finding],
            });
        };
        // A target already banned stays banned: findings of the same or a
        // lower level (the attack going on, seen in a replay or through a
        // ban not yet enforced) are noted, not decided again. A higher level
        // (recidive) replaces the ban.
        if let Some((current, level)) = self.banned_until(&target, now)
            && level >= finding.level
        {
            return Outcome::Skipped {
                finding,
                note: format!(
                    "already banned until {}",
                    current.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            };
        }
        let earlier = self.earlier_bans(&target, now);
        let duration = self.escalate(base, earlier);
        let until = now + duration;
        self.history.entry(target).or_default().push_back(now);
        self.note_active(target, until, finding.level);
        let reason = if earlier > 0 {
            format!(
                "{reason}; ban #{} within {}, {}",
                earlier + 1,
                self.config.escalation.lookback,
                HumanDuration(duration.to_std().unwrap_or_default())
            )
        } else {
            reason
        };
        Outcome::Decided(Decision {
            id: None,
            action: Action::Ban,
            target,
            at: now,
            until: Some(until),
            reason,
            origin,
            dry_run: self.config.dry_run,
            escalation: earlier,
            findings: vec![finding],
        })
    }

    fn earlier_bans(&mut self, target: &IpNet, now: DateTime<Utc>) -> u32 {
        let horizon = now - self.config.escalation.lookback.to_chrono();
        let Some(times) = self.history.get_mut(target) else {
            return 0;
        };
        while times.front().is_some_and(|t| *t < horizon) {
            times.pop_front();
        }
        u32::try_from(times.len()).unwrap_or(u32::MAX)
    }

    fn escalate(&self, base: HumanDuration, earlier: u32) -> Duration {
        let base = base.to_chrono();
        let esc = &self.config.escalation;
        if !esc.enabled || earlier == 0 {
            return base;
        }
        let cap = esc.max.to_chrono().max(base);
        let factor = esc.factor.powi(i32::try_from(earlier).unwrap_or(i32::MAX));
        let secs = base.num_seconds() as f64 * factor;
        if !secs.is_finite() || secs >= cap.num_seconds() as f64 {
            return cap;
        }
        Duration::seconds(secs as i64)
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        self.active.retain(|_, (until, _)| *until > now);
        let horizon = now - self.config.escalation.lookback.to_chrono();
        self.history
            .retain(|_, times| times.back().is_some_and(|t| *t >= horizon));
    }
}
