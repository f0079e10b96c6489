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

/// Whether `block` starts like a tar archive: a non-empty first header whose checksum is
/// right (what `ADD` and a context on stdin use to tell an archive from other data).
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || block[0] == 0 {
        return false;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == Some(sum)
}
