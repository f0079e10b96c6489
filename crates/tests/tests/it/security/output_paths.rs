//! Issue 10, item 6: output paths that are symlinks. A file output (`--iidfile`, `save -o`,
//! `--output type=oci|docker|tar,dest=`) replaces a symlink at its path instead of writing
//! through it; a directory output (`type=local`, `--cache-to type=local`) refuses a
//! symlinked destination, and symlinks inside an existing one do not lead out of it.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::guard::{after, with_busybox, Canary};
use crate::common::Env;

fn context(env: &Env) -> String {
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local\nRUN echo built > /built\n",
    )
    .unwrap();
    ctx.to_str().unwrap().to_string()
}

/// `path` is now a regular file (not a symlink) that starts with `prefix`.
fn replaced(path: &Path, prefix: &[u8]) {
    let m = fs::symlink_metadata(path).unwrap();
    assert!(
        m.file_type().is_file(),
        "{} is not a regular file",
        path.display()
    );
    let bytes = fs::read(path).unwrap();
    assert!(
        bytes.starts_with(prefix),
        "{}: {:?}",
        path.display(),
        String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
    );
}

#[test]
fn iidfile_symlink_is_replaced_not_followed() {
    strata_tests::require!(Root, Busybox);
    let env = with_busybox();
    let canary = Canary::new(env.dir.path());
    let ctx = context(&env);
    let f = env.path("iid");
    symlink(&canary.path, &f).unwrap();
    let out = env.ok(&["build", "-q", "--iidfile", f.to_str().unwrap(), &ctx]);
    replaced(&f, out.trim().as_bytes());
    assert!(out.starts_with("sha256:"), "{out}");

    // A failed build removes a stale iidfile (the link), as docker does, and not its target.
    symlink(&canary.path, env.path("iid2")).unwrap();
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM busybox:local\nRUN false\n",
    )
    .unwrap();
    let iid2 = env.path("iid2");
    env.fails(&["build", "-q", "--iidfile", iid2.to_str().unwrap(), &ctx]);
    assert!(fs::symlink_metadata(&iid2).is_err(), "stale iidfile kept");
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn save_o_symlink_is_replaced_not_followed() {
    strata_tests::require!(Root, Busybox);
    let env = with_busybox();
    let canary = Canary::new(env.dir.path());
    let f = env.path("saved.tar");
    symlink(&canary.path, &f).unwrap();
    env.ok(&["save", "-o", f.to_str().unwrap(), "busybox:local"]);
    replaced(&f, b"");
    assert!(fs::metadata(&f).unwrap().len() > 1 << 20);
    // The OCI form too (a symlink planted at the temp file's name: outpath's unit tests).
    let g = env.path("saved2.tar");
    symlink(&canary.path, &g).unwrap();
    env.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        g.to_str().unwrap(),
        "busybox:local",
    ]);
    replaced(&g, b"");
    // Devices still take the stream: `-o /dev/null`, directly and through a link.
    env.ok(&["save", "-o", "/dev/null", "busybox:local"]);
    let null = env.path("null");
    symlink("/dev/null", &null).unwrap();
    env.ok(&["save", "-o", null.to_str().unwrap(), "busybox:local"]);
    assert!(fs::symlink_metadata(&null)
        .unwrap()
        .file_type()
        .is_symlink());
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn build_file_outputs_replace_a_symlink() {
    strata_tests::require!(Root, Busybox);
    let env = with_busybox();
    let canary = Canary::new(env.dir.path());
    let ctx = context(&env);
    for typ in ["oci", "docker", "tar"] {
        let f = env.path(&format!("out.{typ}"));
        symlink(&canary.path, &f).unwrap();
        env.ok(&[
            "build",
            "-q",
            "-o",
            &format!("type={typ},dest={}", f.display()),
            &ctx,
        ]);
        replaced(&f, b"");
        assert!(fs::metadata(&f).unwrap().len() > 1024, "{typ}");
        canary.check();
    }
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn local_output_refuses_a_symlinked_dest_and_stays_inside_one() {
    strata_tests::require!(Root, Busybox);
    let env = with_busybox();
    let canary = Canary::new(env.dir.path());
    let ctx = context(&env);
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let dest = env.path("dest");
    symlink(&outside, &dest).unwrap();
    let e = env.fails(&[
        "build",
        "-q",
        "-o",
        &format!("type=local,dest={}", dest.display()),
        &ctx,
    ]);
    assert!(
        e.contains(&format!(
            "error: --output dest= {} is a symlink (to {}): name the directory itself",
            dest.display(),
            outside.display()
        )),
        "{e}"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    // Symlinks inside an existing dest (absolute and relative, to the outside directory)
    // are resolved beneath it: the image's /etc files never land outside.
    let real = env.path("real");
    fs::create_dir_all(&real).unwrap();
    symlink(&outside, real.join("etc")).unwrap();
    symlink("../../outside", real.join("bin")).unwrap();
    let o = env.run(&[
        "build",
        "-q",
        "-o",
        &format!("type=local,dest={}", real.display()),
        &ctx,
    ]);
    // The image's directories replace the links (as tar's extraction does): the files land
    // inside dest.
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for d in ["etc", "bin"] {
        let m = fs::symlink_metadata(real.join(d)).unwrap();
        assert!(m.is_dir(), "{d} is still a link");
    }
    assert!(real.join("etc/passwd").is_file());
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "files written through a symlink inside dest"
    );
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn cache_to_refuses_a_symlinked_dest_or_blobs_dir() {
    strata_tests::require!(Root, Busybox);
    let env = with_busybox();
    let canary = Canary::new(env.dir.path());
    let ctx = context(&env);
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let dest = env.path("cache");
    symlink(&outside, &dest).unwrap();
    let e = env.fails(&[
        "build",
        "-q",
        "--cache-to",
        &format!("type=local,dest={}", dest.display()),
        &ctx,
    ]);
    assert!(
        e.contains(&format!(
            "error: --cache-to dest= {} is a symlink",
            dest.display()
        )),
        "{e}"
    );
    let dest2 = env.path("cache2");
    fs::create_dir_all(&dest2).unwrap();
    symlink(&outside, dest2.join("blobs")).unwrap();
    let e = env.fails(&[
        "build",
        "-q",
        "--cache-to",
        &format!("type=local,dest={}", dest2.display()),
        &ctx,
    ]);
    assert!(
        e.contains(&format!(
            "{} is a symlink; refusing to write through it",
            dest2.join("blobs").display()
        )),
        "{e}"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    env.fsck_clean();
    after(&canary, &env);
}
