//! The build cache beyond one store: `--cache-to` writes the cache records of a build, the
//! layers they name and the contents of its `RUN --mount=type=cache` mounts as one OCI
//! manifest (in an OCI image layout directory, or in a registry repository: a [`BlobSink`]
//! from the request's `Remote`); `--cache-from` reads one back and serves its records *lazily*: a step whose
//! key is in an imported record is CACHED without its layer, and a layer is fetched only
//! when something needs its bytes (a snapshot for a RUN or a COPY, or the final image).
//!
//! The format is strata's own (see the README): the manifest's config
//! ([`CONFIG_MEDIA_TYPE`]) is a [`CacheConfig`]; its layers are the gzip layer blobs and the
//! cache-mount tarballs the config names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use store::{Digest, Store, Writer};

use crate::error::{BuildError, RemoteError};

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.strata.buildcache.config.v1+json";
pub const MOUNT_MEDIA_TYPE: &str = "application/vnd.strata.buildcache.mount.v1.tar+gzip";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The image config key of an inline cache (`--cache-to type=inline`; BuildKit's is
/// `moby.buildkit.cache.v0`): a [`CacheConfig`] whose `layers` and `mounts` are empty.
pub const INLINE_KEY: &str = "strata.buildcache.v1";
/// Image config media types (OCI, Docker): a manifest with one may carry an inline cache.
const IMAGE_CONFIG_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// What a cache export holds.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct CacheConfig {
    pub version: u32,
    /// Step key → the layer the step produced.
    pub records: Vec<Record>,
    /// COPY input identity → its content key (see `copy.rs`), so a cached COPY needs no
    /// snapshot of its source or destination.
    pub memos: Vec<Memo>,
    /// Layer diffID → its compressed blob in this export.
    pub layers: Vec<LayerRef>,
    /// Cache mount id (the hex store name) → a gzip tarball of its contents.
    pub mounts: Vec<MountRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub key: Digest,
    pub diff_id: Digest,
    pub created: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Memo {
    pub key: Digest,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LayerRef {
    pub diff_id: Digest,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MountRef {
    pub id: String,
    pub digest: Digest,
    pub size: u64,
}

/// What one build used, for exporting: filled in by the solver.
#[derive(Default, Debug, Clone)]
pub struct Used {
    /// (stage index, record) for every step that has a layer (or the empty layer).
    pub records: Vec<(usize, Record)>,
    pub memos: Vec<(usize, Memo)>,
    /// Cache mounts RUN steps of this build mounted (hex store names).
    pub mounts: BTreeSet<String>,
}

/// A cache import or export that failed: what (`cache layer sha256:… from DIR`, `exporting
/// the cache to DIR`) and how.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A blob longer or shorter than its descriptor says.
    #[error("{what}: {}", size_mismatch(.digest, *.declared, *.read))]
    Size {
        what: String,
        digest: Digest,
        declared: u64,
        read: u64,
    },
    /// A blob whose content is not what its digest (or its layer's diffID) says.
    #[error("{what}: {message}")]
    Content { what: String, message: String },
    /// The source or the sink failed, or reading, unpacking or packing the data did.
    #[error("{what}: {message}")]
    Transfer { what: String, message: String },
    /// `--cache-from IMAGE` of an image built without `--cache-to type=inline`.
    #[error("{what}: the image has no inline cache (build it with --cache-to type=inline)")]
    NoInline { what: String },
}

impl CacheError {
    fn transfer(what: &str, message: impl ToString) -> CacheError {
        CacheError::Transfer {
            what: what.to_string(),
            message: message.to_string(),
        }
    }
}

/// Where imported blobs come from (a local OCI layout, a registry).
pub trait BlobSource: Send + Sync {
    /// For messages: the directory or the registry reference.
    fn describe(&self) -> String;
    /// The blob's bytes (verified by the caller against the digest).
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, RemoteError>;
}

/// Where an export goes. Every blob given to `put` is also in the store.
pub trait BlobSink {
    fn describe(&self) -> String;
    /// Whether the destination has the blob already.
    fn has(&self, digest: &Digest) -> bool;
    fn put(&self, digest: &Digest, size: u64, data: &mut dyn Read) -> Result<(), RemoteError>;
    /// Store the manifest (the destination names it: a tag, or `latest` in index.json).
    fn put_manifest(&self, media_type: &str, bytes: &[u8]) -> Result<(), RemoteError>;
}

/// An OCI image layout directory: `type=local,dest=DIR` / `src=DIR`.
pub struct LocalDir(pub PathBuf);

impl LocalDir {
    fn blob(&self, d: &Digest) -> PathBuf {
        self.0.join("blobs").join("sha256").join(d.hex())
    }

    /// The manifest index.json names (the `latest` entry, else the first).
    pub fn manifest(&self) -> Result<Vec<u8>, RemoteError> {
        let p = self.0.join("index.json");
        let text = std::fs::read(&p).map_err(|e| format!("read {}: {e}", p.display()))?;
        let idx: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| format!("{}: not an OCI index: {e}", p.display()))?;
        let ms = idx["manifests"].as_array().cloned().unwrap_or_default();
        let pick = ms
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
            .or(ms.first())
            .ok_or_else(|| format!("{}: names no manifest", p.display()))?;
        let d: Digest = pick["digest"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let size = pick["size"]
            .as_u64()
            .ok_or_else(|| format!("{}: the manifest's descriptor has no size", p.display()))?;
        read_verified(self.open(&d)?, &d, size).map_err(|e| RemoteError(e.to_string()))
    }
}

impl LocalDir {
    /// An export writes only into real directories: the destination, `blobs` and
    /// `blobs/sha256` must not be symlinks (one would send the blobs elsewhere).
    fn no_links(&self) -> Result<(), RemoteError> {
        let blobs = self.0.join("blobs");
        for p in [self.0.clone(), blobs.join("sha256"), blobs] {
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(RemoteError(format!(
                    "cache export to {}: {} is a symlink; refusing to write through it",
                    self.0.display(),
                    p.display()
                )));
            }
        }
        Ok(())
    }
}

impl BlobSource for LocalDir {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, RemoteError> {
        let p = self.blob(digest);
        let f = std::fs::File::open(&p).map_err(|e| format!("open {}: {e}", p.display()))?;
        Ok(Box::new(f))
    }
}

impl BlobSink for LocalDir {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }
    fn has(&self, digest: &Digest) -> bool {
        self.blob(digest).is_file()
    }
    fn put(&self, digest: &Digest, _size: u64, data: &mut dyn Read) -> Result<(), RemoteError> {
        let p = self.blob(digest);
        let dir = p.parent().expect("blob dir");
        self.no_links()?;
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        // Named after this process; what a killed export left for this blob goes first.
        let kind = format!(".tmp-{}", digest.hex());
        store::temp::sweep(dir, store::temp::SweepScope::Kind(&kind));
        let tmp = dir.join(store::temp_name(&kind));
        let _ = std::fs::remove_file(&tmp);
        let res = (|| {
            // O_EXCL: a symlink planted at the temp's name is not followed; the rename below
            // replaces one planted at the blob's name.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| format!("create {}: {e}", tmp.display()))?;
            let mut hw = store::HashingWriter::new(&mut f);
            std::io::copy(data, &mut hw).map_err(|e| format!("write {}: {e}", tmp.display()))?;
            let (got, _, _) = hw.finish();
            if &got != digest {
                return Err(format!("blob {digest} read back as {got}"));
            }
            std::fs::rename(&tmp, &p).map_err(|e| format!("rename {}: {e}", p.display()))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(res?)
    }
    fn put_manifest(&self, media_type: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        let d = Digest::of(bytes);
        self.put(&d, bytes.len() as u64, &mut &bytes[..])?;
        let layout = self.0.join("oci-layout");
        store::atomic_write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(|e| RemoteError(e.to_string()))?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": media_type,
                "digest": d.to_string(),
                "size": bytes.len(),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }],
        });
        store::atomic_write(
            &self.0.join("index.json"),
            serde_json::to_string_pretty(&index)
                .expect("index serializes")
                .as_bytes(),
        )
        .map_err(|e| RemoteError(e.to_string()))
    }
}

/// Manifests and configs are small: refuse more than this.
const MAX_SMALL: u64 = 64 << 20;

/// The error for a blob whose length is not its descriptor's size (`read` is what was read
/// with the stream cut at size + 1).
fn size_mismatch(d: &Digest, declared: u64, read: u64) -> String {
    if read > declared {
        format!("blob {d}: the descriptor says {declared} bytes, the data holds more")
    } else {
        format!("blob {d}: the descriptor says {declared} bytes, the data holds {read}")
    }
}

/// What a small blob's check found wrong.
#[derive(Debug, thiserror::Error)]
enum SmallBlobError {
    #[error("{0}: larger than {MAX_SMALL} bytes ({1})")]
    TooLarge(Digest, u64),
    #[error("read {0}: {1}")]
    Read(Digest, std::io::Error),
    #[error("{}", size_mismatch(.0, *.1, *.2))]
    Size(Digest, u64, u64),
    #[error("{0}: content hashes to {1}")]
    Content(Digest, Digest),
}

/// Read a small blob of the descriptor's `size` (cut at size + 1) and check its digest.
fn read_verified(
    r: Box<dyn Read + Send + '_>,
    d: &Digest,
    size: u64,
) -> Result<Vec<u8>, SmallBlobError> {
    if size > MAX_SMALL {
        return Err(SmallBlobError::TooLarge(d.clone(), size));
    }
    let mut buf = Vec::new();
    r.take(size + 1)
        .read_to_end(&mut buf)
        .map_err(|e| SmallBlobError::Read(d.clone(), e))?;
    if buf.len() as u64 != size {
        return Err(SmallBlobError::Size(d.clone(), size, buf.len() as u64));
    }
    let got = Digest::of(&buf);
    if &got != d {
        return Err(SmallBlobError::Content(d.clone(), got));
    }
    Ok(buf)
}

/// An imported cache, served lazily.
pub struct Imported {
    source: Box<dyn BlobSource>,
    records: HashMap<Digest, (Digest, String)>,
    memos: HashMap<Digest, String>,
    layers: HashMap<Digest, LayerRef>,
    mounts: HashMap<String, MountRef>,
    /// Layers fetched so far (for the summary and the tests).
    pub fetched: Mutex<Vec<Digest>>,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Imported({}, {} records)",
            self.describe(),
            self.records.len()
        )
    }
}

impl Imported {
    /// Read a cache manifest and its config from `source`.
    pub fn open(source: Box<dyn BlobSource>, manifest: &[u8]) -> Result<Imported, CacheError> {
        let what = source.describe();
        let bad = |message: String| CacheError::Content {
            what: what.clone(),
            message,
        };
        let m: serde_json::Value = serde_json::from_slice(manifest)
            .map_err(|e| bad(format!("the cache manifest is not JSON: {e}")))?;
        let config_type = m["config"]["mediaType"].as_str().unwrap_or_default();
        let image = IMAGE_CONFIG_MEDIA_TYPES.contains(&config_type);
        if config_type != CONFIG_MEDIA_TYPE && !image {
            return Err(bad(format!(
                "not a strata build cache (config media type {})",
                m["config"]["mediaType"]
            )));
        }
        let cd: Digest = m["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .parse::<Digest>()
            .map_err(|e| bad(e.to_string()))?;
        let csize = m["config"]["size"]
            .as_u64()
            .ok_or_else(|| bad("the cache config's descriptor has no size".into()))?;
        let config = source
            .open(&cd)
            .map_err(|e| CacheError::transfer(&what, e))?;
        let bytes = read_verified(config, &cd, csize).map_err(|e| bad(e.to_string()))?;
        let c: CacheConfig = if image {
            inline_of(&m, &bytes).map_err(|e| match e {
                None => CacheError::NoInline { what: what.clone() },
                Some(message) => bad(message),
            })?
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("bad cache config: {e}")))?
        };
        if c.version != 1 {
            return Err(bad(format!("cache format version {} unknown", c.version)));
        }
        Ok(Imported {
            source,
            records: c
                .records
                .into_iter()
                .map(|r| (r.key, (r.diff_id, r.created)))
                .collect(),
            memos: c.memos.into_iter().map(|m| (m.key, m.value)).collect(),
            layers: c
                .layers
                .into_iter()
                .map(|l| (l.diff_id.clone(), l))
                .collect(),
            mounts: c.mounts.into_iter().map(|m| (m.id.clone(), m)).collect(),
            fetched: Mutex::new(Vec::new()),
        })
    }

    /// Whether this import holds no records (an image without an inline cache).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Open a local OCI layout directory (`--cache-from type=local,src=DIR`).
    pub fn open_local(dir: &Path) -> Result<Imported, CacheError> {
        let src = LocalDir(dir.to_path_buf());
        let manifest = src
            .manifest()
            .map_err(|e| CacheError::transfer(&BlobSource::describe(&src), e))?;
        Imported::open(Box::new(src), &manifest)
    }

    pub fn describe(&self) -> String {
        self.source.describe()
    }
}

/// An image of the store as a cache source (`--cache-from IMAGE` of an image the store has:
/// its inline cache, its blobs the store's own).
pub struct StoreImage {
    pub store: Store,
    pub name: String,
}

impl BlobSource for StoreImage {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, RemoteError> {
        self.store
            .open_blob(digest)
            .map(|r| Box::new(r) as Box<dyn Read + Send>)
            .map_err(|e| RemoteError(e.to_string()))
    }
}

/// The inline cache of an image (its manifest `m`, its config `config`): the records and
/// memos under [`INLINE_KEY`], and its layers paired with the config's diffIDs. `Err(None)`:
/// the image has no inline cache.
fn inline_of(m: &serde_json::Value, config: &[u8]) -> Result<CacheConfig, Option<String>> {
    let v: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| Some(format!("the image config is not JSON: {e}")))?;
    let Some(inline) = v.get(INLINE_KEY) else {
        return Err(None);
    };
    let mut c: CacheConfig = serde_json::from_value(inline.clone())
        .map_err(|e| Some(format!("bad inline cache: {e}")))?;
    let diff_ids: Vec<Digest> = serde_json::from_value(v["rootfs"]["diff_ids"].clone())
        .map_err(|e| Some(format!("bad rootfs.diff_ids: {e}")))?;
    let layers = m["layers"].as_array().cloned().unwrap_or_default();
    if layers.len() != diff_ids.len() {
        return Err(Some(format!(
            "the manifest has {} layers, the config {} diffIDs",
            layers.len(),
            diff_ids.len()
        )));
    }
    c.layers = Vec::new();
    c.mounts = Vec::new();
    for (d, l) in diff_ids.into_iter().zip(layers) {
        let digest = l["digest"]
            .as_str()
            .unwrap_or_default()
            .parse::<Digest>()
            .map_err(|e| Some(format!("a layer descriptor: {e}")))?;
        let size = l["size"]
            .as_u64()
            .ok_or_else(|| Some("a layer descriptor has no size".to_string()))?;
        c.layers.push(LayerRef {
            diff_id: d,
            digest,
            size,
        });
    }
    Ok(c)
}

/// The imports active for a store during a build (looked up by the snapshot code, which
/// sees only the store).
type Active = Vec<(PathBuf, Arc<Imported>)>;
static ACTIVE: Mutex<Active> = Mutex::new(Vec::new());

fn active(store: &Store) -> Vec<Arc<Imported>> {
    ACTIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(root, _)| root == store.root())
        .map(|(_, i)| i.clone())
        .collect()
}

/// Keeps imports active until dropped.
pub(crate) struct Activation {
    root: PathBuf,
    imports: Vec<Arc<Imported>>,
}

pub(crate) fn activate(store: &Store, imports: &[Arc<Imported>]) -> Activation {
    let mut a = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
    for i in imports {
        a.push((store.root().to_path_buf(), i.clone()));
    }
    Activation {
        root: store.root().to_path_buf(),
        imports: imports.to_vec(),
    }
}

impl Drop for Activation {
    fn drop(&mut self) {
        let mut a = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        a.retain(|(root, i)| {
            !(root == &self.root && self.imports.iter().any(|x| Arc::ptr_eq(x, i)))
        });
    }
}

/// A step's cache record: the store's own, else an imported one (whose layer may not be
/// here yet: [`ensure_blob`] fetches it when its bytes are needed).
pub(crate) fn get(store: &Store, key: &Digest) -> Option<(Digest, Option<String>)> {
    if let Some(hit) = store.cache_get(key) {
        return Some(hit);
    }
    for i in active(store) {
        if let Some((d, created)) = i.records.get(key) {
            if store.has_blob(d) || i.layers.contains_key(d) {
                return Some((d.clone(), Some(created.clone())));
            }
        }
    }
    None
}

/// A memo: the store's own, else an imported one.
pub(crate) fn memo(store: &Store, key: &Digest) -> Option<String> {
    store
        .memo_get(key)
        .or_else(|| active(store).iter().find_map(|i| i.memos.get(key).cloned()))
}

/// Make sure the store has the layer `diff_id`, fetching it from an imported cache if it
/// is not there. The fetched layer is decompressed, hashed and checked against its diffID
/// on the way in; nothing half-written stays in the store.
pub(crate) fn ensure_blob(store: &Writer<'_>, diff_id: &Digest) -> Result<(), BuildError> {
    if store.has_blob(diff_id) {
        return Ok(());
    }
    for i in active(store) {
        let Some(l) = i.layers.get(diff_id) else {
            continue;
        };
        let what = format!("cache layer {} from {}", l.digest, i.describe());
        let r = i
            .source
            .open(&l.digest)
            .map_err(|e| CacheError::transfer(&what, e))?;
        // Cut at size + 1: a descriptor that understates its blob stops the read there.
        let mut hr = store::HashingReader::new(r.take(l.size.saturating_add(1)));
        let got = archive::ingest_layer(store, &mut hr, &what);
        let drained = std::io::copy(&mut hr, &mut std::io::sink());
        let (compressed, read) = hr.finish();
        if drained.is_ok() && read != l.size {
            return Err(CacheError::Size {
                what,
                digest: l.digest.clone(),
                declared: l.size,
                read,
            }
            .into());
        }
        let got = got.map_err(|e| CacheError::transfer(&what, e))?;
        if compressed != l.digest || &got.diff_id != diff_id {
            return Err(CacheError::Content {
                message: format!(
                    "content does not match (blob {compressed}, layer {})",
                    got.diff_id
                ),
                what,
            }
            .into());
        }
        i.fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(diff_id.clone());
        return Ok(());
    }
    Ok(())
}

/// Fill an empty cache mount directory from an imported cache, if one carries it.
pub(crate) fn ensure_mount(store: &Writer<'_>, id: &str, dir: &Path) -> Result<(), BuildError> {
    let empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if !empty {
        return Ok(());
    }
    for i in active(store) {
        let Some(m) = i.mounts.get(id) else {
            continue;
        };
        let what = format!("cache mount {} from {}", m.digest, i.describe());
        let r = i
            .source
            .open(&m.digest)
            .map_err(|e| CacheError::transfer(&what, e))?;
        let mut hr = store::HashingReader::new(r.take(m.size.saturating_add(1)));
        // Under tmp/ (same filesystem as the destination), named after this process.
        let tmp = store.temp_dir("import")?;
        let res = (|| {
            let dec = layer::Decompressor::new(&mut hr).map_err(|e| e.to_string())?;
            let opts = layer::ApplyOptions {
                whiteouts: layer::Whiteouts::Overlay,
                same_owner: true,
                ..Default::default()
            };
            layer::apply(dec, tmp.path(), &opts).map_err(|e| e.to_string())?;
            std::io::copy(&mut hr, &mut std::io::sink()).map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        })();
        let (got, read) = hr.finish();
        if read > m.size || (res.is_ok() && read != m.size) {
            return Err(CacheError::Size {
                what,
                digest: m.digest.clone(),
                declared: m.size,
                read,
            }
            .into());
        }
        res.map_err(|e| CacheError::transfer(&what, e))?;
        if got != m.digest {
            return Err(CacheError::Content {
                what,
                message: format!("content hashes to {got}"),
            }
            .into());
        }
        let _ = std::fs::remove_dir(dir);
        std::fs::rename(tmp.path(), dir).map_err(|e| BuildError::io(&what, e))?;
        tmp.keep();
        return Ok(());
    }
    Ok(())
}

/// What an export wrote.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub records: usize,
    pub layers: usize,
    pub mounts: usize,
    /// Blobs written (the rest were at the destination already).
    pub uploaded: usize,
}

/// Export the cache of a finished build: with `max`, every step of every stage; else only
/// the steps whose layers are in the final image (BuildKit's `mode=min`).
pub fn export(
    store: &Writer<'_>,
    result: &crate::BuildResult,
    max: bool,
    sink: &dyn BlobSink,
) -> Result<ExportStats, BuildError> {
    let (records, memos) = exported(result, max);
    let mut up = Upload {
        store,
        sink,
        what: format!("exporting the cache to {}", sink.describe()),
        uploaded: 0,
        descriptors: Vec::new(),
    };
    let mut layers = Vec::new();
    let diffs: BTreeSet<&Digest> = records.iter().map(|r| &r.diff_id).collect();
    for d in diffs {
        let (c, size) = archive::compressed_layer(store, d, layer::Compression::Gzip)
            .map_err(|e| up.fail(e))?;
        up.layer(LAYER_MEDIA_TYPE, &c, size)?;
        layers.push(LayerRef {
            diff_id: d.clone(),
            digest: c,
            size,
        });
    }
    let mut mounts = Vec::new();
    for id in &result.used.mounts {
        let dir = store.root().join("cache-mounts").join(id);
        if !dir.is_dir() {
            continue;
        }
        let (c, size) = mount_blob(store, &dir)?;
        up.layer(MOUNT_MEDIA_TYPE, &c, size)?;
        mounts.push(MountRef {
            id: id.clone(),
            digest: c,
            size,
        });
    }
    let stats = ExportStats {
        records: records.len(),
        layers: layers.len(),
        mounts: mounts.len(),
        uploaded: 0,
    };
    let config = CacheConfig {
        version: 1,
        records,
        memos,
        layers,
        mounts,
    };
    let uploaded = up.manifest(&config)?;
    Ok(ExportStats { uploaded, ..stats })
}

/// The records and memos an export keeps: with `max` all; else the records of the final
/// image's layers (and the target's empty ones) and the target's memos.
fn exported(result: &crate::BuildResult, max: bool) -> (Vec<Record>, Vec<Memo>) {
    if result.platforms.is_empty() {
        return selected(
            &result.image.config.rootfs.diff_ids,
            result.plan.target,
            &result.used,
            max,
        );
    }
    // Several platforms: every platform's records and memos, each key once.
    let mut records = BTreeMap::new();
    let mut memos = BTreeSet::new();
    for (_, r) in &result.platforms {
        let (rs, ms) = exported(r, max);
        records.extend(rs.into_iter().map(|r| (r.key.clone(), r)));
        memos.extend(ms);
    }
    (records.into_values().collect(), memos.into_iter().collect())
}

/// The inline cache of an image whose layers are `diff_ids` (`--cache-to type=inline`):
/// mode=min's records and memos; the layers are the image's own, so the config names
/// none (an import pairs the config's diffIDs with the manifest's layers).
pub(crate) fn inline(diff_ids: &[Digest], target: usize, used: &Used) -> CacheConfig {
    let (records, memos) = selected(diff_ids, target, used, false);
    CacheConfig {
        version: 1,
        records,
        memos,
        layers: Vec::new(),
        mounts: Vec::new(),
    }
}

fn selected(
    diff_ids: &[Digest],
    target: usize,
    used: &Used,
    max: bool,
) -> (Vec<Record>, Vec<Memo>) {
    let final_layers: BTreeSet<&Digest> = diff_ids.iter().collect();
    let mut records = BTreeMap::new();
    for (stage, r) in &used.records {
        let keep = max
            || final_layers.contains(&r.diff_id)
            || (*stage == target && r.diff_id == crate::solver::empty_layer());
        if keep {
            records.insert(r.key.clone(), r.clone());
        }
    }
    let memos: BTreeSet<Memo> = used
        .memos
        .iter()
        .filter(|(stage, _)| max || *stage == target)
        .map(|(_, m)| m.clone())
        .collect();
    (records.into_values().collect(), memos.into_iter().collect())
}

/// An export's blobs, from the store to the sink unless the sink has them, and the
/// manifest's layer descriptors.
struct Upload<'a> {
    store: &'a Writer<'a>,
    sink: &'a dyn BlobSink,
    what: String,
    /// Blobs written.
    uploaded: usize,
    descriptors: Vec<serde_json::Value>,
}

impl Upload<'_> {
    fn fail(&self, e: impl std::fmt::Display) -> CacheError {
        CacheError::transfer(&self.what, e)
    }

    fn blob(&mut self, d: &Digest, size: u64) -> Result<(), BuildError> {
        if !self.sink.has(d) {
            let mut r = self.store.open_blob(d)?;
            self.sink.put(d, size, &mut r).map_err(|e| self.fail(e))?;
            self.uploaded += 1;
        }
        Ok(())
    }

    /// A layer of the manifest: a layer blob or a cache mount's tarball.
    fn layer(&mut self, media_type: &str, d: &Digest, size: u64) -> Result<(), BuildError> {
        self.blob(d, size)?;
        self.descriptors.push(serde_json::json!({
            "mediaType": media_type, "digest": d.to_string(), "size": size,
        }));
        Ok(())
    }

    /// The config and the manifest naming it and the layers; how many blobs were written.
    fn manifest(mut self, config: &CacheConfig) -> Result<usize, BuildError> {
        let cbytes = serde_json::to_vec(config).expect("cache config serializes");
        // Every blob a sink is given is in the store (a registry sink uploads from there).
        let cd = self.store.write_blob(&cbytes)?;
        self.blob(&cd, cbytes.len() as u64)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": cd.to_string(), "size": cbytes.len()},
            "layers": self.descriptors,
        });
        let mbytes = serde_json::to_vec(&manifest).expect("manifest serializes");
        self.sink
            .put_manifest(MANIFEST_MEDIA_TYPE, &mbytes)
            .map_err(|e| self.fail(e))?;
        Ok(self.uploaded)
    }
}

/// A cache mount's contents as a gzip tarball in the store (a blob that the next prune
/// drops unless something refers to it).
fn mount_blob(store: &Writer<'_>, dir: &Path) -> Result<(Digest, u64), BuildError> {
    let mut ing = store.ingest()?;
    let opts = layer::CommitOptions::default();
    let what = format!("cache mount {}", dir.display());
    let tar_tmp = {
        // tar first (hashing), then compress from the stored tar.
        let info = layer::commit(dir, &opts, &mut ing)
            .map_err(|e| CacheError::transfer(&what, format!("tar: {e}")))?;
        ing.commit(Some(&info.diff_id))?.0
    };
    let (c, size) = archive::compressed_layer(store, &tar_tmp, layer::Compression::Gzip)
        .map_err(|e| CacheError::transfer(&what, e))?;
    Ok((c, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache layout directory holding `blob`, its index naming it with `size`.
    fn layout_with(dir: &Path, blob: &[u8], size: u64) -> Digest {
        let d = Digest::of(blob);
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(d.hex()), blob).unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": d.to_string(), "size": size}]});
        std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
        d
    }

    #[test]
    fn a_manifest_descriptor_with_the_wrong_size_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let blob = vec![b' '; 100];
        let d = layout_with(t.path(), &blob, 10);
        let err = LocalDir(t.path().into()).manifest().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("blob {d}: the descriptor says 10 bytes, the data holds more")
        );
        layout_with(t.path(), &blob, 1000);
        let err = LocalDir(t.path().into()).manifest().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("blob {d}: the descriptor says 1000 bytes, the data holds 100")
        );
        layout_with(t.path(), &blob, 100);
        assert_eq!(LocalDir(t.path().into()).manifest().unwrap(), blob);
    }

    #[test]
    fn a_cache_layer_longer_or_shorter_than_its_descriptor_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path().join("store")).unwrap();
        let src = t.path().join("rootfs");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("big"), vec![7u8; 1 << 20]).unwrap();
        let mut tar = Vec::new();
        layer::commit(&src, &layer::CommitOptions::default(), &mut tar).unwrap();
        let cache = t.path().join("cache");
        let d = layout_with(&cache, &tar, tar.len() as u64);
        for (size, tail) in [
            (10, "holds more".to_string()),
            (tar.len() as u64 + 5, format!("holds {}", tar.len())),
        ] {
            let imported = Arc::new(Imported {
                source: Box::new(LocalDir(cache.clone())),
                records: HashMap::new(),
                memos: HashMap::new(),
                layers: HashMap::from([(
                    d.clone(),
                    LayerRef {
                        diff_id: d.clone(),
                        digest: d.clone(),
                        size,
                    },
                )]),
                mounts: HashMap::new(),
                fetched: Mutex::new(Vec::new()),
            });
            let _active = activate(&store, std::slice::from_ref(&imported));
            let err = match ensure_blob(&store.lock_shared().unwrap(), &d) {
                Err(BuildError::Cache(e @ CacheError::Size { .. })) => e.to_string(),
                other => panic!("size {size}: {other:?}"),
            };
            assert!(
                err.ends_with(&format!(
                    "blob {d}: the descriptor says {size} bytes, the data {tail}"
                )),
                "{err}"
            );
            assert!(imported.fetched.lock().unwrap().is_empty());
        }
    }
}
