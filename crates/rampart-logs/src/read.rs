//! Read-once sources: a log file, standard input, or a rotated log
//! compressed with gzip or zstd, read from start to end.
//!
//! [`open`] names the input (`-` is standard input) and recognises a
//! compressed stream by its first bytes, whatever the file is called.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use rampart_core::Position;

use crate::source::{Lines, Progress, Source, SourceError};

/// Bytes read per `read` call.
const READ_BYTES: usize = 256 << 10;

/// gzip's magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// zstd's magic bytes.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How an input was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As text.
    Plain,
    /// gzip (`.gz`, several members allowed, as logrotate writes them).
    Gzip,
    /// zstd (`.zst`).
    Zstd,
}

impl Encoding {
    /// The encoding a stream starting with `head` is in (its magic bytes).
    pub fn of(head: &[u8]) -> Self {
        if head.starts_with(&GZIP_MAGIC) {
            Self::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Self::Zstd
        } else {
            Self::Plain
        }
    }
}

/// Opens `path` (`-`: standard input) for reading once, decompressing gzip
/// and zstd; the source is named `name`.
pub fn open(
    name: Arc<str>,
    path: &Path,
    max_line_bytes: usize,
) -> Result<ReaderSource, SourceError> {
    let what = if path == Path::new("-") {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let io_error = |source| SourceError::Io {
        what: what.clone(),
        source,
    };
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path).map_err(io_error)?)
    };
    let mut buffered = BufReader::with_capacity(READ_BYTES, raw);
    let head = buffered.fill_buf().map_err(io_error)?;
    let encoding = Encoding::of(head);
    let reader: Box<dyn Read + Send> = match encoding {
        Encoding::Plain => Box::new(buffered),
        Encoding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Encoding::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(io_error)?)
        }
    };
    Ok(ReaderSource {
        name,
        what,
        encoding,
        reader,
        max_line_bytes,
        carry: Vec::new(),
        discarding: false,
        buf: vec![0; READ_BYTES],
        done: false,
    })
}

/// Lines of any reader, read once to its end.
pub struct ReaderSource {
    name: Arc<str>,
    what: String,
    encoding: Encoding,
    reader: Box<dyn Read + Send>,
    max_line_bytes: usize,
    /// The start of a line whose end was not read yet.
    carry: Vec<u8>,
    /// Inside a line too long to keep: its bytes are dropped up to its end.
    discarding: bool,
    buf: Vec<u8>,
    done: bool,
}

impl ReaderSource {
    /// How the input was stored.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Hands out the carried partial line (at the end of the input: a last
    /// line without a newline, as a truncated write leaves it).
    fn finish(&mut self, lines: &mut Lines) {
        if self.discarding {
            lines.push_too_long();
        } else if !self.carry.is_empty() {
            lines.push(&self.carry);
        }
        self.carry.clear();
        self.discarding = false;
        self.done = true;
    }
}

impl Source for ReaderSource {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn read(&mut self, lines: &mut Lines, max_bytes: usize) -> Result<Progress, SourceError> {
        if self.done {
            return Ok(Progress::Finished);
        }
        let start = lines.bytes();
        while lines.bytes() - start < max_bytes.max(1) {
            let n = match self.reader.read(&mut self.buf) {
                Ok(0) => {
                    self.finish(lines);
                    return Ok(Progress::Finished);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(SourceError::Io {
                        what: self.what.clone(),
                        source,
                    });
                }
            };
            let mut block = &self.buf[..n];
            while !block.is_empty() {
                let Some(end) = memchr::memchr(b'\n', block) else {
                    if !self.discarding {
                        self.carry.extend_from_slice(block);
                        if self.carry.len() > self.max_line_bytes {
                            self.carry.clear();
                            self.discarding = true;
                        }
                    }
                    break;
                };
                let (line, rest) = (&block[..end], &block[end + 1..]);
                if self.discarding {
                    self.discarding = false;
                    lines.push_too_long();
                } else if self.carry.is_empty() {
                    // The common case: whole lines straight from the buffer,
                    // up to the last newline, checked for length.
                    let last = memchr::memrchr(b'\n', block).unwrap_or(end);
                    for line in block[..last].split(|b| *b == b'\n') {
                        if line.len() > self.max_line_bytes {
                            lines.push_too_long();
                        } else {
                            lines.push(line);
                        }
                    }
                    block = &block[last + 1..];
                    continue;
                } else if self.carry.len() + line.len() > self.max_line_bytes {
                    self.carry.clear();
                    lines.push_too_long();
                } else {
                    self.carry.extend_from_slice(line);
                    lines.push(&self.carry);
                    self.carry.clear();
                }
                block = rest;
            }
        }
        Ok(Progress::More)
    }

    fn position(&self) -> Option<Position> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn read_all(path: &Path, max_line: usize, max_bytes: usize) -> (Encoding, Vec<Option<String>>) {
        let mut source = open(Arc::from("t"), path, max_line).expect("open");
        let mut all = Vec::new();
        loop {
            let mut lines = Lines::default();
            let progress = source.read(&mut lines, max_bytes).expect("read");
            all.extend(
                lines
                    .iter()
                    .map(|(_, l)| l.map(|l| String::from_utf8_lossy(l).into_owned())),
            );
            if progress == Progress::Finished {
                return (source.encoding(), all);
            }
        }
    }

    fn text() -> String {
        let mut s = String::new();
        for i in 0..5000 {
            s.push_str(&format!("line {i} {}\n", "x".repeat(i % 97)));
        }
        s.push_str(&"y".repeat(300));
        s.push_str("\nlast without newline");
        s
    }

    fn expected() -> Vec<Option<String>> {
        let mut v: Vec<Option<String>> = (0..5000)
            .map(|i| Some(format!("line {i} {}", "x".repeat(i % 97))))
            .collect();
        v.push(None);
        v.push(Some("last without newline".to_owned()));
        v
    }

    #[test]
    fn plain_gzip_and_zstd_read_the_same_lines_whatever_the_name() {
        let dir = tempfile::tempdir().expect("dir");
        let plain = dir.path().join("auth.log");
        std::fs::write(&plain, text()).expect("write");
        // Two gzip members, as a log appended to after compression.
        let gz = dir.path().join("auth.log.2");
        let half = text().len() / 2;
        let mut out = Vec::new();
        for part in [&text()[..half], &text()[half..]] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part.as_bytes()).expect("gz");
            out.extend(enc.finish().expect("gz"));
        }
        std::fs::write(&gz, out).expect("write");
        let zst = dir.path().join("auth.log.3.zst");
        std::fs::write(&zst, zstd::encode_all(text().as_bytes(), 3).expect("zstd")).expect("write");
        for (path, encoding) in [
            (&plain, Encoding::Plain),
            (&gz, Encoding::Gzip),
            (&zst, Encoding::Zstd),
        ] {
            for max_bytes in [1, 4096, 1 << 20] {
                let (found, lines) = read_all(path, 256, max_bytes);
                assert_eq!(found, encoding, "{}", path.display());
                assert_eq!(
                    lines,
                    expected(),
                    "{} in reads of {max_bytes}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error = open(Arc::from("t"), Path::new("/nonexistent/x.log"), 256)
            .err()
            .expect("error");
        assert!(error.to_string().contains("/nonexistent/x.log"), "{error}");
    }

    #[test]
    fn a_truncated_gzip_stream_is_an_error_after_the_lines_before_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("cut.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text().as_bytes()).expect("gz");
        let mut bytes = enc.finish().expect("gz");
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&path, bytes).expect("write");
        let mut source = open(Arc::from("t"), &path, 256).expect("open");
        let mut read = 0;
        let error = loop {
            let mut lines = Lines::default();
            match source.read(&mut lines, 4096) {
                Ok(Progress::Finished) => panic!("a truncated stream must not end quietly"),
                Ok(_) => read += lines.len(),
                Err(e) => break e,
            }
        };
        assert!(read > 0, "the lines before the cut are read");
        assert!(error.to_string().contains("cut.gz"), "{error}");
    }
}
