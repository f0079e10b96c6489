//! `--progress=plain` against Docker 20.10's BuildKit, line for line (issue 11, item 8). Each
//! peer scenario (conformance/scenarios) and one Dockerfile of this file's own (exec
//! form, a cache mount with `id=`, a stage built FROM a stage, ARG expansion in step names)
//! is built by BuildKit (`DOCKER_BUILDKIT=1 docker build --progress=plain --no-cache`) and by
//! strata in the same run, and both outputs are normalised by [`normalise`] and must be equal.
//!
//! The normaliser's rules, and why:
//! - Output is cut into vertices by their `#N` number and each vertex is compared by its
//!   name: the `#N` numbers themselves and the order in which concurrent vertices start
//!   differ from run to run in BuildKit too. A header printed again for the same vertex (when
//!   lines of concurrent vertices interleave) is not a line of its own, nor is the `#N ...`
//!   line that marks where another vertex's lines came in (both printers print them; where
//!   they fall depends on timing).
//! - Durations go: `#N 0.045 text` compares as `text`, `DONE 0.1s` as `DONE`.
//! - BuildKit's `#N sha256:<digest>` lines (the vertex digest Docker 20.10 prints) go.
//! - BuildKit's own vertices that strata has no counterpart for go: `[internal] load build
//!   definition ...`, `[internal] load .dockerignore`, `[internal] load metadata for ...`,
//!   `[internal] load build context` (their transfer sizes differ by run anyway) and
//!   `exporting to image`; so does strata's export summary, vertex `#0`.
//! - strata's `cache miss: REASON` lines go: strata explains each cache miss, BuildKit never.
//! - The state of a `FROM` vertex is not compared (`CACHED` or `DONE`): BuildKit says CACHED
//!   when the daemon has the base unpacked already, which depends on what ran before. Nor is
//!   its `[stage n/m]` prefix: stages starting from the same image share one FROM vertex,
//!   which BuildKit names after one of them (which one varies), or after the step of a
//!   concurrent build of another client that shares the vertex (seen: `FROM
//!   docker.io/library/busybox:local` without a prefix); both print it once. The
//!   numbering of FROM is checked by `step_names`, `single_stage` and the planner's tests.
//! - `CACHED` compares as `DONE` on the vertices of file operations (WORKDIR, COPY, ADD): in
//!   Docker 20.10's BuildKit (v0.8.3, frontend/dockerfile/dockerfile2llb/convert.go) only
//!   `dispatchRun` adds `llb.IgnoreCache` for `--no-cache`; `dispatchWorkdir`'s `llb.Mkdir`
//!   and the COPY file ops get none, so BuildKit serves them from the daemon's cache of
//!   earlier builds (seen: c-static's `WORKDIR /src` CACHED under `--no-cache`). RUN's state
//!   is compared.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::Env;

const DOCKER: &str = "/usr/bin/docker";
const SCENARIOS: &str = "conformance/scenarios";
const BUSYBOX: &str = "/var/tmp/strata-peers/busybox-rootfs.tar";
const DEBIAN_BUILD: &str = "/var/tmp/strata-peers/debian-build-rootfs.tar";

/// The vertices of a plain progress output as (name, normalised lines), sorted by name.
fn normalise(out: &str) -> Vec<(String, Vec<String>)> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut lines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(name) = names.get(n) else {
            let name = match (text.split_once("] FROM "), text.strip_prefix("FROM ")) {
                (Some((_, image)), _) if text.starts_with('[') => format!("[*] FROM {image}"),
                (_, Some(image)) => format!("[*] FROM {image}"),
                _ => text.to_string(),
            };
            names.insert(n.to_string(), name);
            lines.insert(n.to_string(), Vec::new());
            continue;
        };
        let is_from = name.starts_with("[*] FROM ");
        let is_run = name.contains("] RUN ") || name.starts_with("RUN ");
        if text == name || text == "..." || (is_from && text.contains("] FROM ")) {
            continue; // the header again, or the mark of an interruption
        }
        let text = if let Some(d) = text.strip_prefix("sha256:") {
            if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            text.to_string()
        } else if text.starts_with("cache miss: ") {
            continue;
        } else if text.starts_with("DONE ") || (!is_run && text == "CACHED") {
            "DONE".to_string()
        } else {
            match text.split_once(' ') {
                Some((t, log))
                    if t.contains('.') && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
                {
                    log.to_string()
                }
                _ => text.to_string(),
            }
        };
        lines.get_mut(n).unwrap().push(text);
    }
    let mut v: Vec<(String, Vec<String>)> = names
        .into_iter()
        .filter(|(n, name)| {
            n != "0"
                && !name.starts_with("[internal] load ")
                && name.as_str() != "exporting to image"
        })
        .map(|(n, name)| {
            let l = lines.remove(&n).unwrap_or_default();
            (name, l)
        })
        .collect();
    v.sort();
    v
}

fn render(v: &[(String, Vec<String>)]) -> String {
    let mut s = String::new();
    for (name, lines) in v {
        s.push_str(&format!("# {name}\n"));
        for l in lines {
            s.push_str(&format!("  {l}\n"));
        }
    }
    s
}

fn docker_ready() {
    let o = Command::new(DOCKER)
        .args(["image", "inspect", "--format", "{{.Id}}", "busybox:local"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {DOCKER} ({e}): run scripts/peers.sh"));
    assert!(
        o.status.success(),
        "docker has no busybox:local: run scripts/peers.sh\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Builds `ctx` (with `dockerfile`, if given) with BuildKit and strata; returns both plain
/// outputs.
fn both(ctx: &Path, dockerfile: Option<&Path>, target: Option<&str>) -> (String, String) {
    let _serial = crate::common::exclusive();
    docker_ready();
    let tag = format!(
        "strata-progress/{}:{}",
        ctx.file_name().unwrap().to_string_lossy(),
        std::process::id()
    );
    let mut extra: Vec<String> = Vec::new();
    if let Some(f) = dockerfile {
        extra.extend(["-f".into(), f.to_str().unwrap().into()]);
    }
    if let Some(t) = target {
        extra.extend(["--target".into(), t.into()]);
    }
    // On this shared machine Docker 20.10's runc now and then fails to start a step's
    // container ("runc run failed: unable to start container process: exec: \"/bin/sh\":
    // stat /bin/sh: no such file or directory") while other builders use the daemon: that
    // build of BuildKit's is tried again, up to 5 times. Any other failure fails the test.
    let mut attempt = 0;
    let bk = loop {
        attempt += 1;
        let o = Command::new(DOCKER)
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "--progress=plain", "--no-cache", "--network=none"])
            .args(&extra)
            .args(["-t", &tag])
            .arg(ctx)
            .output()
            .expect("run docker build");
        let bk = String::from_utf8_lossy(&o.stderr).to_string();
        let _ = Command::new(DOCKER).args(["rmi", &tag]).output();
        if o.status.success() {
            break bk;
        }
        let flake = bk.contains("runc run failed: unable to start container process");
        assert!(flake && attempt < 5, "docker build failed:\n{bk}");
        eprintln!("docker build: runc failed to start a container, again ({attempt})");
    };

    let env = Env::new();
    env.ok(&["import", BUSYBOX, "busybox:local"]);
    if ctx.ends_with("c-static") {
        env.ok(&["import", DEBIAN_BUILD, "debian-build:local"]);
    }
    let o = env
        .cmd()
        .args(["build", "--progress=plain", "--network", "none"])
        .args(&extra)
        .args(["-t", &tag])
        .arg(ctx)
        .output()
        .expect("run strata build");
    let st = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "strata build failed:\n{st}");
    (bk, st)
}

fn compare(label: &str, bk: &str, st: &str) {
    let (b, s) = (render(&normalise(bk)), render(&normalise(st)));
    assert!(
        b == s,
        "{label}: progress differs after normalising\n--- BuildKit\n{b}--- strata\n{s}\n\
         --- BuildKit as printed\n{bk}\n--- strata as printed\n{st}"
    );
    println!("{label}: {} vertices equal", normalise(bk).len());
}

fn scenario(name: &str, target: Option<&str>) {
    let ctx = strata_tests::repo_root().join(SCENARIOS).join(name);
    assert!(ctx.is_dir(), "no scenario {}", ctx.display());
    let (bk, st) = both(&ctx, None, target);
    compare(name, &bk, &st);
}

#[test]
fn devprod_production() {
    strata_tests::require!(Root, Docker, PeersData);
    scenario("devprod", None);
}

#[test]
fn devprod_development() {
    strata_tests::require!(Root, Docker, PeersData);
    scenario("devprod", Some("development"));
}

#[test]
fn runsteps() {
    strata_tests::require!(Root, Docker, PeersData);
    scenario("runsteps", None);
}

#[test]
fn parallel() {
    strata_tests::require!(Root, Docker, PeersData);
    scenario("parallel", None);
}

#[test]
fn c_static() {
    strata_tests::require!(Root, Docker, PeersData);
    scenario("c-static", None);
}

#[test]
fn bigtree() {
    strata_tests::require!(Root, Docker, PeersData);
    scenario("bigtree", None);
}

/// The names the issue found wrong: exec form as written, a cache mount's `id=`, ARG values
/// in the name (RUN keeps quotes and unset variables), COPY/WORKDIR expanded, the keyword
/// upper-cased, comment lines of a continuation dropped, a stage FROM a stage numbered from 1.
#[test]
fn step_names() {
    strata_tests::require!(Root, Docker, PeersData);
    let d = tempfile::tempdir().unwrap();
    let ctx = d.path().join("names");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("f"), "f\n").unwrap();
    let df = d.path().join("Dockerfile");
    std::fs::write(
        &df,
        "FROM busybox:local AS base\n\
         ARG V=val\n\
         RUN [\"sh\", \"-c\",  \"echo exec $0\"]\n\
         RUN --mount=type=cache,target=/c,id=foo,sharing=locked echo \"$V\" $NOPE '$V' \\\n\
         \x20 # a comment line\n\
         \x20 && true\n\
         WORKDIR \"/w$V\"\n\
         copy f ./$V/\n\
         FROM base AS b\n\
         ENV E=e\n\
         RUN echo x $E\n",
    )
    .unwrap();
    let (bk, st) = both(&ctx, Some(&df), None);
    compare("step_names", &bk, &st);
    for want in [
        "[base 2/5] RUN [\"sh\", \"-c\",  \"echo exec $0\"]",
        "[base 3/5] RUN --mount=type=cache,target=/c,id=foo,sharing=locked echo \"val\" $NOPE '$V'   && true",
        "[base 4/5] WORKDIR /wval",
        "[base 5/5] COPY f ./val/",
        "[b 1/1] RUN echo x e",
    ] {
        assert!(st.contains(want), "strata printed no {want:?}:\n{st}");
    }
}

/// A lone stage is not named in the prefix, even with `AS` (`[1/2]`, as in the stored
/// reference build-buildkit-failing-run.txt).
#[test]
fn single_stage() {
    strata_tests::require!(Root, Docker, PeersData);
    let d = tempfile::tempdir().unwrap();
    let ctx = d.path().join("single");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local AS base\nRUN echo one\n",
    )
    .unwrap();
    let (bk, st) = both(&ctx, None, None);
    compare("single_stage", &bk, &st);
    assert!(
        st.contains(" [2/2] RUN echo one") && !st.contains("[base "),
        "{st}"
    );
}

/// A `# syntax=` line naming the standard frontend: said once that the built-in frontend
/// serves it (BuildKit would pull the image; there is no registry to compare with here).
#[test]
fn syntax_notice() {
    strata_tests::require!(Root, Docker, PeersData);
    let env = Env::new();
    env.ok(&["import", BUSYBOX, "busybox:local"]);
    let ctx = env.path("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "# syntax=docker/dockerfile:1.4\nFROM busybox:local AS a\nRUN true\nFROM a\nRUN true\n",
    )
    .unwrap();
    let o = env
        .cmd()
        .args(["build", "--progress=plain", "-t", "s:1"])
        .arg(&ctx)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    let notice =
        "[internal] # syntax=docker/dockerfile:1.4 is served by the built-in Dockerfile frontend";
    assert_eq!(e.matches(notice).count(), 1, "{e}");
    assert_eq!(e.matches("served by").count(), 1, "{e}");
}

#[test]
fn normaliser_rules() {
    let bk = "#1 [internal] load build definition from Dockerfile\n\
              #1 sha256:a00db4da3226783848bc4c6eab3c37ac8d5c00cb76e6351027ba433e7154bd49\n\
              #1 transferring dockerfile: 2.04kB done\n#1 DONE 0.0s\n\n\
              #4 [a 1/2] FROM docker.io/library/busybox:local\n#4 CACHED\n\n\
              #5 [a 2/2] RUN echo hi\n#5 0.045 hi\n#5 ...\n\n#6 [b 2/2] RUN true\n#6 DONE 0.1s\n\n\
              #5 [a 2/2] RUN echo hi\n#5 DONE 0.2s\n\n\
              #9 exporting to image\n#9 DONE 0.0s\n";
    let st = "#1 [b 1/2] FROM docker.io/library/busybox:local\n#1 DONE 0.0s\n\n\
              #3 [b 2/2] RUN true\n#3 cache miss: not built before\n#3 DONE 0.0s\n\n\
              #2 [a 2/2] RUN echo hi\n#2 0.012 hi\n#2 DONE 0.0s\n\n\
              #0 writing image sha256:931d done\n#0 DONE 0.6s (2 RUN executed)\n";
    assert_eq!(normalise(bk), normalise(st));
    assert_eq!(
        render(&normalise(st)),
        "# [*] FROM docker.io/library/busybox:local\n  DONE\n\
         # [a 2/2] RUN echo hi\n  hi\n  DONE\n# [b 2/2] RUN true\n  DONE\n"
    );
    // A file operation's CACHED counts as DONE (BuildKit 20.10 keeps it cached under
    // --no-cache); a RUN's does not.
    assert_eq!(
        normalise("#7 [b 2/4] WORKDIR /src\n#7 CACHED\n"),
        normalise("#3 [b 2/4] WORKDIR /src\n#3 DONE 0.0s\n")
    );
    assert_ne!(
        normalise("#7 [b 4/4] RUN true\n#7 CACHED\n"),
        normalise("#3 [b 4/4] RUN true\n#3 DONE 0.0s\n")
    );
    // A changed line is seen.
    assert_ne!(
        normalise(bk),
        normalise(&st.replace("#2 0.012 hi", "#2 0.012 ho"))
    );
}
