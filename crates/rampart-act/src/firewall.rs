//! Firewall backends: where bans are enforced in the kernel.
//!
//! rampart owns its own table (nftables) or its own sets and rules
//! (iptables + ipset) and never touches anyone else's. Addresses reach the
//! firewall tools only as validated [`IpNet`] values formatted by Rust, as
//! separate arguments or inside a script piped on stdin: no shell ever runs.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use ipnet::IpNet;
use rampart_config::{FirewallBackend, FirewallConfig};

pub mod ipset;
pub mod nftables;

/// A firewall operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The tool could not be started (not installed, not executable).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The tool ran and reported failure.
    #[error("{program} failed ({status}): {stderr}")]
    Command {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The tool's output could not be understood.
    #[error("cannot read {program} output: {reason}")]
    Output {
        /// The program.
        program: String,
        /// What was wrong.
        reason: String,
    },
}

/// One element of a ban set as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanEntry {
    /// The banned address or prefix.
    pub net: IpNet,
    /// Time left before the kernel drops it, if it has a timeout.
    pub expires_in: Option<Duration>,
}

/// A place where bans are enforced.
///
/// Contract: every method is idempotent and synchronous (it blocks on the
/// firewall tool; async callers use `spawn_blocking`). `ban` of an element
/// already present replaces its timeout. `unban` of an element not present
/// succeeds. A returned error means the kernel state is unchanged for that
/// call's elements; the caller retries or surfaces it, never drops it.
/// `ttl: None` bans until unbanned. Timeouts are rounded up to whole seconds.
pub trait Firewall: Send + Sync {
    /// `nftables` or `ipset`.
    fn name(&self) -> &'static str;

    /// Creates rampart's table, sets and drop rules if missing. Existing
    /// elements are kept.
    fn setup(&self) -> Result<(), FirewallError>;

    /// Bans every element in one transaction (IPv4 and IPv6 mixed).
    fn ban(&self, items: &[(IpNet, Option<Duration>)]) -> Result<(), FirewallError>;

    /// Lifts the bans of these exact elements.
    fn unban(&self, nets: &[IpNet]) -> Result<(), FirewallError>;

    /// Lifts every ban.
    fn flush(&self) -> Result<(), FirewallError>;

    /// The elements in the sets now.
    fn list(&self) -> Result<Vec<BanEntry>, FirewallError>;

    /// Removes rampart's table, sets and rules entirely.
    fn teardown(&self) -> Result<(), FirewallError>;
}

/// Builds the configured backend; `None` for backend `none`.
pub fn build_firewall(config: &FirewallConfig) -> Option<Box<dyn Firewall>> {
    match config.backend {
        FirewallBackend::Nftables => Some(Box::new(nftables::Nftables::new(config))),
        FirewallBackend::Ipset => Some(Box::new(ipset::Ipset::new(config))),
        FirewallBackend::None => None,
    }
}

/// Runs the firewall tools: directly, or inside a network namespace through
/// `ip netns exec <ns>`. Arguments are passed as separate argv elements and
/// scripts on stdin; no shell is involved.
#[derive(Debug, Clone)]
struct ToolRunner {
    netns: Option<String>,
}

/// What a finished tool run left behind.
struct ToolOutput {
    /// The command line, for error messages (stdin not included).
    command: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl ToolOutput {
    /// The failure this run represents, with its stderr.
    fn into_error(self) -> FirewallError {
        FirewallError::Command {
            program: self.command,
            status: self.status.to_string(),
            stderr: self.stderr.trim().to_owned(),
        }
    }
}

impl ToolRunner {
    fn new(netns: Option<&str>) -> Self {
        Self {
            netns: netns.map(str::to_owned),
        }
    }

    /// Runs `program args…`, feeding `stdin` if given, and returns whatever
    /// exit status it had. Only a failure to start is an error.
    fn exec(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<ToolOutput, FirewallError> {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns.as_str()]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .env("LC_ALL", "C")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = self.describe(program, args);
        let mut child = cmd.spawn().map_err(|source| FirewallError::Spawn {
            program: command.clone(),
            source,
        })?;
        let pipe = child.stdin.take();
        // The script is written from another thread so that a tool printing a
        // lot before reading all of its input cannot deadlock us.
        let output = std::thread::scope(|scope| {
            if let (Some(mut pipe), Some(text)) = (pipe, stdin) {
                scope.spawn(move || {
                    // A write error means the tool exited early; its exit
                    // status and stderr say why.
                    let _ = pipe.write_all(text.as_bytes());
                });
            }
            child.wait_with_output()
        })
        .map_err(|source| FirewallError::Spawn {
            program: command.clone(),
            source,
        })?;
        Ok(ToolOutput {
            command,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Like [`ToolRunner::exec`], but a non-zero exit is an error; returns stdout.
    fn run(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, FirewallError> {
        let out = self.exec(program, args, stdin)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(out.into_error())
        }
    }

    fn describe(&self, program: &Path, args: &[&str]) -> String {
        let mut text = match &self.netns {
            Some(ns) => format!("ip netns exec {ns} {}", program.display()),
            None => program.display().to_string(),
        };
        for arg in args {
            text.push(' ');
            text.push_str(arg);
        }
        text
    }
}

/// Rejects a table (or set prefix) name that could not be passed to the
/// tools verbatim: 1 to 24 ASCII letters, digits, `_` and `-`, starting with
/// a letter or `_` (nft reads a leading digit as a number).
fn check_table_name(table: &str, program: &Path) -> Result<(), FirewallError> {
    let valid = (1..=24).contains(&table.len())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && table
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if valid {
        return Ok(());
    }
    Err(FirewallError::Spawn {
        program: program.display().to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "table name {table:?} must be 1 to 24 letters, digits, _ and -, starting with a letter or _"
            ),
        ),
    })
}

/// Whole seconds for a ban timeout: rounded up, at least 1 (a zero timeout
/// would mean "no timeout" to both nft and ipset).
fn timeout_secs(ttl: Duration) -> u64 {
    let secs = ttl.as_secs();
    let secs = if ttl.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    };
    secs.max(1)
}

/// An address or prefix as the tools write it: a bare address for a single
/// host, `addr/len` otherwise, host bits cleared.
fn net_text(net: &IpNet) -> String {
    let net = net.trunc();
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_seconds_and_never_zero() {
        assert_eq!(timeout_secs(Duration::ZERO), 1);
        assert_eq!(timeout_secs(Duration::from_millis(1)), 1);
        assert_eq!(timeout_secs(Duration::from_secs(60)), 60);
        assert_eq!(timeout_secs(Duration::from_millis(60_001)), 61);
        assert_eq!(timeout_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn nets_are_written_as_the_tools_expect() {
        let text = |s: &str| net_text(&s.parse().unwrap());
        assert_eq!(text("10.0.0.5/32"), "10.0.0.5");
        assert_eq!(text("10.0.0.5/24"), "10.0.0.0/24");
        assert_eq!(text("fd00::1/128"), "fd00::1");
        assert_eq!(text("fd00::1/64"), "fd00::/64");
    }

    #[test]
    fn table_names_are_checked() {
        let nft = Path::new("nft");
        assert!(check_table_name("rampart", nft).is_ok());
        assert!(check_table_name("rampart-t_1", nft).is_ok());
        for bad in [
            "",
            "1abc",
            "-x",
            "a b",
            "a;flush ruleset",
            "abcdefghijklmnopqrstuvwxy",
        ] {
            assert!(check_table_name(bad, nft).is_err(), "{bad:?} accepted");
        }
    }
}
