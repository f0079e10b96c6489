//! `load`: docker-archive or OCI-archive → store.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use store::image::{Descriptor, ImageConfig, Index, Manifest, MEDIA_OCI_LAYER};
use store::{
    Compression as StoreCompression, Digest, Image, Reference, Store, StoredIndex, Writer,
};

use crate::{ingest_layer, io_err, Error, Result};

/// An image that was loaded, with the names the archive gave it.
#[derive(Debug)]
pub struct Loaded {
    /// The image; of an index, the host's (else its first).
    pub image: Image,
    pub names: Vec<Reference>,
    /// The image index the names are given to, when the archive named one.
    pub index: Option<StoredIndex>,
}

/// The archive's members, spooled to a private temp directory (never at archive-chosen
/// paths: members are numbered files, looked up through a map of their cleaned names).
struct Spool {
    dir: PathBuf,
    files: HashMap<String, PathBuf>,
    links: HashMap<String, String>,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = store::remove_tree(&self.dir);
    }
}

/// A member name cleaned, `None` when it climbs out or names nothing.
fn clean_name(raw: &str) -> Option<String> {
    let parts = escape::clean::contained(raw)?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl Spool {
    fn read<R: Read>(store: &Store, reader: R) -> Result<Spool> {
        let dir = store.temp_path("load");
        fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let mut spool = Spool {
            dir,
            files: HashMap::new(),
            links: HashMap::new(),
        };
        let bad = |e: io::Error| Error::Format(format!("not a valid image archive: {e}"));
        let mut ar = tar::Archive::new(reader);
        for (i, entry) in ar.entries().map_err(bad)?.enumerate() {
            let mut entry = entry.map_err(bad)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
            let Some(name) = clean_name(&raw) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let p = spool.dir.join(format!("m{i}"));
                    let mut f =
                        File::create(&p).map_err(io_err(format!("create {}", p.display())))?;
                    io::copy(&mut entry, &mut f).map_err(|e| {
                        Error::Format(format!("archive member {}: {e}", escape::text(&raw)))
                    })?;
                    spool.files.insert(name, p);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target =
                        String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default())
                            .to_string();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Symlink
                        && !target.starts_with('/')
                    {
                        let parent = name.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                        format!("{parent}/{target}")
                    } else {
                        target
                    };
                    if let Some(t) = clean_name(&resolved) {
                        spool.links.insert(name, t);
                    }
                }
                _ => {}
            }
        }
        Ok(spool)
    }

    fn path(&self, name: &str) -> Option<&Path> {
        let mut n = clean_name(name)?;
        for _ in 0..16 {
            if let Some(p) = self.files.get(&n) {
                return Some(p);
            }
            n = self.links.get(&n)?.clone();
        }
        None
    }

    fn open(&self, name: &str) -> Result<File> {
        let p = self.path(name).ok_or_else(|| {
            Error::Format(format!("archive has no member {}", escape::text(name)))
        })?;
        File::open(p).map_err(io_err(format!("open {}", p.display())))
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let mut f = self.open(name)?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len > 64 << 20 {
            return Err(Error::Format(format!(
                "archive member {} is too large ({len} bytes)",
                escape::text(name)
            )));
        }
        let mut v = Vec::with_capacity(len as usize);
        f.read_to_end(&mut v)
            .map_err(io_err(format!("read {name}")))?;
        Ok(v)
    }
}

#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Ingest layers (spooled path, member name, OCI descriptor if any), checking each against
/// the config's diff_ids and, for OCI blobs, against the descriptor's digest.
fn ingest_layers(
    store: &Writer<'_>,
    config: &ImageConfig,
    layers: Vec<(PathBuf, String, Option<Descriptor>)>,
) -> Result<Vec<Descriptor>> {
    if layers.len() != config.rootfs.diff_ids.len() {
        return Err(Error::Format(format!(
            "image has {} layers but its config lists {} diff_ids",
            layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut out = Vec::new();
    for (i, ((path, name, desc), expected)) in
        layers.into_iter().zip(&config.rootfs.diff_ids).enumerate()
    {
        let file = File::open(&path).map_err(io_err(format!("open {name}")))?;
        let mut reader = store::HashingReader::new(io::BufReader::with_capacity(1 << 20, file));
        let l = ingest_layer(store, &mut reader, &name)?;
        let (blob_digest, _) = reader.finish();
        if let Some(d) = &desc {
            if d.digest != blob_digest {
                return Err(Error::Format(format!(
                    "layer {i} ({name}): content hashes to {blob_digest}, the manifest says {}",
                    d.digest
                )));
            }
        }
        if &l.diff_id != expected {
            return Err(Error::Format(format!(
                "layer {i} ({name}): uncompressed content hashes to {}, the image config says {expected}",
                l.diff_id
            )));
        }
        // Keep a compressed blob as it came, so a later save or push reuses its digest.
        if let Some(c) = l.compression {
            let c = match c {
                layer::Compression::Gzip => StoreCompression::Gzip,
                layer::Compression::Zstd => StoreCompression::Zstd,
            };
            let mut f = File::open(&path).map_err(io_err(format!("open {name}")))?;
            let mut ing = store.ingest()?;
            io::copy(&mut f, &mut ing).map_err(io_err(format!("copy {name}")))?;
            let (d, size) = ing.commit(Some(&blob_digest))?;
            store.record_compressed(&l.diff_id, c, &d, size)?;
        }
        out.push(Descriptor {
            media_type: MEDIA_OCI_LAYER.into(),
            digest: l.diff_id,
            size: l.stats.tar_size,
            annotations: None,
            platform: None,
        });
    }
    Ok(out)
}

fn load_docker(store: &Writer<'_>, spool: &Spool) -> Result<Vec<Loaded>> {
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&spool.read_small("manifest.json")?)
            .map_err(|e| Error::Format(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let config_bytes = spool.read_small(&e.config)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|err| {
            Error::Format(format!(
                "{}: invalid image config: {err}",
                escape::text(&e.config)
            ))
        })?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let p = spool
                .path(l)
                .ok_or_else(|| Error::Format(format!("archive has no member {}", escape::text(l))))?
                .to_path_buf();
            layers.push((p, l.clone(), None));
        }
        let descs = ingest_layers(store, &config, layers)?;
        let image = store.put_image(&config_bytes, descs)?;
        let mut names = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            names.push(Reference::parse(&t).map_err(|e| {
                Error::Format(format!(
                    "manifest.json: RepoTags: {}",
                    escape::text(&e.to_string())
                ))
            })?);
        }
        out.push(Loaded {
            image,
            names,
            index: None,
        });
    }
    Ok(out)
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// A descriptor's size against the blob the archive holds (its spooled length): checked
/// before the blob is read, so a small descriptor cannot pass a large blob, or the reverse.
fn check_size(spool: &Spool, d: &Descriptor) -> Result<()> {
    let name = blob_name(&d.digest);
    let p = spool
        .path(&name)
        .ok_or_else(|| Error::Format(format!("archive has no blob {}", d.digest)))?;
    let actual = fs::metadata(p)
        .map_err(io_err(format!("stat {}", p.display())))?
        .len();
    if actual != d.size {
        return Err(Error::Format(format!(
            "blob {}: the descriptor says {} bytes, the archive holds {actual}",
            d.digest, d.size
        )));
    }
    Ok(())
}

fn read_verified(spool: &Spool, desc: &Descriptor) -> Result<Vec<u8>> {
    check_size(spool, desc)?;
    let d = &desc.digest;
    let bytes = spool.read_small(&blob_name(d))?;
    let actual = Digest::of(&bytes);
    if &actual != d {
        return Err(Error::Format(format!(
            "blob {d} in the archive hashes to {actual}"
        )));
    }
    Ok(bytes)
}

/// Whether an index's entry is no image of a platform: buildx's attestation manifests
/// (`unknown/unknown`).
fn is_attestation(d: &Descriptor) -> bool {
    d.platform
        .as_ref()
        .and_then(|p| p.get("os"))
        .and_then(|o| o.as_str())
        == Some("unknown")
}

/// One image manifest of the archive (its bytes already verified) into the store.
fn load_manifest(
    store: &Writer<'_>,
    spool: &Spool,
    d: &Descriptor,
    v: serde_json::Value,
) -> Result<Image> {
    let manifest: Manifest = serde_json::from_value(v)
        .map_err(|e| Error::Format(format!("manifest {}: {e}", d.digest)))?;
    let config_bytes = read_verified(spool, &manifest.config)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::Format(format!("config {}: {e}", manifest.config.digest)))?;
    let mut layers = Vec::new();
    for l in &manifest.layers {
        check_size(spool, l)?;
        let p = spool
            .path(&blob_name(&l.digest))
            .ok_or_else(|| Error::Format(format!("archive has no blob {}", l.digest)))?
            .to_path_buf();
        layers.push((p, blob_name(&l.digest), Some(l.clone())));
    }
    let descs = ingest_layers(store, &config, layers)?;
    Ok(store.put_image(&config_bytes, descs)?)
}

fn read_json(spool: &Spool, d: &Descriptor) -> Result<serde_json::Value> {
    let bytes = read_verified(spool, d)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Format(format!("manifest {}: {e}", d.digest)))
}

fn load_oci(store: &Writer<'_>, spool: &Spool) -> Result<Vec<Loaded>> {
    let index: Index = serde_json::from_slice(&spool.read_small("index.json")?)
        .map_err(|e| Error::Format(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    for d in index.manifests {
        let names = names_of(&d);
        let v = read_json(spool, &d)?;
        if v.get("manifests").is_none() {
            let image = load_manifest(store, spool, &d, v)?;
            out.push(Loaded {
                image,
                names,
                index: None,
            });
            continue;
        }
        // An image index: every image of it (as docker's containerd store and podman load
        // one), stored as an index of its platforms. An entry whose manifest the archive
        // lacks is left out (an archive of some platforms only); a nested index too.
        let inner: Index = serde_json::from_value(v)
            .map_err(|e| Error::Format(format!("index {}: {e}", d.digest)))?;
        let mut images = Vec::new();
        for m in inner.manifests.iter().filter(|m| !is_attestation(m)) {
            if spool.path(&blob_name(&m.digest)).is_none() {
                continue;
            }
            let v = read_json(spool, m)?;
            if v.get("manifests").is_some() {
                continue;
            }
            images.push(load_manifest(store, spool, m, v)?);
        }
        if images.is_empty() {
            return Err(Error::Format(format!(
                "image index {} has no image the archive holds",
                d.digest
            )));
        }
        let refs: Vec<&Image> = images.iter().collect();
        let stored = store.put_index(&refs)?;
        let image = store.image(&stored.digest)?;
        out.push(Loaded {
            image,
            names,
            index: Some(stored),
        });
    }
    Ok(out)
}

fn names_of(d: &Descriptor) -> Vec<Reference> {
    let ann = d.annotations.clone().unwrap_or_default();
    let full = ann.get("io.containerd.image.name").cloned();
    let short = ann.get(store::image::ANNOTATION_REF_NAME).cloned();
    let pick = full.or_else(|| short.filter(|s| s.contains(':') || s.contains('/')));
    pick.and_then(|s| Reference::parse(&s).ok())
        .into_iter()
        .collect()
}

/// Load every image of a docker-archive or OCI archive into the store and tag each with
/// the names the archive gives it, under the store's shared lock. Nothing is tagged when
/// any part fails; blobs written before the failure stay unreferenced until the next prune.
pub fn load<R: Read>(store: &Store, reader: R) -> Result<Vec<Loaded>> {
    let store = &store.lock_shared()?;
    let spool = Spool::read(store, reader)?;
    let loaded = if spool.path("manifest.json").is_some() {
        load_docker(store, &spool)?
    } else if spool.path("index.json").is_some() && spool.path("oci-layout").is_some() {
        load_oci(store, &spool)?
    } else {
        return Err(Error::Format(
            "not an image archive: it has neither manifest.json (docker-archive) nor oci-layout and index.json (OCI)".into(),
        ));
    };
    for l in &loaded {
        for n in &l.names {
            match &l.index {
                Some(ix) => store.set_ref_index(n, ix)?,
                None => store.set_ref(n, &l.image)?,
            };
        }
        match (&l.index, l.names.is_empty()) {
            (Some(ix), true) => store.keep_untagged_index(ix)?,
            (None, true) => store.keep_untagged(&l.image)?,
            _ => {}
        }
    }
    Ok(loaded)
}
