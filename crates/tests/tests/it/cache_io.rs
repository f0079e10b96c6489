//! `--cache-to` / `--cache-from` between two stores on one machine, standing in for two CI
//! hosts: store A builds and exports its cache; store B, holding only the base image, imports
//! it, rebuilds with every step CACHED and fetches only the layers the final image needs;
//! a one-file change re-runs only the steps it affects. RUN executions are counted by a
//! counter on 127.0.0.1 (so the builds use `--network host`), as in build_e2e.

use std::fs;
use std::path::Path;

use crate::common::{busybox_tar, Counter, Env};

/// Blobs (by hex digest) in a store.
fn blobs(root: &Path) -> std::collections::BTreeSet<String> {
    fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

/// Run a build that must succeed; returns its progress output (stderr).
fn built(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "strata {args:?} failed:\n{err}");
    err
}

fn inspect(env: &Env, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

struct Setup {
    a: Env,
    b: Env,
    counter: Counter,
    ctx: std::path::PathBuf,
    cache: std::path::PathBuf,
}

fn setup() -> Setup {
    let a = Env::new();
    let b = Env::new();
    let tar = a.path("busybox.tar");
    busybox_tar(&tar);
    a.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    // Store B gets the very same base image (as a registry pull would give it).
    let saved = a.path("base.tar");
    a.ok(&["save", "-o", saved.to_str().unwrap(), "busybox:local"]);
    b.ok(&["load", "-i", saved.to_str().unwrap()]);
    let counter = Counter::start();
    let ctx = a.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("a.txt"), "a\n").unwrap();
    fs::write(ctx.join("b.txt"), "b\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM busybox:local AS build\n\
WORKDIR /src\n\
COPY a.txt ./\n\
RUN --mount=type=cache,target=/cache {} && echo run >> /cache/log && cat a.txt > /out.txt && head -c 200000 /dev/urandom > /big\n\
RUN {} && cp /out.txt /out2.txt\n\
FROM busybox:local AS other\n\
RUN {} && head -c 300000 /dev/urandom > /other\n\
FROM busybox:local\n\
COPY --from=build /out2.txt /final.txt\n\
COPY b.txt /b.txt\n\
RUN {} && echo final > /marker\n",
            counter.hit("build1"),
            counter.hit("build2"),
            counter.hit("other"),
            counter.hit("final")
        ),
    )
    .unwrap();
    let cache = a.path("cache");
    Setup {
        a,
        b,
        counter,
        ctx,
        cache,
    }
}

#[test]
fn two_stores_share_a_local_cache() {
    strata_tests::require!(Root, Busybox);
    let s = setup();
    let (ctx, cache) = (s.ctx.to_str().unwrap(), s.cache.to_str().unwrap());
    let to = format!("type=local,dest={cache},mode=max");
    let from = format!("type=local,src={cache}");
    // Store A: builds everything (the `other` stage is not needed by the target: not run).
    let err = built(
        &s.a,
        &[
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--cache-to",
            &to,
            "-t",
            "app",
            ctx,
        ],
    );
    assert!(err.contains("exporting cache to"), "{err}");
    let hits = s.counter.take();
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        ["build1", "build2", "final"],
        "{hits:?}"
    );
    let id_a = inspect(&s.a, "app")["Id"].clone();
    assert!(cache.len() > 1 && s.cache.join("index.json").is_file());

    // Store B: every step CACHED, no RUN executed, the same image.
    let before = blobs(&s.b.root());
    let err = built(
        &s.b,
        &[
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--cache-from",
            &from,
            "-t",
            "app",
            ctx,
        ],
    );
    assert!(err.contains("(0 RUN executed, 7 steps cached)"), "{err}");
    assert!(s.counter.take().is_empty());
    let img = inspect(&s.b, "app");
    assert_eq!(img["Id"], id_a, "store B built a different image");
    // Only the final image's layers arrived: its three own layers; none of the build
    // stage's layers (WORKDIR, COPY, the two RUNs with 200 kB of random data).
    let final_layers: std::collections::BTreeSet<String> = img["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    let new_uncompressed: Vec<String> = blobs(&s.b.root())
        .difference(&before)
        .filter(|b| final_layers.contains(*b) || !is_small_json(&s.b.root(), b))
        .cloned()
        .collect();
    for b in &new_uncompressed {
        assert!(
            final_layers.contains(b),
            "store B fetched a layer the final image does not need: {b}"
        );
    }
    assert!(
        err.contains("fetched 3 layers from the imported cache"),
        "{err}"
    );
    s.b.fsck_clean();

    // A one-file change on B: the COPY of it and the steps after it re-run, nothing else.
    fs::write(s.ctx.join("a.txt"), "a2\n").unwrap();
    let err = built(
        &s.b,
        &[
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--cache-from",
            &from,
            "-t",
            "app",
            ctx,
        ],
    );
    let hits = s.counter.take();
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        ["build1", "build2", "final"],
        "{hits:?}"
    );
    // Vertex numbers depend on which stage starts first: find WORKDIR's.
    let workdir = err
        .lines()
        .find(|l| l.ends_with("] WORKDIR /src"))
        .and_then(|l| l.split_whitespace().next())
        .expect("a WORKDIR vertex")
        .to_string();
    assert!(
        err.contains(&format!("{workdir} CACHED")),
        "WORKDIR should stay cached:\n{err}"
    );
    // The cache mount came along: it holds A's line and now B's.
    let logs: Vec<_> = fs::read_dir(s.b.root().join("cache-mounts"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path().join("log")).unwrap_or_default())
        .collect();
    assert_eq!(logs, ["run\nrun\n"], "{logs:?}");
    // b.txt changed instead: only the final stage's COPY of it and its RUN.
    fs::write(s.ctx.join("a.txt"), "a\n").unwrap();
    fs::write(s.ctx.join("b.txt"), "b2\n").unwrap();
    built(
        &s.b,
        &[
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--cache-from",
            &from,
            "-t",
            "app2",
            ctx,
        ],
    );
    let hits = s.counter.take();
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        ["final"],
        "{hits:?}"
    );
    s.b.fsck_clean();
}

/// Config and manifest blobs are small JSON; layers are tars.
fn is_small_json(root: &Path, hex: &str) -> bool {
    let p = root.join("blobs/sha256").join(hex);
    let Ok(b) = fs::read(&p) else { return false };
    b.len() < 64 * 1024 && b.first() == Some(&b'{')
}

#[test]
fn mode_min_exports_only_the_final_images_steps() {
    strata_tests::require!(Root, Busybox);
    let s = setup();
    let (ctx, cache) = (s.ctx.to_str().unwrap(), s.cache.to_str().unwrap());
    let to = format!("type=local,dest={cache}");
    let from = format!("type=local,src={cache}");
    s.a.ok(&[
        "build",
        "--network",
        "host",
        "-q",
        "--cache-to",
        &to,
        "-t",
        "app",
        ctx,
    ]);
    s.counter.take();
    // B: the build stage's steps are not in a min cache and run again; the final stage's
    // COPY --from finds the same content and everything after it is CACHED.
    built(
        &s.b,
        &[
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--cache-from",
            &from,
            "-t",
            "app",
            ctx,
        ],
    );
    let hits = s.counter.take();
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        ["build1", "build2"],
        "{hits:?}"
    );
    assert_eq!(inspect(&s.b, "app")["Id"], inspect(&s.a, "app")["Id"]);
}

#[test]
fn bad_cache_specs_and_damaged_caches_are_clear_errors() {
    strata_tests::require!(Root, Busybox);
    let s = setup();
    let ctx = s.ctx.to_str().unwrap();
    let err = s.a.fails(&[
        "build",
        "--network",
        "host",
        "--cache-to",
        "type=local",
        ctx,
    ]);
    assert!(err.contains("type=local needs dest=DIR"), "{err}");
    let err = s.a.fails(&[
        "build",
        "--network",
        "host",
        "--cache-to",
        "type=s3,dest=x",
        ctx,
    ]);
    assert!(err.contains("cache type \"s3\" not supported"), "{err}");
    let err = s.a.fails(&[
        "build",
        "--network",
        "host",
        "--cache-to",
        "type=local,dest=x,mode=all",
        ctx,
    ]);
    assert!(err.contains("use min or max"), "{err}");
    // A cache whose layer blob was damaged: store B says which blob, keeps nothing of it and
    // tags nothing; with the blob repaired, the same build succeeds.
    let cache = s.cache.to_str().unwrap();
    let to = format!("type=local,dest={cache},mode=max");
    s.a.ok(&[
        "build",
        "--network",
        "host",
        "-q",
        "--cache-to",
        &to,
        "-t",
        "app",
        ctx,
    ]);
    let last_layer = inspect(&s.a, "app")["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let json = |hex: &str| -> serde_json::Value {
        serde_json::from_slice(&fs::read(s.cache.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(s.cache.join("index.json")).unwrap()).unwrap();
    let hex = |d: &serde_json::Value| {
        d.as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let manifest = json(&hex(&index["manifests"][0]["digest"]));
    let config = json(&hex(&manifest["config"]["digest"]));
    let blob = config["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["diff_id"] == last_layer.as_str())
        .map(|l| s.cache.join("blobs/sha256").join(hex(&l["digest"])))
        .expect("the final RUN's layer is in the cache");
    let good = fs::read(&blob).unwrap();
    fs::write(&blob, &good[..good.len() / 2]).unwrap();
    let from = format!("type=local,src={cache}");
    let args = [
        "build",
        "--network",
        "host",
        "--progress=plain",
        "--cache-from",
        &from,
        "-t",
        "app",
        ctx,
    ];
    let err = s.b.fails(&args);
    assert!(err.contains("cache layer"), "{err}");
    assert!(
        s.b.run(&["inspect", "app"]).status.code() != Some(0),
        "a failed build tagged app"
    );
    s.b.fsck_clean();
    fs::write(&blob, &good).unwrap();
    s.b.ok(&args);
    assert_eq!(inspect(&s.b, "app")["Id"], inspect(&s.a, "app")["Id"]);
    s.b.fsck_clean();
}
