//! Scratch directories under the store's tmp/ and the commit of a directory (a RUN's
//! overlay upperdir, the files of a COPY or a WORKDIR) as a layer.

use std::path::{Path, PathBuf};

use store::{Digest, Store, Writer};

use crate::error::BuildError;
use crate::snapshot;

/// A private directory under the store's tmp/, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(store: &Store, kind: &str) -> Result<TempDir, BuildError> {
        // Named after this process, so a sweep removes it only once strata is gone.
        let p = store.temp_path(kind);
        std::fs::create_dir_all(&p)
            .map_err(|e| BuildError::io(format!("create {}", p.display()), e))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = store::remove_tree(&self.0);
    }
}

/// Overlay lowerdirs for a layer chain, top first; an empty directory for no layers.
pub(crate) fn lowers(
    store: &Writer<'_>,
    diff_ids: &[Digest],
    tmp: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut out = snapshot::chain(store, diff_ids)?;
    if out.is_empty() {
        let empty = tmp.join("empty-lower");
        std::fs::create_dir_all(&empty)
            .map_err(|e| BuildError::io("create an empty lowerdir", e))?;
        out.push(empty);
    }
    Ok(out)
}

/// Commit `dir` (an overlay upperdir or a plain directory) as a layer into the store; the
/// directory then becomes the layer's snapshot when none exists yet. Returns the diffID
/// (the empty-layer digest when nothing changed).
pub(crate) fn commit_dir(
    store: &Writer<'_>,
    dir: &Path,
    source: layer::Source,
) -> Result<Digest, BuildError> {
    let mut ingest = store.ingest()?;
    let opts = layer::CommitOptions {
        source,
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    let info = layer::commit(dir, &opts, &mut ingest)?;
    let (d, _) = ingest.commit(None)?;
    if d.as_str() != info.diff_id {
        return Err(BuildError::Integrity(format!(
            "layer digest mismatch: {} vs {}",
            d, info.diff_id
        )));
    }
    if info.entries > 0 && source == layer::Source::OverlayUpper {
        let snap = store.snapshot_path(&d);
        if !snap.exists() {
            let _ = std::fs::rename(dir, &snap);
        }
    }
    Ok(d)
}
