//! A configured `[[source]]` becomes its streaming sources: each
//! [`SourceInput`] variant builds its own kind (a [`FileSource`] per path,
//! one [`JournalSource`]), each with the parser for the source's format and
//! the position saved for it.

use std::sync::Arc;

use chrono::Utc;
use rampart_config::{SourceConfig, SourceInput};
use rampart_core::Position;

use crate::Source;
use crate::journal::{JournalParser, JournalSource};
use crate::parse::{LineParser, ParseOptions, ParserRules, build_parser};
use crate::tail::{FileSource, TailOptions};

/// One source ready to follow: a name for its thread, the source, its parser.
pub struct Built {
    /// `tail /var/log/auth.log`, `journal sshd`.
    pub thread: String,
    /// The source, positioned where `saved` said.
    pub source: Box<dyn Source>,
    /// The parser of the source's format.
    pub parser: Box<dyn LineParser>,
}

/// The streaming sources of `config`, resumed from `saved` (the positions
/// stored for this source name). An error names the source.
pub fn build(
    config: &SourceConfig,
    rules: &ParserRules,
    saved: &[Position],
) -> Result<Vec<Built>, String> {
    let name: Arc<str> = Arc::from(config.name.as_str());
    let opts = ParseOptions {
        source: Arc::clone(&name),
        reference: Utc::now(),
        keep_raw: true,
    };
    match &config.input {
        SourceInput::File { paths } => paths
            .iter()
            .map(|path| {
                let parser = build_parser(config.format, rules, config.json.as_ref(), opts.clone())
                    .map_err(|e| format!("source {}: {e}", config.name))?;
                let key = path.display().to_string();
                let file = FileSource::new(
                    Arc::clone(&name),
                    path.clone(),
                    TailOptions {
                        from_start: config.from_start,
                        max_line_bytes: config.max_line_bytes,
                    },
                    saved.iter().find(|p| p.path == key),
                );
                Ok(Built {
                    thread: format!("tail {key}"),
                    source: Box::new(file),
                    parser,
                })
            })
            .collect(),
        SourceInput::Journald {
            matches,
            journalctl,
        } => {
            let journal = JournalSource::new(
                Arc::clone(&name),
                journalctl.clone(),
                matches.clone(),
                config.from_start,
                saved.iter().find_map(|p| p.cursor.clone()),
            );
            Ok(vec![Built {
                thread: format!("journal {}", config.name),
                source: Box::new(journal),
                parser: Box::new(JournalParser::new(rules.clone(), opts)),
            }])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn source(text: &str) -> SourceConfig {
        let config =
            rampart_config::Config::from_str_at(text, Path::new("t.toml"), &|_| None).unwrap();
        config.sources.into_iter().next().unwrap()
    }

    #[test]
    fn each_input_type_builds_its_own_sources_with_its_saved_position() {
        let rules = ParserRules::builtin().unwrap();
        let files = source(
            "[[source]]\nname = \"web\"\nformat = \"nginx\"\npaths = [\"/var/log/a.log\", \"/var/log/b.log\"]\n",
        );
        let built = build(&files, &rules, &[]).unwrap();
        let threads: Vec<&str> = built.iter().map(|b| b.thread.as_str()).collect();
        assert_eq!(threads, ["tail /var/log/a.log", "tail /var/log/b.log"]);
        assert!(built.iter().all(|b| &**b.source.name() == "web"));

        let journal = source(
            "[[source]]\nname = \"ssh\"\nformat = \"sshd\"\ntype = \"journald\"\njournal_matches = [\"_SYSTEMD_UNIT=ssh.service\"]\n",
        );
        let built = build(&journal, &rules, &[]).unwrap();
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].thread, "journal ssh");
    }
}
