//! Named patterns: regexes kept as data in `rules/patterns/*.toml`, used by
//! name from scenarios (`patterns = ["sensitive-path"]`) and by the HTTP
//! request signatures, so that one list of, say, sensitive paths serves
//! both and cannot drift.

use std::sync::LazyLock;

use serde::Deserialize;

/// The pattern files shipped with rampart, built into the binary.
const BUILTIN: [(&str, &str); 1] = [(
    "rules/patterns/http.toml",
    include_str!("../../../rules/patterns/http.toml"),
)];

/// One named pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// Its name (`sensitive-path`).
    pub name: String,
    /// What it matches and who uses it.
    pub description: String,
    /// The regex, in verbose mode (whitespace ignored).
    pub regex: String,
    /// Byte-level only (escapes such as `\xc0` that text regexes refuse):
    /// usable by the signatures, not by scenarios.
    #[serde(default)]
    pub bytes: bool,
}

impl Pattern {
    /// The regex as one group, verbose mode on: safe to join with `|`
    /// and to put after other flags.
    pub fn group(&self) -> String {
        format!("(?x:{})", self.regex)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    pattern: Vec<Pattern>,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    BUILTIN
        .iter()
        .flat_map(|(name, text)| match toml::from_str::<File>(text) {
            Ok(file) => file.pattern,
            // The shipped files are checked by this module's tests.
            Err(e) => panic!("{name}: {e}"),
        })
        .collect()
});

/// Every built-in pattern.
pub fn all() -> &'static [Pattern] {
    &PATTERNS
}

/// The built-in pattern called `name`.
pub fn get(name: &str) -> Option<&'static Pattern> {
    PATTERNS.iter().find(|p| p.name == name)
}

/// The patterns called `names`, as one alternation for a text regex
/// (scenarios): an error names an unknown or bytes-only pattern.
pub fn text_alternation(names: &[String]) -> Result<String, String> {
    let mut groups = Vec::with_capacity(names.len());
    for name in names {
        let pattern = get(name).ok_or_else(|| {
            let known: Vec<&str> = PATTERNS
                .iter()
                .filter(|p| !p.bytes)
                .map(|p| p.name.as_str())
                .collect();
            format!("unknown pattern {name:?} (known: {})", known.join(", "))
        })?;
        if pattern.bytes {
            return Err(format!(
                "pattern {name:?} matches bytes and serves the gateway's signatures only"
            ));
        }
        groups.push(pattern.group());
    }
    if groups.is_empty() {
        return Err("patterns is empty".to_owned());
    }
    Ok(groups.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_pattern_parses_and_compiles_as_bytes_and_text_unless_bytes_only() {
        assert!(all().len() >= 6);
        for p in all() {
            regex::bytes::Regex::new(&format!("(?i-u){}", p.group()))
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            if !p.bytes {
                regex::Regex::new(&p.group()).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            }
            assert!(!p.description.is_empty());
        }
        let mut names: Vec<&str> = all().iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all().len(), "names are unique");
    }

    #[test]
    fn sensitive_paths_match_with_or_without_a_query_and_not_ordinary_pages() {
        let re = regex::Regex::new(&text_alternation(&["sensitive-path".into()]).unwrap()).unwrap();
        for hit in [
            "/.env",
            "/.env?x=1",
            "/app/.git/config",
            "/backup.sql",
            "/db.sql.gz",
            "/.aws/credentials",
            "/home/u/.ssh/id_rsa.pub",
        ] {
            assert!(re.is_match(hit), "{hit}");
        }
        for miss in [
            "/",
            "/index.html",
            "/environment",
            "/blog/gitlab-tips",
            "/docs/sql-guide",
        ] {
            assert!(!re.is_match(miss), "{miss}");
        }
    }

    #[test]
    fn unknown_and_bytes_only_patterns_are_named_errors() {
        let unknown = text_alternation(&["nope".into()]).unwrap_err();
        assert!(unknown.contains("unknown pattern \"nope\""), "{unknown}");
        assert!(unknown.contains("sensitive-path"), "{unknown}");
        let bytes = text_alternation(&["traversal".into()]).unwrap_err();
        assert!(bytes.contains("signatures only"), "{bytes}");
    }
}
