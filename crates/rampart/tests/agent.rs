//! End-to-end tests of `rampart agent` as a child process: real log files,
//! a real SQLite store, the `decisions` CLI, `/metrics`, restart and
//! rotation; and, as root, bans enforced by nftables inside a network
//! namespace this test creates.

mod common;
use common::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `rampart decisions --database DB ARGS…`, which must succeed; its stdout.
fn decisions_cli(db: &str, args: &[&str]) -> String {
    let out = rampart()
        .args(["decisions", "--database", db])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running agent, stopped with SIGTERM (and killed if need be) on drop.
struct Agent(Child);

impl Agent {
    fn start(config: &Path) -> Self {
        let child = rampart()
            .args(["--log", "info", "agent", "-c"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Agent(child)
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                assert!(status.success(), "agent exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        panic!("agent did not stop within 15 s of SIGTERM");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn failures(ip: &str, n: usize, port0: usize) -> Vec<String> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            format!(
                "{} web1 sshd[{}]: Failed password for root from {ip} port {} ssh2",
                now.format("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
                4000 + i,
                port0 + i
            )
        })
        .collect()
}

fn decisions(db: &str, all: bool) -> Vec<Value> {
    let mut cmd = rampart();
    cmd.args(["decisions", "--database", db, "list", "--json"]);
    if all {
        cmd.arg("--all");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls `check` every 100 ms for up to `secs` seconds.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

fn metric(port: u16, name: &str) -> f64 {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return -1.0;
    };
    let _ = write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut body);
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Setup {
    _dir: tempfile::TempDir,
    log: PathBuf,
    db: String,
    config: PathBuf,
    metrics_port: u16,
}

fn setup(firewall: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    // An existing log: its old attack is not re-read at first start.
    append(&log, &failures("192.0.2.1", 10, 100));
    let db = format!("sqlite://{}", dir.path().join("state/rampart.db").display());
    let metrics_port = free_port();
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
url = "{db}"

[[source]]
name = "sshd"
format = "sshd"
paths = ["{log}"]
poll_interval = "100ms"

[policy]
whitelist = ["10.0.0.0/8"]

[firewall]
{firewall}

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
            log = log.display()
        ),
    )
    .unwrap();
    Setup {
        _dir: dir,
        log,
        db,
        config,
        metrics_port,
    }
}

#[test]
fn agent_bans_from_a_live_log_resumes_after_restart_and_follows_rotation() {
    let s = setup("backend = \"none\"");
    let check = rampart()
        .args(["config", "check", "-c"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let agent = Agent::start(&s.config);
    eventually(10, "metrics endpoint", || {
        metric(s.metrics_port, "rampart_log_lines_total") >= 0.0
    });
    append(&s.log, &failures("203.0.113.5", 5, 200));
    append(&s.log, &failures("10.9.9.9", 8, 300));
    eventually(10, "ban of 203.0.113.5", || {
        decisions(&s.db, false)
            .iter()
            .any(|d| d["ip"] == "203.0.113.5")
    });
    let active = decisions(&s.db, false);
    assert_eq!(
        active.len(),
        1,
        "the old attack and the whitelisted one are not banned: {active:?}"
    );
    let d = &active[0];
    assert_eq!(d["scenario"], "ssh-bruteforce");
    assert_eq!(d["count"], 5);
    assert!(
        d["first_line"]
            .as_str()
            .unwrap()
            .contains("203.0.113.5 port 200")
    );
    assert!(
        d["last_line"]
            .as_str()
            .unwrap()
            .contains("203.0.113.5 port 204")
    );
    eventually(5, "line metrics", || {
        metric(s.metrics_port, "rampart_log_lines_total") == 13.0
    });
    assert_eq!(
        metric(s.metrics_port, "rampart_policy_decisions_total"),
        1.0
    );

    // An operator's ban and unban through the CLI.
    decisions_cli(
        &s.db,
        &[
            "ban",
            "198.51.100.9",
            "--for",
            "2h",
            "--reason",
            "seen in IDS",
        ],
    );
    let refused = rampart()
        .args(["decisions", "--database", &s.db, "ban", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "loopback must be refused without --force"
    );
    assert_eq!(decisions(&s.db, false).len(), 2);
    let out = rampart()
        .args(["decisions", "--database", &s.db, "unban", "203.0.113.5"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("lifted 1 ban"));
    let active = decisions(&s.db, false);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["ip"], "198.51.100.9");
    assert!(
        active[0]["origin"]
            .as_str()
            .unwrap()
            .starts_with("operator:"),
        "{active:?}"
    );
    assert_eq!(active[0]["reason"], "seen in IDS");

    agent.stop();

    // Written while the agent was down: read exactly once after restart.
    append(&s.log, &failures("203.0.113.6", 5, 400));
    let agent = Agent::start(&s.config);
    eventually(10, "ban of 203.0.113.6 after restart", || {
        decisions(&s.db, false)
            .iter()
            .any(|d| d["ip"] == "203.0.113.6")
    });
    eventually(5, "resumed line count", || {
        metric(s.metrics_port, "rampart_log_lines_total") == 5.0
    });

    // Rename rotation: the rest of the old file and the new file are both read.
    let rotated = s.log.with_extension("log.1");
    std::fs::rename(&s.log, &rotated).unwrap();
    append(&rotated, &failures("203.0.113.7", 2, 500));
    append(&s.log, &failures("203.0.113.7", 3, 600));
    eventually(10, "ban of 203.0.113.7 across the rotation", || {
        decisions(&s.db, false)
            .iter()
            .any(|d| d["ip"] == "203.0.113.7" && d["count"] == 5)
    });
    // Garbage does not stop the agent.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.log)
        .unwrap();
    f.write_all(b"\xff\xfe\x00garbage\n").unwrap();
    f.write_all(&vec![b'x'; 300_000]).unwrap();
    f.write_all(b"\n").unwrap();
    drop(f);
    append(&s.log, &failures("203.0.113.8", 5, 700));
    eventually(10, "ban after garbage", || {
        decisions(&s.db, false)
            .iter()
            .any(|d| d["ip"] == "203.0.113.8")
    });
    eventually(5, "skipped lines counted", || {
        metric(s.metrics_port, "rampart_log_lines_skipped_total") >= 2.0
    });
    agent.stop();
}

/// Runs `nft` in the namespace; its stdout.
fn nft_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn agent_enforces_bans_in_nftables_and_lifts_them() {
    if !firewall_tools("skipped") {
        return;
    }
    let ns = Netns(format!("rampart-e2e-{}", std::process::id()));
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns.0])
            .status()
            .unwrap()
            .success()
    );
    let s = setup(&format!(
        "backend = \"nftables\"\ntable = \"rampart_e2e\"\nnetns = \"{}\"",
        ns.0
    ));
    // A ban decided before the agent starts is restored into the kernel at start.
    decisions_cli(&s.db, &["ban", "2001:db8:5::/64", "--for", "1h"]);
    let agent = Agent::start(&s.config);
    let set6 = || nft_in(&ns.0, &["list", "set", "inet", "rampart_e2e", "banned6"]);
    let set4 = || nft_in(&ns.0, &["list", "set", "inet", "rampart_e2e", "banned4"]);
    eventually(10, "restored IPv6 prefix ban", || {
        set6().contains("2001:db8:5::/64")
    });

    append(&s.log, &failures("203.0.113.50", 5, 100));
    eventually(10, "203.0.113.50 in the nftables set", || {
        set4().contains("203.0.113.50")
    });
    assert!(
        set4().contains("timeout 1h") || set4().contains("expires"),
        "{}",
        set4()
    );
    let rules = nft_in(&ns.0, &["list", "chain", "inet", "rampart_e2e", "input"]);
    assert!(
        rules.contains("@banned4") && rules.contains("drop"),
        "{rules}"
    );

    decisions_cli(&s.db, &["unban", "203.0.113.50"]);
    eventually(10, "203.0.113.50 lifted from nftables", || {
        !set4().contains("203.0.113.50")
    });

    decisions_cli(&s.db, &["ban", "192.0.2.77", "--for", "30m"]);
    eventually(10, "operator ban in nftables", || {
        set4().contains("192.0.2.77")
    });
    decisions_cli(&s.db, &["unban", "--all"]);
    eventually(10, "every ban lifted", || {
        !set4().contains("192.0.2.77") && !set6().contains("2001:db8:5::")
    });
    eventually(5, "firewall metrics", || {
        metric(s.metrics_port, "rampart_firewall_operations_total") >= 4.0
    });
    assert_eq!(
        metric(s.metrics_port, "rampart_firewall_failures_total"),
        0.0
    );
    agent.stop();
}
