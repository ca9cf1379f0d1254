//! Replay: the agent's parsers, scenarios and policy over inputs read
//! once (files, standard input, compressed rotated logs), as fast as the
//! cores allow, with the times in the lines.
//!
//! Parsing and scenario selection run on parser threads
//! ([`rampart_logs::source::read_once`]); detection takes their results in
//! input order, so decisions are the ones the agent would have made had it
//! followed the logs as they were written.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rampart_config::{JsonMapping, LogFormat, PolicyConfig};
use rampart_core::Whitelist;
use rampart_detect::{Outcome, Pipeline, Policy, Selection};
use rampart_logs::LineCounts;
use rampart_logs::clock::ClockGuard;
use rampart_logs::parse::{ParseOptions, build_parser};
use rampart_logs::source::{Parsed, read_once};

use crate::rules::Rules;

/// Lines longer than this are skipped as too long.
pub const MAX_LINE: usize = 64 * 1024;

/// What replay does with the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Detection: outcomes (decisions, findings not decided).
    Detect,
    /// The parsed events themselves (and the skipped lines when
    /// `skipped`), no detection.
    Events {
        /// Report skipped lines too.
        skipped: bool,
    },
}

/// What replay hands its caller, in input order. Short-lived (handed to
/// a callback and dropped), so the size of an outcome does not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Output<'a> {
    /// A parsed chunk (in [`Mode::Events`]).
    Events(&'a Parsed<Selection>),
    /// What detection made of a finding (in [`Mode::Detect`]).
    Outcome(Outcome),
}

/// One input to replay.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The path; `-` is standard input.
    pub path: &'a Path,
    /// Its log format.
    pub format: LogFormat,
    /// The mapping of a JSON log.
    pub mapping: Option<&'a JsonMapping>,
    /// Syslog timestamps without a year fall at or before this time; and
    /// the clock guard's "now".
    pub reference: DateTime<Utc>,
}

/// The replay engine: one detector across every input, so state (buckets,
/// bans in force, escalation) carries from one file to the next as it
/// would have on the host.
pub struct Replay<'r> {
    rules: &'r Rules,
    detector: Pipeline,
    threads: usize,
    /// Lines of every input so far, by outcome.
    pub counts: LineCounts,
}

impl<'r> Replay<'r> {
    /// An engine over `rules` with `policy`, parsing on `threads` threads.
    pub fn new(rules: &'r Rules, policy: PolicyConfig, threads: usize) -> anyhow::Result<Self> {
        let whitelist = Whitelist::new(policy.whitelist_nets()?);
        let overrides = Pipeline::overrides(&rules.scenarios);
        Ok(Self {
            rules,
            detector: Pipeline::new(&rules.scenarios, Policy::new(policy, whitelist, overrides)),
            threads: threads.max(1),
            counts: LineCounts::default(),
        })
    }

    /// Replays `input` in `mode`: `progress` hears the bytes of each chunk
    /// parsed, `out` gets what replay found, in input order. An error from
    /// `out` (a closed pipe) ends the run and is returned.
    pub fn run(
        &mut self,
        input: Input<'_>,
        mode: Mode,
        progress: &mut dyn FnMut(u64),
        out: &mut dyn FnMut(Output<'_>) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        let opts = ParseOptions {
            source: Arc::from(input.format.as_str()),
            reference: input.reference,
            keep_raw: true,
        };
        let source = rampart_logs::read::open(opts.source.clone(), input.path, MAX_LINE)?;
        // Every parser first, so a bad mapping fails before any thread starts.
        let parsers = (0..self.threads)
            .map(|_| {
                build_parser(
                    input.format,
                    &self.rules.parsers,
                    input.mapping,
                    opts.clone(),
                )
                .map_err(|e| anyhow::anyhow!(e))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let select = mode == Mode::Detect;
        let keep_skipped = mode == Mode::Events { skipped: true };
        let rules = self.rules;
        // Each parser thread selects scenarios with its own copy of the
        // rules (shared regexes, separate match caches), so detection only
        // updates buckets.
        let make_hook = || {
            let scenarios = select.then(|| rules.scenarios.for_thread());
            move |event: &rampart_core::Event| -> Selection {
                scenarios
                    .as_ref()
                    .map(|r| r.select(event))
                    .unwrap_or_default()
            }
        };
        let mut guard = ClockGuard::default();
        let mut outcomes = Vec::new();
        let mut failed: Option<std::io::Error> = None;
        let counts = &mut self.counts;
        let detector = &mut self.detector;
        read_once(
            Box::new(source),
            parsers,
            &make_hook,
            keep_skipped,
            |parsed: &mut Parsed<Selection>| {
                progress(parsed.bytes);
                counts.add(&parsed.counts);
                let written = if select {
                    (|| {
                        for (_, event, selection) in &parsed.events {
                            if !guard.admit(event.time, input.reference) {
                                counts.clock_jumps += 1;
                                counts.events -= 1;
                                continue;
                            }
                            detector.handle_selected(event, *selection, None, &mut outcomes);
                            for outcome in outcomes.drain(..) {
                                out(Output::Outcome(outcome))?;
                            }
                        }
                        Ok(())
                    })()
                } else {
                    out(Output::Events(parsed))
                };
                match written {
                    Ok(()) => std::ops::ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        std::ops::ControlFlow::Break(())
                    }
                }
            },
        )?;
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        crate::rules::load(None).expect("built-in rules")
    }

    #[test]
    fn state_carries_from_one_input_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let line = |s: u32| {
            format!(
                "Nov 21 08:00:{s:02} web1 sshd[1]: Failed password for root from 203.0.113.9 port 4000{s} ssh2\n"
            )
        };
        // Three failures in each file: five in all is a brute force; no
        // file alone is.
        let first: String = (0..3).map(line).collect();
        let second: String = (3..6).map(line).collect();
        std::fs::write(dir.path().join("a.log"), first).unwrap();
        std::fs::write(dir.path().join("b.log"), second).unwrap();
        let rules = rules();
        let mut replay = Replay::new(&rules, PolicyConfig::default(), 2).unwrap();
        let mut decided = Vec::new();
        let mut bytes = 0;
        for name in ["a.log", "b.log"] {
            let path = dir.path().join(name);
            let input = Input {
                path: &path,
                format: LogFormat::Sshd,
                mapping: None,
                reference: "2026-11-21T23:59:59Z".parse().unwrap(),
            };
            replay
                .run(input, Mode::Detect, &mut |b| bytes += b, &mut |o| {
                    if let Output::Outcome(Outcome::Decided(d)) = o {
                        decided.push((name, d.target));
                    }
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(decided.len(), 1, "{decided:?}");
        assert_eq!(decided[0].0, "b.log");
        assert_eq!(replay.counts.lines, 6);
        assert_eq!(replay.counts.events, 6);
        assert!(bytes > 0);
    }

    #[test]
    fn a_failing_writer_ends_the_run_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let text: String = (0..50_000)
            .map(|i| {
                format!(
                    "Nov 21 08:00:00 web1 sshd[1]: Connection closed by 192.0.2.{} port {i}\n",
                    i % 250
                )
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        let rules = rules();
        let mut replay = Replay::new(&rules, PolicyConfig::default(), 2).unwrap();
        let input = Input {
            path: &path,
            format: LogFormat::Sshd,
            mapping: None,
            reference: Utc::now(),
        };
        let mut calls = 0;
        let err = replay
            .run(
                input,
                Mode::Events { skipped: false },
                &mut |_| {},
                &mut |_| {
                    calls += 1;
                    Err(std::io::ErrorKind::BrokenPipe.into())
                },
            )
            .unwrap_err();
        assert_eq!(calls, 1, "nothing is written after the error");
        assert!(
            err.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe),
            "{err:#}"
        );
    }
}
