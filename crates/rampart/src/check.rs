//! `rampart config check`: every problem in the config and its rules.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use rampart_config::Config;
use rampart_logs::parse::{ParseOptions, build_parser};

use rampart_agent::rules;

pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    let config = match Config::load(path) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.extend(e.0.iter().map(ToString::to_string));
            None
        }
    };
    let rules_dir = config.as_ref().and_then(|c| c.rules.dir.clone());
    let rules = match rules::load(rules_dir.as_deref()) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    };
    if let (Some(config), Some(rules)) = (&config, &rules) {
        for src in &config.sources {
            let opts = ParseOptions {
                source: Arc::from(src.name.as_str()),
                reference: chrono::Utc::now(),
                keep_raw: false,
            };
            if let Err(e) = build_parser(src.format, &rules.parsers, src.json.as_ref(), opts) {
                problems.push(format!("{}: source {}: {e}", path.display(), src.name));
            }
        }
    }
    if problems.is_empty() {
        let (sources, scenarios) = (
            config.as_ref().map_or(0, |c| c.sources.len()),
            rules.as_ref().map_or(0, |r| r.scenarios.scenarios.len()),
        );
        outln!(
            "{}: ok ({sources} sources, {scenarios} scenarios)",
            path.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!(
            "{} problem{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        Ok(ExitCode::from(crate::EXIT_CONFIG))
    }
}
