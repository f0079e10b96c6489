//! What the end-to-end tests need, said in one line at their top, and the strata binary they run.
//!
//! A test that needs root, a running dockerd, podman, skopeo, umoci, the registry binary, the
//! peers' base rootfs tarballs or qemu-user-static for arm64 starts with
//!
//! ```ignore
//! strata_tests::require!(Root, Docker);
//! ```
//!
//! When everything is there the test runs. When something is missing:
//! - outside CI the test prints `SKIPPED <test>: needs docker (run scripts/peers.sh)` on
//!   stderr and returns (it shows as passed in the harness's count, hence the loud line);
//! - under CI (`CI` set to anything but empty, `0` or `false`; `.ci/run` exports `CI=true`)
//!   the test fails with the same message: CI never skips.
//!
//! The binary under test is [`strata_bin`]: `$STRATA_BIN` when set (scripts/test.sh builds
//! `cargo build --release --locked -p strata` once and points it there, and the main job runs
//! the same file), else the release binary of this workspace, which must be newer than the
//! sources (a stale one fails the test with the command that rebuilds it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::sync::OnceLock;

/// Something outside the repository that a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Effective uid 0: namespaces, mounts, chown in the store.
    Root,
    /// `/bin/busybox` (Debian's busybox-static): the tests' base images are made from it.
    Busybox,
    /// A running dockerd answering `/usr/bin/docker info` (Docker 20.10 with BuildKit).
    Docker,
    /// `podman` on PATH.
    Podman,
    /// `skopeo` on PATH.
    Skopeo,
    /// `umoci` on PATH.
    Umoci,
    /// `/usr/bin/docker-registry` (the tests start their own registries with it).
    Registry,
    /// The peers' rootfs tarballs in `$PEERS_DATA` (default /var/tmp/strata-peers):
    /// busybox-rootfs.tar and debian-build-rootfs.tar.
    PeersData,
    /// `python3` on PATH (the conformance normaliser imgtree.py and small helpers).
    Python3,
    /// `node` on PATH (copied with its libraries into a test image for the compose
    /// tutorial's Node service; Debian package nodejs).
    Node,
    /// `docker-compose` on PATH (Debian's docker-compose 1.29, the v1 Python tool; its
    /// `config` needs no daemon).
    DockerComposeV1,
    /// The unprivileged users `.ci/run` makes for the rootless tests: `strata-ci` with
    /// subordinate ids in /etc/subuid and /etc/subgid, `strata-ci1` with none; `newuidmap`,
    /// `runuser`, and `/dev/net/tun` open to users (0666).
    RootlessUsers,
    /// binfmt_misc runs linux/arm64 binaries through qemu-user-static: qemu-aarch64 is
    /// registered, `enabled`, with the F (fix-binary) flag, so the interpreter is found inside
    /// a build's root (the multi-platform tests, issue 18; `.ci/run` registers it).
    Qemu,
    /// `$PEERS_DATA/busybox-arm64-rootfs.tar`: Debian's busybox-static:arm64 laid out as
    /// busybox-rootfs.tar (scripts/peers.sh makes it with scripts/busybox-arm64.sh).
    Arm64Busybox,
}

impl Need {
    /// How a missing need is named in the SKIPPED / failure line.
    pub fn name(self) -> &'static str {
        match self {
            Need::Root => "root",
            Need::Busybox => "/bin/busybox",
            Need::Docker => "docker",
            Need::Podman => "podman",
            Need::Skopeo => "skopeo",
            Need::Umoci => "umoci",
            Need::Registry => "docker-registry",
            Need::PeersData => "the peers' rootfs tarballs",
            Need::Python3 => "python3",
            Need::Node => "node (Debian package nodejs)",
            Need::DockerComposeV1 => "docker-compose (apt-get install docker-compose)",
            Need::RootlessUsers => {
                "the users strata-ci (with subordinate ids) and strata-ci1 (without), uidmap, \
                 fuse-overlayfs, /dev/net/tun and /dev/fuse mode 0666 (.ci/run makes them)"
            }
            Need::Qemu => {
                "qemu-aarch64 enabled in binfmt_misc with the F flag \
                 (qemu-user-static; .ci/run registers it)"
            }
            Need::Arm64Busybox => {
                "the arm64 busybox rootfs tarball busybox-arm64-rootfs.tar \
                 (scripts/peers.sh makes it)"
            }
        }
    }

    /// Whether this machine has it (probes are cached for the process).
    pub fn met(self) -> bool {
        match self {
            // SAFETY: geteuid has no preconditions and cannot fail.
            Need::Root => (unsafe { libc::geteuid() }) == 0,
            Need::Busybox => Path::new("/bin/busybox").is_file(),
            Need::Docker => {
                static UP: OnceLock<bool> = OnceLock::new();
                *UP.get_or_init(|| {
                    Command::new("/usr/bin/docker")
                        .arg("info")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
            }
            Need::Podman => on_path("podman"),
            Need::Skopeo => on_path("skopeo"),
            Need::Umoci => on_path("umoci"),
            Need::Registry => Path::new("/usr/bin/docker-registry").is_file(),
            Need::PeersData => {
                let d = peers_data();
                d.join("busybox-rootfs.tar").is_file()
                    && d.join("debian-build-rootfs.tar").is_file()
            }
            Need::Python3 => on_path("python3"),
            Need::Node => on_path("node"),
            Need::DockerComposeV1 => on_path("docker-compose"),
            Need::RootlessUsers => {
                let has = |file: &str, user: &str| {
                    std::fs::read_to_string(file)
                        .is_ok_and(|t| t.lines().any(|l| l.starts_with(&format!("{user}:"))))
                };
                let tun = std::fs::metadata("/dev/net/tun").is_ok_and(|m| {
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o666 == 0o666
                });
                has("/etc/passwd", "strata-ci")
                    && has("/etc/passwd", "strata-ci1")
                    && has("/etc/subuid", "strata-ci")
                    && has("/etc/subgid", "strata-ci")
                    && !has("/etc/subuid", "strata-ci1")
                    && on_path("newuidmap")
                    && on_path("runuser")
                    && on_path("fuse-overlayfs")
                    && tun
                    && std::fs::metadata("/dev/fuse").is_ok_and(|m| {
                        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o666 == 0o666
                    })
            }
            Need::Qemu => std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
                .is_ok_and(|t| qemu_f_enabled(&t)),
            Need::Arm64Busybox => peers_data().join("busybox-arm64-rootfs.tar").is_file(),
        }
    }
}

/// Whether a binfmt_misc entry's text says `enabled` and has the F flag (`flags: PF`,
/// `flags: POF`).
fn qemu_f_enabled(entry: &str) -> bool {
    entry.lines().any(|l| l.trim() == "enabled")
        && entry
            .lines()
            .any(|l| l.strip_prefix("flags:").is_some_and(|f| f.contains('F')))
}

/// `$PEERS_DATA`, default /var/tmp/strata-peers (as scripts/peers.sh).
pub fn peers_data() -> PathBuf {
    std::env::var_os("PEERS_DATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/strata-peers"))
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Whether the tests run under CI, where no test may skip: `CI` is set to anything but empty,
/// `0` or `false` (any case).
pub fn in_ci() -> bool {
    ci_value(std::env::var("CI").ok().as_deref())
}

fn ci_value(v: Option<&str>) -> bool {
    match v.map(str::trim) {
        None | Some("") | Some("0") => false,
        Some(v) => !v.eq_ignore_ascii_case("false"),
    }
}

/// What a test does about its needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything is there: run.
    Run,
    /// Outside CI, something missing: print this line and return.
    Skip(String),
    /// Under CI, something missing: fail with this message.
    Fail(String),
}

/// The verdict for `test` given what is `missing`, in or out of CI.
pub fn verdict(test: &str, missing: &[Need], ci: bool) -> Verdict {
    if missing.is_empty() {
        return Verdict::Run;
    }
    let names: Vec<&str> = missing.iter().map(|n| n.name()).collect();
    let what = format!("{test}: needs {} (run scripts/peers.sh)", names.join(", "));
    if ci {
        Verdict::Fail(format!("{what}; CI=true, so a missing need fails the test"))
    } else {
        Verdict::Skip(format!("SKIPPED {what}"))
    }
}

/// The check behind [`require!`]: true when the test may run. Prints the SKIPPED line and
/// returns false outside CI; panics under CI.
pub fn check(module: &str, needs: &[Need]) -> bool {
    let missing: Vec<Need> = needs.iter().copied().filter(|n| !n.met()).collect();
    // libtest names each test's thread after the test; with one test thread it may be "main".
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(n) if n != "main" => n.to_string(),
        _ => module.to_string(),
    };
    match verdict(&test, &missing, in_ci()) {
        Verdict::Run => true,
        Verdict::Skip(line) => {
            eprintln!("{line}");
            false
        }
        Verdict::Fail(msg) => panic!("{msg}"),
    }
}

/// `require!(Root, Docker)`: the first line of a test that needs those; see the crate docs.
#[macro_export]
macro_rules! require {
    ($($need:ident),+ $(,)?) => {
        if !$crate::check(module_path!(), &[$($crate::Need::$need),+]) {
            return;
        }
    };
}

/// The repository's root (the workspace).
pub fn repo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("the workspace root")
    })
}

/// The strata binary under test: `$STRATA_BIN` when set (scripts/test.sh sets it), else this
/// workspace's release binary, `target/release/strata` (or under `$CARGO_TARGET_DIR`). That
/// one must exist and be newer than every source of the product (`crates/*/src`, the
/// manifests, Cargo.lock): a stale binary fails the test with the command that rebuilds it,
/// so a bare `cargo test` never tests old code.
pub fn strata_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("STRATA_BIN").filter(|v| !v.is_empty()) {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "STRATA_BIN={} is not a file: build it with `cargo build --release --locked -p strata`",
                p.display()
            );
            return p.to_str().expect("STRATA_BIN is UTF-8").to_string();
        }
        let root = repo_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|t| root.join(t))
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("release/strata");
        let built = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}: run `cargo build --release --locked -p strata` (scripts/test.sh \
                     does) or set STRATA_BIN",
                    bin.display()
                )
            });
        if let Some(newer) = newer_source(root, built) {
            panic!(
                "{} is older than {}: run `cargo build --release --locked -p strata` \
                 (scripts/test.sh does) or set STRATA_BIN",
                bin.display(),
                newer.display()
            );
        }
        bin.to_str().expect("a UTF-8 target path").to_string()
    })
}

/// A source of the product modified after `built`, if any: files under `crates/*/src`, the
/// crates' Cargo.toml, and the workspace's Cargo.toml and Cargo.lock (not the tests crate).
fn newer_source(root: &Path, built: std::time::SystemTime) -> Option<PathBuf> {
    let newer = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > built)
    };
    let mut stack = Vec::new();
    for f in ["Cargo.toml", "Cargo.lock"] {
        if newer(&root.join(f)) {
            return Some(root.join(f));
        }
    }
    for e in std::fs::read_dir(root.join("crates")).ok()?.flatten() {
        let dir = e.path();
        if dir.file_name().is_some_and(|n| n == "tests") {
            continue;
        }
        if newer(&dir.join("Cargo.toml")) {
            return Some(dir.join("Cargo.toml"));
        }
        stack.push(dir.join("src"));
    }
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if newer(&p) {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_met_runs_in_and_out_of_ci() {
        assert_eq!(verdict("m::t", &[], false), Verdict::Run);
        assert_eq!(verdict("m::t", &[], true), Verdict::Run);
    }

    #[test]
    fn a_missing_need_skips_loudly_outside_ci() {
        assert_eq!(
            verdict(
                "it::interop::podman_loads",
                &[Need::Docker, Need::Podman],
                false
            ),
            Verdict::Skip(
                "SKIPPED it::interop::podman_loads: needs docker, podman (run scripts/peers.sh)"
                    .into()
            )
        );
    }

    #[test]
    fn a_missing_need_fails_under_ci() {
        let Verdict::Fail(msg) = verdict("m::t", &[Need::Root], true) else {
            panic!("under CI a missing need must fail");
        };
        assert!(
            msg.starts_with("m::t: needs root (run scripts/peers.sh)"),
            "{msg}"
        );
    }

    #[test]
    fn qemu_needs_enabled_and_the_f_flag() {
        let entry = |state: &str, flags: &str| {
            format!("{state}\ninterpreter /usr/bin/qemu-aarch64-static\nflags: {flags}\noffset 0\n")
        };
        assert!(qemu_f_enabled(&entry("enabled", "PF")));
        assert!(qemu_f_enabled(&entry("enabled", "POF")));
        assert!(!qemu_f_enabled(&entry("enabled", "P")));
        assert!(!qemu_f_enabled(&entry("disabled", "PF")));
        assert!(!qemu_f_enabled(""));
    }

    #[test]
    fn ci_values() {
        for v in [
            None,
            Some(""),
            Some("0"),
            Some("false"),
            Some("FALSE"),
            Some(" false "),
        ] {
            assert!(!ci_value(v), "{v:?}");
        }
        for v in [Some("true"), Some("1"), Some("yes"), Some("TRUE")] {
            assert!(ci_value(v), "{v:?}");
        }
    }

    #[test]
    fn no_needs_run() {
        assert!(check("m", &[]));
    }

    #[test]
    fn the_macro_returns_early_exactly_when_a_need_is_missing() {
        fn body(reached: &mut bool) {
            crate::require!(Busybox);
            *reached = true;
        }
        let mut reached = false;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut reached)));
        match r {
            Ok(()) => assert_eq!(reached, Need::Busybox.met()),
            Err(_) => assert!(in_ci() && !Need::Busybox.met()),
        }
    }

    #[test]
    fn a_source_newer_than_the_binary_is_found() {
        let d = std::env::temp_dir().join(format!("strata-tests-newer-{}", std::process::id()));
        let src = d.join("crates/x/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(d.join("Cargo.toml"), "").unwrap();
        std::fs::write(src.join("lib.rs"), "").unwrap();
        let before = std::time::SystemTime::UNIX_EPOCH;
        let after = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        assert_eq!(newer_source(&d, before), Some(d.join("Cargo.toml")));
        assert_eq!(newer_source(&d, after), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
