//! Parser rules: what a log message means, as data (`rules/parsers/*.toml`).
//!
//! A rule file holds `[[parser]]` tables. Each names where it applies
//! (`applies_to`: `syslog` messages of some `programs`, `nginx_error` or
//! `apache_error` messages, optionally of some apache `modules`) and lists
//! `[[parser.pattern]]`s: an event `kind`, a `regex` with named groups, and
//! optionally a `prefilter` literal.
//!
//! ```toml
//! [[parser]]
//! name = "sshd"
//! applies_to = "syslog"
//! programs = ["sshd", "sshd-session", "sshd-auth"]
//!
//! [[parser.pattern]]
//! name = "invalid-user"
//! kind = "invalid_user"
//! regex = '^Invalid user (?P<user>.*) from (?P<ip>\S+) port (?P<port>\d+)$'
//! ```
//!
//! The group `ip` is the event's address (required for syslog patterns;
//! error-log patterns may leave it out, the envelope's client address is
//! used then). Every other named group that took part in the match becomes
//! an event field of the same name (empty captures are left out).
//!
//! Matching a message: the parsers for the program (or error-log shape) are
//! tried in load order, and in each the patterns in file order; the first
//! pattern that matches wins. Patterns without a prefilter share one
//! `RegexSet`, so a message no pattern wants costs one pass of a lazy DFA
//! (and anchored patterns give up after a few bytes). A pattern with a
//! `prefilter` is kept out of that set and tried only when the message
//! contains the literal (memchr's memmem): use it for unanchored patterns.
//! Captures run only for the winning candidate.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use memchr::memmem;
use rampart_core::rule_error::toml_error;
use rampart_core::{EventKind, Fields, RuleError, RuleErrors, line_of};
use regex::{Regex, RegexSet};
use serde::Deserialize;
use toml::Spanned;

use crate::SkipReason;

/// Compiled parser rules, cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct ParserRules {
    inner: Arc<RulesInner>,
}

#[derive(Debug, Clone, Default)]
struct RulesInner {
    parsers: Vec<CompiledParser>,
    /// Syslog program → its parsers, in load order.
    programs: Vec<(Box<str>, Box<[usize]>)>,
    /// Syslog parsers without a program list (they see every program).
    any_program: Box<[usize]>,
    nginx_error: Box<[usize]>,
    apache_error: Box<[usize]>,
}

/// Where a parser's patterns apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppliesTo {
    Syslog,
    NginxError,
    ApacheError,
}

impl AppliesTo {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "syslog" => Some(Self::Syslog),
            "nginx_error" => Some(Self::NginxError),
            "apache_error" => Some(Self::ApacheError),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledParser {
    applies_to: AppliesTo,
    /// Apache modules this parser is limited to (empty: all).
    modules: Box<[Box<str>]>,
    patterns: Vec<CompiledPattern>,
    /// One set over the patterns without a prefilter.
    set: Option<RegexSet>,
}

#[derive(Debug, Clone)]
struct CompiledPattern {
    kind: EventKind,
    regex: Regex,
    prefilter: Option<memmem::Finder<'static>>,
    /// Index in the parser's set (patterns without a prefilter).
    set_index: Option<usize>,
    /// Capture group index of `ip`.
    ip_group: Option<usize>,
    /// Other named groups: field name and group index.
    fields: Box<[(Cow<'static, str>, usize)]>,
}

/// What the error-log envelope says about the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvelopeAddr {
    /// No client in the envelope.
    Absent,
    /// A client that is an address.
    Addr(IpAddr),
    /// A client that is not an address (a host name).
    Bad,
}

/// A message a pattern accepted.
#[derive(Debug)]
pub(crate) struct RuleMatch {
    pub(crate) kind: EventKind,
    pub(crate) addr: IpAddr,
    pub(crate) fields: Fields,
}

// --- the file format -------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    parser: Vec<ParserSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParserSpec {
    /// Unique name of the parser, across files.
    name: Spanned<String>,
    /// `syslog`, `nginx_error` or `apache_error`.
    applies_to: Spanned<String>,
    /// Syslog programs whose messages this parser reads (empty: every program).
    #[serde(default)]
    programs: Option<Spanned<Vec<String>>>,
    /// Apache modules (`auth_basic`, `evasive20`…) this parser reads (empty: every module).
    #[serde(default)]
    modules: Option<Spanned<Vec<String>>>,
    /// For people.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// The patterns, tried in order.
    #[serde(default)]
    pattern: Vec<PatternSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternSpec {
    /// Unique within its parser.
    name: Spanned<String>,
    /// An event kind name (`auth_failure`, `invalid_user`…).
    kind: Spanned<String>,
    /// A regex with named groups; `ip` is the address.
    regex: Spanned<String>,
    /// A literal the message must contain for this pattern to be tried.
    #[serde(default)]
    prefilter: Option<Spanned<String>>,
    /// For people.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

/// The rule files shipped with rampart (`rules/parsers/*.toml`).
const BUILTIN: [(&str, &str); 3] = [
    (
        "rules/parsers/sshd.toml",
        include_str!("../../../../rules/parsers/sshd.toml"),
    ),
    (
        "rules/parsers/nginx-error.toml",
        include_str!("../../../../rules/parsers/nginx-error.toml"),
    ),
    (
        "rules/parsers/apache-error.toml",
        include_str!("../../../../rules/parsers/apache-error.toml"),
    ),
];

impl ParserRules {
    /// Loads rule files given as (file name, text), in order. Every file is
    /// checked fully: unknown keys, unknown kinds, bad regexes, syslog
    /// patterns without an `ip` group, duplicate names… and all problems are
    /// returned, each with file, line and reason.
    pub fn from_sources(files: &[(String, String)]) -> Result<ParserRules, RuleErrors> {
        let mut errors = Vec::new();
        let mut parsers = Vec::new();
        let mut program_lists: Vec<Vec<String>> = Vec::new();
        let mut names = HashSet::new();
        for (file, text) in files {
            let spec: RuleFile = match toml::from_str(text) {
                Ok(spec) => spec,
                Err(e) => {
                    errors.push(toml_error(file, text, e.span(), e.message()));
                    continue;
                }
            };
            for p in spec.parser {
                let err = |span: std::ops::Range<usize>, message: String| RuleError {
                    file: file.clone(),
                    line: Some(line_of(text, span.start)),
                    message,
                };
                if !names.insert(p.name.get_ref().clone()) {
                    errors.push(err(
                        p.name.span(),
                        format!("parser {:?} is defined twice", p.name.get_ref()),
                    ));
                }
                let applies_to = AppliesTo::from_name(p.applies_to.get_ref());
                if applies_to.is_none() {
                    errors.push(err(
                        p.applies_to.span(),
                        format!(
                            "unknown applies_to {:?} (expected syslog, nginx_error or apache_error)",
                            p.applies_to.get_ref()
                        ),
                    ));
                }
                if let Some(programs) = &p.programs
                    && applies_to != Some(AppliesTo::Syslog)
                {
                    errors.push(err(
                        programs.span(),
                        "programs only applies to syslog parsers".to_owned(),
                    ));
                }
                if let Some(modules) = &p.modules
                    && applies_to != Some(AppliesTo::ApacheError)
                {
                    errors.push(err(
                        modules.span(),
                        "modules only applies to apache_error parsers".to_owned(),
                    ));
                }
                let ip_required = applies_to == Some(AppliesTo::Syslog);
                let mut patterns = Vec::new();
                let mut set_sources = Vec::new();
                let mut pattern_names = HashSet::new();
                for pat in &p.pattern {
                    let before = errors.len();
                    if !pattern_names.insert(pat.name.get_ref().as_str()) {
                        errors.push(err(
                            pat.name.span(),
                            format!(
                                "pattern {:?} is defined twice in parser {:?}",
                                pat.name.get_ref(),
                                p.name.get_ref()
                            ),
                        ));
                    }
                    let kind = EventKind::from_name(pat.kind.get_ref());
                    if kind.is_none() {
                        errors.push(err(
                            pat.kind.span(),
                            format!("unknown event kind {:?}", pat.kind.get_ref()),
                        ));
                    }
                    let regex = match Regex::new(pat.regex.get_ref()) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            errors.push(err(
                                pat.regex.span(),
                                format!("bad regex: {}", regex_reason(&e)),
                            ));
                            None
                        }
                    };
                    if let Some(prefilter) = &pat.prefilter
                        && prefilter.get_ref().is_empty()
                    {
                        errors.push(err(prefilter.span(), "prefilter is empty".to_owned()));
                    }
                    let Some(regex) = regex else { continue };
                    let ip_group = regex.capture_names().position(|n| n == Some("ip"));
                    if ip_group.is_none() && ip_required {
                        errors.push(err(
                            pat.regex.span(),
                            "regex has no (?P<ip>…) group for the address".to_owned(),
                        ));
                    }
                    let (Some(kind), true) = (kind, errors.len() == before) else {
                        continue;
                    };
                    let fields = regex
                        .capture_names()
                        .enumerate()
                        .filter_map(|(i, n)| n.filter(|n| *n != "ip").map(|n| (field_name(n), i)))
                        .collect();
                    let prefilter = pat
                        .prefilter
                        .as_ref()
                        .map(|p| memmem::Finder::new(p.get_ref().as_bytes()).into_owned());
                    let set_index = if prefilter.is_none() {
                        set_sources.push(pat.regex.get_ref().clone());
                        Some(set_sources.len() - 1)
                    } else {
                        None
                    };
                    patterns.push(CompiledPattern {
                        kind,
                        regex,
                        prefilter,
                        set_index,
                        ip_group,
                        fields,
                    });
                }
                let set = if set_sources.is_empty() {
                    None
                } else {
                    match RegexSet::new(&set_sources) {
                        Ok(set) => Some(set),
                        Err(e) => {
                            errors.push(err(
                                p.name.span(),
                                format!("patterns do not fit one regex set: {}", regex_reason(&e)),
                            ));
                            None
                        }
                    }
                };
                let Some(applies_to) = applies_to else {
                    continue;
                };
                program_lists.push(
                    p.programs
                        .as_ref()
                        .map(|s| s.get_ref().clone())
                        .unwrap_or_default(),
                );
                parsers.push(CompiledParser {
                    applies_to,
                    modules: p
                        .modules
                        .as_ref()
                        .map(|m| m.get_ref().iter().map(|s| s.as_str().into()).collect())
                        .unwrap_or_default(),
                    patterns,
                    set,
                });
            }
        }
        if !errors.is_empty() {
            return Err(RuleErrors(errors));
        }
        Ok(Self::index(parsers, program_lists))
    }

    /// A copy for another thread: the compiled programs are shared, but
    /// each regex gets its own match-cache pool, so threads parsing at the
    /// same time never wait on each other's caches.
    pub fn for_thread(&self) -> ParserRules {
        ParserRules {
            inner: Arc::new((*self.inner).clone()),
        }
    }

    /// The parser rules shipped with rampart (`rules/parsers/*.toml`, built
    /// into the binary).
    pub fn builtin() -> Result<ParserRules, RuleErrors> {
        let files: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        Self::from_sources(&files)
    }

    /// The syslog programs some parser names (for journal matches).
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        self.inner.programs.iter().map(|(p, _)| p.as_ref())
    }

    /// Whether some parser reads syslog messages.
    pub(crate) fn has_syslog_parsers(&self) -> bool {
        self.inner
            .parsers
            .iter()
            .any(|p| p.applies_to == AppliesTo::Syslog)
    }

    /// How many parsers there are.
    pub fn len(&self) -> usize {
        self.inner.parsers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.parsers.is_empty()
    }

    fn index(parsers: Vec<CompiledParser>, program_lists: Vec<Vec<String>>) -> Self {
        let by = |what: AppliesTo| -> Box<[usize]> {
            parsers
                .iter()
                .enumerate()
                .filter(|(_, p)| p.applies_to == what)
                .map(|(i, _)| i)
                .collect()
        };
        let any_program: Box<[usize]> = parsers
            .iter()
            .zip(&program_lists)
            .enumerate()
            .filter(|(_, (p, progs))| p.applies_to == AppliesTo::Syslog && progs.is_empty())
            .map(|(i, _)| i)
            .collect();
        let mut names: Vec<&str> = program_lists.iter().flatten().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let programs = names
            .into_iter()
            .map(|name| {
                let ids: Box<[usize]> = program_lists
                    .iter()
                    .enumerate()
                    .filter(|(i, progs)| progs.iter().any(|p| p == name) || any_program.contains(i))
                    .map(|(i, _)| i)
                    .collect();
                (Box::from(name), ids)
            })
            .collect();
        let nginx_error = by(AppliesTo::NginxError);
        let apache_error = by(AppliesTo::ApacheError);
        Self {
            inner: Arc::new(RulesInner {
                parsers,
                programs,
                any_program,
                nginx_error,
                apache_error,
            }),
        }
    }

    /// Matches a syslog message of `program`. `NoMatch` when no pattern
    /// wants it, `BadAddress` when the pattern's `ip` is not an address.
    pub(crate) fn match_program(
        &self,
        program: &str,
        message: &str,
    ) -> Result<RuleMatch, SkipReason> {
        let inner = &*self.inner;
        let ids = inner
            .programs
            .iter()
            .find(|(p, _)| p.as_ref() == program)
            .map_or(&inner.any_program, |(_, ids)| ids);
        self.run(ids, None, message, EnvelopeAddr::Absent)
    }

    /// Matches an error-log message (`module` is apache's, empty for nginx).
    pub(crate) fn match_error(
        &self,
        shape: AppliesTo,
        module: &str,
        message: &str,
        envelope: EnvelopeAddr,
    ) -> Result<RuleMatch, SkipReason> {
        let ids = match shape {
            AppliesTo::NginxError => &self.inner.nginx_error,
            AppliesTo::ApacheError => &self.inner.apache_error,
            AppliesTo::Syslog => &self.inner.any_program,
        };
        self.run(ids, Some(module), message, envelope)
    }

    fn run(
        &self,
        ids: &[usize],
        module: Option<&str>,
        message: &str,
        envelope: EnvelopeAddr,
    ) -> Result<RuleMatch, SkipReason> {
        for &id in ids {
            let Some(parser) = self.inner.parsers.get(id) else {
                continue;
            };
            if let Some(module) = module
                && !parser.modules.is_empty()
                && !parser.modules.iter().any(|m| m.as_ref() == module)
            {
                continue;
            }
            let mut set_matches = None;
            for pat in &parser.patterns {
                let candidate = match (&pat.prefilter, pat.set_index) {
                    (Some(finder), _) => finder.find(message.as_bytes()).is_some(),
                    (None, Some(i)) => {
                        let Some(set) = &parser.set else { continue };
                        set_matches
                            .get_or_insert_with(|| set.matches(message))
                            .matched(i)
                    }
                    (None, None) => false,
                };
                if !candidate {
                    continue;
                }
                let Some(caps) = pat.regex.captures(message) else {
                    continue;
                };
                let addr = match pat.ip_group.and_then(|g| caps.get(g)) {
                    Some(m) => parse_addr(m.as_str()).ok_or(SkipReason::BadAddress)?,
                    None => match envelope {
                        EnvelopeAddr::Addr(a) => a,
                        EnvelopeAddr::Bad => return Err(SkipReason::BadAddress),
                        EnvelopeAddr::Absent if pat.ip_group.is_some() => {
                            return Err(SkipReason::BadAddress);
                        }
                        EnvelopeAddr::Absent => return Err(SkipReason::NoMatch),
                    },
                };
                let mut fields = Fields::with_capacity(pat.fields.len());
                for (name, group) in pat.fields.iter() {
                    if let Some(m) = caps.get(*group).filter(|m| !m.as_str().is_empty()) {
                        fields.set(name.clone(), m.as_str());
                    }
                }
                return Ok(RuleMatch {
                    kind: pat.kind,
                    addr,
                    fields,
                });
            }
        }
        Err(SkipReason::NoMatch)
    }
}

/// An address as logged (`192.0.2.1`, `2001:db8::1`, `::ffff:192.0.2.1`),
/// normalised (IPv4-mapped becomes IPv4).
pub(crate) fn parse_addr(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .map(rampart_core::addr::normalize_addr)
}

/// Field names the shipped rules use are static; others are allocated per event.
fn field_name(name: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 16] = [
        "user", "port", "method", "path", "zone", "excess", "request", "reason", "host", "server",
        "status", "protocol", "alt_user", "module", "rule", "realm",
    ];
    KNOWN
        .iter()
        .find(|k| **k == name)
        .map_or_else(|| Cow::Owned(name.to_owned()), |k| Cow::Borrowed(*k))
}

/// The last line of a regex error (the reason, without the caret drawing).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ParserRules, RuleErrors> {
        ParserRules::from_sources(&[("t.toml".to_owned(), text.to_owned())])
    }

    #[test]
    fn builtin_rules_load() {
        let rules = ParserRules::builtin().unwrap();
        assert!(rules.len() >= 4);
        let programs: Vec<&str> = rules.programs().collect();
        assert!(programs.contains(&"sshd") && programs.contains(&"sshd-session"));
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"
[[parser]]
name = "a"
applies_to = "syslog"
programs = ["x"]

[[parser.pattern]]
name = "one"
kind = "auth_falure"
regex = '^x (?P<ip>\S+)'

[[parser.pattern]]
name = "two"
kind = "auth_failure"
regex = '^x (\S+)'

[[parser.pattern]]
name = "three"
kind = "auth_failure"
regex = '^x (?P<ip>\S+'

[[parser]]
name = "a"
applies_to = "sysl0g"
"#;
        let errs = load(text).unwrap_err().0;
        let got: Vec<(Option<usize>, &str)> =
            errs.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(errs.len(), 5, "{got:?}");
        assert_eq!(got[0].0, Some(9));
        assert!(got[0].1.contains("unknown event kind \"auth_falure\""));
        assert_eq!(got[1].0, Some(15));
        assert!(got[1].1.contains("no (?P<ip>"));
        assert_eq!(got[2].0, Some(20));
        assert!(
            got[2].1.starts_with("bad regex: unclosed group"),
            "{}",
            got[2].1
        );
        assert_eq!(got[3].0, Some(23));
        assert!(got[3].1.contains("defined twice"));
        assert_eq!(got[4].0, Some(24));
        assert!(got[4].1.contains("unknown applies_to"));
        assert!(errs.iter().all(|e| e.file == "t.toml"));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_name_the_line() {
        let errs = load("[[parser]]\nname = \"a\"\napplies_to = \"syslog\"\nprogramz = []\n")
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, Some(4));
        assert!(errs[0].message.contains("programz"), "{}", errs[0].message);
        let errs = ParserRules::from_sources(&[
            ("a.toml".to_owned(), "[[parser]\n".to_owned()),
            ("b.toml".to_owned(), "x = 1\n".to_owned()),
        ])
        .unwrap_err()
        .0;
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!((errs[0].file.as_str(), errs[0].line), ("a.toml", Some(1)));
        assert_eq!(errs[1].file, "b.toml");
    }

    #[test]
    fn first_pattern_in_order_wins_and_prefilters_gate() {
        let rules = load(
            r#"
[[parser]]
name = "p"
applies_to = "syslog"
programs = ["x"]
[[parser.pattern]]
name = "specific"
kind = "invalid_user"
regex = '^bad user (?P<user>\S+) from (?P<ip>\S+)'
[[parser.pattern]]
name = "general"
kind = "auth_failure"
regex = 'from (?P<ip>\S+)'
prefilter = "from "
"#,
        )
        .unwrap();
        let m = rules
            .match_program("x", "bad user bob from ::ffff:192.0.2.1")
            .unwrap();
        assert_eq!(m.kind, EventKind::InvalidUser);
        assert_eq!(m.addr.to_string(), "192.0.2.1");
        assert_eq!(m.fields.get("user"), Some("bob"));
        let m = rules
            .match_program("x", "whatever from 2001:db8::1")
            .unwrap();
        assert_eq!(m.kind, EventKind::AuthFailure);
        assert_eq!(
            rules.match_program("x", "nothing here").unwrap_err(),
            SkipReason::NoMatch
        );
        assert_eq!(
            rules
                .match_program("y", "bad user a from 1.2.3.4")
                .unwrap_err(),
            SkipReason::NoMatch
        );
        assert_eq!(
            rules
                .match_program("x", "bad user a from example.com")
                .unwrap_err(),
            SkipReason::BadAddress
        );
    }
}
