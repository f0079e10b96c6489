//! `strata exec` and the container lifecycle commands (`start`, `restart`, `kill`, `wait`,
//! `port`, `container prune`) end to end, on detached busybox containers.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use crate::common::{free_port, Env};
use crate::run_cli::{eventually, ps_line, run_d, setup, stderr, stdout, supervisors, Detached};

/// `strata ARGS` with the exit code it must end with; returns stdout.
fn code(env: &Env, args: &[&str], code: i32) -> String {
    let o = env.run(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "strata {args:?}:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// `strata ARGS` with `input` on stdin.
fn with_stdin(env: &Env, args: &[&str], input: &[u8]) -> Output {
    let mut child = env
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A running container `web`: busybox's `sh` as pid 1, with FOO from `-e`, a file it wrote
/// (`/x`) and the id.
fn web(env: &Env, extra: &[&str]) -> String {
    let mut args = vec![
        "--name",
        "web",
        "-e",
        "FOO=from-run",
        "-e",
        "STRATA_EXEC_TEST_GONE=x",
    ];
    args.extend_from_slice(extra);
    args.extend([
        "busybox:local",
        "sh",
        "-c",
        "echo hi > /x; echo started; while true; do sleep 1; done",
    ]);
    let id = run_d(env, &args);
    eventually("the container's file", || {
        env.run(&["exec", "web", "cat", "/x"]).stdout == b"hi\n"
    });
    id
}

/// The `Name:\tvalue` line of a `/proc/PID/status` text.
fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_string()
}

#[test]
fn exec_runs_in_the_container() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let id = web(&env, &[]);

    // The container's files; `container exec` is the same command.
    assert_eq!(env.ok(&["exec", "web", "cat", "/x"]), "hi\n");
    assert_eq!(
        env.ok(&["container", "exec", &id[..12], "cat", "/x"]),
        "hi\n"
    );
    // Its pid namespace: the exec'd shell is not pid 1, and pid 1 is the main process.
    let pid = env.ok(&["exec", "web", "sh", "-c", "echo $$"]);
    let pid: u32 = pid.trim().parse().unwrap();
    assert_ne!(pid, 1);
    let cmdline = env.ok(&["exec", "web", "cat", "/proc/1/cmdline"]);
    assert!(cmdline.starts_with("sh\0-c\0echo hi > /x"), "{cmdline:?}");
    let ps = env.ok(&["exec", "web", "busybox", "ps"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some("1") && l.contains("sh -c echo hi")),
        "{ps}"
    );
    // Its hostname, its network (the private namespace's tap0), its environment.
    assert_eq!(
        env.ok(&["exec", "web", "cat", "/proc/sys/kernel/hostname"]),
        format!("{}\n", &id[..12])
    );
    let dev = env.ok(&["exec", "web", "cat", "/proc/net/dev"]);
    assert!(dev.contains("tap0:"), "{dev}");
    let vars = env.ok(&["exec", "web", "env"]);
    for v in [
        "FOO=from-run",
        &format!("HOSTNAME={}", &id[..12]),
        "HOME=/root",
    ] {
        assert!(vars.lines().any(|l| l == v), "{v} not in\n{vars}");
    }
    assert!(!vars.contains("TERM="), "{vars}");
    // -e and --env-file replace, add and unset; files first, then -e.
    let file = env.path("env.list");
    std::fs::write(&file, "# docker's format\nFROM_FILE=1\nFOO=from-file\n").unwrap();
    let out = env.ok(&[
        "exec",
        "--env-file",
        file.to_str().unwrap(),
        "-e",
        "NEW=2",
        "-e",
        "STRATA_EXEC_TEST_GONE",
        "web",
        "sh",
        "-c",
        "echo $FOO $FROM_FILE $NEW ${STRATA_EXEC_TEST_GONE:-unset}",
    ]);
    assert_eq!(out, "from-file 1 2 unset\n");
    // -u and -w; another user gets its own HOME.
    assert_eq!(env.ok(&["exec", "-u", "1000", "web", "id", "-u"]), "1000\n");
    assert_eq!(
        env.ok(&[
            "exec",
            "-u",
            "nobody",
            "web",
            "sh",
            "-c",
            "id -un; echo $HOME"
        ]),
        "nobody\n/\n"
    );
    assert_eq!(
        env.ok(&["exec", "-w", "/etc", "web", "sh", "-c", "pwd"]),
        "/etc\n"
    );
    // What it writes, the container sees.
    env.ok(&["exec", "web", "sh", "-c", "echo from-exec > /y"]);
    assert_eq!(env.ok(&["exec", "web", "cat", "/y"]), "from-exec\n");
    // stdin only with -i.
    let o = with_stdin(&env, &["exec", "-i", "web", "cat"], b"piped\n");
    assert_eq!(stdout(&o), "piped\n");
    let o = with_stdin(&env, &["exec", "web", "cat"], b"piped\n");
    assert_eq!(stdout(&o), "");
    // Options end at the container: the command's own flags are its own.
    assert_eq!(env.ok(&["exec", "web", "echo", "-n", "--help"]), "--help");

    // Exit codes: the command's, then docker's 127 and 126.
    code(&env, &["exec", "web", "sh", "-c", "exit 3"], 3);
    let o = env.run(&["exec", "web", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "{}",
        stderr(&o)
    );
    code(&env, &["exec", "web", "/etc/passwd"], 126);
    let o = env.run(&["exec", "-u", "bob", "web", "true"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(
        stderr(&o).contains("unable to find user bob"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["exec", "-w", "/nope", "web", "true"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(stderr(&o).contains("/nope"), "{}", stderr(&o));
    // Usage errors: 125.
    code(&env, &["exec", "web"], 125);
    code(&env, &["exec", "--bogus", "web", "true"], 125);

    // Unknown and stopped containers: docker's messages, exit 1.
    let o = env.run(&["exec", "nope", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No such container: nope"),
        "{}",
        stderr(&o)
    );
    env.ok(&["stop", "-t", "0", "web"]);
    let o = env.run(&["exec", "web", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("error: container {id} is not running")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn exec_takes_the_image_user_workdir_and_env_and_gets_signals() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    // cfg:local: ENV FOO=from-image KEEP=kept, WORKDIR /app, USER nobody.
    let id = run_d(&env, &["cfg:local", "sleep", "1000"]);
    assert_eq!(
        env.ok(&[
            "exec",
            &id,
            "sh",
            "-c",
            "id -un; pwd; echo $FOO $KEEP $HOME"
        ]),
        "nobody\n/app\nfrom-image kept /\n"
    );
    // Root gets root's HOME (the container's was nobody's), not the container's.
    assert_eq!(
        env.ok(&["exec", "-u", "0", &id, "sh", "-c", "id -u; echo $HOME"]),
        "0\n/root\n"
    );
    // SIGTERM to strata goes to the exec'd process.
    let mut child = env
        .cmd()
        .args([
            "exec",
            &id,
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
}

#[test]
fn exec_is_confined_like_the_container() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    web(&env, &[]);
    let show = "grep -E '^(Seccomp|NoNewPrivs|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/self/status; \
                echo ---; grep -E '^(Seccomp|NoNewPrivs|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/1/status";
    let out = env.ok(&["exec", "web", "sh", "-c", show]);
    let (mine, main) = out.split_once("---\n").unwrap();
    assert_eq!(mine, main, "exec and the main process differ");
    assert_eq!(status_field(mine, "Seccomp"), "2");
    assert_eq!(status_field(mine, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(mine, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(mine, "CapInh"), "0000000000000000");
    // Another user: no capabilities (docker's rule), the same filter and bounding set.
    let status = env.ok(&["exec", "-u", "1000", "web", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(&status, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    // A call the default profile refuses is refused in exec too (unshare: EPERM).
    let o = env.run(&["exec", "web", "busybox", "unshare", "-m", "true"]);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    env.ok(&["rm", "-f", "web"]);

    // The container's own seccomp choice is what exec gets.
    let id = run_d(
        &env,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "busybox:local",
            "sleep",
            "1000",
        ],
    );
    let out = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status /proc/1/status",
    ]);
    assert_eq!(
        out,
        "/proc/self/status:Seccomp:\t0\n/proc/1/status:Seccomp:\t0\n"
    );
}

#[test]
fn exec_dies_with_the_container_and_detaches() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    web(&env, &[]);
    // A foreground exec is killed when the container stops.
    let mut child = env
        .cmd()
        .args(["exec", "web", "sh", "-c", "echo running; sleep 1000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "running\n");
    env.ok(&["kill", "web"]);
    let mut status = None;
    eventually("the exec to end with the container", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(137));

    // -d: strata returns at once, the command runs on (past strata's exit) until the
    // container stops.
    env.ok(&["start", "web"]);
    let out = env.ok(&[
        "exec",
        "-d",
        "web",
        "sh",
        "-c",
        "echo detached > /d; exec sleep 999",
    ]);
    assert_eq!(out, "");
    eventually("the detached command", || {
        env.run(&["exec", "web", "cat", "/d"]).stdout == b"detached\n"
            && stdout(&env.run(&["exec", "web", "busybox", "ps"])).contains("sleep 999")
    });
    env.ok(&["stop", "-t", "0", "web"]);
    eventually("the detached command to end with the container", || {
        !host_processes().iter().any(|c| c == "sleep\0999\0")
    });
}

/// The command lines of every process of the host.
fn host_processes() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .collect()
}

/// Run `strata ARGS` under a pty made by `script`, typing `input` after a pause; the exit
/// status and what the terminal showed.
fn under_pty(env: &Env, args: &str, input: &[&[u8]]) -> (Option<i32>, String) {
    let line = format!(
        "stty cols 83 rows 21; {} --root {} {args}",
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
        std::thread::sleep(std::time::Duration::from_millis(800));
        stdin.write_all(chunk).unwrap();
        stdin.flush().unwrap();
    }
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    (o.status.code(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn exec_with_a_tty() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    web(&env, &[]);
    let (code, out) = under_pty(
        &env,
        "exec -it web sh -c 'busybox tty; busybox stty size; echo TERM=$TERM; exit 4'",
        &[],
    );
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("21 83"), "{out}");
    assert!(out.contains("TERM=xterm"), "{out}");
    // Interactive: keystrokes go in (raw mode: Enter is \r), output comes back.
    let (code, out) = under_pty(
        &env,
        "exec -it web sh",
        &[b"echo in-$((6*7))\r", b"exit 3\r"],
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("in-42"), "{out}");
    // -t without a terminal: still a pty for the command's output.
    let out = env.ok(&["exec", "-t", "web", "busybox", "tty"]);
    assert!(out.starts_with("/dev/pts/"), "{out}");
    // -it needs a terminal on stdin.
    let o = env.run(&["exec", "-it", "web", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the input device is not a TTY"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn start_restart_kill_wait_and_port() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = run_d(
        &env,
        &[
            "--name",
            "web",
            "-p",
            &publish,
            "busybox:local",
            "sh",
            "-c",
            "trap 'exit 3' TERM; echo started; while true; do sleep 0.1; done",
        ],
    );
    eventually("the first start's log", || {
        env.ok(&["logs", "web"]) == "started\n"
    });
    env.ok(&["exec", "web", "sh", "-c", "echo kept > /k"]);

    // port: docker's lines, one port, an unknown port.
    assert_eq!(
        env.ok(&["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    assert_eq!(
        env.ok(&["container", "port", "web", "80/tcp"]),
        format!("127.0.0.1:{port}\n")
    );
    let o = env.run(&["port", "web", "81"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No public port '81/tcp' published for web"),
        "{}",
        stderr(&o)
    );

    // wait blocks until the container stops, then prints its exit code.
    let waiter = env
        .cmd()
        .args(["wait", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(env.ok(&["kill", "-s", "TERM", "web"]), "web\n");
    let waited = waiter.wait_with_output().unwrap();
    assert!(waited.status.success());
    assert_eq!(stdout(&waited), "3\n");
    assert_eq!(env.ok(&["wait", "web"]), "3\n");
    assert!(ps_line(&env, &id).unwrap().contains("Exited (3) "));
    // A stopped container publishes nothing, and cannot be killed.
    assert_eq!(env.ok(&["port", "web"]), "");
    let o = env.run(&["kill", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "cannot kill container: web: container {id} is not running"
        )),
        "{}",
        stderr(&o)
    );

    // start: the same container again (its files kept, its log going on), name printed.
    assert_eq!(env.ok(&["start", "web"]), "web\n");
    assert!(ps_line(&env, &id).unwrap().contains(" Up "));
    eventually("the second start's log", || {
        env.ok(&["logs", "web"]) == "started\nstarted\n"
    });
    assert_eq!(env.ok(&["exec", "web", "cat", "/k"]), "kept\n");
    assert_eq!(
        env.ok(&["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    // Starting a running container changes nothing.
    assert_eq!(env.ok(&["container", "start", "web"]), "web\n");
    assert_eq!(supervisors(&env).len(), 1);
    let o = env.run(&["start", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No such container: nope"),
        "{}",
        stderr(&o)
    );

    // kill: SIGKILL by default.
    assert_eq!(env.ok(&["kill", &id[..12]]), format!("{}\n", &id[..12]));
    assert!(ps_line(&env, &id).unwrap().contains("Exited (137) "));
    assert_eq!(env.ok(&["wait", "web"]), "137\n");
    let o = env.run(&["kill", "-s", "NOPE", "web"]);
    assert_eq!(o.status.code(), Some(1));

    // restart: a stopped container starts; a running one stops (its trap: 3) and starts.
    assert_eq!(env.ok(&["restart", "web"]), "web\n");
    assert!(ps_line(&env, &id).unwrap().contains(" Up "));
    eventually("the third start's log", || {
        env.ok(&["logs", "web"]).matches("started").count() == 3
    });
    assert_eq!(env.ok(&["container", "restart", "-t", "5", "web"]), "web\n");
    assert!(ps_line(&env, &id).unwrap().contains(" Up "));
    eventually("the fourth start's log", || {
        env.ok(&["logs", "web"]).matches("started").count() == 4
    });
    assert_eq!(supervisors(&env).len(), 1);
    assert_eq!(env.ok(&["exec", "web", "cat", "/k"]), "kept\n");
}

#[test]
fn container_prune_removes_only_stopped_containers() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let running = run_d(&env, &["busybox:local", "sleep", "1000"]);
    let exited = |n: &str| {
        let id = run_d(
            &env,
            &[
                "--name",
                n,
                "busybox:local",
                "sh",
                "-c",
                "busybox head -c 1234 /dev/zero > /f",
            ],
        );
        assert_eq!(env.ok(&["wait", n]), "0\n");
        id
    };
    let a = exited("pa");
    let b = exited("pb");

    // The prompt: anything but y (end of input included) keeps them.
    const PROMPT: &str = "WARNING! This will remove all stopped containers.\n\
                          Are you sure you want to continue? [y/N] ";
    for answer in [&b"n\n"[..], b"", b"yes\n"] {
        let o = with_stdin(&env, &["container", "prune"], answer);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), format!("{PROMPT}Total reclaimed space: 0B\n"));
        assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 3);
    }
    // y: removed, oldest first, with the size of their writable layers.
    let o = with_stdin(&env, &["container", "prune"], b"y\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{PROMPT}Deleted Containers:\n{a}\n{b}\n\nTotal reclaimed space: 2.468kB\n")
    );
    assert_eq!(env.ok(&["ps", "-aq", "--no-trunc"]), format!("{running}\n"));
    for id in [&a, &b] {
        assert!(!env.root().join("containers").join(id).exists());
        assert!(!env.root().join("roots/containers").join(id).exists());
    }

    // -f: no prompt; the running container stays.
    let c = exited("pc");
    assert_eq!(
        env.ok(&["container", "prune", "-f"]),
        format!("Deleted Containers:\n{c}\n\nTotal reclaimed space: 1.234kB\n")
    );
    assert_eq!(
        env.ok(&["container", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    assert_eq!(env.ok(&["ps", "-aq", "--no-trunc"]), format!("{running}\n"));
}
