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

#[test]
fn overlay_upperdir_commit_and_both_apply_modes() {
    strata_tests::require!(Root);
    let t = tempfile::tempdir().unwrap();
    let p = |s: &str| t.path().join(s);
    let (lower, upper, work, merged) = (p("lower"), p("upper"), p("work"), p("merged"));
    for d in [&lower, &upper, &work] {
        fs::create_dir_all(d).unwrap();
    }
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
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
            lower.display(),
            upper.display(),
            work.display()
        );
        let _m = Mount::overlay(&opts, &merged);
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
