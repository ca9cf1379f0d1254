//! The command line as one surface: global options work the same in
//! every subcommand, `--json` wherever there is output, clear errors.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn bans_unbans_and_tokens_answer_in_json_with_the_global_flag_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let ban = json(&rampart(&[
        "--json",
        "decisions",
        "--database",
        &db,
        "ban",
        "203.0.113.7",
        "--for",
        "1h",
    ]));
    assert_eq!(ban["banned"], "203.0.113.7");
    let id = ban["decision_id"].as_i64().expect("an id");
    assert_eq!(ban["dry_run"], false);
    assert!(ban["until"].is_string());

    let list = rampart(&["decisions", "list", "--database", &db, "--json"]);
    let first: Value =
        serde_json::from_slice(list.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["id"], id);

    let refused = rampart(&["decisions", "--database", &db, "unban"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--all"));

    let unban = json(&rampart(&[
        "decisions",
        "--database",
        &db,
        "unban",
        "203.0.113.7",
        "--json",
    ]));
    assert_eq!(unban["target"], "203.0.113.7");
    assert_eq!(unban["lifted"], serde_json::json!([id]));

    let token = json(&rampart(&[
        "token",
        "--database",
        &db,
        "create",
        "ci",
        "--json",
    ]));
    assert_eq!(token["name"], "ci");
    assert!(token["token"].as_str().unwrap().starts_with("rpt_"));
    let revoked = json(&rampart(&[
        "--json",
        "token",
        "--database",
        &db,
        "revoke",
        "ci",
    ]));
    assert_eq!(revoked["revoked"], true);
}

#[test]
fn a_password_from_a_pipe_adds_a_user_and_an_empty_one_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let empty = rampart(&["user", "--database", &db, "add", "alice", "--role", "admin"]);
    assert!(!empty.status.success());
    let err = String::from_utf8_lossy(&empty.stderr);
    assert!(err.contains("no password on standard input"), "{err}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "user",
            "--database",
            &db,
            "add",
            "alice",
            "--role",
            "admin",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let added = json(&child.wait_with_output().unwrap());
    assert_eq!(added["user"], "alice");
    assert_eq!(added["role"], "admin");
}

#[test]
fn config_check_in_json_lists_problems_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, "[agent]\nnmae = 1\n[policy]\ndryrun = true\n").unwrap();
    let out = rampart(&["config", "check", "-c", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"].as_array().unwrap().len(), 2, "{report}");

    std::fs::write(&path, "").unwrap();
    let ok: Value = json(&rampart(&[
        "--json",
        "config",
        "check",
        "-c",
        path.to_str().unwrap(),
    ]));
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["sources"], 0);
}
