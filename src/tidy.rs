//! The layering the architecture document states, held against the code: each top-level module
//! names only the modules its "Module edges" list allows (no cycles, no upward imports), the files
//! of one module use each other without a cycle, and the crates that belong to one layer (sled,
//! warp, clap) appear nowhere else. A test, so that the document and the code cannot drift apart
//! unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where the edges are written, between these two lines.
const DOCUMENT: &str = "docs/architecture.md";
const EDGES_START: &str = "<!-- module edges: held by src/tidy.rs -->";
const EDGES_END: &str = "<!-- end of module edges -->";

/// Crates only some files may name: the crate, and the path prefixes (under `src/`) allowed to.
const CONFINED: &[(&str, &[&str])] = &[
    // Only the store knows sled; the read model's tests write an old-format store with it.
    ("sled", &["read_model/store/", "read_model/tests/"]),
    ("warp", &["http/"]),
    ("clap", &["config.rs", "main.rs"]),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The allowed edges: each module and the modules it may use.
fn allowed_edges() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(repo().join(DOCUMENT)).expect("the architecture document");
    let start = text
        .find(EDGES_START)
        .expect("the module edges' start marker")
        + EDGES_START.len();
    let end = text.find(EDGES_END).expect("the module edges' end marker");
    text[start..end]
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(module, _)| !module.trim().is_empty() && !module.contains('`'))
        .map(|(module, uses)| {
            let uses = uses.split_whitespace().map(str::to_owned).collect();
            (module.trim().to_owned(), uses)
        })
        .collect()
}

/// Every `.rs` file under `src/` but this one (whose strings name what it looks for), as a path
/// relative to `src/`, sorted.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a readable source dir") {
            let path = entry.expect("a readable dir entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }
    let src = repo().join("src");
    let mut found = Vec::new();
    walk(&src, &mut found);
    let mut relative: Vec<PathBuf> = found
        .iter()
        .map(|path| path.strip_prefix(&src).expect("under src/").to_path_buf())
        .filter(|path| path != Path::new("tidy.rs"))
        .collect();
    relative.sort();
    relative
}

/// The top-level module a file under `src/` belongs to (`None` for the crate root and `main`).
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(module, "lib" | "main")).then(|| module.to_owned())
}

/// Each code line of `text` (comments left out) with its number.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(at, line)| (at + 1, line.split("//").next().unwrap_or("")))
}

/// The names following each `prefix` in `line`.
fn names_after<'a>(line: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    line.match_indices(prefix).filter_map(move |(at, _)| {
        // `my_crate::` is not `crate::`.
        let before = line[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        let rest = &line[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '{'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// What `src/` breaks of the rules: one line each.
fn violations(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for relative in sources() {
        let shown = format!("src/{}", relative.display());
        let text =
            std::fs::read_to_string(repo().join("src").join(&relative)).expect("a source file");
        let module = module_of(&relative);
        for (number, line) in code_lines(&text) {
            if let Some(module) = &module {
                for used in names_after(line, "crate::") {
                    if used.is_empty() {
                        continue;
                    }
                    if used.starts_with('{') {
                        found.push(format!(
                            "{shown}:{number}: name one module a path, not `crate::{{..}}`"
                        ));
                    } else if used != module
                        && !edges.get(module).is_some_and(|may| may.contains(used))
                    {
                        found.push(format!(
                            "{shown}:{number}: `{module}` uses `{used}`, which {DOCUMENT} \
                             does not list among the modules it may use"
                        ));
                    }
                }
            }
            for (krate, allowed) in CONFINED {
                let named = names_after(line, &format!("{krate}::")).next().is_some();
                let relative = relative.to_string_lossy();
                if named && !allowed.iter().any(|prefix| relative.starts_with(prefix)) {
                    found.push(format!(
                        "{shown}:{number}: `{krate}` is named outside {allowed:?}"
                    ));
                }
            }
        }
    }
    found
}

/// The modules in an order where each comes after every module it may use; `None` on a cycle.
fn layered(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut placed: Vec<String> = Vec::new();
    while placed.len() < edges.len() {
        let next = edges.iter().find(|(module, uses)| {
            !placed.contains(module) && uses.iter().all(|used| placed.contains(used))
        })?;
        placed.push(next.0.clone());
    }
    Some(placed)
}

/// The files of one directory module, by name (`handlers` for `handlers.rs`, `body` for
/// `body/mod.rs`), each with the siblings its code (tests left out) uses through `super::`,
/// directly or through a name `mod.rs` imports from that sibling. `mod.rs` itself is the
/// module's face and stands outside: its children may use what it holds.
fn sibling_edges(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let read = |path: &Path| std::fs::read_to_string(path).expect("a source file");
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("a readable source dir") {
        let path = entry.expect("a readable dir entry").path();
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("");
        if path.is_dir() && path.join("mod.rs").exists() {
            files.insert(name.to_owned(), path.join("mod.rs"));
        } else if path.extension().is_some_and(|ext| ext == "rs") && name != "mod" {
            files.insert(name.to_owned(), path);
        }
    }
    // Names the module's face imports from a sibling (`use problem::ApiError;`).
    let face = read(&dir.join("mod.rs"));
    let mut imported: BTreeMap<String, String> = BTreeMap::new();
    for sibling in files.keys() {
        for (at, _) in face.match_indices(&format!("use {sibling}::")) {
            let statement = face[at..].split(';').next().unwrap_or("");
            for word in words(statement) {
                imported.insert(word.to_owned(), sibling.clone());
            }
        }
    }
    files
        .iter()
        .map(|(name, path)| {
            let text = read(path);
            let before_tests = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: String = code_lines(before_tests)
                .map(|(_, line)| format!("{line}\n"))
                .collect();
            let mut uses = BTreeSet::new();
            for (at, _) in code.match_indices("super::") {
                if code[..at].ends_with("super::") {
                    continue;
                }
                let rest = &code[at + "super::".len()..];
                let path = if rest.starts_with('{') {
                    &rest[..rest.find('}').map_or(rest.len(), |end| end + 1)]
                } else {
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")
                };
                for word in words(path) {
                    let sibling = files.get_key_value(word).map(|(name, _)| name.clone());
                    if let Some(used) = sibling.or_else(|| imported.get(word).cloned()) {
                        if &used != name {
                            uses.insert(used);
                        }
                    }
                }
            }
            (name.clone(), uses)
        })
        .collect()
}

/// The identifiers in `text`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
}

/// Every directory module under `src/`, relative to `src/`.
fn directory_modules() -> Vec<PathBuf> {
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for relative in sources() {
        if relative.file_name().is_some_and(|name| name == "mod.rs") {
            dirs.insert(
                relative
                    .parent()
                    .expect("mod.rs sits in a dir")
                    .to_path_buf(),
            );
        }
    }
    dirs.into_iter().collect()
}

#[test]
fn modules_use_only_what_the_architecture_document_allows() {
    let edges = allowed_edges();
    assert!(
        edges.len() >= 10,
        "the module edges were not read: {edges:?}"
    );
    for (module, uses) in &edges {
        for used in uses {
            assert!(
                edges.contains_key(used),
                "{DOCUMENT}: `{module}` may use `{used}`, which is not a module listed there"
            );
        }
    }
    for relative in sources() {
        if let Some(module) = module_of(&relative) {
            assert!(
                edges.contains_key(&module),
                "module `{module}` is missing from {DOCUMENT}'s module edges"
            );
        }
    }
    assert!(
        layered(&edges).is_some(),
        "{DOCUMENT}'s module edges have a cycle"
    );
    let found = violations(&edges);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn a_forbidden_edge_and_a_cycle_are_caught() {
    let mut edges = allowed_edges();
    // `log` uses `domain` (events are what it appends): forbidden, every use is reported.
    edges.get_mut("log").unwrap().remove("domain");
    let found = violations(&edges);
    assert!(
        found
            .iter()
            .any(|line| line.contains("`log` uses `domain`")),
        "{found:?}"
    );
    edges.get_mut("domain").unwrap().insert("write".to_owned());
    assert!(
        layered(&edges).is_none(),
        "domain → write → domain is a cycle"
    );
}

#[test]
fn the_files_of_each_module_use_each_other_without_a_cycle() {
    let dirs = directory_modules();
    assert!(
        dirs.len() >= 10,
        "the directory modules were not found: {dirs:?}"
    );
    let mut cycles = Vec::new();
    for dir in dirs {
        let edges = sibling_edges(&repo().join("src").join(&dir));
        if layered(&edges).is_none() {
            let tangled: BTreeMap<&String, &BTreeSet<String>> =
                edges.iter().filter(|(_, uses)| !uses.is_empty()).collect();
            cycles.push(format!("src/{}: {tangled:?}", dir.display()));
        }
    }
    assert!(
        cycles.is_empty(),
        "files in a cycle:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn a_cycle_between_files_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mod.rs"), "mod a;\nmod b;\nuse b::Thing;\n").unwrap();
    std::fs::write(
        dir.path().join("a.rs"),
        "use super::Thing;\npub struct Other;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.rs"),
        "use super::{a::Other};\npub struct Thing;\n",
    )
    .unwrap();
    let edges = sibling_edges(dir.path());
    assert_eq!(edges["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(edges["b"], BTreeSet::from(["a".to_owned()]));
    assert!(layered(&edges).is_none());
}
