//! Layers: a directory becomes a deterministic tar stream and a tar stream becomes a
//! directory again, safely. This crate knows nothing of Dockerfiles, stages or images.
//!
//! # Commit ([`commit`])
//!
//! One streaming pass: walk → tar headers → sha256 (the diffID) → any [`std::io::Write`].
//! Nothing of the layer is held in memory. The output is a function of the tree alone:
//!
//! * Entries are written depth first, names within a directory sorted by bytes, every
//!   directory before its children; the root itself is not an entry. Names are relative,
//!   directories end in `/`.
//! * Headers are what Go's `archive/tar` writes for containerd/BuildKit (`FormatPAX`):
//!   plain USTAR when the entry fits (long names split into prefix and name), otherwise a
//!   PAX header `…/PaxHeaders.0/…` with sorted records (`path`, `linkpath`, `uid`, `gid`,
//!   `size`, `mtime` when they don't fit, every xattr as `SCHILY.xattr.<name>`). Octal
//!   numbers zero-padded and NUL-terminated, uname/gname empty, devmajor/devminor written
//!   as zeros for non-devices, mode = `st_mode & 0o7777`, mtime in whole seconds, clamped
//!   to `SOURCE_DATE_EPOCH` when [`CommitOptions::source_date_epoch`] is set. No GNU
//!   headers, no sparse entries, no atime/ctime.
//! * uid/gid, modes (setuid/setgid/sticky included) and xattrs are kept, except
//!   `trusted.overlay.*`, `user.overlay.*` and `security.selinux` (overlay state and host
//!   labels). Symlinks are stored, never followed. Character/block devices and FIFOs are
//!   kept; sockets are skipped. A regular file seen again through another name with the
//!   same (dev, ino) becomes a hard-link entry to the first name.
//! * [`Source::OverlayUpper`]: a 0:0 character device becomes `.wh.<name>` and an opaque
//!   directory (`trusted.overlay.opaque=y` or `user.overlay.opaque=y`) is followed by
//!   `<dir>/.wh..wh..opq`. Both markers are empty regular files with mode 0, owner 0:0 and
//!   mtime 0, as containerd ≥ 2.0 writes them.
//! * The archive ends with two zero blocks and nothing else.
//!
//! # Apply ([`apply`])
//!
//! The target directory is treated as `/` for everything in the stream; nothing outside
//! it is created, written, linked, chowned or removed, whatever the archive says:
//!
//! * Names are split on `/`; empty and `.` components are dropped (so `/etc/x` lands at
//!   `<target>/etc/x`, as with docker); any `..` component is refused. With
//!   [`Resolve::Beneath`] an absolute name is refused too.
//! * Parent directories are resolved beneath the target with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`, or a component walk of our own with `O_NOFOLLOW` where
//!   openat2 is missing: a symlink in the tree is followed as if the target were the root
//!   (an absolute target restarts at the target, `..` stops there). This is containerd's
//!   and docker's behaviour, but enforced by the kernel rather than by string checks.
//!   With [`Resolve::Beneath`] (a build context) no symlink is followed at all:
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or the same walk refusing links, and
//!   a symlink or a file on a parent path is an [`Error::Unsafe`].
//! * The entry itself is created with `*at` calls relative to the parent descriptor and
//!   never followed: an existing entry in the way is removed first (a directory met by a
//!   directory is merged), files are opened `O_CREAT|O_EXCL|O_NOFOLLOW`.
//! * Hard-link targets are resolved the same way and linked without following.
//! * Whiteouts (`.wh.<name>`, `.wh..wh..opq`) are applied per [`Whiteouts`]; whiteouts of
//!   `.`, `..` or an empty name are refused; they never remove what the same layer created.
//!   [`Whiteouts::Keep`] (a build context) makes them ordinary entries.
//! * Directories are created 0700; their modes and times are applied at the end, deepest
//!   first, so a read-only directory does not stop its children.
//! * The reader is strict: header checksums checked, PAX/GNU long-name payloads capped at
//!   [`MAX_META_SIZE`] before allocation, GNU sparse entries and unknown entry types
//!   refused, an early end of input is [`Error::Truncated`]. Header-only entry types carry
//!   no data whatever their size says, as in Go, so the stream is split into entries
//!   exactly as docker and containerd split it.
//!   A stream that stops exactly at a header boundary without the end-of-archive blocks
//!   is accepted, as Go's reader accepts it.
//! * Extended attributes in the stream named `trusted.overlay.*`, `user.overlay.*` or
//!   `security.selinux` are never applied. Setting an xattr on a filesystem without
//!   support is skipped; other failures are errors.
//! * Ownership needs root ([`ApplyOptions::same_owner`]); so do device nodes, whose
//!   creation fails with an error otherwise (no silent skipping, unless
//!   [`ApplyOptions::special_files`] is off: then devices, FIFOs and unknown entry types
//!   are skipped). [`ApplyOptions::build_context`] is the mode for a build context given
//!   as a tar stream: nothing of the above that needs privileges or reads as a layer
//!   (owners, times, xattrs, devices, whiteouts).
//! * [`ApplyInfo::diff_id`] is the sha256 of every byte read, so callers verify a layer
//!   against its diffID after applying it (on mismatch, discard the target).
//!
//! # Compression ([`compress`], [`Decompressor`])
//!
//! Separate from commit so the same uncompressed layer can be stored and exported in
//! several ways: gzip in parallel blocks or multithreaded zstd, with the blob digest
//! computed while writing; and a reader that detects gzip/zstd by magic number.
//!
//! # Snapshots ([`snapshot`])
//!
//! A store's layer blob applied once (overlay whiteouts) under the store's
//! `snapshots/<diffID>`, for the engine's RUN steps and the runtime's containers alike.

#![forbid(unsafe_code)]

mod apply;
mod commit;
mod compress;
mod error;
mod fsat;
mod pack;
mod scan;
pub mod snapshot;
mod tarfmt;
mod xattr;

pub use apply::{apply, ApplyInfo, ApplyOptions, Resolve, Whiteouts};
pub use commit::{commit, CommitOptions, LayerInfo, Source};
pub use compress::{compress, compress_with, BlobInfo, CompressOptions, Compression, Decompressor};
pub use error::{Error, Result};
pub use pack::{pack, PackInfo};
pub use scan::{is_tar_header, scan, ScanInfo};
pub use tarfmt::MAX_META_SIZE;

/// The xattr that marks an overlay layer's directory opaque: `trusted.overlay.opaque` as
/// real root, `user.overlay.opaque` in a user namespace (rootless: trusted xattrs are out of
/// reach there, so overlays are mounted with `userxattr`, as `exec` does when
/// `exec::userns::active()`; the same test of `/proc/self/uid_map`).
pub fn opaque_xattr() -> &'static str {
    static NAME: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let initial = map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
        if initial || map.is_empty() {
            "trusted.overlay.opaque"
        } else {
            "user.overlay.opaque"
        }
    })
}
