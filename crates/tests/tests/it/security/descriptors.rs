//! Issue 10, item 7: descriptor sizes. An OCI archive whose layer descriptor says 10 bytes
//! for a 2 MB layer (or more bytes than the layer has) is refused by `load`, naming the blob,
//! the declared and the actual size; nothing is tagged and the store stays consistent.
//! (Pull and cache import: unit tests in registry's hostile_tests and build's cache.)

use std::fs;
use std::path::Path;

use super::guard::{after, Canary};
use crate::common::{tool, Env};
use store::Digest;

/// A 2 MB one-layer image saved as an OCI archive, unpacked into `dir`; returns the layer's
/// digest and size.
fn oci_layout(env: &Env, dir: &Path) -> (Digest, u64) {
    let data = env.path("data");
    fs::create_dir_all(&data).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..2u32 << 20)
        .map(|_| {
            // xorshift: incompressible, so the gzip layer stays about 2 MB.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(data.join("big.bin"), big).unwrap();
    let tar = env.path("rootfs.tar");
    tool(
        "tar",
        &[
            "-C",
            data.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    env.ok(&["import", tar.to_str().unwrap(), "big:1"]);
    let saved = env.path("big-oci.tar");
    env.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        saved.to_str().unwrap(),
        "big:1",
    ]);
    fs::create_dir_all(dir).unwrap();
    tool(
        "tar",
        &["-C", dir.to_str().unwrap(), "-xf", saved.to_str().unwrap()],
    );
    let m = manifest(dir);
    let l = &m["layers"][0];
    (
        l["digest"].as_str().unwrap().parse().unwrap(),
        l["size"].as_u64().unwrap(),
    )
}

fn manifest(dir: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let d: Digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(d.hex())).unwrap()).unwrap()
}

/// Rewrite the manifest with the layer's size set to `size`, fix index.json, pack `out`.
fn with_layer_size(dir: &Path, size: u64, out: &Path) {
    let mut m = manifest(dir);
    m["layers"][0]["size"] = serde_json::json!(size);
    let bytes = serde_json::to_vec(&m).unwrap();
    let d = Digest::of(&bytes);
    fs::write(dir.join("blobs/sha256").join(d.hex()), &bytes).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = serde_json::json!(d.to_string());
    index["manifests"][0]["size"] = serde_json::json!(bytes.len());
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    tool(
        "tar",
        &[
            "-C",
            dir.to_str().unwrap(),
            "-cf",
            out.to_str().unwrap(),
            ".",
        ],
    );
}

#[test]
fn load_refuses_a_layer_descriptor_with_the_wrong_size() {
    strata_tests::require!(Root, Busybox);
    let src = Env::new();
    let layout = src.path("layout");
    let (layer, actual) = oci_layout(&src, &layout);
    assert!(actual > 1 << 20, "the layer is {actual} bytes");

    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    for declared in [10, actual + 4096] {
        let archive = env.path(&format!("lying-{declared}.tar"));
        with_layer_size(&layout, declared, &archive);
        let e = env.fails(&["load", "-i", archive.to_str().unwrap()]);
        assert!(
            e.contains(&format!(
                "blob {layer}: the descriptor says {declared} bytes, the archive holds {actual}"
            )),
            "{e}"
        );
        // Nothing tagged, nothing half-made.
        let images = env.ok(&["images", "-q"]);
        assert!(images.trim().is_empty(), "{images}");
        env.fsck_clean();
    }
    // The honest archive loads (the test's own control).
    let good = env.path("good.tar");
    with_layer_size(&layout, actual, &good);
    env.ok(&["load", "-i", good.to_str().unwrap()]);
    env.ok(&["inspect", "big:1"]);
    env.fsck_clean();
    after(&canary, &env);
}
