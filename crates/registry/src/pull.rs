//! `pull`: manifest (through an index to the platform's manifest), config, then the layers
//! a few at a time, each streamed from the socket through the hasher into the store in its
//! compressed form and, decompressed and tar-checked on the way, in its uncompressed form.

use std::io::{self, Read, Write};

use store::image::{Descriptor, ImageConfig, Index, Manifest, MEDIA_OCI_LAYER};
use store::{Compression, Digest, HashingReader, Image, Reference, Store, Writer};

use crate::client::{error_message, read_small, read_upto, Client, ACCEPT_MANIFESTS};
use crate::{
    add_meta_line, endpoint_host, parallel, short, with_retry, Error, Options, Progress, Result,
    META_BLOB_SOURCES, META_REGISTRY_MANIFEST, META_REPO_DIGESTS,
};

const MAX_MANIFEST: u64 = 4 << 20;
const MAX_CONFIG: u64 = 64 << 20;

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    /// The name the image was stored under (fully qualified).
    pub reference: Reference,
    /// The digest the registry knows the reference by (an index's digest for a
    /// multi-platform image), as docker prints it.
    pub digest: Digest,
    pub image: Image,
    /// False when the name already pointed at this image.
    pub updated: bool,
    /// The endpoint the image came from.
    pub endpoint: String,
}

/// Read until `buf` is full or the input ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the chunks another thread sends.
struct ChanReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn platform_matches(p: &Option<serde_json::Value>, want: &crate::Platform) -> bool {
    p.as_ref()
        .and_then(crate::Platform::of_value)
        .is_some_and(|have| want.matches(&have))
}

fn is_known_layer(media: &str) -> bool {
    matches!(
        media,
        store::image::MEDIA_OCI_LAYER
            | store::image::MEDIA_OCI_LAYER_GZIP
            | store::image::MEDIA_OCI_LAYER_ZSTD
            | store::image::MEDIA_DOCKER_LAYER
            | store::image::MEDIA_DOCKER_LAYER_GZIP
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
    )
}

/// Pull `reference` into `store` and tag it. Docker Hub images go through the configured
/// mirrors first.
pub fn pull(
    store: &Store,
    reference: &Reference,
    opts: &Options,
    progress: Progress,
) -> Result<Pulled> {
    let creds = crate::auth::lookup(&reference.domain)?;
    let mut errors = Vec::new();
    if crate::auth::is_docker_hub(&reference.domain) {
        for m in &opts.mirrors {
            let host = m
                .split("://")
                .nth(1)
                .unwrap_or(m)
                .split('/')
                .next()
                .unwrap_or("");
            let mirror_creds = crate::auth::lookup(host)?;
            let attempt = Client::connect(&reference.domain, "", Some(m), mirror_creds, opts)
                .and_then(|c| pull_from(&c, store, reference, opts, progress));
            match attempt {
                Ok(p) => return Ok(p),
                Err(e) => {
                    progress("", &format!("mirror {m} failed: {e}"));
                    errors.push(format!("mirror {m}: {e}"));
                }
            }
        }
    }
    let result = Client::connect(
        &reference.domain,
        endpoint_host(&reference.domain),
        None,
        creds,
        opts,
    )
    .and_then(|c| pull_from(&c, store, reference, opts, progress));
    match result {
        Err(e) if !errors.is_empty() => Err(Error::Registry(format!(
            "{e} (after the mirrors failed: {})",
            errors.join("; ")
        ))),
        r => r,
    }
}

/// The error for a blob or manifest whose length is not its descriptor's size (`read` is
/// what arrived with the stream cut at size + 1).
fn size_mismatch(d: &Digest, declared: u64, read: u64) -> Error {
    Error::Invalid(if read > declared {
        format!("blob {d}: the descriptor says {declared} bytes, the registry sent more")
    } else {
        format!("blob {d}: the descriptor says {declared} bytes, the registry sent {read}")
    })
}

/// Fetch a manifest: one named by an index entry (`desc`) is cut at its descriptor's size + 1
/// and must have that size; others are capped at [`MAX_MANIFEST`].
fn get_manifest(
    c: &Client,
    repo: &str,
    what: &str,
    scope: &str,
    desc: Option<&Descriptor>,
) -> Result<(Vec<u8>, String)> {
    let url = c.url(&format!("/v2/{repo}/manifests/{what}"));
    let resp = c.send(scope, |a, auth| {
        let mut r = a.get(&url).header("Accept", ACCEPT_MANIFESTS);
        if let Some(h) = auth {
            r = r.header("Authorization", h);
        }
        r.call()
    })?;
    let status = resp.status().as_u16();
    if status == 404 {
        return Err(Error::Registry(format!(
            "manifest for {}/{repo}:{what} not found: {}",
            c.registry,
            error_message(resp)
        )));
    }
    if !(200..300).contains(&status) {
        return Err(Error::Registry(format!(
            "fetching manifest {repo}:{what}: {}",
            error_message(resp)
        )));
    }
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let bytes = match desc {
        None => read_small(resp, MAX_MANIFEST, "manifest")?,
        Some(d) => {
            let b = read_upto(resp, d.size.saturating_add(1), "manifest")?;
            if b.len() as u64 != d.size {
                return Err(size_mismatch(&d.digest, d.size, b.len() as u64));
            }
            b
        }
    };
    Ok((bytes, media))
}

fn get_small_blob(c: &Client, repo: &str, d: &Descriptor, scope: &str) -> Result<Vec<u8>> {
    if d.size > MAX_CONFIG {
        return Err(Error::Invalid(format!(
            "config {} is too large ({} bytes)",
            d.digest, d.size
        )));
    }
    let resp = c.get_blob(repo, &d.digest, scope)?;
    if !resp.status().is_success() {
        return Err(Error::Registry(format!(
            "fetching blob {}: {}",
            d.digest,
            error_message(resp)
        )));
    }
    // Cut at size + 1, so a longer blob is told from one of the right size.
    let bytes = read_upto(resp, d.size + 1, "config")?;
    if bytes.len() as u64 != d.size {
        return Err(size_mismatch(&d.digest, d.size, bytes.len() as u64));
    }
    let actual = Digest::of(&bytes);
    if actual != d.digest {
        return Err(Error::Transfer(format!(
            "blob {}: digest mismatch: received {} bytes hashing to {actual}",
            d.digest,
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn pull_from(
    c: &Client,
    store: &Store,
    reference: &Reference,
    opts: &Options,
    progress: Progress,
) -> Result<Pulled> {
    let repo = &reference.path;
    let scope = format!("repository:{repo}:pull");
    let what = match (&reference.digest, &reference.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    progress("", &format!("{what}: Pulling from {repo}"));
    let (top, top_media) = with_retry(opts.attempts, "", progress, || {
        get_manifest(c, repo, &what, &scope, None)
    })?;
    let top_digest = Digest::of(&top);
    if let Some(d) = &reference.digest {
        if d != &top_digest {
            return Err(Error::Invalid(format!(
                "manifest for {reference} hashes to {top_digest}, not to the digest asked for"
            )));
        }
    }
    let top_json: serde_json::Value = serde_json::from_slice(&top)
        .map_err(|e| Error::Invalid(format!("manifest {top_digest}: invalid JSON: {e}")))?;
    let is_index = top_json.get("manifests").is_some()
        || top_media == store::image::MEDIA_OCI_INDEX
        || top_media == store::image::MEDIA_DOCKER_LIST;
    let (mbytes, mdigest) = if is_index {
        let idx: Index = serde_json::from_value(top_json)
            .map_err(|e| Error::Invalid(format!("image index {top_digest}: {e}")))?;
        let pick = idx
            .manifests
            .iter()
            .find(|m| platform_matches(&m.platform, &opts.platform))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no matching manifest for {} in the manifest list entries of {reference}",
                    opts.platform
                ))
            })?
            .clone();
        if pick.size > MAX_MANIFEST {
            return Err(Error::Invalid(format!(
                "manifest {} is too large ({} bytes)",
                pick.digest, pick.size
            )));
        }
        let (b, _) = with_retry(opts.attempts, "", progress, || {
            get_manifest(c, repo, pick.digest.as_str(), &scope, Some(&pick))
        })?;
        let d = Digest::of(&b);
        if d != pick.digest {
            return Err(Error::Invalid(format!(
                "manifest {} from the index hashes to {d}",
                pick.digest
            )));
        }
        (b, d)
    } else {
        (top.clone(), top_digest.clone())
    };
    let manifest: Manifest = serde_json::from_slice(&mbytes)
        .map_err(|e| Error::Invalid(format!("manifest {mdigest}: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(Error::Invalid(format!(
            "manifest {mdigest}: schema version {} is not supported",
            manifest.schema_version
        )));
    }
    for l in &manifest.layers {
        if !is_known_layer(&l.media_type) {
            return Err(Error::Invalid(format!(
                "manifest {mdigest}: layer {} has unsupported media type {:?}",
                l.digest, l.media_type
            )));
        }
    }
    let config_bytes = with_retry(opts.attempts, "", progress, || {
        get_small_blob(c, repo, &manifest.config, &scope)
    })?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::Invalid(format!("config {}: {e}", manifest.config.digest)))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::Invalid(format!(
            "manifest {mdigest} has {} layers but its config lists {} diff_ids",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }

    let store = &store.lock_shared()?;
    let jobs: Vec<(Descriptor, Digest)> = manifest
        .layers
        .iter()
        .cloned()
        .zip(config.rootfs.diff_ids.iter().cloned())
        .collect();
    let descs = parallel(&jobs, opts.parallel, |(desc, diff_id)| {
        let id = short(&desc.digest);
        let uncompressed = desc.digest == *diff_id;
        if store.has_blob(diff_id) && (uncompressed || store.has_blob(&desc.digest)) {
            progress(&id, "Already exists");
        } else {
            progress(&id, "Pulling fs layer");
            with_retry(opts.attempts, &id, progress, || {
                let bytes = |n: u64| progress(&id, &format!("Downloading {n}/{}", desc.size));
                fetch_layer(c, store, repo, &scope, desc, diff_id, &bytes)
                    .map_err(|e| e.for_blob(&desc.digest))
            })?;
            progress(&id, "Download complete");
            progress(&id, "Pull complete");
        }
        let size = store.blob_size(diff_id)?;
        Ok(Descriptor {
            media_type: MEDIA_OCI_LAYER.into(),
            digest: diff_id.clone(),
            size,
            annotations: None,
            platform: None,
        })
    })?;
    let image = store.put_image(&config_bytes, descs)?;
    let prev = store.refs()?.get(&reference.to_string()).cloned();
    store.set_ref(reference, &image)?;
    if let Ok(text) = String::from_utf8(mbytes) {
        store.set_meta(META_REGISTRY_MANIFEST, &image.manifest_digest, &text)?;
    }
    add_meta_line(
        store,
        META_REPO_DIGESTS,
        &image.manifest_digest,
        &format!("{}@{top_digest}", reference.repository()),
    )?;
    for l in &manifest.layers {
        if store.has_blob(&l.digest) {
            add_meta_line(store, META_BLOB_SOURCES, &l.digest, &reference.repository())?;
        }
    }
    Ok(Pulled {
        reference: reference.clone(),
        digest: top_digest,
        updated: prev.as_ref() != Some(&image.manifest_digest),
        image,
        endpoint: c.base.clone(),
    })
}

/// Download one layer: socket → hash (compressed) → compressed blob in the store, and
/// → decompress → tar check → hash (diffID) → uncompressed blob. Both are verified before
/// either is renamed into place.
fn fetch_layer(
    c: &Client,
    store: &Writer<'_>,
    repo: &str,
    scope: &str,
    desc: &Descriptor,
    diff_id: &Digest,
    bytes: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let resp = c.get_blob(repo, &desc.digest, scope)?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let msg = format!("fetching blob {}: {}", desc.digest, error_message(resp));
        return Err(if status >= 500 {
            Error::Transfer(msg)
        } else {
            Error::Registry(msg)
        });
    }
    let body = resp.into_body().into_reader();
    let cut = |e: io::Error| {
        Error::Transfer(format!(
            "blob {}: transfer from {} failed: {e}",
            desc.digest, c.registry
        ))
    };
    let mut uing = store.ingest()?;
    let cing = store.ingest()?;
    // Two stages on two threads: socket → sha256 → compressed blob, handing 1 MiB chunks
    // (at most 4 in flight) to decompress → tar check → sha256 → uncompressed blob.
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
    // One byte more than announced, to notice a registry that sends too much.
    let limit = desc.size.saturating_add(1);
    let (compression, scanned, drained, fetched) = std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut cing = cing;
            let mut src = HashingReader::new(body.take(limit));
            let mut failure = None;
            let mut done = 0u64;
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = match read_full(&mut src, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        failure = Some(e.to_string());
                        let _ = tx.send(Err(e));
                        break;
                    }
                };
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                if let Err(e) = cing.write_all(&buf) {
                    failure = Some(e.to_string());
                    let _ = tx.send(Err(e));
                    break;
                }
                done += n as u64;
                bytes(done);
                if tx.send(Ok(buf)).is_err() {
                    break;
                }
            }
            drop(tx);
            let (got, got_size) = src.finish();
            (cing, got, got_size, failure)
        });
        let mut chan = ChanReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        let (kind, scanned) = match layer::Decompressor::new(&mut chan) {
            Ok(dec) => {
                let kind = dec.compression();
                let mut utee = store::Tee::new(dec, &mut uing);
                let scanned = layer::scan(&mut utee);
                // A full disk is the store's fault, not the layer's.
                let scanned = match utee.take_write_error() {
                    Some(source) => Err(layer::Error::Stream {
                        op: "write to the store",
                        source,
                    }),
                    None => scanned,
                };
                (kind, scanned)
            }
            Err(e) => (None, Err(e)),
        };
        // Read what is left either way: the digest tells damage in transit (worth a retry)
        // from a layer that is broken as published.
        let drained = io::copy(&mut chan, &mut io::sink());
        drop(chan);
        let fetched = producer.join();
        (kind, scanned, drained, fetched)
    });
    let Ok((cing, got, got_size, failure)) = fetched else {
        return Err(Error::Invalid(
            "internal error: a download thread panicked".into(),
        ));
    };
    if let Some(f) = failure {
        return Err(cut(io::Error::other(f)));
    }
    drained.map_err(cut)?;
    if got_size > desc.size {
        // More than the descriptor says (the read stops at size + 1): the manifest lies, a
        // retry would not help.
        return Err(size_mismatch(&desc.digest, desc.size, got_size));
    }
    if got_size != desc.size || got != desc.digest {
        return Err(Error::Transfer(format!(
            "blob {}: digest mismatch: received {got_size} bytes (expected {}) hashing to {got}",
            desc.digest, desc.size
        )));
    }
    let content_size = scanned
        .map_err(|e| Error::Invalid(format!("blob {}: not a valid layer: {e}", desc.digest)))?
        .content_size;
    match compression {
        Some(k) => {
            let k = match k {
                layer::Compression::Gzip => Compression::Gzip,
                layer::Compression::Zstd => Compression::Zstd,
            };
            let (ud, _) = uing.commit(Some(diff_id)).map_err(|e| match e {
                store::Error::Corrupt { actual, .. } => Error::Invalid(format!(
                    "layer {}: uncompressed content hashes to {actual}, the image config says {diff_id}",
                    desc.digest
                )),
                e => Error::Store(e),
            })?;
            let (cd, csize) = cing.commit(Some(&desc.digest))?;
            store.record_compressed(&ud, k, &cd, csize)?;
        }
        None => {
            drop(cing);
            if desc.digest != *diff_id {
                return Err(Error::Invalid(format!(
                    "layer {} is uncompressed but the image config gives it diffID {diff_id}",
                    desc.digest
                )));
            }
            uing.commit(Some(diff_id))?;
        }
    }
    store.set_meta(
        archive::META_CONTENT_SIZE,
        diff_id,
        &content_size.to_string(),
    )?;
    Ok(())
}
