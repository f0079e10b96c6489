//! Issue 10, item 2: the store holds unpacked images (setuid binaries among them): only its
//! owner may enter it. A new store is made 0700; an existing one open to others is tightened
//! on the next command, with one notice line.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::guard::{after, Canary};
use crate::common::{busybox_tar, tool, Env};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Run `path` as user nobody (65534) through a shell, returning (success, stdout + stderr).
/// (setpriv keeps its capabilities until its own exec: the shell is what runs unprivileged.)
fn as_nobody(path: &Path) -> (bool, String) {
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "/bin/sh",
            "-c",
            "exec \"$0\"",
        ])
        .arg(path)
        .output()
        .expect("setpriv (util-linux)");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn setuid_binary_in_the_store_is_out_of_reach() {
    strata_tests::require!(Root, Busybox, Python3);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    // The test's directory must be open, so that only the store's own mode stands between
    // user nobody and the store.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // An image whose layer holds a setuid-root copy of id(1).
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    let suid = env.path("suid.tar");
    tool(
        "python3",
        &[
            "-c",
            "import sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
with tarfile.open(src) as i, tarfile.open(dst, 'w') as o:
    for m in i.getmembers():
        o.addfile(m, i.extractfile(m) if m.isfile() else None)
    ti = o.gettarinfo('/usr/bin/id', arcname='suid-id'); ti.mode = 0o4755; ti.uid = ti.gid = 0
    with open('/usr/bin/id', 'rb') as f: o.addfile(ti, f)",
            tar.to_str().unwrap(),
            suid.to_str().unwrap(),
        ],
    );
    let out = env.run(&["import", suid.to_str().unwrap(), "suid:x"]);
    assert!(out.status.success());
    // A new store: 0700, and no notice.
    assert_eq!(mode(&env.root()), 0o700);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("notice"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unpack the layer into a snapshot.
    env.ok(&["run", "--rm", "suid:x", "true"]);
    let found = tool(
        "find",
        &[
            env.root().to_str().unwrap(),
            "-name",
            "suid-id",
            "-perm",
            "-4000",
        ],
    );
    let bin = Path::new(
        found
            .lines()
            .next()
            .expect("the setuid binary is in a snapshot"),
    );

    // What an old store (0755) allowed: euid 0 for user nobody.
    std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, text) = as_nobody(bin);
    assert!(ok && text.contains("euid=0(root)"), "{text}");

    // The next command tightens the store, with one notice line.
    let o = env.run(&["images"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        err,
        format!(
            "notice: the store {} was mode 0755, open to other users; it is now 0700\n",
            env.root().display()
        )
    );
    assert_eq!(mode(&env.root()), 0o700);
    let o = env.run(&["images"]);
    assert!(o.stderr.is_empty(), "the notice is printed once");

    // Now nobody cannot reach the binary.
    let (ok, text) = as_nobody(bin);
    assert!(!ok, "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    env.fsck_clean();
    after(&canary, &env);
}
