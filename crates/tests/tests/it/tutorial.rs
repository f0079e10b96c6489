//! The multi-stage tutorials' command sequence with strata in place of docker
//! (`scripts/tutorial-loop.sh`, which checks each step itself), on a busybox base with all
//! its applets (the tutorial app serves with busybox's httpd).

use crate::common::{tool, Env};

#[test]
fn the_tutorials_sequence_runs_with_strata() {
    strata_tests::require!(Root, Busybox, Python3);
    let _serial = crate::common::exclusive(); // publishes port 3000 on the host
    let env = Env::new();
    let rootfs = env.path("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in tool("/bin/busybox", &["--list"]).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let tar = env.path("busybox-full.tar");
    tool(
        "tar",
        &[
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            rootfs.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    let o = std::process::Command::new("bash")
        .arg(strata_tests::repo_root().join("scripts/tutorial-loop.sh"))
        .arg(env.path("work"))
        .env("STRATA", strata_tests::strata_bin())
        .env("BUSYBOX_TAR", &tar)
        .env("STRATA_ROOT", env.root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "the tutorial sequence failed:\n{}",
        err.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        err.ends_with("tutorial sequence: all steps as docker's\n"),
        "{err}"
    );
    // Every step of the list ran.
    for step in [
        "== build -t myapp:multi .",
        "== build --target builder -t myapp:builder .",
        "== build --target production --build-arg VERSION=1.2.3 .",
        "== build --progress=plain .",
        "== images",
        "== images myapp",
        "== history myapp:multi",
        "== image inspect myapp:multi",
        "== inspect -f '{{.Config.Labels}}' myapp:multi",
        "== run -d -p 3000:3000 --name web myapp:multi",
        "== ps",
        "== logs web",
        "== exec web sh -c ...",
        "== stop web",
        "== run -it myapp:builder sh (through a pty)",
        "== run -v \"$PWD\":/app myapp:dev",
        "== system df",
        "== image prune -f",
    ] {
        assert!(
            err.lines().any(|l| l == step),
            "missing step {step}:\n{err}"
        );
    }
}
