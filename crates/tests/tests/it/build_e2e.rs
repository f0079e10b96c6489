//! `strata build` end to end on a private store with a busybox base: target pruning, cache
//! behaviour counted by real executions (each RUN hits a counter on 127.0.0.1, so those
//! builds use `--network host`), bad input, and a killed build leaving nothing behind.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{busybox_tar, Counter, Env};

fn setup() -> Env {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    env
}

fn context(env: &Env, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> String {
    let dir = env.path(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (p, c) in files {
        let f = dir.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, c).unwrap();
    }
    dir.to_str().unwrap().to_string()
}

fn hits(c: &Counter) -> Vec<String> {
    c.take()
        .into_iter()
        .flat_map(|(k, n)| std::iter::repeat_n(k, n))
        .collect()
}

#[test]
fn target_runs_only_the_stages_it_needs() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let c = Counter::start();
    let df = format!(
        "FROM busybox:local AS a\nRUN {}\nFROM busybox:local AS b\nRUN {}\nFROM busybox:local AS unused\nRUN {}\nFROM busybox:local\nCOPY --from=a /bin/busybox /a\nRUN {}\n",
        c.hit("a"),
        c.hit("b"),
        c.hit("unused"),
        c.hit("final")
    );
    let ctx = context(&env, "t", &df, &[]);
    env.ok(&["build", "--network", "host", "-q", "-t", "t:all", &ctx]);
    assert_eq!(hits(&c), vec!["a", "final"]);
    env.ok(&[
        "build",
        "--network",
        "host",
        "-q",
        "--no-cache",
        "--target",
        "b",
        "-t",
        "t:b",
        &ctx,
    ]);
    assert_eq!(hits(&c), vec!["b"]);
}

#[test]
fn cache_reruns_exactly_what_changed() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let c = Counter::start();
    let df = format!(
        "FROM busybox:local\nRUN {}\nARG V=1\nRUN {} && echo $V\nCOPY app.txt /app.txt\nRUN {}\nCOPY other.txt /other.txt\nRUN {}\n",
        c.hit("first"),
        c.hit("sees-arg"),
        c.hit("after-app"),
        c.hit("after-other")
    );
    let ctx = context(
        &env,
        "c",
        &df,
        &[
            ("app.txt", "one"),
            ("other.txt", "x"),
            ("ignored.txt", "i"),
            (".dockerignore", "ignored.txt\n"),
        ],
    );
    env.ok(&["build", "--network", "host", "-q", "-t", "c:1", &ctx]);
    assert_eq!(hits(&c).len(), 4);
    // Unchanged: nothing runs, and the image is identical.
    let id1 = env.ok(&["build", "--network", "host", "-q", "-t", "c:1", &ctx]);
    assert_eq!(hits(&c), Vec::<String>::new());
    let id2 = env.ok(&["build", "--network", "host", "-q", "-t", "c:1", &ctx]);
    assert_eq!(id1, id2);
    // A file excluded by .dockerignore never invalidates anything.
    fs::write(Path::new(&ctx).join("ignored.txt"), "changed").unwrap();
    env.ok(&["build", "--network", "host", "-q", "-t", "c:1", &ctx]);
    assert_eq!(hits(&c), Vec::<String>::new());
    // One source file: only the steps from the COPY that selects it.
    fs::write(Path::new(&ctx).join("app.txt"), "two").unwrap();
    env.ok(&["build", "--network", "host", "-q", "-t", "c:1", &ctx]);
    assert_eq!(hits(&c), vec!["after-app", "after-other"]);
    fs::write(Path::new(&ctx).join("other.txt"), "y").unwrap();
    env.ok(&["build", "--network", "host", "-q", "-t", "c:1", &ctx]);
    assert_eq!(hits(&c), vec!["after-other"]);
    // A build arg: only the steps that can see it.
    env.ok(&[
        "build",
        "--network",
        "host",
        "-q",
        "--build-arg",
        "V=2",
        "-t",
        "c:1",
        &ctx,
    ]);
    assert_eq!(hits(&c), vec!["after-app", "after-other", "sees-arg"]);
    // A proxy build arg invalidates nothing.
    env.ok(&[
        "build",
        "--network",
        "host",
        "-q",
        "--build-arg",
        "V=2",
        "--build-arg",
        "http_proxy=http://proxy.invalid:3128",
        "-t",
        "c:1",
        &ctx,
    ]);
    assert_eq!(hits(&c), Vec::<String>::new());
    // --no-cache-filter on the (only, unnamed) stage re-runs it all; --no-cache too.
    env.ok(&[
        "build",
        "--network",
        "host",
        "-q",
        "--no-cache",
        "--build-arg",
        "V=2",
        "-t",
        "c:1",
        &ctx,
    ]);
    assert_eq!(hits(&c).len(), 4);
}

#[test]
fn run_failure_names_the_step_and_exit_code_and_tags_nothing() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let ctx = context(
        &env,
        "f",
        "FROM busybox:local AS base\nRUN echo before && echo oops >&2 && exit 3\n",
        &[],
    );
    let o = env.run(&["build", "--progress=plain", "-t", "f:1", &ctx]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("[2/2] RUN echo before && echo oops >&2 && exit 3") && !e.contains("[base 2/2]"),
        "{e}"
    );
    assert!(e.contains("exit code: 3"), "{e}");
    let last = e.lines().last().unwrap();
    assert!(
        last.starts_with("error: ") && last.contains("exit code: 3"),
        "{last}"
    );
    assert!(
        e.contains("\nbefore\noops\n"),
        "the last output lines are shown:\n{e}"
    );
    // BuildKit's source frame of the step (errdefs.Source.Print, as buildx prints it
    // between the output box and the error).
    assert!(
        e.ends_with(concat!(
            "oops\n",
            "------\n",
            "Dockerfile:2\n",
            "--------------------\n",
            "   1 |     FROM busybox:local AS base\n",
            "   2 | >>> RUN echo before && echo oops >&2 && exit 3\n",
            "   3 |     \n",
            "--------------------\n",
            "error: failed to solve: [2/2] RUN echo before && echo oops >&2 && exit 3: ",
            "executor failed running [/bin/sh -c echo before && echo oops >&2 && exit 3]: ",
            "exit code: 3\n",
        )),
        "{e}"
    );
    // A failing COPY is framed too, in a Dockerfile named with -f, all its lines marked
    // (two lines: one more line around them each side, where there is one).
    let df = env.path("f/app.Dockerfile");
    fs::write(
        &df,
        "FROM busybox:local\nCOPY \\\n  nosuchfile /x\nRUN true\n",
    )
    .unwrap();
    let o = env.run(&["build", "-f", df.to_str().unwrap(), &ctx]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    let frame = format!(
        "{}:2\n--------------------\n   1 |     FROM busybox:local\n   2 | >>> COPY \\\n   3 | >>>   nosuchfile /x\n   4 |     RUN true\n--------------------\nerror: failed to solve: [2/3] COPY   nosuchfile /x: \"/nosuchfile\" not found: not found\n",
        df.display()
    );
    assert!(e.ends_with(&frame), "{e}");
    assert_eq!(
        env.ok(&["images", "--format", "{{.Repository}}"]),
        "busybox\n"
    );
    env.fsck_clean();
}

#[test]
fn bad_input_exits_1_with_a_clear_message() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "missing-source",
            "FROM busybox:local\nCOPY nosuchfile /x\n",
            "\"/nosuchfile\" not found",
        ),
        (
            "unknown-stage",
            "FROM scratch\nCOPY --from=nosuchstage /x /x\n",
            "nosuchstage",
        ),
        (
            "unknown-image",
            "FROM nosuchimage:1\nRUN true\n",
            "nosuchimage:1",
        ),
        (
            "dockerfile-error",
            "FROM busybox:local\nCOPY --frm=x a b\n",
            "Dockerfile:2:6: unknown flag: --frm",
        ),
        (
            "bad-user",
            "FROM busybox:local\nUSER nosuchuser\nRUN true\n",
            "unable to find user nosuchuser",
        ),
    ];
    for (name, df, want) in cases {
        let ctx = context(&env, name, df, &[]);
        let o = env.run(&["build", "-t", &format!("{name}:1"), &ctx]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {e}");
        assert!(e.contains(want), "{name}: expected {want:?} in:\n{e}");
    }
    // A context that is not a directory.
    let file = env.path("not-a-dir");
    fs::write(&file, "x").unwrap();
    let e = env.fails(&["build", file.to_str().unwrap()]);
    assert!(e.contains("not a directory"), "{e}");
    let e = env.fails(&["build", "/nonexistent-context"]);
    assert!(e.contains("/nonexistent-context"), "{e}");
    assert_eq!(
        env.ok(&["images", "--format", "{{.Repository}}"]),
        "busybox\n"
    );
    env.fsck_clean();
}

fn mounts_under(root: &Path) -> Vec<String> {
    let root = root.to_str().unwrap();
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.contains(root))
        .map(str::to_string)
        .collect()
}

#[test]
fn killed_build_leaves_no_mount_and_no_process() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let marker = format!("strata-kill-test-{}", std::process::id());
    let ctx = context(
        &env,
        "k",
        &format!("FROM busybox:local\nRUN sleep 30 && echo {marker}\n"),
        &[],
    );
    let mut child = env
        .cmd()
        .args(["build", "-q", &ctx])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the RUN's process exists.
    let found = |m: &str| -> bool {
        fs::read_dir("/proc").unwrap().flatten().any(|p| {
            fs::read(p.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(m))
                .unwrap_or(false)
        })
    };
    let mut waited = 0;
    while !found(&marker) && waited < 100 {
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    assert!(found(&marker), "the RUN never started");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if !found(&marker) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "the RUN's process outlived the killed build");
    assert_eq!(mounts_under(&env.root()), Vec::<String>::new());
    env.fsck_clean();
    // The next build works.
    let ctx2 = context(&env, "k2", "FROM busybox:local\nRUN true\n", &[]);
    env.ok(&["build", "-q", &ctx2]);
}

#[test]
fn c_static_scenario_binary_runs_in_the_built_image() {
    strata_tests::require!(Root, Busybox, PeersData);
    let env = Env::new();
    let peers = Path::new("/var/tmp/strata-peers/debian-build-rootfs.tar");
    assert!(
        peers.exists(),
        "{} is missing: run scripts/peers.sh",
        peers.display()
    );
    env.ok(&["import", peers.to_str().unwrap(), "debian-build:local"]);
    let scen = strata_tests::repo_root().join("conformance/scenarios/c-static");
    env.ok(&["build", "-q", "-t", "c-static:1", scen.to_str().unwrap()]);
    // Run the image's binary through the executor: a RUN in exec form on top of it.
    let ctx = context(&env, "runit", "FROM c-static:1\nRUN [\"/hello\"]\n", &[]);
    let o = env.run(&["build", "--progress=plain", "--no-cache", &ctx]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    let line = fs::read_to_string(scen.join("hello.c")).unwrap();
    let printed = line
        .split('"')
        .nth(1)
        .expect("a string literal in hello.c")
        .replace("\\n", "");
    assert!(
        e.contains(&printed),
        "expected {printed:?} in the RUN output:\n{e}"
    );
}

#[test]
fn outputs_and_stdin_contexts() {
    strata_tests::require!(Root, Busybox, Skopeo);
    use std::io::Write;
    let env = setup();
    let ctx = context(
        &env,
        "o",
        "FROM busybox:local\nCOPY f.txt /f.txt\nRUN echo made > /made\n",
        &[("f.txt", "hello\n")],
    );
    // A lone Dockerfile on stdin: no context.
    let mut child = env
        .cmd()
        .args(["build", "-q", "-t", "stdin:df", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox:local\nRUN echo hi > /hi\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    // A tar context on stdin.
    let tar = env.path("ctx.tar");
    crate::common::tool("tar", &["-C", &ctx, "-cf", tar.to_str().unwrap(), "."]);
    let o = env
        .cmd()
        .args(["build", "-q", "-t", "stdin:tar", "-"])
        .stdin(fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // --output type=local and type=tar give the root filesystem.
    let dir = env.path("out-local");
    env.ok(&[
        "build",
        "-q",
        "--output",
        &format!("type=local,dest={}", dir.display()),
        &ctx,
    ]);
    assert_eq!(fs::read_to_string(dir.join("f.txt")).unwrap(), "hello\n");
    assert_eq!(fs::read_to_string(dir.join("made")).unwrap(), "made\n");
    let t = env.path("out.tar");
    env.ok(&[
        "build",
        "-q",
        "--output",
        &format!("type=tar,dest={}", t.display()),
        &ctx,
    ]);
    let list = crate::common::tool("tar", &["-tf", t.to_str().unwrap()]);
    assert!(
        list.lines().any(|l| l.trim_start_matches("./") == "made"),
        "{list}"
    );
    // type=oci writes an archive skopeo reads.
    let oci = env.path("out-oci.tar");
    env.ok(&[
        "build",
        "-q",
        "-t",
        "o:1",
        "--output",
        &format!("type=oci,dest={}", oci.display()),
        &ctx,
    ]);
    let inspect = crate::common::tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", oci.display())],
    );
    assert!(inspect.contains("\"Layers\""), "{inspect}");
}

/// `dest=-` streams the output to stdout (`-o -` is `type=tar,dest=-`, as buildx and Docker
/// 20.10's CLI): a tar of the root filesystem, or the OCI or docker archive; nothing else the
/// build prints goes to stdout (a RUN's output, `-q`'s image ID, `--report`). A terminal as
/// stdout is refused, as buildx does ("refusing to write to console").
#[test]
fn outputs_streamed_to_stdout() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let ctx = context(
        &env,
        "s",
        "FROM busybox:local\nCOPY f.txt /f.txt\nRUN echo noise-out; echo noise-err >&2; echo made > /made\n",
        &[("f.txt", "hello\n")],
    );
    let cwd = env.path("cwd");
    fs::create_dir_all(&cwd).unwrap();
    // Runs in `cwd`, where a wrong reading of `-` would create a file or directory.
    let build = |args: &[&str]| {
        let o = env
            .cmd()
            .arg("build")
            .args(args)
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "build {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            !cwd.join("-").exists(),
            "build {args:?} wrote a file or directory named -"
        );
        o.stdout
    };
    // What `tar -t` lists of a stream (it must be a tar and nothing else: a whole number of
    // 512-byte blocks that tar reads without a complaint).
    let list = |name: &str, bytes: &[u8]| {
        assert!(!bytes.is_empty(), "{name}: nothing on stdout");
        assert_eq!(bytes.len() % 512, 0, "{name}: not a tar stream alone");
        let f = env.path(name);
        fs::write(&f, bytes).unwrap();
        let o = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{name}: tar -t: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let has = |list: &str, path: &str| list.lines().any(|l| l.trim_start_matches("./") == path);
    for args in [
        &["-o", "-"][..],
        &["--output", "type=tar,dest=-"],
        &["--output", "type=tar"],
        &["-q", "--report", "-o", "-"],
    ] {
        let mut all = args.to_vec();
        all.push(&ctx);
        let out = build(&all);
        let files = list("rootfs.tar", &out);
        assert!(
            has(&files, "made") && has(&files, "f.txt"),
            "{args:?}:\n{files}"
        );
        assert!(has(&files, "bin/busybox"), "{args:?}:\n{files}");
    }
    // The OCI archive: an OCI layout that `strata load` takes back, under the -t name.
    let out = build(&[
        "-q",
        "-t",
        "streamed:oci",
        "--output",
        "type=oci,dest=-",
        &ctx,
    ]);
    let files = list("oci.tar", &out);
    for f in ["oci-layout", "index.json"] {
        assert!(has(&files, f), "{files}");
    }
    assert!(
        files.lines().any(|l| l.contains("blobs/sha256/")),
        "{files}"
    );
    let other = Env::new();
    let loaded = other.ok(&["load", "-i", env.path("oci.tar").to_str().unwrap()]);
    assert!(loaded.contains("streamed:oci"), "{loaded}");
    assert_eq!(
        other.ok(&["run", "--rm", "streamed:oci", "cat", "/made"]),
        "made\n"
    );
    other.fsck_clean();
    // The docker archive, with its manifest.json.
    let out = build(&["-q", "--output", "type=docker,dest=-", &ctx]);
    assert!(has(&list("docker.tar", &out), "manifest.json"));
    // A directory cannot be stdout.
    let e = env.fails(&["build", "-q", "--output", "type=local,dest=-", &ctx]);
    assert!(e.contains("dest cannot be stdout"), "{e}");
    // A failed build writes nothing to stdout and tags nothing.
    let bad = context(&env, "bad", "FROM busybox:local\nRUN false\n", &[]);
    let o = env
        .cmd()
        .args(["build", "-t", "bad:1", "-o", "-", &bad])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!env.ok(&["images"]).contains("bad"));
    // stdout a terminal: refused before anything is built.
    let line = format!(
        "{} --root {} build -t tty:1 -o - {ctx}",
        strata_tests::strata_bin(),
        env.root().display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    let shown = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{shown}");
    assert!(shown.contains("refusing to write to console"), "{shown}");
    assert!(!cwd.join("-").exists());
    assert!(!env.ok(&["images"]).contains("tty"));
    env.fsck_clean();
}

#[test]
fn prune_keeps_the_build_cache_until_all() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let c = Counter::start();
    let ctx = context(
        &env,
        "p",
        &format!("FROM busybox:local\nRUN {}\n", c.hit("run")),
        &[],
    );
    let id = env.ok(&["build", "--network", "host", "-q", &ctx]);
    assert_eq!(hits(&c), vec!["run"]);
    env.ok(&["rmi", id.trim()]);
    env.ok(&["prune"]);
    env.ok(&["build", "--network", "host", "-q", &ctx]);
    assert_eq!(
        hits(&c),
        Vec::<String>::new(),
        "the cache survives a plain prune"
    );
    env.ok(&["prune", "--filter", "until=1h"]);
    env.ok(&["build", "--network", "host", "-q", &ctx]);
    assert_eq!(
        hits(&c),
        Vec::<String>::new(),
        "records younger than an hour are kept"
    );
    env.ok(&["prune", "--all"]);
    env.ok(&["build", "--network", "host", "-q", &ctx]);
    assert_eq!(hits(&c), vec!["run"], "prune --all drops the cache");
    env.fsck_clean();
}

#[test]
fn plain_progress_says_why_a_step_missed() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let ctx = context(
        &env,
        "why",
        "FROM busybox:local\nARG V=1\nCOPY app.txt /app.txt\nRUN echo $V\n",
        &[("app.txt", "one")],
    );
    env.ok(&["build", "-q", &ctx]);
    fs::write(Path::new(&ctx).join("app.txt"), "two!").unwrap();
    let o = env.run(&["build", "--progress=plain", &ctx]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("cache miss: source files: /app.txt changed"),
        "{e}"
    );
    assert!(e.contains("cache miss: the parent step changed"), "{e}");
    let o = env.run(&["build", "--progress=plain", "--build-arg", "V=2", &ctx]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("cache miss: build arg V changed (1 → 2)"), "{e}");
    assert!(e.contains("CACHED"), "{e}");
}

#[test]
fn add_fetches_urls_from_a_local_server() {
    strata_tests::require!(Root, Busybox);
    use std::io::{BufRead, Write};
    let env = setup();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut line = String::new();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let _ = r.read_line(&mut line);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let body = if line.contains("/files/hello.txt") {
                "hello over http\n"
            } else {
                ""
            };
            let status = if body.is_empty() {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/files/hello.txt");
    let sum = format!("sha256:{}", {
        use std::process::Command;
        let o = Command::new("sh")
            .arg("-c")
            .arg("printf 'hello over http\\n' | sha256sum")
            .output()
            .unwrap();
        String::from_utf8(o.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    });
    let ctx = context(
        &env,
        "url",
        &format!("FROM busybox:local\nADD {url} /dl/\nADD --checksum={sum} {url} /named.txt\nRUN [ \"$(cat /dl/hello.txt)\" = 'hello over http' ] && stat -c '%a %Y' /dl/hello.txt > /meta\n"),
        &[],
    );
    let dir = env.path("url-out");
    env.ok(&[
        "build",
        "-q",
        "-o",
        &format!("type=local,dest={}", dir.display()),
        &ctx,
    ]);
    assert_eq!(
        fs::read_to_string(dir.join("named.txt")).unwrap(),
        "hello over http\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("meta")).unwrap(),
        "600 784111777\n"
    );
    // A wrong checksum and a 404 fail the build with the URL named.
    let bad = context(
        &env,
        "badurl",
        &format!(
            "FROM busybox:local\nADD --checksum=sha256:{} {url} /x\n",
            "0".repeat(64)
        ),
        &[],
    );
    let e = env.fails(&["build", &bad]);
    assert!(e.contains("checksum mismatch") && e.contains(&url), "{e}");
    let missing = format!("http://127.0.0.1:{port}/nope");
    let nf = context(
        &env,
        "404",
        &format!("FROM busybox:local\nADD {missing} /x\n"),
        &[],
    );
    let e = env.fails(&["build", &nf]);
    assert!(e.contains("HTTP 404") && e.contains(&missing), "{e}");
}

#[test]
fn run_mounts_bind_secret_ssh_cache() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let secret = env.path("token.txt");
    fs::write(&secret, "s3cr3t-value").unwrap();
    let sock = env.path("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let df = "FROM busybox:local AS data\nRUN mkdir -p /d && echo from-stage > /d/f\n\
FROM busybox:local\n\
RUN --mount=type=bind,target=/ctx [ \"$(cat /ctx/in.txt)\" = from-context ] && ! touch /ctx/x 2>/dev/null\n\
RUN --mount=type=bind,target=/ctx,rw touch /ctx/discarded && echo ok\n\
RUN --mount=type=bind,from=data,source=/d,target=/mnt [ \"$(cat /mnt/f)\" = from-stage ]\n\
RUN --mount=type=secret,id=tok [ -s /run/secrets/tok ] && cp /run/secrets/tok /copied-at-build\n\
RUN --mount=type=ssh [ -S \"$SSH_AUTH_SOCK\" ] && echo $SSH_AUTH_SOCK > /ssh-path\n\
RUN --mount=type=cache,target=/cache echo run >> /cache/log && cat /cache/log | wc -l > /cache-count\n";
    let ctx = context(&env, "mounts", df, &[("in.txt", "from-context")]);
    let args = |extra: &[&str]| {
        let mut v = vec![
            "build".to_string(),
            "--progress=plain".into(),
            "--secret".into(),
            format!("id=tok,src={}", secret.display()),
            "--ssh".into(),
            format!("default={}", sock.display()),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(ctx.clone());
        v
    };
    let out = env.path("mounts-out");
    let a = args(&[
        "-t",
        "m:1",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = env.run(&a);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(
        !Path::new(&ctx).join("discarded").exists(),
        "a rw bind mount wrote into the context"
    );
    assert_eq!(
        fs::read_to_string(out.join("ssh-path")).unwrap(),
        "/run/buildkit/ssh_agent.0\n"
    );
    // The secret reached the RUN, but not the image: no /run/secrets in any layer.
    assert!(!out.join("run/secrets/tok").exists());
    let saved = env.path("m.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), "m:1"]);
    let raw = fs::read(&saved).unwrap();
    let needle = b"s3cr3t-value";
    let copied = fs::read_to_string(out.join("copied-at-build")).unwrap();
    assert_eq!(copied, "s3cr3t-value", "the RUN saw the secret");
    // It is in the image only where the Dockerfile itself copied it (copied-at-build), once.
    let n = raw.windows(needle.len()).filter(|w| w == needle).count();
    assert_eq!(n, 1, "the secret appears only in the file the RUN wrote");
    let hist = env.ok(&["history", "--no-trunc", "m:1"]);
    assert!(!hist.contains("s3cr3t"), "{hist}");
    // The cache mount persists across builds (a --no-cache rebuild sees the earlier run).
    assert_eq!(
        fs::read_to_string(out.join("cache-count")).unwrap().trim(),
        "1"
    );
    let a = args(&[
        "--no-cache",
        "-o",
        &format!("type=local,dest={}", env.path("again").display()),
    ]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = env.run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fs::read_to_string(env.path("again").join("cache-count"))
            .unwrap()
            .trim(),
        "2"
    );
}

// Issue 11, item 1: a stage built FROM another stage sees that stage's ARG values in its
// RUN environment and expansions (Docker 20.10's BuildKit: `X=fromA Y=ya`); its history line
// records only its own ARGs (`RUN |1 Y=ya ...`); the config's Env never gets them; a
// change of the parent's ARG default re-runs the child's RUN (the value is in its key).
#[test]
fn stage_args_reach_stages_built_from_it() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let c = Counter::start();
    let df = |x: &str| {
        format!(
            "FROM busybox:local AS a\nARG X={x}\nARG Y=ya\n\
             FROM a AS b\nARG Y\nRUN echo \"X=$X Y=$Y\" > /out && {}\nENV E=$X\n\
             FROM b AS c\nARG Z=zc\nRUN echo \"X=$X Y=$Y Z=$Z\" > /out2\n",
            c.hit("child")
        )
    };
    let ctx = context(&env, "inh", &df("fromA"), &[]);
    let out = env.path("inh-out");
    let dest = format!("type=local,dest={}", out.display());
    env.ok(&["build", "--network", "host", "-q", "-t", "inh:1", &ctx]);
    assert_eq!(hits(&c), vec!["child"]);
    env.ok(&["build", "--network", "host", "-q", "-o", &dest, &ctx]);
    assert_eq!(
        fs::read_to_string(out.join("out")).unwrap(),
        "X=fromA Y=ya\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("out2")).unwrap(),
        "X=fromA Y=ya Z=zc\n"
    );
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "inh:1"])).unwrap();
    let text = v.to_string();
    assert!(text.contains("\"E=fromA\""), "{text}");
    assert!(
        !text.contains("\"X=fromA\""),
        "ARGs stay out of Env: {text}"
    );
    let hist = env.ok(&["history", "--no-trunc", "inh:1"]);
    assert!(
        hist.contains("RUN |1 Z=zc /bin/sh -c echo \"X=$X Y=$Y Z=$Z\" > /out2"),
        "{hist}"
    );
    assert!(
        hist.contains("RUN |1 Y=ya /bin/sh -c echo \"X=$X Y=$Y\" > /out"),
        "{hist}"
    );
    // Unchanged: cached. The parent's default changes: the child's RUN runs again.
    env.ok(&["build", "--network", "host", "-q", "-t", "inh:1", &ctx]);
    assert_eq!(hits(&c), Vec::<String>::new());
    fs::write(Path::new(&ctx).join("Dockerfile"), df("other")).unwrap();
    env.ok(&[
        "build",
        "--network",
        "host",
        "-q",
        "-t",
        "inh:1",
        "-o",
        &dest,
        &ctx,
    ]);
    assert_eq!(hits(&c), vec!["child"]);
    assert_eq!(
        fs::read_to_string(out.join("out")).unwrap(),
        "X=other Y=ya\n"
    );
    // A build arg still wins; --target of the child builds the child with the parent's ARGs.
    env.ok(&[
        "build",
        "--network",
        "host",
        "-q",
        "--build-arg",
        "Y=cli",
        "--target",
        "b",
        "-o",
        &dest,
        &ctx,
    ]);
    assert_eq!(
        fs::read_to_string(out.join("out")).unwrap(),
        "X=other Y=cli\n"
    );
    env.fsck_clean();
}

/// The Dockerfile of [`config_history_and_layers_follow_buildkit`]; compat_buildkit.rs builds
/// the same with Docker 20.10's BuildKit.
const WORKDIR_HISTORY_DF: &str = "FROM busybox:local\nCOPY . /app\nWORKDIR /app\nRUN echo x > /ran\nWORKDIR /\nWORKDIR /root/\nWORKDIR sub/\nWORKDIR /root/\nENTRYPOINT [\"/bin/echo\", \"a \\\"b\\\"\"]\nCMD [\"node\",\"dist/server.js\"]\n";

/// Issue 11, items 3, 5, 6 and 7, with what Docker 20.10's BuildKit wrote for the same
/// Dockerfile: WORKDIR kept as written when absolute, a layer for every WORKDIR but `/` (an
/// empty one where the directory exists), ArgsEscaped from CMD only, history text as
/// BuildKit's commitToHistory writes it, and `<missing>` for history rows that are no image.
#[test]
fn config_history_and_layers_follow_buildkit() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let ctx = context(&env, "wd", WORKDIR_HISTORY_DF, &[("f.txt", "hi\n")]);
    env.ok(&["build", "--network", "none", "-q", "-t", "wd:1", &ctx]);
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "wd:1"])).unwrap();
    let cfg = &inspect[0]["Config"];
    assert_eq!(cfg["WorkingDir"], "/root/");
    assert_eq!(cfg["ArgsEscaped"], true, "CMD sets ArgsEscaped");
    assert_eq!(cfg["Cmd"], serde_json::json!(["node", "dist/server.js"]));
    // base, COPY, WORKDIR /app (empty), RUN, WORKDIR /root/, WORKDIR /root/sub, WORKDIR /root/
    // (empty); `WORKDIR /` has none.
    let layers = inspect[0]["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 7, "{layers:?}");
    let empty = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
    assert_eq!(layers[2], empty);
    assert_eq!(layers[6], empty);
    let hist = env.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}\t{{.CreatedBy}}\t{{.Size}}",
        "wd:1",
    ]);
    let rows: Vec<Vec<&str>> = hist.lines().map(|l| l.split('\t').collect()).collect();
    let want = [
        "CMD [\"node\" \"dist/server.js\"]",
        "ENTRYPOINT [\"/bin/echo\" \"a \\\"b\\\"\"]",
        "WORKDIR /root/",
        "WORKDIR /root/sub",
        "WORKDIR /root/",
        "WORKDIR /",
        "RUN /bin/sh -c echo x > /ran # buildkit",
        "WORKDIR /app",
        "COPY . /app # buildkit",
        "",
    ];
    assert_eq!(
        rows.iter().map(|r| r[1]).collect::<Vec<_>>(),
        want,
        "{hist}"
    );
    assert_eq!(rows[0][0], inspect[0]["Id"].as_str().unwrap(), "{hist}");
    for r in &rows[1..] {
        assert_eq!(r[0], "<missing>", "{hist}");
    }
    // The layer ids history used to print are no image: nothing takes them.
    env.fails(&["inspect", layers[2].as_str().unwrap()]);

    // A WORKDIR kept as written but not clean: made, and worked in, at its clean path, by
    // RUN and by `run` (docker cleans WorkingDir before it chdirs).
    let ctx = context(
        &env,
        "unclean",
        "FROM busybox:local\nWORKDIR /x/../y/.\nRUN pwd > /pwd-at-build\n",
        &[],
    );
    env.ok(&["build", "--network", "none", "-q", "-t", "unclean:1", &ctx]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "unclean:1"])).unwrap();
    assert_eq!(inspect[0]["Config"]["WorkingDir"], "/x/../y/.");
    let o = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "unclean:1",
        "sh",
        "-c",
        "pwd; cat /pwd-at-build",
    ]);
    assert_eq!(o, "/y\n/y\n");

    // ENTRYPOINT alone sets no ArgsEscaped, in either form.
    for (name, ep) in [
        ("ep1", "ENTRYPOINT echo hi"),
        ("ep2", "ENTRYPOINT [\"echo\"]"),
    ] {
        let ctx = context(&env, name, &format!("FROM busybox:local\n{ep}\n"), &[]);
        let tag = format!("{name}:1");
        env.ok(&["build", "-q", "-t", &tag, &ctx]);
        let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &tag])).unwrap();
        assert!(
            inspect[0]["Config"].get("ArgsEscaped").is_none(),
            "{ep}: {}",
            inspect[0]["Config"]
        );
    }
    env.fsck_clean();
}
