//! Images and refs: index.json (names → manifests), untagged images, resolving a name or
//! id, and writing an image (config + manifest over stored layers).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use crate::image::{self, Descriptor, ImageConfig, Index, Manifest, ANNOTATION_REF_NAME};
use crate::{
    atomic_write, Digest, Error, IoContext, Reference, Result, Store, Writer, ROOT_UNTAGGED,
};

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

/// Remove the index entry named `full`; returns its manifest digest if there was one.
pub(crate) fn take_ref(index: &mut Index, full: &str) -> Option<Digest> {
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

impl Store {
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

    pub(crate) fn read_index(&self) -> Result<Index> {
        let p = self.root.join("index.json");
        let bytes = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
    }

    pub(crate) fn write_index(&self, index: &Index) -> Result<()> {
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

    pub(crate) fn check_complete(&self, image: &Image) -> Result<()> {
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
}

impl Writer<'_> {
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
}
