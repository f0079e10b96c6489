use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::StatCache;
use crate::select::Entry;
use crate::tree::FileKind;
use crate::{digest_placed, place, resolve_destination, select, Context, DestKind};

/// A cache whose hashing happens "a minute from now": every file made by a test is old
/// enough for its record to be kept.
fn later_cache(bytes: &[u8]) -> StatCache {
    let mut c = StatCache::from_bytes(bytes);
    c.clock = || SystemTime::now() + Duration::from_secs(60);
    c
}

/// The file at `p` as the walk sees it now.
fn entry(p: &Path) -> Entry {
    Entry {
        source: p.to_path_buf(),
        rel: Default::default(),
        kind: FileKind::File,
        metadata: (&fs::symlink_metadata(p).unwrap()).into(),
        link_target: None,
    }
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

#[test]
fn an_unchanged_file_is_not_opened_again() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f");
    fs::write(&p, b"hello").unwrap();
    let e = entry(&p);
    let a = later_cache(b"");
    assert_eq!(a.file_digest(&e).unwrap(), sha(b"hello"));
    // Within one cache (one build), a second lookup is the memo.
    assert_eq!(a.file_digest(&e).unwrap(), sha(b"hello"));
    assert_eq!(a.hashed(), 1);
    let saved = a.to_bytes().expect("a new record to save");
    // Loaded again: a hit, without opening the file — it is gone, and the entry (the
    // walk's metadata) still matches the record.
    fs::remove_file(&p).unwrap();
    let b = StatCache::from_bytes(&saved);
    assert_eq!(b.file_digest(&e).unwrap(), sha(b"hello"));
    assert_eq!(b.hashed(), 0);
    // The same records again: nothing to save.
    assert_eq!(b.to_bytes(), None);
    // With an empty cache the missing file is an error: the hit above read nothing.
    assert!(StatCache::new().file_digest(&e).is_err());
}

#[test]
fn a_changed_file_with_size_and_mtime_restored_is_read_again() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f");
    fs::write(&p, b"version-1").unwrap();
    let before = entry(&p);
    let a = later_cache(b"");
    assert_eq!(a.file_digest(&before).unwrap(), sha(b"version-1"));
    let saved = a.to_bytes().unwrap();
    // Past the filesystem's timestamp tick, then new content of the same size, and the
    // mtime set back (as `touch -d` or a careless tool would): only the ctime tells.
    std::thread::sleep(Duration::from_millis(50));
    let mtime = fs::symlink_metadata(&p).unwrap().modified().unwrap();
    fs::write(&p, b"version-2").unwrap();
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = entry(&p);
    assert_eq!(after.metadata.size(), before.metadata.size());
    assert_eq!(
        (after.metadata.mtime(), after.metadata.mtime_nsec()),
        (before.metadata.mtime(), before.metadata.mtime_nsec())
    );
    let b = later_cache(&saved);
    assert_eq!(b.file_digest(&after).unwrap(), sha(b"version-2"));
    assert_eq!(b.hashed(), 1);
    // The record is replaced: saved, it answers with the new content.
    let c = StatCache::from_bytes(&b.to_bytes().unwrap());
    assert_eq!(c.file_digest(&after).unwrap(), sha(b"version-2"));
    assert_eq!(c.hashed(), 0);
}

#[test]
fn a_chmod_is_a_change() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f");
    fs::write(&p, b"x").unwrap();
    let a = later_cache(b"");
    a.file_digest(&entry(&p)).unwrap();
    let saved = a.to_bytes().unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    let b = StatCache::from_bytes(&saved);
    b.file_digest(&entry(&p)).unwrap();
    assert_eq!(b.hashed(), 1);
}

#[test]
fn a_recently_changed_file_is_not_kept() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f");
    fs::write(&p, b"fresh").unwrap();
    let e = entry(&p);
    // Hashed now: its ctime is not 2 s before the hashing, so its record is not kept...
    let a = StatCache::new();
    assert_eq!(a.file_digest(&e).unwrap(), sha(b"fresh"));
    assert_eq!(a.file_digest(&e).unwrap(), sha(b"fresh"));
    assert_eq!(a.hashed(), 1, "but it serves the build that hashed it");
    assert_eq!(a.to_bytes(), None);
    // ...and it replaces a loaded record it does not match, which is dropped.
    let old = later_cache(b"");
    old.file_digest(&e).unwrap();
    let saved = old.to_bytes().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    fs::write(&p, b"FRESH").unwrap();
    let e = entry(&p);
    let b = StatCache::from_bytes(&saved);
    assert_eq!(b.file_digest(&e).unwrap(), sha(b"FRESH"));
    let c = StatCache::from_bytes(&b.to_bytes().expect("the stale record is dropped"));
    assert_eq!(c.file_digest(&e).unwrap(), sha(b"FRESH"));
    assert_eq!(c.hashed(), 1);
    // Hashed 2 s after its ctime, the same file is kept.
    let d = later_cache(b"");
    d.file_digest(&e).unwrap();
    let e2 = StatCache::from_bytes(&d.to_bytes().unwrap());
    e2.file_digest(&e).unwrap();
    assert_eq!(e2.hashed(), 0);
}

#[test]
fn a_corrupt_or_foreign_cache_is_empty() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f");
    fs::write(&p, b"content").unwrap();
    let e = entry(&p);
    let a = later_cache(b"");
    a.file_digest(&e).unwrap();
    let good = a.to_bytes().unwrap();
    let hits = |bytes: &[u8]| {
        let c = StatCache::from_bytes(bytes);
        assert_eq!(c.file_digest(&e).unwrap(), sha(b"content"));
        c.hashed() == 0
    };
    assert!(hits(&good));
    // Every truncation, every flipped bit of every byte, foreign and empty files.
    for n in 0..good.len() {
        assert!(!hits(&good[..n]), "truncated to {n}");
    }
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut b = good.clone();
            b[i] ^= 1 << bit;
            assert!(!hits(&b), "byte {i} bit {bit}");
        }
    }
    for foreign in [&b""[..], b"\0", b"strata/stat-cache/v2\n", &[0xff; 300]] {
        assert!(!hits(foreign));
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(!hits(&longer));
}

#[test]
fn any_path_bytes_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let names: [&[u8]; 3] = [b"new\nline", b"caf\xe9", b"tab\there"];
    let a = later_cache(b"");
    let mut entries = Vec::new();
    for n in names {
        let p = t.path().join(std::ffi::OsStr::from_bytes(n));
        fs::write(&p, n).unwrap();
        let e = entry(&p);
        assert_eq!(a.file_digest(&e).unwrap(), sha(n));
        entries.push((e, sha(n)));
    }
    let b = StatCache::from_bytes(&a.to_bytes().unwrap());
    for (e, d) in &entries {
        assert_eq!(b.file_digest(e).unwrap(), *d);
    }
    assert_eq!(b.hashed(), 0);
}

#[test]
fn the_digest_is_the_same_with_and_without_a_cache() {
    let t = tempfile::tempdir().unwrap();
    for (n, body) in [("a", "1"), ("d/b", "22"), ("d/c", "333")] {
        let p = t.path().join(n);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }
    let c = Context::load(t.path(), None).unwrap();
    let s = select(&c, &["."], &Default::default()).unwrap();
    let p = place(&resolve_destination("/x/", "/"), &s, |_| DestKind::Missing).unwrap();
    let cold = StatCache::new();
    let d0 = digest_placed(&p, &cold).unwrap();
    assert!(d0.starts_with("sha256:") && d0.len() == 71);
    // The selection's digest (by source path) reads nothing more in the same build.
    s.digest(&cold).unwrap();
    assert_eq!(cold.hashed(), 3);
    let warm = later_cache(b"");
    assert_eq!(digest_placed(&p, &warm).unwrap(), d0);
    let loaded = StatCache::from_bytes(&warm.to_bytes().unwrap());
    assert_eq!(digest_placed(&p, &loaded).unwrap(), d0);
    assert_eq!(loaded.hashed(), 0);
    // A record whose stat matches but whose digest was another's would change the digest:
    // the cache's answer is what enters it.
    let bytes = warm.to_bytes().unwrap();
    let forged = StatCache::from_bytes(&bytes);
    {
        let mut inner = forged.lock();
        for u in inner.records.values_mut() {
            u.record.digest = [0; 32];
        }
    }
    assert_ne!(digest_placed(&p, &forged).unwrap(), d0);
}
