//! The workspace's shape, checked: no crate depends on a crate at or above
//! its own layer, and no two files of a crate import each other, directly
//! or around a circle. See docs/ARCHITECTURE.md for the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each crate's layer: a crate may depend only on crates of lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("rampart-core", 0),
    ("rampart-config", 1),
    ("rampart-logs", 2),
    ("rampart-detect", 2),
    ("rampart-act", 2),
    ("rampart-store", 2),
    ("rampart-http", 2),
    ("rampart-api", 2),
    // The fleet client builds on the store (its outbox) and the API types.
    ("rampart-fleet", 3),
    // The HTTP detection hook (ban table, inspector, policy) the gateway
    // and the in-app middleware share.
    ("rampart-guard", 3),
    // Roles: never import one another.
    ("rampart-agent", 4),
    ("rampart-gateway", 4),
    ("rampart-server", 4),
    // The binary: the command line and role composition.
    ("rampart", 5),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// The `rampart-*` crates in `[dependencies]` of a manifest.
fn rampart_dependencies(manifest: &str) -> Vec<String> {
    let table: toml::Table = toml::from_str(manifest).expect("a valid Cargo.toml");
    table
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|deps| {
            deps.keys()
                .filter(|k| k.starts_with("rampart"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn crates() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let mut problems = Vec::new();
    for (name, dir) in crates() {
        let Some(own) = layer(&name) else {
            problems.push(format!(
                "{name} has no layer in this test (add it, and to ARCHITECTURE.md)"
            ));
            continue;
        };
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        for dep in rampart_dependencies(&manifest) {
            match layer(&dep) {
                Some(l) if l < own => {}
                Some(l) => {
                    problems.push(format!("{name} (layer {own}) depends on {dep} (layer {l})"))
                }
                None => problems.push(format!("{name} depends on {dep}, which has no layer")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layer_check_sees_a_violation() {
    // The check itself: a manifest with an upward dependency is caught.
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nrampart-gateway.workspace = true\nserde = \"1\"\n";
    assert_eq!(rampart_dependencies(manifest), vec!["rampart-gateway"]);
    assert!(layer("rampart-gateway").unwrap() >= layer("rampart-agent").unwrap());
}

/// A crate's source files by module path (`[]` is the root).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(stem);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = match stem.as_str() {
                    "mod" => prefix.to_vec(),
                    "lib" | "main" if prefix.is_empty() => Vec::new(),
                    _ => {
                        let mut p = prefix.to_vec();
                        p.push(stem);
                        p
                    }
                };
                out.insert(module, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// Source without comments and string literals (what they say is not an
/// import).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            b => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    out
}

/// The paths of a `use` tree (`a::X, b::{c, d::E}`), flattened.
fn expand(tree: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                entries.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&tree[start..]);
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        match (entry.find('{'), entry.rfind('}')) {
            (Some(open), Some(close)) if open < close => {
                let prefix = &entry[..open];
                out.extend(
                    expand(&entry[open + 1..close])
                        .into_iter()
                        .map(|s| format!("{prefix}{s}")),
                );
            }
            _ => out.push(entry.to_owned()),
        }
    }
    out
}

/// The spans of inline modules (`mod tests { … }`) in `code`.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("mod ") {
        let start = from + at;
        from = start + 4;
        if code[..start]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let after =
            code[from..].trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let Some(body) = after.trim_start().strip_prefix('{') else {
            continue;
        };
        let open = code.len() - body.len();
        let mut depth = 1;
        let close = code[open..]
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(code.len(), |(i, _)| open + i);
        spans.push((start, close));
    }
    spans
}

/// The module paths a file refers to with `crate::…` and `super::…`
/// (grouped imports included), as written. A path that stays inside the
/// file (`use super::*` in its `mod tests`) is left out.
fn references(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let inline = inline_modules(code);
    let segments = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| p.trim().to_owned())
            .take_while(|p| {
                !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .filter(|p| p != "self")
            .collect()
    };
    let mut out = Vec::new();
    for anchor in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(anchor) {
            let before = rest[..at].chars().last();
            let position = code.len() - rest.len() + at;
            rest = &rest[at + anchor.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            // `super` is the parent of the module the path is written in
            // (inline modules count); each further `super::` one more up.
            let mut tail = rest;
            let mut ups = 1;
            while let Some(t) = tail.strip_prefix("super::") {
                ups += 1;
                tail = t;
            }
            let depth = inline
                .iter()
                .filter(|(a, b)| *a < position && position < *b)
                .count();
            let base: Vec<String> = if anchor == "super::" {
                if ups <= depth {
                    continue;
                }
                module[..module.len().saturating_sub(ups - depth)].to_vec()
            } else {
                Vec::new()
            };
            let trees: Vec<String> = match tail.strip_prefix('{') {
                Some(group) => {
                    let mut depth = 1;
                    let end = group
                        .char_indices()
                        .find(|(_, c)| {
                            match c {
                                '{' => depth += 1,
                                '}' => depth -= 1,
                                _ => {}
                            }
                            depth == 0
                        })
                        .map_or(group.len(), |(i, _)| i);
                    expand(&group[..end])
                }
                None => vec![
                    tail.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                        .collect(),
                ],
            };
            for tree in trees {
                let mut path = base.clone();
                path.extend(segments(&tree));
                out.push(path);
            }
        }
    }
    out
}

/// The file a module path lands in: its longest prefix that is a file.
fn resolve<'a>(path: &[String], files: &'a BTreeMap<Vec<String>, PathBuf>) -> &'a PathBuf {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n]))
        .expect("the root file exists")
}

/// Circles (strongly connected groups of two or more files).
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    // Kosaraju: order by finish, then walk the reversed graph.
    let nodes: Vec<&PathBuf> = edges.keys().collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    fn visit<'a>(
        n: &'a PathBuf,
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        seen: &mut BTreeSet<&'a PathBuf>,
        order: &mut Vec<&'a PathBuf>,
    ) {
        if !seen.insert(n) {
            return;
        }
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, seen, order);
        }
        order.push(n);
    }
    for n in &nodes {
        visit(n, edges, &mut seen, &mut order);
    }
    let mut reversed: BTreeMap<&PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for (from, tos) in edges {
        for to in tos {
            reversed.entry(to).or_default().push(from);
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.into_iter().rev() {
        if assigned.contains(n) {
            continue;
        }
        let mut group = Vec::new();
        let mut stack = vec![n];
        while let Some(x) = stack.pop() {
            if !assigned.insert(x) {
                continue;
            }
            group.push(x.clone());
            stack.extend(reversed.get(x).into_iter().flatten().copied());
        }
        if group.len() > 1 {
            group.sort();
            out.push(group);
        }
    }
    out
}

fn import_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let files = modules(src);
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (module, file) in &files {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let targets = edges.entry(file.clone()).or_default();
        for reference in references(&code, module) {
            let target = resolve(&reference, &files);
            if target != file {
                targets.insert(target.clone());
            }
        }
    }
    edges
}

#[test]
fn no_file_imports_around_a_circle() {
    let mut problems = Vec::new();
    for (name, dir) in crates() {
        for circle in circles(&import_graph(&dir.join("src"))) {
            let names: Vec<String> = circle
                .iter()
                .map(|p| p.strip_prefix(&dir).unwrap_or(p).display().to_string())
                .collect();
            problems.push(format!("{name}: {}", names.join(" <-> ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import circles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_circle_check_sees_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("net")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod net;\n").unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::{b::Thing, net::{tls, dns}};\n",
    )
    .unwrap();
    // A mention in a comment or a string is not an import.
    std::fs::write(
        src.join("b.rs"),
        "// crate::a\nconst S: &str = \"crate::a\";\n",
    )
    .unwrap();
    std::fs::write(src.join("net/mod.rs"), "pub mod tls;\n").unwrap();
    std::fs::write(
        src.join("net/tls.rs"),
        "use super::super::a::X;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::Y;\n}\n",
    )
    .unwrap();
    let found = circles(&import_graph(src));
    assert_eq!(found.len(), 1, "{found:?}");
    let names: Vec<_> = found[0]
        .iter()
        .map(|p| p.strip_prefix(src).unwrap().to_owned())
        .collect();
    // net/tls's tests use net/tls (the same file) and net (no circle).
    assert_eq!(
        names,
        vec![PathBuf::from("a.rs"), PathBuf::from("net/tls.rs")]
    );
    std::fs::write(src.join("b.rs"), "use crate::a::Y;\n").unwrap();
    let found = circles(&import_graph(src));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].len(), 3, "a, b and net/tls: {found:?}");
}
