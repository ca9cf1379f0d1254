//! Following the systemd journal through `journalctl --follow --output=json`.
//!
//! [`JournalFollower`] runs journalctl as a child process and hands its
//! stdout lines over a bounded channel; [`parse_journal_entry`] turns one
//! line into a [`JournalEntry`]. The two are separate so that the parser is
//! pure and testable on fixtures, and so that the owner decides when to
//! parse (and counts skipped lines by [`SkipReason`]).
//!
//! Resuming: the owner remembers the [`JournalEntry::cursor`] of the last
//! entry it fully processed and passes it to [`JournalFollower::spawn`] after
//! a restart (or after journalctl died), so no entry is lost or repeated.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use rampart_core::Position;

use crate::SkipReason;
use crate::parse::{LineParser, ParseOptions, ParserRules, parse_program_message};
use crate::source::{Lines, Progress, Source, SourceError};

/// Lines buffered between the reader thread and the owner. When full, the
/// reader blocks and so does journalctl (backpressure, nothing dropped).
const CHANNEL_LINES: usize = 4096;
/// Longest stdout line kept; longer ones are cut (and then fail to parse,
/// so they are counted as unparsable). journalctl prints fields over 4 KiB
/// as `null`, so real lines stay far below this.
const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Longest stderr line kept for [`JournalFollower::last_stderr_line`].
const MAX_STDERR_LINE_BYTES: usize = 4096;

/// One journal entry, the fields rampart uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// `__CURSOR`: where to resume after this entry.
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP` (microseconds since the epoch): when journald
    /// received the entry.
    pub time: DateTime<Utc>,
    /// `SYSLOG_IDENTIFIER`, or `_COMM` when absent or empty; empty when both
    /// are missing.
    pub identifier: String,
    /// `_PID` (set by journald, trusted), else `SYSLOG_PID`; `None` when
    /// neither is a number.
    pub pid: Option<u32>,
    /// `_HOSTNAME`, empty when missing.
    pub hostname: String,
    /// `MESSAGE`; non-UTF-8 messages (printed by journalctl as byte arrays)
    /// are decoded lossily.
    pub message: String,
}

/// Parses one line of `journalctl --output=json`.
///
/// Errors: not a JSON object, no `__CURSOR`, or `MESSAGE` missing or `null`
/// (journalctl prints `null` for fields over 4096 bytes) →
/// [`SkipReason::Unparsable`]; `__REALTIME_TIMESTAMP` missing or not a
/// number of microseconds in chrono's range → [`SkipReason::BadTimestamp`].
/// A field printed several times (an array of values) yields its first value.
pub fn parse_journal_entry(line: &[u8]) -> Result<JournalEntry, SkipReason> {
    let raw: RawEntry<'_> = serde_json::from_slice(line).map_err(|_| SkipReason::Unparsable)?;
    let message = raw
        .message
        .and_then(Field::into_string)
        .ok_or(SkipReason::Unparsable)?;
    let cursor = raw
        .cursor
        .and_then(Field::into_string)
        .filter(|c| !c.is_empty())
        .ok_or(SkipReason::Unparsable)?;
    let micros = raw
        .realtime
        .and_then(Field::into_string)
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(SkipReason::BadTimestamp)?;
    let time = DateTime::from_timestamp_micros(micros).ok_or(SkipReason::BadTimestamp)?;
    let identifier = non_empty(raw.syslog_identifier)
        .or_else(|| non_empty(raw.comm))
        .unwrap_or_default();
    let pid = [raw.pid, raw.syslog_pid]
        .into_iter()
        .flatten()
        .find_map(|f| f.into_string()?.trim().parse::<u32>().ok());
    let hostname = raw
        .hostname
        .and_then(Field::into_string)
        .unwrap_or_default();
    Ok(JournalEntry {
        cursor,
        time,
        identifier,
        pid,
        hostname,
        message,
    })
}

fn non_empty(field: Option<Field<'_>>) -> Option<String> {
    field.and_then(Field::into_string).filter(|s| !s.is_empty())
}

/// The fields we read; every other field is skipped without allocating.
#[derive(Deserialize)]
struct RawEntry<'a> {
    #[serde(rename = "__CURSOR", borrow)]
    cursor: Option<Field<'a>>,
    #[serde(rename = "__REALTIME_TIMESTAMP", borrow)]
    realtime: Option<Field<'a>>,
    #[serde(rename = "SYSLOG_IDENTIFIER", borrow)]
    syslog_identifier: Option<Field<'a>>,
    #[serde(rename = "_COMM", borrow)]
    comm: Option<Field<'a>>,
    #[serde(rename = "_PID", borrow)]
    pid: Option<Field<'a>>,
    #[serde(rename = "SYSLOG_PID", borrow)]
    syslog_pid: Option<Field<'a>>,
    #[serde(rename = "_HOSTNAME", borrow)]
    hostname: Option<Field<'a>>,
    #[serde(rename = "MESSAGE", borrow)]
    message: Option<Field<'a>>,
}

/// A field value as journalctl prints it: a string, an array of byte
/// numbers (non-UTF-8 data), an array of values (a field set several
/// times), or `null` (too large).
#[derive(Debug, PartialEq)]
enum Field<'a> {
    Text(Cow<'a, str>),
    Bytes(Vec<u8>),
    Number(u64),
    Null,
}

impl Field<'_> {
    fn into_string(self) -> Option<String> {
        match self {
            Field::Text(s) => Some(s.into_owned()),
            Field::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Field::Number(n) => Some(n.to_string()),
            Field::Null => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(std::marker::PhantomData))
    }
}

struct FieldVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an array of bytes or values, or null")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Owned(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::Number(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(Field::Number)
            .map_err(|_| E::custom("negative number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut first_value = None;
        while let Some(elem) = seq.next_element::<Field<'a>>()? {
            match elem {
                Field::Number(n) => {
                    let b = u8::try_from(n).map_err(|_| de::Error::custom("byte over 255"))?;
                    bytes.push(b);
                }
                value => {
                    first_value.get_or_insert(value);
                }
            }
        }
        Ok(first_value.unwrap_or(Field::Bytes(bytes)))
    }
}

/// A running `journalctl --follow --output=json` and the thread reading it.
///
/// Ownership: the follower owns the child process; dropping it kills and
/// reaps the child. Two detached threads read the child's stdout (lines into
/// a bounded channel, drained by [`try_recv_batch`](Self::try_recv_batch))
/// and stderr (logged as warnings, last line kept); they end by themselves
/// when the pipes close, i.e. when the child is gone.
///
/// journalctl dying (bad cursor, journal unreadable…) is not an error of
/// this type: [`is_alive`](Self::is_alive) turns false, the exit status and
/// [`last_stderr_line`](Self::last_stderr_line) say why, and the owner
/// decides whether to respawn — after [`is_finished`](Self::is_finished), so
/// that it resumes from the last cursor it actually received.
#[derive(Debug)]
pub struct JournalFollower {
    child: Child,
    lines: Receiver<Vec<u8>>,
    /// The reader thread hung up and every line it sent was received.
    drained: bool,
    status: Option<ExitStatus>,
    last_stderr: Arc<Mutex<Option<String>>>,
}

impl JournalFollower {
    /// Spawns `program` (normally `journalctl`, looked up in `PATH` when it
    /// has no slash) with
    /// `--follow --output=json --no-pager` then where to start, then `--`
    /// and each of `matches` as its own argument (no shell involved; the
    /// `--` keeps a match from being read as an option):
    /// - `cursor` given → `--after-cursor=CURSOR --no-tail`: every entry
    ///   after it;
    /// - no cursor, `from_start` → `--no-tail`: the whole journal;
    /// - otherwise `--lines=0`: only entries from now on.
    ///
    /// (`--no-tail` is needed because `--follow` alone limits the first
    /// batch to the last 10 entries.)
    ///
    /// Errors: the program cannot be started, or a reader thread cannot be
    /// created (the child is then killed).
    pub fn spawn(
        program: &Path,
        matches: &[String],
        cursor: Option<&str>,
        from_start: bool,
    ) -> io::Result<Self> {
        let mut child = Command::new(program)
            .args(journalctl_args(matches, cursor, from_start))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        match start_readers(&mut child) {
            Ok((lines, last_stderr)) => Ok(JournalFollower {
                child,
                lines,
                drained: false,
                status: None,
                last_stderr,
            }),
            Err(e) => {
                kill_and_reap(&mut child);
                Err(e)
            }
        }
    }

    /// Takes up to `max` lines (without their `'\n'`) that journalctl wrote,
    /// in order, without blocking. Empty when nothing is waiting right now.
    pub fn try_recv_batch(&mut self, max: usize) -> Vec<Vec<u8>> {
        let mut batch = Vec::new();
        while batch.len() < max {
            match self.lines.try_recv() {
                Ok(line) => batch.push(line),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.drained = true;
                    break;
                }
            }
        }
        batch
    }

    /// Whether the journalctl process is still running. Lines it wrote
    /// before exiting can still be received after this turns false.
    pub fn is_alive(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.status = Some(status);
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, pid = self.child.id(), "cannot check journalctl status");
                false
            }
        }
    }

    /// The exit status once journalctl has exited, `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.is_alive();
        self.status
    }

    /// Whether journalctl's stdout is closed and every line it wrote has
    /// been returned by [`try_recv_batch`](Self::try_recv_batch): the point
    /// where respawning from the last received cursor loses nothing.
    pub fn is_finished(&self) -> bool {
        self.drained
    }

    /// The last line journalctl wrote to stderr (e.g. why it exited).
    pub fn last_stderr_line(&self) -> Option<String> {
        self.last_stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for JournalFollower {
    /// Kills and reaps journalctl. Does not wait for the reader threads.
    fn drop(&mut self) {
        if self.status.is_none() {
            kill_and_reap(&mut self.child);
        }
    }
}

/// The journal as a [`Source`]: journalctl followed, restarted with
/// backoff when it stops (from the last cursor read, so nothing is lost or
/// repeated), its JSON lines handed out as they are. The position saved is
/// the cursor of the last entry read.
pub struct JournalSource {
    name: Arc<str>,
    program: PathBuf,
    matches: Vec<String>,
    from_start: bool,
    cursor: Option<String>,
    follower: Option<JournalFollower>,
    backoff: Duration,
    restart_at: Option<Instant>,
}

impl JournalSource {
    /// Follows the journal for source `name` with `program` (journalctl)
    /// and `matches`, resuming after `cursor` when there is one, else from
    /// the start (`from_start`) or from now.
    pub fn new(
        name: Arc<str>,
        program: PathBuf,
        matches: Vec<String>,
        from_start: bool,
        cursor: Option<String>,
    ) -> Self {
        Self {
            name,
            program,
            matches,
            from_start,
            cursor,
            follower: None,
            backoff: Duration::from_secs(1),
            restart_at: None,
        }
    }

    fn stopped(&mut self, why: String) -> SourceError {
        self.follower = None;
        self.restart_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(60));
        SourceError::Stopped(why)
    }
}

impl Source for JournalSource {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn read(&mut self, lines: &mut Lines, max_bytes: usize) -> Result<Progress, SourceError> {
        if self.follower.is_none() {
            if self.restart_at.is_some_and(|at| Instant::now() < at) {
                return Ok(Progress::CaughtUp);
            }
            match JournalFollower::spawn(
                &self.program,
                &self.matches,
                self.cursor.as_deref(),
                self.from_start,
            ) {
                Ok(f) => self.follower = Some(f),
                Err(source) => {
                    let what = format!("cannot start {}", self.program.display());
                    let _ = self.stopped(String::new());
                    return Err(SourceError::Io { what, source });
                }
            }
        }
        let Some(follower) = self.follower.as_mut() else {
            return Ok(Progress::CaughtUp);
        };
        let mut bytes = 0;
        while bytes < max_bytes {
            let batch = follower.try_recv_batch(1024);
            if batch.is_empty() {
                break;
            }
            for line in batch {
                if let Some(cursor) = entry_cursor(&line) {
                    self.cursor = Some(cursor.to_owned());
                }
                bytes += line.len();
                lines.push(&line);
            }
        }
        if bytes > 0 {
            self.backoff = Duration::from_secs(1);
            return Ok(if bytes >= max_bytes {
                Progress::More
            } else {
                Progress::CaughtUp
            });
        }
        if follower.is_finished() {
            let why = format!(
                "journalctl exited{}; restarting",
                follower
                    .last_stderr_line()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            );
            return Err(self.stopped(why));
        }
        Ok(Progress::CaughtUp)
    }

    fn position(&self) -> Option<Position> {
        self.cursor.clone().map(|cursor| Position {
            source: self.name.to_string(),
            path: "journal".to_owned(),
            dev: 0,
            inode: 0,
            offset: 0,
            fingerprint: None,
            cursor: Some(cursor),
        })
    }
}

/// The `__CURSOR` of a `journalctl --output=json` line, found without
/// parsing the whole entry (cursors hold no quotes or escapes).
pub fn entry_cursor(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"__CURSOR\":\"";
    let start = memchr::memmem::find(line, KEY)? + KEY.len();
    let len = memchr::memchr2(b'"', b'\\', &line[start..])?;
    if line.get(start + len) != Some(&b'"') {
        return None;
    }
    std::str::from_utf8(&line[start..start + len]).ok()
}

/// Journal lines as events: each JSON entry's program and message through
/// the syslog parsers' rules, at the time journald received it.
pub struct JournalParser {
    rules: ParserRules,
    opts: ParseOptions,
}

impl JournalParser {
    /// A parser with `rules` (the syslog parsers are used) and `opts`.
    pub fn new(rules: ParserRules, opts: ParseOptions) -> Self {
        Self { rules, opts }
    }
}

impl LineParser for JournalParser {
    fn parse(&mut self, line: &[u8]) -> Result<rampart_core::Event, SkipReason> {
        let entry = parse_journal_entry(line)?;
        parse_program_message(
            &self.rules,
            &self.opts,
            entry.time,
            &entry.identifier,
            &entry.message,
        )
    }
}

fn journalctl_args(matches: &[String], cursor: Option<&str>, from_start: bool) -> Vec<String> {
    let mut args = vec![
        "--follow".to_owned(),
        "--output=json".to_owned(),
        "--no-pager".to_owned(),
    ];
    match cursor {
        Some(c) => {
            args.push(format!("--after-cursor={c}"));
            args.push("--no-tail".to_owned());
        }
        None if from_start => args.push("--no-tail".to_owned()),
        None => args.push("--lines=0".to_owned()),
    }
    if !matches.is_empty() {
        args.push("--".to_owned());
        args.extend(matches.iter().cloned());
    }
    args
}

type Readers = (Receiver<Vec<u8>>, Arc<Mutex<Option<String>>>);

fn start_readers(child: &mut Child) -> io::Result<Readers> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("journalctl stdout not captured"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| io::Error::other("journalctl stderr not captured"))?;
    let (tx, rx) = mpsc::sync_channel(CHANNEL_LINES);
    thread::Builder::new()
        .name("journalctl-stdout".to_owned())
        .spawn(move || read_stdout(stdout, &tx))?;
    let last_stderr = Arc::new(Mutex::new(None));
    let last = Arc::clone(&last_stderr);
    thread::Builder::new()
        .name("journalctl-stderr".to_owned())
        .spawn(move || read_stderr(stderr, &last))?;
    Ok((rx, last_stderr))
}

/// Sends each stdout line until EOF or until the receiver is gone.
fn read_stdout(stdout: impl Read, tx: &SyncSender<Vec<u8>>) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line = Vec::new();
    while let Some(complete) = read_bounded_line(&mut reader, &mut line, MAX_LINE_BYTES) {
        if !complete && line.is_empty() {
            return;
        }
        if tx.send(std::mem::take(&mut line)).is_err() || !complete {
            return;
        }
    }
}

/// Logs stderr lines and keeps the last one.
fn read_stderr(stderr: impl Read, last: &Mutex<Option<String>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    while let Some(complete) = read_bounded_line(&mut reader, &mut line, MAX_STDERR_LINE_BYTES) {
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        line.clear();
        if !text.is_empty() {
            tracing::warn!(stderr = %text, "journalctl");
            *last.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
        }
        if !complete {
            return;
        }
    }
}

/// Reads one line into `line` (cleared first by the caller), keeping at
/// most `max` bytes and discarding the rest up to the newline. Returns
/// `Some(true)` for a complete line, `Some(false)` for EOF (with whatever
/// partial line there was), `None` on a read error.
fn read_bounded_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> Option<bool> {
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read journalctl output");
                return None;
            }
        };
        if buf.is_empty() {
            return Some(false);
        }
        let (part, used, complete) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        reader.consume(used);
        if complete {
            return Some(true);
        }
    }
}

fn kill_and_reap(child: &mut Child) {
    // Fails only when the child already exited; wait() reaps it either way.
    let _ = child.kill();
    if let Err(e) = child.wait() {
        tracing::warn!(error = %e, pid = child.id(), "cannot reap journalctl");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_found_without_parsing_the_entry() {
        let line = br#"{"__CURSOR":"s=1a;i=2f;b=9c;m=7;t=5f;x=aa","__REALTIME_TIMESTAMP":"1","MESSAGE":"x"}"#;
        assert_eq!(entry_cursor(line), Some("s=1a;i=2f;b=9c;m=7;t=5f;x=aa"));
        assert_eq!(entry_cursor(br#"{"MESSAGE":"__CURSOR"}"#), None);
        assert_eq!(entry_cursor(br#"{"__CURSOR":"unterminated"#), None);
        assert_eq!(entry_cursor(b"garbage"), None);
    }

    #[test]
    fn args_start_at_end_by_default() {
        assert_eq!(
            journalctl_args(&[], None, false),
            ["--follow", "--output=json", "--no-pager", "--lines=0"]
        );
    }

    #[test]
    fn args_from_start_read_everything() {
        assert_eq!(
            journalctl_args(&["SYSLOG_IDENTIFIER=sshd".to_owned()], None, true),
            [
                "--follow",
                "--output=json",
                "--no-pager",
                "--no-tail",
                "--",
                "SYSLOG_IDENTIFIER=sshd"
            ]
        );
    }

    #[test]
    fn args_cursor_wins_over_from_start() {
        let args = journalctl_args(&[], Some("s=1;i=2"), true);
        assert_eq!(args[3..], ["--after-cursor=s=1;i=2", "--no-tail"]);
    }

    #[test]
    fn bounded_line_discards_past_max() {
        let mut r = BufReader::with_capacity(4, &b"abcdefghij\nxy\nlast"[..]);
        let mut line = Vec::new();
        assert_eq!(read_bounded_line(&mut r, &mut line, 5), Some(true));
        assert_eq!(line, b"abcde");
        line.clear();
        assert_eq!(read_bounded_line(&mut r, &mut line, 5), Some(true));
        assert_eq!(line, b"xy");
        line.clear();
        assert_eq!(read_bounded_line(&mut r, &mut line, 5), Some(false));
        assert_eq!(line, b"last");
    }

    #[test]
    fn field_forms() {
        let f: Field<'_> = serde_json::from_str("[104,105]").unwrap();
        assert_eq!(f, Field::Bytes(b"hi".to_vec()));
        let f: Field<'_> = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert_eq!(f.into_string().as_deref(), Some("a"));
        let f: Field<'_> = serde_json::from_str("[[255],[104]]").unwrap();
        assert_eq!(f, Field::Bytes(vec![255]));
        assert!(serde_json::from_str::<Field<'_>>("[256]").is_err());
        assert!(serde_json::from_str::<Field<'_>>("{}").is_err());
    }
}
