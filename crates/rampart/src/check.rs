//! `rampart config check`: every problem in the config and its rules.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use rampart_config::{Config, ConfigError, Problem, Severity};
use rampart_logs::parse::{ParseOptions, build_parser};

use rampart_agent::rules;

/// Loads the config a role runs with: what `config check` calls an error
/// stops it, warnings are logged.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    let mut errors = Vec::new();
    for notice in config.audit(Some(path)) {
        match notice.severity {
            Severity::Error => errors.push(Problem {
                file: path.to_owned(),
                line: None,
                message: notice.message,
            }),
            Severity::Warning => tracing::warn!("{}: {}", path.display(), notice.message),
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError(errors).into())
    }
}

pub fn run(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let (config, found) = Config::check_file(path);
    problems.extend(found.iter().map(ToString::to_string));
    for notice in config.iter().flat_map(|c| c.audit(Some(path))) {
        let line = format!("{}: {}", path.display(), notice.message);
        match notice.severity {
            Severity::Error => problems.push(line),
            Severity::Warning => warnings.push(line),
        }
    }
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
    if json {
        let value = serde_json::json!({
            "file": path.display().to_string(),
            "ok": problems.is_empty(),
            "problems": problems,
            "warnings": warnings,
            "sources": config.as_ref().map(|c| c.sources.len()),
            "scenarios": rules.as_ref().map(|r| r.scenarios.scenarios.len()),
        });
        outln!("{value}");
        return Ok(if problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(crate::EXIT_CONFIG)
        });
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if problems.is_empty() {
        let (sources, scenarios) = (
            config.as_ref().map_or(0, |c| c.sources.len()),
            rules.as_ref().map_or(0, |r| r.scenarios.scenarios.len()),
        );
        let warned = match warnings.len() {
            0 => String::new(),
            1 => ", 1 warning".to_owned(),
            n => format!(", {n} warnings"),
        };
        outln!(
            "{}: ok ({sources} sources, {scenarios} scenarios{warned})",
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
