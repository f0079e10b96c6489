use super::*;
use crate::image::{Descriptor, ImageConfig};
use image::{History, RootFs, RunConfig, MEDIA_OCI_LAYER};
use std::io::Write;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("root")).unwrap();
    (dir, s)
}

fn layer(s: &Writer, content: &[u8]) -> Descriptor {
    let mut i = s.ingest().unwrap();
    i.write_all(content).unwrap();
    let (digest, size) = i.commit(None).unwrap();
    Descriptor {
        media_type: MEDIA_OCI_LAYER.into(),
        digest,
        size,
        annotations: None,
        platform: None,
    }
}

fn config_for(layers: &[Descriptor], created_by: &str) -> Vec<u8> {
    let c = ImageConfig {
        created: Some("2026-11-26T00:00:00Z".into()),
        architecture: "amd64".into(),
        os: "linux".into(),
        config: RunConfig {
            cmd: Some(vec!["sh".into()]),
            ..RunConfig::default()
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|l| l.digest.clone()).collect(),
        },
        history: vec![History {
            created_by: Some(created_by.into()),
            ..History::default()
        }],
        ..ImageConfig::default()
    };
    serde_json::to_vec(&c).unwrap()
}

fn image(s: &Writer, content: &[u8]) -> Image {
    let l = layer(s, content);
    let cfg = config_for(std::slice::from_ref(&l), "test");
    s.put_image(&cfg, vec![l]).unwrap()
}

#[test]
fn layout_files_exist() {
    let (_d, s) = store();
    let layout = fs::read_to_string(s.root().join("oci-layout")).unwrap();
    assert!(layout.contains("1.0.0"));
    let idx: Index =
        serde_json::from_slice(&fs::read(s.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(idx.schema_version, 2);
}

#[test]
fn blobs_are_verified() {
    let (_d, s) = store();
    let d = s.lock_shared().unwrap().write_blob(b"hello").unwrap();
    assert_eq!(s.read_blob(&d).unwrap(), b"hello");
    fs::write(s.blob_path(&d), b"jello").unwrap();
    assert!(matches!(s.read_blob(&d), Err(Error::Corrupt { .. })));
    let mut r = s.open_blob(&d).unwrap();
    let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    let missing = Digest::of(b"nope");
    assert!(matches!(s.read_blob(&missing), Err(Error::MissingBlob(_))));
}

#[test]
fn ingest_rejects_wrong_digest_and_leaves_nothing() {
    let (_d, s) = store();
    let w = s.lock_shared().unwrap();
    let mut i = w.ingest().unwrap();
    i.write_all(b"abc").unwrap();
    let wrong = Digest::of(b"abd");
    assert!(matches!(i.commit(Some(&wrong)), Err(Error::Corrupt { .. })));
    assert!(!s.has_blob(&wrong));
    assert!(!s.has_blob(&Digest::of(b"abc")));
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    // A dropped ingest leaves no temp file either.
    let mut i = w.ingest().unwrap();
    i.write_all(b"x").unwrap();
    drop(i);
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn refs_tag_resolve_remove() {
    let (_d, s) = store();
    let w = s.lock_shared().unwrap();
    let img = image(&w, b"layer-1");
    let r = Reference::parse("busybox").unwrap();
    assert_eq!(w.set_ref(&r, &img).unwrap(), None);
    assert_eq!(
        s.refs().unwrap().get("docker.io/library/busybox:latest"),
        Some(&img.manifest_digest)
    );
    assert_eq!(
        s.resolve("busybox").unwrap().manifest_digest,
        img.manifest_digest
    );
    assert_eq!(
        s.resolve("docker.io/library/busybox:latest")
            .unwrap()
            .manifest_digest,
        img.manifest_digest
    );
    assert_eq!(
        s.resolve(img.id().short()).unwrap().manifest_digest,
        img.manifest_digest
    );
    assert_eq!(
        s.resolve(img.id().as_str()).unwrap().manifest_digest,
        img.manifest_digest
    );
    assert!(matches!(s.resolve("nosuch"), Err(Error::NoSuchImage(_))));
    let img2 = image(&w, b"layer-2");
    assert_eq!(
        w.set_ref(&r, &img2).unwrap(),
        Some(img.manifest_digest.clone())
    );
    assert_eq!(
        w.remove_ref(&r).unwrap(),
        Some(img2.manifest_digest.clone())
    );
    assert_eq!(w.remove_ref(&r).unwrap(), None);
    assert!(s.refs().unwrap().is_empty());
}

#[test]
fn set_ref_refuses_incomplete_image() {
    let (_d, s) = store();
    let w = s.lock_shared().unwrap();
    let img = image(&w, b"layer");
    fs::remove_file(s.blob_path(&img.manifest.layers[0].digest)).unwrap();
    let err = w
        .set_ref(&Reference::parse("x").unwrap(), &img)
        .unwrap_err();
    assert!(matches!(err, Error::MissingBlob(_)));
    assert!(s.refs().unwrap().is_empty());
}

#[test]
fn prune_keeps_reachable_and_roots() {
    let (_d, s) = store();
    let w = s.lock_shared().unwrap();
    let kept = image(&w, b"kept");
    w.set_ref(&Reference::parse("kept").unwrap(), &kept)
        .unwrap();
    let gone = image(&w, b"gone");
    let rooted = layer(&w, b"cache record layer");
    w.set_root("cache", "rec1", std::slice::from_ref(&rooted.digest))
        .unwrap();
    let gz = w.write_blob(b"pretend gzip of kept").unwrap();
    w.record_compressed(&kept.manifest.layers[0].digest, Compression::Gzip, &gz, 20)
        .unwrap();
    // Snapshots are keyed by diff id (one layer's diff each).
    fs::create_dir_all(s.snapshot_path(&kept.config.rootfs.diff_ids[0])).unwrap();
    fs::create_dir_all(s.snapshot_path(&gone.config.rootfs.diff_ids[0]).join("sub")).unwrap();
    fs::write(s.root().join("tmp/leftover"), b"x").unwrap();
    drop(w);

    let rep = s.lock_exclusive().unwrap().prune().unwrap();
    assert_eq!(rep.blobs.len(), 3, "{rep:?}"); // gone's manifest, config, layer
    assert!(!s.has_blob(&gone.manifest_digest));
    assert!(s.has_blob(&kept.manifest_digest));
    assert!(s.has_blob(&rooted.digest));
    assert!(s.has_blob(&gz));
    assert_eq!(
        s.compressed(&kept.manifest.layers[0].digest, Compression::Gzip)
            .unwrap(),
        Some((gz, 20))
    );
    assert!(s.snapshot_path(&kept.config.rootfs.diff_ids[0]).exists());
    assert!(!s.snapshot_path(&gone.config.rootfs.diff_ids[0]).exists());
    assert_eq!(rep.snapshots.len(), 1);
    assert!(!s.root().join("tmp/leftover").exists());
    let x = s.lock_exclusive().unwrap();
    x.remove_root("cache", "rec1").unwrap();
    let rep = x.prune().unwrap();
    assert_eq!(rep.blobs.len(), 1);
    assert!(s.fsck().unwrap().is_empty());
}

#[test]
fn fsck_finds_corruption() {
    let (_d, s) = store();
    let w = s.lock_shared().unwrap();
    let img = image(&w, b"data");
    w.set_ref(&Reference::parse("x").unwrap(), &img).unwrap();
    assert!(s.fsck().unwrap().is_empty());
    fs::write(s.blob_path(&img.manifest.layers[0].digest), b"dat4").unwrap();
    let p = s.fsck().unwrap();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("corrupt"), "{p:?}");
    fs::remove_file(s.blob_path(&img.manifest.config.digest)).unwrap();
    let p = s.fsck().unwrap();
    assert!(p[0].contains("missing"), "{p:?}");
}

#[test]
fn concurrent_writers_and_prune_stay_consistent() {
    let (_d, s) = store();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = s.clone();
            scope.spawn(move || {
                for i in 0..25 {
                    let w = s.lock_shared().unwrap();
                    let img = image(&w, format!("t{t}-i{i}").as_bytes());
                    let r = Reference::parse(&format!("t{t}:i{i}")).unwrap();
                    w.set_ref(&r, &img).unwrap();
                    if i % 2 == 0 {
                        w.remove_ref(&r).unwrap();
                    }
                }
            });
        }
        let s2 = s.clone();
        scope.spawn(move || {
            for _ in 0..20 {
                s2.lock_exclusive().unwrap().prune().unwrap();
            }
        });
    });
    assert!(s.fsck().unwrap().is_empty());
    assert_eq!(s.refs().unwrap().len(), 4 * 12);
}

#[test]
fn timestamps_are_written_as_go_writes_them() {
    use crate::go_rfc3339_nano as g;
    assert_eq!(
        g("2026-11-26T14:10:00.123456780Z"),
        "2026-11-26T14:10:00.12345678Z"
    );
    assert_eq!(
        g("2026-11-26T14:10:00.100000000Z"),
        "2026-11-26T14:10:00.1Z"
    );
    assert_eq!(g("2026-11-26T14:10:00.000000000Z"), "2026-11-26T14:10:00Z");
    assert_eq!(
        g("2026-11-26T14:10:00.123456789Z"),
        "2026-11-26T14:10:00.123456789Z"
    );
    assert_eq!(g("2026-11-26T14:10:00Z"), "2026-11-26T14:10:00Z");
    assert_eq!(
        g("2026-11-26T14:10:00.50+01:00"),
        "2026-11-26T14:10:00.5+01:00"
    );
}

#[test]
fn root_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/root");
    let s = Store::open(&root).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(s.tightened_from(), None);

    // An existing store open to others is tightened once, and says from what.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let s = Store::open(&root).unwrap();
    assert_eq!(s.tightened_from(), Some(0o755));
    assert_eq!(mode(&root), 0o700);
    assert_eq!(Store::open(&root).unwrap().tightened_from(), None);

    // Setuid/setgid/sticky bits on the root go too; an owner-only mode stays as it is.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o2750)).unwrap();
    assert_eq!(Store::open(&root).unwrap().tightened_from(), Some(0o2750));
    assert_eq!(mode(&root), 0o700);
    fs::set_permissions(&root, fs::Permissions::from_mode(0o500)).unwrap();
    assert_eq!(Store::open(&root).unwrap().tightened_from(), None);
    assert_eq!(mode(&root), 0o500);
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();

    // A file where the root should be is an error, not a store.
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let Err(e) = Store::open(&file) else {
        panic!("a file is no store")
    };
    assert!(e.to_string().contains("is not a directory"), "{e}");
}

/// A reaped child's pid, with the start time it had (a gone owner).
fn gone_owner() -> Owner {
    let mut c = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .unwrap();
    let pid = c.id();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start: u64 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    Owner { pid, start }
}

#[test]
fn taking_the_lock_sweeps_gone_owners_temporaries() {
    let (_d, s) = store();
    let g = gone_owner();
    let dead = s.root().join(format!("tmp/run.{}.{}.0", g.pid, g.start));
    fs::create_dir_all(dead.join("upper")).unwrap();
    fs::write(dead.join("upper/big"), vec![0u8; 4096]).unwrap();
    let dead_index = s
        .root()
        .join(format!(".index.json.tmp.{}.{}.3", g.pid, g.start));
    fs::write(&dead_index, b"{").unwrap();
    let w = s.lock_shared().unwrap();
    let live = w.temp_dir("run").unwrap();
    let ingest = w.ingest().unwrap();
    assert!(!dead.exists());
    // Taken again (a second writer of this process), the lock spares the live entries.
    let _l = s.lock_shared().unwrap();
    assert!(!dead.exists());
    assert!(!dead_index.exists());
    assert!(live.path().is_dir());
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 2);
    drop(ingest);
    drop(live);
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn prune_reports_the_temporaries_it_freed() {
    let (_d, s) = store();
    let g = gone_owner();
    // A temp dir outlives its writer (a live owner's entry is spared by name, not lock).
    let live = s.lock_shared().unwrap().temp_dir("container").unwrap();
    let name = format!("ingest.{}.{}.9", g.pid, g.start);
    fs::write(s.root().join("tmp").join(&name), vec![1u8; 3000]).unwrap();
    fs::write(live.path().join("f"), b"kept").unwrap();
    let rep = s.lock_exclusive().unwrap().prune().unwrap();
    assert_eq!(rep.temporaries.entries, vec![name]);
    assert_eq!(rep.temporaries.bytes, 3000);
    assert_eq!(rep.bytes, 3000);
    assert!(live.path().join("f").exists());
}

/// Writers at work (each with a temp dir, an ingest and the lock taken again and again)
/// while another thread sweeps without pause: no live entry is ever removed.
#[test]
fn concurrent_sweeps_never_touch_live_temporaries() {
    let (_d, s) = store();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sweeper = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(s.sweep_tmp(), Swept::default());
                n += 1;
            }
            n
        });
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                scope.spawn(move || {
                    for i in 0..40 {
                        let w = s.lock_shared().unwrap();
                        let d = w.temp_dir("run").unwrap();
                        fs::write(d.path().join("f"), format!("{t}-{i}")).unwrap();
                        let mut ing = w.ingest().unwrap();
                        ing.write_all(format!("blob {t} {i}").as_bytes()).unwrap();
                        let _l = s.lock_shared().unwrap();
                        assert_eq!(
                            fs::read_to_string(d.path().join("f")).unwrap(),
                            format!("{t}-{i}")
                        );
                        ing.commit(None).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(sweeper.join().unwrap() > 0);
    });
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

/// A gone owner's entry that holds a mount point (in this mount namespace) is left alone:
/// a sweep never descends into a mounted filesystem. Needs root (mounts a tmpfs).
#[test]
fn a_mounted_entry_is_not_swept() {
    let (_d, s) = store();
    let g = gone_owner();
    let dead = s.root().join(format!("tmp/view.{}.{}.0", g.pid, g.start));
    let mnt = dead.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "none", mnt.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(ok.success());
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let u = Umount(mnt.clone());
    fs::write(mnt.join("inside"), b"on the tmpfs").unwrap();
    assert_eq!(s.sweep_tmp(), Swept::default());
    assert!(mnt.join("inside").exists());
    drop(u);
    let swept = s.sweep_tmp();
    assert_eq!(
        swept.entries,
        vec![dead.file_name().unwrap().to_string_lossy()]
    );
    assert!(!dead.exists());
}

/// An atomic write killed between create and rename leaves a hidden temp file beside its
/// target: prune removes a gone owner's, in roots/ and memo/ too.
#[test]
fn prune_removes_gone_owners_atomic_write_temporaries() {
    let (_d, s) = store();
    let g = gone_owner();
    let w = s.lock_shared().unwrap();
    let img = image(&w, b"kept");
    w.set_ref(&Reference::parse("kept").unwrap(), &img).unwrap();
    w.set_root("cache", "rec", std::slice::from_ref(&img.manifest_digest))
        .unwrap();
    w.memo_put(&img.manifest_digest, "m").unwrap();
    drop(w);
    let leftovers = [
        s.root()
            .join(format!("roots/cache/.rec.tmp.{}.{}.1", g.pid, g.start)),
        s.root().join(format!(
            "memo/.{}.tmp.{}.{}.2",
            img.manifest_digest.hex(),
            g.pid,
            g.start
        )),
    ];
    for l in &leftovers {
        fs::write(l, b"half").unwrap();
    }
    let mine = s.root().join("roots/cache").join(temp_name(".x.tmp"));
    fs::write(&mine, b"being written").unwrap();
    let rep = s.lock_exclusive().unwrap().prune().unwrap();
    assert_eq!(rep.temporaries.entries.len(), 2, "{rep:?}");
    assert_eq!(rep.temporaries.bytes, 8);
    for l in &leftovers {
        assert!(!l.exists(), "{}", l.display());
    }
    assert!(mine.exists());
    assert!(s.root().join("roots/cache/rec").exists());
    assert_eq!(s.memo_get(&img.manifest_digest).as_deref(), Some("m"));
    assert!(s.fsck().unwrap().is_empty());
}

/// Prune waits for a writer: a blob written but not yet referenced survives a prune
/// started meanwhile, which finishes only once the writer is gone.
#[test]
fn prune_waits_for_a_writer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (_d, s) = store();
    let w = s.lock_shared().unwrap();
    let img = image(&w, b"not yet tagged");
    let pruned = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let gc = scope.spawn(|| {
            let rep = s.lock_exclusive().unwrap().prune().unwrap();
            pruned.store(true, Ordering::SeqCst);
            rep
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!pruned.load(Ordering::SeqCst), "prune ran under a writer");
        assert!(s.has_blob(&img.manifest_digest));
        w.set_ref(&Reference::parse("late").unwrap(), &img).unwrap();
        drop(w);
        let rep = gc.join().unwrap();
        assert!(pruned.load(Ordering::SeqCst));
        assert!(rep.blobs.is_empty(), "{rep:?}");
    });
    assert!(s.has_blob(&img.manifest_digest));
    assert!(s.fsck().unwrap().is_empty());
}

#[test]
fn stat_caches_survive_prune_and_fsck_and_go_with_the_cache() {
    let (_d, s) = store();
    let dir = Path::new("/some/context\nwith a newline");
    assert_eq!(s.stat_cache_get(dir), None);
    let w = s.lock_shared().unwrap();
    w.stat_cache_put(dir, b"bytes").unwrap();
    w.stat_cache_put(dir, b"newer").unwrap();
    drop(w);
    assert_eq!(s.stat_cache_get(dir).as_deref(), Some(&b"newer"[..]));
    assert_eq!(s.stat_cache_get(Path::new("/other")), None);
    let p = s.stat_cache_path(dir);
    assert!(p.starts_with(s.root().join("cache/stat")));
    // Nothing left in tmp/, nothing beside the file.
    assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    assert!(s.fsck().unwrap().is_empty());
    let x = s.lock_exclusive().unwrap();
    let rep = x.prune().unwrap();
    assert!(rep.temporaries.entries.is_empty());
    assert_eq!(s.stat_cache_get(dir).as_deref(), Some(&b"newer"[..]));
    x.drop_cache(None).unwrap();
    drop(x);
    assert_eq!(s.stat_cache_get(dir), None);
    assert!(s.fsck().unwrap().is_empty());
}

fn image_of(s: &Writer, content: &[u8], arch: &str) -> Image {
    let l = layer(s, content);
    let mut c: ImageConfig =
        serde_json::from_slice(&config_for(std::slice::from_ref(&l), "test")).unwrap();
    c.architecture = arch.into();
    s.put_image(&serde_json::to_vec(&c).unwrap(), vec![l])
        .unwrap()
}

#[test]
fn an_index_is_a_ref_its_images_live_by_and_the_host_picks_from() {
    let (_d, s) = store();
    let w = s.lock_shared().unwrap();
    let amd = image_of(&w, b"amd64 bytes", "amd64");
    let arm = image_of(&w, b"arm64 bytes", "arm64");
    let ix = w.put_index(&[&amd, &arm]).unwrap();
    assert!(
        w.put_index(&[&amd, &amd]).is_err(),
        "one image per platform"
    );
    let name = Reference::parse("multi").unwrap();
    w.set_ref_index(&name, &ix).unwrap();
    drop(w);

    let d = s.refs().unwrap()["docker.io/library/multi:latest"].clone();
    assert_eq!(d, ix.digest);
    let raw: serde_json::Value = serde_json::from_slice(&s.read_blob(&d).unwrap()).unwrap();
    assert_eq!(raw["mediaType"], image::MEDIA_OCI_INDEX);
    assert_eq!(raw["manifests"][1]["platform"]["architecture"], "arm64");
    let host = Platform::host();
    let want = if host.architecture == "arm64" {
        &arm
    } else {
        &amd
    };
    assert_eq!(
        s.resolve("multi").unwrap().manifest_digest,
        want.manifest_digest
    );
    let arm64 = Platform::parse("linux/arm64").unwrap();
    assert_eq!(
        s.image_for(&d, &arm64).unwrap().manifest_digest,
        arm.manifest_digest
    );
    let e = s
        .image_for(&d, &Platform::parse("linux/s390x").unwrap())
        .unwrap_err();
    assert!(
        e.to_string().contains("no image for linux/s390x") && e.to_string().contains("linux/arm64"),
        "{e}"
    );
    // By id, each image of the index is found.
    assert_eq!(
        s.resolve(&arm.id().hex()[..12]).unwrap().manifest_digest,
        arm.manifest_digest
    );

    // prune keeps the index and both images; fsck checks both.
    let rep = s.lock_exclusive().unwrap().prune().unwrap();
    assert!(rep.blobs.is_empty(), "{rep:?}");
    assert!(s.fsck().unwrap().is_empty());
    std::fs::write(s.blob_path(&arm.manifest.layers[0].digest), b"corrupt").unwrap();
    let problems = s.fsck().unwrap();
    assert!(
        problems.iter().any(|p| p.contains("(linux/arm64)")),
        "{problems:?}"
    );

    // Tagging the index's digest copies the index, not the host's image.
    let w = s.lock_shared().unwrap();
    w.set_ref_to(&Reference::parse("copy").unwrap(), &d)
        .unwrap();
    assert_eq!(s.refs().unwrap()["docker.io/library/copy:latest"], d);
    w.remove_ref(&name).unwrap();
    w.remove_ref(&Reference::parse("copy").unwrap()).unwrap();
    drop(w);
    let rep = s.lock_exclusive().unwrap().prune().unwrap();
    assert_eq!(
        rep.blobs.len(),
        7,
        "index + 2 × (manifest, config, layer): {rep:?}"
    );
}

#[test]
fn resolve_platform_picks_from_an_index_and_refuses_another_platform() {
    let (_d, s) = store();
    let w = s.lock_shared().unwrap();
    let amd = image_of(&w, b"amd64 only", "amd64");
    let arm = image_of(&w, b"arm64 only", "arm64");
    let ix = w.put_index(&[&amd, &arm]).unwrap();
    w.set_ref_index(&Reference::parse("both").unwrap(), &ix)
        .unwrap();
    w.set_ref(&Reference::parse("armonly").unwrap(), &arm)
        .unwrap();
    drop(w);
    let p = |s: &str| Platform::parse(s).unwrap();
    assert_eq!(s.ref_target("both").unwrap(), Some(ix.digest.clone()));
    assert_eq!(s.ref_target("nothere").unwrap(), None);
    let got = s.resolve_platform("both", Some(&p("linux/arm64"))).unwrap();
    assert_eq!(got.manifest_digest, arm.manifest_digest);
    let got = s.resolve_platform("both", Some(&p("linux/amd64"))).unwrap();
    assert_eq!(got.manifest_digest, amd.manifest_digest);
    let e = s
        .resolve_platform("armonly", Some(&p("linux/amd64")))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "image with reference armonly was found but does not match the specified platform: \
         wanted linux/amd64, actual: linux/arm64"
    );
    // By id, the platform is checked too.
    let id = arm.id().hex()[..12].to_string();
    assert!(s.resolve_platform(&id, Some(&p("linux/arm64"))).is_ok());
    assert!(s.resolve_platform(&id, Some(&p("linux/amd64"))).is_err());
    assert!(s.resolve_platform("both", Some(&p("linux/s390x"))).is_err());
}
