//! Images and refs: index.json (names → manifests), untagged images, resolving a name or
//! id, and writing an image (config + manifest over stored layers).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use crate::image::{self, Descriptor, ImageConfig, Index, Manifest, ANNOTATION_REF_NAME};
use crate::{
    atomic_write, Digest, Error, IoContext, Platform, Reference, Result, Store, Writer,
    ROOT_UNTAGGED,
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

/// An image index in the store (a multi-platform build's, or `manifest create`'s): the
/// exact bytes hashed, and its manifests, each with its platform.
#[derive(Clone, Debug)]
pub struct StoredIndex {
    pub digest: Digest,
    pub index: Index,
    pub bytes: Vec<u8>,
}

impl StoredIndex {
    /// The platforms of its manifests, in its order (a manifest without one is the host's).
    pub fn platforms(&self) -> Vec<(Platform, Digest)> {
        self.index
            .manifests
            .iter()
            .map(|d| {
                let p = d
                    .platform
                    .as_ref()
                    .and_then(Platform::of_value)
                    .unwrap_or_default();
                (p, d.digest.clone())
            })
            .collect()
    }
}

/// Whether manifest bytes are an image index (OCI index or Docker manifest list).
pub(crate) fn is_index(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Peek>(bytes) {
        Ok(p) => match p.media_type.as_deref() {
            Some(image::MEDIA_OCI_INDEX) | Some(image::MEDIA_DOCKER_LIST) => true,
            Some(_) => false,
            None => p.manifests.is_some() && p.config.is_none(),
        },
        Err(_) => false,
    }
}

impl Store {
    /// Load an image by manifest digest (manifest and config verified). A digest naming an
    /// image index gives the index's image for the host's platform.
    /// An index without the host's platform gives its first image (inspect, history and
    /// listings show something; `run` of it is emulated).
    pub fn image(&self, manifest_digest: &Digest) -> Result<Image> {
        match self.image_for(manifest_digest, &Platform::host()) {
            Err(Error::NoPlatform { .. }) => {
                let index = self
                    .index(manifest_digest)?
                    .ok_or_else(|| Error::Invalid(format!("image index {manifest_digest}")))?;
                let first = index.index.manifests.first().ok_or_else(|| {
                    Error::Invalid(format!("image index {manifest_digest} has no manifests"))
                })?;
                self.manifest_image(&first.digest, self.read_blob(&first.digest)?)
            }
            r => r,
        }
    }

    /// The index a digest names, if it names one.
    pub fn index(&self, digest: &Digest) -> Result<Option<StoredIndex>> {
        let bytes = self.read_blob(digest)?;
        if !is_index(&bytes) {
            return Ok(None);
        }
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("image index {digest}: {e}")))?;
        Ok(Some(StoredIndex {
            digest: digest.clone(),
            index,
            bytes,
        }))
    }

    /// The image of `platform` that a digest names: the manifest itself (whatever its
    /// platform: the caller compares), or the index's manifest for that platform.
    pub fn image_for(&self, manifest_digest: &Digest, platform: &Platform) -> Result<Image> {
        let manifest_bytes = self.read_blob(manifest_digest)?;
        if is_index(&manifest_bytes) {
            let index = self
                .index(manifest_digest)?
                .ok_or_else(|| Error::Invalid(format!("image index {manifest_digest}")))?;
            let platforms = index.platforms();
            let Some((_, d)) = platforms.iter().find(|(p, _)| platform.matches(p)) else {
                return Err(Error::NoPlatform {
                    what: manifest_digest.to_string(),
                    wanted: platform.to_string(),
                    available: platforms.iter().map(|(p, _)| p.to_string()).collect(),
                });
            };
            return self.manifest_image(d, self.read_blob(d)?);
        }
        self.manifest_image(manifest_digest, manifest_bytes)
    }

    fn manifest_image(&self, manifest_digest: &Digest, manifest_bytes: Vec<u8>) -> Result<Image> {
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
            // An index's images are candidates each; its own digest names its host image.
            let mut candidates: Vec<Digest> = Vec::new();
            for d in refs.values().chain(untagged.iter()) {
                candidates.push(d.clone());
                if let Some(ix) = self.index(d)? {
                    candidates.extend(ix.platforms().into_iter().map(|(_, m)| m));
                }
            }
            for d in candidates {
                if !seen.insert(d.clone()) {
                    continue;
                }
                let img = self.image(&d)?;
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
        self.set_ref_descriptor(
            name,
            Descriptor {
                media_type: image::MEDIA_OCI_MANIFEST.into(),
                digest: image.manifest_digest.clone(),
                size: image.manifest_bytes.len() as u64,
                annotations: None,
                platform: Some(serde_json::json!({
                    "architecture": image.config.architecture,
                    "os": image.config.os,
                })),
            },
        )
    }

    /// Point `name` at an image index; returns the previous target. Every image of the
    /// index must be complete in the store.
    pub fn set_ref_index(&self, name: &Reference, index: &StoredIndex) -> Result<Option<Digest>> {
        for (p, d) in index.platforms() {
            let img = self.manifest_image(&d, self.read_blob(&d)?)?;
            self.check_complete(&img)
                .map_err(|e| Error::Invalid(format!("image index {}: {p}: {e}", index.digest)))?;
        }
        self.set_ref_descriptor(
            name,
            Descriptor {
                media_type: image::MEDIA_OCI_INDEX.into(),
                digest: index.digest.clone(),
                size: index.bytes.len() as u64,
                annotations: None,
                platform: None,
            },
        )
    }

    /// Point `name` at what a digest names (an image or an index), as `tag` does.
    pub fn set_ref_to(&self, name: &Reference, digest: &Digest) -> Result<Option<Digest>> {
        match self.index(digest)? {
            Some(ix) => self.set_ref_index(name, &ix),
            None => {
                let img = self.manifest_image(digest, self.read_blob(digest)?)?;
                self.set_ref(name, &img)
            }
        }
    }

    fn set_ref_descriptor(&self, name: &Reference, mut desc: Descriptor) -> Result<Option<Digest>> {
        let _g = self.refs_lock()?;
        let mut index = self.read_index()?;
        let full = name.to_string();
        let prev = take_ref(&mut index, &full);
        let mut ann = BTreeMap::new();
        ann.insert(ANNOTATION_REF_NAME.to_string(), full);
        desc.annotations = Some(ann);
        index.manifests.push(desc);
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

    /// After `name` was pointed at a plain image (a pull for one platform), keep the images
    /// of other platforms that `previous` (what it named before) had: `name` then names an
    /// index of them all, as a store that keeps an index's platforms side by side. Nothing
    /// changes when `previous` had no other platform.
    pub fn merge_platforms(&self, name: &Reference, previous: &Digest) -> Result<()> {
        let Some(now) = self.refs()?.get(&name.to_string()).cloned() else {
            return Ok(());
        };
        if &now == previous || self.index(&now)?.is_some() {
            return Ok(());
        }
        let new = self.manifest_image(&now, self.read_blob(&now)?)?;
        let new_p = Platform::of_config(&new.config);
        let mut old = self.images_at(previous)?;
        old.retain(|i| Platform::of_config(&i.config) != new_p);
        if old.is_empty() {
            return Ok(());
        }
        let mut all: Vec<&Image> = old.iter().collect();
        all.push(&new);
        let ix = self.put_index(&all)?;
        self.set_ref_index(name, &ix)?;
        Ok(())
    }

    /// Store an image index over images already in the store, one per platform (each
    /// image's platform is its config's), in the order given.
    pub fn put_index(&self, images: &[&Image]) -> Result<StoredIndex> {
        let mut seen = BTreeSet::new();
        let mut manifests = Vec::with_capacity(images.len());
        for img in images {
            self.check_complete(img)?;
            let p = Platform::of_config(&img.config);
            if !seen.insert(p.clone()) {
                return Err(Error::Invalid(format!(
                    "two images for platform {p} in one index"
                )));
            }
            manifests.push(Descriptor {
                media_type: image::MEDIA_OCI_MANIFEST.into(),
                digest: img.manifest_digest.clone(),
                size: img.manifest_bytes.len() as u64,
                annotations: None,
                platform: Some(p.to_value()),
            });
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(image::MEDIA_OCI_INDEX.into()),
            manifests,
        };
        let bytes = serde_json::to_vec(&index).expect("index serializes");
        let digest = self.write_blob(&bytes)?;
        Ok(StoredIndex {
            digest,
            index,
            bytes,
        })
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

    /// Keep an untagged image index: a GC root naming it.
    pub fn keep_untagged_index(&self, index: &StoredIndex) -> Result<()> {
        self.set_root(
            ROOT_UNTAGGED,
            index.digest.hex(),
            std::slice::from_ref(&index.digest),
        )
    }

    /// Stop keeping an untagged image.
    pub fn drop_untagged(&self, manifest: &Digest) -> Result<()> {
        self.remove_root(ROOT_UNTAGGED, manifest.hex())
    }
}

impl Store {
    /// What a name names (an image's or an index's manifest digest), if it is a ref.
    /// The images a ref's (or untagged root's) target holds: each of an index's, in its
    /// order, else the one.
    pub fn images_at(&self, target: &Digest) -> Result<Vec<Image>> {
        match self.index(target)? {
            Some(ix) => ix
                .platforms()
                .into_iter()
                .map(|(_, d)| self.manifest_image(&d, self.read_blob(&d)?))
                .collect(),
            None => Ok(vec![self.manifest_image(target, self.read_blob(target)?)?]),
        }
    }

    pub fn ref_target(&self, what: &str) -> Result<Option<Digest>> {
        let Ok(r) = Reference::parse(what) else {
            return Ok(None);
        };
        Ok(self.refs()?.get(&r.to_string()).cloned())
    }

    /// [`Store::resolve`] with docker's `--platform`: a name of an index gives that
    /// platform's image; an image of another platform is docker's error (`image with
    /// reference X was found but does not match the specified platform: wanted linux/arm64,
    /// actual: linux/amd64`). Without a platform, as `resolve`.
    pub fn resolve_platform(&self, what: &str, platform: Option<&Platform>) -> Result<Image> {
        let Some(p) = platform else {
            return self.resolve(what);
        };
        let img = match self.ref_target(what)? {
            Some(d) => self.image_for(&d, p)?,
            None => self.resolve(what)?,
        };
        let have = Platform::of_config(&img.config);
        if !p.matches(&have) {
            return Err(Error::WrongPlatform {
                what: what.to_string(),
                wanted: p.to_string(),
                actual: have.to_string(),
            });
        }
        Ok(img)
    }
}
