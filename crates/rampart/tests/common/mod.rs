//! Helpers the binary's end-to-end tests share: the binary, free ports,
//! log appends, and network namespaces for firewall tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// The `rampart` binary under test.
pub fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Appends `lines` to the file at `path` (created if missing), as a
/// logging daemon would.
pub fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// A network namespace, deleted on drop.
pub struct Netns(pub String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Whether firewall tests can run here (root, `nft`, `ip`). In CI they
/// must: a missing tool fails the test instead of skipping it. `without`
/// says what the test does when they are missing.
pub fn firewall_tools(without: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let works = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let (nft, ip) = (works("nft", "--version"), works("ip", "-V"));
    if root && nft && ip {
        return true;
    }
    let why = format!("needs root, nft and ip (root={root}, nft={nft}, ip={ip})");
    if std::env::var_os("CI").is_some() {
        panic!("{why}: CI must provide them");
    }
    eprintln!("{why}: {without}");
    false
}
