//! The outbox: what a node pushes to the server, read from its own store.
//!
//! Nothing waits in memory. The node's store already numbers what it
//! records — the decision change log by `seq`, findings, actions and
//! request-log records by id — so the outbox keeps one cursor per kind and
//! pushes what lies after it, a batch at a time, oldest first. A cursor
//! moves (and is saved in the store, under positions source
//! [`OUTBOX_SOURCE`]) only once the server has the batch, so a server that
//! is away, or a node that is killed, loses nothing: the next push starts
//! where the last accepted one ended. Delivery is at least once: a batch
//! whose answer was lost is pushed again (the server recognises decisions
//! it has; findings, actions and log records may then arrive twice).
//!
//! What is pushed: the node's own ban decisions (not those it applied from
//! the server's stream, which carry a `remote_id`), findings that led to no
//! decision (those behind a decision travel inside it), every actuator
//! action, every request-log record. Items the server refuses as invalid
//! (400, 413, 422) are skipped and counted; they would never be accepted.

use std::sync::Arc;

use rampart_api::{BatchResult, EventIn, LogRecordIn};
use rampart_core::Action;
use rampart_store::follow::Follower;
use rampart_store::{ChangeKind, Position, Store, StoreError};

use crate::link::{Link, LinkError};
use crate::metrics::FleetMetrics;

/// The positions source under which the outbox's cursors are saved (one
/// path per server and kind).
pub const OUTBOX_SOURCE: &str = "fleet-outbox";

/// What the outbox pushes, each with its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The node's own ban decisions (change-log `seq`).
    Decisions,
    /// Findings that led to no decision (finding id).
    Findings,
    /// Actuator actions (action id).
    Actions,
    /// Request-log records (record id).
    Requests,
}

impl Stream {
    /// Every stream, in the order they are pushed.
    pub const ALL: [Stream; 4] = [
        Stream::Decisions,
        Stream::Findings,
        Stream::Actions,
        Stream::Requests,
    ];

    /// Its name (in saved positions and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Decisions => "decisions",
            Stream::Findings => "findings",
            Stream::Actions => "actions",
            Stream::Requests => "requests",
        }
    }
}

/// Why a push did not get through.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The server could not take it now (retried later).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The node's store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One batch read from the store: what to push, and where the cursor goes
/// once the server has it.
struct Batch {
    /// `/api/v1/events` items, or `/api/v1/logs` records.
    body: Body,
    /// Items read (some need no push: revocations, imported decisions).
    read: usize,
    /// The cursor after them.
    next: i64,
}

enum Body {
    Events(Vec<EventIn>),
    Logs(Vec<LogRecordIn>),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Events(v) => v.len(),
            Body::Logs(v) => v.len(),
        }
    }
}

/// The outbox of one node.
pub struct Outbox {
    store: Arc<dyn Store>,
    link: Arc<Link>,
    metrics: Arc<FleetMetrics>,
    batch: u32,
    cursors: [i64; 4],
}

impl Outbox {
    /// The outbox for `link`'s server, its cursors loaded from `store`
    /// (from the start of each table when none was saved).
    pub async fn load(
        store: Arc<dyn Store>,
        link: Arc<Link>,
        metrics: Arc<FleetMetrics>,
        batch: usize,
    ) -> Result<Self, StoreError> {
        let saved = store.load_positions(OUTBOX_SOURCE).await?;
        let mut cursors = [0i64; 4];
        for (i, stream) in Stream::ALL.iter().enumerate() {
            let key = cursor_key(&link, *stream);
            if let Some(p) = saved.iter().find(|p| p.path == key) {
                cursors[i] = i64::try_from(p.offset).unwrap_or(i64::MAX);
            }
        }
        Ok(Self {
            store,
            link,
            metrics,
            batch: u32::try_from(batch.max(1)).unwrap_or(u32::MAX),
            cursors,
        })
    }

    /// Where `stream` stands (the last id or seq pushed).
    pub fn cursor(&self, stream: Stream) -> i64 {
        self.cursors[index(stream)]
    }

    /// Pushes every stream until each is caught up or a push fails; the
    /// number of items the server took.
    pub async fn drain(&mut self) -> Result<u64, PushError> {
        let mut pushed = 0;
        for stream in Stream::ALL {
            loop {
                let (read, accepted) = self.push_once(stream).await?;
                pushed += accepted;
                if read == 0 {
                    break;
                }
            }
        }
        Ok(pushed)
    }

    /// Pushes one batch of `stream`: (items read, items the server took).
    /// Read 0: the stream is caught up.
    pub async fn push_once(&mut self, stream: Stream) -> Result<(usize, u64), PushError> {
        let batch = self.read(stream).await?;
        if batch.read == 0 {
            return Ok((0, 0));
        }
        let count = batch.body.len();
        let result = match &batch.body {
            Body::Events(items) if items.is_empty() => Ok(None),
            Body::Logs(items) if items.is_empty() => Ok(None),
            Body::Events(items) => self.link.post("/api/v1/events", items).await.map(Some),
            Body::Logs(items) => self.link.post("/api/v1/logs", items).await.map(Some),
        };
        let rejected = match result {
            Ok(None) => 0,
            Ok(Some(answer)) => {
                serde_json::from_slice::<BatchResult>(&answer).map_or(0, |r| r.rejected)
            }
            // The server will never take these: skip them, counted.
            Err(e) if e.refused_items() => {
                tracing::warn!(error = %e, stream = stream.as_str(), count, "fleet: the server refused a batch");
                count as u64
            }
            Err(e) => {
                self.metrics.push_failures.inc();
                return Err(e.into());
            }
        };
        if rejected > 0 {
            self.metrics.rejected.inc_by(rejected);
            tracing::warn!(
                rejected,
                stream = stream.as_str(),
                "fleet: the server refused pushed records"
            );
        }
        let accepted = (count as u64).saturating_sub(rejected);
        self.metrics.pushed.inc_by(accepted);
        self.move_to(stream, batch.next).await;
        Ok((batch.read, accepted))
    }

    /// The next batch of `stream` after its cursor.
    async fn read(&self, stream: Stream) -> Result<Batch, StoreError> {
        let after = self.cursor(stream);
        let limit = self.batch;
        Ok(match stream {
            Stream::Decisions => {
                let mut follower = Follower::from(self.store.clone(), after);
                let changes = follower.peek().await?;
                let changes = &changes[..changes.len().min(limit as usize)];
                if let Some(last) = changes.last() {
                    follower.advance(last.seq);
                }
                let items = changes
                    .iter()
                    .filter(|c| {
                        c.kind == ChangeKind::Added
                            && c.decision.remote_id.is_none()
                            && c.decision.decision.action == Action::Ban
                    })
                    .map(|c| {
                        let mut decision = c.decision.decision.clone();
                        decision.id = None;
                        EventIn::Decision { decision }
                    })
                    .collect();
                Batch {
                    body: Body::Events(items),
                    read: changes.len(),
                    next: follower.cursor(),
                }
            }
            Stream::Findings => {
                let found = self.store.findings_after(after, limit).await?;
                Batch {
                    read: found.len(),
                    next: found.last().map_or(after, |f| f.id),
                    body: Body::Events(
                        found
                            .into_iter()
                            .filter(|f| f.decision_id.is_none())
                            .map(|f| EventIn::Finding {
                                finding: f.finding,
                                note: f.note,
                            })
                            .collect(),
                    ),
                }
            }
            Stream::Actions => {
                let actions = self.store.actions_after(after, limit).await?;
                Batch {
                    read: actions.len(),
                    next: actions.last().map_or(after, |(id, _)| *id),
                    body: Body::Events(
                        actions
                            .into_iter()
                            .map(|(_, a)| EventIn::Action {
                                time: a.time,
                                decision_id: a.decision_id,
                                action: a.action,
                                target: a.target,
                                ok: a.ok,
                                detail: a.detail,
                            })
                            .collect(),
                    ),
                }
            }
            Stream::Requests => {
                let records = self.store.requests_after(after, limit).await?;
                Batch {
                    read: records.len(),
                    next: records.last().map_or(after, |r| r.id),
                    body: Body::Logs(records.iter().map(|r| LogRecordIn::of(&r.record)).collect()),
                }
            }
        })
    }

    /// Moves `stream`'s cursor and saves it (a failed save only means the
    /// batch may be pushed again after a restart).
    async fn move_to(&mut self, stream: Stream, next: i64) {
        self.cursors[index(stream)] = next;
        let position = Position {
            source: OUTBOX_SOURCE.to_owned(),
            path: cursor_key(&self.link, stream),
            dev: 0,
            inode: 0,
            offset: u64::try_from(next).unwrap_or_default(),
            fingerprint: None,
            cursor: None,
        };
        if let Err(error) = self.store.save_position(&position).await {
            tracing::warn!(%error, stream = stream.as_str(), "fleet: cannot save the outbox cursor");
        }
    }
}

fn index(stream: Stream) -> usize {
    match stream {
        Stream::Decisions => 0,
        Stream::Findings => 1,
        Stream::Actions => 2,
        Stream::Requests => 3,
    }
}

/// The saved position's path of `stream` for `link`'s server: switching
/// servers starts over (the new server gets the node's history).
fn cursor_key(link: &Link, stream: Stream) -> String {
    format!("{}/outbox/{}", link.base(), stream.as_str())
}
