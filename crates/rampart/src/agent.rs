//! `rampart agent` and `rampart run`: the agent role over the configured
//! store, with its fleet link, its metrics endpoint and (for `run`) the
//! gateway beside it on the same store.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use rampart_agent::{Agent, Metrics, host_name, rules};
use rampart_config::Config;
use rampart_store::Store;

/// Runs the agent; with `with_gateway`, also the gateway when the config
/// has backends (`rampart run`), on the same store.
pub fn run(path: &Path, with_gateway: bool) -> anyhow::Result<ExitCode> {
    let config = crate::check::load(path)?;
    let rules = rules::load(config.rules.dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(agent(config, rules, with_gateway))
}

async fn agent(
    config: Config,
    rules: rampart_agent::Rules,
    with_gateway: bool,
) -> anyhow::Result<ExitCode> {
    let store: Arc<dyn Store> = Arc::from(
        rampart_store::open(&config.store.url)
            .await
            .with_context(|| format!("cannot open store {}", config.store.url))?,
    );
    let node_name = config.agent.name.clone().unwrap_or_else(host_name);
    let fleet = rampart_fleet::Fleet::start(
        &config.fleet,
        Arc::clone(&store),
        node_name.clone(),
        rampart_fleet::NodeKind::Agent,
    )
    .await?;
    let metrics = Metrics::new(|registry| {
        if let Some(fleet) = &fleet {
            fleet.metrics().register(registry);
        }
    });
    if let Some(fleet) = &fleet {
        let m = Arc::clone(&metrics);
        fleet.set_counters(Box::new(move || {
            (
                m.lines_total.load(Ordering::Relaxed),
                m.decisions_total.load(Ordering::Relaxed),
            )
        }));
    }
    let gateway = if with_gateway && !config.gateway.backends.is_empty() {
        let ctx = crate::gateway::context(&config, Arc::clone(&store))?;
        Some(rampart_gateway::Gateway::build(&config.gateway, ctx).await?)
    } else {
        None
    };
    let agent = Agent::start(
        &config,
        rules,
        Arc::clone(&store),
        Arc::clone(&metrics),
        node_name,
    )
    .await?;
    let metrics_endpoint = config.metrics.listen.map(|addr| {
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            if let Err(e) = rampart_agent::metrics::serve(addr, metrics).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        })
    });
    let (gateway_stop, mut gateway_stopped) = tokio::sync::watch::channel(false);
    let gateway = gateway.map(|g| {
        for addr in g.local_addrs() {
            tracing::info!(%addr, "gateway listening");
        }
        tokio::spawn(g.run(async move {
            let _ = gateway_stopped.wait_for(|s| *s).await;
        }))
    });

    crate::signal::shutdown_signal().await;
    tracing::info!("stopping");
    let _ = gateway_stop.send(true);
    if let Some(g) = gateway {
        match g.await {
            Ok(Err(e)) => tracing::error!(error = %e, "gateway failed"),
            Err(e) => tracing::error!(error = %e, "gateway task failed"),
            Ok(Ok(())) => {}
        }
    }
    agent.stop().await;
    if let Some(endpoint) = metrics_endpoint {
        endpoint.abort();
    }
    if let Some(fleet) = fleet {
        fleet.finish().await;
    }
    Ok(ExitCode::SUCCESS)
}
