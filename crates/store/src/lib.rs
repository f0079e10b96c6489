//! The local image store: an OCI image layout on disk plus what a builder needs around it.
//!
//! ```text
//! $ROOT/oci-layout                 {"imageLayoutVersion": "1.0.0"}
//! $ROOT/index.json                 refs: one manifest descriptor per name, annotated with
//!                                  org.opencontainers.image.ref.name = docker.io/library/x:tag
//! $ROOT/blobs/sha256/<hex>         manifests, configs, layers (layers uncompressed)
//! $ROOT/compressed/<algo>/<hex>    "digest size" of the compressed form of a diffID, made
//!                                  lazily on save/push and kept
//! $ROOT/meta/<kind>/<hex>          small facts about a blob (e.g. a layer's content size),
//!                                  removed with the blob
//! $ROOT/snapshots/<diffid-hex>/    one layer's diff unpacked in overlay format (whiteouts as
//!                                  0:0 devices), an overlay lowerdir; a chain is these
//!                                  stacked; `<diffid-hex>-<n>` for a repeat in one chain
//! $ROOT/roots/<kind>/<name>        extra GC roots (cache records, containers' images), one
//!                                  digest per line (a layer's diff id keeps its snapshot)
//! $ROOT/cache/stat/<hex>           a build context directory's stat cache (file metadata →
//!                                  content digest), by the sha256 of the directory's
//!                                  canonical path; opaque bytes to the store
//! $ROOT/tmp/                       in-flight writes; renamed into place when complete;
//!                                  each named after its owner (pid, start time), removed
//!                                  by whoever takes the lock once the owner is gone
//! $ROOT/lock                       flock: writers hold it shared, prune exclusive
//! ```
//!
//! Writes need the lock, by type: [`Store::lock_shared`] returns a [`Writer`], and every
//! write API (ingest and blobs, images, refs, untagged roots, meta, compressed-form records,
//! GC roots, build-cache records, memos and stat caches, temp dirs that become store items)
//! is a method of `Writer`, not of `Store`; [`Store::lock_exclusive`] returns an [`Exclusive`], which
//! alone can [`prune`](Exclusive::prune) and derefs to a `Writer`. Reads (`resolve`,
//! `read_blob`, `refs`, ...) are methods of `Store` and need no lock; a reader that must not
//! see a prune midway holds a `Writer` too. Paths handed out ([`Store::snapshot_path`],
//! [`Store::temp_path`]) are not covered by the type: a snapshot is renamed into place by
//! code that holds a `Writer`, and `temp_path` is for scratch that never becomes a store
//! item.
//!
//! Invariants: a blob is visible under `blobs/` only once complete, fsynced and verified; a
//! ref is written only after every blob it reaches exists; index.json is replaced atomically;
//! so a crash at any instant leaves no ref to a missing blob. This crate knows nothing of
//! Dockerfiles or tar.

mod blobs;
pub mod digest;
mod files;
mod gc;
pub mod image;
mod lock;
pub mod platform;
pub mod reference;
mod refs;
mod roots;
mod tee;
pub mod temp;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use blobs::{Compression, Ingest, VerifyingReader};
pub use digest::{Digest, DigestError, HashingReader, HashingWriter};
pub(crate) use files::sync_dir;
pub use files::{atomic_write, go_rfc3339_nano, now_rfc3339, remove_tree};
pub(crate) use gc::dir_size_of;
pub use gc::PruneReport;
use image::Index;
pub use lock::{Exclusive, StoreLock, Writer};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
pub use refs::{Image, StoredIndex};
pub use roots::{ROOT_CACHE, ROOT_UNTAGGED};
pub use tee::Tee;
pub use temp::{temp_name, temp_owner, Owner, Swept, TempDir};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("blob {0} is missing from the store")]
    MissingBlob(Digest),
    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    Corrupt { digest: Digest, actual: Digest },
    #[error("{what} {digest}: size {actual}, expected {expected}")]
    SizeMismatch {
        what: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error(
        "image with reference {what} was found but does not match the specified platform: \
         wanted {wanted}, actual: {actual}"
    )]
    WrongPlatform {
        what: String,
        wanted: String,
        actual: String,
    },
    #[error("no image for {wanted} in {what} (it has {})", available.join(", "))]
    NoPlatform {
        what: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

/// An open store.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    tightened_from: Option<u32>,
}

/// The store root's mode. The store holds unpacked images (setuid binaries and device nodes
/// among them) and container state (logs, environments): only its owner may enter it.
pub const ROOT_MODE: u32 = 0o700;

/// Create `root` with [`ROOT_MODE`], or take its group and other bits away if it exists;
/// returns the mode it had when that changed anything.
fn secure_root(root: &Path) -> Result<Option<u32>> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let meta = match fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = root.parent() {
                fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
            }
            match fs::DirBuilder::new().mode(ROOT_MODE).create(root) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).ctx(|| format!("create {}", root.display())),
            }
            fs::metadata(root).ctx(|| format!("stat {}", root.display()))?
        }
        Err(e) => return Err(e).ctx(|| format!("stat {}", root.display())),
    };
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "the store root {} is not a directory",
            root.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(root, fs::Permissions::from_mode(ROOT_MODE))
        .ctx(|| format!("make {} mode {ROOT_MODE:04o}", root.display()))?;
    Ok(Some(mode))
}

impl Store {
    /// The default root: `/var/lib/strata` as root, `$XDG_DATA_HOME/strata` otherwise.
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/strata");
        }
        match std::env::var_os("XDG_DATA_HOME") {
            Some(x) if !x.is_empty() => PathBuf::from(x).join("strata"),
            _ => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
                PathBuf::from(home).join(".local/share/strata")
            }
        }
    }

    /// The mode the store root had before [`Store::open`] took its group and other bits
    /// away (the root is [`ROOT_MODE`] from then on), for the caller's one notice line.
    pub fn tightened_from(&self) -> Option<u32> {
        self.tightened_from
    }

    /// Open (creating if needed) the store at `root`; the root is made [`ROOT_MODE`].
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        // Absolute, so paths handed to mounts and child processes mean the same everywhere.
        let root = root.into();
        let root = std::path::absolute(&root).ctx(|| format!("resolve {}", root.display()))?;
        let tightened_from = secure_root(&root)?;
        for d in [
            "blobs/sha256",
            "tmp",
            "snapshots",
            "roots",
            "meta",
            "compressed/gzip",
            "compressed/zstd",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        }
        let s = Store {
            root,
            tightened_from,
        };
        let layout = s.root.join("oci-layout");
        if !layout.exists() {
            atomic_write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = s.root.join("index.json");
        if !index.exists() {
            let _g = s.refs_lock()?;
            if !index.exists() {
                s.write_index(&Index {
                    schema_version: 2,
                    media_type: Some(image::MEDIA_OCI_INDEX.into()),
                    manifests: Vec::new(),
                })?;
            }
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh path under `tmp/` named after this process (`<kind>.<pid>.<start>.<n>`);
    /// nothing is created. For scratch that never becomes a store item (a container's upper
    /// dir, a command's temp file): it needs no lock, and the sweep spares it while this
    /// process lives. What becomes a store item is made in a [`Writer::temp_dir`].
    pub fn temp_path(&self, kind: &str) -> PathBuf {
        self.root.join("tmp").join(temp_name(kind))
    }

    /// [`Store::temp_path`] created, and removed on drop: a scratch directory that never
    /// becomes a store item (a container's upper and work dirs, a build's stdin context).
    pub fn scratch_dir(&self, kind: &str) -> Result<TempDir> {
        let tmp = self.root.join("tmp");
        TempDir::new_in(&tmp, kind).ctx(|| format!("create a directory in {}", tmp.display()))
    }

    /// Directory holding the unpacked diff of one layer (an overlay lowerdir), by diffID.
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(diff_id.hex())
    }
}

impl Writer<'_> {
    /// A fresh directory under `tmp/` named after this process, removed on drop: for what
    /// becomes a store item (e.g. a snapshot, renamed into place while this lock is held).
    pub fn temp_dir(&self, kind: &str) -> Result<TempDir> {
        self.scratch_dir(kind)
    }
}

#[cfg(test)]
mod tests;
