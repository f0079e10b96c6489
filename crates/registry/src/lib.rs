//! A client of the OCI distribution API (and Docker Registry v2): `pull`, `push`, `login`.
//!
//! Written on `ureq` (blocking, threads) rather than `oci-client`: every blob streams
//! between the socket and a store file in one pass (download → hash → decompress → tar
//! check → store; store → verify → PATCH body), which `oci-client` only offers for uploads
//! and with one request per stream item; it treats a spec-legal 202 on mount as an error and
//! knows nothing of docker's `config.json`.
//!
//! Invariants: no layer is held in memory (only manifests, configs, tokens and error bodies,
//! each read with a size cap); nothing half-written enters the store (blobs go through
//! [`store::Ingest`]: temp file, hash, verify against the manifest's digest and the config's
//! diffID, then rename); a ref is written only once every blob of the image is in place.

pub mod auth;
mod client;
mod pull;
mod push;
mod repo;

use std::time::Duration;

pub use auth::Credentials;
pub use client::system_tls;
pub use pull::{pull, Pulled};
pub use push::{push, Pushed};
pub use repo::Repo;

/// Meta kind (see [`store::Store::meta`]): the registry manifest an image was pulled or
/// pushed with, by local manifest digest, so a later push sends the same bytes.
pub const META_REGISTRY_MANIFEST: &str = "registry-manifest";
/// Meta kind: `repository@digest` lines (docker's RepoDigests), by local manifest digest.
pub const META_REPO_DIGESTS: &str = "repo-digests";
/// Meta kind: `registry/repository` lines known to hold a blob, by blob digest (for
/// cross-repository mounts on push).
pub const META_BLOB_SOURCES: &str = "blob-sources";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach registry {registry} (tried {tried}): {cause}")]
    Unreachable {
        registry: String,
        tried: String,
        cause: String,
    },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Registry(String),
    #[error("{0}")]
    Transfer(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Archive(#[from] archive::Error),
}

impl Error {
    fn poisoned() -> Error {
        Error::Invalid("internal error: a lock was poisoned".into())
    }

    /// Name the blob an error is about, when the message does not yet.
    pub(crate) fn for_blob(self, d: &store::Digest) -> Error {
        let add = |m: String| {
            if m.contains(d.as_str()) {
                m
            } else {
                format!("blob {d}: {m}")
            }
        };
        match self {
            Error::Transfer(m) => Error::Transfer(add(m)),
            Error::Registry(m) => Error::Registry(add(m)),
            Error::Invalid(m) => Error::Invalid(add(m)),
            e => e,
        }
    }

    /// Worth another attempt: the network or the registry failed, or the bytes came
    /// damaged.
    fn retryable(&self) -> bool {
        matches!(self, Error::Transfer(_) | Error::Unreachable { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A platform to pick from an image index (the store's type: containerd's normalisation).
pub use store::{Platform, PlatformError};

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct Options {
    /// `host[:port]` that may be reached over plain http (the loopback always may).
    pub insecure: Vec<String>,
    /// Mirror URLs tried first for docker.io pulls.
    pub mirrors: Vec<String>,
    pub platform: Platform,
    /// Blobs transferred at once.
    pub parallel: usize,
    pub connect_timeout: Duration,
    /// Attempts per blob.
    pub attempts: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            insecure: Vec::new(),
            mirrors: Vec::new(),
            platform: Platform::default(),
            parallel: 3,
            connect_timeout: Duration::from_secs(5),
            attempts: 3,
        }
    }
}

fn comma_list(var: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Options {
    /// Defaults plus `STRATA_INSECURE_REGISTRIES` and `STRATA_REGISTRY_MIRRORS` (comma
    /// lists).
    pub fn from_env() -> Options {
        Options {
            insecure: comma_list("STRATA_INSECURE_REGISTRIES"),
            mirrors: comma_list("STRATA_REGISTRY_MIRRORS"),
            ..Options::default()
        }
    }
}

/// Progress of a transfer: `(id, status)`; `id` is a short blob id, or empty for a line
/// about the whole image.
pub type Progress<'a> = &'a (dyn Fn(&str, &str) + Sync);

/// The host serving a registry's API (`docker.io` → `registry-1.docker.io`).
pub fn endpoint_host(registry: &str) -> &str {
    if auth::is_docker_hub(registry) {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// Check `creds` against `registry` and store them in docker's `config.json`.
pub fn login(registry: &str, creds: &Credentials, opts: &Options) -> Result<()> {
    let c = client::Client::connect(
        registry,
        endpoint_host(registry),
        None,
        Some(creds.clone()),
        opts,
    )?;
    c.verify_login()?;
    auth::store(registry, creds)
}

/// Forget the credentials of `registry`; false when there were none.
pub fn logout(registry: &str) -> Result<bool> {
    auth::remove(registry)
}

/// The 12-hex-digit id docker prints for a blob.
pub(crate) fn short(d: &store::Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// Append `line` to a meta record of lines (kept unique).
pub(crate) fn add_meta_line(
    store: &store::Writer<'_>,
    kind: &str,
    d: &store::Digest,
    line: &str,
) -> Result<()> {
    let mut lines: Vec<String> = store
        .meta(kind, d)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty() && l != line)
        .collect();
    lines.push(line.to_string());
    let keep = lines.len().saturating_sub(16);
    store.set_meta(kind, d, &(lines[keep..].join("\n") + "\n"))?;
    Ok(())
}

/// Run `work` over `items` on up to `n` threads; the first error (in item order) wins.
/// Once one item fails no new item is started.
pub(crate) fn parallel<T: Sync, R: Send>(
    items: &[T],
    n: usize,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<std::sync::Mutex<Option<Result<R>>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..n.max(1).min(items.len().max(1)) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = work(item);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    let mut out = Vec::new();
    let mut first_err = None;
    for r in results {
        match r.into_inner().ok().flatten() {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) if first_err.is_none() => first_err = Some(e),
            _ => {}
        }
    }
    match first_err {
        Some(e) => Err(e),
        None if out.len() == items.len() => Ok(out),
        None => Err(Error::Invalid(
            "internal error: a transfer did not finish".into(),
        )),
    }
}

/// Retry `f` up to `attempts` times with a growing pause while it fails in a retryable way.
pub(crate) fn with_retry<R>(
    attempts: u32,
    id: &str,
    progress: Progress,
    mut f: impl FnMut() -> Result<R>,
) -> Result<R> {
    let mut attempt = 1;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable() && attempt < attempts => {
                let pause = Duration::from_millis(500 * u64::from(attempt));
                progress(id, &format!("Retrying in {} ms ({e})", pause.as_millis()));
                std::thread::sleep(pause);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod hostile_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant, None, "containerd drops arm64's v8");
        assert_eq!(p.to_string(), "linux/arm64");
        assert!("a/b/c/d".parse::<Platform>().is_err());
        assert!("linux//".parse::<Platform>().is_err());
        assert_eq!(endpoint_host("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn parallel_reports_first_error() {
        let items: Vec<u32> = (0..10).collect();
        let ok = parallel(&items, 3, |i| Ok(i * 2)).unwrap();
        assert_eq!(ok, (0..10).map(|i| i * 2).collect::<Vec<_>>());
        let err = parallel(&items, 3, |i| {
            if *i == 4 {
                Err(Error::Invalid("four".into()))
            } else {
                Ok(*i)
            }
        });
        assert_eq!(err.unwrap_err().to_string(), "four");
        let none: Vec<u32> = Vec::new();
        assert!(parallel(&none, 3, |i| Ok(*i)).unwrap().is_empty());
    }

    #[test]
    fn retries_only_transfer_errors() {
        let quiet = |_: &str, _: &str| {};
        let mut n = 0;
        let r = with_retry(3, "x", &quiet, || {
            n += 1;
            if n < 3 {
                Err(Error::Transfer("cut".into()))
            } else {
                Ok(n)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut m = 0;
        let r: Result<()> = with_retry(3, "x", &quiet, || {
            m += 1;
            Err(Error::Unauthorized("no".into()))
        });
        assert!(r.is_err());
        assert_eq!(m, 1);
    }
}
