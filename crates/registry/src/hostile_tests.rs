//! Pulls from a fake registry on the loopback that answers with hostile or broken
//! responses: every one must end in an error (never a panic), with nothing half-written in
//! the store and no ref made.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use store::{Digest, Reference, Store};

use crate::{pull, Options};

#[derive(Clone)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn resp(status: u16, body: impl Into<Vec<u8>>) -> Resp {
    Resp {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

/// A registry answering `GET path` from a table (anything else: 404); counts requests.
struct Fake {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Resp>>>,
    hits: Arc<AtomicUsize>,
}

impl Fake {
    fn start() -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Resp>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let (r, h) = (routes.clone(), hits.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let r = r.clone();
                let h = h.clone();
                std::thread::spawn(move || {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            // A TLS ClientHello: plain HTTP only here, hang up.
                            Ok(_) if buf[0] == 0x16 && req.is_empty() => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let text = String::from_utf8_lossy(&req).to_string();
                    let path = text.split(' ').nth(1).unwrap_or("").to_string();
                    let path = path.split('?').next().unwrap_or("").to_string();
                    let found = r.lock().unwrap().get(&path).cloned();
                    let res = match (path.as_str(), found) {
                        (_, Some(x)) => x,
                        ("/v2/", None) => resp(200, "{}"),
                        _ => resp(404, r#"{"errors":[{"code":"NOT_FOUND","message":"nope"}]}"#),
                    };
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        res.status,
                        res.body.len()
                    );
                    for (k, v) in &res.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = c.write_all(head.as_bytes());
                    let _ = c.write_all(&res.body);
                });
            }
        });
        Fake { port, routes, hits }
    }

    fn route(&self, path: &str, r: Resp) {
        self.routes.lock().unwrap().insert(path.to_string(), r);
    }

    fn blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        self.route(&format!("/v2/t/img/blobs/{d}"), resp(200, bytes));
        d
    }

    fn manifest(&self, tag: &str, v: &serde_json::Value) -> Digest {
        let b = serde_json::to_vec(v).unwrap();
        self.route(&format!("/v2/t/img/manifests/{tag}"), resp(200, b.clone()));
        Digest::of(&b)
    }

    fn name(&self, tag: &str) -> Reference {
        Reference::parse(&format!("127.0.0.1:{}/t/img:{tag}", self.port)).unwrap()
    }
}

/// A tar with one file.
fn tar_layer(content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("f").unwrap();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, content).unwrap();
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    layer::compress(bytes, layer::Compression::Gzip, &mut out).unwrap();
    out
}

fn config(diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap()
}

fn manifest_json(config: &[u8], layers: &[(&str, &[u8])]) -> serde_json::Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(config), "size": config.len()},
        "layers": layers.iter().map(|(m, b)| json!({
            "mediaType": m, "digest": Digest::of(b), "size": b.len()
        })).collect::<Vec<_>>()
    })
}

const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn opts() -> Options {
    Options {
        connect_timeout: std::time::Duration::from_secs(2),
        ..Options::default()
    }
}

/// The pull fails with a message containing `want`; the store holds no temp file and no
/// ref, and every blob in it hashes to its name.
fn refused(store: &Store, r: &Reference, want: &str) {
    let quiet = |_: &str, _: &str| {};
    let err = pull(store, r, &opts(), &quiet)
        .map(|p| p.digest)
        .expect_err("the pull must fail");
    let msg = err.to_string();
    assert!(msg.contains(want), "{msg:?} should contain {want:?}");
    let tmp: Vec<_> = std::fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
    assert!(store.refs().unwrap().is_empty());
    for e in std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let bytes = std::fs::read(e.path()).unwrap();
        assert_eq!(Digest::of(&bytes).hex(), e.file_name().to_str().unwrap());
    }
}

#[test]
fn a_good_image_pulls_and_hostile_ones_are_refused() {
    let f = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    let tar = tar_layer(b"hello\n");
    let gz = gzip(&tar);
    f.blob(&gz);
    let cfg = config(&[Digest::of(&tar)]);
    f.blob(&cfg);
    let good = manifest_json(&cfg, &[(GZ, &gz)]);
    f.manifest("good", &good);

    // Manifest problems.
    f.route("/v2/t/img/manifests/huge", resp(200, vec![b' '; 5 << 20]));
    refused(&store, &f.name("huge"), "larger than");
    f.route("/v2/t/img/manifests/junk", resp(200, "{not json"));
    refused(&store, &f.name("junk"), "invalid JSON");
    f.manifest("v1", &json!({"schemaVersion": 1, "name": "t/img"}));
    refused(&store, &f.name("v1"), "manifest");
    let mut bad_media = good.clone();
    bad_media["layers"][0]["mediaType"] = json!("application/x-evil");
    f.manifest("media", &bad_media);
    refused(&store, &f.name("media"), "unsupported media type");
    refused(&store, &f.name("missing"), "not found");
    // By digest, a manifest that hashes to something else.
    let other = Reference::parse(&format!(
        "127.0.0.1:{}/t/img@sha256:{}",
        f.port,
        "0".repeat(64)
    ))
    .unwrap();
    f.route(
        &format!("/v2/t/img/manifests/sha256:{}", "0".repeat(64)),
        resp(200, serde_json::to_vec(&good).unwrap()),
    );
    refused(&store, &other, "not to the digest asked for");

    // Index without the platform; index whose entry hashes wrong.
    f.manifest(
        "arm",
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "digest": Digest::of(b"x"), "size": 1,
                  "platform": {"os": "linux", "architecture": "arm64"}}]}),
    );
    refused(
        &store,
        &f.name("arm"),
        "no matching manifest for linux/amd64",
    );
    let lie = Digest::of(b"something else");
    f.route(
        &format!("/v2/t/img/manifests/{lie}"),
        resp(200, serde_json::to_vec(&good).unwrap()),
    );
    f.manifest(
        "lying-index",
        &json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "digest": lie, "size": serde_json::to_vec(&good).unwrap().len(),
                  "platform": {"os": "linux", "architecture": "amd64"}}]}),
    );
    refused(&store, &f.name("lying-index"), "from the index hashes to");

    // Config problems: wrong bytes for its digest, too many diff_ids, not JSON.
    let cfg2 = config(&[Digest::of(&tar), Digest::of(&tar)]);
    let m2 = manifest_json(&cfg2, &[(GZ, &gz)]);
    f.manifest("diffids", &m2);
    f.blob(&cfg2);
    refused(&store, &f.name("diffids"), "config lists 2 diff_ids");
    let cfg3 = b"[1,2".to_vec();
    let m3 = manifest_json(&cfg3, &[(GZ, &gz)]);
    f.manifest("badcfg", &m3);
    f.blob(&cfg3);
    refused(&store, &f.name("badcfg"), "config");
    let cfg4 = config(&[Digest::of(b"zzz")]);
    let m4 = manifest_json(&cfg4, &[(GZ, &gz)]);
    f.manifest("swapcfg", &m4);
    f.route(
        &format!("/v2/t/img/blobs/{}", Digest::of(&cfg4)),
        resp(200, cfg.clone()),
    );
    refused(&store, &f.name("swapcfg"), "digest mismatch");

    // Layer problems: the diffID does not match; not a tar; a lying size; a 500.
    let cfg5 = config(&[Digest::of(b"not the tar")]);
    f.blob(&cfg5);
    f.manifest("diffid", &manifest_json(&cfg5, &[(GZ, &gz)]));
    refused(&store, &f.name("diffid"), "the image config says");
    let notar = gzip(&[0x42u8; 3000]);
    f.blob(&notar);
    let cfg6 = config(&[Digest::of(&[0x42u8; 3000][..])]);
    f.blob(&cfg6);
    f.manifest("notar", &manifest_json(&cfg6, &[(GZ, &notar)]));
    refused(&store, &f.name("notar"), "not a valid layer");
    let mut m7 = good.clone();
    m7["layers"][0]["size"] = json!(gz.len() + 100);
    f.manifest("short", &m7);
    refused(&store, &f.name("short"), "digest mismatch");
    let cut = gz[..gz.len() / 2].to_vec();
    let mut m8 = good.clone();
    m8["layers"][0]["digest"] = json!(Digest::of(b"cut-layer"));
    f.route(
        &format!("/v2/t/img/blobs/{}", Digest::of(b"cut-layer")),
        resp(200, cut),
    );
    f.manifest("cut", &m8);
    refused(&store, &f.name("cut"), "digest mismatch");
    let mut m9 = good.clone();
    m9["layers"][0]["digest"] = json!(Digest::of(b"five-hundred"));
    f.route(
        &format!("/v2/t/img/blobs/{}", Digest::of(b"five-hundred")),
        resp(503, "busy"),
    );
    f.manifest("busy", &m9);
    let before = f.hits.load(Ordering::SeqCst);
    refused(&store, &f.name("busy"), "HTTP 503");
    // Retried (3 attempts for the blob after ping, manifest and config).
    assert!(f.hits.load(Ordering::SeqCst) - before >= 6);

    // Auth nonsense: a challenge we cannot parse, a token server that sends junk.
    let f2 = Fake::start();
    let garbled = Resp {
        status: 401,
        headers: vec![("WWW-Authenticate".into(), "Bearer realm=\"".into())],
        body: Vec::new(),
    };
    f2.route("/v2/", garbled.clone());
    f2.route("/v2/t/img/manifests/x", garbled);
    refused(&store, &f2.name("x"), "HTTP 401");
    let f3 = Fake::start();
    f3.route(
        "/v2/",
        Resp {
            status: 401,
            headers: vec![(
                "WWW-Authenticate".into(),
                format!(
                    "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"x\"",
                    f3.port
                ),
            )],
            body: Vec::new(),
        },
    );
    f3.route("/token", resp(200, "<html>"));
    refused(&store, &f3.name("x"), "invalid JSON");

    // After all that, the good image pulls, and again with nothing to download.
    let quiet = |_: &str, _: &str| {};
    let p = pull(&store, &f.name("good"), &opts(), &quiet).unwrap();
    assert_eq!(p.digest, Digest::of(&serde_json::to_vec(&good).unwrap()));
    assert!(p.updated);
    assert_eq!(p.image.config.rootfs.diff_ids, vec![Digest::of(&tar)]);
    assert!(store.has_blob(&Digest::of(&gz)));
    assert!(store.fsck().unwrap().is_empty());
    let p = pull(&store, &f.name("good"), &opts(), &quiet).unwrap();
    assert!(!p.updated);
}

/// Issue 10, item 7: every descriptor's size is checked, not only its digest; the stream is
/// cut at size + 1, and the error names the blob, the declared and the received size.
#[test]
fn descriptor_sizes_are_checked() {
    let f = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
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
    let tar = tar_layer(&big);
    let gz = gzip(&tar);
    let gzd = f.blob(&gz);
    let cfg = config(&[Digest::of(&tar)]);
    let cfgd = f.blob(&cfg);
    let good = manifest_json(&cfg, &[(GZ, &gz)]);
    let good_bytes = serde_json::to_vec(&good).unwrap();
    let gd = Digest::of(&good_bytes);
    f.route(
        &format!("/v2/t/img/manifests/{gd}"),
        resp(200, good_bytes.clone()),
    );

    // A layer of 2 MB whose descriptor says 10 bytes: at most 11 bytes are read.
    let mut m = good.clone();
    m["layers"][0]["size"] = json!(10);
    f.manifest("small-layer", &m);
    refused(
        &store,
        &f.name("small-layer"),
        &format!("blob {gzd}: the descriptor says 10 bytes, the registry sent more"),
    );
    // The config: shorter and longer than it is.
    for (size, sent) in [
        (cfg.len() - 1, "sent more".to_string()),
        (cfg.len() + 1, format!("sent {}", cfg.len())),
    ] {
        let mut m = good.clone();
        m["config"]["size"] = json!(size);
        f.manifest("cfg-size", &m);
        refused(
            &store,
            &f.name("cfg-size"),
            &format!("blob {cfgd}: the descriptor says {size} bytes, the registry {sent}"),
        );
    }
    // A manifest named by an index entry: shorter and longer than it is.
    for (size, sent) in [
        (10, "sent more".to_string()),
        (good_bytes.len() + 7, format!("sent {}", good_bytes.len())),
    ] {
        f.manifest(
            "idx-size",
            &json!({"schemaVersion": 2, "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": gd, "size": size,
                "platform": {"os": "linux", "architecture": "amd64"}}]}),
        );
        refused(
            &store,
            &f.name("idx-size"),
            &format!("blob {gd}: the descriptor says {size} bytes, the registry {sent}"),
        );
    }
    assert!(!store.has_blob(&gzd));
    assert!(store.fsck().unwrap().is_empty());
}

/// Issue 10, item 8: a registry's error body is quoted with its control characters escaped.
#[test]
fn error_bodies_are_escaped() {
    let f = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    f.route(
        "/v2/t/img/manifests/esc",
        resp(
            404,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"gone\u001b]0;pwned\u0007\u001b[2J\u009b"}]}"#,
        ),
    );
    refused(
        &store,
        &f.name("esc"),
        r"manifest unknown: gone\x1b]0;pwned\x07\x1b[2J\u009b (HTTP 404)",
    );
    let quiet = |_: &str, _: &str| {};
    let err = pull(&store, &f.name("esc"), &opts(), &quiet)
        .map(|p| p.digest)
        .unwrap_err()
        .to_string();
    assert!(!err.contains(['\u{1b}', '\u{7}', '\u{9b}']), "{err:?}");
}
