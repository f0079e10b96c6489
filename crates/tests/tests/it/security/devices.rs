//! Issue 10, item 1: a container opens only the default device set. `mknod` itself is allowed
//! (CAP_MKNOD is in Docker's default set), but a node it makes, or one an image ships, cannot
//! be opened: every mount but the bound host devices and devpts is `nodev`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::guard::{after, setup};
use crate::common::tool;

/// The host's root disk as `major minor` (the block device of `/`'s filesystem, else any).
fn host_disk() -> String {
    let dev = std::fs::metadata("/").unwrap().dev();
    let (ma, mi) = (libc_major(dev), libc_minor(dev));
    if Path::new(&format!("/sys/dev/block/{ma}:{mi}")).exists() {
        return format!("{ma} {mi}");
    }
    let any = std::fs::read_dir("/sys/dev/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("this host has no block device: the raw-disk case cannot be tested");
    any.replace(':', " ")
}

// glibc's major()/minor() encoding, so this test needs no libc dependency.
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)
}
fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)
}

fn token(what: &str) -> String {
    format!("strata-sec-devices-{what}-{}", std::process::id())
}

fn kernel_log_has(token: &str) -> bool {
    let o = std::process::Command::new("dmesg").output().expect("dmesg");
    String::from_utf8_lossy(&o.stdout).contains(token)
}

/// The shell text that makes kmsg (c 1 11), mem (c 1 1) and the host's disk, tries to open
/// each, and exits 0 only when every open was refused.
fn attack(token: &str) -> String {
    format!(
        "b=/bin/busybox; $b mkdir -p /tmp && $b mknod /tmp/kmsg c 1 11 && $b mknod /tmp/mem c 1 1 \
         && $b mknod /tmp/disk b {} && echo made \
         && ! (echo {token} > /tmp/kmsg) && ! $b head -c 1 /tmp/mem \
         && ! $b head -c 512 /tmp/disk && echo all-refused \
         && echo ok > /dev/null && $b head -c 3 /dev/zero | $b wc -c \
         && $b head -c 3 /dev/urandom | $b wc -c",
        host_disk()
    )
}

#[test]
fn run_step_cannot_open_device_nodes() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    let t = token("build");
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox:local\nRUN {}\n", attack(&t)),
    )
    .unwrap();
    let o = env.run(&[
        "build",
        "--progress=plain",
        "-t",
        "dev:x",
        ctx.to_str().unwrap(),
    ]);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{log}");
    assert!(log.contains("made") && log.contains("all-refused"), "{log}");
    assert_eq!(log.matches("Permission denied").count(), 3, "{log}");
    assert!(
        !kernel_log_has(&t),
        "a build step wrote to the host's kernel log"
    );
    after(&canary, &env);
}

#[test]
fn run_cannot_open_device_nodes() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    let t = token("run");
    let o = env.run(&["run", "--rm", "busybox:local", "sh", "-c", &attack(&t)]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, "made\nall-refused\n3\n3\n", "{err}");
    assert_eq!(err.matches("Permission denied").count(), 3, "{err}");
    assert!(
        !kernel_log_has(&t),
        "a container wrote to the host's kernel log"
    );
    after(&canary, &env);
}

/// An image that ships device nodes (kmsg and the host's disk) in its layer: they are
/// unpacked into the store, but a container cannot open them.
#[test]
fn image_device_nodes_cannot_be_opened() {
    strata_tests::require!(Root, Busybox, Python3);
    let (env, canary) = setup();
    let t = token("image");
    let tar = env.path("devimg.tar");
    let base = env.path("busybox.tar");
    let (ma, mi) = {
        let d = host_disk();
        let mut it = d.split(' ');
        (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        )
    };
    tool(
        "python3",
        &[
            "-c",
            "import sys, tarfile
src, dst, ma, mi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with tarfile.open(src) as i, tarfile.open(dst, 'w', format=tarfile.PAX_FORMAT) as o:
    for m in i.getmembers():
        o.addfile(m, i.extractfile(m) if m.isfile() else None)
    for name, kind, a, b in [('kmsg', tarfile.CHRTYPE, 1, 11), ('disk', tarfile.BLKTYPE, ma, mi)]:
        ti = tarfile.TarInfo(name); ti.type = kind; ti.devmajor = a; ti.devminor = b; ti.mode = 0o666
        o.addfile(ti)",
            base.to_str().unwrap(),
            tar.to_str().unwrap(),
            &ma,
            &mi,
        ],
    );
    env.ok(&["import", tar.to_str().unwrap(), "devimg:x"]);
    let o = env.run(&[
        "run",
        "--rm",
        "devimg:x",
        "sh",
        "-c",
        &format!(
            "ls -l /kmsg /disk >/dev/null && ! (echo {t} > /kmsg) && ! /bin/busybox head -c 512 /disk && echo refused"
        ),
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, "refused\n");
    assert_eq!(err.matches("Permission denied").count(), 2, "{err}");
    assert!(
        !kernel_log_has(&t),
        "a container wrote to the host's kernel log"
    );
    after(&canary, &env);
}
