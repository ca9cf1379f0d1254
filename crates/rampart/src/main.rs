//! The rampart binary: command line and role wiring. Library crates do the
//! work; this maps outcomes to output and exit codes.

/// `println!` that hands a failed write (a closed pipe) back to the caller
/// with `?` instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod accounts;
mod agent;
mod check;
mod decisions;
mod gateway;
mod replay;
mod server;
mod signal;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// rampart keeps Linux servers and their web applications safe: it reads
/// logs as they are written, recognises attacks and bans the attackers in
/// the kernel firewall, explaining every decision.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, propagate_version = true)]
struct Cli {
    /// Log output format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormatArg,
    /// Log filter (e.g. `info`, `rampart=debug`); `RUST_LOG` works too.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    /// Results as JSON on standard output, one object per line (every
    /// command that prints results: lists, bans, accounts, checks,
    /// replays, simulations).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow logs, detect attacks and enforce bans (the agent role).
    Agent(RunArgs),
    /// Run every role the config enables in one process: the agent, and
    /// the gateway when `[[gateway.backend]]` is configured.
    Run(RunArgs),
    /// Run the inline HTTP gateway: a reverse proxy that refuses floods,
    /// banned clients and attack requests.
    Gateway(gateway::GatewayArgs),
    /// Run parsers and scenarios over log files as fast as possible, using
    /// the timestamps in the lines.
    Replay(replay::ReplayArgs),
    /// List, add and lift decisions in the store of a running agent.
    Decisions(decisions::DecisionsArgs),
    /// Run the central server: REST API, live stream, fleet sync.
    Server(server::ServerArgs),
    /// Send attack traffic on loopback at a gateway and report what it blocked.
    Simulate(simulate::SimulateArgs),
    /// Manage the people allowed into the server (viewer, operator, admin).
    User(accounts::UserArgs),
    /// Manage machine tokens (agents, gateways, scripts).
    Token(accounts::TokenArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Config file.
    #[arg(short, long, default_value = "/etc/rampart/rampart.toml")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a config file and the rules it uses; report every problem.
    Check {
        /// Config file.
        #[arg(short, long, default_value = "/etc/rampart/rampart.toml")]
        config: PathBuf,
    },
}

/// Exit code for bad usage, config or rules.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let result = match cli.command {
        Command::Agent(args) => agent::run(&args.config, false),
        Command::Run(args) => agent::run(&args.config, true),
        Command::Gateway(args) => gateway::run(args),
        Command::Replay(mut args) => {
            args.json = cli.json;
            replay::run(args)
        }
        Command::Server(args) => server::run(args),
        Command::User(args) => accounts::run_user(args, cli.json),
        Command::Token(args) => accounts::run_token(args, cli.json),
        Command::Decisions(args) => decisions::run(args, cli.json),
        Command::Simulate(mut args) => {
            args.json = cli.json;
            simulate::run(args)
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => check::run(&config, cli.json),
    };
    match result {
        Ok(code) => code,
        // The reader of our output went away (`rampart replay … | head`):
        // nothing is wrong with the command, so no message; exit as a
        // program killed by SIGPIPE would, so shells see the same status.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(128 + 13),
        Err(e) => {
            eprintln!("rampart: {e:#}");
            if e.downcast_ref::<rampart_config::ConfigError>().is_some()
                || e.downcast_ref::<rampart_core::RuleErrors>().is_some()
            {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader closed it.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(format: LogFormatArg, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a file or a pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormatArg::Text => builder.init(),
        LogFormatArg::Json => builder.json().init(),
    }
}
