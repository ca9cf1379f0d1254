//! Golden cases: `tests/golden/scenarios/<case>/` holds `input.log`,
//! `case.toml` (format, reference time, optional `[policy]` and `[mapping]`
//! tables, optional `rules/` folder) and `expected.json` (the decisions and
//! the line summary `rampart replay --json` gives). Adding a case is adding
//! a folder; `RAMPART_BLESS=1` rewrites `expected.json` from the output
//! (read the diff before committing it).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/scenarios")
}

fn run_case(dir: &Path) -> Value {
    let spec: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap())
            .unwrap_or_else(|e| panic!("{}: bad case.toml: {e}", dir.display()));
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["replay", "--json", "--no-progress", "--threads", "2"]);
    cmd.args(["--type", spec["format"].as_str().unwrap()]);
    cmd.args(["--reference", spec["reference"].as_str().unwrap()]);
    if let Some(policy) = spec.get("policy") {
        let path = tmp.path().join("rampart.toml");
        let mut config = toml::Table::new();
        config.insert("policy".into(), policy.clone());
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        cmd.arg("--config").arg(&path);
    }
    if let Some(mapping) = spec.get("mapping") {
        let path = tmp.path().join("mapping.toml");
        std::fs::write(&path, toml::to_string(mapping.as_table().unwrap()).unwrap()).unwrap();
        cmd.arg("--mapping").arg(&path);
    }
    if dir.join("rules").is_dir() {
        cmd.arg("--rules").arg(dir.join("rules"));
    }
    cmd.arg(dir.join("input.log"));
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{}: replay failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut decisions = Vec::new();
    let mut summary = Value::Null;
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(s) = v.get("summary") {
            summary = json!({
                "lines": s["lines"],
                "parsed": s["parsed"],
                "skipped_by_reason": s["skipped_by_reason"],
                "findings": s["findings"],
                "not_decided": s["not_decided"],
            });
        } else {
            decisions.push(json!({
                "ip": v["ip"],
                "action": v["action"],
                "scenario": v["scenario"],
                "level": v["level"],
                "at": v["at"],
                "until": v["until"],
                "dry_run": v["dry_run"],
                "escalation": v["escalation"],
                "count": v["count"],
            }));
        }
    }
    json!({ "decisions": decisions, "summary": summary })
}

#[test]
fn golden_scenarios() {
    let bless = std::env::var_os("RAMPART_BLESS").is_some();
    let mut dirs: Vec<_> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.toml").exists())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 20,
        "golden cases missing: found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let actual = run_case(dir);
        let expected_path = dir.join("expected.json");
        if bless {
            std::fs::write(
                &expected_path,
                serde_json::to_string_pretty(&actual).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&expected_path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => {
                failures.push(format!(
                    "{}: no expected.json (run with RAMPART_BLESS=1)",
                    dir.display()
                ));
                continue;
            }
        };
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{}\n--- actual\n{}",
                dir.display(),
                serde_json::to_string_pretty(&expected).unwrap(),
                serde_json::to_string_pretty(&actual).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
