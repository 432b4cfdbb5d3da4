//! Proves that no module of `src/` imports one that imports it back, and that top-level modules only use lower layers.
//!
//! The check reads the source text, not the compiler's view: it sees every path spelled from a root (`crate::`,
//! `super::`, `self::`, and `vxmesh::` in the binary), grouped `use` trees included. A reference counts for the
//! deepest module that is a file of its own, so `crate::plan::NodePlan` is an edge to `plan`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom layer up: a module may use its own layer and earlier ones, never a later one.
const LAYERS: [&str; 12] = [
    "error",
    "model",
    "shell",
    "plan",
    "facts",
    "components",
    "converge",
    "remote",
    "verify",
    "commands",
    "report",
    "lab",
];

/// The error type is shared by everything, whatever its layer.
const USED_BY_ALL: &str = "error";

/// The lab builds test hosts; it must not depend on how vxmesh plans or converges them, or tests would prove little.
const LAB: &str = "lab";
const LAB_MAY_USE: [&str; 2] = ["model", "error"];

/// Name given to the library's root (src/lib.rs).
const LIB_ROOT: &str = "crate";
/// Name given to the binary's root (src/main.rs); its modules are `bin::cli` etc. It sits above every layer.
const BIN_ROOT: &str = "bin";

/// Cycles printed at most: a tangled tree can have very many, and the first ones are enough to start untangling.
const MAX_CYCLES: usize = 200;

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let (_, graph) = module_graph();
    let (cycles, complete) = find_cycles(&graph);
    let mut report = String::new();
    for cycle in &cycles {
        report += &describe_cycle(&graph, cycle);
    }
    if !complete {
        report += &format!("... and more: only the first {MAX_CYCLES} cycles are shown\n");
    }
    assert!(cycles.is_empty(), "{} import cycle(s) between modules of src/:\n\n{report}", cycles.len());
}

#[test]
fn layers_point_one_way() {
    let (files, graph) = module_graph();
    let mut problems = Vec::new();

    // Every top-level module needs a place, or its references could not be checked at all.
    let unplaced: BTreeSet<&str> = files
        .iter()
        .filter(|f| f.module != LIB_ROOT)
        .map(|f| top_level(&f.module))
        .filter(|top| place(top) == Place::Unplaced)
        .collect();
    for module in unplaced {
        problems.push(format!("module {module} is not placed in a layer"));
    }

    for (from, targets) in &graph {
        for (to, sites) in targets {
            if let Some(why) = layer_violation(top_level(from), top_level(to)) {
                problems.push(format!("{from} -> {to}: {why}, at {}", Sites(sites)));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "the layering of src/ is broken (layers from the bottom: {}):\n{}\n",
        LAYERS.join(", "),
        problems.join("\n")
    );
}

// ---- Layers -------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    /// Index in [`LAYERS`].
    Layer(usize),
    /// The binary: above everything, may use anything.
    Binary,
    Unplaced,
}

fn place(top: &str) -> Place {
    if top == BIN_ROOT {
        return Place::Binary;
    }
    LAYERS.iter().position(|&layer| layer == top).map_or(Place::Unplaced, Place::Layer)
}

/// Why a reference between two top-level modules breaks the layering, if it does.
fn layer_violation(from: &str, to: &str) -> Option<String> {
    if from == to || to == USED_BY_ALL {
        return None;
    }
    match (place(from), place(to)) {
        // Unplaced modules are reported on their own; their references cannot be judged until they have a place.
        (Place::Unplaced, _) | (_, Place::Unplaced) | (Place::Binary, _) => None,
        (Place::Layer(_), Place::Binary) => Some("the library must not use the binary".to_string()),
        _ if from == LAB && !LAB_MAY_USE.contains(&to) => {
            Some(format!("{LAB} may only use {}", LAB_MAY_USE.join(" and ")))
        }
        (Place::Layer(a), Place::Layer(b)) if a < b => Some(format!("layer {from} is below layer {to}")),
        _ => None,
    }
}

/// The first segment of a module name: `components` for `components::ovs`, `bin` for `bin::cli`.
fn top_level(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

// ---- Cycles -------------------------------------------------------------------------------------------------------

/// Every elementary cycle of the graph (up to [`MAX_CYCLES`]), each starting at its smallest module so it is found
/// once; and whether the list is complete.
fn find_cycles(graph: &Graph) -> (Vec<Vec<String>>, bool) {
    let mut found = Vec::new();
    for start in graph.keys() {
        // Only modules after `start` that lead back to it can be on a cycle rooted at `start`: pruning the others
        // keeps the search from wandering down dead ends.
        let allowed = leading_back_to(graph, start);
        let mut path = vec![start.clone()];
        if !extend_cycles(graph, &allowed, &mut path, &mut found) {
            return (found, false);
        }
    }
    (found, true)
}

/// Modules greater than `start` from which `start` can be reached through modules greater than `start`.
fn leading_back_to(graph: &Graph, start: &str) -> BTreeSet<String> {
    let mut reached = BTreeSet::new();
    let mut todo = vec![start.to_string()];
    while let Some(target) = todo.pop() {
        for (from, targets) in graph {
            if from.as_str() > start && targets.contains_key(&target) && reached.insert(from.clone()) {
                todo.push(from.clone());
            }
        }
    }
    reached
}

/// Depth-first search for cycles through `path`; false once [`MAX_CYCLES`] are found.
fn extend_cycles(
    graph: &Graph,
    allowed: &BTreeSet<String>,
    path: &mut Vec<String>,
    found: &mut Vec<Vec<String>>,
) -> bool {
    let last = path.last().expect("the path starts with its module").clone();
    for next in graph.get(&last).into_iter().flat_map(BTreeMap::keys) {
        if *next == path[0] {
            if found.len() == MAX_CYCLES {
                return false;
            }
            found.push(path.clone());
        } else if allowed.contains(next) && !path.contains(next) {
            path.push(next.clone());
            let more = extend_cycles(graph, allowed, path, found);
            path.pop();
            if !more {
                return false;
            }
        }
    }
    true
}

/// `a -> b -> a`, then each edge with where it is written, so the developer knows which lines to change.
fn describe_cycle(graph: &Graph, cycle: &[String]) -> String {
    let mut closed = cycle.to_vec();
    closed.push(cycle[0].clone());
    let mut text = format!("{}\n", closed.join(" -> "));
    for edge in closed.windows(2) {
        let sites = &graph[&edge[0]][&edge[1]];
        text += &format!("    {} -> {}  at {}\n", edge[0], edge[1], Sites(sites));
    }
    text + "\n"
}

// ---- The module graph ---------------------------------------------------------------------------------------------

/// Module -> module it references -> every place the reference is written.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<Site>>>;

/// Where a reference is written, as `src/a/b.rs:12`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Site {
    file: String,
    line: usize,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A list of sites, comma-separated.
struct Sites<'a>(&'a BTreeSet<Site>);

impl fmt::Display for Sites<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(Site::to_string).collect();
        f.write_str(&all.join(", "))
    }
}

/// Which crate a file belongs to: `crate::` means the library in one and the binary in the other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Root {
    Lib,
    Bin,
}

/// One source file and the module it defines.
struct SourceFile {
    path: PathBuf,
    /// For messages: `src/a/b.rs`.
    shown: String,
    root: Root,
    /// The module path below its root: `["a", "b"]` for src/a/b.rs, empty for src/lib.rs and src/main.rs.
    segments: Vec<String>,
    /// The module's name in the graph: `a::b`, `crate`, `bin`, `bin::cli`.
    module: String,
}

fn module_name(root: Root, segments: &[String]) -> String {
    match (root, segments.is_empty()) {
        (Root::Lib, true) => LIB_ROOT.to_string(),
        (Root::Lib, false) => segments.join("::"),
        (Root::Bin, true) => BIN_ROOT.to_string(),
        (Root::Bin, false) => format!("{BIN_ROOT}::{}", segments.join("::")),
    }
}

/// The files of `src/` and the references between their modules.
fn module_graph() -> (Vec<SourceFile>, Graph) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // A path from the binary to the library starts with the package name, with `-` spelled `_`.
    let package = env!("CARGO_PKG_NAME").replace('-', "_");
    let files = source_files(&src);
    assert!(files.iter().any(|f| f.module == LIB_ROOT), "no src/lib.rs under {}", src.display());
    let modules: BTreeSet<&str> = files.iter().map(|f| f.module.as_str()).collect();

    let mut graph = Graph::new();
    for file in &files {
        let text = std::fs::read_to_string(&file.path).unwrap_or_else(|e| panic!("{}: {e}", file.shown));
        for (path, inline) in written_paths(&text, &package) {
            let Some(target) = resolve(&path, file, &inline, &package, &modules) else { continue };
            if target == file.module {
                continue;
            }
            let site = Site { file: file.shown.clone(), line: path.line };
            graph.entry(file.module.clone()).or_default().entry(target).or_default().insert(site);
        }
    }
    (files, graph)
}

/// Every .rs file under `src`, with its module: src/a.rs and src/a/mod.rs are `a`, src/a/b.rs is `a::b`.
/// Files of modules that src/main.rs declares belong to the binary.
fn source_files(src: &Path) -> Vec<SourceFile> {
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap_or_default();
    let binary_modules = declared_modules(&main);
    let mut paths = Vec::new();
    collect_rs_files(src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(src).expect("found under src");
            let shown = format!("src/{}", relative.to_string_lossy());
            let mut segments: Vec<String> =
                relative.with_extension("").iter().map(|part| part.to_string_lossy().into_owned()).collect();
            let root =
                if segments == ["main"] || binary_modules.contains(&segments[0]) { Root::Bin } else { Root::Lib };
            if segments == ["lib"] || segments == ["main"] || segments.last().is_some_and(|last| last == "mod") {
                segments.pop();
            }
            let module = module_name(root, &segments);
            SourceFile { path, shown, root, segments, module }
        })
        .collect()
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            collect_rs_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Names of the out-of-line modules a file declares: `mod cli;`, `pub mod x;`.
fn declared_modules(text: &str) -> BTreeSet<String> {
    let tokens = tokenize(&code_only(text));
    tokens
        .windows(3)
        .filter_map(|w| match (&w[0].tok, &w[1].tok, &w[2].tok) {
            (Tok::Ident(m), Tok::Ident(name), Tok::Punct(';')) if m == "mod" => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The module a written path lands in: the deepest prefix of it that is a file of its crate. `None` when that is a
/// crate root (nothing to layer there) or the path climbs above one.
fn resolve(
    path: &WrittenPath,
    file: &SourceFile,
    inline: &[String],
    package: &str,
    modules: &BTreeSet<&str>,
) -> Option<String> {
    // Where `self` is: the file's module, plus any inline `mod x { }` the path sits in.
    let mut here: Vec<String> = file.segments.iter().chain(inline).cloned().collect();
    let (first, rest) = path.segments.split_first()?;
    let root = match first.as_str() {
        "crate" => {
            here.clear();
            file.root
        }
        "self" => file.root,
        "super" => {
            here.pop()?;
            file.root
        }
        name if name == package => {
            here.clear();
            Root::Lib
        }
        _ => return None,
    };
    for segment in rest {
        match segment.as_str() {
            "super" => {
                here.pop()?;
            }
            // `c::{self, D}`: `self` names the module before it.
            "self" => break,
            name => here.push(name.to_string()),
        }
    }
    (1..=here.len()).rev().map(|n| module_name(root, &here[..n])).find(|name| modules.contains(name.as_str()))
}

// ---- Reading paths out of source ----------------------------------------------------------------------------------

/// A path as written, from its first segment (`crate`, `super`, `self` or the package), with groups expanded:
/// `crate::{a::B, c::{self, D}}` gives `crate::a::B`, `crate::c::self` and `crate::c::D`.
#[derive(Debug, PartialEq)]
struct WrittenPath {
    segments: Vec<String>,
    /// The line of its last segment, which for a multi-line group is the line of that item.
    line: usize,
}

/// Every path in `text` that starts at a root, with the inline modules it is written in.
fn written_paths(text: &str, package: &str) -> Vec<(WrittenPath, Vec<String>)> {
    let tokens = tokenize(&code_only(text));
    let scopes = inline_modules(&tokens);
    let is_root = |word: &str| matches!(word, "crate" | "super" | "self") || word == package;
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        // A root is a path's start only if no `::` comes before it (`super::super` is one path, read from the first).
        let starts_path = matches!(&tokens[i].tok, Tok::Ident(word) if is_root(word))
            && tokens.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep)
            && (i == 0 || tokens[i - 1].tok != Tok::PathSep);
        if !starts_path {
            i += 1;
            continue;
        }
        let mut paths = Vec::new();
        let next = use_tree(&tokens, i, &[], &mut paths);
        found.extend(paths.into_iter().map(|p| (p, scopes[i].clone())));
        i = next.max(i + 1);
    }
    found
}

/// Reads one path or use tree starting at `tokens[i]` below `prefix`; returns the index just after it.
fn use_tree(tokens: &[Token], i: usize, prefix: &[String], out: &mut Vec<WrittenPath>) -> usize {
    let Some(token) = tokens.get(i) else { return i };
    match &token.tok {
        Tok::Ident(word) => {
            let mut segments = prefix.to_vec();
            segments.push(word.clone());
            // Only `::` followed by a name, a group or a glob goes on; `::<T>` ends the path.
            let goes_on = tokens.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep)
                && tokens.get(i + 2).is_some_and(|t| matches!(t.tok, Tok::Ident(_) | Tok::Punct('{' | '*')));
            if goes_on {
                use_tree(tokens, i + 2, &segments, out)
            } else {
                out.push(WrittenPath { segments, line: token.line });
                i + 1
            }
        }
        Tok::Punct('{') => use_group(tokens, i, prefix, out),
        // A glob names the module before it.
        Tok::Punct('*') => {
            out.push(WrittenPath { segments: prefix.to_vec(), line: token.line });
            i + 1
        }
        _ => i,
    }
}

/// Reads the `{ ... }` group opening at `tokens[open]`; returns the index after its `}`.
fn use_group(tokens: &[Token], open: usize, prefix: &[String], out: &mut Vec<WrittenPath>) -> usize {
    let mut i = open + 1;
    loop {
        match tokens.get(i).map(|t| &t.tok) {
            None => return i,
            Some(Tok::Punct('}')) => return i + 1,
            Some(Tok::Punct(',')) => i += 1,
            Some(_) => {
                let next = use_tree(tokens, i, prefix, out).max(i + 1);
                i = end_of_item(tokens, next);
            }
        }
    }
}

/// Skips what follows a group item up to its `,` or the group's `}`: a rename such as `as Other`.
fn end_of_item(tokens: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(token) = tokens.get(i) {
        match token.tok {
            Tok::Punct(',') | Tok::Punct('}') if depth == 0 => return i,
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// For each token, the inline modules (`mod tests { ... }`) around it, outermost first: `super::` inside one means
/// the file's own module, not its parent.
fn inline_modules(tokens: &[Token]) -> Vec<Vec<String>> {
    let mut open: Vec<(String, usize)> = Vec::new(); // name, brace depth inside it
    let mut depth = 0usize;
    let mut scopes = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        scopes.push(open.iter().map(|(name, _)| name.clone()).collect());
        match token.tok {
            Tok::Punct('{') => {
                depth += 1;
                if let [.., before, Token { tok: Tok::Ident(name), .. }] = &tokens[..i]
                    && matches!(&before.tok, Tok::Ident(word) if word == "mod")
                {
                    open.push((name.clone(), depth));
                }
            }
            Tok::Punct('}') => {
                if open.last().is_some_and(|&(_, d)| d == depth) {
                    open.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    scopes
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Number,
    Punct(char),
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Splits code (already stripped of comments and literals) into the few kinds of tokens paths are made of.
fn tokenize(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if is_word_char(c) {
            let end = word_end(&chars, i);
            let tok = if c.is_ascii_digit() { Tok::Number } else { Tok::Ident(chars[i..end].iter().collect()) };
            tokens.push(Token { tok, line });
            i = end;
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(Token { tok: Tok::PathSep, line });
            i += 2;
        } else {
            tokens.push(Token { tok: Tok::Punct(c), line });
            i += 1;
        }
    }
    tokens
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn word_end(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|&c| is_word_char(c)) {
        i += 1;
    }
    i
}

/// The source with comments and string and char literals blanked to spaces. Line breaks stay, so line numbers hold.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, part: &[char]| out.extend(part.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let skip_to = if c == '/' && next == Some('/') {
            Some(chars[i..].iter().position(|&ch| ch == '\n').map_or(chars.len(), |n| i + n))
        } else if c == '/' && next == Some('*') {
            Some(block_comment_end(&chars, i))
        } else if c == '"' {
            Some(string_end(&chars, i))
        } else if c == '\'' {
            char_literal_end(&chars, i)
        } else if is_word_char(c) {
            // A whole word, so `r"..."` and `br#"..."#` are seen only where a word starts.
            let end = word_end(&chars, i);
            let word: String = chars[i..end].iter().collect();
            match raw_string_end(&chars, end) {
                Some(raw_end) if matches!(word.as_str(), "r" | "br" | "cr") => Some(raw_end),
                _ => {
                    out.push_str(&word);
                    i = end;
                    continue;
                }
            }
        } else {
            None
        };
        match skip_to {
            Some(end) => {
                blank(&mut out, &chars[i..end]);
                i = end;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// End of the (possibly nested) `/* */` comment opening at `i`.
fn block_comment_end(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('/', Some('*')) => {
                depth += 1;
                i += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// End of the `"..."` literal opening at `i`, escapes included; it may span lines.
fn string_end(chars: &[char], mut i: usize) -> usize {
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// End of the raw string whose `#`s or `"` start at `i` (just after its `r`), if one starts there.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    if chars.get(i + hashes) != Some(&'"') {
        return None;
    }
    let mut j = i + hashes + 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// End of the char literal opening at `i` (`'x'`, `'"'`, `'\''`, `'\u{7f}'`), or `None` for a lifetime or label.
fn char_literal_end(chars: &[char], i: usize) -> Option<usize> {
    if chars.get(i + 1) == Some(&'\\') {
        let close = chars.get(i + 3..)?.iter().position(|&c| c == '\'')?;
        return Some(i + 3 + close + 1);
    }
    (chars.get(i + 2) == Some(&'\'')).then_some(i + 3)
}
