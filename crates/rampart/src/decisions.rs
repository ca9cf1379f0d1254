//! `rampart decisions`: list, ban and unban through the store. A running
//! agent follows the store's change log and enforces what is written here
//! within a second; an agent started later restores active bans at start.

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use rampart_core::{Decision, HumanDuration, Whitelist, parse_net};
use rampart_store::DecisionQuery;

use crate::accounts::StoreArgs;

#[derive(Debug, clap::Args)]
pub struct DecisionsArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: DecisionsCommand,
}

#[derive(Debug, Subcommand)]
enum DecisionsCommand {
    /// Bans in force (or every decision with --all).
    List {
        /// Every decision, expired and lifted ones too.
        #[arg(long)]
        all: bool,
        /// Only decisions on this address or inside this prefix.
        #[arg(long)]
        ip: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Ban an address or prefix.
    Ban {
        /// Address or prefix (`203.0.113.7`, `2001:db8::/64`).
        ip: String,
        /// How long (`90s`, `10m`, `2h`, `1d`).
        #[arg(long = "for", default_value = "4h")]
        duration: HumanDuration,
        /// Why, for the record.
        #[arg(long, default_value = Decision::MANUAL_BAN)]
        reason: String,
        /// Record the ban without enforcing it.
        #[arg(long)]
        dry_run: bool,
        /// Ban even a whitelisted address.
        #[arg(long)]
        force: bool,
    },
    /// Lift bans on an address or prefix (and on addresses inside it), or all.
    Unban {
        /// Address or prefix (or --all).
        #[arg(conflicts_with = "all")]
        ip: Option<String>,
        /// Lift every ban.
        #[arg(long)]
        all: bool,
    },
}

fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".to_owned())
}

pub fn run(args: DecisionsArgs, json: bool) -> anyhow::Result<ExitCode> {
    if let DecisionsCommand::Unban {
        ip: None,
        all: false,
    } = &args.command
    {
        anyhow::bail!("name the address or prefix to unban, or give --all to lift every ban");
    }
    let (url, config) = args.store.resolve()?;
    let whitelist = config.map(|c| c.policy.whitelist).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = rampart_store::open(&url).await.with_context(|| format!("cannot open store {url}"))?;
        let now = Utc::now();
        match args.command {
            DecisionsCommand::List { all, ip, limit } => {
                let query = DecisionQuery {
                    active_at: (!all).then_some(now),
                    target: ip.as_deref().map(parse_net).transpose()?,
                    limit: Some(limit),
                    ..DecisionQuery::default()
                };
                let rows = store.query_decisions(&query).await?;
                if json {
                    for row in &rows {
                        let mut value = crate::replay::decision_json(&row.decision);
                        value["revoked_at"] = serde_json::json!(row.revoked_at);
                        value["revoked_by"] = serde_json::json!(row.revoked_by);
                        value["active"] = serde_json::json!(row.is_active(now));
                        outln!("{value}");
                    }
                } else if rows.is_empty() {
                    outln!("no {}decisions", if all { "" } else { "active " });
                } else {
                    outln!("{:>6}  {:<39} {:<6} {:<22} {:<20} {:<8} reason", "id", "target", "action", "origin", "until", "state");
                    for row in &rows {
                        let d = &row.decision;
                        let state = if row.revoked_at.is_some() {
                            "lifted"
                        } else if d.dry_run {
                            "dry-run"
                        } else if row.is_active(now) {
                            "active"
                        } else {
                            "expired"
                        };
                        outln!(
                            "{:>6}  {:<39} {:<6} {:<22} {:<20} {:<8} {}",
                            row.id,
                            rampart_core::addr::display_net(&d.target),
                            d.action.as_str(),
                            d.origin.to_string(),
                            d.until.map_or_else(|| "-".to_owned(), |u| u.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                            state,
                            d.reason
                        );
                    }
                }
            }
            DecisionsCommand::Ban { ip, duration, reason, dry_run, force } => {
                let target = parse_net(&ip)?;
                if duration.0.is_zero() {
                    anyhow::bail!("--for must be above zero");
                }
                let entries = whitelist.iter().map(|w| parse_net(w)).collect::<Result<Vec<_>, _>>()?;
                if !force && Whitelist::new(entries).overlaps(&target) {
                    anyhow::bail!("{ip} is whitelisted (loopback or policy.whitelist); use --force to ban it anyway");
                }
                let decision = Decision::operator_ban(target, &operator(), now, duration.to_chrono(), Some(reason), dry_run);
                let id = store.insert_decision(&decision).await?;
                if json {
                    let value = serde_json::json!({
                        "banned": rampart_core::addr::display_net(&target),
                        "decision_id": id,
                        "until": decision.until,
                        "dry_run": dry_run,
                    });
                    outln!("{value}");
                } else {
                    outln!(
                        "banned {} for {duration} (decision {id}){}",
                        rampart_core::addr::display_net(&target),
                        if dry_run { ", dry run" } else { "" }
                    );
                }
            }
            DecisionsCommand::Unban { ip, all } => {
                let target = if all { None } else { ip.as_deref().map(parse_net).transpose()? };
                let lifted = store.revoke(target.as_ref(), &operator(), now).await?;
                if json {
                    let value = serde_json::json!({
                        "target": target.as_ref().map(rampart_core::addr::display_net),
                        "lifted": lifted,
                    });
                    outln!("{value}");
                    return Ok(ExitCode::SUCCESS);
                }
                match (lifted.len(), target) {
                    (0, Some(t)) => outln!("no active ban on {}", rampart_core::addr::display_net(&t)),
                    (0, None) => outln!("no active bans"),
                    (n, _) => outln!("lifted {n} ban{}", if n == 1 { "" } else { "s" }),
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
