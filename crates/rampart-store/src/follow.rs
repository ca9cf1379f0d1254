//! Following the decision change log: the one follower every enforcement
//! point uses (the agent's firewall, the gateway's ban table, the fleet
//! outbox).
//!
//! A [`Follower`] holds a cursor (the `seq` of the last change handled) and
//! reads the changes after it, a page at a time, in order. Who follows
//! decides when the cursor moves: [`Follower::poll`] moves it over what it
//! returns (the change is handled in memory), while [`Follower::peek`] and
//! [`Follower::advance`] let a caller move it only once the changes are
//! safely elsewhere (pushed to the server). [`Follower::run`] polls on a
//! timer and hands each page to a [`ChangeSink`] until told to stop.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Change, DecisionStore, StoreError};

/// Changes read per page.
pub const PAGE: u32 = 1000;

/// What a follower hands its changes to.
///
/// Contract: `apply` gets every change after the follower's starting
/// cursor exactly once, in `seq` order, in pages of at most [`PAGE`]; the
/// follower has moved its cursor past them when `apply` is called (a
/// change is not offered twice, so `apply` must not lose it). `tick` runs
/// after each round of polling, whether or not anything changed (retries,
/// gauges). `store_error` is told of every failed read; the follower keeps
/// going and reads the same changes again next round.
#[async_trait]
pub trait ChangeSink: Send {
    /// Handles one page of changes.
    async fn apply(&mut self, changes: &[Change]);

    /// After each round.
    async fn tick(&mut self) {}

    /// A read of the change log failed.
    fn store_error(&mut self, error: &StoreError) {
        tracing::warn!(%error, "cannot read the decision change log");
    }
}

/// A cursor on the store's decision change log.
pub struct Follower {
    store: Arc<dyn DecisionStore>,
    cursor: i64,
}

impl Follower {
    /// Follows from `cursor` (0: from the start of the log).
    pub fn from(store: Arc<dyn DecisionStore>, cursor: i64) -> Self {
        Self { store, cursor }
    }

    /// Follows from the newest change now (what is in force must then be
    /// loaded separately).
    pub async fn at_latest(store: Arc<dyn DecisionStore>) -> Result<Self, StoreError> {
        let cursor = store.latest_cursor().await?;
        Ok(Self { store, cursor })
    }

    /// The `seq` of the last change moved over.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// The next page of changes, without moving the cursor.
    pub async fn peek(&self) -> Result<Vec<Change>, StoreError> {
        self.store.changes_since(self.cursor, PAGE).await
    }

    /// Moves the cursor to `seq` (never backwards).
    pub fn advance(&mut self, seq: i64) {
        self.cursor = self.cursor.max(seq);
    }

    /// The next page of changes, moving the cursor over them.
    pub async fn poll(&mut self) -> Result<Vec<Change>, StoreError> {
        let changes = self.peek().await?;
        if let Some(last) = changes.last() {
            self.advance(last.seq);
        }
        Ok(changes)
    }

    /// Every `every`, hands the changes after the cursor to `sink` (all
    /// pages, until caught up) and then ticks it, until `stop` turns true.
    pub async fn run(
        mut self,
        sink: &mut dyn ChangeSink,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            loop {
                match self.poll().await {
                    Ok(changes) if changes.is_empty() => break,
                    Ok(changes) => {
                        let full = changes.len() >= PAGE as usize;
                        sink.apply(&changes).await;
                        if !full {
                            break;
                        }
                    }
                    Err(error) => {
                        sink.store_error(&error);
                        break;
                    }
                }
            }
            sink.tick().await;
        }
    }
}
