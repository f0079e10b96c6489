//! Issue 10, item 3: Docker's default seccomp profile for every RUN and `strata run`.
//!
//! The attack: a user namespace, in which the process is "root" with every capability, then a
//! mount in it (`unshare -U -r -m sh -c 'mount -t tmpfs none /etc'`): the kernel surface that
//! Docker's profile closes without CAP_SYS_ADMIN. It must be refused in a build's RUN, in
//! `strata run` and in `strata run -d`; `--security-opt seccomp=unconfined` opts out, and
//! `--security-opt seccomp=PROFILE.json` takes a profile in Docker's format.

use std::time::{Duration, Instant};

use super::guard::{after, setup};
use crate::common::Env;

const ESCAPE: &str =
    "busybox unshare -U -r -m sh -c 'busybox mount -t tmpfs none /etc' && echo escaped";
const REFUSED: &str = "unshare: unshare(0x10020000): Operation not permitted";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn build_run_cannot_unshare_a_user_namespace() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    let ctx = env.path("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox:local\nRUN echo before\nRUN {ESCAPE}\n"),
    )
    .unwrap();
    let o = env.run(&[
        "build",
        "--progress=plain",
        "-t",
        "escape:1",
        ctx.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}{err}", text(&o.stdout));
    // The RUN before it ran (a filtered step still forks and execs).
    assert!(err.contains("#2 0.") && err.contains(" before\n"), "{err}");
    // No output line of step #3 says it got through ("#3 0.123 escaped").
    assert!(
        !err.lines()
            .any(|l| l.starts_with("#3 ") && l.ends_with(" escaped") && !l.contains("RUN")),
        "{err}"
    );
    assert!(err.contains(REFUSED), "{err}");
    let last = err
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap();
    assert_eq!(
        last,
        format!(
            "error: failed to solve: [3/3] RUN {ESCAPE}: executor failed running \
             [/bin/sh -c {ESCAPE}]: exit code: 1"
        )
    );
    let images = env.ok(&["images"]);
    assert!(!images.contains("escape"), "{images}");
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn run_cannot_unshare_unless_unconfined() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    let o = env.run(&["run", "--rm", "busybox:local", "sh", "-c", ESCAPE]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "");
    assert_eq!(text(&o.stderr), format!("{REFUSED}\n"));

    // Docker's opt-out gives the old behaviour back, explicitly.
    let o = env.run(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox:local",
        "sh",
        "-c",
        ESCAPE,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "escaped\n");
    env.fsck_clean();
    after(&canary, &env);
}

/// Poll `ps -a` until the container has exited; its status column.
fn exited(env: &Env, id: &str) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = env.ok(&["ps", "-a"]);
        if let Some(l) = ps.lines().find(|l| l.starts_with(&id[..12])) {
            if l.contains("Exited") {
                return l.to_string();
            }
        }
        assert!(Instant::now() < end, "container {id} did not exit: {ps}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn detached_run_gets_the_profile_too() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    let id = env.ok(&["run", "-d", "busybox:local", "sh", "-c", ESCAPE]);
    let id = id.trim();
    assert!(exited(&env, id).contains("Exited (1)"));
    assert_eq!(env.ok(&["logs", id]), "");
    let logs = env.run(&["logs", id]);
    assert_eq!(text(&logs.stderr), format!("{REFUSED}\n"));

    let un = env.ok(&[
        "run",
        "-d",
        "--security-opt",
        "seccomp:unconfined",
        "busybox:local",
        "sh",
        "-c",
        ESCAPE,
    ]);
    let un = un.trim();
    assert!(exited(&env, un).contains("Exited (0)"));
    assert_eq!(env.ok(&["logs", un]), "escaped\n");
    env.ok(&["rm", id, un]);
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn run_with_a_profile_file() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    let profile = env.path("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = env.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox:local",
        "sh",
        "-c",
        "busybox mkdir /made || echo refused; busybox unshare -U -r true && echo unshared",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "refused\nunshared\n");
    assert_eq!(
        text(&o.stderr),
        "mkdir: can't create directory '/made': Operation not permitted\n"
    );

    // Bad files and options: exit 125, an error naming the file, nothing started.
    let missing = env.path("missing.json");
    let bad = env.path("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#).unwrap();
    let notjson = env.path("notjson.json");
    std::fs::write(&notjson, "defaultAction: allow\n").unwrap();
    for (opt, want) in [
        (
            format!("seccomp={}", missing.display()),
            format!(
                "error: opening seccomp profile {} failed: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            format!("seccomp={}", bad.display()),
            format!(
                "error: seccomp profile {}: invalid seccomp profile: argument index 9 out of range (0 to 5)",
                bad.display()
            ),
        ),
        (
            format!("seccomp={}", notjson.display()),
            format!(
                "error: seccomp profile {}: invalid seccomp profile: expected value at line 1 column 1",
                notjson.display()
            ),
        ),
        (
            "apparmor=unconfined".to_string(),
            "error: invalid --security-opt \"apparmor=unconfined\": strata supports \
             seccomp=unconfined and seccomp=PROFILE.json"
                .to_string(),
        ),
    ] {
        let o = env.run(&[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox:local",
            "sh",
            "-c",
            "echo started",
        ]);
        assert_eq!(o.status.code(), Some(125), "{opt}");
        assert_eq!(text(&o.stdout), "", "{opt}");
        assert_eq!(text(&o.stderr), format!("{want}\n"), "{opt}");
    }
    env.fsck_clean();
    after(&canary, &env);
}
