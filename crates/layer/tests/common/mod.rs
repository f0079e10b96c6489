//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Commits `dir` into memory and returns (diff_id, tar bytes).
pub fn commit_bytes(dir: &Path, opts: &layer::CommitOptions) -> (String, Vec<u8>) {
    let mut out = Vec::new();
    let info = layer::commit(dir, opts, &mut out).expect("commit");
    assert_eq!(info.size, out.len() as u64);
    (info.diff_id.to_string(), out)
}

/// Sets the mtime of `p` (not following symlinks).
pub fn set_mtime(p: &Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("utimensat");
}

/// One entry of a tar stream as seen by an independent reader (the `tar` crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub kind: u8,
    pub link: Option<String>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Lists a tar stream with the `tar` crate (a reader we did not write).
pub fn list_tar(bytes: &[u8]) -> Vec<Seen> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().expect("pax") {
            // The tar crate splits PAX records on newlines, so it cannot parse a record
            // whose value holds one (binary xattrs): such entries are marked.
            for ext in exts {
                let Ok(ext) = ext else {
                    xattrs = vec![("<unparsed by the tar crate>".to_string(), Vec::new())];
                    break;
                };
                if let Some(k) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((k.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let h = e.header();
        out.push(Seen {
            name: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            kind: h.entry_type().as_byte(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            size: e.size(),
            xattrs,
        });
    }
    out
}

/// A summary of a tree for comparisons: path → description (type, mode, owner, content or
/// link target, rdev).
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        let rel = e.path().strip_prefix(root).unwrap();
        let ft = md.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!(
                "link {}",
                std::fs::read_link(e.path()).unwrap().to_string_lossy()
            )
        } else if ft.is_file() {
            format!("file {:?}", std::fs::read(e.path()).unwrap().len())
                + &format!(" {:x}", crc(&std::fs::read(e.path()).unwrap()))
        } else if ft.is_char_device() {
            format!("chr {:x}", md.rdev())
        } else if ft.is_block_device() {
            format!("blk {:x}", md.rdev())
        } else if ft.is_fifo() {
            "fifo".into()
        } else {
            "other".into()
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            md.mode() & 0o7777
        };
        out.insert(
            String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned(),
            format!("{what} mode={mode:o} owner={}:{}", md.uid(), md.gid()),
        );
    }
    out
}

fn crc(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
