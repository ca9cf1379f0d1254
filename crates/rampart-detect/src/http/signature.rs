//! Per-request signatures: SQL injection and XSS (through a replaceable
//! [`InjectionDetector`]), path traversal, scanner user agents and
//! sensitive-path probes.
//!
//! What is inspected: the path (percent-decoded, `+` kept), every query
//! parameter's name and value and every form-body field
//! ([`Signatures::check_body_form`]) (percent-decoded with `+` as space),
//! and the user agent. Decoding follows [`percent_decode`]: one more pass
//! when the result still holds an escape (double encoding), invalid escapes
//! kept as is. Each decoded value is cut at `max_value_bytes`.
//!
//! - Scanner agents: known tool names as words in the lower-cased agent,
//!   plus `extra_scanner_agents` as substrings.
//! - Sensitive paths: anchored patterns on the decoded path (`/.env`,
//!   `/.git/`, backups ending `.sql`/`.bak`…, WordPress paths unless
//!   `wordpress = false`), plus `extra_sensitive_paths` as substrings.
//! - Traversal: `../` and `..\`, a trailing `/..`, NUL, overlong UTF-8 dots
//!   and slashes, IIS `%u` escapes, system files (`etc/passwd`, `win.ini`…),
//!   and `php://`-style wrappers, in the path and in every value.
//! - SQLi and XSS: the detector, on values that can hold them (at least 3
//!   bytes, not made only of letters, digits and `_ . @ -`, and `/` in a
//!   path). XSS also covers a value that *is* a script URL
//!   (`javascript:alert(1)`, no space after the colon), which libinjection
//!   only flags inside markup. The user agent goes to the detector only if
//!   it holds `<` (XSS) or a quote (SQLi): browsers' agents hold neither.
//!
//! Patterns are compiled once, in [`Signatures::new`]. A check allocates
//! only to decode a value that has escapes and to describe a hit.

use std::fmt;
use std::sync::LazyLock;

use libinjectionrs::sqli::TokenType;
use libinjectionrs::sqli::sqli_data::{SQL_KEYWORDS, lookup_word};
use rampart_config::SignatureConfig;
use regex::bytes::Regex;
use rustc_hash::FxHashSet;
use serde::{Serialize, Serializer};

use super::RequestInfo;
use super::decode::{form_pairs, percent_decode};

/// A SQL injection and XSS engine. Implementations are pure, never panic
/// on any input, and are called from many threads at once.
pub trait InjectionDetector: Send + Sync {
    /// Engine name, for logs.
    fn name(&self) -> &'static str;
    /// SQL injection in `input`: its fingerprint, if it is one.
    fn sqli(&self, input: &[u8]) -> Option<String>;
    /// Whether `input` is a cross-site scripting attempt.
    fn xss(&self, input: &[u8]) -> bool;
}

/// libinjection (the `libinjectionrs` port): SQLi by token fingerprints,
/// XSS by an HTML5 tokenizer in five contexts.
///
/// The port spends about 2 µs on a short value, so inputs it cannot flag
/// are answered without running it, exactly (a test compares both on
/// hundreds of thousands of inputs):
///
/// - SQLi: an input of only letters, digits, whitespace and non-ASCII
///   bytes tokenizes to words and numbers. No fingerprint of barewords and
///   numbers alone is an injection, so the engine runs only when a word is
///   in libinjection's keyword table, or starts one of its multi-word
///   keywords (`CURRENT PATH`).
/// - XSS: without `<` no tag can open, and without `=` no attribute gets a
///   value; with neither (nor quotes or backticks), nothing can be flagged.
#[derive(Debug, Clone, Copy, Default)]
pub struct LibInjection;

/// The words (letters and digits only) libinjection's tokenizer makes more
/// than a bareword of: its keywords, and the first words of its multi-word
/// keywords that are not keywords themselves (two barewords can merge into
/// one, `CURRENT PATH`). Built once from its own table, with its own lookup
/// as the judge; a hash set answers far faster than its binary search.
static SQL_WORDS: LazyLock<FxHashSet<&'static str>> = LazyLock::new(|| {
    let plain = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric());
    let mut words = FxHashSet::default();
    for k in SQL_KEYWORDS {
        if plain(k.word) && lookup_word(k.word) != TokenType::Bareword {
            words.insert(k.word);
        }
        if let Some((first, _)) = k.word.split_once(' ')
            && plain(first)
        {
            words.insert(first);
        }
    }
    words
});

/// libinjection's keyword size limit: longer words are barewords.
const SQL_WORD_MAX: usize = 31;

/// Whether `word` (ASCII letters and digits) may be more than a bareword.
fn sql_word(word: &[u8]) -> bool {
    if word.is_empty() || word.len() > SQL_WORD_MAX {
        return false;
    }
    let mut buf = [0u8; SQL_WORD_MAX];
    let upper = &mut buf[..word.len()];
    upper.copy_from_slice(word);
    upper.make_ascii_uppercase();
    std::str::from_utf8(upper).is_ok_and(|w| SQL_WORDS.contains(w))
}

/// Whether libinjection's SQLi could flag `input`: false only for inputs
/// made of letters, digits, whitespace and non-ASCII bytes whose words are
/// all barewords.
fn sqli_possible(input: &[u8]) -> bool {
    // libinjection's word delimiters among these bytes: whitespace and 0xA0.
    let delimiter = |b: u8| b.is_ascii_whitespace() || b == 0x0b || b == 0xa0;
    if !input
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || delimiter(b) || b >= 0x80)
    {
        return true;
    }
    input.split(|&b| delimiter(b)).any(|run| {
        let Some(&first) = run.first() else {
            return false;
        };
        if !first.is_ascii_digit() {
            // One word; with a non-ASCII byte it cannot be a keyword.
            return run.is_ascii() && sql_word(run);
        }
        // A number, then possibly a word from any letter on.
        (1..run.len())
            .any(|i| run[i].is_ascii_alphabetic() && run[i..].is_ascii() && sql_word(&run[i..]))
    })
}

impl InjectionDetector for LibInjection {
    fn name(&self) -> &'static str {
        "libinjection"
    }

    fn sqli(&self, input: &[u8]) -> Option<String> {
        if !sqli_possible(input) {
            return None;
        }
        let r = libinjectionrs::detect_sqli(input);
        r.is_injection().then(|| {
            r.fingerprint
                .map(|f| f.as_str().to_owned())
                .unwrap_or_default()
        })
    }

    fn xss(&self, input: &[u8]) -> bool {
        input
            .iter()
            .any(|b| matches!(b, b'<' | b'>' | b'=' | b'"' | b'\'' | b'`'))
            && libinjectionrs::detect_xss(input).is_injection()
    }
}

/// What a signature found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// Path traversal or local file inclusion.
    Traversal,
    /// A known scanner or attack tool's user agent.
    Scanner,
    /// A probe for a file only attackers ask for.
    SensitivePath,
}

impl SignatureKind {
    /// `sqli`, `xss`, `traversal`, `scanner` or `sensitive_path`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureKind::Sqli => "sqli",
            SignatureKind::Xss => "xss",
            SignatureKind::Traversal => "traversal",
            SignatureKind::Scanner => "scanner",
            SignatureKind::SensitivePath => "sensitive_path",
        }
    }
}

impl fmt::Display for SignatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the request a signature matched. Displays (and serialises) as
/// `path`, `query:NAME`, `body:NAME` or `user-agent`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// The URL path.
    Path,
    /// A query parameter (name decoded, cut at 64 characters).
    Query(String),
    /// A form-body field (name decoded, cut at 64 characters).
    Body(String),
    /// The `User-Agent` header.
    UserAgent,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path => f.write_str("path"),
            Location::Query(name) => write!(f, "query:{name}"),
            Location::Body(name) => write!(f, "body:{name}"),
            Location::UserAgent => f.write_str("user-agent"),
        }
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One signature match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureHit {
    /// What was found.
    pub kind: SignatureKind,
    /// Where.
    pub location: Location,
    /// The SQLi fingerprint, or the matched text (at most 64 characters).
    pub detail: String,
}

/// A pattern that could not be built.
#[derive(Debug, thiserror::Error)]
#[error("gateway.detection.signatures.{key}: {source}")]
pub struct SignatureError {
    /// The config key the pattern comes from.
    pub key: &'static str,
    /// Why it failed.
    #[source]
    pub source: regex::Error,
}

/// A shipped pattern (`rules/patterns/http.toml`) as one group.
fn pattern(name: &str) -> String {
    crate::patterns::get(name)
        .map(crate::patterns::Pattern::group)
        .unwrap_or_else(|| panic!("rules/patterns: no pattern {name:?}"))
}

/// Where form pairs come from.
#[derive(Clone, Copy)]
enum Form {
    Query,
    Body,
}

/// The request signatures, compiled from `[gateway.detection.signatures]`.
pub struct Signatures {
    detector: Box<dyn InjectionDetector>,
    sqli: bool,
    xss: bool,
    script_url: Option<Regex>,
    traversal: Option<Regex>,
    scanner: Option<Regex>,
    sensitive: Option<Regex>,
    max_value: usize,
    max_body: usize,
}

impl fmt::Debug for Signatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signatures")
            .field("detector", &self.detector.name())
            .field("sqli", &self.sqli)
            .field("xss", &self.xss)
            .field("traversal", &self.traversal.is_some())
            .field("scanner", &self.scanner.is_some())
            .field("sensitive", &self.sensitive.is_some())
            .finish()
    }
}

/// `flags`, then the base patterns and the extra literals as alternatives.
fn build(
    key: &'static str,
    flags: &str,
    base: &[&str],
    extra: impl Iterator<Item = String>,
) -> Result<Option<Regex>, SignatureError> {
    let mut alternatives: Vec<String> = base.iter().map(|p| format!("(?:{p})")).collect();
    alternatives.extend(
        extra
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(|s| regex::escape(&s)),
    );
    if alternatives.is_empty() {
        return Ok(None);
    }
    let pattern = format!("{flags}{}", alternatives.join("|"));
    Regex::new(&pattern)
        .map(Some)
        .map_err(|source| SignatureError { key, source })
}

/// At most 64 characters of `b`, lossy.
fn short(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(64).collect()
}

/// Whether the traversal patterns can match: each needs one of these bytes.
fn may_traverse(v: &[u8]) -> bool {
    v.iter().any(|b| {
        matches!(
            b,
            b'.' | b'%' | b'/' | b'\\' | b':' | 0x00 | 0xc0 | 0xc1 | 0xe0
        )
    })
}

/// Whether a value may hold SQLi or XSS: 3 bytes or more, not only
/// letters, digits, `_ . @ -` and `also`.
fn may_inject(v: &[u8], also: u8) -> bool {
    v.len() >= 3
        && v.iter().any(|&b| {
            !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-') || b == also)
        })
}

impl Signatures {
    /// Compiles the signatures; SQLi and XSS go to `detector`.
    pub fn new(
        cfg: &SignatureConfig,
        detector: Box<dyn InjectionDetector>,
    ) -> Result<Self, SignatureError> {
        let traversal = if cfg.traversal {
            build(
                "traversal",
                "(?i-u)",
                &[&pattern("traversal")],
                std::iter::empty(),
            )?
        } else {
            None
        };
        let scanner = if cfg.scanner {
            // Matched against the lower-cased agent: case-sensitive
            // matching of lower-case literals is several times faster.
            build(
                "extra_scanner_agents",
                "(?-u)",
                &[&pattern("scanner-agent")],
                cfg.extra_scanner_agents
                    .iter()
                    .map(|s| s.to_ascii_lowercase()),
            )?
        } else {
            None
        };
        let sensitive = if cfg.sensitive_paths {
            let mut base = vec![pattern("sensitive-path")];
            if cfg.wordpress {
                base.push(pattern("wordpress-path"));
            }
            build(
                "extra_sensitive_paths",
                "(?i-u)",
                &base.iter().map(String::as_str).collect::<Vec<_>>(),
                cfg.extra_sensitive_paths.iter().cloned(),
            )?
        } else {
            None
        };
        let script_url = if cfg.xss {
            build(
                "xss",
                "(?i-u)",
                &[&pattern("script-url")],
                std::iter::empty(),
            )?
        } else {
            None
        };
        Ok(Self {
            detector,
            sqli: cfg.sqli,
            xss: cfg.xss,
            script_url,
            traversal,
            scanner,
            sensitive,
            max_value: cfg.max_value_bytes.max(1),
            max_body: cfg.max_body_bytes,
        })
    }

    /// The signatures of `cfg` with libinjection for SQLi and XSS.
    pub fn with_libinjection(cfg: &SignatureConfig) -> Result<Self, SignatureError> {
        Self::new(cfg, Box::new(LibInjection))
    }

    /// The first signature the request's head matches: user agent, then
    /// path, then query parameters.
    pub fn check(&self, req: &RequestInfo<'_>) -> Option<SignatureHit> {
        if let Some(ua) = req.user_agent
            && let Some(hit) = self.check_user_agent(ua.as_bytes())
        {
            return Some(hit);
        }
        if let Some(hit) = self.check_path(req.path.as_bytes()) {
            return Some(hit);
        }
        let query = req.query?;
        self.check_form(query.as_bytes(), Form::Query)
    }

    /// The first signature an `application/x-www-form-urlencoded` body
    /// matches, in its first `max_body_bytes`.
    pub fn check_body_form(&self, body: &[u8]) -> Option<SignatureHit> {
        let body = body.get(..self.max_body).unwrap_or(body);
        self.check_form(body, Form::Body)
    }

    fn cut<'a>(&self, v: &'a [u8]) -> &'a [u8] {
        v.get(..self.max_value).unwrap_or(v)
    }

    fn check_user_agent(&self, ua: &[u8]) -> Option<SignatureHit> {
        let ua = self.cut(ua);
        let hit = |kind, detail| {
            Some(SignatureHit {
                kind,
                location: Location::UserAgent,
                detail,
            })
        };
        if let Some(scanner) = &self.scanner {
            let mut stack = [0u8; 512];
            let heap;
            let lower: &[u8] = match stack.get_mut(..ua.len()) {
                Some(buf) => {
                    buf.copy_from_slice(ua);
                    buf.make_ascii_lowercase();
                    buf
                }
                None => {
                    heap = ua.to_ascii_lowercase();
                    &heap
                }
            };
            if let Some(m) = scanner.find(lower) {
                return hit(SignatureKind::Scanner, short(m.as_bytes()));
            }
        }
        // Browser agents hold neither quotes nor angle brackets.
        if self.xss && ua.contains(&b'<') && self.detector.xss(ua) {
            return hit(SignatureKind::Xss, short(ua));
        }
        if self.sqli
            && (ua.contains(&b'\'') || ua.contains(&b'"'))
            && let Some(fp) = self.detector.sqli(ua)
        {
            return hit(SignatureKind::Sqli, fp);
        }
        None
    }

    fn check_path(&self, raw: &[u8]) -> Option<SignatureHit> {
        let decoded = percent_decode(raw, false);
        let path = self.cut(&decoded);
        let hit = |kind, detail| {
            Some(SignatureHit {
                kind,
                location: Location::Path,
                detail,
            })
        };
        if let Some(m) = self.sensitive.as_ref().and_then(|re| re.find(path)) {
            return hit(SignatureKind::SensitivePath, short(m.as_bytes()));
        }
        let (kind, detail) = self.check_value(path, b'/')?;
        hit(kind, detail)
    }

    fn check_form(&self, form: &[u8], place: Form) -> Option<SignatureHit> {
        for (name, value) in form_pairs(form) {
            let name = percent_decode(name, true);
            let found = self.check_value(self.cut(&name), 0).or_else(|| {
                let value = percent_decode(value, true);
                self.check_value(self.cut(&value), 0)
            });
            if let Some((kind, detail)) = found {
                let name = short(&name);
                let location = match place {
                    Form::Query => Location::Query(name),
                    Form::Body => Location::Body(name),
                };
                return Some(SignatureHit {
                    kind,
                    location,
                    detail,
                });
            }
        }
        None
    }

    /// Traversal, SQLi and XSS in one decoded value; `also` is a byte that
    /// does not make a value worth the injection engine (`/` in paths).
    fn check_value(&self, v: &[u8], also: u8) -> Option<(SignatureKind, String)> {
        if let Some(re) = &self.traversal
            && may_traverse(v)
            && let Some(m) = re.find(v)
        {
            return Some((SignatureKind::Traversal, short(m.as_bytes())));
        }
        if !may_inject(v, also) {
            return None;
        }
        if self.sqli
            && let Some(fp) = self.detector.sqli(v)
        {
            return Some((SignatureKind::Sqli, fp));
        }
        if self.xss && self.detector.xss(v) {
            return Some((SignatureKind::Xss, short(v)));
        }
        if let Some(m) = self.script_url.as_ref().and_then(|re| re.find(v)) {
            return Some((SignatureKind::Xss, short(m.as_bytes())));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigs() -> Signatures {
        Signatures::with_libinjection(&SignatureConfig::default()).unwrap()
    }

    fn get<'a>(path: &'a str, query: Option<&'a str>) -> RequestInfo<'a> {
        RequestInfo {
            method: "GET",
            path,
            query,
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            ),
            ..RequestInfo::default()
        }
    }

    fn kind(s: &Signatures, path: &str, query: Option<&str>) -> Option<SignatureKind> {
        s.check(&get(path, query)).map(|h| h.kind)
    }

    #[test]
    fn finds_each_kind_where_it_is() {
        let s = sigs();
        let hit = s
            .check(&get("/item", Some("id=1%27%20OR%20%271%27%3D%271")))
            .unwrap();
        assert_eq!(hit.kind, SignatureKind::Sqli);
        assert_eq!(hit.location.to_string(), "query:id");
        let hit = s
            .check(&get("/search", Some("q=%3Cscript%3Ealert(1)%3C/script%3E")))
            .unwrap();
        assert_eq!(hit.kind, SignatureKind::Xss);
        let hit = s
            .check(&get("/static/..%252f..%252fetc/passwd", None))
            .unwrap();
        assert_eq!(
            (hit.kind, hit.location.clone()),
            (SignatureKind::Traversal, Location::Path)
        );
        assert_eq!(
            kind(&s, "/download", Some("file=%c0%ae%c0%ae/x")),
            Some(SignatureKind::Traversal)
        );
        assert_eq!(
            kind(&s, "/a", Some("f=x%00.jpg")),
            Some(SignatureKind::Traversal)
        );
        assert_eq!(kind(&s, "/.env", None), Some(SignatureKind::SensitivePath));
        assert_eq!(
            kind(&s, "/app/.git/config", None),
            Some(SignatureKind::SensitivePath)
        );
        assert_eq!(
            kind(&s, "/backup.sql", None),
            Some(SignatureKind::SensitivePath)
        );
        assert_eq!(
            kind(&s, "/wp-login.php", None),
            Some(SignatureKind::SensitivePath)
        );
        let mut req = get("/", None);
        req.user_agent = Some("sqlmap/1.7.2#stable (https://sqlmap.org)");
        let hit = s.check(&req).unwrap();
        assert_eq!(hit.kind, SignatureKind::Scanner);
        assert_eq!(
            (hit.location.to_string(), hit.detail.as_str()),
            ("user-agent".into(), "sqlmap")
        );
        let hit = s
            .check_body_form(b"user=bob&pass=x%27+or+1%3D1--+")
            .unwrap();
        assert_eq!(
            (hit.kind, hit.location.to_string()),
            (SignatureKind::Sqli, "body:pass".into())
        );
    }

    #[test]
    fn ordinary_requests_pass() {
        let s = sigs();
        for (path, query) in [
            ("/", None),
            ("/admin/users", None),
            (
                "/blog/2024/05/hello-world",
                Some("utm_source=news&utm_medium=email"),
            ),
            ("/search", Some("q=select+a+union+card+from+the+shop")),
            ("/search", Some("q=javascript%3A+the+good+parts")),
            ("/search", Some("q=o%27reilly+and+sons")),
            ("/search", Some("q=50%25+off+%26+free+shipping")),
            ("/img/logo.png", Some("v=3")),
            ("/api/items", Some("sort=-created&filter=name%3Dfoo")),
            (
                "/redirect",
                Some("to=https%3A%2F%2Fexample.com%2Fa%3Fb%3Dc"),
            ),
            ("/search", Some("q=tom+%26+jerry%27s+%22best%22+episodes")),
            ("/wiki/C%2B%2B", None),
            ("/files/report.final.pdf", None),
        ] {
            assert_eq!(s.check(&get(path, query)), None, "{path} {query:?}");
        }
    }

    #[test]
    fn kinds_switch_off_and_extras_apply() {
        let cfg = SignatureConfig {
            wordpress: false,
            scanner: true,
            traversal: false,
            extra_scanner_agents: vec!["EvilBot".into()],
            extra_sensitive_paths: vec!["/internal/".into()],
            ..SignatureConfig::default()
        };
        let s = Signatures::with_libinjection(&cfg).unwrap();
        assert_eq!(kind(&s, "/wp-login.php", None), None);
        assert_eq!(kind(&s, "/x/../../etc/passwd", None), None);
        assert_eq!(
            kind(&s, "/app/INTERNAL/metrics", None),
            Some(SignatureKind::SensitivePath)
        );
        let mut req = get("/", None);
        req.user_agent = Some("Mozilla/5.0 evilbot/2");
        assert_eq!(s.check(&req).map(|h| h.kind), Some(SignatureKind::Scanner));
        let off = SignatureConfig {
            sqli: false,
            xss: false,
            traversal: false,
            scanner: false,
            sensitive_paths: false,
            ..SignatureConfig::default()
        };
        let s = Signatures::with_libinjection(&off).unwrap();
        assert_eq!(
            kind(&s, "/.env", Some("id=1%27%20or%20%271%27%3D%271")),
            None
        );
    }
}
