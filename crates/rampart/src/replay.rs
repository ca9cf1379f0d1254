//! `rampart replay`: the command line over the agent's replay engine
//! ([`rampart_agent::replay`]): arguments, the progress bar, and printing
//! decisions, events and the summary as text or JSON.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::ValueEnum;
use rampart_config::{Config, JsonMapping, LogFormat, PolicyConfig};
use rampart_core::{Action, Decision, Event};
use rampart_detect::{Outcome, Selection};
use serde_json::json;

use rampart_agent::replay::{Input, Mode, Output, Replay};
use rampart_agent::rules;
use rampart_logs::LineCounts;
use rampart_logs::source::Parsed;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Sshd,
    Nginx,
    Apache,
    Json,
}

impl From<FormatArg> for LogFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Sshd => LogFormat::Sshd,
            FormatArg::Nginx => LogFormat::Nginx,
            FormatArg::Apache => LogFormat::Apache,
            FormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Log format of the files.
    #[arg(long = "type", value_enum)]
    format: FormatArg,
    /// A rules directory (parsers/, scenarios/) replacing the built-in rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// A config file whose [policy] (durations, escalation, whitelist) applies.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// For --type json: a TOML file with the keys of a [source.json] mapping.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// One JSON object per line: decisions (or events), then a summary
    /// (the global `--json`).
    #[arg(skip)]
    pub json: bool,
    /// Print every parsed event (line, kind, address, user) instead of decisions.
    #[arg(long)]
    events: bool,
    /// With --events, print skipped lines too, with the reason.
    #[arg(long, requires = "events")]
    skipped: bool,
    /// Syslog timestamps without a year fall at or before this time (RFC 3339).
    /// Default: each file's modification time.
    #[arg(long)]
    reference: Option<DateTime<Utc>>,
    /// Parser threads. Default: the number of cores.
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Log files, replayed in the order given; `-` is standard input, and
    /// files compressed with gzip or zstd (as logrotate leaves them) are
    /// read decompressed.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Default)]
struct Summary {
    counts: LineCounts,
    findings: u64,
    decisions: u64,
    bans: u64,
    logged: u64,
    not_decided: std::collections::BTreeMap<String, u64>,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let rules = rules::load(args.rules.as_deref())?;
    let policy_config = match &args.config {
        Some(path) => Config::load(path)?.policy,
        None => PolicyConfig::default(),
    };
    let mapping = match &args.mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                toml::from_str::<JsonMapping>(&text)
                    .with_context(|| format!("bad mapping in {}", path.display()))?,
            )
        }
        None => None,
    };
    let format = LogFormat::from(args.format);
    if format == LogFormat::Json && mapping.is_none() {
        anyhow::bail!("--type json needs --mapping FILE (the keys of a [source.json] table)");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 64);
    // A bar with a length when every input is a plain file (its size is
    // what will be read); a counter of bytes read otherwise.
    let sizes: Option<Vec<u64>> = args.files.iter().map(|f| plain_size(f)).collect();
    let progress = (!args.no_progress && std::io::stderr().is_terminal()).then(|| match &sizes {
        Some(sizes) => {
            let bar = indicatif::ProgressBar::new(sizes.iter().sum());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        }
        None => {
            let bar = indicatif::ProgressBar::no_length();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        }
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut replay = Replay::new(&rules, policy_config, threads)?;
    let mut summary = Summary::default();
    let started = Instant::now();
    for file in &args.files {
        let reference = match args.reference {
            Some(r) => r,
            None => std::fs::metadata(file)
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now()),
        };
        let input = Input {
            path: file,
            format,
            mapping: mapping.as_ref(),
            reference,
        };
        let mode = if args.events {
            Mode::Events {
                skipped: args.skipped,
            }
        } else {
            Mode::Detect
        };
        replay.run(
            input,
            mode,
            &mut |bytes| {
                if let Some(bar) = &progress {
                    bar.inc(bytes);
                }
            },
            &mut |output| match output {
                Output::Events(parsed) => print_events(&mut out, parsed, args.json),
                Output::Outcome(outcome) => record(&mut out, &mut summary, outcome, args.json),
            },
        )?;
    }
    summary.counts = replay.counts.clone();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    print_summary(&mut out, &summary, elapsed, args.json)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The size of `path` when it is a plain (uncompressed) file; `None` for
/// standard input, a compressed file or one that cannot be read (which
/// replay then reports).
fn plain_size(path: &Path) -> Option<u64> {
    use std::io::Read;
    if path == Path::new("-") {
        return None;
    }
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).ok()?;
    let n = file.read(&mut head).ok()?;
    if rampart_logs::read::Encoding::of(&head[..n]) != rampart_logs::read::Encoding::Plain {
        return None;
    }
    file.metadata().ok().map(|m| m.len())
}

fn print_events(
    out: &mut impl Write,
    parsed: &Parsed<Selection>,
    json: bool,
) -> std::io::Result<()> {
    let mut rows: Vec<(u64, Result<&Event, rampart_logs::SkipReason>)> = parsed
        .events
        .iter()
        .map(|(n, e, _)| (*n, Ok(e)))
        .chain(parsed.skipped.iter().map(|(n, r)| (*n, Err(*r))))
        .collect();
    rows.sort_by_key(|(n, _)| *n);
    for (line, row) in rows {
        match (row, json) {
            (Ok(ev), true) => {
                let fields: serde_json::Map<String, serde_json::Value> = ev
                    .fields
                    .iter()
                    .map(|(k, v)| (k.to_owned(), json!(v)))
                    .collect();
                writeln!(
                    out,
                    "{}",
                    json!({"line": line, "time": ev.time, "kind": ev.kind.as_str(), "ip": ev.addr, "user": ev.fields.get("user"), "fields": fields})
                )?;
            }
            (Ok(ev), false) => {
                let addr = ev.addr.map_or_else(|| "-".to_owned(), |a| a.to_string());
                let fields: Vec<String> = ev
                    .fields
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                writeln!(
                    out,
                    "{line:>8}  {}  {:<18} {addr:<39} {}",
                    ev.time.format("%Y-%m-%dT%H:%M:%SZ"),
                    ev.kind.as_str(),
                    fields.join(" ")
                )?;
            }
            (Err(reason), true) => {
                writeln!(out, "{}", json!({"line": line, "skipped": reason.as_str()}))?
            }
            (Err(reason), false) => writeln!(out, "{line:>8}  skipped: {}", reason.as_str())?,
        }
    }
    Ok(())
}

fn record(
    out: &mut impl Write,
    summary: &mut Summary,
    outcome: Outcome,
    json: bool,
) -> std::io::Result<()> {
    summary.findings += 1;
    match outcome {
        Outcome::Skipped { note, .. } => {
            let key = if note.starts_with("already banned") {
                "already banned".to_owned()
            } else {
                note
            };
            *summary.not_decided.entry(key).or_default() += 1;
            Ok(())
        }
        Outcome::Decided(decision) => {
            summary.decisions += 1;
            match decision.action {
                Action::Ban => summary.bans += 1,
                _ => summary.logged += 1,
            }
            print_decision(out, &decision, json)
        }
    }
}

/// One decision as a JSON object (also used by `rampart decisions list --json`).
pub fn decision_json(d: &Decision) -> serde_json::Value {
    let finding = d.findings.first();
    json!({
        "id": d.id,
        "ip": rampart_core::addr::display_net(&d.target),
        "action": d.action.as_str(),
        "scenario": d.scenario(),
        "origin": d.origin.to_string(),
        "level": finding.map(|f| f.level.as_str()),
        "at": d.at,
        "until": d.until,
        "dry_run": d.dry_run,
        "escalation": d.escalation,
        "reason": d.reason,
        "count": finding.map(|f| f.evidence.count),
        "first_seen": finding.and_then(|f| f.evidence.first_seen),
        "first_line": finding.and_then(|f| f.evidence.first_line.as_deref()),
        "last_line": finding.and_then(|f| f.evidence.last_line.as_deref()),
    })
}

fn print_decision(out: &mut impl Write, d: &Decision, json: bool) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{}", decision_json(d));
    }
    let until = d.until.map_or_else(
        || "-".to_owned(),
        |u| u.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    writeln!(
        out,
        "{}  {:<5} {:<39} until {until}  {}",
        d.at.format("%Y-%m-%dT%H:%M:%SZ"),
        d.action.as_str(),
        rampart_core::addr::display_net(&d.target),
        d.reason
    )
}

fn print_summary(
    out: &mut impl Write,
    s: &Summary,
    elapsed: f64,
    json: bool,
) -> std::io::Result<()> {
    let rate = if elapsed > 0.0 {
        s.counts.lines as f64 / elapsed
    } else {
        0.0
    };
    let skipped: serde_json::Map<String, serde_json::Value> = s
        .counts
        .skipped_by_reason()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    if json {
        return writeln!(
            out,
            "{}",
            json!({"summary": {
                "lines": s.counts.lines,
                "parsed": s.counts.events,
                "skipped": s.counts.skipped_total(),
                "skipped_by_reason": skipped,
                "findings": s.findings,
                "decisions": s.decisions,
                "bans": s.bans,
                "not_decided": s.not_decided,
                "seconds": elapsed,
                "lines_per_second": rate.round(),
            }})
        );
    }
    let reasons: Vec<String> = s
        .counts
        .skipped_by_reason()
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let not_decided: Vec<String> = s
        .not_decided
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(out, "---")?;
    writeln!(out, "lines      {}", s.counts.lines)?;
    writeln!(out, "parsed     {}", s.counts.events)?;
    if reasons.is_empty() {
        writeln!(out, "skipped    0")?;
    } else {
        writeln!(
            out,
            "skipped    {} ({})",
            s.counts.skipped_total(),
            reasons.join(", ")
        )?;
    }
    writeln!(
        out,
        "findings   {} (not decided: {})",
        s.findings,
        if not_decided.is_empty() {
            "none".to_owned()
        } else {
            not_decided.join(", ")
        }
    )?;
    writeln!(
        out,
        "decisions  {} ({} bans, {} logged)",
        s.decisions, s.bans, s.logged
    )?;
    writeln!(out, "time       {elapsed:.3} s, {rate:.0} lines/s")
}
