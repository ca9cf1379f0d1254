//! Detection content: the rules built into the binary, or a directory
//! that replaces them (`parsers/*.toml`, `scenarios/*.toml`).

use std::path::Path;

use anyhow::Context;
use rampart_core::{RuleError, RuleErrors};
use rampart_detect::Ruleset;
use rampart_logs::parse::ParserRules;

/// Parser patterns and scenarios, loaded together.
pub struct Rules {
    pub parsers: ParserRules,
    pub scenarios: Ruleset,
}

/// Loads the built-in rules, or those of `dir`. Every problem in every file
/// is reported.
pub fn load(dir: Option<&Path>) -> anyhow::Result<Rules> {
    let Some(dir) = dir else {
        let parsers = ParserRules::builtin();
        let scenarios = Ruleset::builtin();
        return join(parsers, scenarios);
    };
    if !dir.is_dir() {
        anyhow::bail!("rules directory {} does not exist", dir.display());
    }
    let parsers = read_dir(&dir.join("parsers"))?;
    let scenarios = read_dir(&dir.join("scenarios"))?;
    if scenarios.is_empty() {
        anyhow::bail!("{} holds no scenarios/*.toml", dir.display());
    }
    let parsers = if parsers.is_empty() {
        ParserRules::builtin()
    } else {
        ParserRules::from_sources(&parsers)
    };
    join(parsers, Ruleset::from_sources(&scenarios))
}

fn join(
    parsers: Result<ParserRules, RuleErrors>,
    scenarios: Result<Ruleset, RuleErrors>,
) -> anyhow::Result<Rules> {
    match (parsers, scenarios) {
        (Ok(parsers), Ok(scenarios)) => Ok(Rules { parsers, scenarios }),
        (p, s) => {
            let mut all: Vec<RuleError> = Vec::new();
            if let Err(e) = p {
                all.extend(e.0);
            }
            if let Err(e) = s {
                all.extend(e.0);
            }
            Err(RuleErrors(all).into())
        }
    }
}

/// The `.toml` files of `dir`, sorted by name; none when `dir` is missing.
fn read_dir(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}
