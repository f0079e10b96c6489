//! `strata run` end to end on a private store with a busybox base: the image's config and
//! its overrides, exit codes, stdin, a real pty, networks, signals, and nothing left behind.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{busybox_tar, free_port, Env};

/// A store with `busybox:local` and `cfg:local` (busybox with ENV, WORKDIR, USER and CMD).
pub(crate) fn setup() -> Env {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    let tar = tar.to_str().unwrap();
    env.ok(&["import", tar, "busybox:local"]);
    env.ok(&[
        "import",
        "--change",
        "ENV FOO=from-image KEEP=kept",
        "--change",
        "WORKDIR /app",
        "--change",
        "USER nobody",
        "--change",
        r#"CMD ["sh", "-c", "echo cmd-ran"]"#,
        tar,
        "cfg:local",
    ]);
    env
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `strata run ARGS` with the status it must end with; returns stdout.
fn run(env: &Env, args: &[&str], code: i32) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let o = env.run(&all);
    assert_eq!(
        o.status.code(),
        Some(code),
        "strata {all:?}:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn tmp_entries(env: &Env) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(env.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// No temp dir in the store and no mount anywhere under it.
fn assert_clean(env: &Env) {
    assert_clean_but(env, &[]);
}

/// No temp dir in the store but those of `before` and no mount anywhere under it.
fn assert_clean_but(env: &Env, before: &[std::ffi::OsString]) {
    let left: Vec<_> = tmp_entries(env)
        .into_iter()
        .filter(|e| !before.contains(e))
        .collect();
    assert!(left.is_empty(), "left in the store's tmp/: {left:?}");
    let root = env.root();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "mounts under the store:\n{mounts}"
    );
}

fn interfaces(dev: &str) -> Vec<String> {
    let mut v: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn exit_codes_propagate() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    run(&env, &["busybox:local", "sh", "-c", "exit 7"], 7);
    run(&env, &["busybox:local", "true"], 0);
    run(&env, &["busybox:local", "false"], 1);

    let o = env.run(&["run", "busybox:local", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("executable file not found"),
        "{}",
        stderr(&o)
    );
    run(&env, &["busybox:local", "/no/such/file"], 127);
    // Not executable.
    run(&env, &["busybox:local", "/etc/passwd"], 126);
    // strata itself cannot start it: 125.
    let o = env.run(&["run", "no-such-image:latest"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Unable to find image"),
        "{}",
        stderr(&o)
    );
    run(&env, &["-u", "bob", "busybox:local", "true"], 125);
    run(&env, &["-w", "relative", "busybox:local", "true"], 125);
    // -P with an image that EXPOSEs nothing publishes nothing (see publish_cli).
    run(&env, &["-P", "busybox:local", "true"], 0);
    // Ports can only be published from a private network namespace.
    let o = env.run(&[
        "run",
        "--network",
        "host",
        "-p",
        "8080:80",
        "busybox:local",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("needs the default network"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["run", "-p", "8080:80/sctp", "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("only tcp and udp"), "{}", stderr(&o));
    assert_clean(&env);
}

#[test]
fn image_config_and_overrides() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    // The image's CMD, user, working directory and environment.
    assert_eq!(run(&env, &["cfg:local"], 0), "cmd-ran\n");
    let out = run(&env, &["cfg:local", "env"], 0);
    let vars: Vec<&str> = out.lines().collect();
    for want in [
        "FOO=from-image",
        "KEEP=kept",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        // nobody's passwd entry.
        "HOME=/",
    ] {
        assert!(vars.contains(&want), "{want} missing:\n{out}");
    }
    let host = vars
        .iter()
        .find_map(|v| v.strip_prefix("HOSTNAME="))
        .expect("HOSTNAME");
    assert_eq!(host.len(), 12, "{out}");
    assert_eq!(run(&env, &["cfg:local", "sh", "-c", "pwd"], 0), "/app\n");
    assert_eq!(run(&env, &["cfg:local", "id", "-u"], 0), "65534\n");

    // -e, -w, -u override; -e KEY takes strata's own value; other image variables stay.
    let mut c = env.cmd();
    c.env("FROM_STRATA", "passed").args([
        "run",
        "-e",
        "FOO=overridden",
        "-e",
        "FROM_STRATA",
        "-e",
        "NOT_SET_ANYWHERE_XYZ",
        "-w",
        "/work/dir",
        "-u",
        "0",
        "cfg:local",
        "sh",
        "-c",
        "env; pwd; id -u",
    ]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "FOO=overridden",
        "FROM_STRATA=passed",
        "KEEP=kept",
        "HOME=/root",
        "/work/dir",
        "0",
    ] {
        assert!(lines.contains(&want), "{want} missing:\n{out}");
    }
    assert!(!out.contains("from-image"), "{out}");
    assert!(!out.contains("NOT_SET_ANYWHERE_XYZ"), "{out}");
    assert_eq!(lines.last(), Some(&"0"));
    // The root user of busybox, by name.
    assert_eq!(
        run(&env, &["-u", "root", "cfg:local", "id", "-u"], 0),
        "0\n"
    );
    assert_clean(&env);
}

#[test]
fn entrypoint_and_cmd() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let tar = env.path("busybox.tar");
    env.ok(&[
        "import",
        "--change",
        r#"ENTRYPOINT ["echo", "ep"]"#,
        "--change",
        r#"CMD ["default"]"#,
        tar.to_str().unwrap(),
        "ep:local",
    ]);
    assert_eq!(run(&env, &["ep:local"], 0), "ep default\n");
    // Arguments replace CMD and go to the entrypoint, flags included.
    assert_eq!(
        run(&env, &["ep:local", "a", "-n", "--rm"], 0),
        "ep a -n --rm\n"
    );
    // --entrypoint replaces ENTRYPOINT and drops CMD...
    assert_eq!(run(&env, &["--entrypoint", "echo", "ep:local"], 0), "\n");
    // ...unless arguments are given.
    assert_eq!(
        run(
            &env,
            &["--entrypoint", "sh", "ep:local", "-c", "echo $0"],
            0
        ),
        "sh\n"
    );
    // An empty --entrypoint clears it: the arguments are the whole command.
    assert_eq!(
        run(&env, &["--entrypoint", "", "ep:local", "echo", "x"], 0),
        "x\n"
    );
    // Nothing to run at all.
    let o = env.run(&["run", "--entrypoint", "", "ep:local"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("No command specified"),
        "{}",
        stderr(&o)
    );
    assert_clean(&env);
}

#[test]
fn built_image_runs_and_writes_are_discarded() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local\nRUN echo built > /built\nRUN echo more >> /built\nWORKDIR /srv\nCMD [\"cat\", \"/built\"]\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "built:local", ctx.to_str().unwrap()]);
    // Only what the runs leave counts here.
    let before = tmp_entries(&env);
    assert_eq!(run(&env, &["built:local"], 0), "built\nmore\n");
    assert_eq!(run(&env, &["built:local", "sh", "-c", "pwd"], 0), "/srv\n");
    // Writes stay in the container's upperdir, which goes away with it (--rm or not).
    run(
        &env,
        &[
            "--rm",
            "built:local",
            "sh",
            "-c",
            "echo x > /new && rm /built",
        ],
        0,
    );
    run(
        &env,
        &["built:local", "sh", "-c", "cat /built && ! test -e /new"],
        0,
    );
    assert_clean_but(&env, &before);
    env.fsck_clean();
}

#[test]
fn stdin_only_with_i() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let pipe = |args: &[&str]| {
        let mut c = env.cmd();
        c.arg("run")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"line one\nline two\n")
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(
        pipe(&["-i", "busybox:local", "cat"]),
        "line one\nline two\n"
    );
    // Without -i the container's stdin is /dev/null, as in docker.
    assert_eq!(pipe(&["busybox:local", "cat"]), "");
    // -t with piped input is refused, as docker does.
    let o = env.run(&["run", "-it", "busybox:local", "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a TTY"), "{}", stderr(&o));
    assert_clean(&env);
}

/// Options end at the image, as docker's pflag `SetInterspersed(false)`: what follows it is
/// the command's, even when it looks like one of strata's options (`-e`, `-h`, `--version`,
/// `--`); a `--` before the image only ends the options.
#[test]
fn arguments_after_the_image_belong_to_the_command() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let tar = env.path("busybox.tar");
    // An image whose ENTRYPOINT takes options, as a `jq` image does: it prints QQ (set only
    // by `-e`), its arguments and the first line of its stdin.
    env.ok(&[
        "import",
        "--change",
        r#"ENTRYPOINT ["sh", "-c", "read -r l; echo \"QQ=${QQ-unset} [$*] $l\"", "x"]"#,
        tar.to_str().unwrap(),
        "ep:local",
    ]);
    let piped = |args: &[&str], input: &str| {
        let mut c = env.cmd();
        c.arg("run")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(
        run(&env, &["--rm", "ep:local", "--version", "-h"], 0),
        "QQ=unset [--version -h] \n"
    );
    assert_eq!(
        run(&env, &["--rm", "ep:local", "-h"], 0),
        "QQ=unset [-h] \n"
    );
    assert_eq!(
        piped(&["-i", "ep:local", "-e", ".a"], "{\"a\":1}\n"),
        "QQ=unset [-e .a] {\"a\":1}\n"
    );
    assert_eq!(
        piped(&["-i", "--rm", "ep:local", "-e", "QQ=1", "-i"], "in\n"),
        "QQ=unset [-e QQ=1 -i] in\n"
    );
    // After the image `--` is an argument like any other (docker passes it on too).
    assert_eq!(
        run(&env, &["ep:local", "--", "-e", "QQ=1"], 0),
        "QQ=unset [-- -e QQ=1] \n"
    );
    // Before the image it ends strata's options; those before it still count.
    assert_eq!(
        run(&env, &["-e", "QQ=2", "--", "ep:local", "-e", "QQ=1"], 0),
        "QQ=2 [-e QQ=1] \n"
    );
    assert_eq!(run(&env, &["--rm", "--", "ep:local"], 0), "QQ=unset [] \n");
    // A command that is option-like is the command, not strata's `--version`.
    let o = env.run(&["run", "--rm", "busybox:local", "--version"]);
    assert_eq!(o.status.code(), Some(127), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("\"--version\""), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    // An unknown option before the image is still an error, not taken for the image.
    // docker's usage error: exit 125.
    let o = env.run(&["run", "--bogus", "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("unknown flag: --bogus"),
        "{}",
        stderr(&o)
    );
    assert_clean(&env);
}

/// Run `strata run ARGS` under a pty made by `script`, typing `input` after a pause; returns
/// the exit status and everything the terminal showed.
fn under_pty(env: &Env, args: &str, input: &[&[u8]]) -> (Option<i32>, String) {
    let line = format!(
        "stty cols 91 rows 27; {} --root {} run {args}",
        strata_tests::strata_bin(),
        env.root().display()
    );
    let mut child = Command::new("timeout")
        .args(["60", "script", "-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    // Kept open until the end: script would forward its EOF to the terminal.
    let mut stdin = child.stdin.take().unwrap();
    for chunk in input {
        std::thread::sleep(Duration::from_millis(800));
        stdin.write_all(chunk).unwrap();
        stdin.flush().unwrap();
    }
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn tty_through_a_real_pty() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let (code, out) = under_pty(
        &env,
        "-it busybox:local sh -c 'busybox tty; echo hi; busybox stty size; echo TERM=$TERM; exit 4'",
        &[],
    );
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("hi\r\n"), "{out}");
    // The caller's window size reached the container's terminal.
    assert!(out.contains("27 91"), "{out}");
    assert!(out.contains("TERM=xterm"), "{out}");

    // Interactive: keystrokes go in (raw mode: Enter is \r), output comes back.
    let (code, out) = under_pty(
        &env,
        "-it busybox:local sh",
        &[b"echo in-$((6*7))\r", b"exit 3\r"],
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("in-42"), "{out}");

    // -t without -i: a terminal for the output, no input.
    let o = env.run(&["run", "-t", "busybox:local", "sh", "-c", "busybox tty"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("/dev/pts/"), "{}", stdout(&o));
    assert_clean(&env);
}

#[test]
fn networks() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let dev = |net: Option<&str>| {
        let mut args = Vec::new();
        if let Some(n) = net {
            args.extend(["--network", n]);
        }
        args.extend(["busybox:local", "cat", "/proc/net/dev"]);
        interfaces(&run(&env, &args, 0))
    };
    // docker run's default: a private namespace; its route out is slirp4netns' tap0.
    assert_eq!(dev(None), vec!["lo", "tap0"]);
    assert_eq!(dev(Some("none")), vec!["lo"]);
    // The host's own interfaces (more than lo on any machine with a network).
    let host = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    assert_eq!(dev(Some("host")), host);
    run(&env, &["--network", "bridge", "busybox:local", "true"], 125);
    assert_clean(&env);
}

#[test]
fn signals_are_forwarded() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let mut child = env
        .cmd()
        .args([
            "run",
            "busybox:local",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-term\n");
    assert_eq!(child.wait().unwrap().code(), Some(42));
    assert_clean(&env);
}

#[test]
fn help_explains_foreground_and_detached() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let help = env.ok(&["run", "--help"]);
    assert!(help.contains("DISCARDED"), "{help}");
    assert!(help.contains("strata ps"), "{help}");
    assert!(Path::new(strata_tests::strata_bin()).exists());
}

// ---- detached containers: run -d, ps, logs, stop, rm, -p ----

/// Removes every container of the store when dropped (also when a test fails), then checks
/// that no supervisor of this store is left and nothing is mounted under it.
pub(crate) struct Detached<'a>(pub(crate) &'a Env);

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let env = self.0;
        let ids = env.run(&["ps", "-aq", "--no-trunc"]);
        for id in stdout(&ids).lines() {
            let _ = env.run(&["rm", "-f", id]);
        }
        if std::thread::panicking() {
            return;
        }
        let left = stdout(&env.run(&["ps", "-aq"]));
        assert!(left.is_empty(), "containers left: {left}");
        // A supervisor exits right after recording the end (`rm -f` waits for that record).
        eventually("the supervisors to exit", || supervisors(env).is_empty());
        assert_clean(env);
    }
}

/// Pids of the supervisors running for this store.
pub(crate) fn supervisors(env: &Env) -> Vec<u32> {
    let root = env.root();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.contains(&&b"__strata-supervise"[..])
            && args.contains(&root.as_os_str().as_encoded_bytes())
        {
            out.push(pid);
        }
    }
    out
}

/// `strata run -d ARGS`: the id it prints (64 hex digits).
pub(crate) fn run_d(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    let out = env.ok(&all);
    let id = out.trim().to_string();
    assert_eq!(id.len(), 64, "not an id: {out:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    id
}

/// Poll `f` for up to 20 s.
pub(crate) fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// `ps -a` line of the container whose id starts with `id[..12]`.
pub(crate) fn ps_line(env: &Env, id: &str) -> Option<String> {
    env.ok(&["ps", "-a"])
        .lines()
        .find(|l| l.starts_with(&id[..12]))
        .map(str::to_string)
}

#[test]
fn detached_lifecycle() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let id = run_d(
        &env,
        &[
            "--name",
            "web",
            "busybox:local",
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo err-1 >&2; sleep 0.2; echo out-1; \
             echo out-2; while true; do sleep 0.1; done",
        ],
    );
    // Running: listed without -a, by short id, with docker's columns.
    let ps = env.ok(&["ps"]);
    let mut lines = ps.lines();
    let header = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let line = lines.next().expect("the container is listed");
    assert!(line.starts_with(&id[..12]), "{line}");
    assert!(line.contains("busybox:local"), "{line}");
    assert!(line.contains("\"sh -c trap 'echo go…\""), "{line}");
    assert!(line.contains(" Up "), "{line}");
    assert!(line.trim_end().ends_with("web"), "{line}");
    assert_eq!(env.ok(&["ps", "-q"]), format!("{}\n", &id[..12]));
    assert_eq!(env.ok(&["ps", "-q", "--no-trunc"]), format!("{id}\n"));
    let json = env.ok(&["ps", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["State"], "running");
    assert_eq!(v["Names"], "web");

    // Logs: stdout to stdout, stderr to stderr, by name, id or id prefix.
    eventually("the logs", || {
        let o = env.run(&["logs", "web"]);
        stdout(&o) == "out-1\nout-2\n" && stderr(&o) == "err-1\n"
    });
    for who in [id.as_str(), &id[..5]] {
        let o = env.run(&["logs", who]);
        assert!(o.status.success());
        assert_eq!(stdout(&o), "out-1\nout-2\n");
        assert_eq!(stderr(&o), "err-1\n");
    }
    let o = env.run(&["logs", "--tail", "1", "web"]);
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("out-2\n", ""));

    // A running container is not removed without -f.
    let o = env.run(&["rm", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot remove container \"/web\": container is running"),
        "{}",
        stderr(&o)
    );

    // `logs -f` follows until the container stops.
    let follow = env
        .cmd()
        .args(["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state = std::fs::read_to_string(env.root().join("containers").join(&id).join("state.json"))
        .unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let supervisor = state["supervisor"].as_u64().unwrap() as u32;
    let pid = state["pid"].as_u64().unwrap() as u32;
    assert!(supervisors(&env).contains(&supervisor));

    // stop: SIGTERM, the trap's exit code recorded; prints the name as given.
    let t = std::time::Instant::now();
    assert_eq!(env.ok(&["stop", "web"]), "web\n");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let followed = follow.wait_with_output().unwrap();
    assert!(followed.status.success());
    assert_eq!(stdout(&followed), "out-1\nout-2\ngot-term\n");
    assert_eq!(stderr(&followed), "err-1\n");
    assert_eq!(env.ok(&["ps", "-q"]), "");
    let line = ps_line(&env, &id).expect("listed with -a");
    assert!(line.contains("Exited (3) "), "{line}");
    assert_eq!(
        env.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
        "web exited\n"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "container pid left"
    );
    eventually("the supervisor to exit", || {
        !supervisors(&env).contains(&supervisor)
    });
    // Stopping a stopped container is fine, as in docker.
    assert_eq!(env.ok(&["stop", "web"]), "web\n");

    // rm by id prefix: gone, with its directory and GC root.
    assert_eq!(env.ok(&["rm", &id[..12]]), format!("{}\n", &id[..12]));
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert!(!env.root().join("containers").join(&id).exists());
    assert!(!env.root().join("roots/containers").join(&id).exists());
}

#[test]
fn stop_kills_after_the_timeout_and_rm_force() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    // pid 1 without a handler ignores SIGTERM: SIGKILL after -t, exit 137 as in docker.
    let id = run_d(&env, &["busybox:local", "sleep", "1000"]);
    let t = std::time::Instant::now();
    assert_eq!(env.ok(&["stop", "-t", "1", &id]), format!("{id}\n"));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let line = ps_line(&env, &id).unwrap();
    assert!(line.contains("Exited (137) "), "{line}");
    assert_eq!(env.ok(&["rm", &id]), format!("{id}\n"));

    // The image's StopSignal, else -s, replaces SIGTERM.
    let tar = env.path("busybox.tar");
    env.ok(&[
        "import",
        "--change",
        "STOPSIGNAL SIGUSR1",
        tar.to_str().unwrap(),
        "usr1:local",
    ]);
    // pid 1 ignores signals it has no handler for: wait until the traps are set.
    let trap =
        "trap 'exit 10' USR1; trap 'exit 12' USR2; echo ready; while true; do sleep 0.1; done";
    let ready = |id: &str| eventually("the traps", || env.ok(&["logs", id]) == "ready\n");
    let id = run_d(&env, &["usr1:local", "sh", "-c", trap]);
    ready(&id);
    env.ok(&["stop", "-t", "5", &id]);
    assert!(ps_line(&env, &id).unwrap().contains("Exited (10) "));
    let id2 = run_d(&env, &["usr1:local", "sh", "-c", trap]);
    ready(&id2);
    env.ok(&["stop", "-s", "USR2", "-t", "5", &id2]);
    assert!(ps_line(&env, &id2).unwrap().contains("Exited (12) "));
    assert_eq!(env.ok(&["rm", &id, &id2]), format!("{id}\n{id2}\n"));

    // rm -f kills a running container.
    let id = run_d(
        &env,
        &["--name", "sleeper", "busybox:local", "sleep", "1000"],
    );
    assert_eq!(env.ok(&["rm", "-f", "sleeper"]), "sleeper\n");
    assert!(ps_line(&env, &id).is_none());
    assert!(!env.root().join("containers").join(&id).exists());
}

#[test]
fn detached_exit_codes_names_and_rm() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    // The exit code of a detached container is recorded.
    let id = run_d(&env, &["busybox:local", "sh", "-c", "echo bye; exit 7"]);
    eventually("exit 7", || {
        ps_line(&env, &id).is_some_and(|l| l.contains("Exited (7) "))
    });
    assert_eq!(env.ok(&["logs", &id]), "bye\n");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id[..12]])).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["State"]["Status"], "exited");
    assert_eq!(v[0]["State"]["ExitCode"], 7);
    assert_eq!(v[0]["Path"], "sh");
    assert_ne!(v[0]["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    let json = env.ok(&["ps", "-a", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["State"], "exited");
    assert!(
        v["Status"].as_str().unwrap().starts_with("Exited (7)"),
        "{v}"
    );
    // Start failures: docker's codes, and no id printed.
    for (cmd, code) in [("no-such-command", 127), ("/etc/passwd", 126)] {
        let o = env.run(&["run", "-d", "--rm", "busybox:local", cmd]);
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        assert_eq!(stdout(&o), "");
    }
    let o = env.run(&["run", "-d", "no-such-image:latest"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Unable to find image"),
        "{}",
        stderr(&o)
    );

    // Names are unique; the conflict is docker's message and exit code 125.
    let named = run_d(&env, &["--name", "dup", "busybox:local", "sleep", "1000"]);
    let o = env.run(&["run", "-d", "--name", "dup", "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains(&format!(
            "Conflict. The container name \"/dup\" is already in use by container \"{named}\""
        )),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["run", "-d", "--name", "a/b", "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125));
    // Unknown containers: docker's wording, exit 1.
    for cmd in [&["logs", "nope"][..], &["stop", "nope"], &["rm", "nope"]] {
        let o = env.run(cmd);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}");
        assert!(
            stderr(&o).contains("No such container: nope"),
            "{}",
            stderr(&o)
        );
    }
    // stop and rm go on past an unknown container, and still fail.
    let o = env.run(&["rm", "-f", "nope", "dup"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "dup\n");

    // --rm: the container removes itself when it exits.
    let id = run_d(&env, &["--rm", "busybox:local", "sh", "-c", "sleep 0.3"]);
    assert!(ps_line(&env, &id).is_some() || !env.root().join("containers").join(&id).exists());
    eventually("--rm to remove the container and its GC root", || {
        ps_line(&env, &id).is_none()
            && !env.root().join("containers").join(&id).exists()
            && !env.root().join("roots/containers").join(&id).exists()
    });
}

#[test]
fn prune_keeps_what_a_container_uses() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local\nRUN echo marker > /marker\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "gc:local", ctx.to_str().unwrap()]);
    let snapshots = || {
        std::fs::read_dir(env.root().join("snapshots"))
            .unwrap()
            .count()
    };
    assert_eq!(snapshots(), 2);
    let id = run_d(&env, &["gc:local", "sleep", "1000"]);
    // docker refuses to remove the last name of an image a container uses.
    let o = env.run(&["rmi", "gc:local"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "conflict: unable to remove repository reference \"gc:local\" (must force) - \
             container {} is using its referenced image",
            &id[..12]
        )),
        "{}",
        stderr(&o)
    );
    // Moving the name (as a rebuild does) leaves the built image with no name and no
    // untagged record: only the container's GC root keeps its RUN layer.
    env.ok(&["tag", "busybox:local", "gc:local"]);
    env.ok(&["prune", "--all"]);
    assert_eq!(
        snapshots(),
        2,
        "prune removed the running container's layer"
    );
    env.ok(&["stop", "-t", "0", &id]);
    assert!(ps_line(&env, &id).unwrap().contains("Exited (137)"));
    env.ok(&["prune"]);
    assert_eq!(snapshots(), 2, "prune removed a stopped container's layer");
    env.ok(&["rm", &id]);
    env.ok(&["prune"]);
    assert_eq!(snapshots(), 1, "the layer outlived its last container");
    env.fsck_clean();
}

/// `GET /` on 127.0.0.1:port, half-closing the request side; the whole response.
fn http_get(port: u16) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    s.shutdown(std::net::Shutdown::Write).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

const HTTPD: &str = "busybox mkdir -p /www && echo hello-from-container > /www/index.html && \
                     exec busybox httpd -f -p 80 -h /www";

#[test]
fn publish_a_port_of_a_detached_container() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = run_d(&env, &["-p", &publish, "busybox:local", "sh", "-c", HTTPD]);
    let line = ps_line(&env, &id).unwrap();
    assert!(
        line.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{line}"
    );
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
    let bound = &v[0]["NetworkSettings"]["Ports"]["80/tcp"][0];
    assert_eq!(bound["HostIp"], "127.0.0.1");
    assert_eq!(bound["HostPort"], port.to_string());
    assert_eq!(v[0]["State"]["Running"], true);
    let mut response = String::new();
    eventually("httpd through the proxy", || {
        response = http_get(port).unwrap_or_default();
        response.contains("hello-from-container")
    });
    assert!(
        response.starts_with("HTTP/1.") && response.contains(" 200 "),
        "{response}"
    );
    // Several connections at once.
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || http_get(port)))
        .collect();
    for t in threads {
        assert!(t.join().unwrap().unwrap().contains("hello-from-container"));
    }
    // The port is taken while it runs: a second container cannot publish it.
    let o = env.run(&["run", "-d", "--rm", "-p", &publish, "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("port is already allocated"),
        "{}",
        stderr(&o)
    );
    env.ok(&["rm", "-f", &id]);
    // Released with the container.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn publish_a_port_of_a_foreground_container() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let script = format!("trap 'exit 5' TERM; ({HTTPD}) & while true; do sleep 0.1; done");
    let mut child = env
        .cmd()
        .args(["run", "-p", &publish, "busybox:local", "sh", "-c", &script])
        .spawn()
        .unwrap();
    let mut response = String::new();
    eventually("httpd through the proxy", || {
        response = http_get(port).unwrap_or_default();
        response.contains("hello-from-container")
    });
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(5));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert_clean(&env);
}

#[test]
fn a_killed_supervisor_is_not_up_forever() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let id = run_d(&env, &["busybox:local", "sleep", "1000"]);
    let sups = supervisors(&env);
    assert_eq!(sups.len(), 1);
    let state = env.root().join("containers").join(&id).join("state.json");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    let pid = state["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // SAFETY: killing the supervisor this test started.
    assert_eq!(unsafe { libc::kill(sups[0] as i32, libc::SIGKILL) }, 0);
    // The executor kills the container with it; ps notices the recorded pid is gone.
    eventually("the container to show as Dead", || {
        ps_line(&env, &id).is_some_and(|l| l.contains(" Dead "))
    });
    assert_eq!(env.ok(&["ps", "-q"]), "");
    eventually("the container's process to end", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert_eq!(env.ok(&["rm", &id]), format!("{id}\n"));
}

/// `run -l/--label/--label-file` over the image's LABELs (docker's Config.Labels),
/// `--stop-signal` and `--stop-timeout` in inspect and used by `stop`, and `ps --filter`
/// by label, name, status, exited and ancestor (a status filter lists stopped containers
/// without `-a`).
#[test]
fn labels_stop_options_and_ps_filters() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    env.ok(&[
        "import",
        "--change",
        "LABEL from.image=yes shared=image",
        env.path("busybox.tar").to_str().unwrap(),
        "labelled:local",
    ]);
    let file = env.path("labels");
    std::fs::write(&file, "# a comment\nfrom.file=1\n\nbare\n").unwrap();
    let a = run_d(
        &env,
        &[
            "--name",
            "alpha",
            "-l",
            "com.docker.compose.project=demo",
            "--label",
            "shared=container",
            "--label-file",
            file.to_str().unwrap(),
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "1",
            "labelled:local",
            "sh",
            "-c",
            // USR1 ignored: only the kill after --stop-timeout ends it.
            "trap '' USR1 TERM; while true; do sleep 0.1; done",
        ],
    );
    let b = run_d(
        &env,
        &["--name", "beta", "busybox:local", "sh", "-c", "exit 7"],
    );
    let labels: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "-f", "{{json .Config.Labels}}", &a])).unwrap();
    assert_eq!(
        labels,
        serde_json::json!({
            "from.image": "yes", "shared": "container", "from.file": "1", "bare": "",
            "com.docker.compose.project": "demo"
        })
    );
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.Config.StopSignal}} {{.Config.StopTimeout}}",
            &a
        ])
        .trim(),
        "SIGUSR1 1"
    );
    let ps = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "-q", "--no-trunc"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let mut ids: Vec<String> = env.ok(&args).lines().map(str::to_string).collect();
        ids.sort();
        ids
    };
    eventually("beta to exit", || ps(&["status=exited"]) == [b.as_str()]);
    assert_eq!(ps(&["label=com.docker.compose.project=demo"]), [a.as_str()]);
    assert_eq!(ps(&["label=com.docker.compose.project"]), [a.as_str()]);
    assert!(ps(&["label=com.docker.compose.project=other"]).is_empty());
    assert!(ps(&["label=shared=container", "label=missing"]).is_empty());
    assert_eq!(ps(&["name=alp"]), [a.as_str()]);
    assert_eq!(ps(&["exited=7"]), [b.as_str()]);
    assert_eq!(ps(&["ancestor=labelled:local"]), [a.as_str()]);
    // Two values of one key: either; without -a only running ones.
    assert_eq!(ps(&["name=alpha", "name=beta"]), [a.as_str()]);
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(ps(&["status=running", "status=exited"]), both);
    let o = env.run(&["ps", "--filter", "colour=red"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid filter 'colour'"),
        "{}",
        stderr(&o)
    );
    // stop: SIGUSR1 is ignored, the kill comes after 1 s, not docker's default 10.
    let t = std::time::Instant::now();
    env.ok(&["stop", &a]);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.ExitCode}}", &a]).trim(),
        "137"
    );
}
