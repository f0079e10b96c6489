//! Rootless mode, as the unprivileged users `.ci/run` makes: `strata-ci` (subordinate ids
//! 100000-165535 in /etc/subuid and /etc/subgid) and `strata-ci1` (none: the single-id
//! mapping). Each test runs a copy of the strata binary through `runuser` with a clean
//! environment and a store of its own under `$XDG_DATA_HOME`; the root side of a comparison
//! runs the same binary as root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tarball the tests import as `busybox:latest` (scripts/peers.sh).
fn busybox_tar() -> PathBuf {
    strata_tests::peers_data().join("busybox-rootfs.tar")
}

/// One unprivileged user with a private directory (the store's `$XDG_DATA_HOME` and the
/// build contexts), removed as root at the end.
struct User {
    name: &'static str,
    dir: PathBuf,
    bin: PathBuf,
}

impl User {
    fn new(name: &'static str) -> User {
        // A copy of the binary any user may run (the checkout may be private to root).
        let shared = tempfile::Builder::new()
            .prefix("strata-rootless-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = shared.join("strata");
        std::fs::copy(strata_tests::strata_bin(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = shared.join(name);
        std::fs::create_dir(&dir).unwrap();
        crate::common::tool("chown", &[&format!("{name}:"), dir.to_str().unwrap()]);
        User { name, dir, bin }
    }

    fn uid(&self) -> u32 {
        let out = Command::new("id").args(["-u", self.name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// `runuser -u NAME -- env -i ... <cmd>` in `cwd`, with the user's home, a plain PATH and
    /// `$XDG_DATA_HOME` in the private directory.
    fn command(&self, cwd: &Path) -> Command {
        let home = format!("/home/{}", self.name);
        let mut c = Command::new("runuser");
        c.current_dir(cwd)
            .args(["-u", self.name, "--", "env", "-i"])
            .args([
                format!("HOME={home}"),
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                format!("XDG_DATA_HOME={}", self.dir.join("data").display()),
                "SOURCE_DATE_EPOCH=1000".into(),
            ]);
        c
    }

    fn strata(&self, args: &[&str]) -> Output {
        self.strata_env(&[], args)
    }

    /// `strata ARGS` with extra `NAME=VALUE` environment entries.
    fn strata_env(&self, env: &[&str], args: &[&str]) -> Output {
        self.command(&self.dir)
            .args(env)
            .arg(&self.bin)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.strata(args);
        assert!(
            out.status.success(),
            "{} strata {args:?}: {}\n{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A build context in the private directory, readable by the user.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // Root removes what the user's namespace owns (subordinate ids).
        if let Some(shared) = self.dir.parent() {
            let _ = std::fs::remove_dir_all(shared);
        }
    }
}

const SAME_AS_ROOT: &str = r#"FROM busybox:latest AS build
RUN mkdir -p /out/d && echo hi > /out/a && chown 1000:1000 /out/a && chown 2000:3000 /out/d \
 && mkfifo /out/fifo && ln -s a /out/link && chmod 4755 /out/a
RUN rm -rf /etc/network && mkdir -p /etc/network && echo x > /etc/network/y && rm /bin/vi
FROM busybox:latest
COPY --from=build /out /out
COPY --chown=1000:1000 --from=build /etc/network /etc/network
RUN chown -R 1234:5678 /out/d && touch /out/d/new && rm /bin/ls
"#;

/// The layers of an image as `inspect` gives them.
fn layers(out: &str) -> Vec<String> {
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn images_built_rootless_are_the_images_built_as_root() {
    strata_tests::require!(Root, PeersData, RootlessUsers);
    let _e2e = crate::common::share();
    let user = User::new("strata-ci");
    let ctx = user.context("ctx", SAME_AS_ROOT);
    let ctx_s = ctx.to_str().unwrap();
    let tar = busybox_tar();
    user.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
    let rootless_build = user.strata(&["build", "-q", "-t", "same:rl", ctx_s]);
    assert!(
        rootless_build.status.success(),
        "{}",
        String::from_utf8_lossy(&rootless_build.stderr)
    );
    user.ok(&[
        "build",
        "-q",
        "--target",
        "build",
        "-t",
        "same:rl-build",
        ctx_s,
    ]);
    let fmt = ["inspect", "--format", "{{json .RootFS.Layers}}"];
    let rl = layers(&user.ok(&[&fmt[..], &["same:rl"]].concat()));
    let rl_build = layers(&user.ok(&[&fmt[..], &["same:rl-build"]].concat()));

    // The same binary as root, on a store of its own.
    let root_store = tempfile::tempdir().unwrap();
    let as_root = |args: &[&str]| {
        let out = Command::new(&user.bin)
            .arg("--root")
            .arg(root_store.path())
            .args(args)
            .env("SOURCE_DATE_EPOCH", "1000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "root: strata {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    as_root(&["import", tar.to_str().unwrap(), "busybox:latest"]);
    as_root(&["build", "-q", "-t", "same:root", ctx_s]);
    as_root(&[
        "build",
        "-q",
        "--target",
        "build",
        "-t",
        "same:root-build",
        ctx_s,
    ]);
    let root = layers(&as_root(&[&fmt[..], &["same:root"]].concat()));
    let root_build = layers(&as_root(&[&fmt[..], &["same:root-build"]].concat()));
    assert_eq!(rl.len(), 4, "{rl:?}");
    assert_eq!(rl_build.len(), 3, "{rl_build:?}");
    // Same diffIDs: the same files, owners (the container's ids, never 100999 or 101233),
    // modes, whiteouts and opaque directories.
    assert_eq!(rl_build, root_build, "the build stage differs rootless");
    assert_eq!(rl, root, "the final image differs rootless");

    // The same with fuse-overlayfs (the fallback where the kernel refuses an overlay, forced
    // here): its upperdirs commit as the kernel's.
    let fuse = ["STRATA_OVERLAY=fuse-overlayfs"];
    let out = user.strata_env(
        &fuse,
        &[
            "build",
            "--progress=plain",
            "--no-cache",
            "-t",
            "same:fuse",
            ctx_s,
        ],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let fused = layers(&user.ok(&[&fmt[..], &["same:fuse"]].concat()));
    assert_eq!(fused, root, "the final image differs with fuse-overlayfs");

    // The rootless store is the user's, under $XDG_DATA_HOME/strata, closed to others.
    let store = user.dir.join("data/strata");
    let md = std::fs::metadata(&store).unwrap();
    assert_eq!(
        md.uid(),
        user.uid(),
        "{} belongs to the user",
        store.display()
    );
    assert_eq!(
        md.mode() & 0o077,
        0,
        "{} is closed to others",
        store.display()
    );
}

#[test]
fn rootless_run_exec_and_limits() {
    strata_tests::require!(Root, PeersData, RootlessUsers);
    let _e2e = crate::common::share();
    let user = User::new("strata-ci");
    user.ok(&["import", busybox_tar().to_str().unwrap(), "busybox:latest"]);

    // Root in the container is the user; the user's 65536 subordinate ids follow.
    let out = user.ok(&[
        "run",
        "--rm",
        "busybox:latest",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<Vec<u64>> = lines
        .map(|l| l.split_whitespace().map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(map[0], vec![0, u64::from(user.uid()), 1], "{out}");
    assert_eq!(map.iter().map(|m| m[2]).sum::<u64>(), 65537, "{out}");

    // A detached container, joined by a later command, stopped and removed.
    let id = user.ok(&[
        "run",
        "-d",
        "--name",
        "rl-w",
        "busybox:latest",
        "sleep",
        "60",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    let ps = user.ok(&["exec", "rl-w", "ps"]);
    assert!(ps.contains("sleep 60"), "{ps}");
    assert!(user.ok(&["ps"]).contains("rl-w"));
    user.ok(&["stop", "-t", "1", "rl-w"]);
    user.ok(&["rm", "rl-w"]);

    // The host's network: /sys is the host's, bound read-only (no sysfs of our own there).
    let sys = user.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox:latest",
        "sh",
        "-c",
        "ls /sys/class >/dev/null && touch /sys/x 2>&1; echo done",
    ]);
    assert!(sys.contains("Read-only file system"), "{sys}");

    // Limits: a delegated cgroup v2 subtree applies them; without one (cgroup v1 or hybrid
    // here), they are discarded with a warning and the container runs.
    let out = user.strata(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "busybox:latest",
        "echo",
        "ran",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ran");
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert!(
            stderr.contains("WARNING: rootless: cgroup v1")
                && stderr.contains("Resource limits (memory, cpus, pids) discarded"),
            "{stderr}"
        );
    }
}

#[test]
fn without_subordinate_ids_one_id_and_a_warning() {
    strata_tests::require!(Root, PeersData, RootlessUsers);
    let _e2e = crate::common::share();
    let user = User::new("strata-ci1");
    user.ok(&["import", busybox_tar().to_str().unwrap(), "busybox:latest"]);
    let ctx = user.context("one", "FROM busybox:latest\nRUN echo ok > /f && id -u\n");
    let out = user.strata(&[
        "build",
        "--progress=plain",
        "-t",
        "one:a",
        ctx.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: rootless with a single id: no subordinate ids for strata-ci1")
            && stderr.contains("`COPY --chown`")
            && stderr.contains("usermod --add-subuids"),
        "{stderr}"
    );
    // A step that chowns to another user is one of those named: it fails, and says why.
    let ctx = user.context(
        "two",
        "FROM busybox:latest\nRUN touch /f && chown 1000 /f\n",
    );
    let out = user.strata(&[
        "build",
        "--progress=plain",
        "-t",
        "one:b",
        ctx.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "these steps need other users' ids and will fail:\n  \
             Dockerfile:2: RUN touch /f && chown 1000 /f"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Invalid argument"), "{stderr}");
    assert!(!user.ok(&["images", "-q", "one:b"]).contains("sha256"));
}

/// BuildKit's cases (as `buildkit_cases`), built by the unprivileged user.
#[test]
fn buildkit_cases_pass_rootless() {
    strata_tests::require!(Root, PeersData, Python3, RootlessUsers);
    let _e2e = crate::common::share();
    let user = User::new("strata-ci");
    // A copy the user can read (the checkout may be private to root).
    let cases = user.dir.join("buildkit-cases");
    let src = strata_tests::repo_root().join("conformance/buildkit-cases");
    let (src, cases_s) = (src.to_str().unwrap(), cases.to_str().unwrap());
    crate::common::tool("cp", &["-a", src, cases_s]);
    crate::common::tool("chmod", &["-R", "a+rX", cases_s]);
    let out = user
        .command(&user.dir)
        .arg(format!("STRATA_BIN={}", user.bin.display()))
        .arg(format!(
            "PEERS_DATA={}",
            strata_tests::peers_data().display()
        ))
        .arg("bash")
        .arg(cases.join("run.sh"))
        .output()
        .unwrap();
    crate::buildkit_cases::check_run(&out);
}
