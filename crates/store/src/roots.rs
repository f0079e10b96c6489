//! Small records beside the blobs: meta facts, extra GC roots, the build cache's records
//! and memos, and the build contexts' stat caches.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::files::write_via;
use crate::{atomic_write, Digest, IoContext, Result, Store, Writer};

/// GC root kind of build cache records (step cache key → layer).
pub const ROOT_CACHE: &str = "cache";

/// GC root kind under which untagged images are kept.
pub const ROOT_UNTAGGED: &str = "untagged";

/// Remove the files of `dir` (all, or those last written before `until`); returns how many.
pub(crate) fn remove_older(dir: &Path, until: Option<std::time::SystemTime>) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let old_enough = match until {
            None => true,
            Some(t) => e
                .metadata()
                .and_then(|m| m.modified())
                .map(|m| m < t)
                .unwrap_or(true),
        };
        if old_enough && fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

impl Store {
    /// A small fact recorded about a blob (`kind` names what it is), if any.
    pub fn meta(&self, kind: &str, d: &Digest) -> Option<String> {
        fs::read_to_string(self.root.join("meta").join(kind).join(d.hex())).ok()
    }

    pub(crate) fn extra_roots(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let dir = self.root.join("roots");
        for kind in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let kind = kind.ctx(|| "read roots".into())?;
            if !kind.path().is_dir() {
                continue;
            }
            for f in fs::read_dir(kind.path()).ctx(|| "read roots".into())? {
                let f = f.ctx(|| "read roots".into())?;
                if let Ok(text) = fs::read_to_string(f.path()) {
                    out.extend(text.lines().filter_map(|l| l.trim().parse::<Digest>().ok()));
                }
            }
        }
        Ok(out)
    }

    /// The layer a cache record (a step's cache key) points at, if it is still present,
    /// with the time the step first ran.
    pub fn cache_get(&self, key: &Digest) -> Option<(Digest, Option<String>)> {
        let p = self.root.join("roots").join(ROOT_CACHE).join(key.hex());
        let text = fs::read_to_string(p).ok()?;
        let mut lines = text.lines();
        let d: Digest = lines.next()?.trim().parse().ok()?;
        let created = lines
            .next()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty());
        self.has_blob(&d).then_some((d, created))
    }

    /// The layers the build cache's records point at, one per record (a layer several
    /// records share is listed that many times); records whose layer is gone are left out.
    pub fn cache_layers(&self) -> Vec<Digest> {
        let dir = self.root.join("roots").join(ROOT_CACHE);
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let key: Digest = format!("sha256:{}", e.file_name().to_str()?).parse().ok()?;
                self.cache_get(&key).map(|(d, _)| d)
            })
            .collect()
    }

    /// A memo of the build cache: a small value derived from `key` (e.g. what a COPY's
    /// content key is, given its inputs' identities), so a cached step need not look at
    /// file contents again. Dropped with the cache records.
    pub fn memo_get(&self, key: &Digest) -> Option<String> {
        fs::read_to_string(self.root.join("memo").join(key.hex())).ok()
    }

    /// Where the stat cache of context directory `dir` (a canonical path) is kept:
    /// `cache/stat/<sha256 of the path's bytes>`. The store keeps its bytes and never reads
    /// them; prune leaves it (it is no GC root and reaches nothing), `prune --all` drops it
    /// with the cache records.
    pub fn stat_cache_path(&self, dir: &Path) -> PathBuf {
        self.root
            .join("cache/stat")
            .join(Digest::of(dir.as_os_str().as_bytes()).hex())
    }

    /// The stat cache kept for context directory `dir`, if any (`None` also when it cannot
    /// be read: the cache only ever saves work).
    pub fn stat_cache_get(&self, dir: &Path) -> Option<Vec<u8>> {
        fs::read(self.stat_cache_path(dir)).ok()
    }
}

impl Writer<'_> {
    /// Record a small fact about a blob; pruned together with the blob.
    pub fn set_meta(&self, kind: &str, d: &Digest, value: &str) -> Result<()> {
        let dir = self.root.join("meta").join(kind);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        atomic_write(&dir.join(d.hex()), value.as_bytes())
    }

    /// Set an extra GC root (e.g. a cache record): the listed digests stay alive.
    pub fn set_root(&self, kind: &str, name: &str, digests: &[Digest]) -> Result<()> {
        let dir = self.root.join("roots").join(kind);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let text: String = digests.iter().map(|d| format!("{d}\n")).collect();
        atomic_write(&dir.join(name), text.as_bytes())
    }

    pub fn remove_root(&self, kind: &str, name: &str) -> Result<()> {
        match fs::remove_file(self.root.join("roots").join(kind).join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove root {kind}/{name}")),
        }
    }

    /// Record that the step with cache key `key` produced layer `diff_id` at `created` (a
    /// GC root until `prune --all`).
    pub fn cache_put(&self, key: &Digest, diff_id: &Digest, created: &str) -> Result<()> {
        let dir = self.root.join("roots").join(ROOT_CACHE);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        atomic_write(
            &dir.join(key.hex()),
            format!("{diff_id}\n{created}\n").as_bytes(),
        )
    }

    pub fn memo_put(&self, key: &Digest, value: &str) -> Result<()> {
        let dir = self.root.join("memo");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        atomic_write(&dir.join(key.hex()), value.as_bytes())
    }

    /// Replace the stat cache kept for context directory `dir` ([`Store::stat_cache_path`])
    /// with `bytes`: written under `tmp/` and renamed into place.
    pub fn stat_cache_put(&self, dir: &Path, bytes: &[u8]) -> Result<()> {
        let path = self.stat_cache_path(dir);
        let parent = path.parent().expect("the stat cache has a directory");
        fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
        write_via(&self.temp_path("stat-cache"), &path, bytes)
    }

    /// Remove cache records (all, or those last written before `until`); returns how many.
    pub fn drop_cache(&self, until: Option<std::time::SystemTime>) -> Result<usize> {
        // Memos and stat caches go with the records (their count is not reported).
        remove_older(&self.root.join("memo"), until);
        remove_older(&self.root.join("cache/stat"), until);
        Ok(remove_older(
            &self.root.join("roots").join(ROOT_CACHE),
            until,
        ))
    }
}
