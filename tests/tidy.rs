//! Invariants of the code base that `cargo test` enforces (ARCHITECTURE.md): every file
//! opens with a doc comment, the engine has no I/O runtime, and no crate has an import
//! cycle between its modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["shared/src", "shared/tests", "platform/src", "api/src", "worker/src", "cli/src", "bench/src", "tests"]
    {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let undocumented: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).expect("utf-8 source").trim_start().starts_with("//!"))
        .map(|f| f.strip_prefix(root).unwrap_or(f).display().to_string())
        .collect();
    assert!(undocumented.is_empty(), "files without a leading `//!` comment: {undocumented:?}");
}

#[test]
fn the_engine_has_no_io_runtime_dependencies() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("shared/Cargo.toml")).unwrap();
    let dependencies = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    for forbidden in ["tokio", "redis", "object_store", "axum", "reqwest", "apalis", "hyper"] {
        assert!(
            !dependencies.lines().any(|line| line.trim_start().starts_with(forbidden)),
            "mta-core must stay free of I/O runtimes, found `{forbidden}`"
        );
    }
}

// ---- no import cycle between the modules of a crate ----
//
// The rule, kept simple on purpose:
// - a module is a file `src/x.rs` or a folder `src/x/` (every file under the folder counts
//   as `x`: a folder is one module towards the rest of the crate, whatever its inside);
//   the crate root (`lib.rs`, `main.rs`) is no module;
// - module `a` depends on module `b` when a file of `a` names `crate::b` (in a `use`,
//   also inside `use crate::{b::…, …}` groups, or inline in code), or names
//   `crate::Item` where the crate root re-exports `Item` from `b` (`pub use b::Item;`);
// - comments (doc links included) and string literals do not count; `super::` paths are
//   not followed (in this code base they stay inside a folder module or a test module);
// - a cycle is any closed path of such dependencies between two or more modules.

/// The source without comments, string literals and char literals (kept: identifiers,
/// paths and punctuation), so a path in a message or a doc link is no dependency.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && starts_token(&chars[..i]) {
            // A raw string r"…", r#"…"# or br"…": skip to the quote followed by as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() && !(chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#'))) {
                j += 1;
            }
            i = j + 1 + hashes;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\''); a lifetime ('a) has no closing quote.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether a literal prefix (`r`) after `before` starts a token: nothing of an
/// identifier before it, or only a `b` (a raw byte string).
fn starts_token(before: &[char]) -> bool {
    match before {
        [.., p] if !is_ident_char(*p) => true,
        [] => true,
        [.., p, 'b'] => !is_ident_char(*p),
        ['b'] => true,
        _ => false,
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `text` (after spaces), if any.
fn leading_ident(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let end = text.find(|c: char| !is_ident_char(c)).unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// The text inside the braces that open `text` (which starts at `{`), balanced.
fn braced(text: &str) -> &str {
    let mut depth = 0;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[1..at];
                }
            }
            _ => {}
        }
    }
    &text[1..]
}

/// The top-level items of a `use` group's inside, split at commas outside nested braces.
fn group_items(inside: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (at, c) in inside.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inside[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&inside[start..]);
    items
}

/// The first path segments that `code` names after `crate::` (groups opened up).
fn crate_references(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].chars().next_back().is_some_and(is_ident_char) {
            continue; // `mta_crate::`, not ours.
        }
        let rest = code[at + "crate::".len()..].trim_start();
        if rest.starts_with('{') {
            for item in group_items(braced(rest)) {
                names.extend(leading_ident(item).map(str::to_owned));
            }
        } else {
            names.extend(leading_ident(rest).map(str::to_owned));
        }
    }
    names
}

/// What the crate root re-exports: item name → the module it comes from (`pub use m::…`).
fn root_reexports(root: &str) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for (at, _) in root.match_indices("pub use ") {
        let rest = &root[at + "pub use ".len()..];
        let Some(module) = leading_ident(rest) else { continue };
        let path = &rest[..rest.find(';').unwrap_or(rest.len())];
        // Every name that does not lead further (`a::{B, c::D}` → B, D) is an exported leaf.
        let mut leaf = String::new();
        for c in path.chars().chain([';']) {
            if is_ident_char(c) {
                leaf.push(c);
            } else if !leaf.is_empty() {
                if c != ':' && leaf != "as" {
                    items.entry(std::mem::take(&mut leaf)).or_insert_with(|| module.to_owned());
                }
                leaf.clear();
            }
        }
    }
    items
}

/// The module graph of the crate in `src`: module → (module it names → a file that names it).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut modules = BTreeMap::new(); // module → its files
    let mut roots = String::new();
    for entry in std::fs::read_dir(src).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 file name").to_owned();
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            modules.entry(name).or_insert_with(Vec::new).extend(files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if name == "lib" || name == "main" {
                roots.push_str(&code_only(&std::fs::read_to_string(&path).expect("utf-8 source")));
            } else {
                modules.entry(name).or_insert_with(Vec::new).push(path);
            }
        }
    }
    let reexports = root_reexports(&roots);
    let mut graph = BTreeMap::new();
    for (module, files) in &modules {
        let edges: &mut BTreeMap<String, String> = graph.entry(module.clone()).or_default();
        for file in files {
            let code = code_only(&std::fs::read_to_string(file).expect("utf-8 source"));
            for name in crate_references(&code) {
                let target = if modules.contains_key(&name) { Some(&name) } else { reexports.get(&name) };
                let target = target.filter(|t| modules.contains_key(*t));
                if let Some(target) = target.filter(|t| *t != module) {
                    let workspace = src.parent().and_then(Path::parent).unwrap_or(src);
                    let shown = file.strip_prefix(workspace).unwrap_or(file);
                    edges.entry(target.clone()).or_insert_with(|| shown.display().to_string());
                }
            }
        }
    }
    graph
}

/// A cycle of `graph` as its modules in order (the first repeated at the end), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|module| visit(module, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for krate in ["shared", "platform", "api", "worker", "cli"] {
        let graph = module_graph(&root.join(krate).join("src"));
        assert!(graph.len() > 4, "{krate}: found only {} modules", graph.len());
        if let Some(cycle) = find_cycle(&graph) {
            let edges: Vec<String> = cycle
                .windows(2)
                .map(|pair| format!("  {} → {}: {} names it", pair[0], pair[1], graph[&pair[0]][&pair[1]]))
                .collect();
            found.push(format!("{krate}: {}\n{}", cycle.join(" → "), edges.join("\n")));
        }
    }
    assert!(found.is_empty(), "import cycles between modules (see tests/tidy.rs for the rule):\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_reads_paths_and_ignores_text() {
    let code = code_only(
        "use crate::{a::X, b, c::{d, e}};\n// crate::f in a comment\nlet s = \"crate::g\"; let r = r#\"crate::h\"#;\nlet c = '\"'; crate::i::j(); fn k<'a>(x: &'a str) { crate::l }",
    );
    assert_eq!(crate_references(&code), ["a", "b", "c", "i", "l"]);
    let reexports = root_reexports("pub use ledger::Ledger;\npub use job::{JobState, Stage as S};");
    assert_eq!(reexports.get("Ledger").map(String::as_str), Some("ledger"));
    assert_eq!(reexports.get("JobState").map(String::as_str), Some("job"));
    assert_eq!(reexports.get("S").map(String::as_str), Some("job"));
    assert!(!reexports.contains_key("as") && !reexports.contains_key("job"));
    let mut graph = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(from.to_owned()).or_insert_with(BTreeMap::new).insert(to.to_owned(), String::new());
    }
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    graph.get_mut("c").unwrap().remove("a");
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn the_platform_ids_and_redis_schema_sit_at_the_bottom() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("platform/src"));
    let names = |module: &str| graph[module].keys().cloned().collect::<Vec<_>>();
    assert_eq!(names("ids"), Vec::<String>::new(), "ids imports nothing else from the crate");
    assert_eq!(names("redis_keys"), ["ids"], "redis_keys stands on the ids only");
}
