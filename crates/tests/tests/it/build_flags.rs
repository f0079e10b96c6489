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
    // No platform: refused before anything runs, exit 1 (other platforms are built:
    // multiplatform.rs).
    let o = env.run(&["build", "--platform", "linux/amd64,linux//arm64", &ctx]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stderr(&o).contains("--platform linux//arm64: invalid platform \"linux//arm64\""),
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

/// `--add-host`, `--shm-size`, `--ulimit` reach every RUN and are part of its cache key;
/// `--secret id=X,env=VAR` mounts the variable's value and leaves it in no layer, config
/// or history.
#[test]
fn run_flags_reach_the_run_and_its_cache_key() {
    strata_tests::require!(Root, Busybox);
    let (env, _) = setup();
    let ctx = env.path("runflags");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local\nRUN --mount=type=secret,id=tok echo \"tok=$(cat /run/secrets/tok)\"; grep myhost /etc/hosts; df -k /dev/shm | tail -1; echo \"nofile $(ulimit -n) $(ulimit -Hn)\"; date +%N > /stamp\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--progress=plain", "-t", "rf:1"];
        args.extend_from_slice(extra);
        args.push(ctx);
        let o = env
            .cmd()
            .env("MY_TOKEN", "s3cret-value")
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        stderr(&o)
    };
    let flags = [
        "--secret",
        "id=tok,env=MY_TOKEN",
        "--add-host",
        "myhost:10.1.2.3",
        "--shm-size",
        "128m",
        "--ulimit",
        "nofile=512:1024",
    ];
    let out = build(&flags);
    assert!(out.contains(" tok=s3cret-value\n"), "{out}");
    assert!(out.contains(" 10.1.2.3\tmyhost\n"), "{out}");
    assert!(out.contains(" 131072 "), "/dev/shm is 128 MiB: {out}");
    assert!(out.contains(" nofile 512 1024\n"), "{out}");
    // Same flags: cached. Another host address: a new key, so the RUN runs again.
    let again = build(&flags);
    assert!(again.contains("CACHED"), "{again}");
    let mut other = flags;
    other[3] = "myhost:10.9.9.9";
    let out = build(&other);
    assert!(out.contains(" 10.9.9.9\tmyhost\n"), "{out}");
    // Without the flags: docker's defaults (64 MiB /dev/shm, no host line).
    let out = build(&["--secret", "id=tok,env=MY_TOKEN"]);
    assert!(out.contains(" 65536 "), "{out}");
    assert!(!out.contains("\tmyhost"), "{out}");
    // The secret is nowhere in the image.
    let tar = env.path("rf.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "rf:1"]);
    let dir = env.path("rf");
    fs::create_dir_all(&dir).unwrap();
    crate::common::tool(
        "tar",
        &["-xf", tar.to_str().unwrap(), "-C", dir.to_str().unwrap()],
    );
    let found = std::process::Command::new("grep")
        .args(["-rl", "s3cret-value", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&found.stdout),
        "",
        "the secret leaked"
    );
    // Bad values: clear errors, exit 1.
    for (flag, value, msg) in [
        ("--ulimit", "bogus=1", "invalid ulimit type: bogus"),
        ("--add-host", "nohost", "expected HOST:IP"),
        ("--shm-size", "12q", "invalid --shm-size \"12q\""),
        (
            "--secret",
            "id=a,env=STRATA_NO_SUCH_VAR",
            "environment variable STRATA_NO_SUCH_VAR is not set",
        ),
    ] {
        let o = env.run(&["build", flag, value, ctx]);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {o:?}");
        assert!(stderr(&o).contains(msg), "{flag} {value}: {}", stderr(&o));
    }
}

/// `--build-context NAME=docker-image://REF`: `FROM NAME` and `COPY --from=NAME` use the
/// image, even over a stage of that name (BuildKit: the named context overrides it).
#[test]
fn build_context_names_an_image() {
    strata_tests::require!(Root, Busybox);
    let (env, _) = setup();
    // Two images that differ in one file.
    let mk = |name: &str, content: &str| {
        let dir = env.path(&format!("mk-{name}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("marker"), content).unwrap();
        fs::write(
            dir.join("Dockerfile"),
            "FROM busybox:local\nCOPY marker /marker\n",
        )
        .unwrap();
        env.ok(&["build", "-q", "-t", name, dir.to_str().unwrap()]);
    };
    mk("img-a:1", "from image a\n");
    mk("img-b:1", "from image b\n");
    let ctx = env.path("named");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local AS base\nRUN echo from the stage > /marker\nFROM base\nCOPY --from=other /marker /other\nRUN cat /marker /other\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let o = env.run(&[
        "build",
        "--progress=plain",
        "--build-context",
        "base=docker-image://img-a:1",
        "--build-context",
        "other=docker-image://img-b:1",
        ctx,
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("FROM docker.io/library/img-a:1"), "{err}");
    // The final stage is img-a's, the COPY took img-b's file (cached on the second build).
    let run = env.ok(&[
        "build",
        "-q",
        "--build-context",
        "base=docker-image://img-a:1",
        "--build-context",
        "other=docker-image://img-b:1",
        ctx,
    ]);
    let id = run.trim();
    let out = env.ok(&["run", "--rm", id, "cat", "/marker", "/other"]);
    assert_eq!(out, "from image a\nfrom image b\n");
    // Without the contexts: the stage, and `other` is an image nobody has.
    let o = env.run(&["build", "--progress=plain", ctx]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("docker.io/library/other"),
        "{}",
        stderr(&o)
    );
    // Not supported yet, or wrong: said so, before anything runs.
    for (v, msg) in [
        ("x=./no-such-dir", "--build-context x=./no-such-dir"),
        (
            "x=https://example.com/a.git",
            "https:// contexts are not supported yet",
        ),
        ("x=target:base", "target contexts are not supported yet"),
        ("X=docker-image://a", "the name must be lower-case"),
    ] {
        let o = env.run(&["build", "--build-context", v, ctx]);
        assert_eq!(o.status.code(), Some(1), "{v}");
        assert!(stderr(&o).contains(msg), "{v}: {}", stderr(&o));
    }
}

/// `--build-context NAME=DIR`: `COPY --from=NAME` and `FROM NAME` see the directory as
/// BuildKit's local named context: its own `.dockerignore` applies, files are root's with
/// their modes kept, and an unchanged directory leaves the build cached.
#[test]
fn build_context_names_a_directory() {
    strata_tests::require!(Root, Busybox);
    use std::os::unix::fs::PermissionsExt;
    let (env, _) = setup();
    let extra = env.path("extra");
    fs::create_dir_all(extra.join("sub")).unwrap();
    fs::write(extra.join("a.txt"), "a from the named context\n").unwrap();
    fs::set_permissions(extra.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(extra.join("a.txt"), Some(1234), Some(4321)).unwrap();
    fs::write(extra.join("sub/b.txt"), "b\n").unwrap();
    fs::write(extra.join("ignored.txt"), "must not be seen\n").unwrap();
    fs::write(extra.join(".dockerignore"), "ignored.txt\n").unwrap();
    let ctx = env.path("dirctx");
    fs::create_dir_all(&ctx).unwrap();
    // The main context's ignore file must not apply to the named one.
    fs::write(ctx.join(".dockerignore"), "a.txt\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM extra AS files\n\
         FROM busybox:local\n\
         COPY --from=extra / /extra/\n\
         COPY --from=files /sub/b.txt /from-stage.txt\n",
    )
    .unwrap();
    let named = format!("extra={}", extra.display());
    let build = || {
        env.run(&[
            "build",
            "--progress=plain",
            "--build-context",
            &named,
            "-t",
            "dirctx:1",
            ctx.to_str().unwrap(),
        ])
    };
    let o = build();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = env.ok(&[
        "run",
        "--rm",
        "dirctx:1",
        "sh",
        "-c",
        "stat -c '%u:%g %a' /extra/a.txt; cat /extra/a.txt /extra/sub/b.txt /from-stage.txt; \
         ls -a /extra",
    ]);
    assert_eq!(
        out,
        "0:0 640\na from the named context\nb\nb\n.\n..\n.dockerignore\na.txt\nsub\n"
    );
    // Unchanged: every step cached, the same image.
    let id = env.ok(&["images", "-q", "--no-trunc", "dirctx:1"]);
    let o = build();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.matches("CACHED").count() >= 2, "{err}");
    assert_eq!(env.ok(&["images", "-q", "--no-trunc", "dirctx:1"]), id);
    // A change is seen.
    fs::write(extra.join("sub/b.txt"), "b changed\n").unwrap();
    let o = build();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = env.ok(&["run", "--rm", "dirctx:1", "cat", "/from-stage.txt"]);
    assert_eq!(out, "b changed\n");
    // A file is not a directory.
    let o = env.run(&[
        "build",
        "--build-context",
        &format!("extra={}", extra.join("a.txt").display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));
}

/// The tty view (through a pseudo-terminal made by `script`): BuildKit's header
/// `[+] Building 0.3s (3/3) FINISHED`, finished steps in blue, the export's lines, and no
/// colour with `NO_COLOR`.
#[test]
fn tty_view_has_a_header_colours_and_the_export() {
    strata_tests::require!(Root, Busybox);
    let (env, ctx) = setup();
    let view = |no_color: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec"])
            .arg(format!(
                "{} build --no-cache -t tty:1 {ctx}",
                strata_tests::strata_bin()
            ))
            .arg("/dev/null")
            .env("STRATA_ROOT", env.root());
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = view(false);
    assert!(out.contains("[+] Building "), "{out}");
    assert!(out.contains(" (2/2) FINISHED"), "{out}");
    assert!(
        out.contains("\x1b[34m => [2/2] RUN echo hello from run"),
        "{out}"
    );
    assert!(out.contains(" => exporting to image"), "{out}");
    assert!(
        out.contains(" => => naming to docker.io/library/tty:1"),
        "{out}"
    );
    assert!(out.contains("1 RUN executed, 0 steps cached"), "{out}");
    let plain = view(true);
    assert!(plain.contains(" (2/2) FINISHED"), "{plain}");
    assert!(
        !plain.contains("\x1b[34m") && !plain.contains("\x1b[31m"),
        "{plain}"
    );
    // What the build took from its context: two files, read once, then known by their stat.
    let copy = env.path("copyctx");
    fs::create_dir_all(&copy).unwrap();
    fs::write(copy.join("a"), "12345").unwrap();
    fs::write(copy.join("b"), "67890").unwrap();
    fs::write(
        copy.join("Dockerfile"),
        "FROM busybox:local\nCOPY a b /x/\n",
    )
    .unwrap();
    // The stat cache keeps no record of a file changed in the last 2 s (racy): let them age.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let in_pty = || {
        let o = std::process::Command::new("script")
            .args(["-qec"])
            .arg(format!(
                "{} build {}",
                strata_tests::strata_bin(),
                copy.display()
            ))
            .arg("/dev/null")
            .env("STRATA_ROOT", env.root())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = in_pty();
    assert!(
        out.contains(" => [internal] load build context: 2 files, 2 read (10B)"),
        "{out}"
    );
    let out = in_pty();
    assert!(
        out.contains(" => [internal] load build context: 2 files, 0 read (0B)"),
        "{out}"
    );
}
