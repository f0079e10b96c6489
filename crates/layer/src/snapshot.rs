//! Layer snapshots: each layer unpacked once, in overlay format (whiteouts as 0:0 character
//! devices, opaque directories marked), under `store/snapshots/<diffID>`, so a RUN step or a
//! container can mount a chain of them as overlay lowerdirs. Shared by the engine and the
//! runtime; the engine passes a `fetch` hook that brings a missing layer blob in from an
//! imported cache before it is unpacked (the runtime passes one that does nothing).

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
pub fn chain<E: From<SnapshotError>>(
    store: &Writer<'_>,
    diff_ids: &[Digest],
    fetch: &dyn Fn(&Digest) -> Result<(), E>,
) -> Result<Vec<PathBuf>, E> {
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

fn ensure_copy<E: From<SnapshotError>>(
    store: &Writer<'_>,
    diff_id: &Digest,
    n: usize,
    fetch: &dyn Fn(&Digest) -> Result<(), E>,
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
    fetch: &dyn Fn(&Digest) -> Result<(), E>,
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
    fetch: &dyn Fn(&Digest) -> Result<(), E>,
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
