//! Two network namespaces joined by a veth pair, and TCP probes between them,
//! for tests of the firewall backends against the real kernel.
//!
//! ```text
//!  namespace A (client)                      namespace B (firewall, listener)
//!  va 02:00:00:00:00:0a                      vb 02:00:00:00:00:0b
//!     10.231.0.1/24, fd00:231::1/64  <--->      10.231.0.2/24, fd00:231::2/64
//! ```
//!
//! Neighbours are permanent entries, so neither ARP nor neighbour discovery
//! (which a ban of A would also drop) can make a probe flaky. Sockets are
//! created by threads that entered a namespace with `setns`: a socket belongs
//! to the namespace of the thread that created it.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

/// How long a probe waits for the handshake; a dropped SYN times out.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether the tests can run here: root and every tool in `tools`. In CI
/// (`CI` set) a missing requirement fails the test; elsewhere it prints why
/// the test is skipped and returns false.
pub fn prerequisites(test: &str, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("root".to_owned());
    }
    for tool in tools {
        let flag = if *tool == "ip" { "-V" } else { "--version" };
        let ok = Command::new(tool)
            .arg(flag)
            .output()
            .is_ok_and(|out| out.status.success());
        if !ok {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs {what} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("skipping {test}: needs {what}");
    false
}

/// Runs a command and returns its stdout; panics with its stderr on failure.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Which end of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client.
    A,
    /// The host with the firewall and the listener.
    B,
}

/// Two namespaces with a veth pair between them, deleted on drop (also when
/// the test panics).
pub struct NetnsPair {
    /// Namespace A's name.
    pub a: String,
    /// Namespace B's name.
    pub b: String,
}

impl NetnsPair {
    /// Creates the namespaces, links and addresses; panics if it cannot.
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Built before anything is created, so that a failure half-way still
        // deletes whatever exists.
        let pair = Self {
            a: format!("rampart-t-{pid}-{n}-a"),
            b: format!("rampart-t-{pid}-{n}-b"),
        };
        run("ip", &["netns", "add", &pair.a]);
        run("ip", &["netns", "add", &pair.b]);
        run(
            "ip",
            &[
                "link",
                "add",
                "va",
                "address",
                "02:00:00:00:00:0a",
                "netns",
                &pair.a,
                "type",
                "veth",
                "peer",
                "name",
                "vb",
                "address",
                "02:00:00:00:00:0b",
                "netns",
                &pair.b,
            ],
        );
        for (ns, dev, me, peer, mac) in [
            (&pair.a, "va", 1, 2, "02:00:00:00:00:0b"),
            (&pair.b, "vb", 2, 1, "02:00:00:00:00:0a"),
        ] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
            let v4 = format!("10.231.0.{me}/24");
            let v6 = format!("fd00:231::{me}/64");
            run("ip", &["-n", ns, "addr", "add", &v4, "dev", dev]);
            run("ip", &["-n", ns, "addr", "add", &v6, "dev", dev, "nodad"]);
            for peer_addr in [format!("10.231.0.{peer}"), format!("fd00:231::{peer}")] {
                run(
                    "ip",
                    &[
                        "-n",
                        ns,
                        "neigh",
                        "replace",
                        &peer_addr,
                        "lladdr",
                        mac,
                        "dev",
                        dev,
                        "nud",
                        "permanent",
                    ],
                );
            }
        }
        pair
    }

    /// The namespace name of `side`.
    pub fn name(&self, side: Side) -> &str {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// The address of `side` on the veth link.
    pub fn addr(side: Side, v6: bool) -> IpAddr {
        let last = match side {
            Side::A => 1,
            Side::B => 2,
        };
        if v6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0x231, 0, 0, 0, 0, 0, last))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 231, 0, u8::try_from(last).unwrap()))
        }
    }

    /// Runs `program args…` inside `side`'s namespace and returns stdout.
    pub fn exec(&self, side: Side, program: &str, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", self.name(side), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `f` on a thread that entered `side`'s network namespace.
    pub fn within<T: Send + 'static>(
        &self,
        side: Side,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.name(side));
        thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(&ns, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// A TCP listener in namespace B on `addr`. Connections complete in the
    /// kernel's backlog without `accept`; [`NetnsPair::probe`] drains them.
    pub fn listen(&self, addr: SocketAddr) -> TcpListener {
        let listener = self.within(Side::B, move || {
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr} in B: {e}"))
        });
        listener.set_nonblocking(true).unwrap();
        listener
    }

    /// One connection attempt from namespace A to `target`.
    pub fn probe(&self, listener: &TcpListener, target: SocketAddr) -> Probe {
        let outcome = self.within(Side::A, move || {
            match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
                Ok(_) => Probe::Connected,
                Err(e) if e.kind() == ErrorKind::TimedOut => Probe::TimedOut,
                Err(e) => Probe::Failed(e.to_string()),
            }
        });
        while listener.accept().is_ok() {}
        outcome
    }

    /// Panics unless a connection from A to `target` times out (a dropped SYN).
    pub fn assert_dropped(&self, listener: &TcpListener, target: SocketAddr, when: &str) {
        let outcome = self.probe(listener, target);
        assert_eq!(
            outcome,
            Probe::TimedOut,
            "{when}: A -> {target} should be dropped"
        );
    }

    /// Panics unless a connection from A to `target` succeeds within `limit`.
    pub fn assert_connects_within(
        &self,
        listener: &TcpListener,
        target: SocketAddr,
        limit: Duration,
        when: &str,
    ) {
        let start = Instant::now();
        loop {
            let outcome = self.probe(listener, target);
            if outcome == Probe::Connected {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{when}: A -> {target} still not connecting after {limit:?} (last: {outcome:?})"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Panics unless a connection from A to `target` succeeds (within 3 s).
    pub fn assert_connects(&self, listener: &TcpListener, target: SocketAddr, when: &str) {
        self.assert_connects_within(listener, target, Duration::from_secs(3), when);
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            // Deleting a namespace removes the veth end inside it (and so the pair).
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// What one connection attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The handshake completed.
    Connected,
    /// No answer within [`CONNECT_TIMEOUT`].
    TimedOut,
    /// Anything else (refused, unreachable…).
    Failed(String),
}
