//! Compatibility with real BuildKit on the peer scenarios in conformance/scenarios: each
//! scenario is built by Docker 20.10's BuildKit (`DOCKER_BUILDKIT=1 docker build`) and by
//! strata (in a private store that imports the same base rootfs tarballs), both images are
//! saved as docker-archives and normalised with the conformance suite's trusted normaliser
//! (conformance/buildkit-cases/tools/imgtree.py), and the results must be equal:
//! every config field imgtree prints, os/arch, and the whole file tree (type, mode, uid:gid,
//! path, content hash or link target). As `bk_norm` in tools/common.sh does, the layer count
//! and the bare mount-point directories /dev /proc /sys /etc are not compared.
//!
//! Files whose content is random by design (bigtree's RUN reads /dev/urandom) are compared by
//! size instead of content hash; see RANDOM_CONTENT.
//!
//! Docker and the base images come from scripts/peers.sh (run by scripts/test.sh). When docker
//! is not reachable these tests FAIL, they never skip. Every docker image they create has a
//! name unique to the test process and is removed afterwards; no other docker image is touched.
//!
//! The scenarios run one at a time (a lock), even when the harness runs tests in parallel:
//! bigtree and c-static each take tens of seconds and the machine has two cores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use crate::common::Env;

/// Differences that are accepted, as (scenario, normalised line as BuildKit prints it or as
/// strata prints it, reason). Only BuildKit-version noise that can be shown to be such may be
/// listed here. Today there is none: every line must be equal.
const EXPECTED_DIFFERENCES: &[(&str, &str, &str)] = &[];

/// Path prefixes, per scenario, of regular files whose content is random by design: these are
/// compared by size (`size=N`) instead of content hash. Everything else keeps its hash.
const RANDOM_CONTENT: &[(&str, &str, &str)] = &[(
    "bigtree",
    "/data/",
    "the gen stage fills /out (copied to /data) with bytes from /dev/urandom",
)];

const DOCKER: &str = "/usr/bin/docker";
const SCENARIOS: &str = "conformance/scenarios";
const IMGTREE: &str = "conformance/buildkit-cases/tools/imgtree.py";
const PEERS_DATA: &str = "/var/tmp/strata-peers";
const SETUP_HINT: &str = "run scripts/peers.sh (as root) to install and start Docker \
                          20.10 with BuildKit and to make busybox:local and debian-build:local";

/// Prints `size PATH N` for every regular file of the image's final root filesystem, applying
/// the layers in order with OCI whiteouts and paths spelled exactly as imgtree.py spells them.
const SIZES_PY: &str = r#"
import io, json, sys, tarfile
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))[0]
sizes = {}
for name in m["Layers"]:
    layer = tarfile.open(fileobj=io.BytesIO(t.extractfile(name).read()))
    members = layer.getmembers()
    for e in members:
        path = "/" + e.name.lstrip("./").rstrip("/")
        d, _, leaf = path.rpartition("/")
        if leaf == ".wh..wh..opq":
            for p in [p for p in sizes if p.startswith(d + "/")]:
                del sizes[p]
        elif leaf.startswith(".wh."):
            gone = d + "/" + leaf[4:]
            for p in [p for p in sizes if p == gone or p.startswith(gone + "/")]:
                del sizes[p]
    for e in members:
        path = "/" + e.name.lstrip("./").rstrip("/")
        leaf = path.rpartition("/")[2]
        if leaf.startswith(".wh.") or path == "/":
            continue
        if e.isfile():
            sizes[path] = e.size
        else:
            for p in [p for p in sizes if p == path or p.startswith(path + "/")]:
                del sizes[p]
for p in sorted(sizes):
    print("size %s %d" % (p, sizes[p]))
"#;

fn in_repo(rel: &str) -> PathBuf {
    strata_tests::repo_root().join(rel)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn docker() -> Command {
    let mut c = Command::new(DOCKER);
    c.env("DOCKER_BUILDKIT", "1");
    c
}

/// Docker reachable, base images present in docker, rootfs tarballs present: or a failure
/// that says how to get them.
fn require_peers(needs_debian: bool) {
    let info = docker()
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match info {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "docker is not reachable ({DOCKER} version failed: {}): {SETUP_HINT}",
            text(&o).trim()
        ),
        Err(e) => panic!("cannot run {DOCKER} ({e}): {SETUP_HINT}"),
    }
    let mut images = vec![("busybox:local", "busybox-rootfs.tar")];
    if needs_debian {
        images.push(("debian-build:local", "debian-build-rootfs.tar"));
    }
    for (image, tar) in images {
        let o = docker()
            .args(["image", "inspect", "--format", "{{.Id}}", image])
            .output()
            .expect("run docker image inspect");
        assert!(
            o.status.success(),
            "docker has no image {image}: {SETUP_HINT}"
        );
        let p = Path::new(PEERS_DATA).join(tar);
        assert!(p.is_file(), "{} is missing: {SETUP_HINT}", p.display());
    }
}

/// BuildKit's build of `ctx` (with `extra` flags, no network) saved as a docker-archive at
/// `archive`; the image, named `tag`, is removed again.
fn buildkit_archive(ctx: &str, tag: &str, extra: &[&str], archive: &Path) {
    let _images = DockerImages(vec![tag.to_string()]);
    let o = docker()
        .args(["build", "--network=none"])
        .args(extra)
        .args(["-t", tag, ctx])
        .output()
        .expect("run docker build");
    assert!(
        o.status.success(),
        "docker build failed:\n{}",
        tail(&text(&o), 40)
    );
    let o = docker()
        .args(["save", "-o", archive.to_str().unwrap(), tag])
        .output()
        .expect("run docker save");
    assert!(o.status.success(), "docker save failed:\n{}", text(&o));
}

/// Removes the docker images this test created, by their unique names only.
struct DockerImages(Vec<String>);

impl Drop for DockerImages {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new(DOCKER).args(["rmi", name]).output();
        }
    }
}

fn python(args: &[&str]) -> String {
    let o = Command::new("python3")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    assert!(
        o.status.success(),
        "python3 {:?} failed ({}):\n{}",
        args.iter().take(1).collect::<Vec<_>>(),
        o.status,
        text(&o)
    );
    String::from_utf8(o.stdout).expect("utf-8 output")
}

/// imgtree.py's output for a docker-archive, filtered like `bk_norm`; files with random
/// content below one of `random` prefixes get `size=N` in place of their content hash.
fn normalised(archive: &Path, random: &[&str]) -> Vec<String> {
    let archive = archive.to_str().unwrap();
    let out = python(&[in_repo(IMGTREE).to_str().unwrap(), archive]);
    let sizes: BTreeMap<String, String> = if random.is_empty() {
        BTreeMap::new()
    } else {
        python(&["-c", SIZES_PY, archive])
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("size ")?;
                let (p, n) = rest.rsplit_once(' ')?;
                Some((p.to_string(), n.to_string()))
            })
            .collect()
    };
    let mut lines = Vec::new();
    for line in out.lines() {
        if line.starts_with("layers ") || is_bare_mount_dir(line) {
            continue;
        }
        let f: Vec<&str> = line.splitn(5, ' ').collect();
        if f.len() == 5 && f[0] == "f" && random.iter().any(|r| f[3].starts_with(r)) {
            let size = sizes
                .get(f[3])
                .unwrap_or_else(|| panic!("no size for {} in {archive}", f[3]));
            lines.push(format!("{} {} {} {} size={size}", f[0], f[1], f[2], f[3]));
        } else {
            lines.push(line.to_string());
        }
    }
    lines
}

/// `^d [0-7o]+ [0-9]+:[0-9]+ /(dev|proc|sys|etc)$`, as bk_norm drops it.
fn is_bare_mount_dir(line: &str) -> bool {
    let f: Vec<&str> = line.split(' ').collect();
    f.len() == 4
        && f[0] == "d"
        && !f[1].is_empty()
        && f[1].chars().all(|c| matches!(c, '0'..='7' | 'o'))
        && f[2]
            .split_once(':')
            .is_some_and(|(u, g)| is_digits(u) && is_digits(g))
        && matches!(f[3], "/dev" | "/proc" | "/sys" | "/etc")
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The key a normalised line is sorted and matched by: its path for file lines, its first
/// word (`config`, `os`) otherwise.
fn key(line: &str) -> String {
    let f: Vec<&str> = line.splitn(5, ' ').collect();
    if f.len() >= 4 && f[0].len() == 1 && f[1].starts_with("0o") {
        format!("2 {}", f[3])
    } else {
        format!("1 {}", f[0])
    }
}

fn expected(scenario: &str, line: &str) -> bool {
    EXPECTED_DIFFERENCES
        .iter()
        .any(|(s, l, _)| *s == scenario && *l == line)
}

/// Compare BuildKit's and strata's normalised images; returns the number of file lines
/// compared, or a readable report of the differences.
fn compare(scenario: &str, bk: &[String], st: &[String]) -> Result<usize, String> {
    let index = |v: &[String]| -> BTreeMap<String, String> {
        v.iter().map(|l| (key(l), l.clone())).collect()
    };
    let (b, s) = (index(bk), index(st));
    let mut keys: Vec<&String> = b.keys().chain(s.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut diffs = Vec::new();
    for k in keys {
        let (x, y) = (b.get(k), s.get(k));
        if x == y {
            continue;
        }
        if x.is_some_and(|l| expected(scenario, l)) || y.is_some_and(|l| expected(scenario, l)) {
            continue;
        }
        let what = k.split_once(' ').unwrap().1;
        diffs.push(match (x, y) {
            (Some(x), Some(y)) => format!("  {what}:\n    buildkit: {x}\n    strata:   {y}"),
            (Some(x), None) => format!("  {what}: only in buildkit: {x}"),
            (None, Some(y)) => format!("  {what}: only in strata:   {y}"),
            (None, None) => unreachable!(),
        });
    }
    if diffs.is_empty() {
        return Ok(bk.iter().filter(|l| key(l).starts_with("2 ")).count());
    }
    let n = diffs.len();
    diffs.truncate(30);
    Err(format!(
        "{n} difference(s) between BuildKit and strata{}:\n{}",
        if n > 30 { " (first 30)" } else { "" },
        diffs.join("\n")
    ))
}

/// Build one scenario (optionally one target) with BuildKit and with strata and compare.
fn scenario(name: &str, target: Option<&str>) {
    let _serial = crate::common::exclusive();
    let needs_debian = name == "c-static";
    require_peers(needs_debian);
    let label = match target {
        Some(t) => format!("{name} --target {t}"),
        None => name.to_string(),
    };
    let ctx = in_repo(SCENARIOS).join(name);
    assert!(ctx.is_dir(), "no scenario {}", ctx.display());
    let ctx = ctx.to_str().unwrap().to_string();
    let tag = format!(
        "strata-compat/{name}{}:{}",
        target.map(|t| format!("-{t}")).unwrap_or_default(),
        std::process::id()
    );
    let mut target_args: Vec<&str> = Vec::new();
    if let Some(t) = target {
        target_args.extend(["--target", t]);
    }
    let env = Env::new();

    // BuildKit
    let t0 = Instant::now();
    let images = DockerImages(vec![tag.clone()]);
    let o = docker()
        .args(["build", "--network=none"])
        .args(&target_args)
        .args(["-t", &tag, &ctx])
        .output()
        .expect("run docker build");
    assert!(
        o.status.success(),
        "{label}: docker build failed ({}):\n{}",
        o.status,
        tail(&text(&o), 40)
    );
    let bk_tar = env.path("buildkit.tar");
    let save = || {
        docker()
            .args(["save", "-o", bk_tar.to_str().unwrap(), &tag])
            .output()
            .expect("run docker save")
    };
    let mut o = save();
    // Docker 20.10 (the peer, not strata) fails a save now and then with "open
    // /var/lib/docker/overlay2/.../merged/...: no such file or directory" (seen once in CI
    // on bigtree). One retry, said loudly; a second failure fails the test.
    if !o.status.success() && text(&o).contains("/var/lib/docker/overlay2/") {
        eprintln!(
            "PEER FLAKE: docker save failed once, retrying:\n{}",
            text(&o)
        );
        o = save();
    }
    assert!(o.status.success(), "docker save failed:\n{}", text(&o));
    drop(images);
    let bk_time = t0.elapsed();

    // strata, in a private store with the same base rootfs tarballs
    let t0 = Instant::now();
    let mut bases = vec![("busybox-rootfs.tar", "busybox:local")];
    if needs_debian {
        bases.push(("debian-build-rootfs.tar", "debian-build:local"));
    }
    for (tar, image) in bases {
        let tar = Path::new(PEERS_DATA).join(tar);
        env.ok(&["import", tar.to_str().unwrap(), image]);
    }
    let import_time = t0.elapsed();
    let t0 = Instant::now();
    let mut args = vec!["build", "--network", "none"];
    args.extend(&target_args);
    args.extend(["-t", &tag, &ctx]);
    let o = env.run(&args);
    assert!(
        o.status.success(),
        "{label}: strata build failed ({}):\n{}",
        o.status,
        tail(&text(&o), 40)
    );
    let st_tar = env.path("strata.tar");
    env.ok(&["save", "-o", st_tar.to_str().unwrap(), &tag]);
    let st_time = t0.elapsed();

    let random: Vec<&str> = RANDOM_CONTENT
        .iter()
        .filter(|(s, _, _)| *s == name)
        .map(|(_, p, _)| *p)
        .collect();
    let bk = normalised(&bk_tar, &random);
    let st = normalised(&st_tar, &random);
    let timing = format!(
        "buildkit {:.1}s, strata import {:.1}s + build {:.1}s",
        bk_time.as_secs_f64(),
        import_time.as_secs_f64(),
        st_time.as_secs_f64()
    );
    match compare(name, &bk, &st) {
        Ok(n) => println!(
            "compat {label}: config equal, {n} files equal{} ({timing})",
            if random.is_empty() {
                String::new()
            } else {
                format!(" (files under {} by size)", random.join(" "))
            }
        ),
        Err(report) => panic!("compat {label}: {report}\n({timing})"),
    }
}

#[test]
fn bigtree() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    scenario("bigtree", None);
}

#[test]
fn c_static() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    scenario("c-static", None);
}

#[test]
fn devprod_production() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    scenario("devprod", None);
}

#[test]
fn devprod_development() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    scenario("devprod", Some("development"));
}

#[test]
fn parallel() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    scenario("parallel", None);
}

#[test]
fn runsteps() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    scenario("runsteps", None);
}

#[test]
fn normaliser_filters_like_bk_norm() {
    assert!(is_bare_mount_dir("d 0o755 0:0 /dev"));
    assert!(is_bare_mount_dir("d 0o555 0:0 /proc"));
    assert!(!is_bare_mount_dir("d 0o755 0:0 /etc/x"));
    assert!(!is_bare_mount_dir("f 0o644 0:0 /etc"));
    assert_eq!(key("f 0o644 0:0 /a b 1234"), "2 /a");
    assert_eq!(key("config {\"Cmd\": null}"), "1 config");
    let bk = vec!["config {}".to_string(), "f 0o644 0:0 /a 11".to_string()];
    let st = vec!["config {}".to_string(), "f 0o600 0:0 /a 11".to_string()];
    let err = compare("x", &bk, &st).unwrap_err();
    assert!(err.contains("buildkit: f 0o644 0:0 /a 11"), "{err}");
    assert_eq!(compare("x", &bk, &bk), Ok(1));
}

/// Lists a tar stream as `NAME TYPE MODE SIZE SHA256 LINK UID:GID`, sorted (names without
/// `./` or a trailing `/`).
const TAR_LIST_PY: &str = r#"
import hashlib, sys, tarfile
t = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
rows = []
for e in t:
    h = hashlib.sha256(t.extractfile(e).read()).hexdigest() if e.isfile() else "-"
    n = e.name.lstrip("./").rstrip("/") or "."
    rows.append(f"{n} {e.type!r} {oct(e.mode)} {e.size if e.isfile() else '-'} {h} {e.linkname} {e.uid}:{e.gid}")
print("\n".join(sorted(rows)))
"#;

fn tar_list(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", TAR_LIST_PY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "not a tar stream: {}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// `build -o -` streams the same tar of the final root filesystem as Docker 20.10's BuildKit
/// (names, types, modes, contents, link targets, owners), and both refuse a terminal as
/// stdout with exit code 1.
#[test]
fn output_to_stdout_like_buildkit() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    let _serial = crate::common::exclusive();
    require_peers(false);
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local\nCOPY f /app/f\nRUN echo made > /made && ln -s /made /app/l && echo noise\n",
    )
    .unwrap();
    std::fs::write(ctx.join("f"), "from the context\n").unwrap();
    let ctx = ctx.to_str().unwrap();
    let o = docker()
        .args(["build", "--network=none", "-o", "-", ctx])
        .output()
        .expect("run docker build");
    assert!(o.status.success(), "docker build -o -: {}", text(&o));
    let bk = tar_list(&o.stdout);
    let base = Path::new(PEERS_DATA).join("busybox-rootfs.tar");
    env.ok(&["import", base.to_str().unwrap(), "busybox:local"]);
    // In the test's own directory, where a directory named `-` would go if `-` were a path.
    let o = env
        .cmd()
        .args(["build", "--network", "none", "-o", "-", ctx])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "strata build -o -: {}", text(&o));
    let st = tar_list(&o.stdout);
    assert!(bk.contains("made "), "{bk}");
    assert_eq!(bk, st, "the tar streams differ");
    // A terminal as stdout: both refuse, exit code 1.
    for (who, line) in [
        (
            "docker",
            format!("DOCKER_BUILDKIT=1 {DOCKER} build --network=none -o - {ctx}"),
        ),
        (
            "strata",
            format!(
                "{} --root {} build --network none -o - {ctx}",
                strata_tests::strata_bin(),
                env.root().display()
            ),
        ),
    ] {
        let o = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(env.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run script (util-linux)");
        assert_eq!(o.status.code(), Some(1), "{who}: {}", text(&o));
        assert!(
            text(&o).contains("refusing to write"),
            "{who}: {}",
            text(&o)
        );
    }
}

/// The `created_by` of every RUN in a docker-archive's config history, without BuildKit's
/// ` # buildkit` suffix (that suffix is issue 11, item 7, compared elsewhere).
const RUN_HISTORY_PY: &str = r#"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))
c = json.load(t.extractfile(m[0]["Config"]))
for h in c.get("history", []):
    b = h.get("created_by", "")
    if b.startswith("RUN "):
        print(b[:-len(" # buildkit")] if b.endswith(" # buildkit") else b)
"#;

/// Issue 11, item 1, live: ARG values of a stage reach the stages built FROM it (files the
/// RUNs write, the config, every file), and the RUN history lines list what BuildKit lists.
#[test]
fn stage_arg_inheritance() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    let _serial = crate::common::exclusive();
    require_peers(false);
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG G=global\n\
         FROM busybox:local AS a\n\
         ARG X=fromA\nARG Y=ya\nARG G=p\nARG H=h\nARG P=parg\nENV P=penv\n\
         ONBUILD RUN echo \"onbuild X=$X\" > /onbuild\n\
         ENV V=env\nARG V=arg\nLABEL v=$V\n\
         RUN echo \"V=$V\" > /a && env | grep ^V= >> /a\n\
         FROM a AS b\n\
         ARG Y\nARG G\nARG Q\nARG W=1\nARG W\n\
         RUN echo \"X=$X Y=$Y G=$G H=$H P=$P Q=$Q W=$W\" > /out\n\
         ENV E=$X\nLABEL y=$Y\nWORKDIR /w-$H\n\
         FROM b AS c\n\
         ARG X=fromC\n\
         RUN echo \"X=$X Y=$Y V=$V\" > /out2 && env | grep ^V= >> /out2\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let tag = format!("strata-compat/stage-args:{}", std::process::id());
    let bk_tar = env.path("buildkit.tar");
    buildkit_archive(ctx, &tag, &[], &bk_tar);

    let tar = Path::new(PEERS_DATA).join("busybox-rootfs.tar");
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    env.ok(&["build", "--network", "none", "-q", "-t", &tag, ctx]);
    let st_tar = env.path("strata.tar");
    env.ok(&["save", "-o", st_tar.to_str().unwrap(), &tag]);

    let (bk, st) = (normalised(&bk_tar, &[]), normalised(&st_tar, &[]));
    if let Err(report) = compare("stage-args", &bk, &st) {
        panic!("stage ARG inheritance: {report}");
    }
    let bk_hist = python(&["-c", RUN_HISTORY_PY, bk_tar.to_str().unwrap()]);
    let st_hist = python(&["-c", RUN_HISTORY_PY, st_tar.to_str().unwrap()]);
    assert_eq!(st_hist, bk_hist, "RUN history lines differ");
    // What BuildKit wrote, so a change on either side shows here first.
    assert!(
        bk_hist.contains("RUN |5 Y=ya G=global Q= W=1 W=1 /bin/sh -c ")
            && bk_hist.contains("RUN |1 X=fromC /bin/sh -c "),
        "{bk_hist}"
    );
}

/// `RUN --mount=...,source=` against BuildKit in the same run: the same Dockerfile (a file, a
/// directory of two layers with a whiteout, relative, `..` and symlink sources that must stay
/// inside the stage, an image and the context as sources, a seeded cache) exported with
/// `-o type=local` by both; the files the RUNs wrote under /r must be equal, and so must the
/// steps' printed names. (A link to the stage's root used as a *middle* component, e.g.
/// `d/root/c` with `d/root -> /`, is "not found" in Docker 20.10's BuildKit, while strata
/// resolves it inside the stage; mount_source.rs tests that strata keeps it inside.)
#[test]
fn mount_sources() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    let _serial = crate::common::exclusive();
    require_peers(false);
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(ctx.join("sub")).unwrap();
    std::fs::write(ctx.join("sub/s.txt"), "subf\n").unwrap();
    let df = "FROM busybox:local AS a\n\
RUN mkdir -p /d/e && echo cval > /c && echo dval > /d/e/f && echo gone > /d/gone \
 && ln -s /d /abs && ln -s ../../c /d/up && ln -s / /d/root && ln -s ../../../.. /d/dotdot\n\
RUN rm /d/gone && echo later > /d/later\n\
FROM busybox:local\n\
RUN mkdir /r\n\
RUN --mount=type=bind,from=a,source=/c,target=/mnt/c cat /mnt/c > /r/file\n\
RUN --mount=type=bind,from=a,source=d,target=/mnt/d ls /mnt/d > /r/dir-list && cat /mnt/d/e/f > /r/dir-f\n\
RUN --mount=type=bind,from=a,source=abs/e/f,target=/mnt/x cat /mnt/x > /r/abs-link\n\
RUN --mount=type=bind,from=a,source=d/up,target=/mnt/x cat /mnt/x > /r/rel-link\n\
RUN --mount=type=bind,from=a,source=../../../c,target=/mnt/x cat /mnt/x > /r/dotdot\n\
RUN --mount=type=bind,from=a,source=d/root,target=/mnt/x ls /mnt/x > /r/root-link\n\
RUN --mount=type=bind,from=a,source=d/dotdot,target=/mnt/x ls /mnt/x > /r/dotdot-link\n\
RUN --mount=type=bind,from=busybox:local,source=/bin,target=/mnt/x ls /mnt/x > /r/image\n\
RUN --mount=type=bind,source=sub/s.txt,target=/mnt/s cat /mnt/s > /r/context-file\n\
RUN --mount=type=bind,from=a,source=/c,target=/mnt/c,rw echo changed > /mnt/c && cat /mnt/c > /r/rw\n\
RUN --mount=type=bind,target=/mnt/c,source=/c,from=a cat /mnt/c > /r/after-rw\n\
RUN --mount=type=cache,id=compat-seed,from=a,source=d/e,target=/mnt/cc ls /mnt/cc > /r/cache\n";
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let ctx = ctx.to_str().unwrap();
    let (bk_out, st_out) = (env.path("bk-out"), env.path("st-out"));
    let bk_build = || {
        docker()
            .args([
                "build",
                "--network=none",
                "--no-cache",
                "--progress=plain",
                "-o",
            ])
            .arg(format!("type=local,dest={}", bk_out.display()))
            .arg(ctx)
            .output()
            .expect("run docker build")
    };
    let mut o = bk_build();
    // BuildKit 20.10 (the peer, not strata) fails this build now and then, mounting the
    // relative link's target: "stat .../buildkit-mountNNN/c: no such file or directory"
    // (seen once in ~20 CI runs). One retry, said loudly; a second failure fails the test.
    if !o.status.success() && text(&o).contains("buildkit-mount") {
        eprintln!(
            "PEER FLAKE: docker build failed once, retrying:\n{}",
            tail(&text(&o), 6)
        );
        o = bk_build();
    }
    let bk_log = text(&o);
    assert!(
        o.status.success(),
        "docker build failed:\n{}",
        tail(&bk_log, 40)
    );
    let tar = Path::new(PEERS_DATA).join("busybox-rootfs.tar");
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    let out = format!("type=local,dest={}", st_out.display());
    let o = env.run(&[
        "build",
        "--network",
        "none",
        "--progress=plain",
        "-o",
        &out,
        ctx,
    ]);
    let st_log = text(&o);
    assert!(
        o.status.success(),
        "strata build failed:\n{}",
        tail(&st_log, 40)
    );
    let files = |d: &Path| -> BTreeMap<String, String> {
        std::fs::read_dir(d.join("r"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let v = std::fs::read_to_string(e.path()).unwrap();
                (e.file_name().to_string_lossy().to_string(), v)
            })
            .collect()
    };
    let (bk, st) = (files(&bk_out), files(&st_out));
    assert_eq!(bk.len(), 13, "{bk:?}");
    assert_eq!(bk, st);
    // The steps' names: `RUN --mount=...` as written, in both.
    let names = |log: &str| -> Vec<String> {
        let mut v: Vec<String> = log
            .lines()
            .filter_map(|l| l.split_once("] RUN --mount=").map(|(_, r)| r.to_string()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(names(&bk_log).len(), 12, "{bk_log}");
    assert_eq!(names(&bk_log), names(&st_log));
}

/// Issue 11, items 3, 5, 6 and 7 against Docker 20.10's BuildKit, live: the same Dockerfile
/// (as build_e2e's `config_history_and_layers_follow_buildkit`) built by both must give the
/// same WorkingDir, Cmd, Entrypoint and ArgsEscaped, the same layers where they are empty
/// (WORKDIR over an existing directory keeps one) and the same count, and `history` must
/// print the same IDs column (the image, then `<missing>`) and the same CREATED BY text.
#[test]
fn workdir_argsescaped_and_history_text() {
    strata_tests::require!(Root, Docker, PeersData, Python3);
    let _serial = crate::common::exclusive();
    require_peers(false);
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("f.txt"), "hi\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local\nCOPY . /app\nWORKDIR /app\nRUN echo x > /ran\nWORKDIR /\nWORKDIR /root/\nWORKDIR sub/\nWORKDIR /root/\nENTRYPOINT [\"/bin/echo\", \"a \\\"b\\\"\"]\nCMD [\"node\",\"dist/server.js\"]\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let tag = format!("strata-compat/workdir-history:{}", std::process::id());
    let _images = DockerImages(vec![tag.clone()]);
    let o = docker()
        .args(["build", "--network=none", "-q", "-t", &tag, ctx])
        .output()
        .expect("run docker build");
    assert!(o.status.success(), "docker build failed:\n{}", text(&o));
    let tar = Path::new(PEERS_DATA).join("busybox-rootfs.tar");
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    env.ok(&["build", "--network", "none", "-q", "-t", &tag, ctx]);

    let inspect = |json: &str| -> (serde_json::Value, Vec<bool>, usize) {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let c = &v[0]["Config"];
        let fields = serde_json::json!({
            "WorkingDir": c["WorkingDir"],
            "Cmd": c["Cmd"],
            "Entrypoint": c["Entrypoint"],
            "ArgsEscaped": c.get("ArgsEscaped").cloned().unwrap_or(serde_json::json!(false)),
        });
        let layers = v[0]["RootFS"]["Layers"].as_array().unwrap();
        let empty = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
        let flags = layers.iter().map(|l| l == empty).collect();
        (fields, flags, layers.len())
    };
    let o = docker()
        .args(["image", "inspect", &tag])
        .output()
        .expect("docker inspect");
    assert!(o.status.success(), "{}", text(&o));
    let bk = inspect(&String::from_utf8_lossy(&o.stdout));
    let st = inspect(&env.ok(&["inspect", &tag]));
    assert_eq!(st, bk, "strata (left) and BuildKit (right) differ");
    assert_eq!(bk.0["WorkingDir"], "/root/");

    let format = "{{.ID}}\t{{.CreatedBy}}";
    let rows = |out: &str, id: &str| -> Vec<String> {
        out.lines()
            .map(|l| {
                let (i, by) = l.split_once('\t').unwrap();
                let i = if i == id { "IMAGE" } else { i };
                format!("{i}\t{by}")
            })
            .collect()
    };
    let o = docker()
        .args(["history", "--no-trunc", "--format", format, &tag])
        .output()
        .expect("docker history");
    assert!(o.status.success(), "{}", text(&o));
    let bk_id = text(
        &docker()
            .args(["image", "inspect", "--format", "{{.Id}}", &tag])
            .output()
            .unwrap(),
    );
    let bk_rows = rows(&String::from_utf8_lossy(&o.stdout), bk_id.trim());
    let st_id: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &tag])).unwrap();
    let st_rows = rows(
        &env.ok(&["history", "--no-trunc", "--format", format, &tag]),
        st_id[0]["Id"].as_str().unwrap(),
    );
    assert_eq!(st_rows, bk_rows, "history: strata (left), BuildKit (right)");
}

/// The two-platform busybox index scripts/peers.sh pushes to the local registry (Docker
/// 20.10's BuildKit takes a base for another platform than the host's only from a registry).
const MULTI_BUSYBOX: &str = "127.0.0.1:5000/strata-test/busybox:multi";

/// Issue 18: a linux/arm64 build on this amd64 host, RUN under QEMU (binfmt_misc, F flag)
/// in both builders, a stage on `$BUILDPLATFORM` native in both: the arm64 images' configs
/// and file trees are equal.
#[test]
fn arm64_build_under_emulation() {
    strata_tests::require!(Root, Docker, PeersData, Python3, Qemu, Registry);
    let _serial = crate::common::exclusive();
    require_peers(false);
    let o = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{MULTI_BUSYBOX}"))
        .output()
        .expect("run skopeo");
    assert!(
        o.status.success() && text(&o).contains("arm64"),
        "the registry has no {MULTI_BUSYBOX} with linux/arm64 ({}): {SETUP_HINT}",
        text(&o).trim()
    );
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("greeting.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM {MULTI_BUSYBOX} AS build\n\
             ARG TARGETPLATFORM TARGETARCH BUILDPLATFORM\n\
             RUN mkdir /out && uname -m > /out/build-machine \\\n \
             && echo \"$BUILDPLATFORM -> $TARGETPLATFORM ($TARGETARCH)\" > /out/cross\n\
             FROM {MULTI_BUSYBOX}\n\
             ARG TARGETARCH\n\
             ENV ARCH=$TARGETARCH\n\
             COPY --from=build /out/ /opt/\n\
             COPY greeting.txt /opt/\n\
             RUN uname -m > /opt/machine && mkdir -p /home/app && chown 1000:1000 /home/app\n\
             USER 1000\n\
             WORKDIR /home/app\n\
             CMD [\"cat\", \"/opt/machine\"]\n"
        ),
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let tag = format!("strata-compat/arm64:{}", std::process::id());
    let bk_tar = env.path("buildkit.tar");
    buildkit_archive(ctx, &tag, &["--platform", "linux/arm64"], &bk_tar);

    env.ok(&[
        "build",
        "--network",
        "none",
        "--platform",
        "linux/arm64",
        "-t",
        &tag,
        ctx,
    ]);
    let st_tar = env.path("strata.tar");
    env.ok(&["save", "-o", st_tar.to_str().unwrap(), &tag]);

    let bk = normalised(&bk_tar, &[]);
    let st = normalised(&st_tar, &[]);
    // The files say where each step ran: the build stage natively, the final stage's RUN
    // emulated, in both builders (the trees are compared whole below).
    for lines in [&bk, &st] {
        assert!(
            lines.iter().any(|l| l.contains("/opt/machine")),
            "{lines:?}"
        );
    }
    let machine = |tar: &Path| -> String {
        python(&[
            "-c",
            "import io,json,sys,tarfile\n\
             t=tarfile.open(sys.argv[1]);m=json.load(t.extractfile('manifest.json'))[0]\n\
             c=json.load(t.extractfile(m['Config']))\n\
             out=[c['architecture']]\n\
             for n in m['Layers']:\n\
             \x20l=tarfile.open(fileobj=io.BytesIO(t.extractfile(n).read()))\n\
             \x20for p in ('opt/machine','opt/build-machine','opt/cross'):\n\
             \x20\x20try: out.append(l.extractfile(p).read().decode().strip())\n\
             \x20\x20except KeyError: pass\n\
             print('|'.join(out))",
            tar.to_str().unwrap(),
        ])
        .trim()
        .to_string()
    };
    let want = "arm64|x86_64|linux/amd64 -> linux/arm64 (arm64)|aarch64";
    assert_eq!(machine(&bk_tar), want);
    assert_eq!(machine(&st_tar), want);
    match compare("arm64", &bk, &st) {
        Ok(n) => println!("compat arm64: config equal, {n} files equal"),
        Err(report) => panic!("compat arm64 (linux/arm64 under emulation): {report}"),
    }
}
