//! Client connections: accept, TLS, the idle timer, the framing guard,
//! and hyper's HTTP/1.1 + HTTP/2 server with upgrades.
//!
//! The layers of one connection, outside in: TCP → TLS (when configured,
//! ALPN picks h2 or http/1.1) → [`IdleIo`](rampart_http::idle::IdleIo) (closes a connection whose bytes
//! stopped moving) → [`FramingGuard`](rampart_http::framing::FramingGuard) (400
//! for ambiguous HTTP/1 framing) → hyper → [`crate::proxy::serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::shared::Shared;

/// Accepts connections until `stop` turns true.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    graceful: Arc<GracefulShutdown>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off a little.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.metrics.connections.inc();
        tokio::spawn(connection(
            Arc::clone(&shared),
            stream,
            peer,
            tls.clone(),
            graceful.watcher(),
        ));
    }
}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    watcher: Watcher,
) {
    shared.metrics.open_connections.inc();
    let handshake_limit = shared.config.timeouts.header_read.0;
    match tls {
        Some(acceptor) => {
            match tokio::time::timeout(handshake_limit, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve(Arc::clone(&shared), stream, peer, true, watcher).await,
                Ok(Err(error)) => {
                    shared.metrics.tls_failures.inc();
                    tracing::debug!(%error, %peer, "tls handshake failed");
                }
                Err(_) => {
                    shared.metrics.tls_failures.inc();
                    tracing::debug!(%peer, "tls handshake timed out");
                }
            }
        }
        None => serve(Arc::clone(&shared), stream, peer, false, watcher).await,
    }
    shared.metrics.open_connections.dec();
}

async fn serve<IO>(shared: Arc<Shared>, io: IO, peer: SocketAddr, tls: bool, watcher: Watcher)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeouts = &shared.config.timeouts;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read.0)
        .keep_alive(true)
        .max_buf_size(shared.config.max_header_bytes.max(8192) * 2);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(shared.config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let io = rampart_http::idle::IdleIo::new(io, timeouts.idle.0);
    let guard = rampart_http::framing::FramingGuard::new(io, shared.config.max_header_bytes);
    let rejection = guard.rejection_handle();
    let service_shared = Arc::clone(&shared);
    let service =
        service_fn(move |req| crate::proxy::serve(Arc::clone(&service_shared), req, peer, tls));
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(guard), service)
        .into_owned();
    if let Err(error) = watcher.watch(conn).await {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
    if let Some(reason) = rejection.get() {
        shared
            .metrics
            .framing_rejected
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: reason.as_str().to_owned(),
            })
            .inc();
        shared.metrics.error(crate::metrics::Culprit::client);
        tracing::info!(%peer, reason = reason.as_str(), "ambiguous request framing refused");
    }
}
