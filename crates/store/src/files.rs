//! File helpers of the store (fsync, atomic replacement, tree removal) and Go's RFC 3339
//! timestamps.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::{temp_name, IoContext, Result};

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx(|| format!("fsync {}", dir.display()))
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("path has a parent");
    let tmp = dir.join(temp_name(&format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f")
    )));
    write_via(&tmp, path, bytes)
}

/// Write `bytes` to `path` atomically through the temp file `tmp` (a fresh name on the same
/// filesystem): created exclusively, fsynced, renamed into place, the directory fsynced;
/// removed when anything fails.
pub(crate) fn write_via(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("path has a parent");
    let res = (|| {
        // O_EXCL: never through a symlink planted at the temp's name.
        let _ = fs::remove_file(tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(bytes)
            .ctx(|| format!("write {}", tmp.display()))?;
        f.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
        fs::rename(tmp, path).ctx(|| format!("rename into {}", path.display()))?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res
}

/// An RFC 3339 timestamp with nanoseconds as Go's `time.RFC3339Nano` writes it: trailing
/// zeros of the fraction dropped (and the dot, when nothing is left). Image configs carry
/// these; a tool that re-encodes a config with Go (skopeo converting to OCI) must get the
/// very same bytes back, or the image id changes.
pub fn go_rfc3339_nano(s: &str) -> String {
    let Some(dot) = s.find('.') else {
        return s.to_string();
    };
    let end = s[dot + 1..]
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| dot + 1 + i)
        .unwrap_or(s.len());
    let frac = s[dot + 1..end].trim_end_matches('0');
    if frac.is_empty() {
        format!("{}{}", &s[..dot], &s[end..])
    } else {
        format!("{}.{frac}{}", &s[..dot], &s[end..])
    }
}

/// Now, RFC 3339 with nanoseconds as Go writes it ([`go_rfc3339_nano`]): the time image
/// configs and docker's container records carry.
pub fn now_rfc3339() -> String {
    go_rfc3339_nano(&humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string())
}

/// Remove a tree, making read-only directories writable first.
pub fn remove_tree(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("stat {}", p.display())),
        Ok(m) if !m.is_dir() => {
            return fs::remove_file(p).ctx(|| format!("remove {}", p.display()))
        }
        Ok(_) => {}
    }
    if fs::remove_dir_all(p).is_ok() {
        return Ok(());
    }
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    fs::remove_dir_all(p).ctx(|| format!("remove {}", p.display()))
}
