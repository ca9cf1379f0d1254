//! Scenario files: TOML in, compiled [`Scenario`]s out.
//!
//! ```toml
//! [[scenario]]
//! name = "ssh-bruteforce"
//! description = "Repeated failed SSH logins"
//! kinds = ["auth_failure", "max_auth_attempts"]
//! type = "window"          # window | leaky | distinct | trigger
//! threshold = 5
//! window = "10m"
//! key = "prefix"           # address | prefix (IPv4 /32 and IPv6 /64 unless set)
//! level = "high"
//!
//! [[scenario.where]]
//! field = "path"
//! transform = ["url_decode", "lowercase"]
//! regex = '(?:union\s+select|\.\./)'
//! ```
//!
//! Every problem in every file is reported with its file and line.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use rampart_core::{EventKind, HumanDuration, Level, RuleError, RuleErrors, line_of, toml_error};
use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::bucket::BucketKind;
use crate::condition::{Condition, Test, Transform};

/// How events are grouped into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// IPv4 addresses are keyed by this many leading bits.
    pub v4_len: u8,
    /// IPv6 addresses are keyed by this many leading bits.
    pub v6_len: u8,
}

/// A compiled scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Unique name; the label of its findings.
    pub name: String,
    /// What it detects, for people.
    pub description: String,
    /// The event kinds it looks at.
    pub kinds: Vec<EventKind>,
    /// Conditions every counted event satisfies.
    pub conditions: Vec<Condition>,
    /// The counter.
    pub bucket: BucketKind,
    /// The grouping.
    pub key: KeySpec,
    /// Level of its findings.
    pub level: Level,
    /// Score of its findings, 0..1.
    pub confidence: f64,
    /// Ban duration that replaces the level's default.
    pub ban_for: Option<HumanDuration>,
    /// After an overflow, the key is ignored this long (no duplicate findings).
    pub blackhole: Duration,
    /// The file it came from.
    pub file: String,
}

impl Scenario {
    /// Whether `event` is one this scenario counts.
    pub fn selects(&self, event: &rampart_core::Event) -> bool {
        self.kinds.contains(&event.kind) && self.conditions.iter().all(|c| c.matches(event))
    }
}

/// Every scenario, loaded together.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    /// In load order (files in the order given, scenarios in file order).
    pub scenarios: Vec<Arc<Scenario>>,
    /// Scenario indexes by event kind (indexed like `EventKind::ALL`).
    by_kind: Vec<Vec<usize>>,
}

/// Which scenarios an event is selected by: bit `i` for scenario `i`.
/// Computed by [`Ruleset::select`], which is pure and can run on any
/// thread; the engine then only updates buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection(u128);

impl Selection {
    /// Most scenarios a selection covers; later ones are selected by the
    /// engine itself.
    pub const CAPACITY: usize = 128;

    /// Whether scenario `i` selected the event.
    pub fn contains(self, i: usize) -> bool {
        i < Self::CAPACITY && self.0 & (1u128 << i) != 0
    }

    /// Whether no scenario did.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Distinct (field, transforms) pairs whose values are cached per event.
const SLOTS: usize = 8;

/// The index of `kind` in `EventKind::ALL`.
pub(crate) fn kind_index(kind: EventKind) -> usize {
    EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    scenario: Vec<Spanned<ScenarioSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    enabled: bool,
    kinds: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    threshold: Option<u32>,
    #[serde(default)]
    window: Option<HumanDuration>,
    #[serde(default)]
    leak: Option<HumanDuration>,
    #[serde(default)]
    distinct: Option<String>,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default)]
    ipv4_prefix: Option<u8>,
    #[serde(default)]
    ipv6_prefix: Option<u8>,
    level: String,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    ban_for: Option<HumanDuration>,
    #[serde(default)]
    blackhole: Option<HumanDuration>,
    #[serde(default, rename = "where")]
    conditions: Vec<ConditionSpec>,
}

fn yes() -> bool {
    true
}

fn default_key() -> String {
    "prefix".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    field: String,
    #[serde(default)]
    transform: Vec<String>,
    #[serde(default, rename = "in")]
    in_list: Option<Vec<String>>,
    #[serde(default)]
    not_in: Option<Vec<String>>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    not_regex: Option<String>,
    /// Named patterns (`rules/patterns/`), matched like one regex.
    #[serde(default)]
    patterns: Option<Vec<String>>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    present: Option<bool>,
}

/// The scenario files shipped with rampart, built into the binary.
const BUILTIN: [(&str, &str); 3] = [
    (
        "rules/scenarios/ssh.toml",
        include_str!("../../../rules/scenarios/ssh.toml"),
    ),
    (
        "rules/scenarios/http.toml",
        include_str!("../../../rules/scenarios/http.toml"),
    ),
    (
        "rules/scenarios/recidive.toml",
        include_str!("../../../rules/scenarios/recidive.toml"),
    ),
];

impl Ruleset {
    /// The scenarios shipped with rampart (`rules/scenarios/*.toml`).
    pub fn builtin() -> Result<Self, RuleErrors> {
        let files: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        Self::from_sources(&files)
    }

    /// Compiles scenario files given as (file name, text). Scenarios with
    /// `enabled = false` are checked but left out.
    pub fn from_sources(files: &[(String, String)]) -> Result<Self, RuleErrors> {
        let mut errors = Vec::new();
        let mut scenarios = Vec::new();
        let mut names = HashSet::new();
        for (file, text) in files {
            let spec: FileSpec = match toml::from_str(text) {
                Ok(spec) => spec,
                Err(e) => {
                    errors.push(toml_error(file, text, e.span(), e.message()));
                    continue;
                }
            };
            for spanned in spec.scenario {
                let line = line_of(text, spanned.span().start);
                let spec = spanned.into_inner();
                let mut err = |message: String| {
                    errors.push(RuleError {
                        file: file.clone(),
                        line: Some(line),
                        message,
                    });
                };
                if !names.insert(spec.name.clone()) {
                    err(format!("scenario {:?} is defined twice", spec.name));
                    continue;
                }
                match compile(spec, file) {
                    Ok(Some(s)) => scenarios.push(Arc::new(s)),
                    Ok(None) => {}
                    Err(problems) => problems.into_iter().for_each(&mut err),
                }
            }
        }
        if errors.is_empty() {
            Ok(Self::index(scenarios))
        } else {
            Err(RuleErrors(errors))
        }
    }

    /// Builds the kind index and gives conditions that transform the same
    /// field the same way one cache slot.
    fn index(mut scenarios: Vec<Arc<Scenario>>) -> Self {
        let mut slots: Vec<(String, Vec<Transform>)> = Vec::new();
        for scenario in &mut scenarios {
            let scenario = Arc::make_mut(scenario);
            for c in &mut scenario.conditions {
                if c.transforms.is_empty() {
                    continue;
                }
                let key = (c.field.clone(), c.transforms.clone());
                let slot = slots.iter().position(|k| *k == key).unwrap_or_else(|| {
                    slots.push(key);
                    slots.len() - 1
                });
                // Past the cache's size a condition transforms for itself.
                c.slot = (slot < SLOTS).then_some(slot);
            }
        }
        let mut by_kind = vec![Vec::new(); EventKind::ALL.len()];
        for (i, s) in scenarios.iter().enumerate() {
            for kind in &s.kinds {
                by_kind[kind_index(*kind)].push(i);
            }
        }
        Self { scenarios, by_kind }
    }

    /// A copy for another thread: compiled regexes are shared, but each
    /// gets its own match-cache pool, so threads selecting at the same time
    /// never wait on each other.
    pub fn for_thread(&self) -> Self {
        Self {
            scenarios: self
                .scenarios
                .iter()
                .map(|s| Arc::new((**s).clone()))
                .collect(),
            by_kind: self.by_kind.clone(),
        }
    }

    /// Scenario indexes that look at events of `kind`.
    pub fn for_kind(&self, kind: EventKind) -> &[usize] {
        self.by_kind
            .get(kind_index(kind))
            .map_or(&[], Vec::as_slice)
    }

    /// The scenarios (among the first [`Selection::CAPACITY`]) whose kinds
    /// and conditions `event` satisfies. Pure: safe to call from parser
    /// threads while the engine runs elsewhere.
    pub fn select(&self, event: &rampart_core::Event) -> Selection {
        let mut bits = 0u128;
        let mut slots: [Option<Option<String>>; SLOTS] = Default::default();
        for &i in self.for_kind(event.kind) {
            if i >= Selection::CAPACITY {
                break;
            }
            if self.scenarios[i]
                .conditions
                .iter()
                .all(|c| c.matches_cached(event, &mut slots))
            {
                bits |= 1u128 << i;
            }
        }
        Selection(bits)
    }

    /// The scenario called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Scenario>> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

fn compile(spec: ScenarioSpec, file: &str) -> Result<Option<Scenario>, Vec<String>> {
    let mut problems = Vec::new();
    let name = spec.name.clone();
    let at = |msg: String| format!("scenario {name:?}: {msg}");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problems.push(at("name must be letters, digits, - and _".into()));
    }
    let mut kinds = Vec::new();
    for k in &spec.kinds {
        match EventKind::from_name(k) {
            Some(kind) => kinds.push(kind),
            None => problems.push(at(format!(
                "unknown event kind {k:?} (known: {})",
                EventKind::ALL.map(EventKind::as_str).join(", ")
            ))),
        }
    }
    if spec.kinds.is_empty() {
        problems.push(at("kinds must name at least one event kind".into()));
    }
    let level = Level::from_name(&spec.level).unwrap_or_else(|| {
        problems.push(at(format!(
            "unknown level {:?} (low, medium, high, critical)",
            spec.level
        )));
        Level::Low
    });
    let confidence = spec.confidence.unwrap_or(0.9);
    if !(0.0..=1.0).contains(&confidence) {
        problems.push(at("confidence must be within 0..1".into()));
    }
    let dur = |d: Option<HumanDuration>| d.map(HumanDuration::to_chrono);
    let need = |what: &str, present: bool, problems: &mut Vec<String>| {
        if !present {
            problems.push(at(format!("type {} needs {what}", spec.kind)));
        }
    };
    let threshold = spec.threshold.unwrap_or(0);
    let bucket = match spec.kind.as_str() {
        "window" => {
            need("threshold", threshold > 0, &mut problems);
            need(
                "window",
                spec.window.is_some_and(|w| !w.0.is_zero()),
                &mut problems,
            );
            BucketKind::Window {
                threshold,
                window: dur(spec.window).unwrap_or_default(),
            }
        }
        "leaky" => {
            need("threshold", threshold > 0, &mut problems);
            need(
                "leak",
                spec.leak.is_some_and(|w| !w.0.is_zero()),
                &mut problems,
            );
            BucketKind::Leaky {
                threshold,
                leak: dur(spec.leak).unwrap_or_default(),
            }
        }
        "distinct" => {
            need("threshold", threshold > 0, &mut problems);
            need(
                "window",
                spec.window.is_some_and(|w| !w.0.is_zero()),
                &mut problems,
            );
            need(
                "distinct (the field to count)",
                spec.distinct.is_some(),
                &mut problems,
            );
            BucketKind::Distinct {
                threshold,
                window: dur(spec.window).unwrap_or_default(),
                field: spec.distinct.clone().unwrap_or_default(),
            }
        }
        "trigger" => BucketKind::Trigger,
        other => {
            problems.push(at(format!(
                "unknown type {other:?} (window, leaky, distinct, trigger)"
            )));
            BucketKind::Trigger
        }
    };
    if threshold > 10_000 {
        problems.push(at("threshold above 10000 is not supported".into()));
    }
    let key = match spec.key.as_str() {
        "address" => KeySpec {
            v4_len: 32,
            v6_len: 128,
        },
        "prefix" => KeySpec {
            v4_len: spec.ipv4_prefix.unwrap_or(32),
            v6_len: spec.ipv6_prefix.unwrap_or(64),
        },
        other => {
            problems.push(at(format!("unknown key {other:?} (address, prefix)")));
            KeySpec {
                v4_len: 32,
                v6_len: 128,
            }
        }
    };
    if spec.key == "address" && (spec.ipv4_prefix.is_some() || spec.ipv6_prefix.is_some()) {
        problems.push(at(
            "ipv4_prefix/ipv6_prefix only apply with key = \"prefix\"".into(),
        ));
    }
    if key.v4_len > 32 || key.v4_len < 8 || key.v6_len > 128 || key.v6_len < 16 {
        problems.push(at(
            "prefix lengths must be 8..=32 (IPv4) and 16..=128 (IPv6)".into(),
        ));
    }
    let mut conditions = Vec::new();
    for (i, c) in spec.conditions.into_iter().enumerate() {
        match compile_condition(c) {
            Ok(c) => conditions.push(c),
            Err(msg) => problems.push(at(format!("where[{i}]: {msg}"))),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if !spec.enabled {
        return Ok(None);
    }
    let blackhole = spec
        .blackhole
        .map(HumanDuration::to_chrono)
        .unwrap_or_else(|| bucket.idle_after().max(Duration::minutes(1)));
    Ok(Some(Scenario {
        name: spec.name,
        description: spec.description,
        kinds,
        conditions,
        bucket,
        key,
        level,
        confidence,
        ban_for: spec.ban_for,
        blackhole,
        file: file.to_owned(),
    }))
}

fn compile_condition(c: ConditionSpec) -> Result<Condition, String> {
    let mut transforms = Vec::new();
    for t in &c.transform {
        transforms.push(match t.as_str() {
            "url_decode" => Transform::UrlDecode,
            "lowercase" => Transform::Lowercase,
            other => {
                return Err(format!(
                    "unknown transform {other:?} (url_decode, lowercase)"
                ));
            }
        });
    }
    let regex = |re: &str| {
        Regex::new(re).map_err(|e| format!("invalid regex: {}", e.to_string().replace('\n', " ")))
    };
    let mut tests = Vec::new();
    if let Some(list) = c.in_list {
        tests.push(Test::In(list));
    }
    if let Some(list) = c.not_in {
        tests.push(Test::NotIn(list));
    }
    if let Some(re) = &c.regex {
        tests.push(Test::Regex(regex(re)?));
    }
    if let Some(re) = &c.not_regex {
        tests.push(Test::NotRegex(regex(re)?));
    }
    if let Some(names) = &c.patterns {
        tests.push(Test::Regex(regex(&crate::patterns::text_alternation(
            names,
        )?)?));
    }
    if c.min.is_some() || c.max.is_some() {
        tests.push(Test::Range(c.min, c.max));
    }
    if let Some(present) = c.present {
        tests.push(if present { Test::Present } else { Test::Absent });
    }
    if tests.len() != 1 {
        return Err(format!(
            "field {:?} needs exactly one test of: in, not_in, regex, not_regex, patterns, min/max, present",
            c.field
        ));
    }
    if c.field.is_empty() {
        return Err("field is empty".into());
    }
    Ok(Condition {
        field: c.field,
        transforms,
        test: tests.remove(0),
        slot: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Ruleset, RuleErrors> {
        Ruleset::from_sources(&[("test.toml".into(), text.into())])
    }

    #[test]
    fn the_builtin_scenarios_load() {
        let rules = Ruleset::builtin().unwrap();
        for name in [
            "ssh-bruteforce",
            "ssh-user-enum",
            "http-sensitive-probe",
            "http-flood",
            "http-login-bruteforce",
            "http-sqli-probe",
            "recidive",
        ] {
            assert!(rules.get(name).is_some(), "{name} missing");
        }
    }

    #[test]
    fn a_scenario_compiles() {
        let rules = load(
            r#"
[[scenario]]
name = "x"
kinds = ["auth_failure"]
type = "window"
threshold = 5
window = "10m"
level = "high"
[[scenario.where]]
field = "user"
not_in = ["git"]
"#,
        )
        .unwrap();
        let s = &rules.scenarios[0];
        assert_eq!(
            s.key,
            KeySpec {
                v4_len: 32,
                v6_len: 64
            }
        );
        assert_eq!(s.blackhole, Duration::minutes(10));
        assert_eq!(s.conditions.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let err = load(
            r#"
[[scenario]]
name = "ok"
kinds = ["auth_failure"]
type = "trigger"
level = "low"

[[scenario]]
name = "bad"
kinds = ["nope"]
type = "window"
level = "severe"
[[scenario.where]]
field = "path"
regex = "("
"#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(err.0.iter().all(|e| e.line == Some(8)), "{text}");
        for needle in [
            "unknown event kind \"nope\"",
            "needs threshold",
            "needs window",
            "severe",
            "invalid regex",
        ] {
            assert!(text.contains(needle), "missing {needle:?}:\n{text}");
        }
    }

    #[test]
    fn syntax_errors_and_unknown_keys_name_the_line() {
        let err = load("[[scenario]]\nname = \"a\"\nkinds = [\"ban\"]\ntype = \"trigger\"\nlevel = \"low\"\ntreshold = 5\n").unwrap_err();
        assert_eq!(err.0[0].line, Some(6), "{err}");
        assert!(err.to_string().contains("treshold"));
    }

    #[test]
    fn duplicate_names_across_files_are_rejected() {
        let one =
            "[[scenario]]\nname = \"a\"\nkinds = [\"ban\"]\ntype = \"trigger\"\nlevel = \"low\"\n";
        let err =
            Ruleset::from_sources(&[("1.toml".into(), one.into()), ("2.toml".into(), one.into())])
                .unwrap_err();
        assert_eq!(err.0[0].file, "2.toml");
    }

    #[test]
    fn disabled_scenarios_are_checked_but_left_out() {
        let rules = load("[[scenario]]\nname = \"a\"\nenabled = false\nkinds = [\"ban\"]\ntype = \"trigger\"\nlevel = \"low\"\n").unwrap();
        assert!(rules.scenarios.is_empty());
        assert!(load("[[scenario]]\nname = \"a\"\nenabled = false\nkinds = [\"x\"]\ntype = \"trigger\"\nlevel = \"low\"\n").is_err());
    }
}
