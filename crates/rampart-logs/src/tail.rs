//! Rotation-safe, resumable following of one file path.
//!
//! A [`Tailer`] is synchronous and poll-driven: the owner calls
//! [`Tailer::poll`] on its own schedule (every `poll_interval`) and the
//! tailer never blocks waiting for data, never spawns threads and never
//! panics on an I/O condition. It follows the *path*, not one file: when the
//! path starts naming another file (logrotate `create`), it finishes the old
//! file first and then reads the new one from its start.
//!
//! Positions are byte offsets just after the last delivered line, so a
//! restarted tailer given [`Tailer::position`] continues exactly where the
//! previous one stopped: no line lost, none repeated.
//!
//! ```text
//!   poll ─► stat path ─► same file? ── yes ─► truncated? ─► read to EOF ─► done
//!                          │ no (rotated)
//!                          └─► read old file to EOF ─► flush its partial line
//!                              ─► open new file at 0 ─► read to EOF ─► done
//! ```

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_core::Position;
use serde::{Deserialize, Serialize};

use crate::source::{Lines, Progress, Source, SourceError};

/// Bytes read per `pread`.
const CHUNK_BYTES: usize = 64 * 1024;
/// How many leading bytes of a file the fingerprint covers.
const FINGERPRINT_BYTES: usize = 256;
/// Rotations followed within one poll before yielding to the caller.
const MAX_SWITCHES_PER_POLL: usize = 8;

/// Where a tailer stands in a file, for persisting across restarts.
///
/// The owner of the [`Tailer`] stores it (e.g. after each batch it has fully
/// processed) and passes it back to [`Tailer::new`]. The tailer only trusts
/// it when the file it names still exists with the same content prefix; see
/// [`Tailer::new`] for what happens otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilePosition {
    /// Device number of the file (`st_dev`).
    pub dev: u64,
    /// Inode number of the file (`st_ino`).
    pub inode: u64,
    /// Byte offset just after the last delivered line.
    pub offset: u64,
    /// FNV-1a 64 hash of the file's first `min(256, offset)` bytes, `None`
    /// when `offset` is 0. Detects an inode number reused by another file.
    /// A `None` with a non-zero offset (a hand-made position) is not checked.
    pub fingerprint: Option<u64>,
}

/// How a [`Tailer`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailOptions {
    /// With no saved position, read a file that already exists from its
    /// start instead of its end. A file that does not exist at the first
    /// poll is always read from its start once it appears.
    pub from_start: bool,
    /// Lines longer than this (without the `'\n'`) are delivered once with
    /// [`TailLine::too_long`] set; at most this many bytes are ever buffered
    /// for one line.
    pub max_line_bytes: usize,
}

impl Default for TailOptions {
    /// From the end, 64 KiB lines (the config defaults).
    fn default() -> Self {
        TailOptions {
            from_start: false,
            max_line_bytes: 64 * 1024,
        }
    }
}

/// One delivered line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailLine {
    /// The line without its `'\n'` (a trailing `'\r'` is kept). For a
    /// `too_long` line, only its first `max_line_bytes` bytes.
    pub bytes: Vec<u8>,
    /// The line was longer than `max_line_bytes`; `bytes` is truncated and
    /// the line should be counted as skipped, not parsed.
    pub too_long: bool,
}

/// Follows one file path: rotation-safe, resumable, poll-driven.
///
/// Owns at most one open file descriptor (the file being read) and a read
/// buffer; holds no other resources. Dropping it closes the file.
#[derive(Debug)]
pub struct Tailer {
    path: PathBuf,
    opts: TailOptions,
    /// Saved position not yet applied (cleared at the first successful open).
    saved: Option<FilePosition>,
    /// The path was missing before the first open: its file is new, read it
    /// from the start.
    seen_missing: bool,
    file: Option<OpenFile>,
    lines: LineSplitter,
    buf: Vec<u8>,
}

/// The file being read.
#[derive(Debug)]
struct OpenFile {
    file: File,
    dev: u64,
    inode: u64,
    /// Offset of the first byte not read yet.
    read_pos: u64,
    /// Offset just after the last delivered line (start of the pending bytes).
    line_start: u64,
    /// `file[0..head.len()]`, at least `min(256, read_pos)` bytes once filled.
    head: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    inode: u64,
}

impl Tailer {
    /// A tailer for `path`. Does no I/O: the file is looked at by the first
    /// [`poll`](Self::poll).
    ///
    /// `saved` is a position from an earlier tailer of the same path. At the
    /// first poll:
    /// - the file at `path` is the saved one (dev, inode), is at least
    ///   `offset` long and its fingerprint matches → continue at `offset`;
    /// - same inode but shorter than `offset` or another fingerprint
    ///   (truncated, or the inode number was reused) → read it from 0;
    /// - the path names another file (rotated while we were down) → a file
    ///   in the same directory whose name starts with the path's file name
    ///   (`auth.log.1`) and that is the saved (dev, inode) is read from
    ///   `offset` to its end first, then the current file from 0. If no such
    ///   file exists, the current file is read from 0.
    pub fn new(path: PathBuf, opts: TailOptions, saved: Option<FilePosition>) -> Self {
        Tailer {
            path,
            opts,
            saved,
            seen_missing: false,
            file: None,
            lines: LineSplitter::new(opts.max_line_bytes),
            buf: Vec::new(),
        }
    }

    /// Reads every complete new line since the last call, in file order,
    /// appending to `out`. Never blocks waiting for data.
    ///
    /// - A missing file is not an error: nothing is delivered and the next
    ///   poll looks again (a file created later is read from its start).
    /// - Only `'\n'`-terminated lines are delivered; a partial last line
    ///   stays pending until its newline arrives, except when the file is
    ///   rotated away, where it is delivered as a line.
    /// - Rename rotation: the old file is read to its end first, so lines
    ///   written to it before this poll noticed the rotation are not lost.
    ///   Lines written to the old file after that are lost.
    /// - copytruncate (same file, now shorter than what was read, or its
    ///   first bytes changed): reading restarts at 0 of the same file. Lines
    ///   written between our last read and the truncation are inherently
    ///   lost (they were only in the copy), and so is a pending partial line.
    /// - A deleted file that is still open keeps being read until the path
    ///   names a file again.
    ///
    /// On an I/O error (permission denied…) it returns `Err` after keeping
    /// what it delivered so far in `out` (and [`position`](Self::position)
    /// covers it); the next poll tries again from there.
    pub fn poll(&mut self, out: &mut Vec<TailLine>) -> io::Result<()> {
        self.poll_bounded(out, usize::MAX).map(|_| ())
    }

    /// Like [`poll`](Self::poll), but stops reading once about `max_bytes`
    /// bytes were read (at least one chunk is read), so that a large backlog
    /// is delivered in bounded batches. Returns `Ok(true)` when it caught up
    /// with the file, `Ok(false)` when more data is waiting (poll again
    /// without sleeping).
    pub fn poll_bounded(&mut self, out: &mut Vec<TailLine>, max_bytes: usize) -> io::Result<bool> {
        let mut budget = max_bytes.max(1);
        if self.file.is_none() && !self.open_initial()? {
            return Ok(true);
        }
        for _ in 0..MAX_SWITCHES_PER_POLL {
            // Stat the path before draining: a rotation seen now happened
            // before the drain, so the drain gets everything written to the
            // old file up to now. A stat error does not stop the drain of
            // the file we already hold; it is reported afterwards.
            let (at_path, stat_error) = match path_identity(&self.path) {
                Ok(id) => (id, None),
                Err(e) => (None, Some(e)),
            };
            let Some(current) = self.file.as_ref() else {
                return Ok(true);
            };
            let rotated = at_path.is_some_and(|id| id != current.identity());
            if !rotated {
                self.check_truncation()?;
            }
            if !self.read_available(out, &mut budget)? {
                return Ok(false);
            }
            if let Some(e) = stat_error {
                return Err(e);
            }
            if !rotated {
                return Ok(true);
            }
            // The old file is drained; switch to the one at the path.
            let next = match open_regular(&self.path) {
                Ok(next) => next,
                // Renamed or removed again since the stat: try next poll.
                Err(e) if is_missing(&e) => return Ok(true),
                Err(e) => return Err(e),
            };
            self.lines.flush(out);
            self.file = Some(OpenFile::at(next.0, next.1, 0, Vec::new()));
        }
        Ok(false)
    }

    /// Position just after the last delivered line, for persisting. Before
    /// the first successful open it is the saved position given to
    /// [`new`](Self::new) (`None` if there was none).
    pub fn position(&self) -> Option<FilePosition> {
        let Some(f) = &self.file else {
            return self.saved;
        };
        Some(FilePosition {
            dev: f.dev,
            inode: f.inode,
            offset: f.line_start,
            fingerprint: f.fingerprint(),
        })
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file now, if it is not open yet, rather than at the first
    /// poll: a follower that starts at the end of an existing file then
    /// takes that end at once, so nothing written after it started is
    /// taken for old content. An error is left for the next poll to report.
    pub fn prime(&mut self) {
        if self.file.is_none() {
            let _ = self.open_initial();
        }
    }

    /// First open: applies the saved position or the start rule. Returns
    /// whether a file is open now.
    fn open_initial(&mut self) -> io::Result<bool> {
        let opened = match open_regular(&self.path) {
            Ok(opened) => Some(opened),
            Err(e) if is_missing(&e) => None,
            Err(e) => return Err(e),
        };
        if let Some(saved) = self.saved {
            return self.open_saved(saved, opened);
        }
        let Some((file, id)) = opened else {
            self.seen_missing = true;
            return Ok(false);
        };
        let of = if self.opts.from_start || self.seen_missing {
            OpenFile::at(file, id, 0, Vec::new())
        } else {
            self.open_at_end(file, id)?
        };
        self.file = Some(of);
        Ok(true)
    }

    fn open_saved(
        &mut self,
        saved: FilePosition,
        opened: Option<(File, Identity)>,
    ) -> io::Result<bool> {
        let saved_id = Identity {
            dev: saved.dev,
            inode: saved.inode,
        };
        if let Some((file, id)) = opened {
            let of = if id == saved_id {
                match resumable(&file, &saved)? {
                    Some(head) => OpenFile::at(file, id, saved.offset, head),
                    None => OpenFile::at(file, id, 0, Vec::new()),
                }
            } else if let Some(rotated) = find_rotated(&self.path, &saved)? {
                // The rotated file is drained first; the next stat of the
                // path sees a different file and switches to it at 0.
                rotated
            } else {
                OpenFile::at(file, id, 0, Vec::new())
            };
            self.file = Some(of);
            self.saved = None;
            return Ok(true);
        }
        // The path is missing: maybe rotated while we were down and the new
        // file is not created yet.
        self.saved = None;
        if let Some(rotated) = find_rotated(&self.path, &saved)? {
            self.file = Some(rotated);
            return Ok(true);
        }
        self.seen_missing = true;
        Ok(false)
    }

    /// Opens at the end of an existing file. A partial last line being
    /// written is delivered once complete (we start after the last newline);
    /// if that line is longer than a chunk, it is skipped silently.
    fn open_at_end(&mut self, file: File, id: Identity) -> io::Result<OpenFile> {
        let size = file.metadata()?.len();
        let tail_len = size.min(CHUNK_BYTES as u64);
        let tail_start = size - tail_len;
        self.buf.resize(CHUNK_BYTES, 0);
        let n = read_full_at(&file, &mut self.buf[..tail_len as usize], tail_start)?;
        let offset = match memchr::memrchr(b'\n', &self.buf[..n]) {
            Some(i) => tail_start + i as u64 + 1,
            None if tail_start == 0 => 0,
            None => {
                self.lines.skip_to_newline();
                tail_start + n as u64
            }
        };
        let head = read_head(&file)?;
        Ok(OpenFile::at(file, id, offset, head))
    }

    /// Restarts at 0 when the open file shrank below what we read or its
    /// first bytes changed (copytruncate, truncate-and-rewrite).
    fn check_truncation(&mut self) -> io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let size = f.file.metadata()?.len();
        if size == f.read_pos {
            return Ok(());
        }
        let truncated = size < f.read_pos || {
            let mut now = [0u8; FINGERPRINT_BYTES];
            let want = f.head.len();
            let n = read_full_at(&f.file, &mut now[..want], 0)?;
            now[..n] != f.head[..]
        };
        if truncated {
            f.read_pos = 0;
            f.line_start = 0;
            f.head.clear();
            self.lines.reset();
        }
        Ok(())
    }

    /// Reads the open file to EOF (or until the budget is spent), splitting
    /// lines into `out`. Returns whether EOF was reached.
    fn read_available(&mut self, out: &mut Vec<TailLine>, budget: &mut usize) -> io::Result<bool> {
        let Some(f) = self.file.as_mut() else {
            return Ok(true);
        };
        if self.buf.len() < CHUNK_BYTES {
            self.buf.resize(CHUNK_BYTES, 0);
        }
        loop {
            if *budget == 0 {
                return Ok(false);
            }
            let n = match f.file.read_at(&mut self.buf, f.read_pos) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            *budget = budget.saturating_sub(n);
            let chunk = &self.buf[..n];
            let chunk_start = f.read_pos;
            f.extend_head(chunk_start, chunk);
            f.read_pos += n as u64;
            if let Some(end) = self.lines.feed(chunk, out) {
                f.line_start = chunk_start + end as u64;
            }
        }
    }
}

impl OpenFile {
    fn at(file: File, id: Identity, offset: u64, head: Vec<u8>) -> Self {
        OpenFile {
            file,
            dev: id.dev,
            inode: id.inode,
            read_pos: offset,
            line_start: offset,
            head,
        }
    }

    fn identity(&self) -> Identity {
        Identity {
            dev: self.dev,
            inode: self.inode,
        }
    }

    /// Keeps `head` = the file's first bytes while reading from the start.
    fn extend_head(&mut self, chunk_start: u64, chunk: &[u8]) {
        let have = self.head.len() as u64;
        if have >= FINGERPRINT_BYTES as u64 || chunk_start > have {
            return;
        }
        let from = (have - chunk_start) as usize;
        let to = (FINGERPRINT_BYTES as u64 - chunk_start).min(chunk.len() as u64) as usize;
        if from < to {
            self.head.extend_from_slice(&chunk[from..to]);
        }
    }

    fn fingerprint(&self) -> Option<u64> {
        // `head` covers min(256, line_start) bytes except in a race with a
        // truncation, which the next poll notices and resets.
        let covered = self.line_start.min(self.head.len() as u64) as usize;
        fingerprint(&self.head[..covered])
    }
}

/// Splits chunks into lines, bounding what it buffers to `max` bytes.
#[derive(Debug)]
struct LineSplitter {
    max: usize,
    /// Bytes of the current incomplete line (at most `max`).
    pending: Vec<u8>,
    /// The current line is already longer than `max`: discard to its newline.
    overlong: bool,
    /// Silently drop the current line (we started in its middle).
    skipping: bool,
}

impl LineSplitter {
    fn new(max: usize) -> Self {
        LineSplitter {
            max,
            pending: Vec::new(),
            overlong: false,
            skipping: false,
        }
    }

    /// Delivers the complete lines of `chunk` and keeps its tail pending.
    /// Returns the index just after the last newline in `chunk`, if any.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<TailLine>) -> Option<usize> {
        let mut start = 0;
        let mut end = None;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            self.finish_line(&chunk[start..nl], out);
            start = nl + 1;
            end = Some(start);
        }
        self.keep_partial(&chunk[start..]);
        end
    }

    fn finish_line(&mut self, last: &[u8], out: &mut Vec<TailLine>) {
        if self.skipping {
            self.reset();
            return;
        }
        if self.overlong {
            self.push_pending(out, true);
            return;
        }
        if self.pending.is_empty() {
            let too_long = last.len() > self.max;
            let kept = if too_long { &last[..self.max] } else { last };
            out.push(TailLine {
                bytes: kept.to_vec(),
                too_long,
            });
            return;
        }
        let too_long = self.append_bounded(last);
        self.push_pending(out, too_long);
    }

    fn keep_partial(&mut self, rest: &[u8]) {
        if rest.is_empty() || self.skipping || self.overlong {
            return;
        }
        if self.append_bounded(rest) {
            self.overlong = true;
        }
    }

    /// Appends up to `max` total bytes; returns whether bytes were cut.
    fn append_bounded(&mut self, bytes: &[u8]) -> bool {
        let room = self.max.saturating_sub(self.pending.len());
        if bytes.len() > room {
            self.pending.extend_from_slice(&bytes[..room]);
            true
        } else {
            self.pending.extend_from_slice(bytes);
            false
        }
    }

    fn push_pending(&mut self, out: &mut Vec<TailLine>, too_long: bool) {
        out.push(TailLine {
            bytes: std::mem::take(&mut self.pending),
            too_long,
        });
        self.overlong = false;
    }

    /// Delivers the pending partial line as a line (its file was rotated
    /// away, no newline will come).
    fn flush(&mut self, out: &mut Vec<TailLine>) {
        if self.skipping {
            self.reset();
        } else if self.overlong || !self.pending.is_empty() {
            let too_long = self.overlong;
            self.push_pending(out, too_long);
        }
    }

    fn skip_to_newline(&mut self) {
        self.reset();
        self.skipping = true;
    }

    fn reset(&mut self) {
        self.pending.clear();
        self.overlong = false;
        self.skipping = false;
    }
}

/// FNV-1a 64 of up to the first 256 bytes of `prefix`; `None` when empty.
fn fingerprint(prefix: &[u8]) -> Option<u64> {
    if prefix.is_empty() {
        return None;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in prefix.iter().take(FINGERPRINT_BYTES) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Some(hash)
}

/// The file's head for a resume at `saved.offset`, or `None` when the saved
/// position does not apply to it (shorter, or other content).
fn resumable(file: &File, saved: &FilePosition) -> io::Result<Option<Vec<u8>>> {
    let size = file.metadata()?.len();
    if size < saved.offset {
        return Ok(None);
    }
    let head = read_head(file)?;
    let covered = saved.offset.min(head.len() as u64) as usize;
    let matches = match saved.fingerprint {
        Some(fp) => fingerprint(&head[..covered]) == Some(fp),
        None => true,
    };
    Ok(matches.then_some(head))
}

/// In the path's directory, the file rotated away from the path that is the
/// saved (dev, inode), opened at the saved offset. Directory listing errors
/// count as "not found": the current file is then read from 0.
fn find_rotated(path: &Path, saved: &FilePosition) -> io::Result<Option<OpenFile>> {
    let Some(name) = path.file_name() else {
        return Ok(None);
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list directory to find a rotated log");
            return Ok(None);
        }
    };
    let prefix = name.as_encoded_bytes();
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let bytes = entry_name.as_encoded_bytes();
        if bytes.len() <= prefix.len() || !bytes.starts_with(prefix) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.dev() != saved.dev || meta.ino() != saved.inode {
            continue;
        }
        let (file, id) = match open_regular(&entry.path()) {
            Ok(opened) => opened,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if id.dev != saved.dev || id.inode != saved.inode {
            return Ok(None);
        }
        return Ok(resumable(&file, saved)?.map(|head| OpenFile::at(file, id, saved.offset, head)));
    }
    Ok(None)
}

/// (dev, inode) of the file the path names now, `None` when it names none.
fn path_identity(path: &Path) -> io::Result<Option<Identity>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(Identity {
            dev: meta.dev(),
            inode: meta.ino(),
        })),
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens a regular file (a FIFO would block the open) and returns its
/// identity from the open descriptor.
fn open_regular(path: &Path) -> io::Result<(File, Identity)> {
    if !fs::metadata(path)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let id = Identity {
        dev: meta.dev(),
        inode: meta.ino(),
    };
    Ok((file, id))
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// The file's first `FINGERPRINT_BYTES` bytes (fewer if it is shorter).
fn read_head(file: &File) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; FINGERPRINT_BYTES];
    let n = read_full_at(file, &mut head, 0)?;
    head.truncate(n);
    Ok(head)
}

/// `pread` until `buf` is full or EOF; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A followed file as a [`Source`]: a [`Tailer`] whose lines go into
/// [`Lines`], and whose position is saved under the source's name and the
/// path.
pub struct FileSource {
    name: Arc<str>,
    key: String,
    tailer: Tailer,
    buf: Vec<TailLine>,
}

impl FileSource {
    /// Follows `path` for source `name`, resuming from `saved` (see
    /// [`Tailer::new`]).
    pub fn new(name: Arc<str>, path: PathBuf, opts: TailOptions, saved: Option<&Position>) -> Self {
        let key = path.display().to_string();
        let saved = saved.map(|p| FilePosition {
            dev: p.dev,
            inode: p.inode,
            offset: p.offset,
            fingerprint: p.fingerprint,
        });
        let mut tailer = Tailer::new(path, opts, saved);
        // The end of an existing file is taken when the source is built
        // (before the agent says it started), not at its first poll.
        tailer.prime();
        Self {
            name,
            key,
            tailer,
            buf: Vec::new(),
        }
    }

    /// The key its position is saved under (the path as text).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Source for FileSource {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn read(&mut self, lines: &mut Lines, max_bytes: usize) -> Result<Progress, SourceError> {
        let result = self.tailer.poll_bounded(&mut self.buf, max_bytes);
        for line in self.buf.drain(..) {
            if line.too_long {
                lines.push_too_long();
            } else {
                lines.push(&line.bytes);
            }
        }
        match result {
            Ok(true) => Ok(Progress::CaughtUp),
            Ok(false) => Ok(Progress::More),
            Err(source) => Err(SourceError::Io {
                what: self.key.clone(),
                source,
            }),
        }
    }

    fn position(&self) -> Option<Position> {
        self.tailer.position().map(|p| Position {
            source: self.name.to_string(),
            path: self.key.clone(),
            dev: p.dev,
            inode: p.inode,
            offset: p.offset,
            fingerprint: p.fingerprint,
            cursor: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<TailLine>, Vec<Option<usize>>) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let ends = chunks.iter().map(|c| s.feed(c, &mut out)).collect();
        (out, ends)
    }

    fn line(s: &str) -> TailLine {
        TailLine {
            bytes: s.as_bytes().to_vec(),
            too_long: false,
        }
    }

    #[test]
    fn splits_lines_across_chunks() {
        let (out, ends) = split(100, &[b"ab\ncd", b"ef\n", b"gh"]);
        assert_eq!(out, vec![line("ab"), line("cdef")]);
        assert_eq!(ends, vec![Some(3), Some(3), None]);
    }

    #[test]
    fn keeps_carriage_return_and_empty_lines() {
        let (out, _) = split(100, &[b"a\r\n\n"]);
        assert_eq!(out, vec![line("a\r"), line("")]);
    }

    #[test]
    fn line_of_exactly_max_is_not_too_long() {
        let (out, _) = split(3, &[b"abc\nab", b"c\nabcd\n"]);
        assert_eq!(out[0], line("abc"));
        assert_eq!(out[1], line("abc"));
        assert!(out[2].too_long);
        assert_eq!(out[2].bytes, b"abc");
    }

    #[test]
    fn overlong_line_is_bounded_and_delivered_once() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        for _ in 0..1000 {
            s.feed(b"xxxxxxxxxx", &mut out);
            assert!(s.pending.len() <= 4);
        }
        assert!(out.is_empty());
        s.feed(b"x\nnext\n", &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[0].too_long);
        assert_eq!(out[0].bytes, b"xxxx");
        assert_eq!(out[1], line("next"));
    }

    #[test]
    fn flush_delivers_partial_line() {
        let mut s = LineSplitter::new(10);
        let mut out = Vec::new();
        s.feed(b"a\npart", &mut out);
        s.flush(&mut out);
        s.flush(&mut out);
        assert_eq!(out, vec![line("a"), line("part")]);
    }

    #[test]
    fn skipping_drops_the_first_line_silently() {
        let mut s = LineSplitter::new(10);
        s.skip_to_newline();
        let mut out = Vec::new();
        s.feed(b"tail of a line\nnext\n", &mut out);
        assert_eq!(out, vec![line("next")]);
    }

    #[test]
    fn zero_max_never_panics() {
        let (out, _) = split(0, &[b"a\n\nbc"]);
        assert!(out[0].too_long);
        assert_eq!(out[1], line(""));
    }

    #[test]
    fn a_file_source_takes_the_end_when_built_so_lines_written_before_its_first_read_count() {
        use crate::Source;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        std::fs::write(&path, b"old 1\nold 2\n").unwrap();
        let mut source = FileSource::new(
            Arc::from("sshd"),
            path.clone(),
            TailOptions::default(),
            None,
        );
        // Written after the source was built, before it first reads.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"new 1\n").unwrap();
        let mut lines = crate::Lines::default();
        source.read(&mut lines, 1 << 20).unwrap();
        let got: Vec<&[u8]> = lines.iter().filter_map(|(_, l)| l).collect();
        assert_eq!(
            got,
            [b"new 1".as_slice()],
            "old lines skipped, the new one read"
        );
    }

    #[test]
    fn fingerprint_is_fnv1a_of_prefix() {
        assert_eq!(fingerprint(b""), None);
        // Published FNV-1a 64 test vector.
        assert_eq!(fingerprint(b"a"), Some(0xaf63_dc4c_8601_ec8c));
        let long = vec![7u8; 1000];
        assert_eq!(fingerprint(&long), fingerprint(&long[..256]));
    }

    #[test]
    fn head_is_filled_from_sequential_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let (file, id) = open_regular(&path).unwrap();
        let mut of = OpenFile::at(file, id, 0, Vec::new());
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        of.extend_head(0, &data[..100]);
        of.extend_head(100, &data[100..300]);
        assert_eq!(of.head, data[..256]);
        of.extend_head(300, b"zzz");
        assert_eq!(of.head.len(), 256);
    }
}
