//! Starting the agent's log sources: one streaming [`Source`] per file
//! path or journal, each on a thread of its own, all feeding detection
//! through one bounded channel.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::Utc;
use rampart_config::{SourceConfig, SourceInput};
use rampart_logs::journal::{JournalParser, JournalSource};
use rampart_logs::parse::{LineParser, ParseOptions, ParserRules, build_parser};
use rampart_logs::tail::{FileSource, TailOptions};
use rampart_logs::{Batch, Source};
use rampart_store::Position;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Starts the threads of one source: one per file path, or one journal follower.
pub(crate) fn start_source(
    source: &SourceConfig,
    rules: &ParserRules,
    saved: Vec<Position>,
    tx: &mpsc::Sender<Batch>,
    stop: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let name: Arc<str> = Arc::from(source.name.as_str());
    let opts = ParseOptions {
        source: Arc::clone(&name),
        reference: Utc::now(),
        keep_raw: true,
    };
    // (thread name, source, its parser)
    type Run = (String, Box<dyn Source>, Box<dyn LineParser>);
    let mut runs: Vec<Run> = Vec::new();
    match &source.input {
        SourceInput::File { paths } => {
            for path in paths {
                let parser = build_parser(source.format, rules, source.json.as_ref(), opts.clone())
                    .map_err(|e| anyhow::anyhow!("source {}: {e}", source.name))?;
                let key = path.display().to_string();
                let file = FileSource::new(
                    Arc::clone(&name),
                    path.clone(),
                    TailOptions {
                        from_start: source.from_start,
                        max_line_bytes: source.max_line_bytes,
                    },
                    saved.iter().find(|p| p.path == key),
                );
                runs.push((format!("tail {key}"), Box::new(file), parser));
            }
        }
        SourceInput::Journald {
            matches,
            journalctl,
        } => {
            let journal = JournalSource::new(
                Arc::clone(&name),
                journalctl.clone(),
                matches.clone(),
                source.from_start,
                saved.iter().find_map(|p| p.cursor.clone()),
            );
            let parser = JournalParser::new(rules.clone(), opts);
            runs.push((
                format!("journal {}", source.name),
                Box::new(journal),
                Box::new(parser),
            ));
        }
    }
    let mut handles = Vec::new();
    for (thread, run, parser) in runs {
        let tx = tx.clone();
        let stop = Arc::clone(stop);
        let metrics = Arc::clone(metrics);
        let poll = source.poll_interval.0;
        handles.push(std::thread::Builder::new().name(thread).spawn(move || {
            let name = Arc::clone(run.name());
            rampart_logs::source::follow(run, parser, poll, tx, &stop, |error| {
                tracing::warn!(source = %name, %error, "cannot read the source");
                metrics.source_error(&name);
            });
        })?);
    }
    Ok(handles)
}
