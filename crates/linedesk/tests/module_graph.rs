//! No two modules of a crate import each other, directly or round a circle (issue 11).
//!
//! A circle means neither side can be read, moved or tested without the other; a shared thing
//! belongs in a neutral module both sides import instead. This reads every crate's sources and
//! builds the graph of references between files: `crate::…`, `super::…`, `self::…` paths and,
//! in a file that declares modules, paths through those modules (`chats::router()`). The crate
//! root (`lib.rs`/`main.rs`) is the composition root — it declares `AppState` that every
//! handler takes and wires the modules together — so references to items defined in it are
//! not edges (its re-exports, like `crate::ApiError`, count as references to their module).
//! Test modules (`#[cfg(test)] mod tests`) are skipped: they look at their own file.
//!
//! Run alone: `cargo test -p linedesk --test module_graph`; it prints every circle it finds
//! (`MODULE_GRAPH_PRINT=1 … -- --nocapture` prints every edge).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside one crate (`["ui", "chats"]`); empty: the crate root.
type ModPath = Vec<String>;

struct Crate {
    src: PathBuf,
    /// Every module with its file.
    modules: BTreeMap<ModPath, PathBuf>,
    /// The crate root's `pub use a::b::Name` re-exports: `Name` → the module `a::b`.
    reexports: BTreeMap<String, ModPath>,
}

impl Crate {
    fn load(src: &Path) -> Option<Crate> {
        let root = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .find(|p| p.exists())?;
        let mut modules = BTreeMap::new();
        collect(src, &root, Vec::new(), &mut modules);
        let mut krate = Crate {
            src: src.to_owned(),
            modules,
            reexports: BTreeMap::new(),
        };
        let text = code_of(&std::fs::read_to_string(&root).unwrap());
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("pub use ") else {
                continue;
            };
            let path: Vec<String> = rest
                .trim_end_matches(';')
                .split("::")
                .map(|s| s.trim().to_owned())
                .collect();
            if let Some((name, module)) = path.split_last() {
                let module = module
                    .iter()
                    .filter(|s| *s != "crate")
                    .cloned()
                    .collect::<Vec<_>>();
                if krate.modules.contains_key(&module) && !name.contains('{') {
                    krate.reexports.insert(name.clone(), module);
                }
            }
        }
        Some(krate)
    }

    /// The module a path (segments after `crate`) lands in: the longest prefix that is a module.
    fn resolve(&self, from_root: &[String]) -> ModPath {
        let mut module = Vec::new();
        for seg in from_root {
            let mut next = module.clone();
            next.push(seg.clone());
            if self.modules.contains_key(&next) {
                module = next;
            } else {
                if module.is_empty()
                    && let Some(target) = self.reexports.get(seg)
                {
                    return target.clone();
                }
                break;
            }
        }
        module
    }
}

/// Finds the modules declared by `file` (module `path`), recursively.
fn collect(src: &Path, file: &Path, path: ModPath, out: &mut BTreeMap<ModPath, PathBuf>) {
    out.insert(path.clone(), file.to_owned());
    let text = code_of(&std::fs::read_to_string(file).unwrap());
    let dir = if path.is_empty() {
        src.to_owned()
    } else {
        src.join(path.join("/"))
    };
    for name in declared_modules(&text) {
        let mut child = path.clone();
        child.push(name.clone());
        for candidate in [
            dir.join(format!("{name}.rs")),
            dir.join(&name).join("mod.rs"),
        ] {
            if candidate.exists() {
                collect(src, &candidate, child.clone(), out);
                break;
            }
        }
    }
}

/// `mod x;` / `pub mod x;` declarations (not inline `mod x { … }`).
fn declared_modules(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

/// The code of a file without comments, string contents and its test module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            break;
        }
        let code = match t.find("//") {
            Some(i) => &t[..i],
            None => t,
        };
        // Drop string literals roughly (paths in strings are not references).
        let mut in_str = false;
        let mut prev = ' ';
        for c in code.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Every path in `code` starting with one of `heads`, with brace groups expanded:
/// `crate::{a::b, c}` gives `[crate, a, b]` and `[crate, c]`.
fn paths(code: &str, heads: &[&str]) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0
            || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == ':');
        if boundary {
            for head in heads {
                let pat: Vec<char> = format!("{head}::").chars().collect();
                if chars[i..].starts_with(&pat) {
                    let mut end = i + pat.len();
                    let tail = read_tree(&chars, &mut end);
                    for t in tail {
                        let mut p = vec![head.to_string()];
                        p.extend(t);
                        out.push(p);
                    }
                    i = end;
                    break;
                }
            }
        }
        i += 1;
    }
    out
}

/// Reads `a::b::{c, d::e}` from `pos` into its paths.
fn read_tree(chars: &[char], pos: &mut usize) -> Vec<Vec<String>> {
    let mut prefix = Vec::new();
    loop {
        while *pos < chars.len() && chars[*pos].is_whitespace() {
            *pos += 1;
        }
        if *pos < chars.len() && chars[*pos] == '{' {
            *pos += 1;
            let mut out = Vec::new();
            loop {
                let sub = read_tree(chars, pos);
                for s in sub {
                    let mut p = prefix.clone();
                    p.extend(s);
                    out.push(p);
                }
                while *pos < chars.len() && chars[*pos].is_whitespace() {
                    *pos += 1;
                }
                match chars.get(*pos) {
                    Some(',') => *pos += 1,
                    Some('}') => {
                        *pos += 1;
                        return out;
                    }
                    _ => return out,
                }
                while *pos < chars.len() && chars[*pos].is_whitespace() {
                    *pos += 1;
                }
                if chars.get(*pos) == Some(&'}') {
                    *pos += 1;
                    return out;
                }
            }
        }
        let start = *pos;
        while *pos < chars.len() && (chars[*pos].is_alphanumeric() || chars[*pos] == '_') {
            *pos += 1;
        }
        if start == *pos {
            return vec![prefix];
        }
        prefix.push(chars[start..*pos].iter().collect());
        if chars[*pos..].starts_with(&[':', ':']) {
            *pos += 2;
        } else {
            return vec![prefix];
        }
    }
}

/// The edges between the modules of one crate.
fn edges(krate: &Crate) -> BTreeSet<(ModPath, ModPath)> {
    let mut out = BTreeSet::new();
    for (module, file) in &krate.modules {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let children = declared_modules(&code);
        let mut heads = vec!["crate", "super", "self"];
        heads.extend(children.iter().map(String::as_str));
        for p in paths(&code, &heads) {
            let absolute: Vec<String> = match p[0].as_str() {
                "crate" => p[1..].to_vec(),
                "self" => module.iter().chain(&p[1..]).cloned().collect(),
                "super" => {
                    let mut base = module.clone();
                    let mut rest = &p[..];
                    while rest.first().is_some_and(|s| s == "super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.into_iter().chain(rest.iter().cloned()).collect()
                }
                _ => module.iter().chain(&p).cloned().collect(),
            };
            let target = krate.resolve(&absolute);
            // The crate root is the composition root (see the module docs).
            if target.is_empty() || &target == module {
                continue;
            }
            out.insert((module.clone(), target));
        }
    }
    out
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(edges: &BTreeSet<(ModPath, ModPath)>) -> Vec<Vec<ModPath>> {
    let nodes: BTreeSet<&ModPath> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let nodes: Vec<&ModPath> = nodes.into_iter().collect();
    let index_of: BTreeMap<&ModPath, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut adj = vec![Vec::new(); nodes.len()];
    for (a, b) in edges {
        adj[index_of[a]].push(index_of[b]);
    }
    struct T<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on_stack[v] = true;
        for &w in &t.adj[v].clone() {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on_stack[w] => t.low[v] = t.low[v].min(iw),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        adj: &adj,
        index: vec![None; nodes.len()],
        low: vec![0; nodes.len()],
        on_stack: vec![false; nodes.len()],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..nodes.len() {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.out
        .into_iter()
        .map(|c| c.into_iter().map(|i| nodes[i].clone()).collect())
        .collect()
}

#[test]
fn no_module_imports_its_importer() {
    let crates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut found = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(crates_dir).unwrap() {
        let src = entry.unwrap().path().join("src");
        let Some(krate) = Crate::load(&src) else {
            continue;
        };
        checked += krate.modules.len();
        let edges = edges(&krate);
        if std::env::var_os("MODULE_GRAPH_PRINT").is_some() {
            for (a, b) in &edges {
                let name = |m: &ModPath| {
                    if m.is_empty() {
                        "crate".to_owned()
                    } else {
                        m.join("::")
                    }
                };
                println!("{}: {} -> {}", src.display(), name(a), name(b));
            }
        }
        for circle in circles(&edges) {
            let names: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
            let why: Vec<String> = edges
                .iter()
                .filter(|(a, b)| circle.contains(a) && circle.contains(b))
                .map(|(a, b)| format!("  {} -> {}", a.join("::"), b.join("::")))
                .collect();
            found.push(format!(
                "{}: [{}]\n{}",
                krate.src.display(),
                names.join(", "),
                why.join("\n")
            ));
        }
    }
    assert!(
        checked > 50,
        "found only {checked} modules: is the layout still crates/*/src?"
    );
    assert!(
        found.is_empty(),
        "modules importing each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_sees_braces_and_parents() {
    let p = paths(
        "use crate::{a::b, c::{d, e}};\nlet x = super::f::g();",
        &["crate", "super"],
    );
    let want: Vec<Vec<String>> = [
        vec!["crate", "a", "b"],
        vec!["crate", "c", "d"],
        vec!["crate", "c", "e"],
        vec!["super", "f", "g"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(p, want);
    let e: BTreeSet<(ModPath, ModPath)> = [
        (vec!["a".to_string()], vec!["b".to_string()]),
        (vec!["b".to_string()], vec!["a".to_string()]),
    ]
    .into_iter()
    .collect();
    assert_eq!(circles(&e).len(), 1);
}
