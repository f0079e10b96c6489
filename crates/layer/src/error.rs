//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while committing, applying or compressing a layer.
///
/// Every variant names the place it happened: a filesystem path (for commit, the path on
/// disk; for apply, the entry's name inside the layer) or a byte offset in the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", escape::path(path))]
    Fs {
        /// What was being done (`"open"`, `"mkdir"`, …).
        op: &'static str,
        /// The path on disk (commit) or the entry name inside the layer (apply).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading the input stream or writing the output stream failed.
    #[error("{op}: {source}")]
    Stream {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The tar stream ended in the middle of a header, an entry's data or its padding.
    #[error("truncated layer stream: unexpected end of input in {what} at byte {offset}")]
    Truncated {
        /// The part of the archive being read.
        what: &'static str,
        /// Offset of the first missing byte.
        offset: u64,
    },
    /// The tar stream is not a well-formed archive (bad checksum, bad number, bad PAX
    /// record, a size over the limits, an unsupported entry type…).
    #[error("malformed layer at byte {offset}: {}", escape::text(reason))]
    Malformed {
        /// Offset of the header block concerned.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry would land outside the target directory, or is otherwise refused.
    #[error("refusing layer entry {}: {reason}", escape::quote(name.as_bytes()))]
    Unsafe {
        /// The entry's name as written in the archive (lossily decoded).
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// Something on disk cannot be represented in a layer (commit side).
    #[error("cannot commit {}: {reason}", escape::path(path))]
    Unsupported {
        /// The path on disk.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn fs(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Fs {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn stream(op: &'static str, source: io::Error) -> Self {
        Error::Stream { op, source }
    }

    pub(crate) fn unsafe_entry(name: &[u8], reason: impl Into<String>) -> Self {
        Error::Unsafe {
            name: String::from_utf8_lossy(name).into_owned(),
            reason: reason.into(),
        }
    }
}
