//! Scratch directories under the store's tmp/ and the commit of a directory (a RUN's
//! overlay upperdir, the files of a COPY or a WORKDIR) as a layer.

use std::path::{Path, PathBuf};

use store::{Digest, Store, Writer};

use crate::error::BuildError;
use crate::snapshot;

/// A private directory under the store's tmp/, removed on drop (the store's `TempDir`, named
/// after this process so a sweep removes it only once strata is gone).
pub(crate) fn temp_dir(store: &Store, kind: &str) -> Result<store::TempDir, BuildError> {
    Ok(store.scratch_dir(kind)?)
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
/// directory then becomes the layer's snapshot when none exists yet (it is settled to what
/// unpacking the layer would make while it is committed), so the next step's lowerdir is
/// never unpacked from the committed tar. Returns the diffID (the empty-layer digest when
/// nothing changed).
pub(crate) fn commit_dir(
    store: &Writer<'_>,
    dir: &Path,
    source: layer::Source,
    lowers: Vec<std::path::PathBuf>,
) -> Result<Digest, BuildError> {
    let mut ingest = store.ingest()?;
    let opts = layer::CommitOptions {
        source,
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok()),
        settle: true,
        lowers,
    };
    let info = layer::commit(dir, &opts, &mut ingest)?;
    let (d, _) = ingest.commit(None)?;
    if d.as_str() != info.diff_id {
        return Err(BuildError::Integrity(format!(
            "layer digest mismatch: {} vs {}",
            d, info.diff_id
        )));
    }
    if info.entries > 0 {
        layer::snapshot::adopt(store, &d, dir)?;
    }
    Ok(d)
}
