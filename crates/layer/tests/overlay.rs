//! Whiteout conversion against a real overlayfs mount. Each test says it needs root
//! (`require!`: SKIPPED outside CI, a failure under CI=true); as root, a mount that fails is a
//! failure, never a skip.

mod common;

use common::*;
use layer::{ApplyOptions, CommitOptions, Source, Whiteouts};
use std::fs;
use std::path::{Path, PathBuf};

/// An overlay mount, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    /// `lower` under the writable `upper` at `at`, as strata mounts a RUN (no redirects, no
    /// metacopy: an upperdir it can commit).
    fn writable(lower: &Path, upper: &Path, work: &Path, at: &Path) -> Mount {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
            lower.display(),
            upper.display(),
            work.display()
        );
        Mount::overlay(&opts, at)
    }

    fn overlay(options: &str, at: &Path) -> Mount {
        fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", options])
            .arg(at)
            .output()
            .expect("cannot run mount(8)");
        assert!(
            out.status.success(),
            "mount -t overlay -o {options} {} FAILED (this test needs root and overlayfs): {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// lower, upper and work directories made under `t`, and where to mount the overlay.
fn overlay_dirs(t: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let p = |s: &str| t.join(s);
    let (lower, upper, work, merged) = (p("lower"), p("upper"), p("work"), p("merged"));
    for d in [&lower, &upper, &work] {
        fs::create_dir_all(d).unwrap();
    }
    (lower, upper, work, merged)
}

#[test]
fn overlay_upperdir_commit_and_both_apply_modes() {
    strata_tests::require!(Root);
    let t = tempfile::tempdir().unwrap();
    let p = |s: &str| t.path().join(s);
    let (lower, upper, work, merged) = overlay_dirs(t.path());
    fs::write(lower.join("keep.txt"), b"keep").unwrap();
    fs::write(lower.join("gone.txt"), b"gone").unwrap();
    fs::create_dir_all(lower.join("removed/deep")).unwrap();
    fs::write(lower.join("removed/deep/a"), b"a").unwrap();
    fs::create_dir_all(lower.join("opaque")).unwrap();
    fs::write(lower.join("opaque/old1"), b"1").unwrap();
    fs::write(lower.join("opaque/old2"), b"2").unwrap();
    fs::create_dir_all(lower.join("sub")).unwrap();
    fs::write(lower.join("sub/x"), b"x").unwrap();
    fs::write(lower.join("sub/y"), b"y").unwrap();

    let expected = {
        let _m = Mount::writable(&lower, &upper, &work, &merged);
        fs::remove_file(merged.join("gone.txt")).unwrap();
        fs::remove_dir_all(merged.join("removed")).unwrap();
        fs::remove_dir_all(merged.join("opaque")).unwrap();
        fs::create_dir(merged.join("opaque")).unwrap();
        fs::write(merged.join("opaque/new"), b"new").unwrap();
        fs::write(merged.join("new.txt"), b"new").unwrap();
        fs::remove_file(merged.join("sub/x")).unwrap();
        fs::write(merged.join("sub/z"), b"z").unwrap();
        tree(&merged)
    };

    let opts = CommitOptions {
        source: Source::OverlayUpper,
        ..Default::default()
    };
    let (diff_id, bytes) = commit_bytes(&upper, &opts);
    let seen = list_tar(&bytes);
    let names: Vec<&str> = seen.iter().map(|s| s.name.as_str()).collect();
    for n in [
        ".wh.gone.txt",
        ".wh.removed",
        "new.txt",
        "opaque/",
        "opaque/.wh..wh..opq",
        "opaque/new",
        "sub/",
        "sub/.wh.x",
        "sub/z",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(
        names.iter().position(|n| *n == "opaque/")
            < names.iter().position(|n| *n == "opaque/.wh..wh..opq")
    );
    for s in &seen {
        assert!(
            s.xattrs.iter().all(|(k, _)| !k.contains("overlay")),
            "overlay xattr leaked into {}: {:?}",
            s.name,
            s.xattrs
        );
        if s.name.contains(".wh.") {
            assert_eq!((s.kind, s.size, s.mode, s.uid, s.mtime), (b'0', 0, 0, 0, 0));
        }
    }
    // The same upperdir read as a plain directory keeps the character devices.
    let (_, plain) = commit_bytes(&upper, &CommitOptions::default());
    assert!(list_tar(&plain)
        .iter()
        .any(|s| s.name == "gone.txt" && s.kind == b'3'));

    // Plain apply onto a copy of the lower layer gives the merged view.
    let applied = p("applied");
    run(
        "cp",
        &["-a", lower.to_str().unwrap(), applied.to_str().unwrap()],
    );
    let info = layer::apply(&bytes[..], &applied, &ApplyOptions::default()).unwrap();
    assert_eq!(info.diff_id, diff_id);
    assert_eq!(tree(&applied), expected);

    // Overlay-format apply into an empty layer directory, mounted over the lower layer,
    // gives the merged view too.
    let layer_dir = p("layerdir");
    fs::create_dir(&layer_dir).unwrap();
    let ovl = ApplyOptions {
        whiteouts: Whiteouts::Overlay,
        ..Default::default()
    };
    layer::apply(&bytes[..], &layer_dir, &ovl).unwrap();
    let merged2 = p("merged2");
    let got = {
        let _m = Mount::overlay(
            &format!("lowerdir={}:{}", layer_dir.display(), lower.display()),
            &merged2,
        );
        tree(&merged2)
    };
    assert_eq!(got, expected);

    // And committing that overlay-format layer dir gives back the same layer.
    let (again, _) = commit_bytes(&layer_dir, &opts);
    assert_eq!(again, diff_id);
}

#[test]
fn overlay_redirects_are_refused() {
    strata_tests::require!(Root);
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("dir");
    fs::create_dir(&d).unwrap();
    rustix::fs::lsetxattr(
        &d,
        "trusted.overlay.redirect",
        b"/elsewhere",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let opts = CommitOptions {
        source: Source::OverlayUpper,
        ..Default::default()
    };
    let err = layer::commit(t.path(), &opts, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("redirect"), "{err}");
    // A plain directory commit just drops overlay attributes.
    layer::commit(t.path(), &CommitOptions::default(), Vec::new()).unwrap();
}

/// Everything a later overlay mount can see of a layer directory: per entry its type,
/// mode, owner, content, modification time to the nanosecond, hard links and every
/// extended attribute (the overlay ones included). Access times are not compared: reading
/// a file (committing it) moves them.
fn deep_tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = tree(root);
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let is_whiteout =
            std::os::unix::fs::FileTypeExt::is_char_device(&md.file_type()) && md.rdev() == 0;
        let mut names = vec![0u8; 4096];
        let n = rustix::fs::llistxattr(e.path(), &mut names[..]).unwrap_or(0);
        let mut xattrs: Vec<String> = names[..n]
            .split(|&c| c == 0)
            .filter(|k| !k.is_empty())
            .map(|k| {
                let mut v = vec![0u8; 256];
                let len = rustix::fs::lgetxattr(e.path(), k, &mut v[..]).unwrap();
                format!("{}={:?}", String::from_utf8_lossy(k), &v[..len])
            })
            .collect();
        xattrs.sort();
        let times = if md.file_type().is_symlink() || is_whiteout {
            // A symlink's times, as a whiteout's, are not part of what a reader sees.
            String::new()
        } else {
            format!("m={}.{:09}", md.mtime(), md.mtime_nsec())
        };
        // The kernel may share one inode between whiteouts.
        let nlink = if is_whiteout { 1 } else { md.nlink() };
        let d = out.get_mut(&rel).unwrap();
        *d = format!("{d} {times} nlink={nlink} xattrs={xattrs:?}");
    }
    out
}

/// A committed directory settled for use as the layer's snapshot is exactly what applying
/// the layer (overlay whiteouts, as snapshots are unpacked) makes: times in whole seconds,
/// no private xattrs but an opaque mark, no sockets, whiteouts and hard links as they were.
#[test]
fn settled_directories_equal_their_unpacked_layer() {
    strata_tests::require!(Root);
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let p = |s: &str| t.path().join(s);
    let (lower, upper, work, merged) = overlay_dirs(t.path());
    fs::write(lower.join("gone.txt"), b"gone").unwrap();
    fs::create_dir_all(lower.join("opaque")).unwrap();
    fs::write(lower.join("opaque/old"), b"1").unwrap();
    fs::create_dir_all(lower.join("sub")).unwrap();
    fs::write(lower.join("sub/copied-up"), b"x").unwrap();
    {
        let _m = Mount::writable(&lower, &upper, &work, &merged);
        fs::remove_file(merged.join("gone.txt")).unwrap();
        fs::remove_dir_all(merged.join("opaque")).unwrap();
        fs::create_dir(merged.join("opaque")).unwrap();
        fs::write(merged.join("opaque/new"), b"new").unwrap();
        // Copied up: overlay may mark it with trusted.overlay.origin.
        fs::write(merged.join("sub/copied-up"), b"changed").unwrap();
        fs::write(merged.join("sub/new"), b"n").unwrap();
        fs::hard_link(merged.join("sub/new"), merged.join("sub/linked")).unwrap();
        std::os::unix::fs::symlink("new", merged.join("sub/sym")).unwrap();
        run("mkfifo", &[merged.join("fifo").to_str().unwrap()]);
        let _sock = std::os::unix::net::UnixListener::bind(merged.join("sub/sock")).unwrap();
        fs::write(merged.join("setuid"), b"s").unwrap();
        fs::set_permissions(merged.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
        rustix::fs::lsetxattr(
            merged.join("sub/new"),
            "user.note",
            b"kept",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    // A plain directory (a COPY's files): private xattrs go, times are clamped.
    let plain = p("plain");
    fs::create_dir_all(plain.join("app/deep")).unwrap();
    fs::write(plain.join("app/deep/f"), b"f").unwrap();
    fs::write(plain.join("app/future"), b"late").unwrap();
    run(
        "touch",
        &[
            "-d",
            "2100-01-01 00:00:00.123456789",
            plain.join("app/future").to_str().unwrap(),
        ],
    );
    rustix::fs::lsetxattr(
        plain.join("app/deep"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();

    for (dir, source, epoch) in [
        (&upper, Source::OverlayUpper, None),
        (&plain, Source::Directory, Some(2_000_000_000)),
    ] {
        let opts = CommitOptions {
            source,
            source_date_epoch: epoch,
            settle: true,
            lowers: Vec::new(),
        };
        let (diff_id, bytes) = commit_bytes(dir, &opts);
        let unpacked = t.path().join(format!(
            "unpacked-{}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        fs::create_dir(&unpacked).unwrap();
        let ovl = ApplyOptions {
            whiteouts: Whiteouts::Overlay,
            same_owner: true,
            ..Default::default()
        };
        let info = layer::apply(&bytes[..], &unpacked, &ovl).unwrap();
        assert_eq!(info.diff_id.to_string(), diff_id);
        let (settled, want) = (deep_tree(dir), deep_tree(&unpacked));
        assert_eq!(
            settled, want,
            "{source:?}: settled directory differs from the unpacked layer"
        );
        // Settling does not change the layer.
        let (again, _) = commit_bytes(dir, &opts);
        assert_eq!(again, diff_id);
    }
    assert!(
        !upper.join("sub/sock").exists(),
        "the socket was not removed"
    );
}

/// fuse-overlayfs' upperdirs (its opaque markers: a regular `.wh..wh..opq` file and a 0:0
/// device `.wh..opq` in every directory it makes) commit as the kernel's: a directory no
/// lower has is not opaque, one that replaces a lower directory is, and the markers are no
/// entries; settled, the markers are gone and the opaque one carries the xattr.
#[test]
fn fuse_overlayfs_upperdirs_commit_as_the_kernels() {
    strata_tests::require!(Root);
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
    fs::create_dir_all(lower.join("gone")).unwrap();
    fs::write(lower.join("gone/old"), b"old").unwrap();
    for d in ["new", "gone"] {
        let dir = upper.join(d);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".wh..wh..opq"), b"").unwrap();
        let dev = dir.join(".wh..opq");
        let st = std::process::Command::new("mknod")
            .arg(&dev)
            .args(["c", "0", "0"])
            .status()
            .unwrap();
        assert!(st.success());
        fs::write(dir.join("f"), b"f").unwrap();
    }
    let opts = CommitOptions {
        source: Source::OverlayUpper,
        settle: true,
        lowers: vec![lower.clone()],
        ..Default::default()
    };
    let (_, bytes) = commit_bytes(&upper, &opts);
    let names: Vec<String> = list_tar(&bytes).into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        ["gone/", "gone/.wh..wh..opq", "gone/f", "new/", "new/f"],
        "{names:?}"
    );
    for d in ["new", "gone"] {
        assert!(!upper.join(d).join(".wh..wh..opq").exists());
        assert!(fs::symlink_metadata(upper.join(d).join(".wh..opq")).is_err());
    }
}
