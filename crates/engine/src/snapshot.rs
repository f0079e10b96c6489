//! Layer snapshots: each layer unpacked once, in overlay format (whiteouts as 0:0 character
//! devices, opaque directories marked), under `store/snapshots/<diffID>`, so a RUN can mount
//! a chain of them as overlay lowerdirs.

use std::path::PathBuf;

use store::{Digest, Writer};

use crate::solver::BuildError;

/// Lowerdirs for a layer chain, top first. A layer that occurs more than once in the chain
/// (the same COPY twice) gets a second snapshot for each repeat: overlayfs refuses the same
/// directory twice.
pub fn chain(store: &Writer<'_>, diff_ids: &[Digest]) -> Result<Vec<PathBuf>, BuildError> {
    let mut seen: std::collections::HashMap<&Digest, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for d in diff_ids {
        let n = seen.entry(d).or_insert(0);
        out.push(ensure_copy(store, d, *n)?);
        *n += 1;
    }
    out.reverse();
    Ok(out)
}

fn ensure_copy(store: &Writer<'_>, diff_id: &Digest, n: usize) -> Result<PathBuf, BuildError> {
    if n == 0 {
        return ensure(store, diff_id);
    }
    let base = store.snapshot_path(diff_id);
    let dest = base.with_file_name(format!("{}-{n}", diff_id.hex()));
    if dest.exists() {
        return Ok(dest);
    }
    unpack(store, diff_id, &dest)
}

/// The snapshot directory of a layer, unpacking it first if needed. Unpacking happens in a
/// temp directory that is renamed into place, so a crash never leaves a half snapshot.
pub fn ensure(store: &Writer<'_>, diff_id: &Digest) -> Result<PathBuf, BuildError> {
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
    unpack(store, diff_id, &dest)
}

type LockMap = std::collections::HashMap<Digest, std::sync::Arc<std::sync::Mutex<()>>>;
static UNPACKING: std::sync::LazyLock<std::sync::Mutex<LockMap>> =
    std::sync::LazyLock::new(Default::default);

fn unpack(
    store: &Writer<'_>,
    diff_id: &Digest,
    dest: &std::path::Path,
) -> Result<PathBuf, BuildError> {
    let dest = dest.to_path_buf();
    // Unique per call (two stages of one build may unpack the same layer at once), named
    // after this process and removed on every way out but the rename: a refused layer
    // leaves nothing under tmp/.
    let tmp = store.temp_dir(&format!("snap-{}", diff_id.short()))?;
    crate::cache::ensure_blob(store, diff_id)?;
    let blob = store.open_blob(diff_id)?;
    let opts = layer::ApplyOptions {
        whiteouts: layer::Whiteouts::Overlay,
        same_owner: true,
    };
    let info = layer::apply(blob, tmp.path(), &opts)?;
    if info.diff_id != diff_id.as_str() {
        return Err(BuildError::Other(format!(
            "layer {diff_id} unpacked to content hashing to {}",
            info.diff_id
        )));
    }
    match std::fs::rename(tmp.path(), &dest) {
        Ok(()) => {
            tmp.keep();
            Ok(dest)
        }
        // Another build unpacked it first (ours is removed on drop).
        Err(_) if dest.exists() => Ok(dest),
        Err(e) => Err(BuildError::io(format!("rename into {}", dest.display()), e)),
    }
}
