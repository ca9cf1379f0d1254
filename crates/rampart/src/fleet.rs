//! Attaching an agent or gateway to a central server (`[fleet]`).

use std::sync::Arc;

use rampart_config::FleetConfig;
use rampart_server::fleet::{FleetStore, Link};
use rampart_store::Store;

/// A node's store and, when `[fleet] url` is set, its link to the server.
pub(crate) struct Attached {
    /// The store the node uses (the fleet wrapper when linked).
    pub store: Arc<dyn Store>,
    /// The link, when there is one.
    pub link: Option<Arc<Link>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Wraps `local` for the server in `config`, as node `node` of `kind`, and
/// starts pushing, following and heartbeats; unchanged without `url`.
pub(crate) fn attach(
    config: &FleetConfig,
    local: Arc<dyn Store>,
    node: String,
    kind: &'static str,
) -> anyhow::Result<Attached> {
    if config.url.is_none() {
        return Ok(Attached {
            store: local,
            link: None,
            tasks: Vec::new(),
        });
    }
    let link = Link::new(config, node.clone(), kind).map_err(|e| anyhow::anyhow!(e))?;
    let fleet = FleetStore::new(local, Arc::clone(&link));
    let tasks = fleet.start();
    tracing::info!(server = config.url.as_deref().unwrap_or_default(), %node, kind, "reporting to the server");
    Ok(Attached {
        store: Arc::new(fleet),
        link: Some(link),
        tasks,
    })
}

impl Attached {
    /// Pushes what is still spooled (a few seconds at most) and stops the loops.
    pub(crate) async fn finish(self) {
        if let Some(link) = &self.link {
            link.flush(std::time::Duration::from_secs(5)).await;
            let left = link.spooled();
            if left > 0 {
                tracing::warn!(left, "fleet: items not pushed before stopping");
            }
        }
        for t in self.tasks {
            t.abort();
        }
    }
}
