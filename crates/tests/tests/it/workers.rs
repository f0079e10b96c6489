//! Scale-out as deploy/kubernetes/bake-indexed-job.yaml runs it, without a cluster: the
//! strata image (scripts/image/build.sh, built by strata) run by podman the way the Job's
//! pod runs it — user 1000, capabilities dropped but SETUID and SETGID, seccomp unconfined,
//! /proc unmasked (`procMount: Unmasked`), no privileges, a fresh empty store per pod (the
//! emptyDir), the repository read-only at /workspace, the pod's network (`STRATA_NETWORK=host`:
//! a pod has no /dev/net/tun) — three at once, each `strata bake --index N --push` against
//! one registry that holds the images and the cache (`mode=max`, one cache tag per target,
//! every target reading all three).
//!
//! Counted RUN executions show that a second wave of fresh workers builds nothing the first
//! built, and that a one-file change re-runs only the steps after it, on whichever worker
//! gets that target.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::registry::Registry;

const DOCKERFILE: &str = "ARG REGISTRY
FROM ${REGISTRY}/w/busybox:latest AS base
RUN echo base > /base
FROM base AS a
COPY a.txt /a.txt
RUN cat /a.txt > /out
FROM base AS b
COPY b.txt /b.txt
RUN cat /b.txt /base > /out
FROM base AS c
RUN echo c > /out
";

const BAKE: &str = r#"variable "REGISTRY" { default = "registry.invalid" }
group "default" { targets = ["a", "b", "c"] }
target "_common" {
  context = "."
  args = { REGISTRY = "${REGISTRY}" }
  cache-from = [
    "type=registry,ref=${REGISTRY}/w/cache:a",
    "type=registry,ref=${REGISTRY}/w/cache:b",
    "type=registry,ref=${REGISTRY}/w/cache:c",
  ]
}
target "a" {
  inherits = ["_common"]
  target = "a"
  tags = ["${REGISTRY}/w/a:latest"]
  cache-to = ["type=registry,ref=${REGISTRY}/w/cache:a,mode=max"]
}
target "b" {
  inherits = ["_common"]
  target = "b"
  tags = ["${REGISTRY}/w/b:latest"]
  cache-to = ["type=registry,ref=${REGISTRY}/w/cache:b,mode=max"]
}
target "c" {
  inherits = ["_common"]
  target = "c"
  tags = ["${REGISTRY}/w/c:latest"]
  cache-to = ["type=registry,ref=${REGISTRY}/w/cache:c,mode=max"]
}
"#;

const IMAGE: &str = "localhost/strata-worker:test";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The strata image built by strata (scripts/image/build.sh) and loaded into podman.
fn worker_image(store: &Path) {
    let script = strata_tests::repo_root().join("scripts/image/build.sh");
    run(Command::new("bash")
        .arg(&script)
        .env("STRATA_BIN", strata_tests::strata_bin())
        .env("STRATA_ROOT", store)
        .env("STRATA_IMAGE", "strata-worker:test"));
    let tar = store.join("worker.tar");
    run(Command::new(strata_tests::strata_bin())
        .arg("--root")
        .arg(store)
        .args(["save", "-o"])
        .arg(&tar)
        .arg("strata-worker:test"));
    run(Command::new("podman").args(["load", "-q", "-i"]).arg(&tar));
    let _ = std::fs::remove_file(&tar);
}

/// One pod of the Indexed Job: `strata bake --index N --push` in a fresh store.
fn worker(ctx: &Path, stores: &Path, registry: &str, index: usize, name: &str) -> Child {
    let store = stores.join(name);
    std::fs::create_dir(&store).unwrap();
    crate::common::tool("chown", &["1000:1000", store.to_str().unwrap()]);
    Command::new("podman")
        .args(["run", "--rm", "--network", "host", "--user", "1000:1000"])
        .args(["--cap-drop", "ALL", "--cap-add", "SETUID,SETGID"])
        .args([
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "unmask=ALL",
        ])
        .arg("-v")
        .arg(format!(
            "{}:/home/strata/.local/share/strata",
            store.display()
        ))
        .arg("-v")
        .arg(format!("{}:/workspace:ro", ctx.display()))
        .args(["-w", "/workspace", "-e", &format!("REGISTRY={registry}")])
        .args(["-e", "STRATA_NETWORK=host", IMAGE])
        .args([
            "bake",
            "--file",
            "docker-bake.hcl",
            "--progress=plain",
            "--push",
        ])
        .arg(format!("--index={index}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Start the workers for `indexes` at once; wait for all; the RUN steps each executed, by
/// index (from the build's `(N RUN executed, M steps cached)` line).
fn wave(ctx: &Path, stores: &Path, registry: &str, wave: &str, indexes: &[usize]) -> Vec<usize> {
    let children: Vec<(usize, Child)> = indexes
        .iter()
        .enumerate()
        .map(|(w, &i)| (i, worker(ctx, stores, registry, i, &format!("{wave}-w{w}"))))
        .collect();
    let mut runs = vec![usize::MAX; 3];
    for (i, child) in children {
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{wave}: worker for index {i} failed:\n{text}"
        );
        let n = text
            .lines()
            .find_map(|l| {
                let rest = l.split(" RUN executed").next()?;
                l.contains(" RUN executed")
                    .then(|| rest.rsplit('(').next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("{wave}: no RUN count for index {i}:\n{text}"));
        runs[i] = n;
    }
    runs
}

#[test]
fn indexed_job_workers_share_one_registry_cache() {
    strata_tests::require!(Root, PeersData, Podman, Registry, Skopeo);
    let _e2e = crate::common::share();
    let scratch = crate::common::scratch();
    let store = scratch.path().join("store");
    worker_image(&store);
    let reg = Registry::start();
    let registry = format!("127.0.0.1:{}", reg.port);

    // The base image, in the registry as a pod would find it.
    let st = |args: &[&str]| {
        run(Command::new(strata_tests::strata_bin())
            .arg("--root")
            .arg(&store)
            .args(args))
    };
    let tar = strata_tests::peers_data().join("busybox-rootfs.tar");
    let base = format!("{registry}/w/busybox:latest");
    st(&["import", tar.to_str().unwrap(), &base]);
    st(&["push", &base]);

    // The repository (the init container's clone), readable by user 1000.
    let ctx = scratch.path().join("repo");
    std::fs::create_dir(&ctx).unwrap();
    for (name, text) in [
        ("Dockerfile", DOCKERFILE),
        ("docker-bake.hcl", BAKE),
        ("a.txt", "a, version 1\n"),
        ("b.txt", "b\n"),
    ] {
        std::fs::write(ctx.join(name), text).unwrap();
    }
    for p in [scratch.path(), ctx.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let stores = scratch.path().join("stores");
    std::fs::create_dir(&stores).unwrap();

    // Wave 1: three fresh pods build the three targets at once. Each runs the RUNs of its
    // target (the shared base's RUN may run on all three: none has exported cache yet).
    let first = wave(&ctx, &stores, &registry, "wave1", &[0, 1, 2]);
    println!("RUN executed per target, wave 1: {first:?}");
    for (i, n) in first.iter().enumerate() {
        assert!((1..=2).contains(n), "wave 1, index {i}: {n} RUN executed");
    }
    for t in ["a", "b", "c"] {
        let image = format!("{registry}/w/{t}:latest");
        run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{image}")));
    }

    // Wave 2: three more fresh pods (empty stores), the indexes dealt differently: nothing
    // is built again, every step comes from the registry's cache.
    let second = wave(&ctx, &stores, &registry, "wave2", &[2, 0, 1]);
    println!("wave 2 (fresh stores): {second:?}");
    assert_eq!(second, vec![0, 0, 0], "wave 2 re-ran steps: {second:?}");

    // One file of target a changes: only the RUN after its COPY runs again, on whichever
    // pod gets index 0; b and c build nothing.
    std::fs::write(ctx.join("a.txt"), "a, version 2\n").unwrap();
    let third = wave(&ctx, &stores, &registry, "wave3", &[1, 2, 0]);
    println!("wave 3 (a.txt changed): {third:?}");
    assert_eq!(third, vec![1, 0, 0], "wave 3: {third:?}");

    let _ = Command::new("podman").args(["rmi", "-f", IMAGE]).output();
}

/// The minimum a container needs, as README's "Builds without root" says, with podman and
/// Docker 20.10 (user 1000, capabilities dropped but SETUID and SETGID, no privileges): a
/// build with strata's own /proc where /proc is unmasked, `--isolation chroot` where it is
/// masked, and a clear refusal where the seccomp profile forbids user namespaces.
#[test]
fn strata_builds_in_unprivileged_podman_and_docker() {
    strata_tests::require!(Root, PeersData, Podman, Docker);
    let _e2e = crate::common::share();
    let scratch = crate::common::scratch();
    let store = scratch.path().join("store");
    worker_image(&store);
    let tar = store.join("worker-docker.tar");
    run(Command::new(strata_tests::strata_bin())
        .arg("--root")
        .arg(&store)
        .args(["save", "-o"])
        .arg(&tar)
        .arg("strata-worker:test"));
    run(Command::new("/usr/bin/docker")
        .args(["load", "-q", "-i"])
        .arg(&tar));
    let ctx = scratch.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:latest\nRUN echo built > /msg && cat /proc/self/uid_map\n",
    )
    .unwrap();
    std::fs::copy(
        strata_tests::peers_data().join("busybox-rootfs.tar"),
        ctx.join("bb.tar"),
    )
    .unwrap();
    for p in [scratch.path(), ctx.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(ctx.join("bb.tar"), std::fs::Permissions::from_mode(0o644)).unwrap();
    // A fresh store volume each time (the container's own root, an overlay, cannot be an
    // overlay's upper directory).
    let mut n = 0;
    let mut try_in = |engine: &str, image: &str, opts: &[&str], isolation: &str| {
        n += 1;
        let vol = scratch.path().join(format!("vol{n}"));
        std::fs::create_dir(&vol).unwrap();
        crate::common::tool("chown", &["1000:1000", vol.to_str().unwrap()]);
        let script = format!(
            "strata import /ctx/bb.tar busybox:latest >/dev/null && \
             strata build --network none --isolation {isolation} --progress=plain -t t /ctx"
        );
        let out = Command::new(engine)
            .args(["run", "--rm", "--network", "none", "--user", "1000:1000"])
            .args([
                "--cap-drop",
                "ALL",
                "--cap-add",
                "SETUID",
                "--cap-add",
                "SETGID",
            ])
            .args(opts)
            .arg("-v")
            .arg(format!(
                "{}:/home/strata/.local/share/strata",
                vol.display()
            ))
            .arg("-v")
            .arg(format!("{}:/ctx:ro", ctx.display()))
            .args(["--entrypoint", "sh", image, "-c", &script])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let docker = "strata-worker:test";
    for (engine, image, opts, isolation, works, says) in [
        // podman's own seccomp profile allows user namespaces; /proc unmasked: full isolation.
        (
            "podman",
            IMAGE,
            &["--security-opt", "unmask=ALL"][..],
            "default",
            true,
            "1 RUN executed",
        ),
        // /proc masked (the default): the kernel refuses a new proc; chroot isolation builds.
        (
            "podman",
            IMAGE,
            &[][..],
            "default",
            false,
            "hint: in a container whose /proc is masked",
        ),
        ("podman", IMAGE, &[][..], "chroot", true, "1 RUN executed"),
        // Docker 20.10's default seccomp profile refuses unshare(CLONE_NEWUSER).
        (
            "/usr/bin/docker",
            docker,
            &[][..],
            "chroot",
            false,
            "could not make a user namespace",
        ),
        (
            "/usr/bin/docker",
            docker,
            &[
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "systempaths=unconfined",
            ][..],
            "default",
            true,
            "1 RUN executed",
        ),
        (
            "/usr/bin/docker",
            docker,
            &["--security-opt", "seccomp=unconfined"][..],
            "chroot",
            true,
            "1 RUN executed",
        ),
        // Root in the container with Docker's default capabilities plus CAP_SYS_ADMIN and
        // CAP_NET_ADMIN, under Docker's default seccomp profile (no user namespaces, no
        // pivot_root): chroot isolation builds.
        (
            "/usr/bin/docker",
            docker,
            &[
                "--user",
                "0",
                "--cap-add",
                "CHOWN",
                "--cap-add",
                "DAC_OVERRIDE",
                "--cap-add",
                "FOWNER",
                "--cap-add",
                "FSETID",
                "--cap-add",
                "KILL",
                "--cap-add",
                "SETPCAP",
                "--cap-add",
                "NET_BIND_SERVICE",
                "--cap-add",
                "NET_RAW",
                "--cap-add",
                "SYS_CHROOT",
                "--cap-add",
                "MKNOD",
                "--cap-add",
                "AUDIT_WRITE",
                "--cap-add",
                "SETFCAP",
                "--cap-add",
                "SYS_ADMIN",
                "--cap-add",
                "NET_ADMIN",
                "-e",
                "STRATA_ROOT=/home/strata/.local/share/strata",
            ][..],
            "chroot",
            true,
            "1 RUN executed",
        ),
    ] {
        let (ok, text) = try_in(engine, image, opts, isolation);
        assert_eq!(
            ok, works,
            "{engine} {opts:?} --isolation {isolation}:\n{text}"
        );
        assert!(
            text.contains(says),
            "{engine} {opts:?} --isolation {isolation}:\n{text}"
        );
        if works && !opts.contains(&"SYS_ADMIN") {
            // The build ran in a user namespace (uid 0 is 1000 outside).
            assert!(text.contains("1000          1"), "{text}");
        }
    }
    let _ = Command::new("/usr/bin/docker")
        .args(["rmi", "-f", docker])
        .output();
}
