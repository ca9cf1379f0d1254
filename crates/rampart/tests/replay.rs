//! `rampart replay` over the inputs an operator has: a plain log, the
//! rotated logs logrotate compresses (gzip, several gzip members, zstd),
//! standard input; and a reader that stops early (`| head`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// An sshd log: `attackers` addresses failing passwords ten times each,
/// between benign logins, cron noise and lines of other programs.
fn auth_log(attackers: u32) -> String {
    let mut out = String::new();
    let mut n = 0u32;
    for round in 0..10 {
        for a in 0..attackers {
            // Ten attempts a second overall: each address tries again
            // within a minute or so.
            n += 1;
            let second = n / 10;
            let (m, s) = (second / 60 % 60, second % 60);
            out.push_str(&format!(
                "Nov 21 08:{m:02}:{s:02} web1 sshd[{}]: Failed password for root from 198.51.{}.{} port {} ssh2\n",
                3000 + a,
                a / 250,
                a % 250 + 1,
                40000 + round
            ));
            if a % 3 == 0 {
                out.push_str(&format!(
                    "Nov 21 08:{m:02}:{s:02} web1 sshd[{}]: Accepted publickey for deploy from 192.0.2.{} port 5000 ssh2: ED25519 SHA256:abc\n",
                    9000 + a,
                    a % 200 + 1
                ));
                out.push_str(&format!(
                    "Nov 21 08:{m:02}:{s:02} web1 CRON[{}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n",
                    100 + a
                ));
            }
        }
    }
    out
}

fn replay(args: &[&str], input: &Path, stdin: Option<&[u8]>) -> Vec<Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["replay", "--json", "--no-progress", "--threads", "2"])
        .args(["--type", "sshd", "--reference", "2026-11-21T23:59:59Z"])
        .args(args)
        .arg(input)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || pipe.write_all(&data));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "replay {}: {}",
        input.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Decisions (address and time) and the line counts of one replay.
fn digest(rows: &[Value]) -> (Vec<(String, String)>, Value) {
    let mut decisions = Vec::new();
    let mut summary = Value::Null;
    for row in rows {
        match row.get("summary") {
            Some(s) => summary = serde_json::json!([s["lines"], s["parsed"], s["skipped"]]),
            None => decisions.push((
                row["ip"].as_str().unwrap().to_owned(),
                row["at"].as_str().unwrap().to_owned(),
            )),
        }
    }
    (decisions, summary)
}

#[test]
fn compressed_rotated_logs_and_stdin_replay_like_the_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = auth_log(300);
    let plain = dir.path().join("auth.log");
    std::fs::write(&plain, &text).unwrap();

    let (decisions, summary) = digest(&replay(&[], &plain, None));
    assert_eq!(decisions.len(), 300, "every attacker is banned once");
    assert!(decisions.iter().all(|(ip, _)| ip.starts_with("198.51.")));
    let lines = text.lines().count() as u64;
    assert_eq!(summary[0], lines);

    let gzip = |data: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    };
    // Named .1, not .gz: the content says what it is.
    let gz = dir.path().join("auth.log.1");
    std::fs::write(&gz, gzip(text.as_bytes())).unwrap();
    // Two gzip members back to back, cut in the middle of a line.
    let cut = text.len() / 2 + 7;
    let members = dir.path().join("auth.log.2.gz");
    let mut both = gzip(&text.as_bytes()[..cut]);
    both.extend(gzip(&text.as_bytes()[cut..]));
    std::fs::write(&members, both).unwrap();
    let zst = dir.path().join("auth.log.3.zst");
    std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();

    for path in [&gz, &members, &zst] {
        assert_eq!(
            digest(&replay(&[], path, None)),
            (decisions.clone(), summary.clone()),
            "{}",
            path.display()
        );
    }
    assert_eq!(
        digest(&replay(&[], Path::new("-"), Some(text.as_bytes()))),
        (decisions.clone(), summary.clone()),
        "standard input"
    );
    assert_eq!(
        digest(&replay(&[], Path::new("-"), Some(&gzip(text.as_bytes())))),
        (decisions, summary),
        "gzip on standard input"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["replay", "--type", "sshd", "--no-progress"])
        .arg(dir.path().join("nope.log"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nope.log"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_reader_that_stops_early_ends_replay_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("auth.log");
    // Far more output than a pipe holds.
    std::fs::write(&plain, auth_log(2000)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["replay", "--type", "sshd", "--no-progress", "--events"])
        .arg(&plain)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("auth_failure"), "{first}");
    // The reader is gone now.
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "no message, no panic: {stderr}");
    assert_eq!(
        output.status.code(),
        Some(141),
        "the status of a closed pipe"
    );
}
