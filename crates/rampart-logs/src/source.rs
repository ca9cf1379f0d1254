//! Sources of lines, and the one loop that turns their lines into events.
//!
//! A [`Source`] hands out whole lines ([`Lines`]); a
//! [`LineParser`](crate::parse::LineParser) turns each into an event or a
//! counted [`SkipReason`] ([`parse_lines`]). Two drivers run sources:
//!
//! - [`follow`] (streaming mode): a running agent's file or journal, on a
//!   thread of its own, forever — batches go into a channel, the source is
//!   polled again at its interval once caught up;
//! - [`read_once`] (read-once mode): `rampart replay` over a file, stdin or
//!   a compressed log, as fast as possible — chunks are parsed on several
//!   threads and handed back in file order.
//!
//! ```text
//!  Source::read ─► Lines ─► parse_lines (LineParser) ─► events + LineCounts
//!                                   │
//!         follow: Batch { events, counts, position } ─► channel ─► detection
//!      read_once: chunk i on parser thread i mod n ─► results in order
//! ```

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use rampart_core::{Event, Position};

use crate::SkipReason;
use crate::parse::LineParser;

/// Whole lines read from a source: one buffer, each line ended by `'\n'`.
/// A line too long to keep holds its place as an empty line marked too
/// long (so that line numbers stay exact).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lines {
    data: Vec<u8>,
    count: u64,
    /// Indexes (0-based, in this buffer) of the lines too long to keep.
    too_long: Vec<u64>,
    /// Number (1-based) of the first line in the source, for messages.
    first_line: u64,
}

impl Lines {
    /// An empty buffer with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// Appends one line (without its `'\n'`).
    pub fn push(&mut self, line: &[u8]) {
        self.data.extend_from_slice(line);
        self.data.push(b'\n');
        self.count += 1;
    }

    /// Appends a run of whole lines, each ended by `'\n'` (the last one
    /// may lack it).
    pub fn push_block(&mut self, block: &[u8]) {
        if block.is_empty() {
            return;
        }
        self.count += memchr::memchr_iter(b'\n', block).count() as u64;
        self.data.extend_from_slice(block);
        if !block.ends_with(b"\n") {
            self.data.push(b'\n');
            self.count += 1;
        }
    }

    /// Appends the place of one line too long to keep.
    pub fn push_too_long(&mut self) {
        self.too_long.push(self.count);
        self.data.push(b'\n');
        self.count += 1;
    }

    /// Lines read (too long ones included).
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no line was read.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Numbers the lines from `first` (1-based).
    pub fn starting_at(mut self, first: u64) -> Self {
        self.first_line = first;
        self
    }

    /// The lines, without their `'\n'`, with their numbers; `None` for a
    /// line too long to keep.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Option<&[u8]>)> {
        let data = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
        let first = self.first_line;
        let mut marks = self.too_long.iter().copied().peekable();
        ends.take(usize::try_from(self.count).unwrap_or(usize::MAX))
            .enumerate()
            .map(move |(i, end)| {
                let line = &data[start..end];
                start = end + 1;
                let index = i as u64;
                let too_long = marks.next_if_eq(&index).is_some();
                (first + index, (!too_long).then_some(line))
            })
    }

    /// Empties the buffer, keeping its memory.
    pub fn clear(&mut self) {
        self.data.clear();
        self.count = 0;
        self.too_long.clear();
    }
}

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More is waiting: read again at once.
    More,
    /// Everything written so far was read: read again after the poll interval.
    CaughtUp,
    /// Nothing more will come (read-once sources at their end).
    Finished,
}

/// Why a read failed. The source stays usable: the next read tries again
/// from where the last good one ended.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading failed.
    #[error("{what}: {source}")]
    Io {
        /// The file, program or stream.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The producing program (journalctl) stopped; it is restarted.
    #[error("{0}")]
    Stopped(String),
}

/// A source of log lines.
///
/// Contract:
/// - [`read`](Source::read) appends whole lines to `lines`, in order, about
///   `max_bytes` at most, and never blocks waiting for more to be written;
///   a line is returned once (except after a restart from an older saved
///   position) and none is skipped, except lines too long to keep, which
///   are counted.
/// - [`position`](Source::position) is where the source stands after every
///   line returned so far. Whoever consumes the lines saves it only once
///   their effects are stored: a restart from it then neither loses nor
///   repeats a line's effect.
/// - An error is reported, not fatal: the next read tries again.
/// - A source owns its resources (file descriptors, a journalctl child) and
///   frees them when dropped; dropping it is how it is cancelled.
pub trait Source: Send {
    /// The configured name of the source (in events, metrics and saved positions).
    fn name(&self) -> &Arc<str>;

    /// Reads what is available now (see the trait's contract).
    fn read(&mut self, lines: &mut Lines, max_bytes: usize) -> Result<Progress, SourceError>;

    /// Where the source stands after the lines read so far.
    fn position(&self) -> Option<Position>;
}

/// Lines of one source by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCounts {
    /// Lines read.
    pub lines: u64,
    /// Lines that became events.
    pub events: u64,
    /// Lines skipped, by [`SkipReason`] (indexed like `SkipReason::ALL`).
    pub skipped: [u64; SkipReason::ALL.len()],
    /// Events dropped because their time jumped (see [`crate::clock::ClockGuard`]).
    pub clock_jumps: u64,
}

impl LineCounts {
    /// Counts one skipped line.
    pub fn skip(&mut self, reason: SkipReason) {
        self.skip_n(reason, 1);
    }

    /// Counts `n` lines skipped for the same reason.
    pub fn skip_n(&mut self, reason: SkipReason, n: u64) {
        if let Some(i) = SkipReason::ALL.iter().position(|r| *r == reason) {
            self.skipped[i] += n;
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &LineCounts) {
        self.lines += other.lines;
        self.events += other.events;
        self.clock_jumps += other.clock_jumps;
        for (a, b) in self.skipped.iter_mut().zip(other.skipped) {
            *a += b;
        }
    }

    /// Every skipped line, clock jumps included.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum::<u64>() + self.clock_jumps
    }

    /// Non-zero skip counts by reason name, clock jumps included.
    pub fn skipped_by_reason(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<_> = SkipReason::ALL
            .iter()
            .zip(self.skipped)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.as_str(), n))
            .collect();
        if self.clock_jumps > 0 {
            out.push(("clock_jump", self.clock_jumps));
        }
        out
    }
}

/// The line → event loop: every line of `lines` through `parser`, counted;
/// each event handed to `event` with its line number, each skipped line to
/// `skipped`.
pub fn parse_lines(
    parser: &mut dyn LineParser,
    lines: &Lines,
    counts: &mut LineCounts,
    mut event: impl FnMut(u64, Event),
    mut skipped: impl FnMut(u64, SkipReason),
) {
    for (number, line) in lines.iter() {
        counts.lines += 1;
        let Some(line) = line else {
            counts.skip(SkipReason::TooLong);
            skipped(number, SkipReason::TooLong);
            continue;
        };
        match parser.parse(line) {
            Ok(e) => {
                counts.events += 1;
                event(number, e);
            }
            Err(reason) => {
                counts.skip(reason);
                skipped(number, reason);
            }
        }
    }
}

/// Lines of one source turned into events, and where the source stands
/// after them.
#[derive(Debug)]
pub struct Batch {
    /// The source's name.
    pub source: Arc<str>,
    /// The events, in line order.
    pub events: Vec<Event>,
    /// The lines by outcome.
    pub counts: LineCounts,
    /// Where the source stands after these lines (save once handled).
    pub position: Option<Position>,
}

/// Bytes read from a followed source before its lines are handed on.
pub const FOLLOW_BATCH_BYTES: usize = 1 << 20;

/// Runs `source` in streaming mode until `stop` is set or the receiver of
/// `tx` is gone: reads, parses with `parser`, sends one [`Batch`] per read
/// that found lines, and waits `poll` (waking early on `stop`) once caught
/// up. Read errors go to `error` (once per distinct message in a row) and
/// the source is polled again after `poll`. Blocks: run it on a thread of
/// its own.
///
/// The channel is owned by the caller: this holds one sender and blocks
/// while the channel is full (back pressure, no line dropped). On `stop`
/// the batch in hand is still sent, then the loop ends.
pub fn follow(
    mut source: Box<dyn Source>,
    mut parser: Box<dyn LineParser>,
    poll: Duration,
    tx: tokio::sync::mpsc::Sender<Batch>,
    stop: &AtomicBool,
    mut error: impl FnMut(&SourceError),
) {
    let mut lines = Lines::with_capacity(FOLLOW_BATCH_BYTES);
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        lines.clear();
        let progress = match source.read(&mut lines, FOLLOW_BATCH_BYTES) {
            Ok(progress) => {
                last_error = None;
                progress
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(&text) {
                    error(&e);
                }
                last_error = Some(text);
                Progress::CaughtUp
            }
        };
        if !lines.is_empty() {
            let mut counts = LineCounts::default();
            let mut events = Vec::with_capacity(usize::try_from(lines.len()).unwrap_or(0));
            parse_lines(
                parser.as_mut(),
                &lines,
                &mut counts,
                |_, e| events.push(e),
                |_, _| {},
            );
            let batch = Batch {
                source: Arc::clone(source.name()),
                events,
                counts,
                position: source.position(),
            };
            if tx.blocking_send(batch).is_err() {
                return;
            }
        }
        match progress {
            Progress::More => {}
            Progress::CaughtUp => nap(poll, stop),
            Progress::Finished => return,
        }
    }
}

/// Sleeps up to `total`, waking early when `stop` is set.
pub fn nap(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let d = left.min(step);
        std::thread::sleep(d);
        left -= d;
    }
}

/// One chunk parsed on a parser thread of [`read_once`].
#[derive(Debug)]
pub struct Parsed<T> {
    /// Line number, event, and what the per-event hook made of it.
    pub events: Vec<(u64, Event, T)>,
    /// Skipped lines by number, when asked for.
    pub skipped: Vec<(u64, SkipReason)>,
    /// The chunk's lines by outcome.
    pub counts: LineCounts,
    /// Bytes of the chunk (for progress).
    pub bytes: u64,
}

/// Bytes per chunk handed to a parser thread in [`read_once`].
pub const READ_ONCE_CHUNK: usize = 256 << 10;

/// Runs `source` in read-once mode: reads it to its end in chunks of whole
/// lines, parses chunk i on parser thread i mod n (one thread per parser
/// in `parsers`), runs a hook on each event there (work detection can do
/// in parallel; `make_hook` builds one hook per parser thread, on that
/// thread, so hooks need not be shared), and hands the parsed chunks to `sink` in source order.
/// At most a few chunks are in flight per thread (bounded memory). `sink`
/// may stop early with `ControlFlow::Break`. With `keep_skipped`, skipped
/// lines are reported by number.
///
/// The first read error ends the run and is returned, after `sink` has
/// seen every chunk read before it.
pub fn read_once<T: Send, H: FnMut(&Event) -> T>(
    mut source: Box<dyn Source>,
    parsers: Vec<Box<dyn LineParser>>,
    make_hook: &(dyn Fn() -> H + Sync),
    keep_skipped: bool,
    mut sink: impl FnMut(&mut Parsed<T>) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    std::thread::scope(|scope| {
        let mut to_parsers: Vec<SyncSender<Lines>> = Vec::new();
        let mut from_parsers: Vec<Receiver<Parsed<T>>> = Vec::new();
        // Results go back to the thread that allocated them to be dropped
        // there: freeing on another thread makes the system allocator's
        // arena lock the bottleneck (measured: half the time in futex waits).
        let mut recycle: Vec<SyncSender<Parsed<T>>> = Vec::new();
        for mut parser in parsers {
            let (tx, rx) = sync_channel::<Lines>(2);
            let (rtx, rrx) = sync_channel::<Parsed<T>>(2);
            let (done_tx, done_rx) = sync_channel::<Parsed<T>>(4);
            to_parsers.push(tx);
            from_parsers.push(rrx);
            recycle.push(done_tx);
            scope.spawn(move || {
                let mut hook = make_hook();
                let mut spare: Vec<(u64, Event, T)> = Vec::new();
                for chunk in rx {
                    while let Ok(mut done) = done_rx.try_recv() {
                        done.events.clear();
                        if done.events.capacity() > spare.capacity() {
                            spare = done.events;
                        }
                    }
                    let mut parsed = Parsed {
                        events: std::mem::take(&mut spare),
                        skipped: Vec::new(),
                        counts: LineCounts::default(),
                        bytes: chunk.bytes() as u64,
                    };
                    let Parsed {
                        events,
                        skipped,
                        counts,
                        ..
                    } = &mut parsed;
                    parse_lines(
                        parser.as_mut(),
                        &chunk,
                        counts,
                        |n, e| {
                            let t = hook(&e);
                            events.push((n, e, t));
                        },
                        |n, r| {
                            if keep_skipped {
                                skipped.push((n, r));
                            }
                        },
                    );
                    if rtx.send(parsed).is_err() {
                        break;
                    }
                }
            });
        }
        let reader = scope.spawn(move || -> Result<(), SourceError> {
            let mut next = 0usize;
            let mut first_line = 1u64;
            loop {
                let mut chunk = Lines::with_capacity(READ_ONCE_CHUNK + 4096);
                let progress = source.read(&mut chunk, READ_ONCE_CHUNK)?;
                if !chunk.is_empty() {
                    let read = chunk.len();
                    let chunk = chunk.starting_at(first_line);
                    first_line += read;
                    if to_parsers[next % to_parsers.len()].send(chunk).is_err() {
                        return Ok(());
                    }
                    next += 1;
                }
                if progress != Progress::More {
                    return Ok(());
                }
            }
        });
        'outer: loop {
            for (rx, back) in from_parsers.iter().zip(&recycle) {
                let Ok(mut parsed) = rx.recv() else {
                    break 'outer;
                };
                if sink(&mut parsed).is_break() {
                    break 'outer;
                }
                // Full or gone: then it is dropped here, which is only slower.
                let _ = back.try_send(parsed);
            }
        }
        drop(from_parsers);
        reader
            .join()
            .unwrap_or_else(|_| Err(SourceError::Stopped("the reader thread panicked".into())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_order_numbers_and_count_too_long_ones() {
        let mut lines = Lines::default();
        lines.push(b"one");
        lines.push_block(b"two\nthree\n");
        lines.push_too_long();
        lines.push_block(b"four");
        let lines = lines.starting_at(10);
        let got: Vec<(u64, Option<&[u8]>)> = lines.iter().collect();
        assert_eq!(
            got,
            vec![
                (10, Some(&b"one"[..])),
                (11, Some(&b"two"[..])),
                (12, Some(&b"three"[..])),
                (13, None),
                (14, Some(&b"four"[..]))
            ]
        );
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn empty_lines_are_lines() {
        let mut lines = Lines::default();
        lines.push_block(b"\n\nx\n");
        let got: Vec<Option<&[u8]>> = lines.iter().map(|(_, l)| l).collect();
        assert_eq!(got, vec![Some(&b""[..]), Some(&b""[..]), Some(&b"x"[..])]);
    }

    /// Parses `n` as the line's number (a line that is not a number is
    /// skipped); the event's address carries it to the test.
    struct Numbers;

    impl LineParser for Numbers {
        fn parse(&mut self, line: &[u8]) -> Result<Event, SkipReason> {
            let n: u32 = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.parse().ok())
                .ok_or(SkipReason::NoMatch)?;
            Ok(Event::new(
                chrono::DateTime::UNIX_EPOCH,
                Arc::from("t"),
                rampart_core::EventKind::AuthFailure,
                Some(std::net::IpAddr::from(n.to_be_bytes())),
            ))
        }
    }

    /// A source handing out `total` numbered lines, `step` per read, with
    /// a word every seventh line; it fails after `fail_after` reads.
    struct Counting {
        name: Arc<str>,
        next: u32,
        total: u32,
        step: u32,
        reads: u32,
        fail_after: Option<u32>,
    }

    impl Counting {
        fn new(total: u32, step: u32) -> Self {
            Self {
                name: Arc::from("t"),
                next: 0,
                total,
                step,
                reads: 0,
                fail_after: None,
            }
        }
    }

    impl Source for Counting {
        fn name(&self) -> &Arc<str> {
            &self.name
        }

        fn read(&mut self, lines: &mut Lines, _max: usize) -> Result<Progress, SourceError> {
            self.reads += 1;
            if self.fail_after.is_some_and(|f| self.reads > f) {
                return Err(SourceError::Stopped("gone".into()));
            }
            let end = (self.next + self.step).min(self.total);
            for n in self.next..end {
                if n % 7 == 6 {
                    lines.push(b"word");
                } else {
                    lines.push(n.to_string().as_bytes());
                }
            }
            self.next = end;
            Ok(if end == self.total {
                Progress::Finished
            } else {
                Progress::More
            })
        }

        fn position(&self) -> Option<Position> {
            None
        }
    }

    fn number(e: &Event) -> u32 {
        match e.addr {
            Some(std::net::IpAddr::V4(a)) => u32::from_be_bytes(a.octets()),
            _ => panic!("no number"),
        }
    }

    #[test]
    fn read_once_hands_chunks_on_in_source_order_across_threads() {
        let parsers: Vec<Box<dyn LineParser>> = (0..3).map(|_| Box::new(Numbers) as _).collect();
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        let make_hook = || {
            threads.lock().unwrap().insert(std::thread::current().id());
            |e: &Event| number(e) * 2
        };
        let mut seen = Vec::new();
        let mut counts = LineCounts::default();
        read_once(
            Box::new(Counting::new(10_000, 97)),
            parsers,
            &make_hook,
            true,
            |parsed: &mut Parsed<u32>| {
                counts.add(&parsed.counts);
                for (line, event, doubled) in &parsed.events {
                    assert_eq!(*doubled, number(event) * 2, "the hook ran on the event");
                    assert_eq!(u64::from(number(event)) + 1, *line, "numbered from 1");
                    seen.push(number(event));
                }
                assert!(
                    parsed
                        .skipped
                        .iter()
                        .all(|(line, r)| line % 7 == 0 && *r == SkipReason::NoMatch)
                );
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        let expected: Vec<u32> = (0..10_000).filter(|n| n % 7 != 6).collect();
        assert_eq!(seen, expected);
        assert_eq!(counts.lines, 10_000);
        assert_eq!(counts.events, expected.len() as u64);
        assert_eq!(counts.skipped_total(), 10_000 - expected.len() as u64);
        assert_eq!(
            threads.into_inner().unwrap().len(),
            3,
            "one hook per parser thread"
        );
    }

    #[test]
    fn read_once_stops_when_the_sink_breaks_and_reports_a_read_error() {
        let parsers: Vec<Box<dyn LineParser>> = (0..2).map(|_| Box::new(Numbers) as _).collect();
        let mut chunks = 0;
        read_once(
            Box::new(Counting::new(u32::MAX, 10)),
            parsers,
            &|| |_: &Event| (),
            false,
            |_: &mut Parsed<()>| {
                chunks += 1;
                if chunks == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert_eq!(chunks, 5);

        let mut failing = Counting::new(u32::MAX, 10);
        failing.fail_after = Some(4);
        let mut lines = 0;
        let parsers: Vec<Box<dyn LineParser>> = (0..2).map(|_| Box::new(Numbers) as _).collect();
        let result = read_once(
            Box::new(failing),
            parsers,
            &|| |_: &Event| (),
            false,
            |p: &mut Parsed<()>| {
                lines += p.counts.lines;
                ControlFlow::Continue(())
            },
        );
        assert!(matches!(result, Err(SourceError::Stopped(_))), "{result:?}");
        assert_eq!(lines, 40, "every chunk read before the error was handed on");
    }

    #[test]
    fn follow_sends_every_line_in_order_then_stops_on_request() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = stop.clone();
        let thread = std::thread::spawn(move || {
            follow(
                Box::new(Counting::new(5_000, 100)),
                Box::new(Numbers),
                Duration::from_millis(10),
                tx,
                &stopper,
                |_| {},
            )
        });
        let mut seen = Vec::new();
        let mut lines = 0;
        while lines < 5_000 {
            let batch = rx.blocking_recv().expect("a batch");
            assert_eq!(&*batch.source, "t");
            lines += batch.counts.lines;
            seen.extend(batch.events.iter().map(number));
        }
        let expected: Vec<u32> = (0..5_000).filter(|n| n % 7 != 6).collect();
        assert_eq!(seen, expected);
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        assert!(
            rx.blocking_recv().is_none(),
            "the sender is dropped on stop"
        );
    }
}
