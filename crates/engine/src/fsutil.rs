//! Path resolution inside a rootfs view (as if it were `/`) and user lookup in its
//! /etc/passwd and /etc/group. Only `lstat`/`readlink`/reads: nothing here follows a link
//! outside the root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::solver::BuildError;

/// Components of an absolute or relative path, `.` dropped, `..` applied (never above root).
pub use escape::clean::clamped as clean_components;

/// Resolve `path` inside `root`, following symlinks as if `root` were `/`. Returns the
/// components of the longest existing prefix (symlinks resolved) and the components that
/// do not exist yet.
pub fn resolve(root: &Path, path: &str) -> Result<(Vec<String>, Vec<String>), BuildError> {
    let mut pending: Vec<String> = clean_components(path);
    pending.reverse();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut p = root.to_path_buf();
        for d in &done {
            p.push(d);
        }
        p.push(&c);
        match std::fs::symlink_metadata(&p) {
            Err(_) => {
                let mut missing = vec![c];
                while let Some(m) = pending.pop() {
                    if m == ".." {
                        missing.pop();
                    } else {
                        missing.push(m);
                    }
                }
                return Ok((done, missing));
            }
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(BuildError::SymlinkLoop {
                        path: path.to_string(),
                    });
                }
                let target = std::fs::read_link(&p)
                    .map_err(|e| BuildError::io(format!("readlink {path}"), e))?;
                let t = target.to_string_lossy().to_string();
                if t.starts_with('/') {
                    done.clear();
                }
                let mut parts: Vec<String> = t
                    .split('/')
                    .filter(|x| !x.is_empty() && *x != ".")
                    .map(str::to_string)
                    .collect();
                parts.reverse();
                pending.extend(parts);
            }
            Ok(_) => done.push(c),
        }
    }
    Ok((done, Vec::new()))
}

pub fn join(root: &Path, comps: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in comps {
        p.push(c);
    }
    p
}

/// Copy the tree at `src` into the existing directory `dst` (files, directories and
/// symlinks with their modes and owners; other kinds are skipped). Used to seed a cache
/// mount from `from=`'s `source=`.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |what: &str, p: &Path, e| BuildError::io(format!("{what} {}", p.display()), e);
    let rd = std::fs::read_dir(src).map_err(|e| io("read", src, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| io("read", src, e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&from).map_err(|e| io("stat", &from, e))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(&from).map_err(|e| io("readlink", &from, e))?;
            std::os::unix::fs::symlink(&t, &to).map_err(|e| io("create", &to, e))?;
        } else if ft.is_dir() {
            std::fs::create_dir(&to).map_err(|e| io("create", &to, e))?;
            copy_tree(&from, &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(|e| io("chmod", &to, e))?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(|e| io("copy", &from, e))?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| io("chown", &to, e))?;
    }
    Ok(())
}

/// A digest of the tree at `p` (not following links): each entry's relative path, type,
/// mode, owner, and a file's bytes or a link's target; mtimes left out. Keys a RUN that
/// bind-mounts a path of the build context, so the step reruns when those files change.
pub fn content_digest(p: &Path) -> Result<String, BuildError> {
    content_digest_filtered(p, &|_| true)
}

/// [`content_digest`] of only the paths `keep` accepts (the build context less what
/// `.dockerignore` excludes).
pub fn content_digest_filtered(
    p: &Path,
    keep: &dyn Fn(&Path) -> bool,
) -> Result<String, BuildError> {
    use sha2::Digest as _;
    use std::io::Read;
    fn walk(
        p: &Path,
        rel: &str,
        h: &mut sha2::Sha256,
        keep: &dyn Fn(&Path) -> bool,
    ) -> Result<(), BuildError> {
        if !keep(p) {
            return Ok(());
        }
        let io = |e| BuildError::io(format!("read {}", p.display()), e);
        let m = std::fs::symlink_metadata(p).map_err(io)?;
        h.update(format!("{rel}\0{:o} {} {}\0", m.mode(), m.uid(), m.gid()).as_bytes());
        let ft = m.file_type();
        if ft.is_symlink() {
            h.update(
                std::fs::read_link(p)
                    .map_err(io)?
                    .as_os_str()
                    .as_encoded_bytes(),
            );
        } else if ft.is_dir() {
            let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(p)
                .map_err(io)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            names.sort();
            for n in names {
                let r = format!("{rel}/{}", n.to_string_lossy());
                walk(&p.join(&n), &r, h, keep)?;
            }
        } else if ft.is_file() {
            let mut f = std::fs::File::open(p).map_err(io)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update(b"\0");
        Ok(())
    }
    let mut h = sha2::Sha256::new();
    walk(p, "", &mut h, keep)?;
    Ok(hex::encode(h.finalize()))
}

/// uid and gid for a USER / --chown spec (`name`, `uid`, `name:group`, `uid:gid`), looked
/// up in the rootfs: a name must exist; a bare uid takes its passwd gid or 0.
pub fn resolve_user(root: &Path, spec: &str) -> Result<(u32, u32), BuildError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd =
        std::fs::read_to_string(join(root, &["etc".into(), "passwd".into()])).unwrap_or_default();
    let groups =
        std::fs::read_to_string(join(root, &["etc".into(), "group".into()])).unwrap_or_default();
    use exec::user::{group_entries, passwd_entries};
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => (
            uid,
            passwd_entries(&passwd)
                .find(|e| e.uid == uid)
                .map_or(0, |e| e.gid),
        ),
        Err(_) => {
            let e = passwd_entries(&passwd)
                .find(|e| e.name == user)
                .ok_or_else(|| BuildError::UnknownUser {
                    user: user.to_string(),
                })?;
            (e.uid, e.gid)
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(&groups)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| BuildError::UnknownGroup {
                    group: g.to_string(),
                })?,
        },
    };
    Ok((uid, gid))
}

/// Create `comps` under `upper`, replicating the metadata of the directories that exist in
/// `view` (so the layer does not change them) and returning the path of the last one.
pub fn replicate_dirs(view: &Path, upper: &Path, comps: &[String]) -> Result<PathBuf, BuildError> {
    let mut v = view.to_path_buf();
    let mut u = upper.to_path_buf();
    for c in comps {
        v.push(c);
        u.push(c);
        let m = std::fs::metadata(&v)
            .map_err(|e| BuildError::io(format!("stat {}", v.display()), e))?;
        std::fs::create_dir_all(&u)
            .map_err(|e| BuildError::io(format!("create {}", u.display()), e))?;
        set_meta(&u, m.mode() & 0o7777, m.uid(), m.gid(), m.mtime())?;
    }
    Ok(u)
}

pub fn set_meta(p: &Path, mode: u32, uid: u32, gid: u32, mtime: i64) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .map_err(|e| BuildError::io(format!("chown {}", p.display()), e))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| BuildError::io(format!("chmod {}", p.display()), e))?;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64);
    let f =
        std::fs::File::open(p).map_err(|e| BuildError::io(format!("open {}", p.display()), e))?;
    f.set_modified(t)
        .map_err(|e| BuildError::io(format!("set mtime of {}", p.display()), e))?;
    Ok(())
}

/// A directory opened for [`open_beneath`] (a layer snapshot's root: opened once per copy,
/// not once per file).
pub fn open_dir(root: &Path) -> Result<std::fs::File, rustix::io::Errno> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Open `rel` for reading beneath the directory `root` (from [`open_dir`]) without
/// following any symlink on the way (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`): a
/// file of a layer snapshot, which must never lead outside it. `ENOENT` when it is not
/// there; `ELOOP`/`EXDEV` when a symlink or `..` is on the way; `ENOSYS` on kernels
/// without openat2.
pub fn open_beneath(root: &std::fs::File, rel: &Path) -> Result<std::fs::File, rustix::io::Errno> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let fd = rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(std::fs::File::from(fd))
}

/// Hard-link the open file `f` (a file of a layer snapshot, opened by [`open_beneath`])
/// as `dst`: by its descriptor, so what was checked is what is linked. Whatever is in the
/// way at `dst` (a file, a symlink, a directory) is removed first, never followed.
pub fn link_open_file(f: &std::fs::File, dst: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", f.as_raw_fd());
    let link = || {
        rustix::fs::linkat(
            rustix::fs::CWD,
            proc.as_str(),
            rustix::fs::CWD,
            dst,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
    };
    match link() {
        Err(rustix::io::Errno::EXIST) => {
            if std::fs::symlink_metadata(dst)?.is_dir() {
                std::fs::remove_dir_all(dst)?;
            } else {
                std::fs::remove_file(dst)?;
            }
            link().map_err(std::io::Error::from)
        }
        r => r.map_err(std::io::Error::from),
    }
}

/// Copy regular file `src` to `dst`, a new file (whatever is in the way — a file, a
/// symlink, a directory — is removed first, never followed), with its owner, mode and
/// mtime (whole seconds; the access time the same, as unpacking a layer sets them); `size`
/// is the size the file was selected with (the bytes its digest covers). All
/// metadata is set through the new file's descriptor: one path lookup per file.
pub fn copy_new_file(
    src: &Path,
    dst: &Path,
    (mode, uid, gid): (u32, u32, u32),
    mtime: i64,
    size: u64,
) -> Result<(), BuildError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |what: &str, p: &Path, e| BuildError::io(format!("{what} {}", p.display()), e);
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
    };
    let mut to = match create() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let in_the_way = std::fs::symlink_metadata(dst).map_err(|e| err("stat", dst, e))?;
            if in_the_way.is_dir() {
                std::fs::remove_dir_all(dst)
            } else {
                std::fs::remove_file(dst)
            }
            .map_err(|e| err("remove", dst, e))?;
            create().map_err(|e| err("create", dst, e))?
        }
        Err(e) => return Err(err("create", dst, e)),
    };
    let mut from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(src)
        .map_err(|e| err("open", src, e))?;
    // One copy_file_range for the whole file (sizes are known: a loop would ask once more
    // only to be told the end), then the generic copy for anything left.
    let done = match rustix::fs::copy_file_range(&from, None, &to, None, size as usize) {
        Ok(n) => n as u64,
        Err(_) => 0,
    };
    if done < size {
        std::io::copy(&mut from, &mut to).map_err(|e| err("copy", src, e))?;
    }
    std::os::unix::fs::fchown(&to, Some(uid), Some(gid)).map_err(|e| err("chown", dst, e))?;
    to.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| err("chmod", dst, e))?;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64);
    to.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
        .map_err(|e| err("set times of", dst, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_in_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/a", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../a/b", r.join("a/up")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("hostetc")).unwrap();
        assert_eq!(
            resolve(r, "/a/b/c/d").unwrap(),
            (vec!["a".into(), "b".into()], vec!["c".into(), "d".into()])
        );
        assert_eq!(
            resolve(r, "/abs/b").unwrap(),
            (vec!["a".into(), "b".into()], vec![])
        );
        assert_eq!(
            resolve(r, "/a/up").unwrap(),
            (vec!["a".into(), "b".into()], vec![])
        );
        // A link to /etc resolves inside the root, where there is no etc.
        assert_eq!(
            resolve(r, "/hostetc/passwd").unwrap(),
            (vec![], vec!["etc".to_string(), "passwd".into()])
        );
    }

    #[test]
    fn content_digest_covers_bytes_names_and_modes_not_mtimes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("t");
        std::fs::create_dir_all(r.join("s")).unwrap();
        std::fs::write(r.join("s/f"), "one").unwrap();
        std::os::unix::fs::symlink("s/f", r.join("l")).unwrap();
        let a = content_digest(&r).unwrap();
        let touched = std::fs::File::options()
            .write(true)
            .open(r.join("s/f"))
            .unwrap();
        touched
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(content_digest(&r).unwrap(), a, "an mtime is no change");
        std::fs::write(r.join("s/f"), "two").unwrap();
        let b = content_digest(&r).unwrap();
        assert_ne!(a, b, "bytes");
        std::fs::set_permissions(r.join("s/f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = content_digest(&r).unwrap();
        assert_ne!(b, c, "mode");
        std::fs::rename(r.join("s/f"), r.join("s/g")).unwrap();
        assert_ne!(content_digest(&r).unwrap(), c, "names");
        // A single file works too.
        assert_ne!(content_digest(&r.join("s/g")).unwrap(), c);
    }

    #[test]
    fn copy_tree_keeps_files_links_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::write(src.join("a/b/f"), "x").unwrap();
        std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::os::unix::fs::symlink("/nowhere", src.join("l")).unwrap();
        copy_tree(&src, &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("a/b/f")).unwrap(), "x");
        assert_eq!(
            std::fs::read_link(dst.join("l")).unwrap(),
            Path::new("/nowhere")
        );
        let mode = std::fs::metadata(dst.join("a")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o711);
    }

    #[test]
    fn users() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1001:1002::/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1002:\nstaff:x:50:\n",
        )
        .unwrap();
        assert_eq!(resolve_user(d.path(), "app").unwrap(), (1001, 1002));
        assert_eq!(resolve_user(d.path(), "app:staff").unwrap(), (1001, 50));
        assert_eq!(resolve_user(d.path(), "1001").unwrap(), (1001, 1002));
        assert_eq!(resolve_user(d.path(), "4242").unwrap(), (4242, 0));
        assert_eq!(resolve_user(d.path(), "4242:7").unwrap(), (4242, 7));
        assert!(resolve_user(d.path(), "nosuchuser")
            .unwrap_err()
            .to_string()
            .contains("unable to find user nosuchuser"));
    }

    /// A layer snapshot's files are opened without following any symlink on the way: a
    /// symlinked directory (to the host's /etc, or up and out with `..`) is refused, never
    /// followed; a plain path opens; and linking by descriptor replaces what is in the way.
    #[test]
    fn snapshot_files_open_beneath_their_root_only() {
        let d = tempfile::tempdir().unwrap();
        let snap = d.path().join("snap");
        std::fs::create_dir_all(snap.join("app")).unwrap();
        std::fs::write(snap.join("app/f"), b"layer").unwrap();
        std::os::unix::fs::symlink("/etc", snap.join("hostetc")).unwrap();
        std::os::unix::fs::symlink("../..", snap.join("app/up")).unwrap();
        std::os::unix::fs::symlink("f", snap.join("app/link")).unwrap();
        let root = open_dir(&snap).unwrap();
        for escape in [
            "hostetc/hostname",
            "app/up/etc/hostname",
            "../snap/app/f",
            "app/link",
        ] {
            assert!(
                open_beneath(&root, Path::new(escape)).is_err(),
                "{escape} was opened"
            );
        }
        assert_eq!(
            open_beneath(&root, Path::new("sub/none")).unwrap_err(),
            rustix::io::Errno::NOENT
        );
        let f = open_beneath(&root, Path::new("app/f")).unwrap();
        let out = d.path().join("out");
        std::fs::create_dir_all(out.join("in-the-way/deep")).unwrap();
        link_open_file(&f, &out.join("in-the-way")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", out.join("sym")).unwrap();
        link_open_file(&f, &out.join("sym")).unwrap();
        for p in ["in-the-way", "sym"] {
            let m = std::fs::symlink_metadata(out.join(p)).unwrap();
            assert!(m.is_file() && m.nlink() == 3, "{p}: {m:?}");
            assert_eq!(std::fs::read(out.join(p)).unwrap(), b"layer");
        }
    }
}
