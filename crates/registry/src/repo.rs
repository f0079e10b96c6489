//! One repository of a registry at the level of blobs and manifests: what a build cache
//! (`--cache-to/--cache-from type=registry`) needs beyond images.

use std::io::Read;

use store::image::Descriptor;
use store::{Digest, Reference, Store};

use crate::client::{error_message, read_small, Client, ACCEPT_MANIFESTS};
use crate::{endpoint_host, with_retry, Error, Options, Progress, Result};

/// Manifests are small: refuse more than this.
const MAX_MANIFEST: u64 = 4 << 20;

/// A connected repository (`127.0.0.1:5000/cache/app`), with the tag `reference` names.
pub struct Repo {
    pub(crate) client: Client,
    reference: Reference,
    /// The token scope: pull, or pull and push.
    pub(crate) scope: String,
    attempts: u32,
}

impl Repo {
    /// Connect for pulling, or for pulling and pushing.
    pub fn connect(reference: &Reference, opts: &Options, push: bool) -> Result<Repo> {
        let creds = crate::auth::lookup(&reference.domain)?;
        let client = Client::connect(
            &reference.domain,
            endpoint_host(&reference.domain),
            None,
            creds,
            opts,
        )?;
        let access = if push { "pull,push" } else { "pull" };
        Ok(Repo {
            client,
            scope: format!("repository:{}:{access}", reference.path),
            reference: reference.clone(),
            attempts: opts.attempts,
        })
    }

    pub fn describe(&self) -> String {
        self.reference.to_string()
    }

    fn tag(&self) -> String {
        self.reference
            .tag
            .clone()
            .unwrap_or_else(|| "latest".into())
    }

    /// Whether the repository has the blob (HEAD).
    pub fn has_blob(&self, d: &Digest) -> Result<bool> {
        let url = self
            .client
            .url(&format!("/v2/{}/blobs/{d}", self.reference.path));
        let resp = self.client.send(&self.scope, |a, auth| {
            let mut r = a.head(&url);
            if let Some(h) = auth {
                r = r.header("Authorization", h);
            }
            r.call()
        })?;
        let ok = resp.status().is_success();
        let _ = error_message(resp);
        Ok(ok)
    }

    /// Upload a blob the store holds (skipped when the registry has it), with retries.
    pub fn push_store_blob(&self, store: &Store, d: &Descriptor) -> Result<()> {
        let quiet = |_: &str, _: &str| {};
        with_retry(self.attempts, "", &quiet, || {
            crate::push::push_blob(
                &self.client,
                store,
                &self.reference,
                &self.scope,
                d,
                &|_| {},
            )
            .map_err(|e| e.for_blob(&d.digest))
        })?;
        Ok(())
    }

    /// Put a manifest under the reference's tag, with retries (reported through
    /// `progress`); returns its digest, which the registry must confirm when it names one.
    pub fn put_manifest(
        &self,
        media_type: &str,
        bytes: &[u8],
        progress: Progress,
    ) -> Result<Digest> {
        self.put_manifest_at(&self.tag(), media_type, bytes, progress)
    }

    /// Put a manifest under `tag` (a tag, or the manifest's own digest: an image index's
    /// manifests are put by digest before the index), as [`Repo::put_manifest`].
    pub fn put_manifest_at(
        &self,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
        progress: Progress,
    ) -> Result<Digest> {
        let repo = &self.reference.path;
        let url = self.client.url(&format!("/v2/{repo}/manifests/{tag}"));
        let digest = Digest::of(bytes);
        with_retry(self.attempts, "", progress, || {
            let resp = self.client.send(&self.scope, |a, auth| {
                let mut r = a.put(&url).header("Content-Type", media_type);
                if let Some(h) = auth {
                    r = r.header("Authorization", h);
                }
                r.send(bytes)
            })?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let msg = format!("pushing manifest {repo}:{tag}: {}", error_message(resp));
                return Err(if status >= 500 {
                    Error::Transfer(msg)
                } else {
                    Error::Registry(msg)
                });
            }
            if let Some(d) = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
            {
                if d != digest.as_str() {
                    return Err(Error::Invalid(format!(
                        "the registry stored manifest {repo}:{tag} as {d}, expected {digest}"
                    )));
                }
            }
            Ok(())
        })?;
        Ok(digest)
    }

    /// The manifest the reference's tag names (its bytes), or `None` when there is none.
    pub fn manifest(&self) -> Result<Option<Vec<u8>>> {
        let url = self.client.url(&format!(
            "/v2/{}/manifests/{}",
            self.reference.path,
            self.tag()
        ));
        let resp = self.client.send(&self.scope, |a, auth| {
            let mut r = a.get(&url).header("Accept", ACCEPT_MANIFESTS);
            if let Some(h) = auth {
                r = r.header("Authorization", h);
            }
            r.call()
        })?;
        match resp.status().as_u16() {
            404 => {
                let _ = error_message(resp);
                Ok(None)
            }
            s if (200..300).contains(&s) => Ok(Some(read_small(resp, MAX_MANIFEST, "manifest")?)),
            _ => Err(Error::Registry(format!(
                "fetching manifest {}: {}",
                self.reference,
                error_message(resp)
            ))),
        }
    }

    /// A blob's bytes as a stream (the caller verifies the digest as it reads).
    pub fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send + 'static>> {
        let resp = self.client.get_blob(&self.reference.path, d, &self.scope)?;
        if !resp.status().is_success() {
            return Err(Error::Registry(format!(
                "fetching blob {d} from {}: {}",
                self.reference,
                error_message(resp)
            )));
        }
        Ok(Box::new(resp.into_body().into_reader()))
    }
}
