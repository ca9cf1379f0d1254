//! Behaviour of `Tailer` against real files in a tempdir.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rampart_logs::tail::{FilePosition, TailLine, TailOptions, Tailer};

fn opts(from_start: bool) -> TailOptions {
    TailOptions {
        from_start,
        max_line_bytes: 1024,
    }
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn poll(t: &mut Tailer) -> Vec<String> {
    let mut out = Vec::new();
    t.poll(&mut out).unwrap();
    texts(&out)
}

fn texts(lines: &[TailLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            assert!(!l.too_long);
            String::from_utf8(l.bytes.clone()).unwrap()
        })
        .collect()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    (dir, path)
}

#[test]
fn missing_file_is_not_an_error_and_is_read_from_start_once_created() {
    let (_dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(false), None);
    assert!(poll(&mut t).is_empty());
    assert_eq!(t.position(), None);
    append(&path, "first\nsecond\n");
    assert_eq!(poll(&mut t), ["first", "second"]);
    assert_eq!(t.path(), path);
}

#[test]
fn existing_file_starts_at_end_unless_from_start() {
    let (_dir, path) = setup();
    append(&path, "old1\nold2\n");
    let mut at_end = Tailer::new(path.clone(), opts(false), None);
    let mut at_start = Tailer::new(path.clone(), opts(true), None);
    assert!(poll(&mut at_end).is_empty());
    assert_eq!(poll(&mut at_start), ["old1", "old2"]);
    append(&path, "new\n");
    assert_eq!(poll(&mut at_end), ["new"]);
    assert_eq!(poll(&mut at_start), ["new"]);
}

#[test]
fn partial_line_waits_for_its_newline() {
    let (_dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    append(&path, "a\nbb");
    assert_eq!(poll(&mut t), ["a"]);
    assert_eq!(t.position().unwrap().offset, 2);
    append(&path, "b");
    assert!(poll(&mut t).is_empty());
    append(&path, "b\r\nc\n");
    assert_eq!(poll(&mut t), ["bbbb\r", "c"]);
    assert_eq!(t.position().unwrap().offset, 10);
}

#[test]
fn too_long_line_is_delivered_once_without_buffering_it() {
    let (_dir, path) = setup();
    let mut t = Tailer::new(
        path.clone(),
        TailOptions {
            from_start: true,
            max_line_bytes: 300,
        },
        None,
    );
    append(&path, "short\n");
    let big = "x".repeat(3 * 1024 * 1024);
    append(&path, &big);
    let mut out = Vec::new();
    t.poll(&mut out).unwrap();
    assert_eq!(texts(&out), ["short"]);
    append(&path, &big);
    append(&path, "\nafter\n");
    out.clear();
    t.poll(&mut out).unwrap();
    assert_eq!(out.len(), 2);
    assert!(out[0].too_long);
    assert!(out[0].bytes.len() <= 300);
    assert_eq!(out[1].bytes, b"after");
    assert!(!out[1].too_long);
}

#[test]
fn rename_rotation_drains_old_file_then_reads_new_from_start() {
    let (dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(false), None);
    append(&path, "");
    assert!(poll(&mut t).is_empty());
    append(&path, "a1\n");
    assert_eq!(poll(&mut t), ["a1"]);
    let old = dir.path().join("auth.log.1");
    fs::rename(&path, &old).unwrap();
    append(&old, "late to old\nold partial");
    append(&path, "b1\n");
    assert_eq!(poll(&mut t), ["late to old", "old partial", "b1"]);
    let pos = t.position().unwrap();
    assert_eq!(pos.inode, fs::metadata(&path).unwrap().ino());
    assert_eq!(pos.offset, 3);
}

#[test]
fn rotation_with_path_missing_for_a_while() {
    let (dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    append(&path, "a1\n");
    assert_eq!(poll(&mut t), ["a1"]);
    fs::rename(&path, dir.path().join("auth.log.1")).unwrap();
    append(&dir.path().join("auth.log.1"), "a2\n");
    assert_eq!(poll(&mut t), ["a2"]);
    append(&path, "b1\n");
    assert_eq!(poll(&mut t), ["b1"]);
}

#[test]
fn copytruncate_restarts_at_zero() {
    let (dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    append(&path, "a1\na2\n");
    assert_eq!(poll(&mut t), ["a1", "a2"]);
    let inode = fs::metadata(&path).unwrap().ino();
    fs::copy(&path, dir.path().join("auth.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    append(&path, "b1\n");
    assert_eq!(poll(&mut t), ["b1"]);
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
}

#[test]
fn truncate_and_regrow_past_offset_is_noticed_by_content() {
    let (_dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    append(&path, "a1\n");
    assert_eq!(poll(&mut t), ["a1"]);
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    append(&path, "b1 is longer\nb2\n");
    assert_eq!(poll(&mut t), ["b1 is longer", "b2"]);
}

#[test]
fn restart_resumes_exactly_at_every_split_point() {
    let (_dir, path) = setup();
    let all: Vec<String> = (0..200)
        .map(|i| format!("line {i} {}", "y".repeat(i % 37)))
        .collect();
    let text: String = all.iter().map(|l| format!("{l}\n")).collect();
    // Write in uneven pieces, restarting the tailer after every poll.
    let mut got = Vec::new();
    let mut saved = None;
    let mut rest = text.as_str();
    let mut step = 1;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(step.min(rest.len()));
        append(&path, piece);
        rest = tail;
        step = step * 7 % 300 + 1;
        let mut t = Tailer::new(path.clone(), opts(true), saved);
        got.extend(poll(&mut t));
        saved = t.position();
    }
    assert_eq!(got, all);
    let pos = saved.unwrap();
    assert_eq!(pos.offset, text.len() as u64);
    assert!(pos.fingerprint.is_some());
}

#[test]
fn resume_after_rotation_while_down_reads_rotated_remainder_first() {
    let (dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(false), None);
    append(&path, "a0\n");
    assert!(poll(&mut t).is_empty());
    append(&path, "a1\n");
    assert_eq!(poll(&mut t), ["a1"]);
    let saved = t.position();
    drop(t);
    append(&path, "a2 unread\n");
    fs::rename(&path, dir.path().join("auth.log.1")).unwrap();
    append(&path, "b1\n");
    // A decoy sibling that does not have the saved inode.
    append(&dir.path().join("auth.log.2"), "decoy\n");
    let mut t = Tailer::new(path.clone(), opts(false), saved);
    assert_eq!(t.position(), saved);
    assert_eq!(poll(&mut t), ["a2 unread", "b1"]);
}

#[test]
fn resume_with_rotated_file_but_no_new_file_yet() {
    let (dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    append(&path, "a1\n");
    assert_eq!(poll(&mut t), ["a1"]);
    let saved = t.position();
    drop(t);
    append(&path, "a2\n");
    fs::rename(&path, dir.path().join("auth.log.1")).unwrap();
    let mut t = Tailer::new(path.clone(), opts(true), saved);
    assert_eq!(poll(&mut t), ["a2"]);
    append(&path, "b1\n");
    assert_eq!(poll(&mut t), ["b1"]);
}

#[test]
fn resume_after_truncation_while_down_starts_at_zero() {
    let (_dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    append(&path, "a long first line\n");
    assert_eq!(poll(&mut t), ["a long first line"]);
    let saved = t.position();
    drop(t);
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    append(&path, "b1\n");
    let mut t = Tailer::new(path.clone(), opts(true), saved);
    assert_eq!(poll(&mut t), ["b1"]);
}

#[test]
fn resume_rejects_same_inode_with_other_content() {
    let (_dir, path) = setup();
    append(&path, "original content\n");
    let meta = fs::metadata(&path).unwrap();
    // A position for this inode whose fingerprint belongs to other bytes,
    // as after the inode number was reused by a new file.
    let forged = FilePosition {
        dev: meta.dev(),
        inode: meta.ino(),
        offset: 9,
        fingerprint: Some(12345),
    };
    let mut t = Tailer::new(path.clone(), opts(false), Some(forged));
    assert_eq!(poll(&mut t), ["original content"]);
}

#[test]
fn fingerprint_covers_the_delivered_prefix() {
    let (_dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    append(&path, "");
    assert!(poll(&mut t).is_empty());
    let pos = t.position().unwrap();
    assert_eq!((pos.offset, pos.fingerprint), (0, None));
    append(&path, &"z".repeat(400));
    append(&path, "\n");
    poll(&mut t);
    let first = t.position().unwrap().fingerprint;
    assert!(first.is_some());
    append(&path, "more\n");
    poll(&mut t);
    // Past 256 bytes the fingerprint no longer changes as the file grows.
    assert_eq!(t.position().unwrap().fingerprint, first);
}

#[test]
fn io_error_is_returned_and_next_poll_retries() {
    let (_dir, path) = setup();
    fs::create_dir(&path).unwrap();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    let mut out = Vec::new();
    assert!(t.poll(&mut out).is_err());
    assert!(t.poll(&mut out).is_err());
    fs::remove_dir(&path).unwrap();
    append(&path, "ok\n");
    assert_eq!(poll(&mut t), ["ok"]);
}

#[test]
fn fifo_is_refused_without_blocking() {
    let (_dir, path) = setup();
    let status = std::process::Command::new("mkfifo").arg(&path).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo not available");
        return;
    }
    let mut t = Tailer::new(path, opts(true), None);
    assert!(t.poll(&mut Vec::new()).is_err());
}

#[test]
fn unreadable_file_is_an_error_until_readable() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = setup();
    append(&path, "secret\n");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::File::open(&path).is_ok() {
        eprintln!("skipped: running with permission bypass (root)");
        return;
    }
    let mut t = Tailer::new(path.clone(), opts(true), None);
    assert!(t.poll(&mut Vec::new()).is_err());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(poll(&mut t), ["secret"]);
}

#[test]
fn bounded_poll_delivers_a_backlog_in_batches() {
    let (_dir, path) = setup();
    let text: String = (0..100_000).map(|i| format!("{i}\n")).collect();
    append(&path, &text);
    let mut t = Tailer::new(path.clone(), opts(true), None);
    let mut out = Vec::new();
    let mut polls = 0;
    loop {
        polls += 1;
        let before = out.len();
        let caught_up = t.poll_bounded(&mut out, 64 * 1024).unwrap();
        assert!(out.len() - before <= 64 * 1024 / 2 + 1);
        if caught_up {
            break;
        }
    }
    assert!(polls > 5);
    assert_eq!(out.len(), 100_000);
    assert_eq!(out[99_999].bytes, b"99999");
    assert_eq!(t.position().unwrap().offset, text.len() as u64);
}

#[test]
fn deleted_then_recreated_file_is_followed() {
    let (_dir, path) = setup();
    let mut t = Tailer::new(path.clone(), opts(true), None);
    append(&path, "a1\n");
    assert_eq!(poll(&mut t), ["a1"]);
    fs::remove_file(&path).unwrap();
    assert!(poll(&mut t).is_empty());
    append(&path, "b1\n");
    assert_eq!(poll(&mut t), ["b1"]);
}
