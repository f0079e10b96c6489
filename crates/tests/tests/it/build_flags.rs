//! The `docker build` flags scripts pass: accepted with docker's meaning (`--platform` of
//! the host, `--rm`/`--force-rm`/`--load` as no-ops, `--provenance`/`--sbom`,
//! `--progress=quiet|rawjson`, `--metadata-file`), refused clearly otherwise.

use std::fs;

use serde_json::Value;

use crate::common::{busybox_tar, Env};

fn setup() -> (Env, String) {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local\nRUN echo hello from run\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap().to_string();
    (env, ctx)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn scripts_flags_are_accepted_with_dockers_meaning() {
    strata_tests::require!(Root, Busybox);
    let (env, ctx) = setup();
    let meta = env.path("meta.json");
    let o = env.run(&[
        "build",
        "--platform",
        "linux/amd64",
        "--rm",
        "--force-rm",
        "--load",
        "--provenance=false",
        "--sbom=false",
        "--progress=quiet",
        "--metadata-file",
        meta.to_str().unwrap(),
        "-t",
        "flags:1",
        &ctx,
    ]);
    assert!(o.status.success(), "{o:?}");
    // quiet: nothing at all on either stream.
    assert_eq!(stderr(&o), "");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    // buildx's metadata keys, naming what the store holds.
    let m: Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    let inspect: Value = serde_json::from_str(&env.ok(&["inspect", "flags:1"])).unwrap();
    assert_eq!(m["containerimage.config.digest"], inspect[0]["Id"], "{m}");
    assert_eq!(m["image.name"], "docker.io/library/flags:1", "{m}");
    let manifest = m["containerimage.digest"].as_str().unwrap().to_string();
    assert_eq!(m["containerimage.descriptor"]["digest"], manifest.as_str());
    // The manifest digest is the store's manifest of the image, with its size.
    let blob = env
        .root()
        .join("blobs/sha256")
        .join(&manifest["sha256:".len()..]);
    assert_eq!(
        fs::metadata(&blob).unwrap().len(),
        m["containerimage.descriptor"]["size"].as_u64().unwrap()
    );
    let stored: Value = serde_json::from_slice(&fs::read(&blob).unwrap()).unwrap();
    assert_eq!(stored["config"]["digest"], inspect[0]["Id"], "{stored}");

    // docker's spellings of the host platform; attestations asked for: a warning.
    let o = env.run(&[
        "build",
        "-q",
        "--platform",
        "linux/x86_64",
        "--rm=false",
        "--provenance",
        &ctx,
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stderr(&o).contains("--provenance=true: strata does not produce attestations yet"),
        "{}",
        stderr(&o)
    );
    // Another platform: refused before anything runs, exit 1.
    let o = env.run(&["build", "--platform", "linux/amd64,linux/arm64", &ctx]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stderr(&o).contains("--platform linux/arm64: building for another platform than this host's (linux/amd64) is not supported yet"),
        "{}",
        stderr(&o)
    );
    // A docker build flag strata lacks, and one docker lacks too: exit 125 either way.
    let o = env.run(&["build", "--squash", &ctx]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o)
            .starts_with("strata build does not support --squash (a docker build flag) yet\n"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["build", "--bogus", &ctx]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).starts_with("unknown flag: --bogus\n"),
        "{}",
        stderr(&o)
    );
}

/// `--progress=rawjson`: every stderr line is a JSON object of BuildKit's solve status; the
/// RUN's output is in a base64 log of its vertex, which starts and completes.
#[test]
fn rawjson_progress_is_buildkits_solve_status() {
    strata_tests::require!(Root, Busybox);
    let (env, ctx) = setup();
    let o = env.run(&[
        "build",
        "--progress=rawjson",
        "--no-cache",
        "-t",
        "raw:1",
        &ctx,
    ]);
    assert!(o.status.success(), "{o:?}");
    let err = stderr(&o);
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{err}")))
        .collect();
    let run: Vec<&Value> = lines
        .iter()
        .flat_map(|l| l["vertexes"].as_array().into_iter().flatten())
        .filter(|v| v["name"] == "[2/2] RUN echo hello from run")
        .collect();
    assert!(run.len() >= 2, "{err}");
    let digest = run[0]["digest"].as_str().unwrap();
    assert!(run.last().unwrap()["completed"].is_string(), "{err}");
    use base64::Engine as _;
    let logged: String = lines
        .iter()
        .flat_map(|l| l["logs"].as_array().into_iter().flatten())
        .filter(|l| l["vertex"] == digest)
        .map(|l| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(l["data"].as_str().unwrap())
                .unwrap();
            String::from_utf8(b).unwrap()
        })
        .collect();
    assert_eq!(logged, "hello from run\n", "{err}");
}
