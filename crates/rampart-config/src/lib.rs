//! rampart's configuration file.
//!
//! A config is TOML. Unknown keys are errors, `${VAR}` is replaced by the
//! environment variable `VAR` (an undefined variable is an error; `$${`
//! writes a literal `${`), and [`Config::load`] reports every problem it can
//! find rather than the first. The doc comment of each field is its user
//! documentation (`docs/configuration.md` is kept in step with it).

mod gateway;
mod http_detect;
mod interpolate;
mod server;
mod types;

use std::path::{Path, PathBuf};

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
        let (expanded, mut problems) = interpolate(text, env);
        let problem = |line, message| Problem {
            file: path.to_owned(),
            line,
            message,
        };
        let mut problems: Vec<Problem> = problems
            .drain(..)
            .map(|(line, msg)| problem(Some(line), msg))
            .collect();
        let config: Config = match toml::from_str(&expanded) {
            Ok(c) => c,
            Err(e) => {
                let line = e.span().map(|s| line_of(&expanded, s.start));
                problems.push(problem(line, e.message().trim().to_owned()));
                return Err(ConfigError(problems));
            }
        };
        // Values left empty by failed interpolation would only add noise.
        let interpolated_ok = problems.is_empty();
        problems.extend(
            config
                .validate()
                .into_iter()
                .filter(|_| interpolated_ok)
                .map(|msg| problem(None, msg)),
        );
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }
}

pub use rampart_core::line_of;

#[cfg(test)]
mod tests;
