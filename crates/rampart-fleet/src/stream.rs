//! Following the server's decision stream into the node's own store.
//!
//! The stream (`GET /api/v1/decisions/stream`, long polled) is applied to
//! the local store: a ban in force is imported (with the server's id, so the
//! outbox never pushes it back) unless a local ban on that target already
//! lasts as long; a revocation lifts the local bans of its target. The
//! node's firewall and gateway follow the local change log as always, so a
//! ban made anywhere is enforced here within a second or two. The stream's
//! cursor is saved in the store (positions source [`STREAM_SOURCE`]), so a
//! restart resumes; without one, the stream starts with the bans in force.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_api::{StreamChange, StreamOut};
use rampart_core::{Action, ChangeKind, Decision};
use rampart_store::{DecisionQuery, Position, Store, StoreError};

use crate::link::{Link, LinkError};
use crate::metrics::FleetMetrics;

/// The positions source under which the stream cursor is saved.
pub const STREAM_SOURCE: &str = "fleet";

/// Longest the server holds a poll waiting for a change.
const WAIT_SECONDS: u32 = 10;

/// Follows the decision stream into the node's store.
pub struct StreamFollower {
    store: Arc<dyn Store>,
    link: Arc<Link>,
    metrics: Arc<FleetMetrics>,
    every: Duration,
    cursor: Option<i64>,
}

impl StreamFollower {
    /// A follower resuming from the cursor saved for `link`'s server.
    pub async fn load(
        store: Arc<dyn Store>,
        link: Arc<Link>,
        metrics: Arc<FleetMetrics>,
        every: Duration,
    ) -> Self {
        let key = cursor_key(&link);
        let cursor = match store.load_positions(STREAM_SOURCE).await {
            Ok(saved) => saved
                .iter()
                .find(|p| p.path == key)
                .and_then(|p| i64::try_from(p.offset).ok()),
            Err(error) => {
                tracing::warn!(%error, "fleet: cannot read the saved stream cursor");
                None
            }
        };
        Self {
            store,
            link,
            metrics,
            every,
            cursor,
        }
    }

    /// Polls and applies, forever.
    pub async fn run(mut self) {
        loop {
            match self.poll_once().await {
                Ok(0) if self.cursor.is_none() => tokio::time::sleep(self.every).await,
                Ok(_) => {}
                Err(error) => {
                    self.metrics.follow_failures.inc();
                    tracing::warn!(%error, "fleet: cannot read the decision stream; retrying");
                    tokio::time::sleep(self.every.max(Duration::from_secs(1))).await;
                }
            }
        }
    }

    /// One poll: the changes applied.
    pub async fn poll_once(&mut self) -> Result<usize, LinkError> {
        let path = match self.cursor {
            Some(c) => format!("/api/v1/decisions/stream?since={c}&wait={WAIT_SECONDS}"),
            None => "/api/v1/decisions/stream".to_owned(),
        };
        let slice: StreamOut = self.link.get(&path).await?;
        for change in &slice.changes {
            if let Err(error) = self.apply(change).await {
                tracing::error!(%error, "fleet: cannot apply a decision locally");
            }
        }
        if self.cursor != Some(slice.cursor) {
            self.cursor = Some(slice.cursor);
            let saved = Position {
                source: STREAM_SOURCE.to_owned(),
                path: cursor_key(&self.link),
                dev: 0,
                inode: 0,
                offset: u64::try_from(slice.cursor).unwrap_or_default(),
                fingerprint: None,
                cursor: None,
            };
            if let Err(error) = self.store.save_position(&saved).await {
                tracing::warn!(%error, "fleet: cannot save the stream cursor");
            }
        }
        Ok(slice.changes.len())
    }

    async fn apply(&self, change: &StreamChange) -> Result<(), StoreError> {
        let Some(decision) = change.decision.decision() else {
            tracing::warn!(
                id = change.decision.id,
                "fleet: unreadable decision in the stream"
            );
            return Ok(());
        };
        let now = Utc::now();
        match change.kind {
            ChangeKind::Added
                if decision.action == Action::Ban
                    && !decision.dry_run
                    && decision.is_active(now)
                    && change.decision.revoked_at.is_none() =>
            {
                if covered(self.store.as_ref(), &decision, now).await? {
                    return Ok(());
                }
                let mut local = decision.clone();
                local.id = None;
                self.store
                    .import_decision(&local, change.decision.id)
                    .await?;
                self.metrics.applied.inc();
                tracing::info!(ip = %rampart_core::addr::display_net(&decision.target), origin = %decision.origin, "fleet: ban from the server");
            }
            ChangeKind::Added => {}
            ChangeKind::Revoked => {
                let by = format!(
                    "server:{}",
                    change.decision.revoked_by.as_deref().unwrap_or("?")
                );
                let lifted = self.store.revoke(Some(&decision.target), &by, now).await?;
                if !lifted.is_empty() {
                    self.metrics.applied.inc();
                    tracing::info!(ip = %rampart_core::addr::display_net(&decision.target), "fleet: unban from the server");
                }
            }
        }
        Ok(())
    }
}

fn cursor_key(link: &Link) -> String {
    format!("{}/api/v1/decisions/stream", link.base())
}

/// Whether a local ban in force already covers `d`'s target at least as long.
async fn covered(local: &dyn Store, d: &Decision, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let active = local
        .query_decisions(&DecisionQuery {
            active_at: Some(now),
            target: Some(d.target),
            ..DecisionQuery::default()
        })
        .await?;
    Ok(active.iter().any(|s| {
        !s.decision.dry_run
            && s.decision.target == d.target
            && match (s.decision.until, d.until) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => a >= b,
            }
    }))
}
