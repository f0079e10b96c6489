//! Layer snapshots: each layer unpacked once, in overlay format (whiteouts as 0:0 character
//! devices, opaque directories marked), under `store/snapshots/<diffID>`, so a RUN step or a
//! container can mount a chain of them as overlay lowerdirs. Shared by the engine and the
//! runtime; the engine passes a `fetch` hook that brings a missing layer blob in from an
//! imported cache before it is unpacked (the runtime passes one that does nothing).
//!
//! A directory the engine has just committed as a layer (a RUN's upperdir, a COPY's
//! files) becomes that layer's snapshot by a rename ([`adopt`]): the next step's lower
//! layer is never unpacked again from the committed tar.
//!
//! Crash safety without an fsync per file: every snapshot is written in a temporary
//! directory, the filesystem is synced once (`syncfs`), then the directory is renamed into
//! `snapshots/`. A crash before the rename leaves only a temporary directory (swept as
//! any other); after it, the snapshot's files are on disk. The rename itself is not
//! synced: after a crash it has happened or not, and a missing snapshot is unpacked again.

use std::path::{Path, PathBuf};

use store::{Digest, Writer};

/// Why a snapshot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Layer(#[from] crate::Error),
    /// The blob's content does not hash to its diffID.
    #[error("layer {diff_id} unpacked to content hashing to {got}")]
    Mismatch { diff_id: Digest, got: Digest },
    #[error("sync the filesystem of {}: {source}", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rename into {}: {source}", path.display())]
    Rename {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Lowerdirs for a layer chain, top first. A layer that occurs more than once in the chain
/// (the same COPY twice) gets a second snapshot for each repeat: overlayfs refuses the same
/// directory twice. `fetch` runs before a layer is unpacked (not when its snapshot exists).
/// Missing layers are independent of each other (each is unpacked into its own directory),
/// so they are fetched and unpacked on up to as many threads as there are cores.
pub fn chain<E: From<SnapshotError> + Send>(
    store: &Writer<'_>,
    diff_ids: &[Digest],
    fetch: &(dyn Fn(&Digest) -> Result<(), E> + Sync),
) -> Result<Vec<PathBuf>, E> {
    let missing: Vec<&Digest> = {
        let mut seen = std::collections::HashSet::new();
        diff_ids
            .iter()
            .filter(|d| seen.insert(*d) && !store.snapshot_path(d).exists())
            .collect()
    };
    if missing.len() > 1 {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(missing.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let first_error = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(d) = missing.get(i) else {
                            return Ok(());
                        };
                        if let Err(e) = ensure(store, d, fetch) {
                            // Stop the others at their next layer.
                            next.store(missing.len(), std::sync::atomic::Ordering::Relaxed);
                            return Err(e);
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .find_map(Result::err)
        });
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    let mut seen: std::collections::HashMap<&Digest, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for d in diff_ids {
        let n = seen.entry(d).or_insert(0);
        out.push(ensure_copy(store, d, *n, fetch)?);
        *n += 1;
    }
    out.reverse();
    Ok(out)
}

/// Make `dir` the snapshot of layer `diff_id` (a directory just committed as that layer
/// with [`crate::CommitOptions::settle`], so it is what unpacking the layer would make),
/// unless the layer has one already. The directory's filesystem is synced first, so a
/// snapshot that exists after a crash has all its contents. Returns whether `dir` was
/// moved.
pub fn adopt(store: &Writer<'_>, diff_id: &Digest, dir: &Path) -> Result<bool, SnapshotError> {
    let dest = store.snapshot_path(diff_id);
    if dest.exists() {
        return Ok(false);
    }
    sync_fs(dir)?;
    match std::fs::rename(dir, &dest) {
        Ok(()) => Ok(true),
        Err(_) if dest.exists() => Ok(false),
        Err(e) => Err(SnapshotError::Rename {
            path: dest,
            source: e,
        }),
    }
}

/// `syncfs` of the filesystem holding `dir`: one call writes back every file of a
/// snapshot (instead of an fsync per file).
fn sync_fs(dir: &Path) -> Result<(), SnapshotError> {
    let sync = || -> std::io::Result<()> {
        let f = std::fs::File::open(dir)?;
        rustix::fs::syncfs(&f).map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
    };
    sync().map_err(|e| SnapshotError::Sync {
        path: dir.to_path_buf(),
        source: e,
    })
}

fn ensure_copy<E: From<SnapshotError>>(
    store: &Writer<'_>,
    diff_id: &Digest,
    n: usize,
    fetch: &(dyn Fn(&Digest) -> Result<(), E> + Sync),
) -> Result<PathBuf, E> {
    if n == 0 {
        return ensure(store, diff_id, fetch);
    }
    let base = store.snapshot_path(diff_id);
    let dest = base.with_file_name(format!("{}-{n}", diff_id.hex()));
    if dest.exists() {
        return Ok(dest);
    }
    unpack(store, diff_id, &dest, fetch)
}

/// The snapshot directory of a layer, unpacking it first if needed. Unpacking happens in a
/// temp directory that is renamed into place, so a crash never leaves a half snapshot.
pub fn ensure<E: From<SnapshotError>>(
    store: &Writer<'_>,
    diff_id: &Digest,
    fetch: &(dyn Fn(&Digest) -> Result<(), E> + Sync),
) -> Result<PathBuf, E> {
    let dest = store.snapshot_path(diff_id);
    if dest.exists() {
        return Ok(dest);
    }
    // One unpack per layer at a time in this process: stages that start together on the
    // same base wait for the first instead of unpacking it twice on two cores.
    let lock = {
        let mut map = UNPACKING.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(diff_id.clone()).or_default().clone()
    };
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    if dest.exists() {
        return Ok(dest);
    }
    unpack(store, diff_id, &dest, fetch)
}

type LockMap = std::collections::HashMap<Digest, std::sync::Arc<std::sync::Mutex<()>>>;
static UNPACKING: std::sync::LazyLock<std::sync::Mutex<LockMap>> =
    std::sync::LazyLock::new(Default::default);

fn unpack<E: From<SnapshotError>>(
    store: &Writer<'_>,
    diff_id: &Digest,
    dest: &Path,
    fetch: &(dyn Fn(&Digest) -> Result<(), E> + Sync),
) -> Result<PathBuf, E> {
    let dest = dest.to_path_buf();
    // Unique per call (two stages of one build may unpack the same layer at once), named
    // after this process and removed on every way out but the rename: a refused layer
    // leaves nothing under tmp/.
    let tmp = store
        .temp_dir(&format!("snap-{}", diff_id.short()))
        .map_err(SnapshotError::from)?;
    fetch(diff_id)?;
    let blob = store.open_blob(diff_id).map_err(SnapshotError::from)?;
    let opts = crate::ApplyOptions {
        whiteouts: crate::Whiteouts::Overlay,
        same_owner: true,
        ..Default::default()
    };
    let info = crate::apply(blob, tmp.path(), &opts).map_err(SnapshotError::from)?;
    if info.diff_id != *diff_id {
        return Err(SnapshotError::Mismatch {
            diff_id: diff_id.clone(),
            got: info.diff_id,
        }
        .into());
    }
    sync_fs(tmp.path())?;
    match std::fs::rename(tmp.path(), &dest) {
        Ok(()) => {
            tmp.keep();
            Ok(dest)
        }
        // Another build unpacked it first (ours is removed on drop).
        Err(_) if dest.exists() => Ok(dest),
        Err(e) => Err(SnapshotError::Rename {
            path: dest,
            source: e,
        }
        .into()),
    }
}
