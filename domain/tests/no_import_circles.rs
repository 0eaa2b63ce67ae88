//! No module of the domain imports one that imports it back.
//!
//! A circle makes two modules one in all but name: neither can be read, tested or moved
//! without the other. The layering we keep: leaf types (`model`, `routing`, `secrets`,
//! `enforcement`, …) import nothing that touches the store; the modules that act on the
//! store (`impl Store` blocks) import the store and leaves, never the other way round.
//! This reads the sources (test modules excluded) and fails on any circle, naming it.

// A file that cannot be read is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate's top-level modules and, for each, the top-level modules it names with
/// `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" {
            continue;
        }
        let text = sources.entry(name).or_default();
        for file in rust_files(&path) {
            text.push_str(&without_tests(&std::fs::read_to_string(file).unwrap()));
            text.push('\n');
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, text)| {
            let named = crate_paths(text).into_iter().filter(|m| m != module && modules.contains(m)).collect();
            (module.clone(), named)
        })
        .collect()
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        std::fs::read_dir(path).unwrap().flat_map(|e| rust_files(&e.unwrap().path())).collect()
    } else if path.extension().is_some_and(|e| e == "rs") {
        vec![path.to_owned()]
    } else {
        Vec::new()
    }
}

/// The source before its `#[cfg(test)]` module (by convention, the last thing in a file).
fn without_tests(text: &str) -> String {
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// The first segment after every `crate::`, also inside `use crate::{a, b::c}` groups.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find("};").unwrap_or(group.len())];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..i].trim()));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            out.insert(ident(group[start..].trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// The module sets that import each other (strongly connected components of more than one).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reaches(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in graph.keys() {
        let mut circle: Vec<String> =
            graph.keys().filter(|o| *o == m || (reach[m].contains(*o) && reach[*o].contains(m))).cloned().collect();
        circle.sort();
        if circle.len() > 1 && !out.contains(&circle) {
            out.push(circle);
        }
    }
    out
}

#[test]
fn no_domain_module_imports_one_that_imports_it_back() {
    let graph = imports();
    assert!(graph.contains_key("store") && graph["oauth"].contains("store"), "the reader finds the modules");
    let found = circles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|circle| {
            let edges: Vec<String> = circle
                .iter()
                .map(|m| {
                    let back: Vec<&String> = graph[m].iter().filter(|o| circle.contains(o)).collect();
                    format!("{m} -> {back:?}")
                })
                .collect();
            edges.join("; ")
        })
        .collect();
    assert!(found.is_empty(), "import circles in domain/src:\n{}", described.join("\n"));
}

#[test]
fn the_reader_sees_grouped_and_nested_imports() {
    let text = "use crate::{a::B, c, d::{e, f}};\nfn x() { crate::g::h(); }";
    let found: Vec<String> = crate_paths(text).into_iter().collect();
    assert_eq!(found, ["a", "c", "d", "g"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(circles(&graph), vec![vec!["a".to_owned(), "b".to_owned()]]);
}
