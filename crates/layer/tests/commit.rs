//! Determinism and round trips of `commit` / `apply` (run as root: chown, mknod, xattrs).

mod common;

use common::*;
use layer::{ApplyOptions, CommitOptions};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn setx(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

/// A tree with every kind of entry and every header corner a layer has to carry.
fn rich_tree(root: &Path) {
    let d = root.join("d");
    fs::create_dir_all(d.join("sub")).unwrap();
    fs::write(d.join("file"), b"hello\n").unwrap();
    chown(&d.join("file"), 1000, 1001);
    fs::write(d.join("suid"), b"#!/bin/sh\n").unwrap();
    chmod(&d.join("suid"), 0o4755);
    // security.capability: VFS_CAP_REVISION_2 with CAP_NET_BIND_SERVICE permitted+effective.
    let mut cap = vec![0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00];
    cap.extend_from_slice(&[0; 12]);
    setx(&d.join("suid"), "security.capability", &cap);
    fs::write(d.join("empty"), b"").unwrap();
    chmod(&d.join("empty"), 0o600);
    fs::create_dir(d.join("sticky")).unwrap();
    chmod(&d.join("sticky"), 0o1777);
    symlink("file", d.join("link")).unwrap();
    symlink("/etc/passwd", d.join("abs")).unwrap();
    symlink("../nope", d.join("dangling")).unwrap();
    chown(&d.join("dangling"), 5, 6);
    fs::write(d.join("hard1"), b"shared inode").unwrap();
    fs::hard_link(d.join("hard1"), d.join("sub/hard2")).unwrap();
    fs::hard_link(d.join("hard1"), d.join("hard0")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("loop9"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from_raw_mode(0o660),
        rustix::fs::makedev(7, 9),
    )
    .unwrap();
    // xattrs, one with a newline and '=' in the value, one binary.
    setx(&d.join("file"), "user.note", b"line1\nkey=value\n");
    setx(&d.join("sub"), "user.bin", &[0, 1, 2, 255]);
    setx(&d.join("abs"), "trusted.onlink", b"x");
    // Names: long (PAX path), splittable (USTAR prefix), non-ASCII, long link target.
    let long_dir = root.join("l".repeat(120));
    fs::create_dir(&long_dir).unwrap();
    fs::write(long_dir.join("f".repeat(90)), b"split").unwrap();
    let deep = root.join(format!("{}/{}", "p".repeat(200), "q".repeat(200)));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("r".repeat(150)), b"pax path").unwrap();
    fs::write(root.join("ünïcødé ✓"), b"utf8").unwrap();
    symlink("t".repeat(300), root.join("longlink")).unwrap();
    // Big ids need PAX uid/gid records.
    fs::write(root.join("bigid"), b"id").unwrap();
    chown(&root.join("bigid"), 3_000_000, 4_000_000);
    // A sparse file is stored as a plain regular file of its full size.
    let f = fs::File::create(root.join("sparse")).unwrap();
    f.set_len(3 << 20).unwrap();
    drop(f);
    // Sort order: byte order within a directory ('-' < '.' < '/' does not matter here).
    fs::write(root.join("a-b"), b"1").unwrap();
    fs::create_dir(root.join("a")).unwrap();
    fs::write(root.join("a/b"), b"2").unwrap();
    fs::write(root.join("A"), b"3").unwrap();
    // Fixed mtimes everywhere (directories last).
    let mut all: Vec<_> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64);
    }
}

#[test]
fn same_tree_same_digest_and_mtime_changes_it() {
    let t = tempfile::tempdir().unwrap();
    rich_tree(t.path());
    let opts = CommitOptions::default();
    let (a, bytes_a) = commit_bytes(t.path(), &opts);
    let (b, bytes_b) = commit_bytes(t.path(), &opts);
    assert_eq!(a, b);
    assert_eq!(bytes_a, bytes_b);
    assert!(a.starts_with("sha256:") && a.len() == 71);

    set_mtime(&t.path().join("d/file"), 1_700_000_000);
    let (c, _) = commit_bytes(t.path(), &opts);
    assert_ne!(a, c, "a new mtime must change the digest");

    // Writing through a 1-byte-at-a-time writer changes nothing.
    struct Slow(Vec<u8>);
    impl std::io::Write for Slow {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Some(&x) = b.first() {
                self.0.push(x);
                Ok(1)
            } else {
                Ok(0)
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut slow = Slow(Vec::new());
    let info = layer::commit(t.path(), &opts, &mut slow).unwrap();
    assert_eq!(info.diff_id, c);
}

#[test]
fn source_date_epoch_clamps_newer_mtimes_only() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("old"), b"o").unwrap();
    fs::write(t.path().join("new"), b"n").unwrap();
    set_mtime(&t.path().join("old"), 1000);
    set_mtime(&t.path().join("new"), 3000);
    let opts = CommitOptions {
        source_date_epoch: Some(2000),
        ..Default::default()
    };
    let (d1, bytes) = commit_bytes(t.path(), &opts);
    let seen = list_tar(&bytes);
    let mt = |n: &str| seen.iter().find(|s| s.name == n).unwrap().mtime;
    assert_eq!(mt("old"), 1000);
    assert_eq!(mt("new"), 2000);
    // Any newer mtime gives the same layer.
    set_mtime(&t.path().join("new"), 999_999);
    let (d2, _) = commit_bytes(t.path(), &opts);
    assert_eq!(d1, d2);
    // Without the option the real mtime shows.
    let (_, bytes) = commit_bytes(t.path(), &CommitOptions::default());
    assert_eq!(
        list_tar(&bytes)
            .iter()
            .find(|s| s.name == "new")
            .unwrap()
            .mtime,
        999_999
    );
}

#[test]
fn headers_are_what_an_independent_reader_expects() {
    let t = tempfile::tempdir().unwrap();
    rich_tree(t.path());
    let (_, bytes) = commit_bytes(t.path(), &CommitOptions::default());
    assert_eq!(bytes.len() % 512, 0);
    assert!(bytes[bytes.len() - 1024..].iter().all(|&b| b == 0));
    let seen = list_tar(&bytes);
    let names: Vec<&str> = seen.iter().map(|s| s.name.as_str()).collect();
    // Depth first, sorted by bytes, parents first, no root entry.
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} missing from {names:?}"))
    };
    assert!(pos("A") < pos("a/") && pos("a/") < pos("a/b") && pos("a/b") < pos("a-b"));
    assert!(pos("d/") < pos("d/abs"));
    assert!(!names.contains(&"./") && !names.contains(&""));
    let get = |n: &str| seen[pos(n)].clone();

    let file = get("d/file");
    assert_eq!(
        (file.kind, file.mode, file.uid, file.gid),
        (b'0', 0o644, 1000, 1001)
    );
    // A value holding a newline: written by its length prefix (checked raw, as the tar
    // crate's reader cannot parse it; GNU tar and our reader can, see the round trips).
    let rec = b" SCHILY.xattr.user.note=line1\nkey=value\n";
    assert!(bytes.windows(rec.len()).any(|w| w == rec));
    assert_eq!(
        get("d/sub/").xattrs,
        vec![("user.bin".into(), vec![0, 1, 2, 255])]
    );
    assert_eq!(get("d/suid").mode, 0o4755);
    assert_eq!(get("d/suid").xattrs[0].0, "security.capability");
    assert_eq!(get("d/sticky/").mode, 0o1777);
    assert_eq!(get("d/link").kind, b'2');
    assert_eq!(get("d/link").link.as_deref(), Some("file"));
    assert_eq!(
        get("d/abs").xattrs,
        vec![("trusted.onlink".into(), b"x".to_vec())]
    );
    assert_eq!((get("d/dangling").uid, get("d/dangling").gid), (5, 6));
    // First name in walk order holds the data, the others link to it.
    assert_eq!(get("d/hard0").kind, b'0');
    assert_eq!(get("d/hard0").size, 12);
    assert_eq!(get("d/hard1").kind, b'1');
    assert_eq!(get("d/hard1").link.as_deref(), Some("d/hard0"));
    assert_eq!(get("d/sub/hard2").link.as_deref(), Some("d/hard0"));
    assert_eq!(get("d/fifo").kind, b'6');
    assert_eq!(get("d/null").kind, b'3');
    assert_eq!(get("d/loop9").kind, b'4');
    assert_eq!(get("sparse").kind, b'0');
    assert_eq!(get("sparse").size, 3 << 20);
    assert_eq!((get("bigid").uid, get("bigid").gid), (3_000_000, 4_000_000));
    assert_eq!(get("longlink").link.unwrap(), "t".repeat(300));
    assert!(names.contains(&"ünïcødé ✓"));

    // Raw header checks: Go's USTAR layout, no GNU magic anywhere, empty uname/gname.
    let mut off = 0;
    let mut pax_headers = 0;
    while off + 512 <= bytes.len() {
        let h = &bytes[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        assert_eq!(&h[257..265], b"ustar\x0000", "USTAR magic at {off}");
        assert_eq!(
            &h[154..156],
            b"\0 ",
            "Go-style checksum terminator at {off}"
        );
        assert!(h[265..329].iter().all(|&b| b == 0), "uname/gname empty");
        let size = u64::from_str_radix(
            std::str::from_utf8(&h[124..135])
                .unwrap()
                .trim_start_matches('0')
                .trim(),
            8,
        )
        .unwrap_or(0);
        if h[156] == b'x' {
            pax_headers += 1;
        } else if h[156] != b'3' && h[156] != b'4' {
            assert_eq!(&h[329..345], b"0000000\x000000000\x00".as_slice());
        }
        let data = if matches!(h[156], b'0' | b'x') {
            size
        } else {
            0
        };
        off += 512 + data.div_ceil(512) as usize * 512;
    }
    assert!(pax_headers >= 5, "long names, big ids and xattrs need PAX");
}

#[test]
fn round_trip_commit_apply_commit() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let dst = t.path().join("dst");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&dst).unwrap();
    rich_tree(&src);
    let opts = CommitOptions::default();
    let (d1, bytes) = commit_bytes(&src, &opts);
    let info = layer::apply(&bytes[..], &dst, &ApplyOptions::default()).unwrap();
    assert_eq!(info.diff_id, d1, "apply hashes the stream it reads");
    assert_eq!(info.size, bytes.len() as u64);
    let (d2, bytes2) = commit_bytes(&dst, &opts);
    if d1 != d2 {
        let a = list_tar(&bytes);
        let b = list_tar(&bytes2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y);
        }
        panic!("digests differ: {d1} vs {d2}");
    }
    assert_eq!(tree(&src), tree(&dst));
    let mut note = [0u8; 64];
    let n = rustix::fs::lgetxattr(dst.join("d/file"), "user.note", &mut note[..]).unwrap();
    assert_eq!(&note[..n], b"line1\nkey=value\n");
    // Hard links really are links.
    let h1 = fs::metadata(dst.join("d/hard1")).unwrap();
    let h2 = fs::metadata(dst.join("d/sub/hard2")).unwrap();
    assert_eq!(h1.ino(), h2.ino());
    assert_eq!(h1.nlink(), 3);
}

#[test]
fn gnu_tar_extracts_our_layer_to_the_same_tree() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let dst = t.path().join("dst");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&dst).unwrap();
    rich_tree(&src);
    let (d1, bytes) = commit_bytes(&src, &CommitOptions::default());
    let file = t.path().join("layer.tar");
    fs::write(&file, &bytes).unwrap();
    // GNU tar reads our PAX headers, xattrs included.
    run(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-xpf",
            file.to_str().unwrap(),
            "-C",
            dst.to_str().unwrap(),
        ],
    );
    assert_eq!(tree(&src), tree(&dst));
    let (d2, _) = commit_bytes(&dst, &CommitOptions::default());
    assert_eq!(d1, d2, "GNU tar's extraction commits to the same layer");
}

#[test]
fn commit_refuses_a_missing_or_non_directory_source() {
    let t = tempfile::tempdir().unwrap();
    let err = layer::commit(
        &t.path().join("nope"),
        &CommitOptions::default(),
        Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    fs::write(t.path().join("f"), b"").unwrap();
    assert!(layer::commit(&t.path().join("f"), &CommitOptions::default(), Vec::new()).is_err());
}

#[test]
fn empty_directory_is_two_zero_blocks() {
    let t = tempfile::tempdir().unwrap();
    let (d, bytes) = commit_bytes(t.path(), &CommitOptions::default());
    assert_eq!(bytes, vec![0u8; 1024]);
    // sha256 of 1024 zero bytes: the well-known empty layer diffID.
    assert_eq!(
        d,
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
}
