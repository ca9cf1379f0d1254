//! `rampart server`: the central server, from a config file or from flags
//! alone (`rampart server --listen ADDR --database URL`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use rampart_config::{Config, TlsConfig};
use rampart_core::Whitelist;
use rampart_detect::{Pipeline, Policy};
use rampart_store::Store;

/// Flags of `rampart server`; each overrides the config file's value.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Config file; without it the server runs from the flags alone.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:9700).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Store URL: `sqlite:///path/db` or `postgres://user@host/db`.
    /// Without a config file the default is `sqlite://rampart.db` in the
    /// working directory.
    #[arg(long)]
    database: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); with --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A path that answers without authentication (repeatable), e.g. `/metrics`.
    #[arg(long)]
    public: Vec<String>,
}

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => crate::check::load(path)?,
        None => {
            let mut c = Config::default();
            c.store.url = "sqlite://rampart.db".to_owned();
            c
        }
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(url) = args.database {
        config.store.url = url;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.server.tls = Some(TlsConfig { cert, key });
    }
    config.server.public.extend(args.public);
    crate::gateway::refuse_problems(config.validate(), args.config.as_deref())?;
    let rules = rampart_agent::rules::load(config.rules.dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config, rules))
}

async fn serve(config: Config, rules: rampart_agent::rules::Rules) -> anyhow::Result<ExitCode> {
    let store: Arc<dyn Store> = Arc::from(
        rampart_store::open(&config.store.url)
            .await
            .with_context(|| format!("cannot open store {}", config.store.url))?,
    );
    let node = config
        .agent
        .name
        .clone()
        .unwrap_or_else(rampart_agent::host_name);
    let detector = detector(&config, &rules, store.as_ref()).await?;
    let server =
        rampart_server::Server::bind(config.server.clone(), store, Some(detector), node).await?;
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(addr = %server.local_addr()?, scheme, store = %redact(&config.store.url), "server listening");
    server.run(crate::signal::shutdown_signal()).await?;
    tracing::info!("server stopped");
    Ok(ExitCode::SUCCESS)
}

/// The scenarios that judge the server's own events (failed logins), with
/// the configured whitelist only: the server cannot lock the host out (the
/// agents' firewalls never ban loopback or their own addresses).
async fn detector(
    config: &Config,
    rules: &rampart_agent::rules::Rules,
    store: &dyn Store,
) -> anyhow::Result<Pipeline> {
    let whitelist = Whitelist::exactly(config.policy.whitelist_nets()?);
    let mut policy = Policy::new(
        config.policy.clone(),
        whitelist,
        Pipeline::overrides(&rules.scenarios),
    );
    policy.seed_history(
        store
            .ban_history(Utc::now() - config.policy.escalation.lookback.to_chrono())
            .await?,
    );
    Ok(Pipeline::new(&rules.scenarios, policy))
}

/// A database URL without its password.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            redact("postgres://rampart:secret@db:5432/rampart"),
            "postgres://rampart:***@db:5432/rampart"
        );
        assert_eq!(redact("postgres://rampart@db/x"), "postgres://rampart@db/x");
        assert_eq!(redact("sqlite:///var/lib/x.db"), "sqlite:///var/lib/x.db");
    }
}
