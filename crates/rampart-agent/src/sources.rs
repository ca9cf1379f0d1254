//! Starting the agent's log sources: one streaming [`rampart_logs::Source`] per file
//! path or journal, each on a thread of its own, all feeding detection
//! through one bounded channel.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rampart_config::SourceConfig;
use rampart_logs::Batch;
use rampart_logs::parse::ParserRules;
use rampart_store::Position;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Starts the threads of one source (built by [`rampart_logs::build`]):
/// one per file path, or one journal follower.
pub(crate) fn start_source(
    source: &SourceConfig,
    rules: &ParserRules,
    saved: Vec<Position>,
    tx: &mpsc::Sender<Batch>,
    stop: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let built = rampart_logs::build::build(source, rules, &saved).map_err(anyhow::Error::msg)?;
    let mut handles = Vec::new();
    for rampart_logs::build::Built {
        thread,
        source: run,
        parser,
    } in built
    {
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
