//! Every parser against garbage: deterministic pseudo-random bytes and
//! mutated real lines. Nothing may panic, and every line is an event or a
//! counted skip. (The fuzz targets in `fuzz/` do the same without end, on
//! nightly; this runs on stable in every `cargo test`.)

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rampart_config::{JsonMapping, LogFormat};
use rampart_logs::SkipReason;
use rampart_logs::journal::parse_journal_entry;
use rampart_logs::parse::access::parse_access;
use rampart_logs::parse::errorlog::{parse_apache_error, parse_nginx_error};
use rampart_logs::parse::syslog::parse_syslog;
use rampart_logs::parse::{
    LineParser, ParseOptions, ParserRules, build_parser, parse_program_message,
};

/// xorshift64*: small, deterministic, good enough to make garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// Bytes that matter to the parsers, so mutations hit their branches.
const INTERESTING: &[u8] =
    b" []\"\\:<>-/.#*,=()'\r\n\t0123456789abcdefZT+\xc3\xa9\xe2\x98\x83\xff\x00";

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        "Nov 21 06:34:06 host sshd[123]: Failed password for root from 203.0.113.1 port 22 ssh2",
        "Nov  1 06:34:06 host sshd-session[9]: Invalid user bob from 2001:db8::1 port 5555",
        "2026-11-21T06:34:06.123456+01:00 host sshd[123]: Connection closed by invalid user bob 1.2.3.4 port 5555 [preauth]",
        "<38>1 2026-11-21T06:34:06.003Z host sshd 1234 - [a b=\"c\\\"]\"] Failed publickey for x from 1.2.3.4 port 5 ssh2: RSA SHA256:x",
        "Nov 21 06:34:06 h sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
        "203.0.113.5 - - [21/Nov/2026:06:34:06 +0000] \"GET /a?b HTTP/1.1\" 404 153 \"-\" \"Mozilla/5.0\"",
        "www.example.com:443 203.0.113.5 - bob [21/Nov/2026:06:34:06 -0130] \"\\x16\\x03\" 400 - \"-\" \"a \\\"b\\\"\"",
        "2026/11/21 06:34:06 [error] 123#123: *5 user \"bob\": password mismatch, client: 1.2.3.4, server: x, request: \"GET /admin HTTP/1.1\", host: \"x\"",
        "2026/11/21 06:34:06 [error] 1#1: *9 limiting requests, excess: 10.500 by zone \"one\", client: 2001:db8::2, server: x",
        "[Sat Nov 21 06:34:06.123456 2026] [auth_basic:error] [pid 1:tid 2] [client 1.2.3.4:5555] AH01618: user bob not found: /admin",
        "[Sat Nov 21 06:34:06 2026] [error] [client [2001:db8::1]:80] (13)x: [client 1.2.3.4] AH01630: client denied by server configuration: /x",
        "{\"ts\":\"2026-11-21T06:34:06Z\",\"client\":{\"ip\":\"203.0.113.5\"},\"event\":{\"type\":\"login_failed\"},\"user\":{\"name\":\"bob\"}}",
        "{\"ts\":1795242846123,\"client.ip\":\"::ffff:1.2.3.4\",\"event\":{\"type\":7},\"n\":[1,{\"a\":null}]}",
        "{\"__CURSOR\":\"s=1\",\"__REALTIME_TIMESTAMP\":\"1795242846000000\",\"SYSLOG_IDENTIFIER\":\"sshd\",\"_PID\":\"12\",\"_HOSTNAME\":\"h\",\"MESSAGE\":\"Failed password for root from 1.2.3.4 port 22 ssh2\"}",
        "{\"__CURSOR\":\"s=2\",\"__REALTIME_TIMESTAMP\":\"1\",\"SYSLOG_IDENTIFIER\":\"sshd\",\"MESSAGE\":[70,97,105,108]}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // And every line of the golden parser cases.
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/parsers");
    if let Ok(dirs) = std::fs::read_dir(golden) {
        for dir in dirs.flatten() {
            if let Ok(input) = std::fs::read(dir.path().join("input.log")) {
                seeds.extend(input.split(|&b| b == b'\n').map(<[u8]>::to_vec));
            }
        }
    }
    seeds
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut line = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(line.len() + 1);
        match rng.below(8) {
            0 => line.truncate(at),
            1 => {
                if at < line.len() {
                    line[at] = rng.byte();
                }
            }
            2 => line.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 => {
                let end = (at + rng.below(16)).min(line.len());
                line.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(32)).min(line.len());
                let piece = line[at..end].to_vec();
                line.splice(at..at, piece);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                line.truncate(at);
                line.extend_from_slice(&other[from..]);
            }
            6 => {
                if at < line.len() {
                    line[at] = INTERESTING[rng.below(INTERESTING.len())];
                }
            }
            _ => line = line[at..].to_vec(),
        }
    }
    line
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(200);
    (0..len)
        .map(|_| {
            if rng.below(3) == 0 {
                INTERESTING[rng.below(INTERESTING.len())]
            } else {
                rng.byte()
            }
        })
        .collect()
}

fn mapping() -> JsonMapping {
    JsonMapping {
        time: Some("ts".to_owned()),
        addr: "client.ip".to_owned(),
        kind: None,
        kind_field: Some("event.type".to_owned()),
        kind_map: BTreeMap::from([
            ("login_failed".to_owned(), "auth_failure".to_owned()),
            ("7".to_owned(), "other".to_owned()),
        ]),
        fields: BTreeMap::from([
            ("user".to_owned(), "user.name".to_owned()),
            ("n".to_owned(), "n.1.a".to_owned()),
        ]),
    }
}

#[test]
fn no_parser_panics_on_garbage() {
    let rules = ParserRules::builtin().expect("built-in rules load");
    let reference: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
    let opts = ParseOptions {
        source: Arc::from("fuzz"),
        reference,
        keep_raw: true,
    };
    let json = mapping();
    let mut parsers: Vec<(LogFormat, Box<dyn LineParser>)> = [
        LogFormat::Sshd,
        LogFormat::Nginx,
        LogFormat::Apache,
        LogFormat::Json,
    ]
    .into_iter()
    .map(|f| {
        (
            f,
            build_parser(f, &rules, Some(&json), opts.clone()).unwrap(),
        )
    })
    .collect();
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let rounds = 12_000;
    for round in 0..rounds {
        let input = if round % 4 == 0 {
            random_bytes(&mut rng)
        } else {
            mutate(&mut rng, &seeds)
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut tally = Vec::new();
            for (format, parser) in &mut parsers {
                match parser.parse(&input) {
                    Ok(event) => {
                        assert_eq!(&*event.source, "fuzz");
                        assert!(event.raw.is_some(), "{format:?}: raw kept");
                        assert!(
                            event.addr.is_some(),
                            "{format:?}: events of these formats have an address"
                        );
                        tally.push("event");
                    }
                    Err(reason) => {
                        assert!(SkipReason::ALL.contains(&reason));
                        tally.push(reason.as_str());
                    }
                }
            }
            if let Ok(text) = std::str::from_utf8(&input) {
                let _ = parse_syslog(text, reference);
                let _ = parse_access(text);
                let _ = parse_nginx_error(text);
                let _ = parse_apache_error(text);
                for program in ["sshd", "sshd-session", "sudo", ""] {
                    if let Ok(event) =
                        parse_program_message(&rules, &opts, reference, program, text)
                    {
                        assert_eq!(
                            event.raw.as_deref(),
                            Some(format!("{program}: {text}").as_str())
                        );
                    }
                }
            }
            let _ = parse_journal_entry(&input);
            tally
        }));
        match result {
            Ok(tally) => {
                for t in tally {
                    *outcomes.entry(t).or_default() += 1;
                }
            }
            Err(_) => panic!(
                "a parser panicked on round {round}, input (lossy): {:?}\nbytes: {:02x?}",
                String::from_utf8_lossy(&input),
                input
            ),
        }
    }
    // The mutations must reach past the envelopes, or this test proves little.
    assert!(
        outcomes.get("event").copied().unwrap_or(0) > 400,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get("no_match").copied().unwrap_or(0) > 100,
        "{outcomes:?}"
    );
    eprintln!("garbage outcomes over {rounds} inputs × 4 formats: {outcomes:?}");
}
