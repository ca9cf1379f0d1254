//! Request signatures against real benign traffic (CSIC 2010) and a corpus
//! of well-known attack payloads (`fixtures/http/attacks.txt`).

use std::collections::BTreeMap;
use std::path::Path;

use rampart_config::SignatureConfig;
use rampart_detect::http::{RequestInfo, SignatureHit, SignatureKind, Signatures};

fn signatures() -> Signatures {
    Signatures::with_libinjection(&SignatureConfig::default()).unwrap()
}

/// One CSIC request: method, target (path and query), user agent, body.
struct CsicRequest {
    method: String,
    target: String,
    user_agent: Option<String>,
    body: Option<String>,
}

/// Raw HTTP requests separated by blank lines; a POST's body is the line
/// after the blank line that ends its head.
fn parse_csic(text: &str) -> Vec<CsicRequest> {
    let mut out: Vec<CsicRequest> = Vec::new();
    let mut in_head = false;
    let mut wants_body = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let starts_request = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD "]
            .iter()
            .any(|m| line.starts_with(m))
            && line.ends_with("HTTP/1.1");
        if starts_request {
            let mut parts = line.split(' ');
            let method = parts.next().unwrap_or_default().to_owned();
            let url = parts.next().unwrap_or_default();
            // Absolute URLs: keep the path and query only.
            let target = match url.split_once("://") {
                Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
                None => url,
            };
            out.push(CsicRequest {
                method,
                target: target.to_owned(),
                user_agent: None,
                body: None,
            });
            in_head = true;
            wants_body = false;
            continue;
        }
        let Some(req) = out.last_mut() else { continue };
        if in_head {
            if line.is_empty() {
                in_head = false;
                wants_body = req.method == "POST" || req.method == "PUT";
            } else if let Some(ua) = line.strip_prefix("User-Agent: ") {
                req.user_agent = Some(ua.to_owned());
            }
        } else if wants_body && !line.is_empty() {
            req.body = Some(line.to_owned());
            wants_body = false;
        }
    }
    out
}

fn check_target(
    s: &Signatures,
    method: &str,
    target: &str,
    ua: Option<&str>,
) -> Option<SignatureHit> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    s.check(&RequestInfo {
        method,
        path,
        query,
        user_agent: ua,
        ..RequestInfo::default()
    })
}

/// CSIC 2010's 36,000 benign requests (`../shared/data/csic2010`, outside
/// the repository): none may be blocked.
#[test]
fn csic2010_benign_requests_are_not_blocked() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/csic2010/normalTrafficTraining.txt.gz");
    if !path.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("CI must have the shared data at {}", path.display());
        }
        eprintln!("skipped: shared data not found at {}", path.display());
        return;
    }
    let gz = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&path)
        .output()
        .expect("gzip");
    assert!(gz.status.success(), "gzip failed");
    let text = String::from_utf8_lossy(&gz.stdout);
    let requests = parse_csic(&text);
    let s = signatures();
    let mut blocked = Vec::new();
    let mut bodies = 0;
    for r in &requests {
        let mut hit = check_target(&s, &r.method, &r.target, r.user_agent.as_deref());
        if let Some(body) = &r.body {
            bodies += 1;
            hit = hit.or_else(|| s.check_body_form(body.as_bytes()));
        }
        if let Some(hit) = hit {
            blocked.push((hit, r.target.clone(), r.body.clone()));
        }
    }
    eprintln!(
        "csic2010: {} requests parsed ({} form bodies), {} blocked",
        requests.len(),
        bodies,
        blocked.len()
    );
    for (hit, target, body) in blocked.iter().take(30) {
        eprintln!(
            "  {} at {} ({}): {} {}",
            hit.kind,
            hit.location,
            hit.detail,
            target,
            body.as_deref().unwrap_or("")
        );
    }
    assert_eq!(requests.len(), 36_000, "the parser lost requests");
    assert!(
        blocked.is_empty(),
        "{} benign requests blocked",
        blocked.len()
    );
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The attack corpus: `kind<TAB>where<TAB>payload`. `where` is `q` (the
/// payload is the decoded value of a query parameter, encoded by the
/// test), `raw` (the payload is the query value as sent, already encoded)
/// or `path` (the payload is the path as sent).
#[test]
fn attack_corpus_is_detected() {
    let text = include_str!("fixtures/http/attacks.txt");
    let s = signatures();
    // kind -> (payloads, blocked, blocked as that kind)
    let mut totals: BTreeMap<&str, (u32, u32, u32)> = BTreeMap::new();
    let mut missed = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, '\t');
        let (Some(kind), Some(place), Some(payload)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("attacks.txt:{}: expected kind<TAB>where<TAB>payload", n + 1);
        };
        let target = match place {
            "q" => format!("/page?q={}", encode(payload)),
            "raw" => format!("/page?q={payload}"),
            "path" => payload.to_owned(),
            other => panic!("attacks.txt:{}: unknown place {other:?}", n + 1),
        };
        let expected = match kind {
            "sqli" => SignatureKind::Sqli,
            "xss" => SignatureKind::Xss,
            "traversal" => SignatureKind::Traversal,
            other => panic!("attacks.txt:{}: unknown kind {other:?}", n + 1),
        };
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let hit = check_target(&s, "GET", &target, Some(ua));
        let t = totals.entry(kind).or_default();
        t.0 += 1;
        match hit {
            Some(h) => {
                t.1 += 1;
                t.2 += u32::from(h.kind == expected);
            }
            None => missed.push(format!("{kind} {payload}")),
        }
    }
    for (kind, (n, blocked, right)) in &totals {
        eprintln!(
            "{kind}: {n} payloads, {blocked} blocked ({:.1} %), {right} as {kind} ({:.1} %)",
            100.0 * f64::from(*blocked) / f64::from(*n),
            100.0 * f64::from(*right) / f64::from(*n),
        );
    }
    for m in &missed {
        eprintln!("  missed: {m}");
    }
    for (kind, (n, blocked, _)) in &totals {
        let rate = f64::from(*blocked) / f64::from(*n);
        assert!(rate >= 0.90, "{kind}: only {:.1} % blocked", 100.0 * rate);
    }
    assert!(totals.values().map(|t| t.0).sum::<u32>() >= 300);
}

/// Untrusted bytes: random and mutated requests never panic.
#[test]
fn random_and_mutated_requests_never_panic() {
    let s = signatures();
    let seeds: &[&[u8]] = &[
        b"id=1' or '1'='1&q=<script>alert(1)</script>",
        b"f=..%2f..%2fetc%2fpasswd%00&x=%c0%ae%25%32%65",
        b"a=\"><img src=x onerror=alert(1)>&b=1 union select 1,2--",
        b"q=%%%25%2525&&==&=&;;",
    ];
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000 {
        let mut buf: Vec<u8> = if i % 2 == 0 {
            (0..next() % 200).map(|_| next() as u8).collect()
        } else {
            seeds[(next() % seeds.len() as u64) as usize].to_vec()
        };
        for _ in 0..next() % 8 {
            if buf.is_empty() {
                break;
            }
            let at = (next() % buf.len() as u64) as usize;
            buf[at] = next() as u8;
        }
        let _ = s.check_body_form(&buf);
        let text = String::from_utf8_lossy(&buf);
        let _ = s.check(&RequestInfo {
            method: "GET",
            path: &text,
            query: Some(&text),
            user_agent: Some(&text),
            ..RequestInfo::default()
        });
    }
}

/// `LibInjection` skips the engine for inputs it cannot flag: on plain
/// words, numbers and SQL keywords, and on markup-free text, it must answer
/// exactly as the engine does.
#[test]
fn libinjection_shortcuts_answer_as_the_engine_does() {
    use libinjectionrs::sqli::sqli_data::SQL_KEYWORDS;
    use rampart_detect::http::{InjectionDetector, LibInjection};

    let mut words: Vec<Vec<u8>> = SQL_KEYWORDS
        .iter()
        .flat_map(|k| k.word.split(' '))
        .filter(|w| w.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|w| w.to_ascii_lowercase().into_bytes())
        .collect();
    for w in [
        &b"vino"[..],
        b"rioja",
        b"madrid",
        b"carrito",
        b"a\xf1adir",
        b"caf\xc3\xa9",
        b"1",
        b"100",
        b"0x",
        b"0x1f",
        b"1e5",
        b"0b101",
        b"1union",
        b"2select",
        b"0xunion",
        b"1eunion",
        b"9or",
        b"12345678z",
        b"3f9a0c",
        b"x",
        b"e",
        b"n",
        b"q",
        b"u",
        b"b",
    ] {
        words.push(w.to_vec());
    }
    let separators: [&[u8]; 5] = [b" ", b"  ", b"\t", b"\n", b"\xa0"];
    let mut x: u64 = 42;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // A dense vocabulary, so that many samples are injections.
    let dense: Vec<Vec<u8>> = [
        "1",
        "0",
        "99",
        "0x1f",
        "1e3",
        "union",
        "select",
        "all",
        "or",
        "and",
        "xor",
        "order",
        "by",
        "having",
        "from",
        "where",
        "sleep",
        "benchmark",
        "group",
        "limit",
        "like",
        "is",
        "not",
        "null",
        "true",
        "users",
        "password",
        "x",
        "current",
        "path",
        "next",
        "value",
        "for",
        "1union",
        "1or",
    ]
    .iter()
    .map(|w| w.as_bytes().to_vec())
    .collect();
    let li = LibInjection;
    let mut flagged = 0;
    for n in 0..200_000 {
        let vocabulary = if n % 4 == 0 { &words } else { &dense };
        let mut input = Vec::new();
        for i in 0..1 + next() % 5 {
            if i > 0 {
                input.extend_from_slice(separators[(next() % 5) as usize]);
            }
            input.extend_from_slice(&vocabulary[(next() % vocabulary.len() as u64) as usize]);
        }
        let engine = libinjectionrs::detect_sqli(&input).is_injection();
        flagged += u32::from(engine);
        assert_eq!(
            li.sqli(&input).is_some(),
            engine,
            "sqli {:?}",
            String::from_utf8_lossy(&input)
        );
    }
    eprintln!("shortcut check: {flagged} of 200000 plain samples are injections, all agreed");
    assert!(
        flagged > 1000,
        "the sample should hold injections: {flagged}"
    );

    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n:;&#()/\\.,%+-*!?@$[]{}|~^\x00\xa0\xf1";
    let tokens: [&[u8]; 12] = [
        b"onerror",
        b"onload",
        b"javascript:",
        b"vbscript:",
        b"style",
        b"href",
        b"src",
        b"expression(",
        b"&#106;",
        b"alert(1)",
        b"script",
        b"data:text/html",
    ];
    for _ in 0..60_000 {
        let mut input = Vec::new();
        for _ in 0..1 + next() % 8 {
            if next() % 2 == 0 {
                input.extend_from_slice(tokens[(next() % tokens.len() as u64) as usize]);
            } else {
                input.push(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
        }
        assert!(
            !libinjectionrs::detect_xss(&input).is_injection(),
            "xss {:?}",
            String::from_utf8_lossy(&input)
        );
        assert!(!li.xss(&input));
    }
}
