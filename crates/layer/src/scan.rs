//! Reading a layer without extracting it: what docker would call its size.

use std::io::Read;

use crate::error::Result;
use crate::tarfmt::{self, Reader};

/// What [`scan`] found in a layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanInfo {
    /// Entries in the archive (extended headers not counted).
    pub entries: u64,
    /// Docker's size of the layer: the on-disk size of its non-directory entries (regular
    /// files' lengths, symlinks' target lengths); a hard link adds nothing, as the file it
    /// names is counted once.
    pub content_size: u64,
}

/// Read an uncompressed layer stream to its end with the same strict reader [`crate::apply`]
/// uses (so anything `apply` would refuse as malformed is refused here too), counting
/// entries and content size. The whole input is consumed.
pub fn scan<R: Read>(reader: R) -> Result<ScanInfo> {
    let mut rd = Reader::new(std::io::BufReader::with_capacity(128 * 1024, reader));
    let mut entries = 0u64;
    let mut content_size = 0u64;
    while let Some(e) = rd.next_entry()? {
        entries += 1;
        match e.meta.typeflag {
            tarfmt::TYPE_REG | tarfmt::TYPE_CONT => content_size += e.meta.size,
            tarfmt::TYPE_SYMLINK => content_size += e.meta.linkname.len() as u64,
            _ => {}
        }
    }
    rd.finish()?;
    Ok(ScanInfo {
        entries,
        content_size,
    })
}
