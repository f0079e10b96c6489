//! Issue 10, item 10: a relative `--secret src=` resolves against the working directory (as
//! docker's), a full disk during `import` is named as such, and `import FILE` names FILE.

use std::fs;
use std::process::Command;

use super::guard::{after, with_busybox, Canary};
use crate::common::{busybox_tar, Env};

#[test]
fn relative_secret_src_resolves_against_the_working_directory() {
    strata_tests::require!(Root, Busybox);
    let env = with_busybox();
    let canary = Canary::new(env.dir.path());
    let work = env.path("work");
    fs::create_dir_all(work.join("secrets")).unwrap();
    fs::write(work.join("secrets/tok.txt"), "rel-s3cr3t").unwrap();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local\nRUN --mount=type=secret,id=tok cp /run/secrets/tok /seen\n",
    )
    .unwrap();
    let out = env.path("out");
    let o = env
        .cmd()
        .current_dir(&work)
        .args(["build", "--progress=plain", "--secret"])
        .arg("id=tok,src=secrets/tok.txt")
        .arg("-o")
        .arg(format!("type=local,dest={}", out.display()))
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read_to_string(out.join("seen")).unwrap(), "rel-s3cr3t");

    // A relative path that does not exist under the working directory is named as given.
    let o = env
        .cmd()
        .current_dir(&work)
        .args(["build", "--progress=plain", "--secret"])
        .arg("id=tok,src=secrets/missing.txt")
        .arg(&ctx)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("secret tok: ") && e.contains("secrets/missing.txt does not exist"),
        "{e}"
    );
    env.fsck_clean();
    after(&canary, &env);
}

/// A 1 MiB tmpfs as the store: importing 3 MiB fills it.
#[test]
fn import_on_a_full_disk_says_the_disk_is_full() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let root = env.root();
    fs::create_dir_all(&root).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let mounted = Unmount(root.clone());

    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
    let big: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(data.join("big.bin"), big).unwrap();
    let tar = env.path("big.tar");
    crate::common::tool(
        "tar",
        &[
            "-C",
            data.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    let e = env.fails(&["import", tar.to_str().unwrap(), "big:1"]);
    assert!(
        e.contains("No space left on device"),
        "the full disk is named: {e}"
    );
    assert!(
        !e.contains("not a valid tar archive"),
        "a full disk is not a broken tar: {e}"
    );
    assert!(
        e.contains(&format!("import {}", tar.display())),
        "names the file: {e}"
    );
    assert!(env.fails(&["inspect", "big:1"]).contains("big:1"));
    env.fsck_clean();
    drop(mounted);
    after(&canary, &env);
}

#[test]
fn import_file_names_the_file_and_records_docker_history() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let bad = env.path("not-a.tar");
    fs::write(&bad, vec![0x5au8; 1536]).unwrap();
    let e = env.fails(&["import", bad.to_str().unwrap(), "bad:1"]);
    let first = e.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("error: import {}", bad.display())),
        "{e}"
    );
    assert!(e.contains("not a valid tar archive"), "{e}");
    assert!(!e.contains("import -"), "{e}");

    // The history says `Imported from -`, as docker 20.10's does for `docker import FILE`.
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "bb:1"]);
    let h = env.ok(&["history", "--no-trunc", "bb:1"]);
    assert!(h.contains("Imported from -"), "{h}");
    env.fsck_clean();
    after(&canary, &env);
}
