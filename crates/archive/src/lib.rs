//! Moving images in and out of the store in the standard formats:
//!
//! * [`import_rootfs`]: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer
//!   image, as `docker import` does.
//! * [`load`]: a docker-archive (`docker save`) or an OCI image-layout archive
//!   (`podman save --format oci-archive`, `docker buildx --output type=oci`), told apart by
//!   their index files.
//! * [`save`]: the reverse; docker-archive keeps layers as `layer.tar` (as `docker save`
//!   does), an OCI archive carries gzip (default) or zstd layers, compressed once and kept.
//!
//! Layers live in the store uncompressed, so a layer's blob digest is its diffID. Every
//! layer is streamed: read → (decompress) → tar check → store, hashing on the way; no layer
//! is held in memory. This crate knows nothing of Dockerfiles.

mod load;
mod save;

use std::io::{self, Read};

pub use load::{load, Loaded};
pub use save::{compressed_layer, export_manifest, save, save_all, Format, SaveIndex, SaveItem};
use store::image::{Descriptor, History, ImageConfig, RootFs, RunConfig, MEDIA_OCI_LAYER};
use store::{Digest, Image, Store, Writer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Layer(#[from] layer::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Format(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Meta kind under which the store keeps a layer's content size (see [`LayerStats`]).
pub const META_CONTENT_SIZE: &str = "content-size";

/// What a layer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerStats {
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
    /// What docker calls the layer's size: the sizes of its non-directory entries as they
    /// would be on disk (regular files' lengths, symlinks' target lengths), each hard-linked
    /// file once.
    pub content_size: u64,
    pub entries: u64,
}

/// A layer written to the store.
#[derive(Clone, Debug)]
pub struct IngestedLayer {
    pub diff_id: Digest,
    pub stats: LayerStats,
    /// The compression the input had, if any.
    pub compression: Option<layer::Compression>,
}

/// Stream a layer (plain, gzip or zstd tar) into the store uncompressed. The stream must be
/// a well-formed tar archive; the content after its end-of-archive marker is kept too, so
/// the blob's digest is the digest of the whole uncompressed input.
pub fn ingest_layer<R: Read>(store: &Writer<'_>, reader: R, what: &str) -> Result<IngestedLayer> {
    let dec = layer::Decompressor::new(reader)?;
    let compression = dec.compression();
    let mut ingest = store.ingest()?;
    let (entries, content_size) = {
        let mut tee = store::Tee::new(dec, &mut ingest);
        let scanned = layer::scan(&mut tee);
        if let Some(source) = tee.take_write_error() {
            // ENOSPC and the like: the store's fault, not the input's.
            return Err(Error::Io {
                context: format!("{what}: write to the store"),
                source,
            });
        }
        let info =
            scanned.map_err(|e| Error::Format(format!("{what}: not a valid tar archive: {e}")))?;
        (info.entries, info.content_size)
    };
    let (diff_id, tar_size) = ingest.commit(None)?;
    store.set_meta(META_CONTENT_SIZE, &diff_id, &content_size.to_string())?;
    Ok(IngestedLayer {
        diff_id,
        stats: LayerStats {
            tar_size,
            content_size,
            entries,
        },
        compression,
    })
}

/// Docker's size of a stored layer (computed by scanning it when not recorded).
pub fn layer_content_size(store: &Writer<'_>, diff_id: &Digest) -> Result<u64> {
    if let Some(v) = store
        .meta(META_CONTENT_SIZE, diff_id)
        .and_then(|s| s.trim().parse().ok())
    {
        return Ok(v);
    }
    let r = store.open_blob(diff_id)?;
    let content = layer::scan(r)
        .map_err(|e| Error::Format(format!("layer {diff_id}: {e}")))?
        .content_size;
    store.set_meta(META_CONTENT_SIZE, diff_id, &content.to_string())?;
    Ok(content)
}

/// Docker's size of an image: the sum of its layers' content sizes.
pub fn image_size(store: &Writer<'_>, image: &Image) -> Result<u64> {
    image
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| layer_content_size(store, d))
        .sum()
}

/// Options of [`import_rootfs`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The runtime config (`--change` applied by the caller).
    pub config: RunConfig,
    /// RFC 3339 creation time.
    pub created: String,
    /// History comment (`Imported from -` like docker).
    pub comment: String,
    /// The image's platform (docker's `import --platform`); `None` is the host's.
    pub platform: Option<store::Platform>,
}

/// Import a root filesystem tarball as a one-layer image and tag it with `tags`, under the
/// store's shared lock (so a concurrent prune cannot collect the new blobs before the tag).
pub fn import_rootfs<R: Read>(
    store: &Store,
    reader: R,
    opts: &ImportOptions,
    tags: &[store::Reference],
) -> Result<Image> {
    let store = &store.lock_shared()?;
    let layer = ingest_layer(store, reader, "rootfs tarball")?;
    let platform = opts.platform.clone().unwrap_or_else(store::Platform::host);
    let config = ImageConfig {
        created: Some(opts.created.clone()),
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        config: opts.config.clone(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id.clone()],
        },
        history: vec![History {
            created: Some(opts.created.clone()),
            comment: Some(opts.comment.clone()),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    let bytes = serde_json::to_vec(&config).expect("config serializes");
    let image = store.put_image(
        &bytes,
        vec![Descriptor {
            media_type: MEDIA_OCI_LAYER.into(),
            digest: layer.diff_id,
            size: layer.stats.tar_size,
            annotations: None,
            platform: None,
        }],
    )?;
    for t in tags {
        store.set_ref(t, &image)?;
    }
    if tags.is_empty() {
        store.keep_untagged(&image)?;
    }
    Ok(image)
}

#[cfg(test)]
mod tests;
