//! Golden parser cases: every folder of `tests/golden/parsers/` is one case.
//!
//! ```text
//! tests/golden/parsers/<case>/
//!   input.log      the lines, as a log file has them (any bytes)
//!   case.toml      format = "sshd" | "nginx" | "apache" | "json"
//!                  reference = "2026-11-21T12:00:00Z"   (ParseOptions::reference)
//!                  local_time = true    (optional, see below)
//!                  long_line_bytes = N  (optional: one generated line of N bytes is
//!                                        appended, so a 1 MB line needs no 1 MB file)
//!                  [json] …             (format json: the source's mapping)
//!   expected.json  {"events": [{line, kind, addr, time, fields}], "skipped": {reason: count}}
//! ```
//!
//! Parsers read zone-less timestamps (RFC 3164 syslog, nginx and apache
//! error logs) in the host's local zone. So that cases pass in any `TZ`
//! without the test changing the process environment, a case with
//! `local_time = true` writes event times as the host's wall-clock time
//! (`2026-11-21T06:34:06`, no zone): the runner converts each event's UTC
//! time back to local time before comparing. Other cases compare UTC
//! (`2026-11-21T06:34:06Z`). Keep local-time cases away from DST changes.
//!
//! `RAMPART_BLESS=1 cargo test -p rampart-logs --test golden_parsers`
//! rewrites every expected.json from the actual output; read the diff
//! before committing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Local, SecondsFormat, Utc};
use rampart_config::{JsonMapping, LogFormat};
use rampart_logs::SkipReason;
use rampart_logs::parse::{ParseOptions, ParserRules, build_parser};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    format: String,
    reference: DateTime<Utc>,
    #[serde(default)]
    local_time: bool,
    #[serde(default)]
    long_line_bytes: Option<usize>,
    #[serde(default)]
    json: Option<JsonMapping>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load_rules() -> ParserRules {
    let dir = repo_root().join("rules/parsers");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), text)
        })
        .collect();
    files.sort();
    ParserRules::from_sources(&files).unwrap_or_else(|e| panic!("rules do not load:\n{e}"))
}

fn format_of(name: &str) -> LogFormat {
    match name {
        "sshd" => LogFormat::Sshd,
        "nginx" => LogFormat::Nginx,
        "apache" => LogFormat::Apache,
        "json" => LogFormat::Json,
        other => panic!("unknown format {other:?}"),
    }
}

/// A plausible line of `n` bytes for the format, too long for anything sane.
fn long_line(format: &str, n: usize) -> Vec<u8> {
    let head: &[u8] = match format {
        "sshd" => b"Nov 21 06:34:06 host sshd[1]: Failed password for ",
        "json" => b"{\"pad\":\"",
        _ => b"192.0.2.1 - - [21/Nov/2026:06:34:06 +0000] \"GET /",
    };
    let mut line = head.to_vec();
    line.resize(n.max(head.len()), b'A');
    line
}

fn run_case(dir: &Path, rules: &ParserRules) -> Value {
    let case: Case = toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap())
        .unwrap_or_else(|e| panic!("{}: case.toml: {e}", dir.display()));
    let opts = ParseOptions {
        source: Arc::from("golden"),
        reference: case.reference,
        keep_raw: true,
    };
    let mut parser = build_parser(format_of(&case.format), rules, case.json.as_ref(), opts)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut input = std::fs::read(dir.join("input.log")).unwrap();
    if let Some(n) = case.long_line_bytes {
        if !input.is_empty() && !input.ends_with(b"\n") {
            input.push(b'\n');
        }
        input.extend(long_line(&case.format, n));
        input.push(b'\n');
    }
    let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut events = Vec::new();
    let mut skipped: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        match parser.parse(line) {
            Ok(ev) => {
                let expected_raw = line.strip_suffix(b"\r").unwrap_or(line);
                assert_eq!(
                    ev.raw.as_deref().map(str::as_bytes),
                    Some(expected_raw),
                    "{}: line {}: raw",
                    dir.display(),
                    i + 1
                );
                assert_eq!(&*ev.source, "golden");
                let time = if case.local_time {
                    ev.time
                        .with_timezone(&Local)
                        .naive_local()
                        .format("%Y-%m-%dT%H:%M:%S%.f")
                        .to_string()
                } else {
                    ev.time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
                };
                let fields: serde_json::Map<String, Value> = ev
                    .fields
                    .iter()
                    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                    .collect();
                events.push(json!({
                    "line": i + 1,
                    "kind": ev.kind.as_str(),
                    "addr": ev.addr.map(|a| a.to_string()),
                    "time": time,
                    "fields": fields,
                }));
            }
            Err(reason) => {
                assert!(SkipReason::ALL.contains(&reason));
                *skipped.entry(reason.as_str()).or_default() += 1;
            }
        }
    }
    json!({ "events": events, "skipped": skipped })
}

#[test]
fn golden_parser_cases() {
    let rules = load_rules();
    let root = repo_root().join("tests/golden/parsers");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases in {}", root.display());
    let bless = std::env::var_os("RAMPART_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for dir in &dirs {
        let actual = run_case(dir, &rules);
        let path = dir.join("expected.json");
        if bless {
            let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            }
            Err(e) => {
                failures.push(format!(
                    "{}: {e} (RAMPART_BLESS=1 writes it)",
                    path.display()
                ));
                continue;
            }
        };
        if expected != actual {
            failures.push(format!(
                "{}: output differs from expected.json\n--- actual ---\n{}",
                dir.display(),
                serde_json::to_string_pretty(&actual).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
