//! Issue 10, item 8: raw control characters in errors. Names from tar headers, archive
//! manifests and Dockerfiles reach the messages escaped (`\x1b`), and stderr never holds a
//! raw ESC (or BEL) byte. (Registry error bodies: registry's hostile_tests.)

use std::fs;

use super::guard::{after, Canary};
use crate::common::{busybox_tar, tool, Env};

/// One ustar entry: header (name up to 100 bytes) and data padded to 512.
fn ustar(name: &[u8], typeflag: u8, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn end(mut tar: Vec<u8>) -> Vec<u8> {
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// The message shows the escaped form and stderr holds no raw control byte.
fn escaped(stderr: &str, want: &str) {
    assert!(stderr.contains(want), "want {want:?} in {stderr:?}");
    assert!(
        !stderr.bytes().any(|b| b == 0x1b || b == 0x07 || b == 0x9b),
        "raw control bytes on stderr: {stderr:?}"
    );
}

#[test]
fn tar_member_names_are_escaped() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let base = env.path("busybox.tar");
    busybox_tar(&base);
    env.ok(&["import", base.to_str().unwrap(), "busybox:local"]);
    // A regular file, then an entry that needs it to be a directory: applying the layer
    // fails on the second, whose name carries an OSC title sequence and a CSI.
    let name = b"x\x1b]0;pwned\x07/\x1b[2Jy";
    let mut tar = ustar(b"x\x1b]0;pwned\x07", b'0', b"file");
    tar.extend(ustar(name, b'0', b"data"));
    let evil = env.path("evil.tar");
    fs::write(&evil, end(tar)).unwrap();
    env.ok(&["import", evil.to_str().unwrap(), "evil:1"]);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM evil:1\nRUN true\n").unwrap();
    let e = env.fails(&["build", "-q", ctx.to_str().unwrap()]);
    escaped(&e, r"x\x1b]0;pwned\x07/\x1b[2Jy");

    // A name that leaves the root is refused, quoted Go-style.
    let tar = end(ustar(b"../\x1b[31mout", b'0', b"data"));
    let evil2 = env.path("evil2.tar");
    fs::write(&evil2, tar).unwrap();
    let o = env.run(&["import", evil2.to_str().unwrap(), "evil:2"]);
    let e = if o.status.success() {
        fs::write(ctx.join("Dockerfile"), "FROM evil:2\nRUN true\n").unwrap();
        env.fails(&["build", "-q", ctx.to_str().unwrap()])
    } else {
        String::from_utf8(o.stderr).unwrap()
    };
    escaped(&e, r"\x1b[31mout");
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn archive_manifest_names_are_escaped() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let dir = env.path("arch");
    fs::create_dir_all(&dir).unwrap();
    // A docker-archive whose manifest names a layer that is not there, with ESC in the name.
    fs::write(
        dir.join("config.json"),
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .unwrap();
    fs::write(
        dir.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["a:1"],"Layers":["\u001b[2J\u001b[31mgone.tar"]}]"#,
    )
    .unwrap();
    let a = env.path("a.tar");
    tool(
        "tar",
        &["-C", dir.to_str().unwrap(), "-cf", a.to_str().unwrap(), "."],
    );
    let e = env.fails(&["load", "-i", a.to_str().unwrap()]);
    escaped(&e, r"archive has no member \x1b[2J\x1b[31mgone.tar");

    // A RepoTag with an ESC sequence.
    fs::write(
        dir.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["evil\u001b]0;t\u0007:1"],"Layers":[]}]"#,
    )
    .unwrap();
    tool(
        "tar",
        &["-C", dir.to_str().unwrap(), "-cf", a.to_str().unwrap(), "."],
    );
    let e = env.fails(&["load", "-i", a.to_str().unwrap()]);
    escaped(&e, "manifest.json: RepoTags: invalid reference format");
    assert!(
        e.contains(r"evil\x1b]0;t\x07:1") || e.contains(r"evil\u{1b}]0;t\u{7}:1"),
        "{e}"
    );
    assert!(env.ok(&["images", "-q"]).trim().is_empty());
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn dockerfile_diagnostics_escape_control_characters() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nFR\u{1b}[31mOM é \u{7}\n",
    )
    .unwrap();
    let e = env.fails(&["build", "-q", ctx.to_str().unwrap()]);
    let first = e.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("error: {}:2:", ctx.join("Dockerfile").display())),
        "{e}"
    );
    escaped(&e, r"FR\x1b[31mOM é \x07");
    after(&canary, &env);
}
