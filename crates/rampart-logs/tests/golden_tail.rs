//! Golden tail cases: every folder under `tests/golden/tail/` at the repo
//! root is one case, `steps.toml` (operations on a file in a tempdir) and
//! `expected.txt` (every delivered line, in order, one per line; a too-long
//! line is shown as `[too_long] ` and its kept prefix).
//!
//! Adding a case is adding a folder. `RAMPART_BLESS=1` rewrites
//! `expected.txt` from what the tailer delivers (review the diff!).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rampart_logs::tail::{TailLine, TailOptions, Tailer};
use serde::Deserialize;

/// One case's `steps.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// `TailOptions::from_start`.
    #[serde(default)]
    from_start: bool,
    /// `TailOptions::max_line_bytes`.
    #[serde(default = "default_max_line_bytes")]
    max_line_bytes: usize,
    /// Operations, applied in order.
    step: Vec<Step>,
}

fn default_max_line_bytes() -> usize {
    1024
}

fn one() -> usize {
    1
}

/// The followed file is `NAME` (`app.log`); rotated copies are `NAME.1`,
/// `NAME.2`…
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Step {
    /// Append `text` `repeat` times to NAME (created if missing).
    Append {
        text: String,
        #[serde(default = "one")]
        repeat: usize,
    },
    /// Append `text` to NAME.1 (a writer still holding the rotated file).
    AppendOld { text: String },
    /// Poll the tailer; delivered lines go to the output.
    Poll,
    /// logrotate `create`: shift NAME.1 → NAME.2, rename NAME → NAME.1,
    /// create an empty NAME.
    RotateRename,
    /// logrotate `copytruncate`: shift NAME.1 → NAME.2, copy NAME → NAME.1,
    /// truncate NAME to 0 bytes (same inode).
    Copytruncate,
    /// Drop the tailer and make a new one from its saved position.
    Restart,
    /// Remove NAME.
    Delete,
    /// Create NAME empty (if missing).
    Create,
}

const NAME: &str = "app.log";

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/tail")
}

fn append_to(path: &Path, text: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

fn shift_rotated(dir: &Path) -> std::io::Result<()> {
    let one = dir.join(format!("{NAME}.1"));
    if one.exists() {
        fs::rename(&one, dir.join(format!("{NAME}.2")))?;
    }
    Ok(())
}

fn render(line: &TailLine) -> String {
    let text = String::from_utf8_lossy(&line.bytes).replace('\r', "\\r");
    if line.too_long {
        format!("[too_long] {text}")
    } else {
        text
    }
}

/// Runs one case; returns the rendered output.
fn run_case(case: &Case) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join(NAME);
    let old = dir.path().join(format!("{NAME}.1"));
    let opts = TailOptions {
        from_start: case.from_start,
        max_line_bytes: case.max_line_bytes,
    };
    let mut tailer = Tailer::new(path.clone(), opts, None);
    let mut out = String::new();
    for (i, step) in case.step.iter().enumerate() {
        let fail = |e: std::io::Error| format!("step {} ({step:?}): {e}", i + 1);
        match step {
            Step::Append { text, repeat } => {
                append_to(&path, &text.repeat(*repeat)).map_err(fail)?
            }
            Step::AppendOld { text } => append_to(&old, text).map_err(fail)?,
            Step::Poll => {
                let mut lines = Vec::new();
                tailer.poll(&mut lines).map_err(fail)?;
                for line in &lines {
                    out.push_str(&render(line));
                    out.push('\n');
                }
            }
            Step::RotateRename => {
                shift_rotated(dir.path()).map_err(fail)?;
                fs::rename(&path, &old).map_err(fail)?;
                fs::File::create(&path).map_err(fail)?;
            }
            Step::Copytruncate => {
                shift_rotated(dir.path()).map_err(fail)?;
                fs::copy(&path, &old).map_err(fail)?;
                OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(fail)?;
            }
            Step::Restart => {
                let saved = tailer.position();
                tailer = Tailer::new(path.clone(), opts, saved);
            }
            Step::Delete => fs::remove_file(&path).map_err(fail)?,
            Step::Create => {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(fail)?;
            }
        }
    }
    Ok(out)
}

/// A line diff (longest common subsequence), `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut text) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            text += &format!("   {}\n", a[i]);
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            text += &format!(" + {}\n", b[j]);
            j += 1;
        } else {
            text += &format!(" - {}\n", a[i]);
            i += 1;
        }
    }
    text
}

#[test]
fn golden_tail_cases() {
    let bless = std::env::var_os("RAMPART_BLESS").is_some();
    let mut dirs: Vec<PathBuf> = fs::read_dir(cases_dir())
        .expect("tests/golden/tail exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no golden tail cases found");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let steps = match fs::read_to_string(dir.join("steps.toml")) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: steps.toml: {e}"));
                continue;
            }
        };
        let case: Case = match toml::from_str(&steps) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: steps.toml: {e}"));
                continue;
            }
        };
        let actual = match run_case(&case) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let expected_path = dir.join("expected.txt");
        if bless {
            fs::write(&expected_path, &actual).expect("write expected.txt");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{name}: output differs (- expected, + actual):\n{}",
                diff(&expected, &actual)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden tail cases failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
