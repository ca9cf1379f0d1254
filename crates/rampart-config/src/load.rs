//! Reading a config so that every problem is reported, not only the first.
//!
//! serde stops at the first bad key or value. The loader parses the TOML
//! into a spanned tree, deserializes, and on an error finds the entry the
//! error points at, names it (`gateway.listen = "localhost": …`), removes
//! it and tries again, until the rest deserializes or nothing more can be
//! attributed.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

/// Most problems collected from one file before giving up.
const MAX_PROBLEMS: usize = 64;

/// One problem found while deserializing: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Byte offset into the text, when known.
    pub offset: Option<usize>,
    /// The message, led by the key path (and the value when one is at fault).
    pub message: String,
}

/// Deserializes `text`, collecting every problem serde reports, in the
/// file's order. The value is what remains once the entries at fault are
/// left out (so that checks beyond parsing can still run on the rest);
/// there is none when the text is not TOML or a problem has no place.
pub(crate) fn deserialize_all<T: for<'de> Deserialize<'de>>(text: &str) -> (Option<T>, Vec<Found>) {
    let (mut tree, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let found = syntax
            .iter()
            .map(|e| Found {
                offset: e.span().map(|s| s.start),
                message: e.message().trim().to_owned(),
            })
            .collect();
        return (None, found);
    }
    tree.get_mut().make_owned();
    let mut found = Vec::new();
    // Fields the loader itself removed: their "missing field" is not news.
    let mut removed: Vec<String> = Vec::new();
    // Array elements removed so far, by the array's original path: later
    // elements are named by their index in the file, not the shrunk array.
    let mut gaps: Gaps = Vec::new();
    let mut value = None;
    while found.len() < MAX_PROBLEMS {
        let error = match T::deserialize(toml::de::Deserializer::from(tree.clone())) {
            Ok(v) => {
                value = Some(v);
                break;
            }
            Err(e) => e,
        };
        let mut message = error.message().trim().to_owned();
        if message == "invalid socket address syntax" {
            message.push_str(
                " (write an IP address and a port, like 127.0.0.1:9700 or [::1]:9700; host names \
                 are not looked up)",
            );
        }
        let Some(span) = error.span() else {
            found.push(Found {
                offset: None,
                message,
            });
            break;
        };
        let Some(entry) = locate(tree.get_ref(), &span) else {
            found.push(Found {
                offset: Some(span.start),
                message,
            });
            break;
        };
        let original = restore(&entry.path, &gaps);
        let missing = missing_field(&message).map(|f| join(&original, f));
        if !missing.as_ref().is_some_and(|m| removed.contains(m)) {
            let message = match (&original, entry.is_value) {
                (path, _) if path.is_empty() => message,
                (path, true) => format!("{} = {}: {message}", show(path), excerpt(text, &span)),
                (path, false) => format!("{}: {message}", show(path)),
            };
            found.push(Found {
                offset: Some(span.start),
                message,
            });
        }
        if entry.path.is_empty() || !remove(tree.get_mut(), &entry.path) {
            break;
        }
        if let Some((Step::Index(i), parent)) = original.split_last() {
            let parent = parent.join(".");
            match gaps.iter_mut().find(|(p, _)| *p == parent) {
                Some((_, taken)) => taken.push(*i),
                None => gaps.push((parent, vec![*i])),
            }
        }
        removed.push(original.join("."));
    }
    found.sort_by_key(|f| f.offset.unwrap_or(usize::MAX));
    (value, found)
}

/// Removed array elements: (the array's original path, original indices).
type Gaps = Vec<(String, Vec<usize>)>;

/// `path` in the shrunk tree, as the path in the file.
fn restore(path: &[Step], gaps: &Gaps) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(path.len());
    for step in path {
        let step = match step {
            Step::Index(i) => {
                let parent = out.join(".");
                let mut index = *i;
                if let Some((_, taken)) = gaps.iter().find(|(p, _)| *p == parent) {
                    let mut taken = taken.clone();
                    taken.sort_unstable();
                    for t in taken {
                        if t <= index {
                            index += 1;
                        }
                    }
                }
                Step::Index(index)
            }
            key => key.clone(),
        };
        out.push(step);
    }
    out
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Key(k) => f.write_str(k),
            Step::Index(i) => write!(f, "{i}"),
        }
    }
}

trait JoinPath {
    fn join(&self, sep: &str) -> String;
}

impl JoinPath for [Step] {
    fn join(&self, sep: &str) -> String {
        self.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(sep)
    }
}

fn join(path: &[Step], field: &str) -> String {
    let mut p = path.join(".");
    if !p.is_empty() {
        p.push('.');
    }
    p.push_str(field);
    p
}

/// `source[0].format`, `gateway.listen`.
fn show(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The text of the value at fault, shortened.
fn excerpt(text: &str, span: &Range<usize>) -> String {
    let raw = text.get(span.clone()).unwrap_or("").trim();
    let first = raw.lines().next().unwrap_or("");
    if first.chars().count() > 60 || first.len() < raw.len() {
        format!("{}…", first.chars().take(60).collect::<String>())
    } else {
        first.to_owned()
    }
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

struct Entry {
    path: Vec<Step>,
    /// The span is the entry's value (not its key or its table).
    is_value: bool,
}

/// The deepest entry whose key or value holds the start of `span`.
fn locate(table: &DeTable<'_>, span: &Range<usize>) -> Option<Entry> {
    let mut best: Option<(usize, Entry)> = None;
    let mut path = Vec::new();
    walk_table(table, span.start, &mut path, &mut best);
    best.map(|(_, e)| e)
}

fn consider(best: &mut Option<(usize, Entry)>, depth: usize, entry: Entry) {
    if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
        *best = Some((depth, entry));
    }
}

fn walk_table(
    table: &DeTable<'_>,
    at: usize,
    path: &mut Vec<Step>,
    best: &mut Option<(usize, Entry)>,
) {
    for (key, value) in table.iter() {
        path.push(Step::Key(key.get_ref().to_string()));
        if key.span().contains(&at) {
            consider(
                best,
                path.len(),
                Entry {
                    path: path.clone(),
                    is_value: false,
                },
            );
        }
        walk_value(value, at, path, best);
        path.pop();
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    at: usize,
    path: &mut Vec<Step>,
    best: &mut Option<(usize, Entry)>,
) {
    if value.span().contains(&at) {
        // A table's span is not its value's text: name it, do not quote it.
        let is_value = !matches!(value.get_ref(), DeValue::Table(_));
        consider(
            best,
            path.len(),
            Entry {
                path: path.clone(),
                is_value,
            },
        );
    }
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, at, path, best),
        DeValue::Array(items) => walk_array(items, at, path, best),
        _ => {}
    }
}

fn walk_array(
    items: &DeArray<'_>,
    at: usize,
    path: &mut Vec<Step>,
    best: &mut Option<(usize, Entry)>,
) {
    for (i, item) in items.iter().enumerate() {
        path.push(Step::Index(i));
        walk_value(item, at, path, best);
        path.pop();
    }
}

/// Removes the entry at `path`; false when it is not there.
fn remove<'i>(table: &mut DeTable<'i>, path: &[Step]) -> bool {
    let Some((Step::Key(first), rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(first.as_str()).is_some();
    }
    match table.get_mut(first.as_str()) {
        Some(value) => remove_in(value.get_mut(), rest),
        None => false,
    }
}

fn remove_in<'i>(value: &mut DeValue<'i>, path: &[Step]) -> bool {
    match (value, path.split_first()) {
        (DeValue::Table(t), Some(_)) => remove(t, path),
        (DeValue::Array(items), Some((Step::Index(i), rest))) => {
            if rest.is_empty() {
                if *i >= items.len() {
                    return false;
                }
                let kept: DeArray<'i> = std::mem::replace(items, DeArray::new())
                    .into_iter()
                    .enumerate()
                    .filter(|(j, _)| j != i)
                    .map(|(_, v)| v)
                    .collect();
                *items = kept;
                true
            } else {
                match items.get_mut(*i) {
                    Some(item) => remove_in(item.get_mut(), rest),
                    None => false,
                }
            }
        }
        _ => false,
    }
}
