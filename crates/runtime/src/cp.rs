//! `docker cp`: files between a container's filesystem and the host (or a tar stream), with
//! docker's path rules.
//!
//! A container's filesystem is reached through a directory descriptor: a running
//! container's root is `/proc/<pid>/root` (its pid checked against the recorded start time),
//! which shows its mounts (volumes, binds) too; a stopped or created one's is its overlay
//! (the image's snapshots under its `upper/`) mounted with the new mount API and never
//! attached anywhere, gone when the descriptor closes; a path beneath one of its volumes or
//! directory binds is resolved in that mount's source instead (read-only ones refuse
//! writes, as docker's "mounted volume is marked read-only"). Paths in the container are resolved with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` from that descriptor, so a symlink (`/`, `../../..`) is followed
//! as if the container's root were `/` and never leads to the host. Reading packs with
//! `layer::pack` (every step `openat` + `O_NOFOLLOW` below the resolved directory); writing
//! extracts with `layer::apply` into the resolved directory, which it treats as its root.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use crate::container::{self, Container, Status};

/// `cp` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpOptions {
    /// `-a`: keep the owners recorded in the source (else files copied in belong to root,
    /// files copied out to the caller).
    pub archive: bool,
    /// `-L`: follow a symlink at the source path.
    pub follow: bool,
}

/// One side of a copy: a root directory and how its names are shown in errors.
pub struct Side {
    root: OwnedFd,
    /// `Some(name)` for a container (docker's messages name it).
    container: Option<String>,
    /// A stopped container's bind mounts and volumes (directories): destination, and the
    /// source as a side of its own; paths beneath a destination are resolved in it.
    mounts: Vec<(String, Side)>,
    /// A read-only mount: nothing is copied into it.
    readonly: bool,
}

impl Side {
    /// The host's filesystem (paths must be absolute).
    pub fn host() -> Result<Side> {
        let root = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .context("open /")?;
        Ok(Side {
            root,
            container: None,
            mounts: Vec::new(),
            readonly: false,
        })
    }

    /// A container's filesystem (see the module's documentation).
    pub fn container(c: &Container, what: &str) -> Result<Side> {
        let mut mounts = Vec::new();
        let root = if c.status() == Status::Running {
            let pid = c.state.pid;
            let fd = rustix::fs::open(
                format!("/proc/{pid}/root").as_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("open the root of container {what}"))?;
            // The pid was the container's when the root was opened.
            if !container::alive(pid, c.state.pid_start) {
                bail!("container {what} stopped while its filesystem was opened; try again");
            }
            fd
        } else {
            // Its volumes and directory binds, as docker mounts them for cp.
            for m in &c.config.mounts {
                if m.kind == crate::mounts::MountKind::Tmpfs {
                    continue;
                }
                let Ok(root) = rustix::fs::open(
                    m.source.as_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) else {
                    continue;
                };
                let side = Side {
                    root,
                    container: Some(what.to_string()),
                    mounts: Vec::new(),
                    readonly: !m.rw,
                };
                mounts.push((escape::clean::rooted(&m.destination), side));
            }
            overlay(c).with_context(|| format!("mount the filesystem of container {what}"))?
        };
        Ok(Side {
            root,
            container: Some(what.to_string()),
            mounts,
            readonly: false,
        })
    }

    /// The side that holds `path` (a stopped container's mount, or this one) and the path
    /// within it.
    fn route(&self, path: &str) -> (&Side, String) {
        let p = escape::clean::rooted(path);
        let best = self
            .mounts
            .iter()
            .filter(|(d, _)| p == *d || p.starts_with(&format!("{d}/")))
            .max_by_key(|(d, _)| d.len());
        match best {
            Some((d, side)) => {
                let rest = &p[d.len()..];
                (
                    side,
                    if rest.is_empty() {
                        "/".into()
                    } else {
                        rest.into()
                    },
                )
            }
            None => (self, p),
        }
    }

    /// The directory holding `path` (resolved beneath its side's root) and its last name
    /// there (`.` for a mount's or the root's directory itself).
    fn locate(&self, path: &str) -> rustix::io::Result<(OwnedFd, String)> {
        let (side, rel) = self.route(path);
        let (parent, name) = split(&rel);
        Ok((side.open_here(&parent)?, name))
    }

    /// A refusal to write into a read-only mount (docker's words).
    fn writable(&self, path: &str) -> Result<()> {
        if self.route(path).0.readonly {
            bail!("mounted volume is marked read-only");
        }
        Ok(())
    }

    fn rel(path: &str) -> String {
        let c = escape::clean::rooted(path);
        let r = c.trim_start_matches('/');
        if r.is_empty() {
            ".".to_string()
        } else {
            r.to_string()
        }
    }

    /// `path` resolved beneath the root of the side that holds it (symlinks followed inside
    /// it), `O_PATH`.
    fn open(&self, path: &str) -> rustix::io::Result<OwnedFd> {
        let (side, rel) = self.route(path);
        side.open_here(&rel)
    }

    fn open_here(&self, path: &str) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.root,
            Self::rel(path).as_str(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    fn not_found(&self, path: &str) -> anyhow::Error {
        match &self.container {
            Some(c) => anyhow::anyhow!("Could not find the file {path} in container {c}"),
            None => anyhow::anyhow!("lstat {path}: no such file or directory"),
        }
    }
}

/// The overlay of a container that is not running, detached.
fn overlay(c: &Container) -> Result<OwnedFd> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
        MountAttrFlags,
    };
    let dir = std::path::absolute(&c.dir).context("the container's path")?;
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
    let s = |p: &std::path::Path| p.to_str().map(str::to_string).context("a non-UTF-8 path");
    for l in &c.config.lower {
        fsconfig_set_string(&fs, "lowerdir+", s(l)?.as_str()).context("lowerdir+")?;
    }
    fsconfig_set_string(&fs, "upperdir", s(&upper)?.as_str()).context("upperdir")?;
    fsconfig_set_string(&fs, "workdir", s(&work)?.as_str()).context("workdir")?;
    for (k, v) in exec::overlay_options() {
        let _ = match v {
            Some(v) => fsconfig_set_string(&fs, *k, *v),
            None => rustix::mount::fsconfig_set_flag(&fs, *k),
        };
    }
    fsconfig_create(&fs).context("create the overlay")?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID,
    )
    .context("fsmount")?;
    Ok(mnt)
}

/// Where a copy goes to or comes from.
pub enum End<'a> {
    /// A path on a [`Side`].
    Path(&'a Side, &'a str),
    /// A tar stream (`-`).
    Stream,
}

/// The directory above `path` and the last name (`.` for the root).
fn split(path: &str) -> (String, String) {
    let c = escape::clean::rooted(path);
    match c.rsplit_once('/') {
        Some((_, "")) | None => ("/".into(), ".".into()),
        Some((p, n)) => (if p.is_empty() { "/".into() } else { p.into() }, n.into()),
    }
}

fn kind_at(dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<FileType> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(FileType::from_raw_mode(st.st_mode))
}

/// The source resolved: the directory holding it, its name there, what it is.
struct Source {
    dir: OwnedFd,
    name: String,
    kind: FileType,
    /// The path as given ended in `/.`: the directory's content, not the directory.
    content_only: bool,
    base: String,
}

fn resolve_source(side: &Side, path: &str, follow: bool) -> Result<Source> {
    let content_only = path.ends_with("/.") || path == ".";
    let trailing_slash = path.ends_with('/') || content_only;
    let mut p = escape::clean::rooted(path);
    let mut hops = 0;
    loop {
        let parent = split(&p).0;
        let (dir, name) = match side.locate(&p) {
            Ok(d) => d,
            Err(_) => return Err(side.not_found(path)),
        };
        let kind = match kind_at(dir.as_fd(), &name) {
            Ok(k) => k,
            Err(_) => return Err(side.not_found(path)),
        };
        if kind == FileType::Symlink && (follow || trailing_slash) {
            hops += 1;
            if hops > 40 {
                bail!("{path}: too many levels of symbolic links");
            }
            let target = rustix::fs::readlinkat(&dir, name.as_str(), Vec::new())
                .with_context(|| format!("readlink {path}"))?;
            let target = target.to_string_lossy().into_owned();
            p = if target.starts_with('/') {
                escape::clean::rooted(&target)
            } else {
                escape::clean::rooted(&format!("{parent}/{target}"))
            };
            continue;
        }
        if trailing_slash && kind != FileType::Directory {
            bail!("{path}: not a directory");
        }
        let base = split(&escape::clean::rooted(path)).1;
        return Ok(Source {
            dir,
            name,
            kind,
            content_only,
            base,
        });
    }
}

/// Pack `src` as the archive naming it `name` into `out`.
fn pack_into<W: Write>(src: &Source, name: &str, out: W) -> Result<()> {
    let name = if name == "." { "" } else { name };
    layer::pack(src.dir.as_fd(), OsStr::new(&src.name), name.as_bytes(), out)
        .map(|_| ())
        .map_err(anyhow::Error::new)
}

/// Extract the tar stream `r` into the directory `dir` (its root for the stream).
fn extract<R: Read>(r: R, dir: &OwnedFd, opts: CpOptions) -> Result<()> {
    let target = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let o = layer::ApplyOptions {
        whiteouts: layer::Whiteouts::Keep,
        same_owner: opts.archive,
        ..layer::ApplyOptions::default()
    };
    layer::apply(r, &target, &o)?;
    Ok(())
}

/// Copy `from` to `to` with docker cp's rules: a file to a missing path takes that name,
/// into an existing directory its own name; a directory to a missing path becomes it, into
/// an existing directory goes under its own name, or only its content for `SRC/.`; a
/// directory never overwrites a file; a destination ending in `/` must be a directory. A
/// stream source (`-`) is a tar extracted into an existing directory; a stream destination
/// gets the source as a tar.
pub fn copy<R: Read, W: Write>(
    from: End<'_>,
    to: End<'_>,
    input: R,
    output: W,
    opts: CpOptions,
) -> Result<()> {
    match (from, to) {
        (End::Stream, End::Stream) => {
            bail!("copying between a stream and a stream is not supported")
        }
        (End::Path(side, path), End::Stream) => {
            let src = resolve_source(side, path, opts.follow)?;
            let name = if src.content_only { "." } else { &src.base };
            pack_into(&src, name, output)
        }
        (End::Stream, End::Path(side, path)) => {
            side.writable(path)?;
            let dir = side.open(path).map_err(|_| side.not_found(path))?;
            let st = rustix::fs::fstat(&dir)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                bail!("destination \"{path}\" must be a directory");
            }
            extract(input, &dir, opts)
        }
        (End::Path(sside, spath), End::Path(dside, dpath)) => {
            let src = resolve_source(sside, spath, opts.follow)?;
            let src_is_dir = src.kind == FileType::Directory;
            let dst_slash = dpath.ends_with('/');
            dside.writable(dpath)?;
            let (dir, name) = match dside.open(dpath) {
                Ok(fd) => {
                    let st = rustix::fs::fstat(&fd)?;
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                        let name = if src.content_only {
                            ".".to_string()
                        } else {
                            src.base.clone()
                        };
                        (fd, name)
                    } else if src_is_dir {
                        bail!("cannot copy a directory to a file: {dpath}");
                    } else if dst_slash {
                        bail!("{dpath}: not a directory");
                    } else {
                        dside.locate(dpath)?
                    }
                }
                Err(rustix::io::Errno::NOENT) => {
                    if dst_slash && !src_is_dir {
                        bail!("no such directory: {dpath}");
                    }
                    let parent = split(dpath).0;
                    let (dir, name) = match dside.locate(dpath) {
                        Ok(d) => d,
                        Err(_) => return Err(dside.not_found(&parent)),
                    };
                    if kind_at(dir.as_fd(), ".").ok() != Some(FileType::Directory) {
                        bail!("{parent}: not a directory");
                    }
                    (dir, name)
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("open {dpath}"))),
            };
            let (r, w) = std::io::pipe().context("a pipe")?;
            std::thread::scope(|s| {
                let packer = s.spawn(move || pack_into(&src, &name, w));
                let extracted = extract(&r, &dir, opts);
                // Whatever extraction left unread, so the packer never writes into a closed
                // pipe (SIGPIPE ends the CLI) nor blocks.
                let _ = std::io::copy(&mut &r, &mut std::io::sink());
                let packed = packer
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the packer panicked")));
                // The packer's error is the cause when both failed (a truncated stream).
                packed.and(extracted)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(split("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split("/a"), ("/".into(), "a".into()));
        assert_eq!(split("/"), ("/".into(), ".".into()));
        assert_eq!(split("/a/."), ("/".into(), "a".into()));
    }

    #[test]
    fn host_to_host_follows_docker_rules() {
        let t = tempfile::tempdir().unwrap();
        let p = |s: &str| t.path().join(s).to_str().unwrap().to_string();
        std::fs::create_dir_all(p("src/sub")).unwrap();
        std::fs::write(p("src/sub/f"), "f").unwrap();
        std::fs::write(p("file"), "x").unwrap();
        std::fs::create_dir(p("dst")).unwrap();
        let h = Side::host().unwrap();
        let cp = |a: &str, b: &str| {
            copy(
                End::Path(&h, a),
                End::Path(&h, b),
                std::io::empty(),
                std::io::sink(),
                CpOptions::default(),
            )
        };
        cp(&p("src"), &p("dst")).unwrap();
        assert!(std::path::Path::new(&p("dst/src/sub/f")).exists());
        cp(&p("src/."), &p("dst")).unwrap();
        assert!(std::path::Path::new(&p("dst/sub/f")).exists());
        cp(&p("src"), &p("new")).unwrap();
        assert!(std::path::Path::new(&p("new/sub/f")).exists());
        cp(&p("file"), &p("renamed")).unwrap();
        assert_eq!(std::fs::read_to_string(p("renamed")).unwrap(), "x");
        assert!(cp(&p("src"), &p("file"))
            .unwrap_err()
            .to_string()
            .contains("cannot copy a directory"));
        assert!(cp(&p("file"), &p("nodir/"))
            .unwrap_err()
            .to_string()
            .contains("no such directory"));
        assert!(cp(&p("file/"), &p("dst"))
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
        assert!(cp(&p("missing"), &p("dst"))
            .unwrap_err()
            .to_string()
            .contains("no such file"));
    }
}
