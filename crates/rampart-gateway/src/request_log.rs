//! The request log: every request is recorded through a bounded queue that
//! never blocks proxying. One writer task drains it in batches into the
//! store; when the store falls behind and the queue is full, records are
//! dropped and counted (`rampart_gateway_request_log_dropped_total`).
//!
//! Contract: [`RequestLog::record`] never waits. The writer owns the
//! receiving end; when every sender is gone it writes what is left and
//! ends; it also ends when told to stop, after writing what is queued, so
//! a graceful shutdown loses nothing that was queued. A failed
//! store write is not retried: its records count as dropped.

use std::sync::Arc;

use rampart_core::RequestRecord;
use rampart_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// The sending side, cloned into every connection.
#[derive(Debug, Clone)]
pub struct RequestLog {
    tx: Option<mpsc::Sender<RequestRecord>>,
}

impl RequestLog {
    /// A log that records nothing (request log disabled).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Starts the writer: at most `queue` records wait, at most `batch` go
    /// into one store transaction.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        queue: usize,
        batch: usize,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<RequestRecord>(queue.max(1));
        let batch = batch.max(1);
        let writer = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(batch);
            let mut stopping = false;
            loop {
                if stopping {
                    // Drain what is queued without waiting for more.
                    while buf.len() < batch {
                        match rx.try_recv() {
                            Ok(record) => buf.push(record),
                            Err(_) => break,
                        }
                    }
                    if buf.is_empty() {
                        break;
                    }
                } else {
                    tokio::select! {
                        n = rx.recv_many(&mut buf, batch) => if n == 0 { break },
                        _ = stop.wait_for(|s| *s) => { stopping = true; continue }
                    }
                }
                let n = buf.len() as u64;
                match store.insert_requests(&buf).await {
                    Ok(()) => {
                        metrics.log_written.inc_by(n);
                    }
                    Err(error) => {
                        tracing::warn!(%error, records = n, "request log write failed");
                        metrics.store_errors.inc();
                        metrics.log_dropped.inc_by(n);
                    }
                }
                buf.clear();
            }
        });
        (Self { tx: Some(tx) }, writer)
    }

    /// Queues a record; drops (and counts) it when the queue is full.
    pub fn record(&self, record: RequestRecord, metrics: &Metrics) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(record).is_err() {
            metrics.log_dropped.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use chrono::Utc;
    use rampart_core::Prediction;
    use rampart_store::sqlite::SqliteStore;

    use super::*;

    fn record(i: u32) -> RequestRecord {
        RequestRecord {
            time: Utc::now(),
            gateway: "gw".into(),
            request_id: format!("r{i}"),
            client: IpAddr::from([192, 0, 2, 1]),
            method: "GET".into(),
            path: "/".into(),
            user_agent: None,
            status: 200,
            request_bytes: 0,
            response_bytes: 1,
            latency_ms: 0.1,
            score: 0.0,
            prediction: Prediction::Normal,
            blocked: false,
            reason: None,
            backend: None,
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_the_rest_is_written() {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open("sqlite::memory:").await.expect("store"));
        let metrics = Arc::new(Metrics::new());
        // Single-threaded runtime: the writer cannot run until we yield, so
        // the first 10 records fill the queue and the next 5 are dropped.
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let (log, writer) =
            RequestLog::start(Arc::clone(&store), Arc::clone(&metrics), 10, 4, stop);
        for i in 0..15 {
            log.record(record(i), &metrics);
        }
        assert_eq!(metrics.log_dropped.get(), 5);
        drop(log);
        writer.await.expect("writer");
        assert_eq!(metrics.log_written.get(), 10);
        let stored = store.recent_requests(None, 100).await.expect("read");
        assert_eq!(stored.len(), 10);
    }
}
