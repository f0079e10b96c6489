//! Garbage collection and checks: the live set (refs, roots, untagged images, and what
//! they reach), prune, fsck, and the sweep of dead owners' temporaries.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::image::Manifest;
use crate::{remove_tree, temp, Compression, Digest, Exclusive, IoContext, Result, Store, Swept};

/// What prune removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub blobs: Vec<(Digest, u64)>,
    pub snapshots: Vec<String>,
    /// Temporaries of commands that are gone (names under `tmp/`) and their bytes.
    pub temporaries: Swept,
    /// Everything freed, temporaries included.
    pub bytes: u64,
}

/// Remove the files of `dir` named by a digest (hex) that is not in `live`.
pub(crate) fn remove_dead(dir: &Path, live: &BTreeSet<Digest>) -> Result<()> {
    for e in fs::read_dir(dir)
        .ctx(|| format!("read {}", dir.display()))?
        .flatten()
    {
        let keep = e
            .file_name()
            .to_str()
            .and_then(|n| Digest::from_hex(n).ok())
            .is_some_and(|d| live.contains(&d));
        if !keep {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(())
}

pub(crate) fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if let Ok(m) = e.path().symlink_metadata() {
                    if m.is_dir() {
                        stack.push(e.path());
                    } else {
                        total += m.len();
                    }
                }
            }
        }
    }
    total
}

impl Store {
    /// Remove the temporaries whose owner is gone: entries of `tmp/`, and the temp files
    /// of index.json's atomic replacement. A live owner's entry is never touched. Cheap
    /// when `tmp/` is empty (one directory read).
    pub fn sweep_tmp(&self) -> Swept {
        self.sweep(temp::SweepScope::DeadOwners)
    }

    pub(crate) fn sweep(&self, scope: temp::SweepScope) -> Swept {
        let mut s = temp::sweep(&self.root.join("tmp"), scope);
        let r = temp::sweep(&self.root, temp::SweepScope::Kind(".index.json.tmp"));
        s.entries.extend(r.entries);
        s.bytes += r.bytes;
        s
    }

    /// Every blob and snapshot reachable from refs and extra roots.
    pub(crate) fn live_set(&self) -> Result<(BTreeSet<Digest>, BTreeSet<String>)> {
        let mut blobs = BTreeSet::new();
        let mut snapshots = BTreeSet::new();
        let mut manifests: Vec<Digest> = self.refs()?.into_values().collect();
        for r in self.extra_roots()? {
            // A root may name any blob; a layer's diff id keeps its snapshot too.
            snapshots.insert(r.hex().to_string());
            if self.has_blob(&r) {
                let bytes = self.read_blob(&r).ok();
                let is_manifest = bytes.as_ref().is_some_and(|b| {
                    serde_json::from_slice::<Manifest>(b).is_ok() || crate::refs::is_index(b)
                });
                if is_manifest {
                    manifests.push(r);
                } else {
                    blobs.insert(r);
                }
            }
        }
        // An index keeps itself and its images.
        let mut i = 0;
        while i < manifests.len() {
            if let Ok(Some(ix)) = self.index(&manifests[i]) {
                blobs.insert(manifests.swap_remove(i));
                manifests.extend(
                    ix.platforms()
                        .into_iter()
                        .map(|(_, d)| d)
                        .filter(|d| self.has_blob(d)),
                );
                continue;
            }
            i += 1;
        }
        for m in manifests {
            let Ok(img) = self.image(&m) else {
                blobs.insert(m);
                continue;
            };
            blobs.insert(m);
            blobs.insert(img.manifest.config.digest.clone());
            for l in &img.manifest.layers {
                blobs.insert(l.digest.clone());
            }
            for d in &img.config.rootfs.diff_ids {
                snapshots.insert(d.hex().to_string());
            }
        }
        // Compressed forms of live layers stay with them.
        for c in [Compression::Gzip, Compression::Zstd] {
            let extra: Vec<Digest> = blobs
                .iter()
                .filter_map(|d| self.compressed(d, c).ok().flatten().map(|(cd, _)| cd))
                .collect();
            blobs.extend(extra);
        }
        Ok((blobs, snapshots))
    }

    /// Check the store: every ref reaches a manifest, config and layers that exist and
    /// hash to their digests. Returns the problems found (empty = consistent).
    pub fn fsck(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut checked: BTreeSet<Digest> = BTreeSet::new();
        let mut targets = Vec::new();
        for (name, m) in self.refs()? {
            match self.index(&m) {
                Ok(Some(ix)) => {
                    for (p, d) in ix.platforms() {
                        targets.push((format!("{name} ({p})"), d));
                    }
                }
                _ => targets.push((name, m)),
            }
        }
        for (name, m) in targets {
            let img = match self.image(&m) {
                Ok(i) => i,
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    continue;
                }
            };
            if img.manifest.layers.len() != img.config.rootfs.diff_ids.len() {
                problems.push(format!(
                    "{name}: manifest has {} layers, config {} diff_ids",
                    img.manifest.layers.len(),
                    img.config.rootfs.diff_ids.len()
                ));
            }
            for l in &img.manifest.layers {
                if !checked.insert(l.digest.clone()) {
                    continue;
                }
                match self.verify_blob(&l.digest, l.size) {
                    Ok(()) => {}
                    Err(e) => problems.push(format!("{name}: layer {}: {e}", l.digest)),
                }
            }
        }
        Ok(problems)
    }
}

impl Exclusive<'_> {
    /// Remove every blob, compressed-form record and snapshot that no ref or root reaches,
    /// and the temporaries of gone commands (counted in the report; a live owner's stay).
    /// Running writers were waited for when the lock was taken.
    pub fn prune(&self) -> Result<PruneReport> {
        let (live, live_snaps) = self.live_set()?;
        let mut report = PruneReport::default();
        let dir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let e = e.ctx(|| "read blobs".into())?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(d) = Digest::from_hex(name) else {
                continue;
            };
            if !live.contains(&d) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path()).ctx(|| format!("remove blob {d}"))?;
                report.bytes += size;
                report.blobs.push((d, size));
            }
        }
        for c in [Compression::Gzip, Compression::Zstd] {
            remove_dead(&self.root.join("compressed").join(c.name()), &live)?;
        }
        let mdir = self.root.join("meta");
        for kind in fs::read_dir(&mdir)
            .ctx(|| format!("read {}", mdir.display()))?
            .flatten()
        {
            remove_dead(&kind.path(), &live)?;
        }
        let sdir = self.root.join("snapshots");
        for e in fs::read_dir(&sdir)
            .ctx(|| format!("read {}", sdir.display()))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            // `<diffID>` or `<diffID>-<n>` (a repeat of the layer within one chain).
            let id = name.split('-').next().unwrap_or("");
            if !live_snaps.contains(id) {
                let size = dir_size(&e.path());
                remove_tree(&e.path())?;
                report.bytes += size;
                report.snapshots.push(name);
            }
        }
        // Temporaries of gone commands, and those no strata names (an older version's): no
        // writer holds the lock now. A live owner's (a foreground `run`, or a command
        // waiting for the lock) stays.
        report.temporaries = self.sweep(temp::SweepScope::DeadOwnersAndUnnamed);
        // Temp files of atomic writes beside roots and memos (their own names are digests
        // or keys, never temporary names).
        let mut dirs = vec![self.root.join("memo")];
        dirs.extend(
            fs::read_dir(self.root.join("roots"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        for d in dirs {
            let s = temp::sweep(&d, temp::SweepScope::Hidden);
            report.temporaries.entries.extend(s.entries);
            report.temporaries.bytes += s.bytes;
        }
        report.bytes += report.temporaries.bytes;
        Ok(report)
    }
}

/// Bytes under `p` (a file's length, or the sum of the files' lengths in a tree).
pub(crate) fn dir_size_of(p: &Path) -> u64 {
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => dir_size(p),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
