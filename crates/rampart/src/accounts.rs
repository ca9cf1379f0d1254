//! `rampart user add|passwd|list` and `rampart token create|revoke|list`:
//! the people and machines allowed into the server, kept in the store.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Subcommand;
use rampart_config::Config;
use rampart_server::auth;
use rampart_store::{Role, Store};

/// Where the store is: a config file or a database URL.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Config file naming the store.
    #[arg(
        short,
        long,
        global = true,
        default_value = "/etc/rampart/rampart.toml",
        conflicts_with = "database"
    )]
    config: PathBuf,
    /// Database URL, instead of the config's (`sqlite:///path` or `postgres://…`).
    #[arg(long, global = true)]
    database: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        /// Login name.
        name: String,
        /// viewer (reads), operator (also bans and unbans) or admin (also manages users and tokens).
        #[arg(long, default_value = "viewer", value_parser = person_role)]
        role: Role,
        /// Read the password from the first line of standard input (the
        /// default when standard input is not a terminal).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password (and role, with --role).
    Passwd {
        /// Login name.
        name: String,
        /// New role.
        #[arg(long, value_parser = person_role)]
        role: Option<Role>,
        /// Read the password from the first line of standard input (the
        /// default when standard input is not a terminal).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it (once: only its hash is kept).
    Create {
        /// Its name (`agent-web-1`).
        name: String,
        /// agent (push events, read decisions), viewer, operator or admin.
        #[arg(long, default_value = "agent", value_parser = any_role)]
        role: Role,
        /// Who creates it, for the record.
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Revoke a token by name.
    Revoke {
        /// Its name.
        name: String,
    },
    /// List tokens (never their secrets).
    List,
}

fn any_role(text: &str) -> Result<Role, String> {
    Role::from_name(text).ok_or_else(|| format!("{text:?}: agent, viewer, operator or admin"))
}

fn person_role(text: &str) -> Result<Role, String> {
    match any_role(text)? {
        Role::Agent => Err("agent is for tokens; people are viewer, operator or admin".into()),
        role => Ok(role),
    }
}

impl StoreArgs {
    /// The store's URL, and the config when the store was named by one.
    pub fn resolve(&self) -> anyhow::Result<(String, Option<Config>)> {
        Ok(match &self.database {
            Some(url) => (url.clone(), None),
            None => {
                let config = Config::load(&self.config)?;
                (config.store.url.clone(), Some(config))
            }
        })
    }
}

fn store_url(args: &StoreArgs) -> anyhow::Result<String> {
    Ok(args.resolve()?.0)
}

fn with_store<F>(args: &StoreArgs, work: F) -> anyhow::Result<ExitCode>
where
    F: AsyncFnOnce(&dyn Store) -> anyhow::Result<ExitCode>,
{
    let url = store_url(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = rampart_store::open(&url)
            .await
            .with_context(|| format!("cannot open store {url}"))?;
        work(store.as_ref()).await
    })
}

/// The password: the first line of standard input (with
/// `--password-stdin`, or whenever standard input is not a terminal: a
/// script or a pipe), or typed twice at a prompt.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!(
                "no password on standard input: pipe one in (`printf '%s\\n' \"$PW\" | rampart user add …`) or run at a terminal to be asked"
            );
        }
        return Ok(password);
    }
    let first = rpassword::prompt_password("password: ")?;
    let second = rpassword::prompt_password("again: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
}

pub fn run_user(args: UserArgs, json: bool) -> anyhow::Result<ExitCode> {
    // Read the password before opening the store: a typo costs nothing.
    let password = match &args.command {
        UserCommand::Add { password_stdin, .. } | UserCommand::Passwd { password_stdin, .. } => {
            Some(read_password(*password_stdin)?)
        }
        UserCommand::List => None,
    };
    let hash = password.as_deref().map(auth::hash_password).transpose()?;
    with_store(&args.store, async move |store| {
        let now = Utc::now();
        match args.command {
            UserCommand::Add { name, role, .. } => {
                if name.trim().is_empty() || name.contains(char::is_whitespace) {
                    bail!("user name {name:?}: no spaces, not empty");
                }
                let hash = hash.context("no password")?;
                store.create_user(&name, role, &hash, now).await?;
                if json {
                    outln!(
                        "{}",
                        serde_json::json!({"user": name, "role": role.as_str(), "added": true})
                    );
                } else {
                    outln!("user {name} added ({})", role.as_str());
                }
            }
            UserCommand::Passwd { name, role, .. } => {
                if !store.update_user(&name, role, hash.as_deref(), now).await? {
                    bail!("no user {name:?}");
                }
                if json {
                    outln!("{}", serde_json::json!({"user": name, "updated": true}));
                } else {
                    outln!("user {name} updated");
                }
            }
            UserCommand::List => {
                for user in store.list_users().await? {
                    if json {
                        outln!("{}", serde_json::to_string(&user)?);
                    } else {
                        outln!(
                            "{:<20} {:<9} created {}",
                            user.name,
                            user.role.as_str(),
                            user.created_at.format("%Y-%m-%d %H:%M")
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_token(args: TokenArgs, json: bool) -> anyhow::Result<ExitCode> {
    with_store(&args.store, async move |store| {
        let now = Utc::now();
        match args.command {
            TokenCommand::Create { name, role, by } => {
                let (token, hash) = auth::new_token()?;
                store.create_token(&name, role, &hash, &by, now).await?;
                eprintln!(
                    "token {name} created ({}); it is shown once:",
                    role.as_str()
                );
                if json {
                    outln!(
                        "{}",
                        serde_json::json!({"name": name, "role": role.as_str(), "token": token})
                    );
                } else {
                    outln!("{token}");
                }
            }
            TokenCommand::Revoke { name } => {
                if !store.revoke_token(&name, now).await? {
                    bail!("no active token {name:?}");
                }
                if json {
                    outln!("{}", serde_json::json!({"token": name, "revoked": true}));
                } else {
                    outln!("token {name} revoked");
                }
            }
            TokenCommand::List => {
                for token in store.list_tokens().await? {
                    if json {
                        outln!("{}", serde_json::to_string(&token)?);
                    } else {
                        outln!(
                            "{:<20} {:<9} by {:<12} created {} {}",
                            token.name,
                            token.role.as_str(),
                            token.created_by,
                            token.created_at.format("%Y-%m-%d %H:%M"),
                            token
                                .revoked_at
                                .map(|r| format!("revoked {}", r.format("%Y-%m-%d %H:%M")))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
