//! Attaching an agent or gateway to a central server (`[fleet]`).

use std::sync::Arc;

use rampart_config::FleetConfig;
use rampart_fleet::{Fleet, NodeKind};
use rampart_store::Store;

/// Starts the node's link to the server when `[fleet] url` is set.
pub(crate) async fn attach(
    config: &FleetConfig,
    store: Arc<dyn Store>,
    node: String,
    kind: NodeKind,
) -> anyhow::Result<Option<Fleet>> {
    Ok(Fleet::start(config, store, node, kind).await?)
}
