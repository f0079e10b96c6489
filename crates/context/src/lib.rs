//! The build context and the file selection of COPY/ADD, as Docker and BuildKit do them.
//! This crate knows nothing of Dockerfile syntax, images or layers: it is given patterns,
//! source paths, a destination and a working directory, and answers with files on disk
//! and where they go.
//!
//! # Pieces
//!
//! * [`Matcher`]: `.dockerignore` and `--exclude` patterns, translated from
//!   moby/patternmatcher to the `regex` crate. Go `filepath.Match` syntax (`*`, `?`,
//!   `[...]` with `^` negation — `!` is *not* a negation, as in Go — and `\` escapes),
//!   `**`, patterns cleaned like `filepath.Clean`, `!` re-inclusion with the last match
//!   winning, a match on a directory covering everything under it.
//!   [`Matcher::from_ignore_file`] reads the file as BuildKit does ([`read_ignore_file`]).
//! * [`Context`]: a context directory walked once (sorted, symlinks never followed) with
//!   the ignore patterns applied the way BuildKit's context transfer applies them;
//!   [`extract_tar`] / [`Context::from_tar`] for a context given as a tar stream.
//!   [`StageRoot`] is a stage's root directory for `COPY --from`. Both are [`SourceTree`]s.
//! * [`select`]: COPY/ADD sources → [`Selection`]; [`resolve_destination`] and [`place`]:
//!   BuildKit's destination rules; [`digest_entries`] and friends: content digests.
//! * [`StatCache`]: each regular file's content digest remembered by its `lstat` metadata
//!   (device, inode, size, mtime, ctime, mode, owner), so a rebuild reads only the files
//!   that changed; saved and loaded as bytes ([`StatCache::to_bytes`],
//!   [`StatCache::from_bytes`]) by the caller, which keeps them (the engine: in the store).
//!
//! # Invariants
//!
//! * Nothing outside a tree's root is ever read: every source path is cleaned as
//!   `filepath.Join("/", src)` and resolved component by component as if the root were
//!   `/` (an absolute symlink target restarts at the root, `..` stops there, at most 255
//!   links). A context symlink to `/etc/passwd` names `<root>/etc/passwd`, which is
//!   normally missing: `"/link" not found`, never the host's file.
//! * Every [`Entry::source`] is a path below the root with no symlink in it; symlinks
//!   inside a copied directory are entries of their own ([`FileKind::Symlink`]), never
//!   followed. Only a source named by the instruction (or matched by its wildcard) is
//!   followed.
//! * Paths excluded by the context's ignore patterns do not exist for selection.
//! * Output order is deterministic: sources in instruction order, wildcard matches in
//!   walk order, entries depth first with names sorted by bytes.
//! * [`extract_tar`] (`layer::apply` in its build-context mode) never writes, links or
//!   chmods through a symlink and refuses absolute and `..` member names.
//! * Digests cover path, type, mode, owner, size, link target and content — not times.
//!   A file's content enters as the sha256 of its bytes, read (streamed) at most once per
//!   [`StatCache`], and not at all when a record's metadata all equals the file's current
//!   `lstat` (device, inode, size, mtime and ctime to the nanosecond, mode, owner). A
//!   record is kept only when the file's ctime is at least 2 s before its hashing began
//!   (git's racy-clean rule); ctime cannot be set by users and moves on every write or
//!   chmod. A system clock stepped backwards can make a stale record match.
//! * A saved [`StatCache`] that is truncated, corrupt or foreign loads as empty: its bytes
//!   end with their own sha256.
//! * Nothing here panics on any input: patterns that Go rejects, and Go regular
//!   expressions the translation cannot express, are errors.
//!
//! # Where BuildKit and the Dockerfile reference part ways, BuildKit is followed
//!
//! * Several sources to a destination without a trailing `/`: no error; each source is
//!   copied onto it in turn, so with files the last one wins (moby/buildkit#1853).
//! * A wildcard that matches nothing is not an error, even when no source matched at
//!   all (`AllowEmptyWildcard`); [`SelectOptions::allow_empty_wildcard`] `= false` gives the
//!   classic builder's "no source files were specified". A wildcard under a missing
//!   directory is an error.
//! * `--exclude` patterns are relative to each selected source; a source named by the
//!   instruction (or matched by its wildcard) is never excluded by its own name.
//! * The destination directory of a directory source is created by BuildKit (0755, the
//!   copy's owner): the source directory's own mode is not copied onto it.
//! * A literal source is looked up as written: backslashes are only escapes in a source
//!   that holds an unescaped wildcard.
//!
//! # Deviations from Go, on purpose
//!
//! * A pattern whose regular expression Go only rejects when it is first used (e.g.
//!   `[z-a]`, which passes `filepath.Match`'s check) is rejected by [`Matcher::new`].
//! * Paths and patterns that are not UTF-8 are read with each invalid byte as U+FFFD,
//!   which is what Go's regexp does; a literal U+FFFD in a pattern therefore also
//!   matches an invalid byte in an exact pattern.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod digest;
mod gopath;
mod goregex;
mod matcher;
mod select;
mod statcache;
mod tarctx;
mod tree;

use std::io::Read;
use std::path::Path;

pub use digest::{digest_entries, digest_placed};
pub use gopath::{clean, contains_wildcards, go_match, BadPattern};
pub use goregex::MatchType;
pub use matcher::{read_ignore_file, MatchInfo, Matcher, Pattern, PatternError, PatternErrorKind};
pub use select::{
    place, resolve_destination, select, DestKind, Destination, Entry, Placed, SelectOptions,
    SelectedSource, Selection,
};
pub use statcache::StatCache;
pub use tarctx::extract_tar;
pub use tree::{resolve_in_root, Context, FileKind, Node, SourceTree, StageRoot, Stat};

/// Test support: patternmatcher's compiled form of a pattern (match type and Go regular
/// expression), to check the translation against patternmatcher's own table.
#[doc(hidden)]
pub fn compile_go_pattern(pattern: &str) -> (MatchType, Option<String>) {
    goregex::compile(pattern)
}

/// The `.dockerignore` text that applies to a build of `dockerfile` in `context`, picked as
/// BuildKit picks it: `<Dockerfile>.dockerignore` beside the Dockerfile first, then the
/// context's `.dockerignore`; `None` when neither exists. Invalid UTF-8 is read lossily; an
/// error other than "not found" is [`Error::Io`] on the file that could not be read.
pub fn dockerignore_text(context: &Path, dockerfile: &Path) -> Result<Option<String>, Error> {
    let specific = std::path::PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    for p in [specific, context.join(".dockerignore")] {
        match std::fs::read(&p) {
            Ok(b) => return Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(None)
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad ignore or `--exclude` patterns.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// A source that is not there (BuildKit: `"/foo" not found: not found`).
    #[error("\"{0}\" not found: not found")]
    NotFound(String),
    /// No source matched anything, with [`SelectOptions::allow_empty_wildcard`] off.
    #[error("no source files were specified")]
    NoSourceFiles,
    /// More than 255 symlinks while resolving a path.
    #[error("too many links while resolving {0}")]
    TooManyLinks(String),
    /// The destination exists as a non-directory where a directory is needed.
    #[error("cannot copy to non-directory: {0}")]
    NotADirectory(String),
    /// A tar member that would land outside the extraction directory.
    #[error("refusing tar member {path:?}: {reason}")]
    UnsafeTarPath {
        /// The member name.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file changed between selection and hashing.
    #[error("{0}: file changed while it was being read")]
    Changed(String),
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl Context {
    /// A context given as a tar stream: [`extract_tar`] into `dest_dir` (a private
    /// directory, created 0700), then [`Context::load`] with `matcher`. A caller that wants
    /// the stream's own `.dockerignore` calls [`extract_tar`], reads the file and then
    /// [`Context::load`].
    pub fn from_tar<R: Read>(
        reader: R,
        dest_dir: &Path,
        matcher: Option<&Matcher>,
    ) -> Result<Context, Error> {
        extract_tar(reader, dest_dir)?;
        Context::load(dest_dir, matcher)
    }
}
