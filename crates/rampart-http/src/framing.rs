//! Request framing guard: refuses HTTP/1 requests whose body framing is
//! ambiguous before hyper sees them.
//!
//! # Why
//!
//! Request smuggling needs two parsers that disagree on where a request ends.
//! hyper, given `Transfer-Encoding: chunked` and `Content-Length` together,
//! silently drops the length and reads a chunked body, and a service cannot
//! see that the conflict was there. RFC 9112 §6.1 lets a server refuse such a
//! request, and rampart does: ambiguous framing gets `400 Bad Request` and is
//! never forwarded.
//!
//! # How
//!
//! [`FramingGuard`] wraps a client connection's byte stream (after TLS, before
//! hyper) and follows HTTP/1 message framing on the bytes the client sends:
//!
//! ```text
//!         head complete, framing unambiguous
//!  Head ─┬──────────────────────────────────▶ Body(n) ─┐
//!   │    └──────────────────────────────────▶ Chunked ─┼─▶ Head      (keep-alive)
//!   │                                                  ├─▶ Draining  (Connection: close, HTTP/1.0)
//!   │                                                  └─▶ Opaque    (upgrade or CONNECT)
//!   ├─ HTTP/2 preface first on the connection ─────────────▶ Opaque
//!   ├─ ambiguous framing, head too large ─▶ Refusing ─▶ Closed (EOF)
//!   └─ head httparse cannot parse ─▶ released unchanged ─▶ Closed (EOF)
//! ```
//!
//! - **Head** holds bytes until the head is complete (the first empty line,
//!   by the same rules as httparse, which hyper uses); nothing of an
//!   incomplete head reaches hyper. A head that has not ended within
//!   `max_head_bytes` is refused. A complete head is parsed with httparse and
//!   its framing headers checked (names case-insensitive, values as
//!   comma-separated lists, repeated headers combined):
//!   - `Transfer-Encoding` together with `Content-Length` is refused;
//!   - `Content-Length` must be digits only; repeated identical values are
//!     fine (RFC 9110 §8.6), differing ones are refused;
//!   - `Transfer-Encoding` must be exactly one `chunked` (no other coding, not
//!     twice) and is refused in HTTP/1.0;
//!   - obsolete line folding (a header line starting with a space or tab) is
//!     refused.
//! - **Body** passes the `Content-Length` bytes; **Chunked** runs a chunk
//!   parser with hyper's grammar (hex size, optional whitespace and `;ext`,
//!   CRLF, data, CRLF, …, last chunk `0`, trailer lines, empty line) so the
//!   guard and hyper agree on where the body ends; bytes may arrive one at a
//!   time. Body bytes are passed on as they arrive.
//! - **Refusing**: the held head and everything after it are dropped;
//!   instead hyper reads `BAD\r\n\r\n`, a request line it cannot parse, so
//!   hyper itself answers `400 Bad Request` and closes. Then the guard
//!   reports end of stream. Requests before the refused one on the same
//!   keep-alive connection pass untouched. The reason is kept in a
//!   [`RejectionHandle`].
//! - A chunked body that breaks the grammar cannot get a 400 any more (its
//!   head already went to hyper): the guard ends the stream at the bad byte,
//!   hyper sees an incomplete body, and the reason is kept all the same.
//! - A head httparse cannot parse is passed unchanged for hyper to answer
//!   (400, 414 or 431), and the stream ends after it.
//! - **Draining**: after a request that does not keep the connection alive
//!   hyper reads no further request, so later bytes are read and dropped
//!   (the end of stream still reaches hyper).
//! - **Opaque** passes everything and stops tracking.
//!
//! While a connection's first head is incomplete, hyper-util's auto builder
//! is still waiting for bytes to tell HTTP/1 from HTTP/2, and hyper's header
//! read timeout has not started. So once the first bytes show the connection
//! is not HTTP/2, the guard hands hyper a single `\n`: an empty line before
//! the request line, which HTTP/1 parsers skip (RFC 9112 §2.2). The auto
//! builder then picks HTTP/1 and hyper's header read timeout runs, as it
//! would without the guard.
//!
//! Bytes are read into one reusable buffer (8 KiB, growing up to
//! `max_head_bytes` for large heads) and copied once into hyper's; body bytes
//! of a known length are read straight into hyper's buffer. The only other
//! copy moves the start of an incomplete head to the front of the buffer when
//! the head reaches the buffer's end.
//!
//! # Limits
//!
//! - The guard understands HTTP/1 only. A connection that starts with the
//!   HTTP/2 preface is passed through untouched (HTTP/2 frames its own
//!   messages).
//! - After a request that asks for an upgrade (`Upgrade` with
//!   `Connection: upgrade`, HTTP/1.1) or uses `CONNECT`, the guard cannot
//!   tell whether the service switched protocols, so it stops tracking once
//!   that request's body has passed. A client can therefore switch the guard
//!   off for the rest of a connection by sending such a request first. What
//!   remains then is hyper's own checking: it refuses differing or invalid
//!   `Content-Length`s, a last transfer coding other than `chunked`,
//!   `Transfer-Encoding` in HTTP/1.0 and folded lines, but given
//!   `Transfer-Encoding` with `Content-Length` it reads the body as chunked
//!   and closes the connection after the response. Nothing can be smuggled
//!   behind such a request, but that one request does reach the service.
//! - A service should answer `101` only to requests that carry
//!   `Connection: upgrade` (RFC 9110 §7.8 requires clients to send it); a
//!   `101` to any other request leaves the guard reading the new protocol as
//!   HTTP/1, which breaks that connection.
//! - The checks hold while hyper parses heads no more leniently than
//!   httparse with `ignore_invalid_headers_in_requests` and
//!   `allow_multiple_spaces_in_request_line_delimiters` (the guard parses
//!   with both on, a superset of hyper's defaults).
//! - Bytes of an incomplete head are held, so hyper's header read timeout is
//!   what ends a client that never finishes one.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What hyper reads instead of a refused head: a request line without a
/// target or version, which hyper answers with `400 Bad Request` and a close.
const REFUSAL: &[u8] = b"BAD\r\n\r\n";

/// Handed to hyper while the first head is incomplete (see the module docs):
/// an empty line before the request line, which HTTP/1 parsers skip.
const NUDGE: &[u8] = b"\n";

/// Headers parsed on the stack; a head with more is parsed again on the heap.
const STACK_HEADERS: usize = 128;

/// First size of the guard's read buffer; it grows up to `max_head_bytes`.
const INITIAL_BUFFER: usize = 8 * 1024;

/// Why the guard refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    /// Both `Transfer-Encoding` and `Content-Length`.
    #[error("request has both transfer-encoding and content-length")]
    ConflictingLengthAndChunked,
    /// `Content-Length` values that differ (in one header or across several).
    #[error("request has differing content-length values")]
    MultipleContentLengths,
    /// A `Content-Length` value that is not a decimal number.
    #[error("request has a content-length that is not a decimal number")]
    InvalidContentLength,
    /// A `Transfer-Encoding` other than exactly one `chunked`.
    #[error("request transfer-encoding is not exactly chunked")]
    TransferEncodingNotChunked,
    /// A `Transfer-Encoding` in an HTTP/1.0 request.
    #[error("http/1.0 request has a transfer-encoding")]
    TransferEncodingInHttp10,
    /// A header line continued by obsolete line folding.
    #[error("request head uses obsolete line folding")]
    ObsoleteLineFolding,
    /// A head that does not end within the configured size.
    #[error("request head is larger than the limit")]
    HeadTooLarge,
    /// A chunked body that breaks the chunked grammar; its head had already
    /// passed, so the connection was cut rather than answered.
    #[error("chunked request body is malformed")]
    MalformedChunkedBody,
}

impl Rejection {
    /// Every reason, for registering metric labels up front.
    pub const ALL: [Rejection; 8] = [
        Rejection::ConflictingLengthAndChunked,
        Rejection::MultipleContentLengths,
        Rejection::InvalidContentLength,
        Rejection::TransferEncodingNotChunked,
        Rejection::TransferEncodingInHttp10,
        Rejection::ObsoleteLineFolding,
        Rejection::HeadTooLarge,
        Rejection::MalformedChunkedBody,
    ];

    /// A stable name, for metric labels and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Rejection::ConflictingLengthAndChunked => "conflicting_length_and_chunked",
            Rejection::MultipleContentLengths => "multiple_content_lengths",
            Rejection::InvalidContentLength => "invalid_content_length",
            Rejection::TransferEncodingNotChunked => "transfer_encoding_not_chunked",
            Rejection::TransferEncodingInHttp10 => "transfer_encoding_in_http10",
            Rejection::ObsoleteLineFolding => "obsolete_line_folding",
            Rejection::HeadTooLarge => "head_too_large",
            Rejection::MalformedChunkedBody => "malformed_chunked_body",
        }
    }
}

/// Where a connection's [`Rejection`] lands; readable after hyper has
/// finished with (and dropped) the [`FramingGuard`]. Set at most once: the
/// guard ends the connection at its first refusal.
#[derive(Debug, Clone, Default)]
pub struct RejectionHandle(Arc<OnceLock<Rejection>>);

impl RejectionHandle {
    /// The reason the guard refused a request on this connection, if it did.
    #[must_use]
    pub fn get(&self) -> Option<Rejection> {
        self.0.get().copied()
    }

    fn set(&self, rejection: Rejection) {
        if self.0.set(rejection).is_ok() {
            tracing::debug!(reason = rejection.as_str(), "request framing refused");
        }
    }
}

/// Wraps a client connection's byte stream (after TLS, before hyper) and
/// refuses requests with ambiguous framing; see the [module docs](self).
///
/// Reads follow the state machine described there; writes pass straight
/// through.
pub struct FramingGuard<IO> {
    io: IO,
    framer: Framer,
    /// Reusable read buffer; its whole length is usable storage.
    buf: Vec<u8>,
    /// `buf[start..released]` is cleared for the reader,
    /// `buf[released..end]` is read but not yet cleared.
    start: usize,
    released: usize,
    end: usize,
    /// The wrapped stream reported end of stream.
    io_eof: bool,
    /// [`NUDGE`] has been handed out.
    nudged: bool,
    rejection: RejectionHandle,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> FramingGuard<IO> {
    /// Guards `io`; a request head must end within `max_head_bytes` (leading
    /// empty lines included) or it is refused.
    pub fn new(io: IO, max_head_bytes: usize) -> Self {
        FramingGuard {
            io,
            framer: Framer::new(max_head_bytes),
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            released: 0,
            end: 0,
            io_eof: false,
            nudged: false,
            rejection: RejectionHandle::default(),
        }
    }

    /// Why the guard refused this connection's last request, if it did.
    pub fn rejection(&self) -> Option<Rejection> {
        self.rejection.get()
    }

    /// A handle on the same answer that outlives the guard (hyper owns and
    /// drops the guard; read the handle once hyper is done).
    pub fn rejection_handle(&self) -> RejectionHandle {
        self.rejection.clone()
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Runs the framer over the bytes read but not yet cleared.
    fn examine(&mut self) {
        loop {
            let held = self.buf.get(self.released..self.end).unwrap_or_default();
            match self.framer.step(held) {
                Step::Release(n) => {
                    debug_assert!(n > 0 && n <= held.len());
                    self.released = self.released.saturating_add(n).min(self.end);
                }
                Step::Wait => return,
                Step::Stop { release, rejection } => {
                    self.released = self.released.saturating_add(release).min(self.end);
                    self.end = self.released;
                    if let Some(rejection) = rejection {
                        self.rejection.set(rejection);
                    }
                    return;
                }
            }
        }
    }

    /// Reads from the wrapped stream into the buffer's free end.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        debug_assert_eq!(self.start, self.released, "cleared bytes go out first");
        if self.end == self.buf.len() {
            if self.start > 0 {
                // Only the held start of a head moves, and only when the
                // buffer's end is reached.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.released -= self.start;
                self.start = 0;
            } else {
                let limit = self.framer.max_head_bytes.max(INITIAL_BUFFER);
                let grown = self.buf.len().saturating_mul(2).min(limit);
                if grown > self.buf.len() {
                    self.buf.resize(grown, 0);
                }
            }
        }
        let Some(spare) = self.buf.get_mut(self.end..).filter(|s| !s.is_empty()) else {
            // Held bytes fill the buffer: only a head can be held, and one
            // that long has already been refused.
            debug_assert!(false, "read buffer full of held bytes");
            self.framer.state = State::Closed;
            self.rejection.set(Rejection::HeadTooLarge);
            return Poll::Ready(Ok(0));
        };
        let mut read = ReadBuf::new(spare);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.end = self.end.saturating_add(n).min(self.buf.len());
        Poll::Ready(Ok(n))
    }

    /// Reads body or opaque bytes straight into the caller's buffer, at most
    /// `limit` of them (so nothing past the body is read).
    fn read_direct(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
        limit: u64,
    ) -> Poll<io::Result<()>> {
        let before = out.filled().len();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if limit >= out.remaining() {
            ready!(Pin::new(&mut self.io).poll_read(cx, out))?;
        } else {
            let mut sub = ReadBuf::new(out.initialize_unfilled_to(limit));
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut sub))?;
            let n = sub.filled().len();
            out.advance(n);
        }
        let fresh = out.filled().get(before..).unwrap_or_default();
        if fresh.is_empty() {
            self.io_eof = true;
        } else {
            let step = self.framer.step(fresh);
            debug_assert_eq!(step, Step::Release(fresh.len()));
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for FramingGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            // Bytes already cleared go out first.
            if this.start < this.released {
                let n = (this.released - this.start).min(out.remaining());
                let next = this.start + n;
                out.put_slice(this.buf.get(this.start..next).unwrap_or_default());
                this.start = next;
                if this.start == this.end {
                    (this.start, this.released, this.end) = (0, 0, 0);
                }
                return Poll::Ready(Ok(()));
            }
            match &mut this.framer.state {
                State::Refusing { sent } => {
                    let rest = REFUSAL.get(*sent..).unwrap_or_default();
                    let n = rest.len().min(out.remaining());
                    out.put_slice(rest.get(..n).unwrap_or_default());
                    *sent += n;
                    if *sent >= REFUSAL.len() {
                        this.framer.state = State::Closed;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Closed => return Poll::Ready(Ok(())),
                _ => {}
            }
            if this.io_eof {
                return Poll::Ready(Ok(()));
            }
            if this.released < this.end {
                this.examine();
                if this.start < this.released
                    || matches!(this.framer.state, State::Refusing { .. } | State::Closed)
                {
                    continue;
                }
                let held = this.buf.get(this.released..this.end).unwrap_or_default();
                if !this.nudged && this.framer.awaits_first_head(held) {
                    this.nudged = true;
                    out.put_slice(NUDGE);
                    return Poll::Ready(Ok(()));
                }
            }
            if this.start == this.end {
                (this.start, this.released, this.end) = (0, 0, 0);
                if let Some(limit) = this.framer.direct_limit() {
                    return this.read_direct(cx, out, limit);
                }
            }
            let n = ready!(this.fill(cx))?;
            if n == 0 {
                // End of stream: an incomplete head held here never reaches
                // hyper, which sees a clean end.
                this.io_eof = true;
                this.end = this.released;
                continue;
            }
            if matches!(this.framer.state, State::Draining) {
                // Drop what was read, and let other tasks run before reading
                // more: a client may keep sending after its last request.
                (this.start, this.released, this.end) = (0, 0, 0);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FramingGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What the framer decided about the held bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// This many more bytes (at least one) may go to the reader.
    Release(usize),
    /// The held bytes wait for more (or there are none).
    Wait,
    /// `release` more bytes may go to the reader, then nothing more: the
    /// rest of the held bytes and everything after them are dropped.
    Stop {
        release: usize,
        rejection: Option<Rejection>,
    },
}

/// The framing state machine, apart from any I/O.
#[derive(Debug)]
struct Framer {
    state: State,
    max_head_bytes: usize,
    /// No head has been released yet (the HTTP/2 preface may only come here).
    first_head: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a complete request head.
    Head(HeadScan),
    /// Inside a body of known length; `remaining` is never zero.
    Body { remaining: u64, then: Next },
    /// Inside a chunked body.
    Chunked { chunk: Chunk, then: Next },
    /// Passing everything, no longer tracking.
    Opaque,
    /// hyper reads no further request: bytes are dropped until end of stream.
    Draining,
    /// Delivering [`REFUSAL`]; `sent` bytes of it delivered so far.
    Refusing { sent: usize },
    /// Nothing more reaches the reader.
    Closed,
}

/// Where a connection goes after a request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Head,
    Draining,
    Opaque,
}

impl Next {
    fn state(self) -> State {
        match self {
            Next::Head => State::Head(HeadScan::default()),
            Next::Draining => State::Draining,
            Next::Opaque => State::Opaque,
        }
    }
}

/// Progress of the search for the end of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct HeadScan {
    /// Held bytes before this index hold no end of head.
    scanned: usize,
    /// The request line has started (leading empty lines are skipped, as
    /// httparse does).
    started: bool,
}

impl Framer {
    fn new(max_head_bytes: usize) -> Self {
        Framer {
            state: State::Head(HeadScan::default()),
            max_head_bytes,
            first_head: true,
        }
    }

    /// Whether `held` is the start of the connection's first head, not
    /// complete yet, and not the HTTP/2 preface.
    fn awaits_first_head(&self, held: &[u8]) -> bool {
        let n = held.len().min(H2_PREFACE.len());
        self.first_head
            && matches!(self.state, State::Head(_))
            && !held.is_empty()
            && held.get(..n) != H2_PREFACE.get(..n)
    }

    /// How many bytes may be read straight into the reader's buffer: those
    /// of a body (or chunk) of known remaining length, or anything once
    /// opaque.
    fn direct_limit(&self) -> Option<u64> {
        match self.state {
            State::Opaque => Some(u64::MAX),
            State::Body { remaining, .. }
            | State::Chunked {
                chunk: Chunk::Data(remaining),
                ..
            } if remaining > 0 => Some(remaining),
            _ => None,
        }
    }

    /// Decides about `held`, the bytes read but not yet cleared, and moves
    /// the state on past the bytes it releases.
    fn step(&mut self, held: &[u8]) -> Step {
        match self.state {
            State::Head(scan) => self.step_head(held, scan),
            State::Body { remaining, then } => {
                if held.is_empty() {
                    return Step::Wait;
                }
                let take = usize::try_from(remaining).map_or(held.len(), |r| r.min(held.len()));
                let remaining = remaining.saturating_sub(to_u64(take));
                self.state = if remaining == 0 {
                    then.state()
                } else {
                    State::Body { remaining, then }
                };
                Step::Release(take)
            }
            State::Chunked { chunk, then } => self.step_chunked(held, chunk, then),
            State::Opaque => {
                if held.is_empty() {
                    Step::Wait
                } else {
                    Step::Release(held.len())
                }
            }
            State::Draining | State::Refusing { .. } | State::Closed => Step::Stop {
                release: 0,
                rejection: None,
            },
        }
    }

    fn step_head(&mut self, held: &[u8], mut scan: HeadScan) -> Step {
        if held.is_empty() {
            return Step::Wait;
        }
        if self.first_head {
            let n = held.len().min(H2_PREFACE.len());
            if held.get(..n) == H2_PREFACE.get(..n) {
                if n < H2_PREFACE.len() {
                    return Step::Wait;
                }
                self.state = State::Opaque;
                return Step::Release(held.len());
            }
        }
        loop {
            let Some(end) = find_head_end(held, &mut scan) else {
                if held.len() >= self.max_head_bytes {
                    return self.refuse(Rejection::HeadTooLarge);
                }
                self.state = State::Head(scan);
                return Step::Wait;
            };
            if end > self.max_head_bytes {
                return self.refuse(Rejection::HeadTooLarge);
            }
            let head = held.get(..end).unwrap_or(held);
            match judge_head(head) {
                Verdict::Accept { len, facts } => {
                    self.first_head = false;
                    self.state = facts.state_after_head();
                    return Step::Release(len.min(held.len()));
                }
                Verdict::Refuse(rejection) => return self.refuse(rejection),
                Verdict::Unparsable => {
                    self.first_head = false;
                    self.state = State::Closed;
                    return Step::Stop {
                        release: end,
                        rejection: None,
                    };
                }
                // httparse wants more although a line ended empty; keep
                // looking (`scan` has moved past this candidate).
                Verdict::Incomplete => {}
            }
        }
    }

    fn step_chunked(&mut self, held: &[u8], mut chunk: Chunk, then: Next) -> Step {
        if held.is_empty() {
            return Step::Wait;
        }
        let mut used = 0;
        while let Some(rest) = held.get(used..).filter(|r| !r.is_empty()) {
            if let Chunk::Data(remaining) = chunk {
                let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                used += take;
                let remaining = remaining.saturating_sub(to_u64(take));
                chunk = if remaining == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(remaining)
                };
                continue;
            }
            let byte = rest.first().copied().unwrap_or_default();
            match chunk.next(byte) {
                Some(ChunkStep::Next(next)) => {
                    chunk = next;
                    used += 1;
                }
                Some(ChunkStep::Done) => {
                    self.state = then.state();
                    return Step::Release(used + 1);
                }
                None => {
                    self.state = State::Closed;
                    return Step::Stop {
                        release: used,
                        rejection: Some(Rejection::MalformedChunkedBody),
                    };
                }
            }
        }
        self.state = State::Chunked { chunk, then };
        Step::Release(used)
    }

    fn refuse(&mut self, rejection: Rejection) -> Step {
        self.state = State::Refusing { sent: 0 };
        Step::Stop {
            release: 0,
            rejection: Some(rejection),
        }
    }
}

/// Finds the end of a head in `held`: the index just past the first empty
/// line after the request line. `\n\n` and `\n\r\n` both end a head, as they
/// do for httparse.
fn find_head_end(held: &[u8], scan: &mut HeadScan) -> Option<usize> {
    let mut i = scan.scanned;
    while let Some(&byte) = held.get(i) {
        if !scan.started {
            if byte != b'\r' && byte != b'\n' {
                scan.started = true;
            }
            i += 1;
            continue;
        }
        if byte == b'\n' {
            match (held.get(i + 1), held.get(i + 2)) {
                (None, _) | (Some(b'\r'), None) => break,
                (Some(b'\n'), _) => {
                    scan.scanned = i + 1;
                    return Some(i + 2);
                }
                (Some(b'\r'), Some(b'\n')) => {
                    scan.scanned = i + 1;
                    return Some(i + 3);
                }
                _ => {}
            }
        }
        i += 1;
    }
    scan.scanned = i;
    None
}

/// What a complete head means for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadFacts {
    body: BodyFraming,
    /// hyper keeps the connection for another request.
    keep_alive: bool,
    /// The request may switch protocols (upgrade or CONNECT).
    may_switch: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFraming {
    Empty,
    Length(u64),
    Chunked,
}

impl HeadFacts {
    fn state_after_head(self) -> State {
        let then = if self.may_switch {
            Next::Opaque
        } else if self.keep_alive {
            Next::Head
        } else {
            Next::Draining
        };
        match self.body {
            BodyFraming::Empty | BodyFraming::Length(0) => then.state(),
            BodyFraming::Length(remaining) => State::Body { remaining, then },
            BodyFraming::Chunked => State::Chunked {
                chunk: Chunk::SizeStart,
                then,
            },
        }
    }
}

#[derive(Debug)]
enum Verdict {
    Accept {
        len: usize,
        facts: HeadFacts,
    },
    Refuse(Rejection),
    /// httparse rejects the head; hyper will answer it.
    Unparsable,
    Incomplete,
}

/// Parses a complete head and checks its framing.
fn judge_head(head: &[u8]) -> Verdict {
    if has_obsolete_fold(head) {
        return Verdict::Refuse(Rejection::ObsoleteLineFolding);
    }
    let mut headers = [httparse::EMPTY_HEADER; STACK_HEADERS];
    match parse_and_judge(head, &mut headers) {
        Err(httparse::Error::TooManyHeaders) => {
            // Rare: more headers than fit on the stack. A head has at most
            // one header per line.
            let lines = head.iter().filter(|&&b| b == b'\n').count();
            let mut headers = vec![httparse::EMPTY_HEADER; lines];
            parse_and_judge(head, &mut headers).unwrap_or(Verdict::Unparsable)
        }
        Err(_) => Verdict::Unparsable,
        Ok(verdict) => verdict,
    }
}

fn parse_and_judge<'b>(
    head: &'b [u8],
    headers: &mut [httparse::Header<'b>],
) -> Result<Verdict, httparse::Error> {
    let mut request = httparse::Request::new(headers);
    // A superset of what hyper accepts by default, so no head hyper parses
    // goes unchecked even if the server loosens its parser.
    let status = httparse::ParserConfig::default()
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .ignore_invalid_headers_in_requests(true)
        .parse_request(&mut request, head)?;
    Ok(match status {
        httparse::Status::Partial => Verdict::Incomplete,
        httparse::Status::Complete(0) => Verdict::Unparsable,
        httparse::Status::Complete(len) => match framing_of(&request) {
            Ok(facts) => Verdict::Accept { len, facts },
            Err(rejection) => Verdict::Refuse(rejection),
        },
    })
}

/// The framing of a parsed request, or why it is ambiguous. Mirrors hyper's
/// reading of the same headers (`proto/h1/role.rs`), strictly.
fn framing_of(request: &httparse::Request<'_, '_>) -> Result<HeadFacts, Rejection> {
    let http11 = request.version == Some(1);
    let connect = request.method == Some("CONNECT");

    let mut te_seen = false;
    let mut chunked = 0_usize;
    let mut other_coding = false;
    let mut cl_seen = false;
    let mut cl_invalid = false;
    let mut cl_differs = false;
    let mut length: Option<u64> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut upgrade_token = false;
    // hyper: CONNECT wants an upgrade; an `Upgrade` header decides by version.
    let mut wants_upgrade = connect;

    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            for coding in list_elements(header.value).filter(|c| !c.is_empty()) {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked += 1;
                } else {
                    other_coding = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            cl_seen = true;
            for value in list_elements(header.value) {
                match decimal(value) {
                    None => cl_invalid = true,
                    Some(n) if length.is_some_and(|l| l != n) => cl_differs = true,
                    Some(n) => length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in list_elements(header.value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                upgrade_token |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            wants_upgrade = http11;
        }
    }

    if te_seen && cl_seen {
        return Err(Rejection::ConflictingLengthAndChunked);
    }
    if cl_invalid {
        return Err(Rejection::InvalidContentLength);
    }
    if cl_differs {
        return Err(Rejection::MultipleContentLengths);
    }
    if te_seen && !http11 {
        return Err(Rejection::TransferEncodingInHttp10);
    }
    if te_seen && (chunked != 1 || other_coding) {
        return Err(Rejection::TransferEncodingNotChunked);
    }

    let body = if te_seen {
        BodyFraming::Chunked
    } else {
        length.map_or(BodyFraming::Empty, BodyFraming::Length)
    };
    Ok(HeadFacts {
        body,
        keep_alive: !close && (http11 || keep_alive_token),
        may_switch: wants_upgrade && (connect || upgrade_token),
    })
}

/// Whether a head has a header line starting with a space or tab (obsolete
/// line folding, RFC 9112 §5.2).
fn has_obsolete_fold(head: &[u8]) -> bool {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .skip_while(|line| line.is_empty());
    // The request line.
    lines.next();
    lines
        .take_while(|line| !line.is_empty())
        .any(|line| matches!(line.first(), Some(b' ' | b'\t')))
}

/// The elements of a comma-separated header value, trimmed of optional
/// whitespace; empty elements included.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// A `Content-Length` value: one or more ASCII digits, no sign, no overflow.
fn decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0_u64, |n, &b| {
        let digit = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Position in a chunked body, with hyper's grammar (`proto/h1/decode.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits of a chunk size (the value so far).
    Size(u64),
    /// Whitespace after the size.
    SizeWs(u64),
    /// Inside a chunk extension (`;…`).
    Extension(u64),
    /// After the CR ending the size line.
    SizeLf(u64),
    /// Inside chunk data; never zero.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// After the last chunk: at the start of a trailer line or of the final
    /// empty line.
    LineStart,
    /// Inside a trailer line.
    Trailer,
    /// After the CR ending a trailer line.
    TrailerLf,
    /// After the CR of the final empty line.
    EndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkStep {
    Next(Chunk),
    /// The byte was the last of the body.
    Done,
}

impl Chunk {
    /// The state after `byte`, or `None` if the body is malformed. Not for
    /// [`Chunk::Data`], which is consumed in bulk.
    fn next(self, byte: u8) -> Option<ChunkStep> {
        let next = match self {
            Chunk::SizeStart => Chunk::Size(hex_digit(byte)?),
            Chunk::Size(size) => match byte {
                b' ' | b'\t' => Chunk::SizeWs(size),
                b';' => Chunk::Extension(size),
                b'\r' => Chunk::SizeLf(size),
                _ => Chunk::Size(size.checked_mul(16)?.checked_add(hex_digit(byte)?)?),
            },
            Chunk::SizeWs(size) => match byte {
                b' ' | b'\t' => Chunk::SizeWs(size),
                b';' => Chunk::Extension(size),
                b'\r' => Chunk::SizeLf(size),
                _ => return None,
            },
            Chunk::Extension(size) => match byte {
                b'\r' => Chunk::SizeLf(size),
                b'\n' => return None,
                _ => Chunk::Extension(size),
            },
            Chunk::SizeLf(size) => match (byte, size) {
                (b'\n', 0) => Chunk::LineStart,
                (b'\n', size) => Chunk::Data(size),
                _ => return None,
            },
            Chunk::Data(_) => return None,
            Chunk::DataCr => match byte {
                b'\r' => Chunk::DataLf,
                _ => return None,
            },
            Chunk::DataLf => match byte {
                b'\n' => Chunk::SizeStart,
                _ => return None,
            },
            Chunk::LineStart => match byte {
                b'\r' => Chunk::EndLf,
                _ => Chunk::Trailer,
            },
            Chunk::Trailer => match byte {
                b'\r' => Chunk::TrailerLf,
                _ => Chunk::Trailer,
            },
            Chunk::TrailerLf => match byte {
                b'\n' => Chunk::LineStart,
                _ => return None,
            },
            Chunk::EndLf => match byte {
                b'\n' => return Some(ChunkStep::Done),
                _ => return None,
            },
        };
        Some(ChunkStep::Next(next))
    }
}

fn hex_digit(byte: u8) -> Option<u64> {
    char::from(byte).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::mem::MaybeUninit;
    use std::sync::Mutex;
    use std::task::Waker;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response, StatusCode};
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    const MAX_HEAD: usize = 8 * 1024;

    /// A request as the service saw it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        method: String,
        path: String,
        body: Vec<u8>,
    }

    fn seen(method: &str, path: &str, body: &[u8]) -> Seen {
        Seen {
            method: method.to_owned(),
            path: path.to_owned(),
            body: body.to_vec(),
        }
    }

    /// What a client got from a hyper HTTP/1 server behind the guard.
    #[derive(Debug)]
    struct Outcome {
        response: String,
        seen: Vec<Seen>,
        rejection: Option<Rejection>,
    }

    impl Outcome {
        fn statuses(&self, status: &str) -> usize {
            self.response.matches(&format!("HTTP/1.1 {status}")).count()
        }
    }

    /// Serves one connection with hyper's HTTP/1 server behind a guard; the
    /// service records each request and echoes its body's length.
    fn serve(
        server: DuplexStream,
        seen: Arc<Mutex<Vec<Seen>>>,
        half_close: bool,
    ) -> RejectionHandle {
        let guard = FramingGuard::new(server, MAX_HEAD);
        let handle = guard.rejection_handle();
        let service = service_fn(move |request: Request<Incoming>| {
            let seen = Arc::clone(&seen);
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                let reply = format!("got {} bytes", body.len());
                if let Ok(mut seen) = seen.lock() {
                    seen.push(Seen {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_owned(),
                        body: body.to_vec(),
                    });
                }
                Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(reply))))
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .half_close(half_close)
                .serve_connection(TokioIo::new(guard), service)
                .await;
        });
        handle
    }

    /// Sends `input` in pieces of `piece` bytes (yielding between them), then
    /// ends the client's side and reads everything the server answers.
    async fn exchange(input: &[u8], piece: usize) -> Outcome {
        exchange_with(input, piece, true).await
    }

    /// As [`exchange`]; without `half_close` (hyper's default) hyper drops a
    /// connection whose client ends its side early, so the client's side
    /// stays open and the server must close.
    async fn exchange_with(input: &[u8], piece: usize, half_close: bool) -> Outcome {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handle = serve(server, Arc::clone(&seen), half_close);
        let talk = async {
            for part in input.chunks(piece.max(1)) {
                // The server may close early (after a refusal).
                if client.write_all(part).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            if half_close {
                let _ = client.shutdown().await;
            }
            let mut response = Vec::new();
            let _ = client.read_to_end(&mut response).await;
            response
        };
        let response = tokio::time::timeout(Duration::from_secs(10), talk)
            .await
            .expect("exchange finished in time");
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        Outcome {
            response: String::from_utf8_lossy(&response).into_owned(),
            seen,
            rejection: handle.get(),
        }
    }

    async fn assert_refused(input: &str, expected: Rejection) {
        for piece in [usize::MAX, 1, 7] {
            let outcome = exchange(input.as_bytes(), piece).await;
            assert_eq!(
                outcome.rejection,
                Some(expected),
                "{input:?}, pieces of {piece}"
            );
            assert_eq!(outcome.statuses("400 Bad Request"), 1, "{outcome:?}");
            assert!(outcome.seen.is_empty(), "{outcome:?}");
        }
    }

    #[tokio::test]
    async fn hyper_answers_the_refusal_with_400() {
        let (mut client, server) = tokio::io::duplex(4096);
        let service = service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(server), service));
        client.write_all(REFUSAL).await.unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{response}"
        );
    }

    #[tokio::test]
    async fn length_and_chunked_together_are_refused_in_either_order() {
        assert_refused(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Rejection::ConflictingLengthAndChunked,
        )
        .await;
        assert_refused(
            "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n",
            Rejection::ConflictingLengthAndChunked,
        )
        .await;
    }

    #[tokio::test]
    async fn transfer_codings_other_than_one_chunked_are_refused() {
        for coding in [
            "chunked, identity",
            "gzip",
            "gzip, chunked",
            "chunked, chunked",
            "",
        ] {
            let input = format!(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {coding}\r\n\r\n0\r\n\r\n"
            );
            assert_refused(&input, Rejection::TransferEncodingNotChunked).await;
        }
        // Repeated headers are combined.
        assert_refused(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Rejection::TransferEncodingNotChunked,
        )
        .await;
    }

    #[tokio::test]
    async fn differing_or_invalid_lengths_are_refused() {
        assert_refused(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
            Rejection::MultipleContentLengths,
        )
        .await;
        assert_refused(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\nContent-Length: 6\r\n\r\nhello!",
            Rejection::MultipleContentLengths,
        )
        .await;
        for value in [
            "+5",
            "-5",
            "0x5",
            "5 5",
            "",
            "5,",
            "99999999999999999999999",
        ] {
            let input = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\nhello");
            assert_refused(&input, Rejection::InvalidContentLength).await;
        }
    }

    #[tokio::test]
    async fn folded_headers_and_chunked_http10_are_refused() {
        assert_refused(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Note: one\r\n two\r\n\r\n",
            Rejection::ObsoleteLineFolding,
        )
        .await;
        // A fold hiding a Transfer-Encoding from parsers that unfold.
        assert_refused(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nX: y\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Rejection::ObsoleteLineFolding,
        )
        .await;
        assert_refused(
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Rejection::TransferEncodingInHttp10,
        )
        .await;
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused() {
        let big = "a".repeat(MAX_HEAD);
        assert_refused(
            &format!("GET / HTTP/1.1\r\nX-Big: {big}\r\n\r\n"),
            Rejection::HeadTooLarge,
        )
        .await;
        // A head that never ends.
        assert_refused(&format!("GET /{big}{big}"), Rejection::HeadTooLarge).await;
    }

    const KEEP_ALIVE: &str = concat!(
        "POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "5;name=value\r\nhello\r\n6 ; second\r\n world\r\n",
        "0\r\nX-Trailer: yes\r\nX-Other: no\r\n\r\n",
        "\r\n",
        "GET /plain HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "GET /last HTTP/1.1\r\nHost: a\r\n\r\n",
    );

    fn keep_alive_seen() -> Vec<Seen> {
        vec![
            seen("POST", "/length", b"hello world"),
            seen("POST", "/chunked", b"hello world"),
            seen("GET", "/plain", b"abc"),
            seen("GET", "/last", b""),
        ]
    }

    #[tokio::test]
    async fn valid_keep_alive_requests_pass_intact_in_any_pieces() {
        for piece in [usize::MAX, 1, 2, 3, 16, 50] {
            let outcome = exchange(KEEP_ALIVE.as_bytes(), piece).await;
            assert_eq!(outcome.seen, keep_alive_seen(), "pieces of {piece}");
            assert_eq!(outcome.statuses("200 OK"), 4, "{outcome:?}");
            assert_eq!(outcome.rejection, None);
        }
    }

    #[tokio::test]
    async fn large_bodies_pass_intact() {
        let body: Vec<u8> = (0..200_000_u32)
            .map(|i| i.to_le_bytes()[0] ^ 0x5a)
            .collect();
        let mut input = format!(
            "POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        input.extend_from_slice(&body);
        input.extend_from_slice(
            b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for part in body.chunks(70_000) {
            input.extend_from_slice(format!("{:X}\r\n", part.len()).as_bytes());
            input.extend_from_slice(part);
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b"0\r\n\r\n");
        for piece in [usize::MAX, 4096, 1000] {
            let outcome = exchange(&input, piece).await;
            assert_eq!(
                outcome.seen,
                vec![
                    seen("POST", "/length", &body),
                    seen("POST", "/chunked", &body)
                ],
                "pieces of {piece}"
            );
            assert_eq!(outcome.rejection, None);
        }
    }

    #[tokio::test]
    async fn a_smuggling_attempt_after_a_valid_request_is_refused() {
        let input = concat!(
            "POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            "POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "5c\r\nGPOST /admin HTTP/1.1\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n",
        );
        for (piece, half_close) in [
            (usize::MAX, true),
            (1, true),
            (13, false),
            (usize::MAX, false),
        ] {
            let outcome = exchange_with(input.as_bytes(), piece, half_close).await;
            assert_eq!(outcome.seen, vec![seen("POST", "/first", b"hello")]);
            assert_eq!(outcome.statuses("200 OK"), 1, "{outcome:?}");
            assert_eq!(outcome.statuses("400 Bad Request"), 1, "{outcome:?}");
            assert_eq!(
                outcome.rejection,
                Some(Rejection::ConflictingLengthAndChunked)
            );
        }
    }

    #[tokio::test]
    async fn a_request_hidden_in_a_chunked_body_never_arrives() {
        let input = concat!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n",
            "0\r\n\r\n",
            "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        let outcome = exchange(input.as_bytes(), usize::MAX).await;
        assert_eq!(outcome.statuses("400 Bad Request"), 1, "{outcome:?}");
        assert!(outcome.seen.iter().all(|s| s.path != "/admin"));
        assert!(outcome.seen.is_empty());
        assert_eq!(
            outcome.rejection,
            Some(Rejection::ConflictingLengthAndChunked)
        );
    }

    #[tokio::test]
    async fn a_malformed_chunked_body_cuts_the_connection() {
        let input = concat!(
            "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "5\r\nhelloXX0\r\n\r\n",
            "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        let outcome = exchange(input.as_bytes(), usize::MAX).await;
        assert_eq!(outcome.rejection, Some(Rejection::MalformedChunkedBody));
        assert!(outcome.seen.is_empty(), "{outcome:?}");
    }

    #[tokio::test]
    async fn heads_hyper_cannot_parse_are_left_to_hyper() {
        let input = "GET / HTTP/1.1\r\nBad Header\r\n\r\nGET /admin HTTP/1.1\r\n\r\n";
        let outcome = exchange(input.as_bytes(), usize::MAX).await;
        assert_eq!(outcome.statuses("400 Bad Request"), 1, "{outcome:?}");
        assert!(outcome.seen.is_empty());
        assert_eq!(outcome.rejection, None);
    }

    #[tokio::test]
    async fn nothing_is_judged_after_a_closing_request() {
        let input = concat!(
            "GET /one HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let outcome = exchange(input.as_bytes(), usize::MAX).await;
        assert_eq!(outcome.seen, vec![seen("GET", "/one", b"")]);
        assert_eq!(outcome.statuses("200 OK"), 1, "{outcome:?}");
        assert_eq!(outcome.rejection, None);

        let input = "GET /old HTTP/1.0\r\n\r\nGET /x HTTP/1.1\r\nContent-Length: +1\r\n\r\n";
        let outcome = exchange(input.as_bytes(), 1).await;
        assert_eq!(outcome.seen, vec![seen("GET", "/old", b"")]);
        assert_eq!(outcome.rejection, None);
    }

    #[tokio::test]
    async fn http2_with_prior_knowledge_passes_through() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let guard = FramingGuard::new(server, MAX_HEAD);
        let handle = guard.rejection_handle();
        let service = service_fn(|request: Request<Incoming>| async move {
            let body = request.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Response::new(Full::new(body)))
        });
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(guard), service)
                .await;
        });
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = Request::post("http://a/echo")
            .body(Full::new(Bytes::from_static(b"over h2")))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
            .await
            .expect("answered in time")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"over h2");
        assert_eq!(handle.get(), None);
    }

    #[tokio::test]
    async fn a_slow_first_head_meets_hypers_header_read_timeout() {
        let (mut client, server) = tokio::io::duplex(4096);
        let guard = FramingGuard::new(server, MAX_HEAD);
        let service = service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
        let served = tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(200));
            let _ = builder.serve_connection(TokioIo::new(guard), service).await;
        });
        tokio::spawn(async move {
            let _ = client.write_all(b"GET / HTTP/1.1\r\n").await;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if client.write_all(b"X-Slow: a\r\n").await.is_err() {
                    break;
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(3), served)
            .await
            .expect("hyper gave up on the head")
            .unwrap();
    }

    #[tokio::test]
    async fn an_upgraded_connection_passes_through() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let guard = FramingGuard::new(server, MAX_HEAD);
        let handle = guard.rejection_handle();
        let service = service_fn(|mut request: Request<Incoming>| async move {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0_u8; 1024];
                while let Ok(n @ 1..) = io.read(&mut buf).await {
                    if io
                        .write_all(buf.get(..n).unwrap_or_default())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            response
                .headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            response
                .headers_mut()
                .insert("upgrade", "echo".parse().unwrap());
            Ok::<_, Infallible>(response)
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(guard), service)
                .with_upgrades()
                .await;
        });
        let talk = async {
            client
                .write_all(
                    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
                )
                .await
                .unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0_u8; 1];
                client.read_exact(&mut byte).await.unwrap();
                head.extend_from_slice(&byte);
            }
            assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
            // Bytes the guard would refuse if it still read them as HTTP/1.
            let payload: &[u8] =
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\x81\x00\xff";
            client.write_all(payload).await.unwrap();
            let mut echo = vec![0_u8; payload.len()];
            client.read_exact(&mut echo).await.unwrap();
            assert_eq!(echo, payload);
        };
        tokio::time::timeout(Duration::from_secs(10), talk)
            .await
            .expect("upgrade finished in time");
        assert_eq!(handle.get(), None);
    }

    /// An in-memory stream that hands out fixed pieces, then end of stream.
    struct Pieces(VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if let Some(mut piece) = this.0.pop_front() {
                let n = piece.len().min(out.remaining());
                out.put_slice(piece.get(..n).unwrap_or_default());
                if n < piece.len() {
                    this.0.push_front(piece.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Pieces {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// xorshift64*: small, deterministic, good enough to make garbage.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % to_u64(n.max(1))).unwrap_or(0)
        }

        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    /// Everything the guard lets through, read in reads of random sizes
    /// (`rng` absent: one piece, large reads).
    fn read_all(
        input: &[u8],
        max_head: usize,
        rng: Option<&mut Rng>,
    ) -> (Vec<u8>, Option<Rejection>) {
        let mut pieces = VecDeque::new();
        let mut sizes = Vec::new();
        match rng {
            None => {
                pieces.push_back(input.to_vec());
                sizes.push(64 * 1024);
            }
            Some(rng) => {
                let mut rest = input;
                while !rest.is_empty() {
                    let (piece, tail) = rest.split_at((1 + rng.below(40)).min(rest.len()));
                    pieces.push_back(piece.to_vec());
                    rest = tail;
                }
                for _ in 0..64 {
                    let bound = if rng.below(2) == 0 { 8 } else { 300 };
                    sizes.push(1 + rng.below(bound));
                }
            }
        }
        let mut guard = FramingGuard::new(Pieces(pieces), max_head);
        let mut cx = Context::from_waker(Waker::noop());
        let mut output = Vec::new();
        for round in 0..1_000_000 {
            let size = sizes.get(round % sizes.len()).copied().unwrap_or(1);
            let mut storage = vec![MaybeUninit::<u8>::uninit(); size];
            let mut out = ReadBuf::uninit(&mut storage);
            match Pin::new(&mut guard).poll_read(&mut cx, &mut out) {
                Poll::Ready(Ok(())) if out.filled().is_empty() => break,
                Poll::Ready(Ok(())) => output.extend_from_slice(out.filled()),
                Poll::Ready(Err(error)) => panic!("in-memory read failed: {error}"),
                Poll::Pending => {}
            }
        }
        if guard.nudged {
            assert_eq!(output.first(), Some(&b'\n'), "the nudge comes first");
            output.remove(0);
        }
        (output, guard.rejection())
    }

    /// The guard's output is the input up to some point, followed by the
    /// refusal exactly when a head was refused; and it does not depend on
    /// how the input was split.
    fn check(input: &[u8], max_head: usize, rng: &mut Rng) {
        let (whole, rejection) = read_all(input, max_head, None);
        let (split, split_rejection) = read_all(input, max_head, Some(rng));
        assert_eq!(whole, split, "input {input:?}");
        assert_eq!(rejection, split_rejection, "input {input:?}");
        let passed = match rejection {
            Some(Rejection::MalformedChunkedBody) | None => &whole[..],
            Some(_) => whole
                .strip_suffix(REFUSAL)
                .unwrap_or_else(|| panic!("refused without the refusal: {input:?}")),
        };
        assert!(
            input.starts_with(passed),
            "input {input:?} output {whole:?}"
        );
    }

    #[test]
    fn the_http2_preface_and_what_follows_pass_unchanged() {
        let input = [
            H2_PREFACE,
            b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]
        .concat();
        let mut rng = Rng(7);
        check(&input, MAX_HEAD, &mut rng);
        assert_eq!(read_all(&input, MAX_HEAD, Some(&mut rng)), (input, None));
    }

    #[test]
    fn an_upgrade_request_and_what_follows_pass_unchanged() {
        let input = [
            &b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
            b"\x81\x85\x00\x00\x00\x00hello",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]
        .concat();
        let mut rng = Rng(11);
        assert_eq!(
            read_all(&input, MAX_HEAD, Some(&mut rng)),
            (input.clone(), None)
        );
        let connect = b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01garbage\r\n\r\n";
        assert_eq!(read_all(connect, MAX_HEAD, None), (connect.to_vec(), None));
        // An `Upgrade` without `Connection: upgrade` is still judged.
        let sneaky = [
            &b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]
        .concat();
        assert_eq!(
            read_all(&sneaky, MAX_HEAD, None).1,
            Some(Rejection::ConflictingLengthAndChunked)
        );
    }

    #[test]
    fn valid_requests_pass_unchanged_however_they_arrive() {
        let mut rng = Rng(3);
        for _ in 0..50 {
            let (output, rejection) = read_all(KEEP_ALIVE.as_bytes(), MAX_HEAD, Some(&mut rng));
            assert_eq!(String::from_utf8_lossy(&output), KEEP_ALIVE);
            assert_eq!(rejection, None);
        }
    }

    #[test]
    fn rejection_names_are_distinct() {
        let mut names: Vec<_> = Rejection::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Rejection::ALL.len());
    }

    /// Pieces random input is made of: enough HTTP to reach every state.
    const TOKENS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"CONNECT ",
        b"PRI * HTTP/2.0",
        b"/ ",
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"\r\n",
        b"\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b":",
        b",",
        b";",
        b"Host: a",
        b"Content-Length: ",
        b"Transfer-Encoding: ",
        b"chunked",
        b"gzip",
        b"Connection: ",
        b"close",
        b"keep-alive",
        b"upgrade",
        b"Upgrade: x",
        b"0",
        b"5",
        b"a",
        b"ff",
        b"hello",
        b"\r\n\r\n",
        b"0\r\n\r\n",
        b"X: y",
    ];

    fn garbage(rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rng.below(60) {
            if rng.below(4) == 0 {
                out.push(rng.byte());
            } else {
                out.extend_from_slice(
                    TOKENS
                        .get(rng.below(TOKENS.len()))
                        .copied()
                        .unwrap_or_default(),
                );
            }
        }
        out
    }

    fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
        let mut out = valid.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(out.len() + 1);
            match rng.below(5) {
                0 if at < out.len() => out[at] = rng.byte(),
                1 if at < out.len() => {
                    out.remove(at);
                }
                2 => out.insert(at, rng.byte()),
                3 => {
                    let token = TOKENS
                        .get(rng.below(TOKENS.len()))
                        .copied()
                        .unwrap_or_default();
                    out.splice(at..at, token.iter().copied());
                }
                _ => {
                    let end = (at + rng.below(20)).min(out.len());
                    let copy = out.get(at..end).unwrap_or_default().to_vec();
                    out.splice(at..at, copy);
                }
            }
        }
        out
    }

    #[test]
    fn random_input_never_panics_and_never_depends_on_splitting() {
        let corpus: Vec<Vec<u8>> = vec![
            KEEP_ALIVE.as_bytes().to_vec(),
            b"POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n".to_vec(),
            b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n\x81\x00".to_vec(),
            [H2_PREFACE, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"].concat(),
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let input = if round % 2 == 0 {
                garbage(&mut rng)
            } else {
                let valid = corpus
                    .get(rng.below(corpus.len()))
                    .cloned()
                    .unwrap_or_default();
                mutate(&mut rng, &valid)
            };
            // A small head limit too, so refusals for size come up.
            let max_head = if rng.below(4) == 0 {
                1 + rng.below(64)
            } else {
                MAX_HEAD
            };
            check(&input, max_head, &mut rng);
        }
        for _ in 0..200 {
            let input: Vec<u8> = (0..rng.below(2000)).map(|_| rng.byte()).collect();
            check(&input, 1 + rng.below(3000), &mut rng);
        }
    }
}
