//! `rampart gateway`: the inline HTTP gateway, from a config file or from
//! flags alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use rampart_config::{BackendConfig, Config, GatewayMode};
use rampart_core::Whitelist;
use rampart_gateway::{Gateway, GatewayContext};
use rampart_store::Store;

/// Flags of `rampart gateway`; each overrides the config file's value.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// Config file; without it the gateway runs from the flags alone.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Address to listen on (repeatable).
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Backend URL, `http://host:port` (repeatable).
    #[arg(long)]
    backend: Vec<String>,
    /// Admin listener address (`/health`, `/stats`, `/metrics`, bans).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// A proxy whose `X-Forwarded-For` is believed, address or CIDR (repeatable).
    #[arg(long = "trusted-proxy")]
    trusted_proxy: Vec<String>,
    /// Decide and record, never block.
    #[arg(long)]
    monitor: bool,
    /// Store URL (`sqlite:///path/db`). Without a config file the default
    /// is `sqlite://rampart.db` in the working directory.
    #[arg(long)]
    database: Option<String>,
}

pub fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => crate::check::load(path)?,
        None => {
            let mut c = Config::default();
            c.store.url = "sqlite://rampart.db".to_owned();
            c
        }
    };
    let g = &mut config.gateway;
    if !args.listen.is_empty() {
        g.listen = args.listen;
    }
    if !args.backend.is_empty() {
        g.backends = args
            .backend
            .into_iter()
            .map(|url| BackendConfig { url })
            .collect();
    }
    if args.admin.is_some() {
        g.admin = args.admin;
    }
    if !args.trusted_proxy.is_empty() {
        g.trusted_proxies = args.trusted_proxy;
    }
    if args.monitor {
        g.mode = GatewayMode::Monitor;
    }
    if let Some(url) = args.database {
        config.store.url = url;
    }
    let mut problems = config.validate();
    if config.gateway.backends.is_empty() {
        problems.push(
            "gateway.backend: no backend configured ([[gateway.backend]] or --backend)".into(),
        );
    }
    refuse_problems(problems, args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let store: Arc<dyn Store> = Arc::from(
        rampart_store::open(&config.store.url)
            .await
            .with_context(|| format!("cannot open store {}", config.store.url))?,
    );
    let mut ctx = context(&config, store)?;
    let fleet = rampart_fleet::Fleet::start(
        &config.fleet,
        Arc::clone(&ctx.store),
        ctx.id.clone(),
        rampart_fleet::NodeKind::Gateway,
    )
    .await?;
    if let Some(fleet) = &fleet {
        let metrics = Arc::clone(fleet.metrics());
        ctx.more_metrics = Some(Box::new(move |registry| metrics.register(registry)));
    }
    let gateway = Gateway::build(&config.gateway, ctx).await?;
    if let Some(fleet) = &fleet {
        let shared = gateway.shared();
        fleet.set_counters(Box::new(move || shared.metrics().totals()));
    }
    for addr in gateway.local_addrs() {
        tracing::info!(%addr, "gateway listening");
    }
    if let Some(addr) = gateway.admin_addr() {
        tracing::info!(%addr, "admin listening");
    }
    let result = gateway.run(crate::signal::shutdown_signal()).await;
    if let Some(fleet) = fleet {
        fleet.finish().await;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// An error listing `problems` (of the config file, or of the flags when
/// there is none); nothing when there are none.
pub(crate) fn refuse_problems(
    problems: Vec<String>,
    file: Option<&std::path::Path>,
) -> Result<(), rampart_config::ConfigError> {
    if problems.is_empty() {
        return Ok(());
    }
    let file = file.map_or_else(|| PathBuf::from("(flags)"), std::path::Path::to_path_buf);
    Err(rampart_config::ConfigError(
        problems
            .into_iter()
            .map(|message| rampart_config::Problem {
                file: file.clone(),
                line: None,
                message,
            })
            .collect(),
    ))
}

/// What the gateway needs from the config and the store.
pub(crate) fn context(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<GatewayContext> {
    Ok(GatewayContext {
        store,
        policy: config.policy.clone(),
        whitelist: Whitelist::exactly(config.policy.whitelist_nets()?),
        id: config
            .gateway
            .id
            .clone()
            .or_else(|| config.agent.name.clone())
            .unwrap_or_else(rampart_agent::host_name),
        more_metrics: None,
        hooks: Vec::new(),
    })
}
