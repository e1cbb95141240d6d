//! The modules of this crate form layers: no module reaches (through `crate::…` paths) a
//! module that reaches it back. A cycle would mean two modules that can only be understood,
//! tested and changed together; this test finds one as soon as it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its files name as `crate::<module>`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let module = relative.components().next().unwrap().as_os_str().to_string_lossy();
            let module = module.trim_end_matches(".rs").to_owned();
            if ["lib", "main", "layering"].contains(&module.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let uses = graph.entry(module.clone()).or_default();
            for (at, _) in text.match_indices("crate::") {
                let name: String = text[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

/// A path `from` → … → `to`, if any.
fn path(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.to_owned()]];
    while let Some(trail) = stack.pop() {
        let last = trail.last()?;
        if last == to && trail.len() > 1 {
            return Some(trail);
        }
        for next in graph.get(last).into_iter().flatten() {
            if (next == to || seen.insert(next.clone())) && !trail[1..].contains(next) {
                stack.push([trail.clone(), vec![next.clone()]].concat());
            }
        }
    }
    None
}

#[test]
fn no_module_reaches_itself() {
    let graph = dependencies();
    assert!(graph.contains_key("config") && graph.contains_key("store"), "{graph:?}");
    assert!(graph["app"].contains("store"), "the scan sees `crate::` paths: {graph:?}");
    for module in graph.keys() {
        if let Some(cycle) = path(&graph, module, module) {
            panic!("module cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let edges = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")];
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in edges {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(path(&graph, "a", "a").unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(path(&graph, "d", "d"), None);
}
