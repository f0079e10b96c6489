//! `strata run` end to end on a private store with a busybox base: the image's config and
//! its overrides, exit codes, stdin, a real pty, networks, signals, and nothing left behind.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{busybox_tar, Env};

/// A store with `busybox:local` and `cfg:local` (busybox with ENV, WORKDIR, USER and CMD).
fn setup() -> Env {
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
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
    // Not available yet: a clear message, exit code 1.
    let err = env.fails(&["run", "-d", "busybox:local", "true"]);
    assert!(err.contains("strata run -d is not available yet"), "{err}");
    let err = env.fails(&["run", "-p", "8080:80", "busybox:local", "true"]);
    assert!(err.contains("not available yet"), "{err}");
    assert_clean(&env);
}

#[test]
fn image_config_and_overrides() {
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

/// Run `strata run ARGS` under a pty made by `script`, typing `input` after a pause; returns
/// the exit status and everything the terminal showed.
fn under_pty(env: &Env, args: &str, input: &[&[u8]]) -> (Option<i32>, String) {
    let line = format!(
        "stty cols 91 rows 27; {} --root {} run {args}",
        env!("CARGO_BIN_EXE_strata"),
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
    let env = setup();
    let dev = |net: Option<&str>| {
        let mut args = Vec::new();
        if let Some(n) = net {
            args.extend(["--network", n]);
        }
        args.extend(["busybox:local", "cat", "/proc/net/dev"]);
        interfaces(&run(&env, &args, 0))
    };
    // docker run's default: a private namespace with only loopback.
    assert_eq!(dev(None), vec!["lo"]);
    assert_eq!(dev(Some("none")), vec!["lo"]);
    // The host's own interfaces (more than lo on any machine with a network).
    let host = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    assert_eq!(dev(Some("host")), host);
    run(&env, &["--network", "bridge", "busybox:local", "true"], 125);
    assert_clean(&env);
}

#[test]
fn signals_are_forwarded() {
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
fn help_says_writes_are_discarded() {
    let env = Env::new();
    let help = env.ok(&["run", "--help"]);
    assert!(help.contains("DISCARDED"), "{help}");
    assert!(Path::new(env!("CARGO_BIN_EXE_strata")).exists());
}
