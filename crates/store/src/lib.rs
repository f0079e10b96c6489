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
//! $ROOT/tmp/                       in-flight writes; renamed into place when complete;
//!                                  each named after its owner (pid, start time), removed
//!                                  by whoever takes the lock once the owner is gone
//! $ROOT/lock                       flock: writers hold it shared, prune exclusive
//! ```
//!
//! Writes need the lock, by type: [`Store::lock_shared`] returns a [`Writer`], and every
//! write API (ingest and blobs, images, refs, untagged roots, meta, compressed-form records,
//! GC roots, build-cache records and memos, temp dirs that become store items) is a method
//! of `Writer`, not of `Store`; [`Store::lock_exclusive`] returns an [`Exclusive`], which
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

pub mod digest;
pub mod image;
pub mod reference;
mod tee;
pub mod temp;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub use digest::{Digest, HashingReader, HashingWriter};
use image::{Descriptor, ImageConfig, Index, Manifest, ANNOTATION_REF_NAME};
pub use reference::Reference;
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

/// GC root kind of build cache records (step cache key → layer).
pub const ROOT_CACHE: &str = "cache";

/// GC root kind under which untagged images are kept.
pub const ROOT_UNTAGGED: &str = "untagged";

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

/// A held flock (released on drop).
pub struct StoreLock {
    _file: File,
}

/// The store lock held shared: the one way to write to the store. Every write API (blobs,
/// images, refs, meta, roots, cache records, temp dirs that become store items) is a method
/// of `Writer`, so a write without the lock does not compile; reads go through
/// `Deref<Target = Store>` as on an unlocked [`Store`]. Prune waits until every `Writer`
/// is dropped, so nothing written under one can be collected before it is referenced.
/// Released on drop. Two `Writer`s of one process coexist (the lock is shared), but an
/// [`Exclusive`] taken while this process holds a `Writer` waits for ever.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("store-doc-writer-{}", std::process::id()));
/// let store = store::Store::open(&dir).unwrap();
/// let w = store.lock_shared().unwrap();
/// let d = w.write_blob(b"hello").unwrap();
/// drop(w);
/// assert!(store.has_blob(&d)); // reads need no lock
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// Without the guard the same write does not compile:
///
/// ```compile_fail
/// # let dir = std::env::temp_dir().join(format!("store-doc-nowriter-{}", std::process::id()));
/// let store = store::Store::open(&dir).unwrap();
/// store.write_blob(b"hello").unwrap(); // no method `write_blob` on `Store`
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct Writer<'s> {
    store: &'s Store,
    _lock: StoreLock,
}

impl std::ops::Deref for Writer<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

/// The store lock held exclusive (no [`Writer`] runs meanwhile): garbage collection, and
/// every write, through `Deref<Target = Writer>`.
#[must_use = "the lock is released when the guard is dropped"]
pub struct Exclusive<'s>(Writer<'s>);

impl<'s> std::ops::Deref for Exclusive<'s> {
    type Target = Writer<'s>;
    fn deref(&self) -> &Writer<'s> {
        &self.0
    }
}

/// An image as the store holds it: manifest and config, with the exact bytes hashed.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub config: ImageConfig,
    pub config_bytes: Vec<u8>,
}

impl Image {
    /// Docker's image id: the config digest.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }
}

/// What prune removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub blobs: Vec<(Digest, u64)>,
    pub snapshots: Vec<String>,
    /// Temporaries of commands that are gone (names under `tmp/`) and their bytes.
    pub temporaries: Swept,
    /// Everything freed, temporaries included.
    pub bytes: u64,
}

/// Compression of an exported layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A blob being written: bytes go to a temp file and are hashed on the way.
pub struct Ingest<'s> {
    store: &'s Store,
    path: PathBuf,
    writer: Option<HashingWriter<io::BufWriter<File>>>,
}

impl Write for Ingest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().expect("ingest open").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().expect("ingest open").flush()
    }
}

impl Ingest<'_> {
    /// Finish the blob: fsync, check it against `expected` (when given) and move it into
    /// place. A blob that is already present is kept and the temp file dropped.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let w = self.writer.take().expect("ingest open");
        let (digest, size, buf) = w.finish();
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("writing {}", self.path.display()))?;
        if let Some(exp) = expected {
            if exp != &digest {
                let _ = fs::remove_file(&self.path);
                return Err(Error::Corrupt {
                    digest: exp.clone(),
                    actual: digest,
                });
            }
        }
        file.sync_all()
            .ctx(|| format!("fsync {}", self.path.display()))?;
        drop(file);
        let dest = self.store.blob_path(&digest);
        if dest.exists() {
            let _ = fs::remove_file(&self.path);
        } else {
            fs::rename(&self.path, &dest).ctx(|| format!("rename into {}", dest.display()))?;
            sync_dir(dest.parent().expect("blob dir"))?;
        }
        Ok((digest, size))
    }
}

impl Drop for Ingest<'_> {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx(|| format!("fsync {}", dir.display()))
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("path has a parent");
    let tmp = dir.join(temp_name(&format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f")
    )));
    let res = (|| {
        // O_EXCL: never through a symlink planted at the temp's name.
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(bytes)
            .ctx(|| format!("write {}", tmp.display()))?;
        f.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
        fs::rename(&tmp, path).ctx(|| format!("rename into {}", path.display()))?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// A reader that checks the digest of a blob when it reaches the end.
pub struct VerifyingReader {
    inner: HashingReader<io::BufReader<File>>,
    expected: Digest,
    done: bool,
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let actual = self.inner.current();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} is corrupt: its content hashes to {actual}",
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
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

    fn lock_file(&self, name: &str, mode: rustix::fs::FlockOperation) -> Result<StoreLock> {
        let p = self.root.join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("open {}", p.display()))?;
        rustix::fs::flock(&f, mode)
            .map_err(io::Error::from)
            .ctx(|| format!("lock {}", p.display()))?;
        Ok(StoreLock { _file: f })
    }

    /// Take the store lock shared, for writing: held by every writer for the whole of its
    /// work, so prune never removes a blob that a writer has written but not yet
    /// referenced. Readers may hold it too, so no prune removes what they read. Taking it
    /// sweeps the temporaries of commands that are gone ([`Store::sweep_tmp`]).
    pub fn lock_shared(&self) -> Result<Writer<'_>> {
        let l = self.lock_file("lock", rustix::fs::FlockOperation::LockShared)?;
        self.sweep_tmp();
        Ok(Writer {
            store: self,
            _lock: l,
        })
    }

    /// Take the store lock exclusive, waiting for every writer: for prune (which sweeps
    /// the temporaries itself, to count them).
    pub fn lock_exclusive(&self) -> Result<Exclusive<'_>> {
        let l = self.lock_file("lock", rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Exclusive(Writer {
            store: self,
            _lock: l,
        }))
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

    /// Remove the temporaries whose owner is gone: entries of `tmp/`, and the temp files
    /// of index.json's atomic replacement. A live owner's entry is never touched. Cheap
    /// when `tmp/` is empty (one directory read).
    pub fn sweep_tmp(&self) -> Swept {
        self.sweep(temp::SweepScope::DeadOwners)
    }

    fn sweep(&self, scope: temp::SweepScope) -> Swept {
        let mut s = temp::sweep(&self.root.join("tmp"), scope);
        let r = temp::sweep(&self.root, temp::SweepScope::Kind(".index.json.tmp"));
        s.entries.extend(r.entries);
        s.bytes += r.bytes;
        s
    }

    fn refs_lock(&self) -> Result<StoreLock> {
        self.lock_file("refs.lock", rustix::fs::FlockOperation::LockExclusive)
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).exists()
    }

    /// Size on disk of a blob.
    pub fn blob_size(&self, d: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingBlob(d.clone())),
            Err(e) => Err(e).ctx(|| format!("stat blob {d}")),
        }
    }

    /// Read a small blob, verified.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let bytes = match fs::read(self.blob_path(d)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingBlob(d.clone()))
            }
            Err(e) => return Err(e).ctx(|| format!("read blob {d}")),
        };
        let actual = Digest::of(&bytes);
        if &actual != d {
            return Err(Error::Corrupt {
                digest: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Stream a blob; the reader fails at the end if the content does not match.
    pub fn open_blob(&self, d: &Digest) -> Result<VerifyingReader> {
        let f = match File::open(self.blob_path(d)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingBlob(d.clone()))
            }
            Err(e) => return Err(e).ctx(|| format!("open blob {d}")),
        };
        Ok(VerifyingReader {
            inner: HashingReader::new(io::BufReader::with_capacity(1 << 20, f)),
            expected: d.clone(),
            done: false,
        })
    }

    /// Load an image by manifest digest (manifest and config verified).
    pub fn image(&self, manifest_digest: &Digest) -> Result<Image> {
        let manifest_bytes = self.read_blob(manifest_digest)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| Error::Invalid(format!("manifest {manifest_digest}: {e}")))?;
        let config_bytes = self.read_blob(&manifest.config.digest)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::Invalid(format!("config {}: {e}", manifest.config.digest)))?;
        Ok(Image {
            manifest_digest: manifest_digest.clone(),
            manifest,
            manifest_bytes,
            config,
            config_bytes,
        })
    }

    fn read_index(&self) -> Result<Index> {
        let p = self.root.join("index.json");
        let bytes = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).expect("index serializes");
        atomic_write(&self.root.join("index.json"), &bytes)
    }

    /// All refs: full name → manifest digest.
    pub fn refs(&self) -> Result<BTreeMap<String, Digest>> {
        let index = self.read_index()?;
        Ok(index
            .manifests
            .into_iter()
            .filter_map(|d| {
                let name = d.annotations.as_ref()?.get(ANNOTATION_REF_NAME)?.clone();
                Some((name, d.digest))
            })
            .collect())
    }

    /// Manifest digests of the untagged images kept.
    pub fn untagged(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("roots").join(ROOT_UNTAGGED);
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                if let Some(d) = e
                    .file_name()
                    .to_str()
                    .and_then(|n| Digest::from_hex(n).ok())
                {
                    if self.has_blob(&d) {
                        out.push(d);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Find an image by name, by (prefix of) image id, or by manifest digest.
    pub fn resolve(&self, what: &str) -> Result<Image> {
        let refs = self.refs()?;
        if let Ok(r) = Reference::parse(what) {
            if let Some(d) = refs.get(&r.to_string()) {
                return self.image(d);
            }
        }
        let hex = what.strip_prefix("sha256:").unwrap_or(what);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let mut found: Option<Image> = None;
            let mut seen = BTreeSet::new();
            let untagged = self.untagged()?;
            for d in refs.values().chain(untagged.iter()) {
                if !seen.insert(d.clone()) {
                    continue;
                }
                let img = self.image(d)?;
                if img.id().hex().starts_with(&hex) || d.hex().starts_with(&hex) {
                    if let Some(f) = &found {
                        if f.id() != img.id() {
                            return Err(Error::Invalid(format!(
                                "ambiguous image id prefix {what}"
                            )));
                        }
                    }
                    found = Some(img);
                }
            }
            if let Some(f) = found {
                return Ok(f);
            }
        }
        Err(Error::NoSuchImage(what.to_string()))
    }

    /// Names pointing at each manifest digest.
    pub fn names_by_manifest(&self) -> Result<BTreeMap<Digest, Vec<String>>> {
        let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for (name, d) in self.refs()? {
            out.entry(d).or_default().push(name);
        }
        Ok(out)
    }

    fn check_complete(&self, image: &Image) -> Result<()> {
        if !self.has_blob(&image.manifest_digest) {
            return Err(Error::MissingBlob(image.manifest_digest.clone()));
        }
        if !self.has_blob(&image.manifest.config.digest) {
            return Err(Error::MissingBlob(image.manifest.config.digest.clone()));
        }
        for l in &image.manifest.layers {
            if !self.has_blob(&l.digest) {
                return Err(Error::MissingBlob(l.digest.clone()));
            }
        }
        Ok(())
    }

    /// The compressed form of a layer, if it was made before.
    pub fn compressed(&self, diff_id: &Digest, c: Compression) -> Result<Option<(Digest, u64)>> {
        let p = self
            .root
            .join("compressed")
            .join(c.name())
            .join(diff_id.hex());
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("read {}", p.display())),
        };
        let mut parts = text.split_whitespace();
        let (Some(d), Some(s)) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        let (Ok(d), Ok(s)) = (d.parse::<Digest>(), s.parse::<u64>()) else {
            return Ok(None);
        };
        Ok(self.has_blob(&d).then_some((d, s)))
    }

    /// A small fact recorded about a blob (`kind` names what it is), if any.
    pub fn meta(&self, kind: &str, d: &Digest) -> Option<String> {
        fs::read_to_string(self.root.join("meta").join(kind).join(d.hex())).ok()
    }

    fn extra_roots(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let dir = self.root.join("roots");
        for kind in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let kind = kind.ctx(|| "read roots".into())?;
            if !kind.path().is_dir() {
                continue;
            }
            for f in fs::read_dir(kind.path()).ctx(|| "read roots".into())? {
                let f = f.ctx(|| "read roots".into())?;
                if let Ok(text) = fs::read_to_string(f.path()) {
                    out.extend(text.lines().filter_map(|l| l.trim().parse::<Digest>().ok()));
                }
            }
        }
        Ok(out)
    }

    /// Every blob and snapshot reachable from refs and extra roots.
    fn live_set(&self) -> Result<(BTreeSet<Digest>, BTreeSet<String>)> {
        let mut blobs = BTreeSet::new();
        let mut snapshots = BTreeSet::new();
        let mut manifests: Vec<Digest> = self.refs()?.into_values().collect();
        for r in self.extra_roots()? {
            // A root may name any blob; a layer's diff id keeps its snapshot too.
            snapshots.insert(r.hex().to_string());
            if self.has_blob(&r) {
                let bytes = self.read_blob(&r).ok();
                let is_manifest = bytes
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<Manifest>(b).ok())
                    .is_some();
                if is_manifest {
                    manifests.push(r);
                } else {
                    blobs.insert(r);
                }
            }
        }
        for m in manifests {
            let Ok(img) = self.image(&m) else {
                blobs.insert(m);
                continue;
            };
            blobs.insert(m);
            blobs.insert(img.manifest.config.digest.clone());
            for l in &img.manifest.layers {
                blobs.insert(l.digest.clone());
            }
            for d in &img.config.rootfs.diff_ids {
                snapshots.insert(d.hex().to_string());
            }
        }
        // Compressed forms of live layers stay with them.
        for c in [Compression::Gzip, Compression::Zstd] {
            let extra: Vec<Digest> = blobs
                .iter()
                .filter_map(|d| self.compressed(d, c).ok().flatten().map(|(cd, _)| cd))
                .collect();
            blobs.extend(extra);
        }
        Ok((blobs, snapshots))
    }

    /// Check the store: every ref reaches a manifest, config and layers that exist and
    /// hash to their digests. Returns the problems found (empty = consistent).
    pub fn fsck(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut checked: BTreeSet<Digest> = BTreeSet::new();
        for (name, m) in self.refs()? {
            let img = match self.image(&m) {
                Ok(i) => i,
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    continue;
                }
            };
            if img.manifest.layers.len() != img.config.rootfs.diff_ids.len() {
                problems.push(format!(
                    "{name}: manifest has {} layers, config {} diff_ids",
                    img.manifest.layers.len(),
                    img.config.rootfs.diff_ids.len()
                ));
            }
            for l in &img.manifest.layers {
                if !checked.insert(l.digest.clone()) {
                    continue;
                }
                match self.verify_blob(&l.digest, l.size) {
                    Ok(()) => {}
                    Err(e) => problems.push(format!("{name}: layer {}: {e}", l.digest)),
                }
            }
        }
        Ok(problems)
    }

    /// Hash a blob fully and compare digest and size.
    pub fn verify_blob(&self, d: &Digest, size: u64) -> Result<()> {
        let mut r = self.open_blob(d)?;
        let n = io::copy(&mut r, &mut io::sink()).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                Error::Invalid(e.to_string())
            } else {
                Error::Io {
                    context: format!("read blob {d}"),
                    source: e,
                }
            }
        })?;
        if n != size {
            return Err(Error::SizeMismatch {
                what: "blob".into(),
                digest: d.clone(),
                expected: size,
                actual: n,
            });
        }
        Ok(())
    }

    /// Directory holding the unpacked diff of one layer (an overlay lowerdir), by diffID.
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(diff_id.hex())
    }

    /// The layer a cache record (a step's cache key) points at, if it is still present,
    /// with the time the step first ran.
    pub fn cache_get(&self, key: &Digest) -> Option<(Digest, Option<String>)> {
        let p = self.root.join("roots").join(ROOT_CACHE).join(key.hex());
        let text = fs::read_to_string(p).ok()?;
        let mut lines = text.lines();
        let d: Digest = lines.next()?.trim().parse().ok()?;
        let created = lines
            .next()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty());
        self.has_blob(&d).then_some((d, created))
    }

    /// A memo of the build cache: a small value derived from `key` (e.g. what a COPY's
    /// content key is, given its inputs' identities), so a cached step need not look at
    /// file contents again. Dropped with the cache records.
    pub fn memo_get(&self, key: &Digest) -> Option<String> {
        fs::read_to_string(self.root.join("memo").join(key.hex())).ok()
    }
}

impl Writer<'_> {
    /// Start writing a blob.
    pub fn ingest(&self) -> Result<Ingest<'_>> {
        let path = self.temp_path("ingest");
        let f = File::create(&path).ctx(|| format!("create {}", path.display()))?;
        Ok(Ingest {
            store: self.store,
            path,
            writer: Some(HashingWriter::new(io::BufWriter::with_capacity(1 << 20, f))),
        })
    }

    /// Write a small blob from memory (manifests, configs).
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if self.has_blob(&d) {
            return Ok(d);
        }
        let mut i = self.ingest()?;
        i.write_all(bytes).ctx(|| "write blob".into())?;
        i.commit(Some(&d))?;
        Ok(d)
    }

    /// Store config and manifest for an image whose layer blobs are already present.
    pub fn put_image(&self, config_bytes: &[u8], layers: Vec<Descriptor>) -> Result<Image> {
        for l in &layers {
            let size = self.blob_size(&l.digest)?;
            if size != l.size {
                return Err(Error::SizeMismatch {
                    what: "layer".into(),
                    digest: l.digest.clone(),
                    expected: l.size,
                    actual: size,
                });
            }
        }
        let config: ImageConfig = serde_json::from_slice(config_bytes)
            .map_err(|e| Error::Invalid(format!("invalid image config: {e}")))?;
        let config_digest = self.write_blob(config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(image::MEDIA_OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: image::MEDIA_OCI_CONFIG.into(),
                digest: config_digest,
                size: config_bytes.len() as u64,
                annotations: None,
                platform: None,
            },
            layers,
            annotations: None,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
        let manifest_digest = self.write_blob(&manifest_bytes)?;
        Ok(Image {
            manifest_digest,
            manifest,
            manifest_bytes,
            config,
            config_bytes: config_bytes.to_vec(),
        })
    }

    /// Point `name` at an image; returns the previous target. Every blob the image reaches
    /// must already be in the store.
    pub fn set_ref(&self, name: &Reference, image: &Image) -> Result<Option<Digest>> {
        self.check_complete(image)?;
        let _g = self.refs_lock()?;
        let mut index = self.read_index()?;
        let full = name.to_string();
        let prev = take_ref(&mut index, &full);
        let mut ann = BTreeMap::new();
        ann.insert(ANNOTATION_REF_NAME.to_string(), full);
        index.manifests.push(Descriptor {
            media_type: image::MEDIA_OCI_MANIFEST.into(),
            digest: image.manifest_digest.clone(),
            size: image.manifest_bytes.len() as u64,
            annotations: Some(ann),
            platform: Some(serde_json::json!({
                "architecture": image.config.architecture,
                "os": image.config.os,
            })),
        });
        index.manifests.sort_by(|a, b| {
            let n = |d: &Descriptor| {
                d.annotations
                    .as_ref()
                    .and_then(|x| x.get(ANNOTATION_REF_NAME))
                    .cloned()
            };
            n(a).cmp(&n(b))
        });
        self.write_index(&index)?;
        Ok(prev)
    }

    /// Remove a ref; returns its target if it existed.
    pub fn remove_ref(&self, name: &Reference) -> Result<Option<Digest>> {
        let _g = self.refs_lock()?;
        let mut index = self.read_index()?;
        let full = name.to_string();
        let prev = take_ref(&mut index, &full);
        if prev.is_some() {
            self.write_index(&index)?;
        }
        Ok(prev)
    }

    /// Keep an untagged image (docker's `<none>:<none>`): a GC root naming its manifest.
    pub fn keep_untagged(&self, image: &Image) -> Result<()> {
        self.check_complete(image)?;
        self.set_root(
            ROOT_UNTAGGED,
            image.manifest_digest.hex(),
            std::slice::from_ref(&image.manifest_digest),
        )
    }

    /// Stop keeping an untagged image.
    pub fn drop_untagged(&self, manifest: &Digest) -> Result<()> {
        self.remove_root(ROOT_UNTAGGED, manifest.hex())
    }

    /// Record the compressed form of a layer (its blob must be present).
    pub fn record_compressed(
        &self,
        diff_id: &Digest,
        c: Compression,
        blob: &Digest,
        size: u64,
    ) -> Result<()> {
        let p = self
            .root
            .join("compressed")
            .join(c.name())
            .join(diff_id.hex());
        atomic_write(&p, format!("{blob} {size}\n").as_bytes())
    }

    /// Record a small fact about a blob; pruned together with the blob.
    pub fn set_meta(&self, kind: &str, d: &Digest, value: &str) -> Result<()> {
        let dir = self.root.join("meta").join(kind);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        atomic_write(&dir.join(d.hex()), value.as_bytes())
    }

    /// Set an extra GC root (e.g. a cache record): the listed digests stay alive.
    pub fn set_root(&self, kind: &str, name: &str, digests: &[Digest]) -> Result<()> {
        let dir = self.root.join("roots").join(kind);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let text: String = digests.iter().map(|d| format!("{d}\n")).collect();
        atomic_write(&dir.join(name), text.as_bytes())
    }

    pub fn remove_root(&self, kind: &str, name: &str) -> Result<()> {
        match fs::remove_file(self.root.join("roots").join(kind).join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove root {kind}/{name}")),
        }
    }

    /// Record that the step with cache key `key` produced layer `diff_id` at `created` (a
    /// GC root until `prune --all`).
    pub fn cache_put(&self, key: &Digest, diff_id: &Digest, created: &str) -> Result<()> {
        let dir = self.root.join("roots").join(ROOT_CACHE);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        atomic_write(
            &dir.join(key.hex()),
            format!("{diff_id}\n{created}\n").as_bytes(),
        )
    }

    pub fn memo_put(&self, key: &Digest, value: &str) -> Result<()> {
        let dir = self.root.join("memo");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        atomic_write(&dir.join(key.hex()), value.as_bytes())
    }

    /// A fresh directory under `tmp/` named after this process, removed on drop: for what
    /// becomes a store item (e.g. a snapshot, renamed into place while this lock is held).
    pub fn temp_dir(&self, kind: &str) -> Result<TempDir> {
        self.scratch_dir(kind)
    }

    /// Remove cache records (all, or those last written before `until`); returns how many.
    pub fn drop_cache(&self, until: Option<std::time::SystemTime>) -> Result<usize> {
        // Memos go with the records (their count is not reported).
        remove_older(&self.root.join("memo"), until);
        Ok(remove_older(
            &self.root.join("roots").join(ROOT_CACHE),
            until,
        ))
    }
}

impl Exclusive<'_> {
    /// Remove every blob, compressed-form record and snapshot that no ref or root reaches,
    /// and the temporaries of gone commands (counted in the report; a live owner's stay).
    /// Running writers were waited for when the lock was taken.
    pub fn prune(&self) -> Result<PruneReport> {
        let (live, live_snaps) = self.live_set()?;
        let mut report = PruneReport::default();
        let dir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let e = e.ctx(|| "read blobs".into())?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(d) = Digest::from_hex(name) else {
                continue;
            };
            if !live.contains(&d) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path()).ctx(|| format!("remove blob {d}"))?;
                report.bytes += size;
                report.blobs.push((d, size));
            }
        }
        for c in [Compression::Gzip, Compression::Zstd] {
            remove_dead(&self.root.join("compressed").join(c.name()), &live)?;
        }
        let mdir = self.root.join("meta");
        for kind in fs::read_dir(&mdir)
            .ctx(|| format!("read {}", mdir.display()))?
            .flatten()
        {
            remove_dead(&kind.path(), &live)?;
        }
        let sdir = self.root.join("snapshots");
        for e in fs::read_dir(&sdir)
            .ctx(|| format!("read {}", sdir.display()))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            // `<diffID>` or `<diffID>-<n>` (a repeat of the layer within one chain).
            let id = name.split('-').next().unwrap_or("");
            if !live_snaps.contains(id) {
                let size = dir_size(&e.path());
                remove_tree(&e.path())?;
                report.bytes += size;
                report.snapshots.push(name);
            }
        }
        // Temporaries of gone commands, and those no strata names (an older version's): no
        // writer holds the lock now. A live owner's (a foreground `run`, or a command
        // waiting for the lock) stays.
        report.temporaries = self.sweep(temp::SweepScope::DeadOwnersAndUnnamed);
        // Temp files of atomic writes beside roots and memos (their own names are digests
        // or keys, never temporary names).
        let mut dirs = vec![self.root.join("memo")];
        dirs.extend(
            fs::read_dir(self.root.join("roots"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        for d in dirs {
            let s = temp::sweep(&d, temp::SweepScope::Hidden);
            report.temporaries.entries.extend(s.entries);
            report.temporaries.bytes += s.bytes;
        }
        report.bytes += report.temporaries.bytes;
        Ok(report)
    }
}

/// Remove the files of `dir` (all, or those last written before `until`); returns how many.
fn remove_older(dir: &Path, until: Option<std::time::SystemTime>) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let old_enough = match until {
            None => true,
            Some(t) => e
                .metadata()
                .and_then(|m| m.modified())
                .map(|m| m < t)
                .unwrap_or(true),
        };
        if old_enough && fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// Remove the files of `dir` named by a digest (hex) that is not in `live`.
fn remove_dead(dir: &Path, live: &BTreeSet<Digest>) -> Result<()> {
    for e in fs::read_dir(dir)
        .ctx(|| format!("read {}", dir.display()))?
        .flatten()
    {
        let keep = e
            .file_name()
            .to_str()
            .and_then(|n| Digest::from_hex(n).ok())
            .is_some_and(|d| live.contains(&d));
        if !keep {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Remove the index entry named `full`; returns its manifest digest if there was one.
fn take_ref(index: &mut Index, full: &str) -> Option<Digest> {
    let mut prev = None;
    index.manifests.retain(|d| {
        let same = d
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .map(String::as_str)
            == Some(full);
        if same {
            prev = Some(d.digest.clone());
        }
        !same
    });
    prev
}

/// Bytes under `p` (a file's length, or the sum of the files' lengths in a tree).
pub(crate) fn dir_size_of(p: &Path) -> u64 {
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => dir_size(p),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if let Ok(m) = e.path().symlink_metadata() {
                    if m.is_dir() {
                        stack.push(e.path());
                    } else {
                        total += m.len();
                    }
                }
            }
        }
    }
    total
}

/// An RFC 3339 timestamp with nanoseconds as Go's `time.RFC3339Nano` writes it: trailing
/// zeros of the fraction dropped (and the dot, when nothing is left). Image configs carry
/// these; a tool that re-encodes a config with Go (skopeo converting to OCI) must get the
/// very same bytes back, or the image id changes.
pub fn go_rfc3339_nano(s: &str) -> String {
    let Some(dot) = s.find('.') else {
        return s.to_string();
    };
    let end = s[dot + 1..]
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| dot + 1 + i)
        .unwrap_or(s.len());
    let frac = s[dot + 1..end].trim_end_matches('0');
    if frac.is_empty() {
        format!("{}{}", &s[..dot], &s[end..])
    } else {
        format!("{}.{frac}{}", &s[..dot], &s[end..])
    }
}

/// Now, RFC 3339 with nanoseconds as Go writes it ([`go_rfc3339_nano`]): the time image
/// configs and docker's container records carry.
pub fn now_rfc3339() -> String {
    go_rfc3339_nano(&humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string())
}

/// Remove a tree, making read-only directories writable first.
pub fn remove_tree(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("stat {}", p.display())),
        Ok(m) if !m.is_dir() => {
            return fs::remove_file(p).ctx(|| format!("remove {}", p.display()))
        }
        Ok(_) => {}
    }
    if fs::remove_dir_all(p).is_ok() {
        return Ok(());
    }
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    fs::remove_dir_all(p).ctx(|| format!("remove {}", p.display()))
}

#[cfg(test)]
mod tests;
