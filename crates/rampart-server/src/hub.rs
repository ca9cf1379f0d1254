//! The live stream's fan-out: one bounded broadcast channel, each item
//! serialised once for every subscriber (see [`crate::live`] for the
//! protocol and the poller that feeds it).

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use rampart_store::AgentRecord;
use serde_json::json;
use tokio::sync::{broadcast, watch};

/// Messages a client may fall behind before it is dropped.
pub const QUEUE: usize = 4096;

/// One message for every subscriber of a channel, serialised once.
#[derive(Debug)]
pub struct LiveItem {
    /// Its channel.
    pub channel: &'static str,
    /// The whole frame.
    pub text: Utf8Bytes,
}

/// The fan-out.
pub struct Hub {
    pub(crate) tx: broadcast::Sender<Arc<LiveItem>>,
    pub(crate) version: watch::Sender<u64>,
    pub(crate) stopping: watch::Sender<bool>,
    /// The newest request-log and finding ids when a client connected: the
    /// poller follows those tables only while somebody listens, and starts
    /// from here (not from what is newest at its next tick), so nothing
    /// stored after a client's `subscribed` is missed.
    pub(crate) start: std::sync::Mutex<Option<(i64, i64)>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub with no subscribers.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(QUEUE);
        let (version, _) = watch::channel(0);
        let (stopping, _) = watch::channel(false);
        Self {
            tx,
            version,
            stopping,
            start: std::sync::Mutex::new(None),
        }
    }

    /// A client connected when these were the newest (request, finding) ids.
    pub(crate) fn pin_start(&self, (requests, findings): (i64, i64)) {
        if let Ok(mut start) = self.start.lock() {
            *start = Some(match *start {
                Some((r, f)) => (r.min(requests), f.min(findings)),
                None => (requests, findings),
            });
        }
    }

    pub(crate) fn take_start(&self) -> Option<(i64, i64)> {
        self.start.lock().ok().and_then(|mut s| s.take())
    }

    /// Sends `data` on `channel`.
    pub fn publish(&self, channel: &'static str, data: &serde_json::Value) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let text = json!({"type": "item", "channel": channel, "data": data}).to_string();
        let _ = self.tx.send(Arc::new(LiveItem {
            channel,
            text: text.into(),
        }));
    }

    /// Sends a fleet member's heartbeat.
    pub fn publish_agent(&self, agent: &AgentRecord) {
        if let Ok(v) = serde_json::to_value(agent) {
            self.publish("agents", &v);
        }
    }

    /// Wakes decision-stream waiters (a decision changed).
    pub fn wake(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Resolves at the next [`Hub::wake`] after this call, or when the
    /// server begins to stop.
    pub fn changed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.version.subscribe();
        let stopping = self.stopped();
        async move {
            tokio::select! {
                _ = rx.changed() => {}
                () = stopping => {}
            }
        }
    }

    /// Tells long polls and live clients to finish (the server is stopping).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Hub::stop`] has been called.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Clients listening now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}
