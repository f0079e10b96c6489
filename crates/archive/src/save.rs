//! `save`: store → docker-archive or OCI archive, written deterministically (fixed entry
//! order, owner 0:0, mtime 0), streamed blob by blob.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use store::image::{
    Descriptor, Index, Manifest, ANNOTATION_REF_NAME, MEDIA_OCI_CONFIG, MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD, MEDIA_OCI_MANIFEST,
};
use store::{
    Compression as StoreCompression, Digest, Image, Reference, Store, StoredIndex, Writer,
};

use crate::{io_err, Error, Result};

/// Archive format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `docker save`'s layout: `manifest.json`, `<config>.json`, `<layer>/layer.tar`.
    Docker,
    /// An OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/...`.
    Oci,
}

/// An image to save and the names to give it.
#[derive(Clone, Debug)]
pub struct SaveItem {
    pub image: Image,
    pub names: Vec<Reference>,
}

/// An image index to save (OCI archives only) and the names to give it: index.json names
/// an index blob whose manifests are its images' exported manifests, each with its
/// platform.
#[derive(Clone, Debug)]
pub struct SaveIndex {
    pub index: StoredIndex,
    pub names: Vec<Reference>,
}

struct Out<W: Write> {
    tar: tar::Builder<W>,
    dirs: BTreeSet<String>,
}

impl<W: Write> Out<W> {
    fn header(path: &str, size: u64, dir: bool) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_path(path).expect("short archive paths");
        h.set_cksum();
        h
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        if self.dirs.insert(path.to_string()) {
            let h = Self::header(path, 0, true);
            self.tar
                .append(&h, std::io::empty())
                .map_err(io_err("write archive"))?;
        }
        Ok(())
    }

    fn file(&mut self, path: &str, size: u64, data: impl Read) -> Result<()> {
        let h = Self::header(path, size, false);
        self.tar.append(&h, data).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                Error::Format(e.to_string())
            } else {
                Error::Io {
                    context: format!("write {path} to the archive"),
                    source: e,
                }
            }
        })
    }

    fn blob(&mut self, store: &Store, path: &str, d: &Digest) -> Result<()> {
        let size = store.blob_size(d)?;
        let r = store.open_blob(d)?;
        self.file(path, size, r)
    }
}

fn to_store(c: layer::Compression) -> StoreCompression {
    match c {
        layer::Compression::Gzip => StoreCompression::Gzip,
        layer::Compression::Zstd => StoreCompression::Zstd,
    }
}

/// The compressed blob of a layer: made once (streamed from the stored layer through the
/// compressor into the store) and kept.
pub fn compressed_layer(
    store: &Writer<'_>,
    diff_id: &Digest,
    c: layer::Compression,
) -> Result<(Digest, u64)> {
    if let Some(found) = store.compressed(diff_id, to_store(c))? {
        return Ok(found);
    }
    let src = store.open_blob(diff_id)?;
    let mut ing = store.ingest()?;
    let info = layer::compress(src, c, &mut ing)?;
    let (d, size) = ing.commit(Some(&info.digest))?;
    store.record_compressed(diff_id, to_store(c), &d, size)?;
    Ok((d, size))
}

/// The OCI manifest an image is exported or pushed with: compressed layers.
pub fn export_manifest(
    store: &Writer<'_>,
    image: &Image,
    c: layer::Compression,
) -> Result<(Vec<u8>, Digest)> {
    let media = match c {
        layer::Compression::Gzip => MEDIA_OCI_LAYER_GZIP,
        layer::Compression::Zstd => MEDIA_OCI_LAYER_ZSTD,
    };
    let mut layers = Vec::new();
    for l in &image.manifest.layers {
        let (d, size) = compressed_layer(store, &l.digest, c)?;
        layers.push(Descriptor {
            media_type: media.into(),
            digest: d,
            size,
            annotations: None,
            platform: None,
        });
    }
    let m = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: MEDIA_OCI_CONFIG.into(),
            digest: image.manifest.config.digest.clone(),
            size: image.config_bytes.len() as u64,
            annotations: None,
            platform: None,
        },
        layers,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&m).expect("manifest serializes");
    let d = Digest::of(&bytes);
    Ok((bytes, d))
}

/// Write `items` as one archive.
pub fn save<W: Write>(
    store: &Store,
    items: &[SaveItem],
    format: Format,
    compression: layer::Compression,
    out: W,
) -> Result<()> {
    save_all(store, items, &[], format, compression, out)
}

/// An OCI image manifest's descriptor in an index (of the archive, or an index it holds).
fn manifest_descriptor(
    bytes: &[u8],
    digest: Digest,
    platform: Option<serde_json::Value>,
) -> Descriptor {
    Descriptor {
        media_type: MEDIA_OCI_MANIFEST.into(),
        digest,
        size: bytes.len() as u64,
        annotations: None,
        platform,
    }
}

/// Write `items` and image `indexes` as one archive; indexes need [`Format::Oci`] (a
/// docker-archive holds images only: the caller picks one of the index's).
pub fn save_all<W: Write>(
    store: &Store,
    items: &[SaveItem],
    indexes: &[SaveIndex],
    format: Format,
    compression: layer::Compression,
    out: W,
) -> Result<()> {
    if format == Format::Docker && !indexes.is_empty() {
        return Err(Error::Format(
            "a docker-archive holds no image index: save one platform's image".into(),
        ));
    }
    let store = &store.lock_shared()?;
    let mut o = Out {
        tar: tar::Builder::new(out),
        dirs: BTreeSet::new(),
    };
    match format {
        Format::Docker => save_docker(store, items, &mut o)?,
        Format::Oci => save_oci(store, items, indexes, compression, &mut o)?,
    }
    o.tar
        .into_inner()
        .map_err(io_err("finish archive"))?
        .flush()
        .map_err(io_err("flush archive"))?;
    Ok(())
}

fn save_docker<W: Write>(store: &Store, items: &[SaveItem], o: &mut Out<W>) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "RepoTags")]
        repo_tags: Option<Vec<String>>,
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    let mut manifest = Vec::new();
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in items {
        let mut layers = Vec::new();
        for l in &item.image.manifest.layers {
            let name = format!("{}/layer.tar", l.digest.hex());
            if written.insert(l.digest.clone()) {
                o.dir(&format!("{}/", l.digest.hex()))?;
                o.blob(store, &name, &l.digest)?;
            }
            layers.push(name);
        }
        let config_name = format!("{}.json", item.image.id().hex());
        if written.insert(item.image.id().clone()) {
            o.file(
                &config_name,
                item.image.config_bytes.len() as u64,
                &item.image.config_bytes[..],
            )?;
        }
        let tags: Vec<String> = item
            .names
            .iter()
            .filter(|n| n.tag.is_some())
            .map(|n| n.familiar())
            .collect();
        if let Some(top) = item.image.manifest.layers.last() {
            for n in item.names.iter().filter(|n| n.tag.is_some()) {
                repositories
                    .entry(n.familiar_repository())
                    .or_default()
                    .insert(
                        n.tag.clone().unwrap_or_default(),
                        top.digest.hex().to_string(),
                    );
            }
        }
        manifest.push(Entry {
            config: config_name,
            repo_tags: (!tags.is_empty()).then_some(tags),
            layers,
        });
    }
    let m = serde_json::to_vec(&manifest).expect("manifest serializes");
    o.file("manifest.json", m.len() as u64, &m[..])?;
    if !repositories.is_empty() {
        let r = serde_json::to_vec(&repositories).expect("repositories serialize");
        o.file("repositories", r.len() as u64, &r[..])?;
    }
    Ok(())
}

/// An image's blobs (layers compressed, config, manifest) into an OCI archive, each blob
/// once; returns its manifest's bytes and digest.
fn oci_image<W: Write>(
    store: &Writer<'_>,
    image: &Image,
    c: layer::Compression,
    o: &mut Out<W>,
    written: &mut BTreeSet<Digest>,
) -> Result<(Vec<u8>, Digest)> {
    let (mbytes, mdigest) = export_manifest(store, image, c)?;
    let m: Manifest = serde_json::from_slice(&mbytes).expect("just serialized");
    for l in &m.layers {
        if written.insert(l.digest.clone()) {
            o.blob(
                store,
                &format!("blobs/sha256/{}", l.digest.hex()),
                &l.digest,
            )?;
        }
    }
    json_blob(o, written, image.id(), &image.config_bytes)?;
    json_blob(o, written, &mdigest, &mbytes)?;
    Ok((mbytes, mdigest))
}

/// A config, manifest or index (bytes in memory) as `blobs/sha256/<hex>`, once per archive.
fn json_blob<W: Write>(
    o: &mut Out<W>,
    written: &mut BTreeSet<Digest>,
    digest: &Digest,
    bytes: &[u8],
) -> Result<()> {
    if written.insert(digest.clone()) {
        o.file(
            &format!("blobs/sha256/{}", digest.hex()),
            bytes.len() as u64,
            bytes,
        )?;
    }
    Ok(())
}

/// index.json's entries for one manifest or index: one per name, or one without a name.
fn named_entries(base: Descriptor, names: &[Reference]) -> Vec<Descriptor> {
    if names.is_empty() {
        return vec![base];
    }
    names
        .iter()
        .map(|n| {
            let mut ann = BTreeMap::new();
            ann.insert("io.containerd.image.name".to_string(), n.to_string());
            ann.insert(ANNOTATION_REF_NAME.to_string(), n.familiar());
            Descriptor {
                annotations: Some(ann),
                ..base.clone()
            }
        })
        .collect()
}

fn save_oci<W: Write>(
    store: &Writer<'_>,
    items: &[SaveItem],
    indexes: &[SaveIndex],
    c: layer::Compression,
    o: &mut Out<W>,
) -> Result<()> {
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    o.file("oci-layout", layout.len() as u64, &layout[..])?;
    o.dir("blobs/")?;
    o.dir("blobs/sha256/")?;
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_INDEX.into()),
        manifests: Vec::new(),
    };
    for item in items {
        let (mbytes, mdigest) = oci_image(store, &item.image, c, o, &mut written)?;
        let base = manifest_descriptor(&mbytes, mdigest, None);
        index.manifests.extend(named_entries(base, &item.names));
    }
    for ix in indexes {
        // The stored index names the store's manifests (uncompressed layers): the archive's
        // index names the exported ones, in the same order with the same platforms.
        let mut inner = Index {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.into()),
            manifests: Vec::new(),
        };
        for (p, d) in ix.index.platforms() {
            let image = store.image_for(&d, &p)?;
            let (mbytes, mdigest) = oci_image(store, &image, c, o, &mut written)?;
            inner
                .manifests
                .push(manifest_descriptor(&mbytes, mdigest, Some(p.to_value())));
        }
        let ib = serde_json::to_vec(&inner).expect("index serializes");
        let idigest = Digest::of(&ib);
        json_blob(o, &mut written, &idigest, &ib)?;
        let base = Descriptor {
            media_type: MEDIA_OCI_INDEX.into(),
            digest: idigest,
            size: ib.len() as u64,
            annotations: None,
            platform: None,
        };
        index.manifests.extend(named_entries(base, &ix.names));
    }
    let ib = serde_json::to_vec(&index).expect("index serializes");
    o.file("index.json", ib.len() as u64, &ib[..])?;
    Ok(())
}
