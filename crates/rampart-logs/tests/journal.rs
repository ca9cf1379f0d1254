//! `parse_journal_entry` on realistic `journalctl --output=json` lines, and
//! `JournalFollower` against a fake journalctl script and, when available,
//! the real one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rampart_logs::SkipReason;
use rampart_logs::journal::{JournalFollower, parse_journal_entry};

/// sshd via syslog transport, as printed by journalctl 252.
const SSHD_FAILED: &str = r#"{"__CURSOR":"s=3f1c2a9b7e4d4c0f9a1b2c3d4e5f6a7b;i=1a2f3;b=9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a;m=2b3c4d5e6f;t=61a8f3c2d1e0f;x=7e6d5c4b3a291807","__REALTIME_TIMESTAMP":"1718000000123456","__MONOTONIC_TIMESTAMP":"186372091247","_BOOT_ID":"9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a","_TRANSPORT":"syslog","PRIORITY":"6","SYSLOG_FACILITY":"4","SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"48213","SYSLOG_TIMESTAMP":"Jun 10 06:13:20 ","_PID":"48213","_UID":"0","_GID":"0","_COMM":"sshd","_EXE":"/usr/sbin/sshd","_CMDLINE":"sshd: unknown [priv]","_CAP_EFFECTIVE":"1ffffffffff","_SELINUX_CONTEXT":"unconfined\n","_SYSTEMD_CGROUP":"/system.slice/ssh.service","_SYSTEMD_UNIT":"ssh.service","_SYSTEMD_SLICE":"system.slice","_SYSTEMD_INVOCATION_ID":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","_MACHINE_ID":"4b5a69788796a5b4c3d2e1f00f1e2d3c","_HOSTNAME":"web-1","_SOURCE_REALTIME_TIMESTAMP":"1718000000123001","MESSAGE":"Failed password for invalid user admin from 203.0.113.7 port 52344 ssh2"}"#;

/// A message with invalid UTF-8 ("bad \xff byte"): journalctl prints it as
/// an array of byte numbers.
const BYTE_ARRAY_MESSAGE: &str = r#"{"__CURSOR":"s=3f1c;i=1a2f4;b=9d8c;m=2b3c4d5f00;t=61a8f3c2d1f10;x=1","__REALTIME_TIMESTAMP":"1718000001000000","_TRANSPORT":"stdout","PRIORITY":"6","SYSLOG_IDENTIFIER":"myapp","_PID":"311","_COMM":"myapp","_HOSTNAME":"web-1","MESSAGE":[98,97,100,32,255,32,98,121,116,101]}"#;

/// Kernel messages have no SYSLOG_IDENTIFIER and no _PID, only _COMM-less
/// kernel fields; a userspace line without SYSLOG_IDENTIFIER falls back to
/// _COMM.
const NO_IDENTIFIER: &str = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1718000002000000","_COMM":"nginx","SYSLOG_PID":"77","MESSAGE":"worker started"}"#;

const MESSAGE_NULL: &str = r#"{"__CURSOR":"s=1;i=3","__REALTIME_TIMESTAMP":"1718000003000000","SYSLOG_IDENTIFIER":"big","MESSAGE":null}"#;
const MESSAGE_MISSING: &str =
    r#"{"__CURSOR":"s=1;i=4","__REALTIME_TIMESTAMP":"1718000003000000","SYSLOG_IDENTIFIER":"x"}"#;
const NO_CURSOR: &str = r#"{"__REALTIME_TIMESTAMP":"1718000003000000","MESSAGE":"m"}"#;
const NO_TIMESTAMP: &str = r#"{"__CURSOR":"s=1;i=5","MESSAGE":"m"}"#;
const BAD_TIMESTAMP: &str = r#"{"__CURSOR":"s=1;i=6","__REALTIME_TIMESTAMP":"soon","MESSAGE":"m"}"#;

#[test]
fn sshd_failure_with_string_message() {
    let e = parse_journal_entry(SSHD_FAILED.as_bytes()).unwrap();
    assert!(e.cursor.starts_with("s=3f1c2a9b"));
    assert_eq!(
        e.time,
        Utc.timestamp_opt(1_718_000_000, 123_456_000).unwrap()
    );
    assert_eq!(e.identifier, "sshd");
    assert_eq!(e.pid, Some(48213));
    assert_eq!(e.hostname, "web-1");
    assert_eq!(
        e.message,
        "Failed password for invalid user admin from 203.0.113.7 port 52344 ssh2"
    );
}

#[test]
fn byte_array_message_is_decoded_lossily() {
    let e = parse_journal_entry(BYTE_ARRAY_MESSAGE.as_bytes()).unwrap();
    assert_eq!(e.message, "bad \u{fffd} byte");
    assert_eq!(e.identifier, "myapp");
    assert_eq!(e.pid, Some(311));
}

#[test]
fn identifier_falls_back_to_comm_and_pid_to_syslog_pid() {
    let e = parse_journal_entry(NO_IDENTIFIER.as_bytes()).unwrap();
    assert_eq!(e.identifier, "nginx");
    assert_eq!(e.pid, Some(77));
    assert_eq!(e.hostname, "");
}

#[test]
fn escaped_strings_and_trailing_newline() {
    let line =
        "{\"__CURSOR\":\"c\",\"__REALTIME_TIMESTAMP\":\"0\",\"MESSAGE\":\"tab\\there \\u00e9\"}\n";
    let e = parse_journal_entry(line.as_bytes()).unwrap();
    assert_eq!(e.message, "tab\there é");
    assert_eq!(e.time.timestamp(), 0);
    assert_eq!(e.identifier, "");
    assert_eq!(e.pid, None);
}

#[test]
fn unusable_lines_have_a_reason() {
    let cases: [(&str, SkipReason); 8] = [
        (MESSAGE_NULL, SkipReason::Unparsable),
        (MESSAGE_MISSING, SkipReason::Unparsable),
        (NO_CURSOR, SkipReason::Unparsable),
        (NO_TIMESTAMP, SkipReason::BadTimestamp),
        (BAD_TIMESTAMP, SkipReason::BadTimestamp),
        ("not json", SkipReason::Unparsable),
        ("[1,2,3]", SkipReason::Unparsable),
        (
            r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"9223372036854775807","MESSAGE":"m"}"#,
            SkipReason::BadTimestamp,
        ),
    ];
    for (line, reason) in cases {
        assert_eq!(parse_journal_entry(line.as_bytes()), Err(reason), "{line}");
    }
    assert_eq!(
        parse_journal_entry(b"\xff\xfe"),
        Err(SkipReason::Unparsable)
    );
    assert_eq!(
        parse_journal_entry(&SSHD_FAILED.as_bytes()[..100]),
        Err(SkipReason::Unparsable)
    );
}

/// Writes an executable fake journalctl into `dir`: it records its argv
/// (one per line) and pid, prints `stdout`, then runs `then`.
fn fake_journalctl(dir: &Path, stdout: &str, then: &str) -> PathBuf {
    let script = dir.join("journalctl");
    let stdout_file = dir.join("stdout.jsonl");
    fs::write(&stdout_file, stdout).unwrap();
    let body = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{argv}'\necho $$ > '{pid}'\ncat '{out}'\n{then}\n",
        argv = dir.join("argv").display(),
        pid = dir.join("pid").display(),
        out = stdout_file.display(),
    );
    fs::write(&script, body).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Spawns, retrying on ETXTBSY (another test thread may be forking while
/// the script's write descriptor is still open).
fn spawn(
    program: &Path,
    matches: &[String],
    cursor: Option<&str>,
    from_start: bool,
) -> JournalFollower {
    for _ in 0..50 {
        match JournalFollower::spawn(program, matches, cursor, from_start) {
            Ok(f) => return f,
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("spawn {}: {e}", program.display()),
        }
    }
    panic!("spawn {}: text file busy", program.display());
}

fn recv(f: &mut JournalFollower, want: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(f.try_recv_batch(want - got.len()));
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}

fn read_argv(dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = fs::read_to_string(dir.join("pid"))
            && !text.is_empty()
        {
            let argv = fs::read_to_string(dir.join("argv")).unwrap();
            return argv.lines().map(str::to_owned).collect();
        }
        assert!(Instant::now() < deadline, "fake journalctl never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn follower_spawns_reads_and_kills_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("{SSHD_FAILED}\n{BYTE_ARRAY_MESSAGE}\n{NO_IDENTIFIER}\n");
    let program = fake_journalctl(dir.path(), &out, "exec sleep 60");
    let matches = vec![
        "_SYSTEMD_UNIT=ssh.service".to_owned(),
        "SYSLOG_IDENTIFIER=sshd with space".to_owned(),
    ];
    let mut f = spawn(&program, &matches, None, false);
    let lines = recv(&mut f, 3, Duration::from_secs(10));
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], SSHD_FAILED.as_bytes());
    let parsed: Vec<_> = lines
        .iter()
        .map(|l| parse_journal_entry(l).unwrap())
        .collect();
    assert_eq!(parsed[2].identifier, "nginx");
    assert_eq!(
        read_argv(dir.path()),
        [
            "--follow",
            "--output=json",
            "--no-pager",
            "--lines=0",
            "--",
            "_SYSTEMD_UNIT=ssh.service",
            "SYSLOG_IDENTIFIER=sshd with space",
        ]
    );
    assert!(f.is_alive());
    assert_eq!(f.exit_status(), None);
    assert!(!f.is_finished());
    assert!(f.try_recv_batch(10).is_empty());
    let pid = f.pid();
    drop(f);
    // Killed and reaped: the process no longer exists.
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn follower_passes_cursor_and_from_start() {
    let dir = tempfile::tempdir().unwrap();
    let program = fake_journalctl(dir.path(), "", "exec sleep 60");
    let f = spawn(&program, &[], Some("s=abc;i=42"), true);
    assert_eq!(
        read_argv(dir.path()),
        [
            "--follow",
            "--output=json",
            "--no-pager",
            "--after-cursor=s=abc;i=42",
            "--no-tail",
        ]
    );
    drop(f);

    let dir = tempfile::tempdir().unwrap();
    let program = fake_journalctl(dir.path(), "", "exec sleep 60");
    let _f = spawn(&program, &["-x".to_owned()], None, true);
    assert_eq!(
        read_argv(dir.path()),
        [
            "--follow",
            "--output=json",
            "--no-pager",
            "--no-tail",
            "--",
            "-x"
        ]
    );
}

#[test]
fn follower_reports_exit_and_keeps_lines_written_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("{SSHD_FAILED}\n{NO_IDENTIFIER}");
    let program = fake_journalctl(
        dir.path(),
        &out,
        "echo 'Failed to seek to cursor: Invalid argument' >&2\nexit 3",
    );
    let mut f = spawn(&program, &[], Some("bogus"), false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.is_alive() {
        assert!(Instant::now() < deadline, "fake journalctl did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(f.exit_status().and_then(|s| s.code()), Some(3));
    let mut lines = Vec::new();
    while !f.is_finished() {
        assert!(Instant::now() < deadline, "output never drained");
        lines.extend(f.try_recv_batch(100));
        std::thread::sleep(Duration::from_millis(5));
    }
    // The last line has no newline: it is delivered at EOF.
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1], NO_IDENTIFIER.as_bytes());
    while f.last_stderr_line().is_none() {
        assert!(Instant::now() < deadline, "stderr never read");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        f.last_stderr_line().as_deref(),
        Some("Failed to seek to cursor: Invalid argument")
    );
}

#[test]
fn follower_backpressure_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("journalctl");
    fs::write(
        &program,
        r#"#!/bin/sh
i=0
while [ $i -lt 20000 ]; do
  echo '{"__CURSOR":"'$i'","__REALTIME_TIMESTAMP":"1","MESSAGE":"m"}'
  i=$((i+1))
done
"#,
    )
    .unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let mut f = spawn(&program, &[], None, false);
    // Let the reader fill the bounded channel before draining it.
    std::thread::sleep(Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0u32;
    while !f.is_finished() {
        assert!(Instant::now() < deadline, "timed out after {n} lines");
        let batch = f.try_recv_batch(1000);
        for line in &batch {
            assert_eq!(parse_journal_entry(line).unwrap().cursor, n.to_string());
            n += 1;
        }
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert_eq!(n, 20000);
}

#[test]
fn follower_spawn_error_for_missing_program() {
    let dir = tempfile::tempdir().unwrap();
    let err = JournalFollower::spawn(&dir.path().join("nope"), &[], None, false).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

/// Runs the real journalctl when there is one and the journal is readable.
#[test]
fn real_journalctl_when_available() {
    let readable = std::process::Command::new("journalctl")
        .args(["--lines=2", "--output=json", "--no-pager", "--quiet"])
        .output();
    let output = match readable {
        Ok(o) if o.status.success() && o.stderr.is_empty() => o,
        Ok(o) => {
            eprintln!(
                "skipped: journal not readable: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: no journalctl: {e}");
            return;
        }
    };
    let existing: Vec<&[u8]> = output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let program = Path::new("journalctl");

    // From the end: journalctl keeps running and reports nothing on stderr.
    let mut f = spawn(program, &[], None, false);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        f.is_alive(),
        "journalctl exited: {:?}",
        f.last_stderr_line()
    );
    for line in f.try_recv_batch(1000) {
        parse_journal_entry(&line).ok();
    }
    let pid = f.pid();
    drop(f);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());

    // With two entries, resuming after the older one's cursor yields the
    // newer one first.
    let [older, newer] = existing[..] else {
        eprintln!(
            "cursor check skipped: journal has {} entries",
            existing.len()
        );
        return;
    };
    let (Ok(older), Ok(newer)) = (parse_journal_entry(older), parse_journal_entry(newer)) else {
        eprintln!("cursor check skipped: last entries have no text message");
        return;
    };
    let mut f = spawn(program, &[], Some(&older.cursor), false);
    let lines = recv(&mut f, 1, Duration::from_secs(10));
    assert_eq!(lines.len(), 1);
    assert_eq!(parse_journal_entry(&lines[0]).unwrap().cursor, newer.cursor);
}
