//! `rampart config check` as a user meets it: every problem at once, each
//! naming its key and value, warnings that do not fail the check, and the
//! same errors stopping a role before it starts.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

fn check(text: &str, mode: u32) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    let out = rampart()
        .args(["config", "check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (out, dir)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn two_unknown_keys_are_two_problems_and_the_exit_code_says_config() {
    let (out, _dir) = check("[agent]\nnmae = \"a\"\n[policy]\ndryrun = true\n", 0o600);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(":2: agent.nmae: unknown field `nmae`"),
        "{err}"
    );
    assert!(
        err.contains(":4: policy.dryrun: unknown field `dryrun`"),
        "{err}"
    );
    assert!(err.contains("2 problems"), "{err}");
}

#[test]
fn warnings_are_printed_and_do_not_fail_the_check() {
    let (out, _dir) = check(
        "[policy]\nwhitelist = [\"0.0.0.0/0\"]\n[fleet]\nurl = \"http://127.0.0.1:9700\"\ntoken = \"literal-token\"\n",
        0o644,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: "), "{err}");
    assert!(
        err.contains("\"0.0.0.0/0\" covers every IPv4 address"),
        "{err}"
    );
    assert!(
        err.contains("readable by every user and holds fleet.token"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 warnings"));
}

#[test]
fn missing_tls_files_fail_the_check_and_stop_the_server_before_it_listens() {
    let text = "[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n";
    let (out, dir) = check(text, 0o600);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("server.tls.cert = \"/nonexistent/cert.pem\": cannot read"),
        "{err}"
    );
    let server = rampart()
        .args(["server", "-c"])
        .arg(dir.path().join("rampart.toml"))
        .output()
        .unwrap();
    let err = stderr(&server);
    assert_eq!(server.status.code(), Some(2), "{err}");
    assert!(
        err.contains("server.tls.key = \"/nonexistent/key.pem\""),
        "{err}"
    );
}
