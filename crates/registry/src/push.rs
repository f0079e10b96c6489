//! `push`: the image's compressed layers and config, each skipped when the registry has it
//! (HEAD), mounted from another repository of the same registry when we know one that holds
//! it, else uploaded in one streamed PATCH; then the manifest. An image index: each of its
//! images so, its manifest put by digest, then the index over them under the tag.

use store::image::{Descriptor, Index, Manifest};
use store::{Digest, Image, Reference, Store, Writer};

use crate::client::{error_message, Client};
use crate::{
    add_meta_line, parallel, short, with_retry, Error, Options, Progress, Result,
    META_BLOB_SOURCES, META_REGISTRY_MANIFEST, META_REPO_DIGESTS,
};

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub tag: String,
    /// The manifest's digest in the registry.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
}

/// The manifest an image is pushed with: the one it was pulled (or last pushed) with when
/// every blob of that one is still here, else an OCI manifest of its gzip layers (made once
/// and kept).
pub fn registry_manifest(store: &Writer<'_>, image: &Image) -> Result<(Vec<u8>, Manifest)> {
    if let Some(text) = store.meta(META_REGISTRY_MANIFEST, &image.manifest_digest) {
        if let Ok(m) = serde_json::from_str::<Manifest>(&text) {
            let usable = m.config.digest == image.manifest.config.digest
                && m.layers.len() == image.config.rootfs.diff_ids.len()
                && m.layers.iter().all(|l| {
                    store
                        .blob_size(&l.digest)
                        .map(|s| s == l.size)
                        .unwrap_or(false)
                });
            if usable {
                return Ok((text.into_bytes(), m));
            }
        }
    }
    let (bytes, _) = archive::export_manifest(store, image, layer::Compression::Gzip)?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("exported manifest: {e}")))?;
    Ok((bytes, m))
}

/// Push the image named `reference` from `store`: an image, or an image index (every
/// image of it, each manifest by digest, then the index under the tag).
pub fn push(
    store: &Store,
    reference: &Reference,
    opts: &Options,
    progress: Progress,
) -> Result<Pushed> {
    if reference.digest.is_some() {
        return Err(Error::Invalid(format!(
            "cannot push {reference}: a digest reference cannot be pushed, give a tag"
        )));
    }
    let tag = reference.tag.clone().unwrap_or_else(|| "latest".into());
    let store = &store.lock_shared()?;
    let index = match store.ref_target(&reference.to_string())? {
        Some(d) => store.index(&d)?,
        None => None,
    };
    let Some(index) = index else {
        let image = store.resolve(&reference.to_string())?;
        let r = crate::Repo::connect(reference, opts, true)?;
        let (mbytes, _, digest) =
            push_image(store, &r, reference, &image, Some(&tag), opts, progress)?;
        return Ok(Pushed {
            tag,
            digest,
            size: mbytes.len() as u64,
        });
    };
    let r = crate::Repo::connect(reference, opts, true)?;
    let mut manifests = Vec::new();
    for (p, d) in index.platforms() {
        let image = store.image_for(&d, &p)?;
        let (mbytes, manifest, digest) =
            push_image(store, &r, reference, &image, None, opts, progress)?;
        manifests.push(Descriptor {
            media_type: manifest_media(&manifest),
            digest,
            size: mbytes.len() as u64,
            annotations: None,
            platform: Some(p.to_value()),
        });
    }
    let (bytes, media) = registry_index(manifests);
    let digest = r.put_manifest(media, &bytes, progress)?;
    add_meta_line(
        store,
        META_REPO_DIGESTS,
        &index.digest,
        &format!("{}@{digest}", reference.repository()),
    )?;
    Ok(Pushed {
        tag,
        digest,
        size: bytes.len() as u64,
    })
}

fn manifest_media(m: &Manifest) -> String {
    m.media_type
        .clone()
        .unwrap_or_else(|| store::image::MEDIA_OCI_MANIFEST.to_string())
}

/// The index an image index is pushed as, over the registry manifests of its images, and
/// its media type: a Docker manifest list when every manifest is a Docker one (as a list
/// pulled from Docker Hub and pushed back), else an OCI image index.
pub(crate) fn registry_index(manifests: Vec<Descriptor>) -> (Vec<u8>, &'static str) {
    let docker = !manifests.is_empty()
        && manifests
            .iter()
            .all(|m| m.media_type == store::image::MEDIA_DOCKER_MANIFEST);
    let media = if docker {
        store::image::MEDIA_DOCKER_LIST
    } else {
        store::image::MEDIA_OCI_INDEX
    };
    let index = Index {
        schema_version: 2,
        media_type: Some(media.into()),
        manifests,
    };
    let bytes = serde_json::to_vec(&index).expect("index serializes");
    (bytes, media)
}

/// Push one image: its blobs, then its manifest under `tag` (`None`: by its digest);
/// returns the manifest's bytes, parsed form and digest in the registry.
fn push_image(
    store: &Writer<'_>,
    r: &crate::Repo,
    reference: &Reference,
    image: &Image,
    tag: Option<&str>,
    opts: &Options,
    progress: Progress,
) -> Result<(Vec<u8>, Manifest, Digest)> {
    let (mbytes, manifest) = registry_manifest(store, image)?;
    let (c, scope) = (&r.client, &r.scope);
    let mut blobs: Vec<Descriptor> = manifest.layers.clone();
    blobs.push(manifest.config.clone());
    for d in &blobs {
        if d.size != store.blob_size(&d.digest)? {
            return Err(Error::Invalid(format!(
                "blob {} in the store does not have the manifest's size {}",
                d.digest, d.size
            )));
        }
    }
    let is_config = |d: &Descriptor| d.digest == manifest.config.digest;
    parallel(&blobs, opts.parallel, |d| {
        let id = short(&d.digest);
        if !is_config(d) {
            progress(&id, "Preparing");
        }
        let status = with_retry(opts.attempts, &id, progress, || {
            let bytes = |n: u64| {
                if !is_config(d) {
                    progress(&id, &format!("Pushing {n}/{}", d.size))
                }
            };
            push_blob(c, store, reference, scope, d, &bytes).map_err(|e| e.for_blob(&d.digest))
        })?;
        if !is_config(d) {
            progress(&id, &status);
        }
        Ok(())
    })?;

    let media = manifest_media(&manifest);
    let at = match tag {
        Some(t) => t.to_string(),
        None => Digest::of(&mbytes).to_string(),
    };
    let digest = r.put_manifest_at(&at, &media, &mbytes, progress)?;
    if let Ok(text) = String::from_utf8(mbytes.clone()) {
        store.set_meta(META_REGISTRY_MANIFEST, &image.manifest_digest, &text)?;
    }
    add_meta_line(
        store,
        META_REPO_DIGESTS,
        &image.manifest_digest,
        &format!("{}@{digest}", reference.repository()),
    )?;
    for l in &manifest.layers {
        add_meta_line(store, META_BLOB_SOURCES, &l.digest, &reference.repository())?;
    }
    Ok((mbytes, manifest, digest))
}

/// Push one blob; returns docker's status word for it.
pub(crate) fn push_blob(
    c: &Client,
    store: &Store,
    reference: &Reference,
    scope: &str,
    d: &Descriptor,
    bytes: &(dyn Fn(u64) + Sync),
) -> Result<String> {
    let repo = &reference.path;
    let head_url = c.url(&format!("/v2/{repo}/blobs/{}", d.digest));
    let resp = c.send(scope, |a, auth| {
        let mut r = a.head(&head_url);
        if let Some(h) = auth {
            r = r.header("Authorization", h);
        }
        r.call()
    })?;
    if resp.status().is_success() {
        return Ok("Layer already exists".into());
    }
    let _ = error_message(resp);

    // A repository of the same registry that holds the blob: ask for a mount.
    let prefix = format!("{}/", reference.domain);
    let source = store
        .meta(META_BLOB_SOURCES, &d.digest)
        .unwrap_or_default()
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix(&prefix))
        .find(|p| *p != repo.as_str())
        .map(str::to_string);
    let mut location = None;
    if let Some(from) = &source {
        let url = c.url(&format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={}",
            crate::client::qs(d.digest.as_str()),
            crate::client::qs(from)
        ));
        let mscope = format!("{scope} repository:{from}:pull");
        let resp = c.send(&mscope, |a, auth| {
            let mut r = a.post(&url);
            if let Some(h) = auth {
                r = r.header("Authorization", h);
            }
            r.send_empty()
        })?;
        match resp.status().as_u16() {
            201 => {
                let _ = error_message(resp);
                return Ok(format!("Mounted from {from}"));
            }
            // Declined: the registry opened an upload session instead.
            202 => location = header(&resp, "location"),
            _ => {
                let _ = error_message(resp);
            }
        }
    }
    let location = match location {
        Some(l) => l,
        None => start_upload(c, repo, scope)?,
    };

    // One PATCH streaming the whole blob from the store (verified as it is read).
    let size = d.size;
    let patch_url = c.resolve_location(&location);
    let resp = c.send(scope, |a, auth| {
        let reader = store
            .open_blob(&d.digest)
            .map_err(|e| ureq::Error::Io(std::io::Error::other(e.to_string())))?;
        let mut r = a
            .patch(&patch_url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string());
        if let Some(h) = auth {
            r = r.header("Authorization", h);
        }
        let mut counted = Counted {
            inner: reader,
            done: 0,
            reported: 0,
            bytes,
        };
        r.send(ureq::SendBody::from_reader(&mut counted))
    })?;
    let status = resp.status().as_u16();
    if status != 202 && status != 204 && status != 201 {
        return Err(Error::Transfer(format!(
            "uploading blob {}: {}",
            d.digest,
            error_message(resp)
        )));
    }
    let next = header(&resp, "location").unwrap_or(location);
    let _ = error_message(resp);
    let put_url = c.resolve_location(&next);
    let sep = if put_url.contains('?') { '&' } else { '?' };
    let put_url = format!(
        "{put_url}{sep}digest={}",
        crate::client::qs(d.digest.as_str())
    );
    let resp = c.send(scope, |a, auth| {
        let mut r = a.put(&put_url).header("Content-Length", "0");
        if let Some(h) = auth {
            r = r.header("Authorization", h);
        }
        r.send_empty()
    })?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let msg = format!("committing blob {}: {}", d.digest, error_message(resp));
        return Err(if status >= 500 || status == 400 || status == 404 {
            // 400 digest invalid / 404 upload unknown: the upload broke; start over.
            Error::Transfer(msg)
        } else {
            Error::Registry(msg)
        });
    }
    let _ = error_message(resp);
    Ok("Pushed".into())
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn start_upload(c: &Client, repo: &str, scope: &str) -> Result<String> {
    let url = c.url(&format!("/v2/{repo}/blobs/uploads/"));
    let resp = c.send(scope, |a, auth| {
        let mut r = a.post(&url);
        if let Some(h) = auth {
            r = r.header("Authorization", h);
        }
        r.send_empty()
    })?;
    let status = resp.status().as_u16();
    if status != 202 {
        let msg = format!("starting an upload to {repo}: {}", error_message(resp));
        return Err(if status >= 500 {
            Error::Transfer(msg)
        } else {
            Error::Registry(msg)
        });
    }
    let loc = header(&resp, "location");
    let _ = error_message(resp);
    loc.ok_or_else(|| Error::Invalid("the registry gave no upload location".into()))
}

/// A reader that reports how many bytes went through it, every MiB and at the end.
struct Counted<'a, R> {
    inner: R,
    done: u64,
    reported: u64,
    bytes: &'a (dyn Fn(u64) + Sync),
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if n == 0 || self.done - self.reported >= 1 << 20 {
            self.reported = self.done;
            (self.bytes)(self.done);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(media: &str, arch: &str) -> Descriptor {
        Descriptor {
            media_type: media.into(),
            digest: Digest::of(arch.as_bytes()),
            size: 1,
            annotations: None,
            platform: Some(serde_json::json!({"architecture": arch, "os": "linux"})),
        }
    }

    #[test]
    fn an_index_of_docker_manifests_is_a_docker_manifest_list() {
        use store::image::{MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_MANIFEST};
        let (bytes, media) = registry_index(vec![
            desc(MEDIA_DOCKER_MANIFEST, "amd64"),
            desc(MEDIA_DOCKER_MANIFEST, "arm64"),
        ]);
        assert_eq!(media, MEDIA_DOCKER_LIST);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["mediaType"], MEDIA_DOCKER_LIST);
        assert_eq!(v["manifests"][1]["platform"]["architecture"], "arm64");
        let (_, media) = registry_index(vec![
            desc(MEDIA_DOCKER_MANIFEST, "amd64"),
            desc(MEDIA_OCI_MANIFEST, "arm64"),
        ]);
        assert_eq!(media, store::image::MEDIA_OCI_INDEX, "mixed: OCI");
    }
}
