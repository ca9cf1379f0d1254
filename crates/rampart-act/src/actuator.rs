//! Actuators: what carries a decision out in the world (the kernel
//! firewall today; service restarts, alerts and cloud or Kubernetes
//! remediation are more implementations of the same trait).
//!
//! An [`Actuator`] does one thing and says whether it worked. The
//! [`Executor`] in front of it owns everything around that: which decisions
//! it acts on (bans in force, never on a whitelisted address), batching,
//! retrying with backoff until an operation succeeds, and an [`Attempt`]
//! for every try, which the caller records as an action.
//!
//! Actuators block (they run programs or talk to remote APIs): call
//! [`Executor::run`] off the async runtime (`spawn_blocking`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::{Action, Decision, Whitelist};

use crate::firewall::{Firewall, FirewallError};

/// What an actuator is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Keep `target` out until `until`.
    Ban {
        /// The address or prefix.
        target: IpNet,
        /// When the ban ends.
        until: DateTime<Utc>,
    },
    /// Let `target` in again.
    Lift {
        /// The address or prefix.
        target: IpNet,
    },
}

impl Operation {
    /// The address or prefix the operation is about.
    pub fn target(&self) -> IpNet {
        match self {
            Self::Ban { target, .. } | Self::Lift { target } => *target,
        }
    }

    /// `ban` or `unban`, as actions are recorded.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Ban { .. } => "ban",
            Self::Lift { .. } => "unban",
        }
    }
}

/// Why an actuator could not carry an operation out.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ActError(pub String);

impl From<FirewallError> for ActError {
    fn from(e: FirewallError) -> Self {
        Self(e.to_string())
    }
}

/// Carries operations out. Implementations block; they are called with
/// operations of one verb at a time, in batches.
pub trait Actuator: Send + Sync {
    /// A short name for logs, metrics and recorded actions (`nftables`).
    fn name(&self) -> &str;

    /// Gets ready (creates tables, checks credentials). Called once, before
    /// anything else; an error here means the actuator cannot work at all.
    fn setup(&self) -> Result<(), ActError> {
        Ok(())
    }

    /// Carries out every operation of `ops` (all of one verb), or none:
    /// one outcome for the batch, so a failed batch is retried whole.
    fn apply(&self, ops: &[Operation], now: DateTime<Utc>) -> Result<(), ActError>;

    /// How many targets it holds now, when it can tell (a gauge).
    fn held(&self) -> Option<usize> {
        None
    }
}

/// The kernel firewall as an actuator.
pub struct FirewallActuator(pub Arc<dyn Firewall>);

impl Actuator for FirewallActuator {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn setup(&self) -> Result<(), ActError> {
        Ok(self.0.setup()?)
    }

    fn apply(&self, ops: &[Operation], now: DateTime<Utc>) -> Result<(), ActError> {
        let mut bans = Vec::new();
        let mut lifts = Vec::new();
        for op in ops {
            match *op {
                Operation::Ban { target, until } => {
                    bans.push((target, (until - now).to_std().ok()));
                }
                Operation::Lift { target } => lifts.push(target),
            }
        }
        if !lifts.is_empty() {
            self.0.unban(&lifts)?;
        }
        if !bans.is_empty() {
            self.0.ban(&bans)?;
        }
        Ok(())
    }

    fn held(&self) -> Option<usize> {
        self.0.list().ok().map(|entries| entries.len())
    }
}

/// One try at a batch of operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The actuator's name.
    pub actuator: String,
    /// `ban` or `unban`.
    pub verb: &'static str,
    /// The targets of the batch.
    pub targets: Vec<IpNet>,
    /// Whether it was carried out.
    pub ok: bool,
    /// The actuator's name, and the error when it failed.
    pub detail: String,
    /// Tries of this batch so far, this one included (1 = first).
    pub attempt: u32,
}

/// How failed operations are tried again: after `initial`, then twice as
/// long each time up to `max`. Nothing is ever given up: an operation
/// waits until it succeeds, or until a newer decision replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failures in a row (at least one).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What [`Executor::queue`] made of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// A ban to carry out.
    Ban,
    /// Not carried out here: it touches a whitelisted address (loopback,
    /// this host, configured entries), whoever made it.
    Whitelisted,
    /// Nothing to do: not a ban, a dry run, or already over.
    Nothing,
}

/// Operations waiting for an actuator, batched and retried.
pub struct Executor {
    actuator: Arc<dyn Actuator>,
    whitelist: Whitelist,
    retry: RetryPolicy,
    bans: Vec<(IpNet, DateTime<Utc>)>,
    lifts: Vec<IpNet>,
    /// Failures in a row (of any batch), and when to try again.
    failures: u32,
    not_before: Option<Instant>,
}

impl Executor {
    /// An executor for `actuator` that never acts on `whitelist`.
    pub fn new(actuator: Arc<dyn Actuator>, whitelist: Whitelist, retry: RetryPolicy) -> Self {
        Self {
            actuator,
            whitelist,
            retry,
            bans: Vec::new(),
            lifts: Vec::new(),
            failures: 0,
            not_before: None,
        }
    }

    /// The actuator.
    pub fn actuator(&self) -> &Arc<dyn Actuator> {
        &self.actuator
    }

    /// Queues what `decision` asks for at `now`.
    pub fn queue(&mut self, decision: &Decision, now: DateTime<Utc>) -> Queued {
        if decision.action != Action::Ban || decision.dry_run {
            return Queued::Nothing;
        }
        if self.whitelist.overlaps(&decision.target) {
            return Queued::Whitelisted;
        }
        match decision.until {
            Some(until) if until > now => {
                self.lifts.retain(|t| *t != decision.target);
                self.bans.retain(|(t, _)| *t != decision.target);
                self.bans.push((decision.target, until));
                Queued::Ban
            }
            _ => Queued::Nothing,
        }
    }

    /// Queues lifting the bans on `target` (a revoked decision).
    pub fn queue_lift(&mut self, target: IpNet) {
        self.bans.retain(|(t, _)| *t != target);
        if !self.lifts.contains(&target) {
            self.lifts.push(target);
        }
    }

    /// Operations waiting (bans and lifts).
    pub fn pending(&self) -> usize {
        self.bans.len() + self.lifts.len()
    }

    /// Carries out what is queued, lifts first, unless the last failure's
    /// backoff has not passed at `clock`. What fails stays queued. Returns
    /// one [`Attempt`] per batch tried. Blocks.
    pub fn run(&mut self, now: DateTime<Utc>, clock: Instant) -> Vec<Attempt> {
        self.bans.retain(|(_, until)| *until > now);
        if self.not_before.is_some_and(|t| clock < t) {
            return Vec::new();
        }
        let mut attempts: Vec<Attempt> = Vec::new();
        if !self.lifts.is_empty() {
            let ops: Vec<Operation> = self
                .lifts
                .iter()
                .map(|&target| Operation::Lift { target })
                .collect();
            let attempt = self.try_batch(&ops, now, clock);
            if attempt.ok {
                self.lifts.clear();
            }
            attempts.push(attempt);
        }
        // After a failed lift the bans wait for the same backoff.
        if !self.bans.is_empty() && attempts.iter().all(|a| a.ok) {
            let ops: Vec<Operation> = self
                .bans
                .iter()
                .map(|&(target, until)| Operation::Ban { target, until })
                .collect();
            let attempt = self.try_batch(&ops, now, clock);
            if attempt.ok {
                self.bans.clear();
            }
            attempts.push(attempt);
        }
        attempts
    }

    fn try_batch(&mut self, ops: &[Operation], now: DateTime<Utc>, clock: Instant) -> Attempt {
        let name = self.actuator.name().to_owned();
        let result = self.actuator.apply(ops, now);
        let attempt = self.failures + 1;
        let (ok, detail) = match result {
            Ok(()) => {
                self.failures = 0;
                self.not_before = None;
                (true, name.clone())
            }
            Err(e) => {
                self.failures += 1;
                self.not_before = Some(clock + self.retry.delay(self.failures));
                (false, format!("{name}: {e}"))
            }
        };
        Attempt {
            actuator: name,
            verb: ops.first().map_or("ban", Operation::verb),
            targets: ops.iter().map(Operation::target).collect(),
            ok,
            detail,
            attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rampart_core::parse_net;

    use super::*;

    /// Fails the first `fail` calls, then records what it was asked.
    struct Flaky {
        fail: Mutex<u32>,
        applied: Mutex<Vec<Operation>>,
    }

    impl Actuator for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }

        fn apply(&self, ops: &[Operation], _now: DateTime<Utc>) -> Result<(), ActError> {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(ActError("down".into()));
            }
            self.applied.lock().unwrap().extend_from_slice(ops);
            Ok(())
        }
    }

    fn ban(target: &str, now: DateTime<Utc>) -> Decision {
        Decision::operator_ban(
            parse_net(target).unwrap(),
            "ops",
            now,
            chrono::Duration::minutes(10),
            None,
            false,
        )
    }

    fn executor(fail: u32) -> (Arc<Flaky>, Executor) {
        let flaky = Arc::new(Flaky {
            fail: Mutex::new(fail),
            applied: Mutex::new(Vec::new()),
        });
        let whitelist = Whitelist::new(vec![parse_net("10.0.0.0/8").unwrap()]);
        let ex = Executor::new(flaky.clone(), whitelist, RetryPolicy::default());
        (flaky, ex)
    }

    #[test]
    fn failures_are_retried_with_backoff_and_every_try_is_reported() {
        let (flaky, mut ex) = executor(2);
        let now = Utc::now();
        let t0 = Instant::now();
        assert_eq!(ex.queue(&ban("203.0.113.7", now), now), Queued::Ban);
        let first = ex.run(now, t0);
        assert_eq!(first.len(), 1);
        assert!(!first[0].ok);
        assert_eq!(first[0].attempt, 1);
        assert_eq!(first[0].detail, "flaky: down");
        // Within the backoff nothing is tried.
        assert!(ex.run(now, t0 + Duration::from_millis(100)).is_empty());
        let second = ex.run(now, t0 + Duration::from_millis(600));
        assert_eq!((second[0].ok, second[0].attempt), (false, 2));
        // The wait doubled: 1 s after the second failure.
        assert!(ex.run(now, t0 + Duration::from_millis(1_400)).is_empty());
        let third = ex.run(now, t0 + Duration::from_millis(1_700));
        assert_eq!((third[0].ok, third[0].attempt), (true, 3));
        assert_eq!(third[0].verb, "ban");
        assert_eq!(ex.pending(), 0);
        assert_eq!(flaky.applied.lock().unwrap().len(), 1);
        assert!(
            ex.run(now, t0 + Duration::from_secs(5)).is_empty(),
            "nothing left"
        );
    }

    #[test]
    fn whitelisted_dry_run_and_expired_decisions_are_not_carried_out() {
        let (flaky, mut ex) = executor(0);
        let now = Utc::now();
        assert_eq!(ex.queue(&ban("10.1.2.3", now), now), Queued::Whitelisted);
        assert_eq!(ex.queue(&ban("0.0.0.0/0", now), now), Queued::Whitelisted);
        let mut dry = ban("203.0.113.8", now);
        dry.dry_run = true;
        assert_eq!(ex.queue(&dry, now), Queued::Nothing);
        let mut over = ban("203.0.113.9", now);
        over.until = Some(now - chrono::Duration::seconds(1));
        assert_eq!(ex.queue(&over, now), Queued::Nothing);
        assert!(ex.run(now, Instant::now()).is_empty());
        assert!(flaky.applied.lock().unwrap().is_empty());
    }

    #[test]
    fn a_lift_replaces_a_queued_ban_and_goes_first() {
        let (flaky, mut ex) = executor(0);
        let now = Utc::now();
        ex.queue(&ban("203.0.113.1", now), now);
        ex.queue(&ban("203.0.113.2", now), now);
        ex.queue_lift(parse_net("203.0.113.1").unwrap());
        let attempts = ex.run(now, Instant::now());
        let verbs: Vec<_> = attempts.iter().map(|a| (a.verb, a.targets.len())).collect();
        assert_eq!(verbs, vec![("unban", 1), ("ban", 1)]);
        let applied = flaky.applied.lock().unwrap();
        assert_eq!(
            applied[0],
            Operation::Lift {
                target: parse_net("203.0.113.1").unwrap()
            }
        );
        assert_eq!(applied[1].target(), parse_net("203.0.113.2").unwrap());
    }

    #[test]
    fn the_backoff_is_capped() {
        let retry = RetryPolicy::default();
        assert_eq!(retry.delay(1), Duration::from_millis(500));
        assert_eq!(retry.delay(3), Duration::from_secs(2));
        assert_eq!(retry.delay(100), Duration::from_secs(60));
    }
}
