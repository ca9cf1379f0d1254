//! rampart's configuration file.
//!
//! A config is TOML. Unknown keys are errors, `${VAR}` is replaced by the
//! environment variable `VAR` (an undefined variable is an error; `$${`
//! writes a literal `${`), and [`Config::load`] reports every problem it can
//! find rather than the first. The doc comment of each field is its user
//! documentation (`docs/configuration.md` is kept in step with it).

mod audit;
mod gateway;
mod http_detect;
mod interpolate;
mod load;
mod server;
mod types;

use std::path::{Path, PathBuf};

pub use audit::{Notice, Severity};
pub use gateway::*;
pub use http_detect::*;
pub use interpolate::interpolate;
pub use server::*;
pub use types::*;

/// One problem with a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct Problem {
    /// The file at fault.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong, with the key where known.
    pub message: String,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problem>);

impl Config {
    /// Reads, interpolates, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(vec![Problem {
                file: path.to_owned(),
                line: None,
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::from_str_at(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses config text; `path` is only used in messages, `env` looks up
    /// variables for `${VAR}`.
    pub fn from_str_at(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        match Self::parse_lenient(text, path, env) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigError(problems)),
        }
    }

    /// Reads a config file for `config check`: every problem, and the
    /// config that remains once the entries at fault are left out (for the
    /// checks beyond parsing, [`Config::audit`]); none when the file cannot
    /// be read or is not TOML.
    pub fn check_file(path: &Path) -> (Option<Self>, Vec<Problem>) {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_lenient(&text, path, &|name| std::env::var(name).ok()),
            Err(e) => (
                None,
                vec![Problem {
                    file: path.to_owned(),
                    line: None,
                    message: format!("cannot read: {e}"),
                }],
            ),
        }
    }

    fn parse_lenient(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Option<Self>, Vec<Problem>) {
        let (expanded, interpolation) = interpolate(text, env);
        let problem = |line, message| Problem {
            file: path.to_owned(),
            line,
            message,
        };
        let mut problems: Vec<Problem> = interpolation
            .into_iter()
            .map(|(line, msg)| problem(Some(line), msg))
            .collect();
        // Values left empty by failed interpolation would only add noise.
        let interpolated_ok = problems.is_empty();
        let (config, found) = load::deserialize_all::<Config>(&expanded);
        problems.extend(
            found
                .into_iter()
                .map(|f| problem(f.offset.map(|o| line_of(&expanded, o)), f.message)),
        );
        if let Some(config) = &config
            && interpolated_ok
        {
            problems.extend(config.validate().into_iter().map(|msg| problem(None, msg)));
        }
        (config, problems)
    }
}

pub use rampart_core::line_of;

#[cfg(test)]
mod tests;
