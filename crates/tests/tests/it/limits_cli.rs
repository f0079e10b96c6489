//! `run --memory/--memory-swap/--cpus/--pids-limit` (a cgroup of the container's own),
//! HEALTHCHECK (`--health-*`, `ps`, `inspect`), `--restart` policies, `--init`, end to end
//! on busybox
//! containers. The cgroup files are read on the host, wherever the host mounts them (v2, or
//! the v1 controllers' hierarchies).

use std::path::PathBuf;

use crate::common::Env;
use crate::run_cli::{eventually, ps_line, run_d, setup, stderr, stdout, Detached};

/// `inspect -f TEMPLATE` of one container, trimmed.
fn inspect(env: &Env, id: &str, template: &str) -> String {
    env.ok(&["inspect", "-f", template, id]).trim().to_string()
}

/// The host's file of the container `id`'s cgroup for `controller` (v2: one directory).
fn cgroup_file(id: &str, controller: &str, v2: &str, v1: &str) -> PathBuf {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").is_file() {
        root.join("strata").join(id).join(v2)
    } else {
        root.join(controller).join("strata").join(id).join(v1)
    }
}

/// The same file as the container sees it (its cgroup namespace's view on `/sys/fs/cgroup`).
fn inside_file(controller: &str, v2: &str, v1: &str) -> String {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").is_file() {
        format!("/sys/fs/cgroup/{v2}")
    } else {
        format!("/sys/fs/cgroup/{controller}/{v1}")
    }
}

/// Wait until the detached container has exited; its exit code.
fn exited(env: &Env, id: &str) -> i32 {
    eventually("the container to exit", || {
        inspect(env, id, "{{.State.Status}}") == "exited"
    });
    inspect(env, id, "{{.State.ExitCode}}").parse().unwrap()
}

/// A shell loop that doubles a string until something stops it (busybox has no allocator).
const EAT_MEMORY: &str = "x=0123456789abcdef; while :; do x=$x$x; done";

#[test]
fn memory_limit_is_written_enforced_and_reported() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);

    // The limit is on the container's own cgroup, and its processes are in it.
    let id = run_d(&env, &["-m", "64m", "busybox:local", "sleep", "60"]);
    let limit = cgroup_file(&id, "memory", "memory.max", "memory.limit_in_bytes");
    let text = std::fs::read_to_string(&limit).unwrap();
    assert_eq!(text.trim(), "67108864", "{}", limit.display());
    // Inside, read-only at docker's place.
    let file = inside_file("memory", "memory.max", "memory.limit_in_bytes");
    assert_eq!(env.ok(&["exec", &id, "cat", &file]).trim(), "67108864");
    let o = env.run(&["exec", &id, "sh", "-c", &format!("echo 1 > {file}")]);
    assert!(!o.status.success(), "the cgroup view is writable");
    let o = env.ok(&["run", "--rm", "-m", "64m", "busybox:local", "cat", &file]);
    assert_eq!(o.trim(), "67108864", "foreground");
    assert_eq!(inspect(&env, &id, "{{.HostConfig.Memory}}"), "67108864");
    assert_eq!(
        inspect(&env, &id, "{{.HostConfig.MemorySwap}}"),
        "134217728"
    );
    env.ok(&["rm", "-f", &id]);
    eventually("the cgroup to be removed", || {
        !limit.parent().unwrap().exists()
    });

    // Past the limit: killed by the OOM killer (137, OOMKilled), detached and in the
    // foreground alike.
    let id = run_d(
        &env,
        &[
            "-m",
            "32m",
            "--memory-swap",
            "32m",
            "busybox:local",
            "sh",
            "-c",
            EAT_MEMORY,
        ],
    );
    assert_eq!(exited(&env, &id), 137);
    assert_eq!(inspect(&env, &id, "{{.State.OOMKilled}}"), "true");
    let o = env.run(&[
        "run",
        "--rm",
        "-m",
        "32m",
        "--memory-swap",
        "32m",
        "busybox:local",
        "sh",
        "-c",
        EAT_MEMORY,
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));

    // Below it: the same loop stopped at 4 MiB runs to its end, and nothing is OOM-killed.
    let id = run_d(
        &env,
        &[
            "-m",
            "32m",
            "busybox:local",
            "sh",
            "-c",
            "x=0123456789abcdef; while [ ${#x} -lt 4194304 ]; do x=$x$x; done; echo ${#x}",
        ],
    );
    assert_eq!(exited(&env, &id), 0);
    assert_eq!(inspect(&env, &id, "{{.State.OOMKilled}}"), "false");
    assert_eq!(env.ok(&["logs", &id]).trim(), "4194304");

    // docker's checks.
    let o = env.run(&["run", "--rm", "-m", "1m", "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Minimum memory limit allowed is 6MB"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&[
        "run",
        "--rm",
        "--memory-swap",
        "1g",
        "busybox:local",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("You should always set the Memory limit when using Memoryswap"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn pids_limit_bounds_forks_and_cpus_sets_the_quota() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    // 30 background sleeps: with 10 pids some forks fail, without a limit none does.
    let forks = "i=0; while [ $i -lt 30 ]; do sleep 2 & i=$((i+1)); done; echo done";
    let limited = env.run(&[
        "run",
        "--rm",
        "--pids-limit",
        "10",
        "busybox:local",
        "sh",
        "-c",
        forks,
    ]);
    assert!(
        stderr(&limited).contains("can't fork"),
        "no fork failed under --pids-limit 10: {}",
        stderr(&limited)
    );
    let free = env.run(&["run", "--rm", "busybox:local", "sh", "-c", forks]);
    assert!(free.status.success(), "{}", stderr(&free));
    assert!(!stderr(&free).contains("can't fork"), "{}", stderr(&free));
    assert_eq!(stdout(&free).trim(), "done");

    let id = run_d(
        &env,
        &[
            "--cpus",
            "0.5",
            "--pids-limit",
            "10",
            "busybox:local",
            "sleep",
            "60",
        ],
    );
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").is_file();
    let quota = cgroup_file(&id, "cpu", "cpu.max", "cpu.cfs_quota_us");
    let want = if v2 { "50000 100000" } else { "50000" };
    assert_eq!(std::fs::read_to_string(&quota).unwrap().trim(), want);
    if !v2 {
        let period = cgroup_file(&id, "cpu", "", "cpu.cfs_period_us");
        assert_eq!(std::fs::read_to_string(period).unwrap().trim(), "100000");
    }
    let pids = cgroup_file(&id, "pids", "pids.max", "pids.max");
    assert_eq!(std::fs::read_to_string(&pids).unwrap().trim(), "10");
    assert_eq!(inspect(&env, &id, "{{.HostConfig.NanoCpus}}"), "500000000");
    assert_eq!(inspect(&env, &id, "{{.HostConfig.PidsLimit}}"), "10");
    // A process exec'd in the container is in its cgroup too.
    let procs = inside_file("pids", "cgroup.procs", "cgroup.procs");
    let o = env.ok(&["exec", &id, "sh", "-c", &format!("echo $$; cat {procs}")]);
    let mut lines = o.lines();
    let me = lines.next().unwrap();
    assert!(lines.any(|l| l == me), "{o}");
    let quota_inside = inside_file("cpu", "cpu.max", "cpu.cfs_quota_us");
    assert_eq!(env.ok(&["exec", &id, "cat", &quota_inside]).trim(), want);
    env.ok(&["rm", "-f", &id]);
    eventually("the cgroups to be removed", || {
        !quota.parent().unwrap().exists() && !pids.parent().unwrap().exists()
    });
}

#[test]
fn healthcheck_goes_unhealthy_then_healthy() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let id = run_d(
        &env,
        &[
            "--health-cmd",
            "test -f /ok && echo fine",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "busybox:local",
            "sleep",
            "120",
        ],
    );
    let health = |env: &Env| inspect(env, &id, "{{.State.Health.Status}}");
    // Right after the start, before any probe.
    assert_eq!(health(&env), "starting");
    assert!(
        ps_line(&env, &id).unwrap().contains("(health: starting)"),
        "{:?}",
        ps_line(&env, &id)
    );
    eventually("unhealthy", || health(&env) == "unhealthy");
    let streak: i64 = inspect(&env, &id, "{{.State.Health.FailingStreak}}")
        .parse()
        .unwrap();
    assert!(streak >= 2, "{streak}");
    assert!(ps_line(&env, &id).unwrap().contains("(unhealthy)"));

    env.ok(&["exec", &id, "sh", "-c", ": > /ok"]);
    eventually("healthy", || health(&env) == "healthy");
    assert!(ps_line(&env, &id).unwrap().contains("(healthy)"));
    assert_eq!(inspect(&env, &id, "{{.State.Health.FailingStreak}}"), "0");
    let log = inspect(&env, &id, "{{json .State.Health.Log}}");
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let log = log.as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{log:?}");
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(last["Output"], "fine\n");

    // A probe past its timeout is killed and counts as a failure.
    let slow = run_d(
        &env,
        &[
            "--health-cmd",
            "sleep 5",
            "--health-interval",
            "100ms",
            "--health-timeout",
            "200ms",
            "--health-retries",
            "1",
            "busybox:local",
            "sleep",
            "120",
        ],
    );
    eventually("unhealthy after a timeout", || {
        inspect(&env, &slow, "{{.State.Health.Status}}") == "unhealthy"
    });
    let out = inspect(&env, &slow, "{{(index .State.Health.Log 0).Output}}");
    assert!(out.contains("exceeded timeout"), "{out}");

    // --no-healthcheck: no Health at all.
    let none = run_d(&env, &["--no-healthcheck", "busybox:local", "sleep", "120"]);
    let j = env.ok(&["inspect", &none]);
    assert!(!j.contains("\"Health\""), "{j}");
}

/// A foreground run is not supervised: `--restart` and `--health-cmd` there are said to
/// apply to detached containers, not silently dropped; the run itself goes on.
#[test]
fn foreground_run_says_restart_and_health_need_detach() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let o = env.run(&[
        "run",
        "--restart",
        "on-failure:2",
        "--health-cmd",
        "true",
        "busybox:local",
        "sh",
        "-c",
        "echo ran; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ran\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: --restart applies to detached containers in strata (run -d)"),
        "{err}"
    );
    assert!(
        err.contains("warning: health checks run for detached containers in strata (run -d)"),
        "{err}"
    );
}

#[test]
fn restart_policies() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);

    // on-failure:2: two restarts, then it stays exited.
    let id = run_d(
        &env,
        &[
            "--restart",
            "on-failure:2",
            "busybox:local",
            "sh",
            "-c",
            "echo run; exit 3",
        ],
    );
    eventually("two restarts", || {
        inspect(&env, &id, "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    });
    assert_eq!(inspect(&env, &id, "{{.State.ExitCode}}"), "3");
    assert_eq!(env.ok(&["logs", &id]), "run\nrun\nrun\n");
    assert_eq!(
        inspect(&env, &id, "{{json .HostConfig.RestartPolicy}}"),
        r#"{"Name":"on-failure","MaximumRetryCount":2}"#
    );

    // on-failure does not restart a success.
    let ok = run_d(
        &env,
        &[
            "--restart",
            "on-failure",
            "busybox:local",
            "sh",
            "-c",
            "echo once",
        ],
    );
    assert_eq!(exited(&env, &ok), 0);
    assert_eq!(inspect(&env, &ok, "{{.RestartCount}}"), "0");

    // always: restarted after every exit, until `stop`.
    let always = run_d(
        &env,
        &[
            "--restart",
            "always",
            "busybox:local",
            "sh",
            "-c",
            "echo up; sleep 0.3",
        ],
    );
    eventually("two restarts", || {
        inspect(&env, &always, "{{.RestartCount}}")
            .parse::<i64>()
            .unwrap()
            >= 2
    });
    env.ok(&["stop", &always]);
    assert_eq!(inspect(&env, &always, "{{.State.Status}}"), "exited");
    let count = inspect(&env, &always, "{{.RestartCount}}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(inspect(&env, &always, "{{.State.Status}}"), "exited");
    assert_eq!(inspect(&env, &always, "{{.RestartCount}}"), count);

    // docker's refusals.
    let o = env.run(&[
        "run",
        "--rm",
        "--restart",
        "always",
        "busybox:local",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Conflicting options: --restart and --rm"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&[
        "run",
        "-d",
        "--restart",
        "always:3",
        "busybox:local",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("maximum retry count cannot be used with restart policy"),
        "{}",
        stderr(&o)
    );
}

/// The processes of a running container: `(pid, name, state)` from `/proc/*/stat`.
fn processes(env: &Env, id: &str) -> Vec<(u32, String, String)> {
    let out = env.ok(&["exec", id, "sh", "-c", "cat /proc/[0-9]*/stat"]);
    out.lines()
        .filter_map(|l| {
            let (pid, rest) = l.split_once(" (")?;
            let (name, rest) = rest.rsplit_once(") ")?;
            let state = rest.split(' ').next()?;
            Some((pid.parse().ok()?, name.to_string(), state.to_string()))
        })
        .collect()
}

#[test]
fn init_is_pid_1_reaps_zombies_and_forwards_signals() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    // The command is not pid 1; its exit code and a signal's are the container's.
    let o = env.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox:local",
        "sh",
        "-c",
        "echo $$",
    ]);
    let pid: u32 = o.trim().parse().unwrap();
    assert!(pid >= 2, "{o}");
    let o = env.run(&[
        "run",
        "--rm",
        "--init",
        "busybox:local",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    let o = env.run(&[
        "run",
        "--rm",
        "--init",
        "busybox:local",
        "sh",
        "-c",
        "kill -9 $$",
    ]);
    assert_eq!(o.status.code(), Some(137));
    let o = env.run(&["run", "--rm", "--init", "busybox:local", "nope"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));

    // An orphan that exits is reaped by the init; without one, `sleep` as pid 1 leaves it a
    // zombie (the same script, so the check can fail).
    let script = "(sleep 0.2 &); exec sleep 60";
    let with = run_d(&env, &["--init", "busybox:local", "sh", "-c", script]);
    let without = run_d(&env, &["busybox:local", "sh", "-c", script]);
    let zombie = |id: &str| processes(&env, id).iter().any(|p| p.2 == "Z");
    eventually("the orphan's zombie without --init", || zombie(&without));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let ps = processes(&env, &with);
    assert!(!ps.iter().any(|p| p.2 == "Z"), "{ps:?}");
    assert_eq!(ps[0].0, 1);
    assert_eq!(ps[0].1, "strata-init");
    assert!(ps.iter().any(|p| p.0 >= 2 && p.1 == "sleep"), "{ps:?}");
    // `stop`'s SIGTERM reaches the command through the init (143, as with docker's tini).
    env.ok(&["stop", &with]);
    assert_eq!(inspect(&env, &with, "{{.State.ExitCode}}"), "143");
    assert_eq!(inspect(&env, &with, "{{.HostConfig.Init}}"), "true");
}
