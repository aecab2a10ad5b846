//! `cargo xtask cycles` (and a step of `cargo xtask test`): no module imports
//! another that imports it back, in any crate of the workspace.
//!
//! A module is a file (`a.rs`, `a/mod.rs`, a crate's `lib.rs` or `main.rs`).
//! It imports another when a `use` or a path in its code (outside its
//! `#[cfg(test)] mod tests`) names that module or an item in it; an item a
//! module only re-exports counts as the module it comes from, so a `lib.rs`
//! that is a table of contents (`mod` and `pub use` lines) imports its
//! children without its children importing it. The scan is lexical (no
//! macro expansion, no type resolution), which is enough for how this
//! workspace writes paths.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The directories that hold crates; `target` and the guests' own
/// workspaces are not scanned.
const SCANNED: [&str; 7] = [
    "crates",
    "brokers",
    "testkit",
    "tests",
    "bench",
    "xtask",
    "guest-sdk/rust",
];

/// A module's path inside its crate: `[]` for the root, `["store", "backend"]`.
type ModPath = Vec<String>;

/// `cycles`: prints every pair of modules that import each other, and fails
/// if there is one.
pub(crate) fn check(root: &Path) -> anyhow::Result<()> {
    let mut found = Vec::new();
    for crate_root in crate_roots(root)? {
        for (a, b) in cycles_in(&crate_root)? {
            let shown = crate_root.strip_prefix(root).unwrap_or(&crate_root);
            found.push(format!(
                "{}: {} <-> {}",
                shown.display(),
                name(&a),
                name(&b)
            ));
        }
    }
    if found.is_empty() {
        println!("    no module imports one that imports it back");
        return Ok(());
    }
    for line in &found {
        println!("    {line}");
    }
    bail!(
        "{} pair(s) of modules import each other: move what both need into a module of its own",
        found.len()
    )
}

fn name(path: &ModPath) -> String {
    if path.is_empty() {
        "(crate root)".into()
    } else {
        path.join("::")
    }
}

/// Every directory that holds a crate root (`lib.rs` or `main.rs`).
fn crate_roots(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut roots = Vec::new();
    for dir in SCANNED {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files)?;
        for file in files {
            let stem = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if (stem == "lib.rs" || stem == "main.rs")
                && let Some(parent) = file.parent()
            {
                roots.push(parent.to_path_buf());
            }
        }
    }
    roots.sort();
    roots.dedup();
    Ok(roots)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The modules of the crate rooted at `dir`: its files, less those under a
/// subdirectory that is a crate root of its own (a `src/bin/NAME/main.rs`).
fn modules_of(dir: &Path) -> anyhow::Result<HashMap<ModPath, String>> {
    let mut files = Vec::new();
    rust_files(dir, &mut files)?;
    let mut modules = HashMap::new();
    for file in files {
        let rel = file.strip_prefix(dir).unwrap_or(&file);
        let nested_root = rel.ancestors().skip(1).any(|a| {
            !a.as_os_str().is_empty()
                && (dir.join(a).join("main.rs").exists() || dir.join(a).join("lib.rs").exists())
        });
        if nested_root {
            continue;
        }
        let mut path: ModPath = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if path
            .last()
            .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
        {
            path.pop();
        }
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        // `#[path = "../x.rs"] mod x;`: a module whose file lives elsewhere.
        for (name, relative) in path_modules(&text) {
            let Some(found) = file.parent().map(|d| d.join(&relative)) else {
                continue;
            };
            if let Ok(included) = fs::read_to_string(&found) {
                let mut child = path.clone();
                child.push(name);
                modules.insert(child, included);
            }
        }
        modules.insert(path, text);
    }
    Ok(modules)
}

/// The `#[path = "FILE"] mod NAME;` declarations of a file: (NAME, FILE).
fn path_modules(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[path = \"") {
        rest = &rest[at + "#[path = \"".len()..];
        let Some(end) = rest.find('"') else { break };
        let file = rest[..end].to_owned();
        let after = rest[end..].trim_start_matches(['"', ']']).trim_start();
        let after = after.strip_prefix("pub(crate) ").unwrap_or(after);
        if let Some(decl) = after.strip_prefix("mod ") {
            let name: String = decl
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((name, file));
            }
        }
    }
    found
}

/// The pairs of modules of one crate that import each other.
fn cycles_in(dir: &Path) -> anyhow::Result<BTreeSet<(ModPath, ModPath)>> {
    let modules = modules_of(dir)?;
    let mut uses: HashMap<ModPath, Vec<Vec<String>>> = HashMap::new();
    let mut paths: HashMap<ModPath, Vec<Vec<String>>> = HashMap::new();
    for (module, text) in &modules {
        let tokens = tokenize(without_tests(text));
        let (u, p) = references(&tokens);
        uses.insert(module.clone(), u);
        paths.insert(module.clone(), p);
    }
    // What each module brings in by name with `use`.
    let aliases: HashMap<ModPath, HashMap<String, Vec<String>>> = uses
        .iter()
        .map(|(module, list)| {
            let names = list
                .iter()
                .filter_map(|p| Some((p.last()?.clone(), p.clone())))
                .collect();
            (module.clone(), names)
        })
        .collect();
    let resolver = Resolver {
        modules: modules.keys().cloned().collect(),
        aliases,
    };
    let mut edges = HashSet::new();
    for (module, list) in &uses {
        for path in list {
            let Some(target) = resolver.resolve(module, path, 0) else {
                continue;
            };
            // `use crate::store;` only names a module for the paths below it,
            // which count on their own.
            let names_a_module = target.last() == path.last() && !target.is_empty();
            if &target != module && !names_a_module {
                edges.insert((module.clone(), target));
            }
        }
    }
    for (module, list) in &paths {
        for path in list {
            if let Some(target) = resolver.resolve(module, path, 0)
                && &target != module
            {
                edges.insert((module.clone(), target));
            }
        }
    }
    Ok(edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .cloned()
        .collect())
}

struct Resolver {
    modules: HashSet<ModPath>,
    aliases: HashMap<ModPath, HashMap<String, Vec<String>>>,
}

impl Resolver {
    /// The module `path`, written in `module`, leads to: the deepest module
    /// it names, following re-exports; `None` for paths outside the crate.
    fn resolve(&self, module: &ModPath, path: &[String], depth: usize) -> Option<ModPath> {
        let (mut base, rest): (ModPath, &[String]) = match path.first()?.as_str() {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (module.clone(), &path[1..]),
            "super" => {
                let mut base = module.clone();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            first => {
                let mut child = module.clone();
                child.push(first.to_owned());
                if self.modules.contains(&child) {
                    (module.clone(), path)
                } else {
                    // A name `use` brought in: `use crate::store;` then `store::Store`.
                    let source = self.aliases.get(module).and_then(|a| a.get(first))?;
                    if depth >= 4 || path.len() < 2 {
                        return None;
                    }
                    let mut full = source.clone();
                    full.extend_from_slice(&path[1..]);
                    return self.resolve(module, &full, depth + 1);
                }
            }
        };
        for segment in rest {
            let mut child = base.clone();
            child.push(segment.clone());
            if self.modules.contains(&child) {
                base = child;
                continue;
            }
            if depth < 4
                && let Some(source) = self.aliases.get(&base).and_then(|a| a.get(segment))
                && let Some(found) = self.resolve(&base, source, depth + 1)
            {
                return Some(found);
            }
            break;
        }
        Some(base)
    }
}

/// The text before the file's `#[cfg(test)]` module: tests may import what
/// they test.
fn without_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let start = from + at;
        let after = text[start + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod ") || after.starts_with("pub(crate) mod ") {
            return &text[..start];
        }
        from = start + 1;
    }
    text
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Other,
}

/// Identifiers, `::`, braces, commas and semicolons of Rust source; comments
/// and string and character literals are skipped.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '"' => i = skip_string(&chars, i + 1),
            'r' | 'b' if is_raw_string(&chars, i) => i = skip_raw_string(&chars, i),
            'b' if next == Some('"') => i = skip_string(&chars, i + 2),
            '\'' => {
                // A character literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
                if next == Some('\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                    tokens.push(Token::Other);
                }
            }
            ':' if next == Some(':') => {
                tokens.push(Token::PathSep);
                i += 2;
            }
            '{' => {
                tokens.push(Token::Open);
                i += 1;
            }
            '}' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ';' => {
                tokens.push(Token::Semi);
                i += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                tokens.push(Token::Other);
                i += 1;
            }
        }
    }
    tokens
}

fn skip_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '"' {
        if chars[i] == '\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn is_raw_string(chars: &[char], i: usize) -> bool {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return false;
    }
    j += 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    // Not part of an identifier such as `bar` or `r#type`.
    chars.get(j) == Some(&'"')
        && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
}

fn skip_raw_string(chars: &[char], mut i: usize) -> usize {
    if chars[i] == 'b' {
        i += 1;
    }
    i += 1;
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// The paths of `use` declarations (braces expanded) and the other paths
/// (`a::b::c`) of a token stream.
fn references(tokens: &[Token]) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut uses = Vec::new();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Token::Ident("use".into()) {
            let end = tokens[i..]
                .iter()
                .position(|t| *t == Token::Semi)
                .map_or(tokens.len(), |p| i + p);
            expand_use(&tokens[i + 1..end], &[], &mut uses);
            i = end + 1;
            continue;
        }
        let starts_path = matches!(tokens[i], Token::Ident(_))
            && tokens.get(i + 1) == Some(&Token::PathSep)
            && (i == 0 || tokens[i - 1] != Token::PathSep);
        if starts_path {
            let mut path = Vec::new();
            while let Some(Token::Ident(segment)) = tokens.get(i) {
                path.push(segment.clone());
                if tokens.get(i + 1) == Some(&Token::PathSep) {
                    i += 2;
                } else {
                    break;
                }
            }
            paths.push(path);
        }
        i += 1;
    }
    (uses, paths)
}

/// Expands one use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand_use(tokens: &[Token], prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut i = 0;
    let mut path = prefix.to_vec();
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if word == "as" => {
                // `x as y`: the path is x's; skip the new name.
                i += 2;
                continue;
            }
            Token::Ident(word) if word == "self" && !path.is_empty() => {}
            Token::Ident(word) => path.push(word.clone()),
            Token::Open => {
                let close = matching_close(tokens, i);
                for group in split_top_level(&tokens[i + 1..close]) {
                    expand_use(group, &path, out);
                }
                return;
            }
            _ => {}
        }
        i += 1;
    }
    if path.len() > prefix.len() || !path.is_empty() {
        out.push(path);
    }
}

fn matching_close(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

fn split_top_level(tokens: &[Token]) -> Vec<&[Token]> {
    let mut groups = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Open => depth += 1,
            Token::Close => depth -= 1,
            Token::Comma if depth == 0 => {
                groups.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < tokens.len() {
        groups.push(&tokens[start..]);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_with(files: &[(&str, &str)]) -> tempfile_free::Dir {
        let dir = tempfile_free::Dir::new();
        for (name, text) in files {
            let path = dir.0.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    /// A throwaway directory without the tempfile crate (xtask keeps its
    /// dependencies few).
    mod tempfile_free {
        pub(super) struct Dir(pub(super) std::path::PathBuf);
        impl Dir {
            pub(super) fn new() -> Self {
                let path = std::env::temp_dir().join(format!(
                    "xtask-cycles-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = std::fs::remove_dir_all(&path);
                std::fs::create_dir_all(&path).unwrap();
                Self(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn pairs(dir: &Path) -> Vec<String> {
        cycles_in(dir)
            .unwrap()
            .into_iter()
            .map(|(a, b)| format!("{} <-> {}", name(&a), name(&b)))
            .collect()
    }

    #[test]
    fn a_root_that_defines_what_its_child_uses_is_a_cycle() {
        let dir = crate_with(&[
            ("lib.rs", "mod run;\npub use run::go;\npub struct Engine;\n"),
            ("run.rs", "use crate::Engine;\npub fn go(_: &Engine) {}\n"),
        ]);
        assert_eq!(pairs(&dir.0), ["(crate root) <-> run"]);
    }

    #[test]
    fn a_root_that_only_re_exports_is_not() {
        let dir = crate_with(&[
            (
                "lib.rs",
                "mod engine;\nmod run;\npub use engine::Engine;\npub use run::go;\n",
            ),
            ("engine.rs", "pub struct Engine;\n"),
            ("run.rs", "use crate::Engine;\npub fn go(_: &Engine) {}\n"),
        ]);
        assert!(pairs(&dir.0).is_empty(), "{:?}", pairs(&dir.0));
    }

    #[test]
    fn siblings_through_paths_in_code_and_braces_count_and_tests_and_strings_do_not() {
        let dir = crate_with(&[
            ("main.rs", "mod a;\nmod b;\nmod c;\nfn main() {}\n"),
            ("a.rs", "use crate::{b::{self, One}, c};\npub struct Two;\n"),
            (
                "b.rs",
                "pub struct One;\nfn f() -> crate::a::Two { crate::a::Two }\n",
            ),
            (
                "c.rs",
                "const S: &str = \"crate::a::Two\";\n// crate::a::Two\n#[cfg(test)]\nmod tests {\n    use crate::a::Two;\n}\n",
            ),
        ]);
        assert_eq!(pairs(&dir.0), ["a <-> b"]);
    }

    #[test]
    fn super_and_nested_modules_resolve() {
        let dir = crate_with(&[
            ("lib.rs", "pub mod store;\n"),
            (
                "store/mod.rs",
                "mod backend;\npub use backend::Pool;\npub struct Error;\n",
            ),
            ("store/backend.rs", "use super::Error;\npub struct Pool;\n"),
        ]);
        assert_eq!(pairs(&dir.0), ["store <-> store::backend"]);
    }
}
