//! COPY/ADD source selection (BuildKit's `dispatchCopy` + fsutil's `copy.Copy`) and the
//! destination rules.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::gopath::{self, contains_wildcards, go_lossy, go_match};
use crate::matcher::{MatchInfo, Matcher};
use crate::tree::{resolve_in_root, FileKind, Node, SourceTree};
use crate::Error;

/// Options of one COPY/ADD.
#[derive(Debug, Clone)]
pub struct SelectOptions {
    /// `--exclude` patterns, matched against paths relative to each selected source.
    pub excludes: Vec<String>,
    /// `--parents`: keep each source's path relative to the root (or to a `/./` pivot).
    pub parents: bool,
    /// BuildKit's `AllowEmptyWildcard` (true, the default): a wildcard that matches
    /// nothing is not an error, even when nothing else matched. `false` gives the classic
    /// builder's rule: an error ("no source files were specified") only when no source
    /// matched anything.
    pub allow_empty_wildcard: bool,
}

impl Default for SelectOptions {
    fn default() -> Self {
        SelectOptions {
            excludes: Vec::new(),
            parents: false,
            allow_empty_wildcard: true,
        }
    }
}

/// One file to copy.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Where it is on disk (a path with no symlink in it below the tree's root).
    pub source: PathBuf,
    /// Its path relative to the selected source; empty for the source itself.
    pub rel: PathBuf,
    /// Its type (a symlink inside a copied directory stays a symlink).
    pub kind: FileKind,
    /// `lstat` metadata: mode, owner, size.
    pub metadata: crate::tree::Stat,
    /// The target, for a symlink.
    pub link_target: Option<PathBuf>,
}

impl Entry {
    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// One source as resolved: a path named in the instruction or one match of a wildcard.
#[derive(Debug, Clone)]
pub struct SelectedSource {
    /// The source path, cleaned and absolute within the tree, before its final symlink
    /// (if any) was followed, e.g. `/sub/l0`.
    pub path: PathBuf,
    /// Its last component: the name a file gets when it is copied into a directory.
    pub name: OsString,
    /// Whether it is a directory (after following symlinks): then its contents are
    /// copied, not the directory itself.
    pub is_dir: bool,
    /// `entries[0]` is the source itself (`rel` empty); for a directory the rest follows
    /// depth first, sorted by name, each directory before its contents.
    pub entries: Vec<Entry>,
}

/// Everything one COPY/ADD takes from its source tree, in instruction order.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The resolved sources.
    pub sources: Vec<SelectedSource>,
}

/// Resolves the sources of one COPY/ADD in `tree` (the context, or a stage root).
///
/// Each source is cleaned as `filepath.Join("/", src)` (so `..` cannot leave the root),
/// split at its first component holding a wildcard, the literal part resolved with every
/// symlink followed inside the tree, and the rest matched with `filepath.Match` against
/// paths under it (wildcards never cross `/`; a matched directory is not searched
/// further). Each source or match is then resolved with its final symlink followed, all
/// inside the tree. A missing literal source is `"/path" not found`.
pub fn select<S: AsRef<str>>(
    tree: &dyn SourceTree,
    sources: &[S],
    opts: &SelectOptions,
) -> Result<Selection, Error> {
    let excludes = if opts.excludes.is_empty() {
        None
    } else {
        Some(Matcher::new(&opts.excludes)?)
    };
    let mut sel = Selection::default();
    for src in sources {
        let src = src.as_ref();
        if opts.parents {
            select_parents(tree, src, excludes.as_ref(), &mut sel)?;
        } else {
            for (path, rel, node) in resolve_source(tree, src.as_bytes())? {
                sel.sources
                    .push(make_source(tree, path, rel, node, excludes.as_ref())?);
            }
        }
    }
    if sel.sources.is_empty() && !sources.is_empty() && !opts.allow_empty_wildcard {
        return Err(Error::NoSourceFiles);
    }
    Ok(sel)
}

/// A source (which may hold wildcards) → every (written path, resolved path, entry).
fn resolve_source(
    tree: &dyn SourceTree,
    src: &[u8],
) -> Result<Vec<(Vec<u8>, PathBuf, Node)>, Error> {
    let cleaned = gopath::join_root(src);
    let (literal, wild) = split_wildcards(&cleaned);
    if wild.is_empty() {
        return match resolve_in_root(tree, &cleaned, true)? {
            Some((rel, node)) => Ok(vec![(cleaned, rel, node)]),
            None => Err(Error::NotFound(go_lossy(&cleaned).into_owned())),
        };
    }
    let (base_rel, base) = match resolve_in_root(tree, &literal, true)? {
        Some(b) => b,
        None => return Err(Error::NotFound(go_lossy(&literal).into_owned())),
    };
    let mut matches = Vec::new();
    if base.is_dir() {
        let max_depth = if wild.contains(&b'[') {
            usize::MAX
        } else {
            wild.iter().filter(|&&b| b == b'/').count() + 1
        };
        wildcard_walk(
            tree,
            &base_rel,
            Path::new(""),
            1,
            &wild,
            max_depth,
            &mut matches,
        )?;
    }
    let mut out = Vec::new();
    for m in matches {
        let written = gopath::join_root(m.as_os_str().as_bytes());
        match resolve_in_root(tree, &written, true)? {
            Some((rel, node)) => out.push((written, rel, node)),
            None => return Err(Error::NotFound(go_lossy(&written).into_owned())),
        }
    }
    Ok(out)
}

/// fsutil's `splitWildcards`: the components before the first one holding a wildcard,
/// and the rest.
fn split_wildcards(cleaned: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut lit: Vec<&[u8]> = Vec::new();
    let mut wild: Vec<&[u8]> = Vec::new();
    let mut found = false;
    for part in cleaned.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        if !found && contains_wildcards(part) {
            found = true;
        }
        if found {
            wild.push(part);
        } else {
            lit.push(part);
        }
    }
    (gopath::join_root(&lit.join(&b'/')), wild.join(&b'/'))
}

/// `filepath.Walk` under `base` matching `filepath.Match(pattern, relpath)`, in walk
/// order; a matched directory is not entered. `max_depth` bounds the walk when the
/// pattern cannot match names with more components.
fn wildcard_walk(
    tree: &dyn SourceTree,
    base: &Path,
    under: &Path,
    depth: usize,
    pattern: &[u8],
    max_depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let dir = base.join(under);
    for name in tree
        .read_dir(&dir)
        .map_err(|e| Error::io(&tree.disk_path(&dir), e))?
    {
        let rel = under.join(&name);
        let at = base.join(&rel);
        let node = match tree
            .lstat(&at)
            .map_err(|e| Error::io(&tree.disk_path(&at), e))?
        {
            Some(n) => n,
            None => continue,
        };
        if go_match(pattern, rel.as_os_str().as_bytes()) == Ok(true) {
            out.push(base.join(&rel));
            continue;
        }
        if node.is_dir() && depth < max_depth {
            wildcard_walk(tree, base, &rel, depth + 1, pattern, max_depth, out)?;
        }
    }
    Ok(())
}

fn entry(tree: &dyn SourceTree, rel_in_tree: &Path, rel: PathBuf, node: Node) -> Entry {
    Entry {
        source: tree.disk_path(rel_in_tree),
        rel,
        kind: node.kind,
        metadata: node.metadata,
        link_target: node.link_target,
    }
}

fn os_path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

fn base_name(written: &[u8]) -> OsString {
    match written.iter().rposition(|&b| b == b'/') {
        Some(i) if i + 1 < written.len() => OsStr::from_bytes(&written[i + 1..]).to_os_string(),
        _ => OsString::from("/"),
    }
}

fn make_source(
    tree: &dyn SourceTree,
    written: Vec<u8>,
    rel: PathBuf,
    node: Node,
    excludes: Option<&Matcher>,
) -> Result<SelectedSource, Error> {
    let is_dir = node.is_dir();
    let mut entries = Vec::with_capacity(if is_dir { tree.size_hint() + 1 } else { 1 });
    entries.push(entry(tree, &rel, PathBuf::new(), node));
    if is_dir {
        collect(
            tree,
            &rel,
            Path::new(""),
            excludes,
            &MatchInfo::default(),
            &mut entries,
        )?;
        entries.shrink_to_fit();
    }
    Ok(SelectedSource {
        name: base_name(&written),
        path: os_path(&written),
        is_dir,
        entries,
    })
}

/// fsutil's `copier.exclude`: a matched directory is kept when a `!` pattern lies under it.
fn excluded(m: &Matcher, rel: &Path, is_dir: bool, parent: &MatchInfo) -> (bool, MatchInfo) {
    let p = go_lossy(rel.as_os_str().as_bytes());
    let (mut ex, info) = m.matches_using_parent_results(&p, parent);
    if ex && is_dir && m.may_reinclude_under(&p) {
        ex = false;
    }
    (ex, info)
}

/// Everything under directory `dir` of the tree, with `--exclude` applied.
fn collect(
    tree: &dyn SourceTree,
    dir: &Path,
    under: &Path,
    excludes: Option<&Matcher>,
    parent: &MatchInfo,
    out: &mut Vec<Entry>,
) -> Result<(), Error> {
    for name in tree
        .read_dir(dir)
        .map_err(|e| Error::io(&tree.disk_path(dir), e))?
    {
        let child = dir.join(&name);
        let node = match tree
            .lstat(&child)
            .map_err(|e| Error::io(&tree.disk_path(&child), e))?
        {
            Some(n) => n,
            None => continue,
        };
        let rel = under.join(&name);
        let mut info = MatchInfo::default();
        if let Some(m) = excludes {
            let (ex, i) = excluded(m, &rel, node.is_dir(), parent);
            if ex {
                continue;
            }
            info = i;
        }
        let is_dir = node.is_dir();
        out.push(entry(tree, &child, rel.clone(), node));
        if is_dir {
            collect(tree, &child, &rel, excludes, &info, out)?;
        }
    }
    Ok(())
}

/// `COPY --parents`: the part before `/./` (or the root) is the pivot, the rest an
/// include pattern (patternmatcher syntax, so `**` works) matched under it; matches keep
/// their path relative to the pivot and the directories leading to them come along.
fn select_parents(
    tree: &dyn SourceTree,
    src: &str,
    excludes: Option<&Matcher>,
    sel: &mut Selection,
) -> Result<(), Error> {
    let (pivot, pattern) = match src.find("/./") {
        Some(i) => (&src[..i], &src[i + 3..]),
        None => ("/", src),
    };
    let pattern_abs = gopath::clean_str(&format!("/{pattern}"));
    let include = pattern_abs.trim_start_matches('/').to_string();
    let required =
        if !contains_wildcards(pivot.as_bytes()) && !contains_wildcards(pattern_abs.as_bytes()) {
            Some(gopath::clean_str(&format!("{pivot}/{pattern_abs}")))
        } else {
            None
        };
    let inc = Matcher::new(&[include])?;
    for (written, rel, node) in resolve_source(tree, pivot.as_bytes())? {
        if !node.is_dir() {
            sel.sources
                .push(make_source(tree, written, rel, node, excludes)?);
            continue;
        }
        let is_dir = node.is_dir();
        let mut entries = vec![entry(tree, &rel, PathBuf::new(), node)];
        let mut pending = Vec::new();
        let mut walk = IncludeWalk {
            tree,
            inc: &inc,
            excludes,
            out: &mut entries,
            pending: &mut pending,
        };
        walk.run(
            &rel,
            Path::new(""),
            &MatchInfo::default(),
            &MatchInfo::default(),
        )?;
        sel.sources.push(SelectedSource {
            name: base_name(&written),
            path: os_path(&written),
            is_dir,
            entries,
        });
    }
    if let Some(req) = required {
        if resolve_in_root(tree, &gopath::join_root(req.as_bytes()), true)?.is_none() {
            return Err(Error::NotFound(gopath::clean_str(&format!("/{req}"))));
        }
    }
    Ok(())
}

struct IncludeWalk<'a, 'b> {
    tree: &'a dyn SourceTree,
    inc: &'a Matcher,
    excludes: Option<&'a Matcher>,
    out: &'b mut Vec<Entry>,
    pending: &'b mut Vec<Entry>,
}

impl IncludeWalk<'_, '_> {
    fn run(
        &mut self,
        dir: &Path,
        under: &Path,
        inc_parent: &MatchInfo,
        ex_parent: &MatchInfo,
    ) -> Result<(), Error> {
        let tree = self.tree;
        for name in tree
            .read_dir(dir)
            .map_err(|e| Error::io(&tree.disk_path(dir), e))?
        {
            let child = dir.join(&name);
            let node = match tree
                .lstat(&child)
                .map_err(|e| Error::io(&tree.disk_path(&child), e))?
            {
                Some(n) => n,
                None => continue,
            };
            let rel = under.join(&name);
            let p = go_lossy(rel.as_os_str().as_bytes()).into_owned();
            let (included, inc_info) = self.inc.matches_using_parent_results(&p, inc_parent);
            let is_dir = node.is_dir();
            if !included && (!is_dir || !may_match_under(self.inc, &p)) {
                continue;
            }
            let mut ex_info = MatchInfo::default();
            if let Some(m) = self.excludes {
                let (ex, i) = excluded(m, &rel, is_dir, ex_parent);
                if ex {
                    continue;
                }
                ex_info = i;
            }
            let e = entry(tree, &child, rel.clone(), node);
            if included {
                self.out.append(self.pending);
                self.out.push(e);
                if is_dir {
                    self.run(&child, &rel, &inc_info, &ex_info)?;
                }
            } else {
                // A directory on the way: copied only if something under it is.
                let mark = self.pending.len();
                self.pending.push(e);
                self.run(&child, &rel, &inc_info, &ex_info)?;
                self.pending.truncate(mark);
            }
        }
        Ok(())
    }
}

/// Whether an include pattern could match something under directory `dir` (fsutil's
/// `onlyPrefixIncludes` shortcut; any wildcard outside a trailing `/*` or `/**` means yes).
fn may_match_under(m: &Matcher, dir: &str) -> bool {
    let dir_slash = format!("{dir}/");
    m.patterns().iter().filter(|p| !p.is_exclusion()).any(|p| {
        let t = p.without_trailing_glob();
        t.contains(['*', '[', ']', '?', '^', '\\']) || format!("{t}/").starts_with(&dir_slash)
    })
}

/// A COPY/ADD destination as BuildKit reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Absolute and cleaned.
    pub path: PathBuf,
    /// Written as a directory: ends in `/` or `/.`, or is `.` or empty. The directory is
    /// created and everything goes into it.
    pub is_dir: bool,
}

/// The destination of `COPY … dest` under `WORKDIR workdir` (BuildKit's
/// `pathRelativeToWorkingDir`): a relative `dest` is joined to `workdir` (`/` when
/// empty), the result cleaned, and a trailing `/` or `/.` remembered. Pure.
pub fn resolve_destination(dest: &str, workdir: &str) -> Destination {
    let d = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let joined = if d.starts_with('/') {
        d.to_string()
    } else {
        let wd = if workdir.is_empty() { "/" } else { workdir };
        format!("{wd}/{d}")
    };
    let path = PathBuf::from(OsStr::from_bytes(&gopath::join_root(joined.as_bytes())));
    Destination {
        path,
        is_dir: d.ends_with('/') || d.ends_with("/."),
    }
}

/// What is at a destination path before the copy (following symlinks in the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestKind {
    /// Nothing.
    Missing,
    /// A directory (or a symlink to one).
    Dir,
    /// Something else.
    NotDir,
}

/// One entry with its place in the image.
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    /// Index of its source in [`Selection::sources`].
    pub source: usize,
    /// What to copy.
    pub entry: &'a Entry,
    /// Absolute destination path in the image. For the source itself of a directory
    /// source this is the destination directory, which BuildKit creates (0755, the
    /// copy's owner) rather than copying the source directory's own metadata onto it.
    pub dest: PathBuf,
}

/// BuildKit's destination rules (fsutil `Copy` + `prepareTargetDir` with
/// `CopyDirContents`), applied source by source in order; `existing` tells what the image
/// holds at a path before this COPY (following symlinks). Pure apart from `existing`.
///
/// * A destination written as a directory ([`Destination::is_dir`]) is created first;
///   it is an error if it exists as something else.
/// * A directory source copies its contents into the destination, which it creates; a
///   destination that exists as a non-directory is an error.
/// * A file (or device, …) source goes into the destination, under its own name, when
///   the destination is a directory by then; otherwise it *is* the destination.
///
/// So, as in BuildKit, several file sources to a destination that is not a directory
/// each overwrite it (the last wins), and a directory source earlier in the list turns
/// the destination into a directory for the files after it.
pub fn place<'a>(
    dest: &Destination,
    selection: &'a Selection,
    mut existing: impl FnMut(&Path) -> DestKind,
) -> Result<Vec<Placed<'a>>, Error> {
    let not_dir = || Error::NotADirectory(go_lossy(dest.path.as_os_str().as_bytes()).into_owned());
    let mut state = if dest.path == Path::new("/") {
        DestKind::Dir
    } else {
        existing(&dest.path)
    };
    if dest.is_dir {
        if state == DestKind::NotDir {
            return Err(not_dir());
        }
        state = DestKind::Dir;
    }
    let mut out = Vec::new();
    for (i, src) in selection.sources.iter().enumerate() {
        let base = if src.is_dir {
            if state == DestKind::NotDir {
                return Err(not_dir());
            }
            state = DestKind::Dir;
            dest.path.clone()
        } else if state == DestKind::Dir {
            dest.path.join(&src.name)
        } else {
            state = DestKind::NotDir;
            dest.path.clone()
        };
        for e in &src.entries {
            let d = if e.rel.as_os_str().is_empty() {
                base.clone()
            } else {
                base.join(&e.rel)
            };
            out.push(Placed {
                source: i,
                entry: e,
                dest: d,
            });
        }
    }
    Ok(out)
}
