use super::*;
use std::fs;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("store")).unwrap();
    (d, s)
}

/// A small rootfs tarball: a directory, a file, a symlink and a hard link.
fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_path("bin/").unwrap();
    h.set_mode(0o755);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    let body = b"#!/bin/sh\necho hi\n";
    let mut h = tar::Header::new_ustar();
    h.set_path("bin/hello").unwrap();
    h.set_mode(0o755);
    h.set_size(body.len() as u64);
    h.set_cksum();
    b.append(&h, &body[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_path("bin/hi").unwrap();
    h.set_link_name("hello").unwrap();
    h.set_size(0);
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Link);
    h.set_path("bin/hello2").unwrap();
    h.set_link_name("bin/hello").unwrap();
    h.set_size(0);
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    b.into_inner().unwrap()
}

fn import(s: &Store, tar: &[u8]) -> Image {
    let opts = ImportOptions {
        created: "2026-11-26T00:00:00Z".into(),
        comment: "Imported from -".into(),
        ..ImportOptions::default()
    };
    import_rootfs(s, tar, &opts, &[]).unwrap()
}

fn save_bytes(s: &Store, img: &Image, name: &str, f: Format) -> Vec<u8> {
    let mut out = Vec::new();
    let item = SaveItem {
        image: img.clone(),
        names: vec![store::Reference::parse(name).unwrap()],
    };
    save(s, &[item], f, layer::Compression::Gzip, &mut out).unwrap();
    out
}

#[test]
fn import_keeps_the_tar_and_counts_docker_size() {
    let (_d, s) = store();
    let tar = rootfs_tar();
    let img = import(&s, &tar);
    assert_eq!(img.config.rootfs.diff_ids, vec![Digest::of(&tar)]);
    assert_eq!(s.read_blob(&img.config.rootfs.diff_ids[0]).unwrap(), tar);
    // file (18 bytes) + symlink target "hello" (5); the hard link counts once.
    assert_eq!(image_size(&s.lock_shared().unwrap(), &img).unwrap(), 23);
    assert_eq!(
        img.config.history[0].comment.as_deref(),
        Some("Imported from -")
    );
}

#[test]
fn gzip_input_is_stored_uncompressed() {
    let (_d, s) = store();
    let tar = rootfs_tar();
    let mut gz = Vec::new();
    layer::compress(&tar[..], layer::Compression::Gzip, &mut gz).unwrap();
    let img = import(&s, &gz);
    assert_eq!(img.config.rootfs.diff_ids, vec![Digest::of(&tar)]);
}

#[test]
fn not_a_tar_is_refused() {
    let (_d, s) = store();
    let opts = ImportOptions::default();
    let err = import_rootfs(
        &s,
        &b"this is not a tarball at all, just some words of text, and more"[..],
        &opts,
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a valid tar"), "{err}");
    let tar = rootfs_tar();
    let err = import_rootfs(&s, &tar[..700], &opts, &[]).unwrap_err();
    assert!(err.to_string().contains("rootfs tarball"), "{err}");
}

#[test]
fn round_trips_are_byte_identical() {
    for format in [Format::Docker, Format::Oci] {
        let (_d, s) = store();
        let img = import(&s, &rootfs_tar());
        let first = save_bytes(&s, &img, "example/app:1", format);
        let (_d2, s2) = store();
        let loaded = load(&s2, &first[..]).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].image.id(), img.id());
        assert_eq!(
            loaded[0].names,
            vec![store::Reference::parse("example/app:1").unwrap()]
        );
        assert_eq!(
            loaded[0].image.config.rootfs.diff_ids,
            img.config.rootfs.diff_ids
        );
        let second = save_bytes(&s2, &loaded[0].image, "example/app:1", format);
        assert!(first == second, "{format:?}: save → load → save differs");
    }
}

#[test]
fn loaded_gzip_blobs_keep_their_digest() {
    let (_d, s) = store();
    let img = import(&s, &rootfs_tar());
    let oci = save_bytes(&s, &img, "x:1", Format::Oci);
    let (gz, _) = save::compressed_layer(
        &s.lock_shared().unwrap(),
        &img.config.rootfs.diff_ids[0],
        layer::Compression::Gzip,
    )
    .unwrap();
    let (_d2, s2) = store();
    load(&s2, &oci[..]).unwrap();
    let kept = s2
        .compressed(&img.config.rootfs.diff_ids[0], store::Compression::Gzip)
        .unwrap()
        .unwrap();
    assert_eq!(kept.0, gz);
}

#[test]
fn corrupt_and_truncated_archives_fail_cleanly() {
    let (_d, s) = store();
    let img = import(&s, &rootfs_tar());
    let good = save_bytes(&s, &img, "x:1", Format::Docker);
    let (_d2, s2) = store();
    // Truncated.
    assert!(load(&s2, &good[..good.len() / 2]).is_err());
    // Not an archive.
    let err = load(&s2, &b"garbage"[..]).unwrap_err();
    assert!(!err.to_string().is_empty());
    // A layer whose content does not match the config's diff_id.
    let mut bad = good.clone();
    let pos = bad
        .windows(9)
        .position(|w| w == b"echo hi\n\0")
        .unwrap_or_else(|| bad.windows(7).position(|w| w == b"echo hi").unwrap());
    bad[pos] = b'E';
    // Fix the member's tar checksum is not needed: data is not checksummed by tar.
    let err = load(&s2, &bad[..]).unwrap_err();
    assert!(err.to_string().contains("config says"), "{err}");
    assert!(s2.refs().unwrap().is_empty());
    assert!(s2.fsck().unwrap().is_empty());
    // Nothing left in tmp.
    assert_eq!(fs::read_dir(s2.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn an_index_saves_as_an_oci_index_and_loads_back_as_one() {
    let (_d, s) = store();
    let import_as = |arch: &str, body: &[u8]| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("hello").unwrap();
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, body).unwrap();
        let opts = ImportOptions {
            created: "2026-11-26T00:00:00Z".into(),
            platform: Some(store::Platform::parse(arch).unwrap()),
            ..ImportOptions::default()
        };
        import_rootfs(&s, &b.into_inner().unwrap()[..], &opts, &[]).unwrap()
    };
    let amd = import_as("linux/amd64", b"amd64");
    let arm = import_as("linux/arm64/v8", b"arm64");
    assert_eq!(arm.config.architecture, "arm64");
    assert_eq!(arm.config.variant, None, "arm64's v8 is normalised away");
    let w = s.lock_shared().unwrap();
    let ix = w.put_index(&[&amd, &arm]).unwrap();
    drop(w);
    let name = store::Reference::parse("example/multi:1").unwrap();
    let indexes = [SaveIndex {
        index: ix.clone(),
        names: vec![name.clone()],
    }];
    let mut oci = Vec::new();
    save_all(
        &s,
        &[],
        &indexes,
        Format::Oci,
        layer::Compression::Gzip,
        &mut oci,
    )
    .unwrap();
    let mut docker = Vec::new();
    assert!(save_all(
        &s,
        &[],
        &indexes,
        Format::Docker,
        layer::Compression::Gzip,
        &mut docker
    )
    .is_err());

    // index.json → one index entry, named; the index blob → two manifests with platforms.
    let mut files = std::collections::BTreeMap::new();
    for e in tar::Archive::new(&oci[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut v).unwrap();
        files.insert(e.path().unwrap().to_string_lossy().to_string(), v);
    }
    let top: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(top["manifests"].as_array().unwrap().len(), 1);
    let entry = &top["manifests"][0];
    assert_eq!(entry["mediaType"], store::image::MEDIA_OCI_INDEX);
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "docker.io/example/multi:1"
    );
    let hex = entry["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let inner: serde_json::Value =
        serde_json::from_slice(&files[&format!("blobs/sha256/{hex}")]).unwrap();
    let archs: Vec<&str> = inner["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);

    let (_d2, s2) = store();
    let loaded = load(&s2, &oci[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, vec![name.clone()]);
    let got = loaded[0].index.as_ref().expect("loaded as an index");
    assert_eq!(
        got.digest, ix.digest,
        "the same images give the same stored index"
    );
    assert_eq!(s2.refs().unwrap()[&name.to_string()], ix.digest);
    let arm64 = store::Platform::parse("linux/arm64").unwrap();
    assert_eq!(
        s2.image_for(&ix.digest, &arm64).unwrap().id(),
        arm.id(),
        "the same config"
    );
}
