//! Compression: validity (our decoders, gzip(1), zstd(1)), digests, determinism, and the
//! whole pipeline commit → compress → decompress → apply.

mod common;

use common::*;
use layer::{ApplyOptions, CommitOptions, CompressOptions, Compression, Decompressor};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

/// Deterministic test data: compressible text, incompressible noise, zeros.
fn data(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        let region = (out.len() / 300_000) % 3;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(match region {
            0 => b"the quick brown fox jumps over the lazy dog\n"[out.len() % 44],
            1 => x as u8,
            _ => 0,
        });
    }
    out
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Pipes `input` through a command and returns its stdout (panics on failure).
fn pipe(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn gzip_is_one_valid_member_for_every_size() {
    for len in [
        0,
        1,
        1000,
        1 << 20,
        (1 << 20) + 1,
        (2 << 20) - 1,
        2 << 20,
        3_300_000,
    ] {
        let input = data(len);
        let mut out = Vec::new();
        let info = layer::compress(&input[..], Compression::Gzip, &mut out).unwrap();
        assert_eq!(info.size, out.len() as u64);
        assert_eq!(info.digest, sha(&out));
        // A single-member decoder sees everything: one member, not several.
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back.len(), input.len(), "len {len}");
        assert!(back == input, "content differs at len {len}");
        // gzip(1) checks CRC and length too.
        assert_eq!(pipe("gzip", &["-dc"], &out), input, "gzip -dc, len {len}");
        pipe("gzip", &["-t"], &out);
        // Random regions must not blow up much; text and zeros must shrink.
        if len >= 1 << 20 {
            assert!(
                out.len() < input.len(),
                "len {len}: {} bytes out",
                out.len()
            );
        }
    }
}

#[test]
fn gzip_bytes_do_not_depend_on_worker_count() {
    let input = data(2_300_000);
    let mut outs = Vec::new();
    for workers in [1, 2, 3, 8] {
        let mut out = Vec::new();
        let opts = CompressOptions {
            level: None,
            workers,
        };
        layer::compress_with(&input[..], Compression::Gzip, &opts, &mut out).unwrap();
        outs.push(out);
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
    // Level 1 is valid too, and different.
    let mut fast = Vec::new();
    let opts = CompressOptions {
        level: Some(1),
        workers: 2,
    };
    layer::compress_with(&input[..], Compression::Gzip, &opts, &mut fast).unwrap();
    assert_ne!(fast, outs[0]);
    assert_eq!(pipe("gzip", &["-dc"], &fast), input);
}

#[test]
fn zstd_round_trips_through_zstd_cli_and_our_reader() {
    for len in [0, 4096, 3_000_000] {
        let input = data(len);
        let mut out = Vec::new();
        let info = layer::compress(&input[..], Compression::Zstd, &mut out).unwrap();
        assert_eq!(info.digest, sha(&out));
        assert_eq!(info.size, out.len() as u64);
        assert_eq!(pipe("zstd", &["-dc"], &out), input);
        let mut d = Decompressor::new(&out[..]).unwrap();
        assert_eq!(d.compression(), Some(Compression::Zstd));
        let mut back = Vec::new();
        d.read_to_end(&mut back).unwrap();
        assert!(back == input);
    }
}

#[test]
fn decompressor_detects_by_magic_and_reads_multi_member_gzip() {
    let a = data(100_000);
    let b = data(50_000);
    // Two members from gzip(1) back to back, as some tools write them.
    let mut two = pipe("gzip", &["-c"], &a);
    two.extend(pipe("gzip", &["-c"], &b));
    let mut d = Decompressor::new(&two[..]).unwrap();
    assert_eq!(d.compression(), Some(Compression::Gzip));
    let mut back = Vec::new();
    d.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), a.len() + b.len());
    assert!(back[..a.len()] == a[..] && back[a.len()..] == b[..]);
    // Plain data, including inputs shorter than a magic number.
    for plain in [&b""[..], b"x", b"\x1f", b"plain tar bytes"] {
        let mut d = Decompressor::new(plain).unwrap();
        assert_eq!(d.compression(), None);
        let mut back = Vec::new();
        d.read_to_end(&mut back).unwrap();
        assert_eq!(back, plain);
    }
    // Corrupt gzip is an error, not a panic.
    let mut bad = pipe("gzip", &["-c"], &a);
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    let mut back = Vec::new();
    assert!(Decompressor::new(&bad[..])
        .unwrap()
        .read_to_end(&mut back)
        .is_err());
}

#[test]
fn pipeline_commit_compress_decompress_apply() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/big"), data(2_500_000)).unwrap();
    std::fs::write(src.join("small"), b"s").unwrap();
    std::os::unix::fs::symlink("d/big", src.join("link")).unwrap();
    let (diff_id, tar) = commit_bytes(&src, &CommitOptions::default());
    for c in [Compression::Gzip, Compression::Zstd] {
        let mut blob = Vec::new();
        let info = layer::compress(&tar[..], c, &mut blob).unwrap();
        assert_eq!(info.digest, sha(&blob));
        assert_ne!(info.digest, diff_id);
        let dst = t.path().join(format!("dst-{c:?}"));
        std::fs::create_dir(&dst).unwrap();
        let d = Decompressor::new(&blob[..]).unwrap();
        let applied = layer::apply(d, &dst, &ApplyOptions::default()).unwrap();
        assert_eq!(applied.diff_id, diff_id, "{c:?}");
        assert_eq!(tree(&dst), tree(&src));
    }
}
