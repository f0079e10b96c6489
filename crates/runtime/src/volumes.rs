//! Volumes: directories in the store that outlive containers (docker's `local` driver).
//!
//! ```text
//! <root>/volumes/.lock               flock: held exclusive to create, remove or prune
//! <root>/volumes/<name>/volume.json  created time, labels, anonymous flag
//! <root>/volumes/<name>/_data/       what containers see (the mount's source)
//! <root>/volumes/<name>/users/<id>   a foreground container using it (flock held shared)
//! ```
//!
//! A volume is created whole (a hidden temp directory renamed into place), so a listed
//! volume always has its metadata. Store GC (`prune`) never looks under `volumes/`: volumes
//! are roots of their own, removed only by `volume rm`/`prune`, `rm -v` and `--rm`. A volume
//! is in use while a container on disk (running or not) names it in its mounts, or a
//! foreground container holds a shared flock on its `users/<id>` file.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::container::Containers;
use crate::mounts::{valid_volume_name, MountKind, MountPoint};

/// What `volume.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VolumeMeta {
    /// RFC 3339.
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Made for a container without a name (`-v /path`, an image's VOLUME).
    #[serde(default)]
    pub anonymous: bool,
}

/// One volume.
#[derive(Debug, Clone)]
pub struct Volume {
    pub name: String,
    pub dir: PathBuf,
    pub meta: VolumeMeta,
}

impl Volume {
    /// The directory containers see.
    pub fn mountpoint(&self) -> PathBuf {
        self.dir.join("_data")
    }

    /// `docker volume inspect`'s object.
    pub fn inspect(&self) -> serde_json::Value {
        let labels: serde_json::Value = if self.meta.labels.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&self.meta.labels).unwrap_or_default()
        };
        serde_json::json!({
            "CreatedAt": self.meta.created,
            "Driver": "local",
            "Labels": labels,
            "Mountpoint": self.mountpoint(),
            "Name": self.name,
            "Options": serde_json::Value::Null,
            "Scope": "local",
        })
    }

    /// Bytes of the files in the volume.
    pub fn size(&self) -> u64 {
        let mut total = 0;
        let mut stack = vec![self.mountpoint()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if let Ok(m) = e.path().symlink_metadata() {
                    if m.is_dir() {
                        stack.push(e.path());
                    } else {
                        total += m.len();
                    }
                }
            }
        }
        total
    }
}

/// The volumes directory of a store.
pub struct Volumes {
    pub dir: PathBuf,
    store_root: PathBuf,
}

pub use crate::dirlock::Lock;
use crate::dirlock::{flock, lock_dir, private_dir};

/// A foreground container's hold on a volume: a shared flock on `users/<id>`, the file
/// removed on drop.
pub struct Hold {
    path: PathBuf,
    _file: File,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Volumes {
    /// The volumes of the store at `store_root` (the directory made on first use, 0700).
    pub fn new(store_root: &Path) -> Result<Volumes> {
        Ok(Volumes {
            dir: private_dir(store_root, "volumes")?,
            store_root: store_root.to_path_buf(),
        })
    }

    pub fn open(store: &store::Store) -> Result<Volumes> {
        Volumes::new(store.root())
    }

    pub fn lock(&self) -> Result<Lock> {
        lock_dir(&self.dir)
    }

    /// The volume `name`, or docker's `no such volume` error.
    pub fn get(&self, name: &str) -> Result<Volume> {
        self.load(name)?
            .with_context(|| format!("get {name}: no such volume"))
    }

    fn load(&self, name: &str) -> Result<Option<Volume>> {
        if !valid_volume_name(name) {
            return Ok(None);
        }
        let dir = self.dir.join(name);
        let bytes = match std::fs::read(dir.join("volume.json")) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read volume {name}")),
        };
        let meta = serde_json::from_slice(&bytes)
            .with_context(|| format!("parse the metadata of volume {name}"))?;
        Ok(Some(Volume {
            name: name.to_string(),
            dir,
            meta,
        }))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        let rd =
            std::fs::read_dir(&self.dir).with_context(|| format!("read {}", self.dir.display()))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if let Ok(Some(v)) = self.load(&name) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Create a volume (a random 64-hex name when `name` is `None`); an existing volume of
    /// that name is returned as it is, as docker's `volume create` does. The flag tells
    /// whether it was created now.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(Volume, bool)> {
        let name = checked_name(name)?;
        let _l = self.lock()?;
        self.create_locked(name, labels, anonymous)
    }

    /// [`create`](Self::create), and the volume held for the container `id` before the lock
    /// is released, so no `volume rm` or `prune` can take a volume just made.
    pub fn create_and_hold(
        &self,
        name: Option<&str>,
        anonymous: bool,
        id: &str,
    ) -> Result<(Volume, Hold)> {
        let name = checked_name(name)?;
        let _l = self.lock()?;
        let (v, _) = self.create_locked(name, BTreeMap::new(), anonymous)?;
        let hold = self.hold(&v.name, id)?;
        Ok((v, hold))
    }

    fn create_locked(
        &self,
        name: String,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(Volume, bool)> {
        if let Some(v) = self.load(&name)? {
            return Ok((v, false));
        }
        let tmp = self.dir.join(format!(".new-{name}-{}", std::process::id()));
        let _ = store::remove_tree(&tmp);
        std::fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let result = (|| -> Result<VolumeMeta> {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(tmp.join("_data"))
                .context("create the volume's _data")?;
            let meta = VolumeMeta {
                created: store::now_rfc3339(),
                labels,
                anonymous,
            };
            let bytes = serde_json::to_vec_pretty(&meta).context("encode the volume's metadata")?;
            store::atomic_write(&tmp.join("volume.json"), &bytes)
                .context("write the volume's metadata")?;
            std::fs::rename(&tmp, self.dir.join(&name))
                .with_context(|| format!("create volume {name}"))?;
            Ok(meta)
        })();
        match result {
            Ok(meta) => Ok((
                Volume {
                    dir: self.dir.join(&name),
                    name,
                    meta,
                },
                true,
            )),
            Err(e) => {
                let _ = store::remove_tree(&tmp);
                Err(e)
            }
        }
    }

    /// The containers that use the volume `name`: those on disk (running or not) whose
    /// mounts name it, and foreground containers holding it.
    pub fn users(&self, name: &str) -> Result<Vec<String>> {
        let mut ids: Vec<String> = Containers::new(&self.store_root)?
            .list()?
            .into_iter()
            .filter(|c| {
                c.config
                    .mounts
                    .iter()
                    .any(|m| m.kind == MountKind::Volume && m.name.as_deref() == Some(name))
            })
            .map(|c| c.config.id)
            .collect();
        let users = self.dir.join(name).join("users");
        for e in std::fs::read_dir(&users).into_iter().flatten().flatten() {
            let Ok(f) = File::open(e.path()) else {
                continue;
            };
            // SAFETY: flock on a descriptor owned here.
            let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            if free {
                // Its run is over (killed before it could clean up).
                let _ = std::fs::remove_file(e.path());
            } else {
                ids.push(e.file_name().to_string_lossy().to_string());
            }
        }
        Ok(ids)
    }

    /// Mark the volume as used by the foreground container `id` until the hold is dropped.
    pub fn hold(&self, name: &str, id: &str) -> Result<Hold> {
        let users = self.dir.join(name).join("users");
        std::fs::create_dir_all(&users).with_context(|| format!("create {}", users.display()))?;
        let path = users.join(id);
        let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        flock(&file, libc::LOCK_SH).with_context(|| format!("lock {}", path.display()))?;
        Ok(Hold { path, _file: file })
    }

    /// Remove a volume; refused while a container uses it (docker's `volume is in use`),
    /// with `force` too (as docker, which only ignores a missing volume then).
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let _l = self.lock()?;
        self.remove_locked(name, force)
    }

    fn remove_locked(&self, name: &str, force: bool) -> Result<()> {
        let v = match self.load(name)? {
            Some(v) => v,
            None if force => return Ok(()),
            None => bail!("get {name}: no such volume"),
        };
        let users = self.users(name)?;
        if !users.is_empty() {
            bail!("remove {name}: volume is in use - [{}]", users.join(", "));
        }
        let gone = self.dir.join(format!(".removing-{name}"));
        std::fs::rename(&v.dir, &gone).with_context(|| format!("remove volume {name}"))?;
        store::remove_tree(&gone).with_context(|| format!("remove volume {name}"))
    }

    /// Remove the unused volumes (only anonymous ones unless `all`) whose labels match
    /// `labels` (`key` or `key=value` each); their names and bytes.
    pub fn prune(&self, all: bool, labels: &[String]) -> Result<Vec<(String, u64)>> {
        let _l = self.lock()?;
        // What a killed create or remove left (both run under the lock held here).
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with(".new-") || n.starts_with(".removing-") {
                let _ = store::remove_tree(&e.path());
            }
        }
        let mut out = Vec::new();
        for v in self.list()? {
            if !all && !v.meta.anonymous {
                continue;
            }
            if !labels.iter().all(|l| label_matches(&v.meta.labels, l)) {
                continue;
            }
            if !self.users(&v.name)?.is_empty() {
                continue;
            }
            let size = v.size();
            self.remove_locked(&v.name, false)?;
            out.push((v.name, size));
        }
        Ok(out)
    }

    /// Remove the anonymous volumes among `mounts` that no other container uses (what
    /// `rm -v` and `--rm` do after the container is gone).
    pub fn remove_anonymous(&self, mounts: &[MountPoint]) -> Result<()> {
        let _l = self.lock()?;
        for m in mounts {
            if m.kind != MountKind::Volume || !m.anonymous {
                continue;
            }
            let Some(name) = &m.name else { continue };
            if self.load(name)?.is_some() && self.users(name)?.is_empty() {
                self.remove_locked(name, true)?;
            }
        }
        Ok(())
    }

    /// Problems of the volumes directory for `fsck`: entries that are not volumes.
    pub fn check(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let rd =
            std::fs::read_dir(&self.dir).with_context(|| format!("read {}", self.dir.display()))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            match self.load(&name) {
                Ok(Some(v)) if v.mountpoint().is_dir() => {}
                Ok(Some(_)) => problems.push(format!("volume {name}: no _data directory")),
                Ok(None) => problems.push(format!("volumes/{name}: not a volume")),
                Err(err) => problems.push(format!("volume {name}: {err:#}")),
            }
        }
        Ok(problems)
    }
}

/// A volume's name as given (docker's rule), or a random 64-hex one.
fn checked_name(name: Option<&str>) -> Result<String> {
    match name {
        Some(n) if !valid_volume_name(n) => bail!(
            "create {n}: \"{n}\" includes invalid characters for a local volume name, only \
             \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host \
             directory, use absolute path"
        ),
        Some(n) => Ok(n.to_string()),
        None => Ok(crate::container::random_id()),
    }
}

/// docker's `label=` filter: `key` (present) or `key=value`.
pub fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_remove_prune() {
        let tmp = tempfile::tempdir().unwrap();
        let vols = Volumes::new(tmp.path()).unwrap();
        let (a, new) = vols.create(Some("data"), BTreeMap::new(), false).unwrap();
        assert!(new && a.mountpoint().is_dir());
        let (_, new) = vols.create(Some("data"), BTreeMap::new(), false).unwrap();
        assert!(!new);
        let (anon, _) = vols.create(None, BTreeMap::new(), true).unwrap();
        assert_eq!(anon.name.len(), 64);
        assert_eq!(vols.list().unwrap().len(), 2);
        assert!(vols.create(Some("a/b"), BTreeMap::new(), false).is_err());

        let hold = vols.hold("data", "c1").unwrap();
        let e = vols.remove("data", false).unwrap_err().to_string();
        assert_eq!(e, "remove data: volume is in use - [c1]");
        drop(hold);

        std::fs::create_dir_all(vols.dir.join(".removing-x/_data")).unwrap();
        let pruned = vols.prune(false, &[]).unwrap();
        assert!(!vols.dir.join(".removing-x").exists());
        assert_eq!(pruned.len(), 1);
        assert_eq!(pruned[0].0, anon.name);
        vols.remove("data", false).unwrap();
        assert!(vols.list().unwrap().is_empty());
        assert_eq!(
            vols.remove("data", false).unwrap_err().to_string(),
            "get data: no such volume"
        );
        vols.remove("data", true).unwrap();
        assert!(vols.check().unwrap().is_empty());
    }
}
