//! Layer snapshots (`layer::snapshot`: each layer unpacked once under
//! `store/snapshots/<diffID>`), with a layer missing from the store fetched from an imported
//! cache first.

use std::path::PathBuf;

use layer::snapshot::SnapshotError;
use store::{Digest, Writer};

use crate::error::BuildError;

/// Lowerdirs for a layer chain, top first (see `layer::snapshot::chain`).
pub fn chain(store: &Writer<'_>, diff_ids: &[Digest]) -> Result<Vec<PathBuf>, BuildError> {
    layer::snapshot::chain(store, diff_ids, &|d| crate::cache::ensure_blob(store, d))
}

impl From<SnapshotError> for BuildError {
    fn from(e: SnapshotError) -> BuildError {
        match e {
            SnapshotError::Store(e) => BuildError::Store(e),
            SnapshotError::Layer(e) => BuildError::Layer(e),
            e @ SnapshotError::Mismatch { .. } => BuildError::Integrity(e.to_string()),
            SnapshotError::Rename { path, source } => {
                BuildError::io(format!("rename into {}", path.display()), source)
            }
            SnapshotError::Sync { path, source } => {
                BuildError::io(format!("sync the filesystem of {}", path.display()), source)
            }
        }
    }
}
