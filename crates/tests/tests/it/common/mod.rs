//! Helpers for the CLI's end-to-end tests: a throw-away store and a busybox rootfs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Env {
    pub dir: tempfile::TempDir,
    /// A share of [`E2E`] (see [`exclusive`]); dropped after `dir`.
    _shared: Option<std::sync::RwLockReadGuard<'static, ()>>,
}

impl Env {
    pub fn new() -> Env {
        // The first Env of a test thread takes a share of E2E (a second one on the same thread
        // must not: a waiting writer would deadlock it), none under `exclusive()`.
        let shared = share();
        ENVS.set(ENVS.get() + 1);
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            _shared: shared,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `strata --root <store> args...`
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(strata_tests::strata_bin());
        c.arg("--root").arg(self.root());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run strata")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} failed ({}):\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf-8 output")
    }

    /// Run and require failure with exit code 1; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "strata {args:?} should fail with 1:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stderr).expect("utf-8 output")
    }

    pub fn fsck_clean(&self) {
        let out = self.ok(&["fsck"]);
        assert!(out.contains("is consistent"), "{out}");
    }
}

/// A temporary directory on tmpfs (`/dev/shm`) when there is one, else under the system's
/// temp dir: for many-file build contexts and exports, whose tens of thousands of file
/// creations on a busy disk cost more than the build under test (50,000 small files: 32 s
/// on a busy virtual disk's ext4, 1.7 s on tmpfs). The store stays on disk ([`Env`]).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

/// Run an external tool; panics with its output when it fails.
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e} (run scripts/peers.sh to install it)"));
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A busybox rootfs tarball made from Debian's busybox-static (`/bin/busybox` with a few
/// applet links), written to `dest`.
pub fn busybox_tar(dest: &Path) {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox is missing: install busybox-static (.ci/run does)"
    );
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(bb, bin.join("busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "ls", "id", "true", "false", "sleep", "env",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    std::fs::create_dir_all(d.path().join("etc")).unwrap();
    std::fs::write(
        d.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(d.path().join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    tool(
        "tar",
        &[
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            d.path().to_str().unwrap(),
            "-cf",
            dest.to_str().unwrap(),
            ".",
        ],
    );
}

/// Run strata in `dir` with a store of its own under it (`dir/store`): its exit code, stdout
/// and stderr. For tests that need no [`Env`] (no base image); holds a share of the
/// end-to-end lock meanwhile.
pub fn strata_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let _share = share();
    let out = Command::new(strata_tests::strata_bin())
        .args(args)
        .current_dir(dir)
        .env("STRATA_ROOT", dir.join("store"))
        .output()
        .expect("run strata");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A unique name for images in shared peer stores (docker, podman), so tests never touch
/// the peers' own images.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "strata-test/{prefix}:{}-{}",
        std::process::id(),
        n % 1_000_000_000
    )
}

/// A tiny HTTP server on 127.0.0.1 that counts requests per path: RUN steps hit it with
/// `wget -q -O- http://127.0.0.1:PORT/NAME`, so tests count real executions. RUN reaches
/// the host's loopback only on the host's network: builds that count pass
/// `--network host` (the default private network cannot reach 127.0.0.1 by design).
pub struct Counter {
    pub port: u16,
    hits: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
}

impl Counter {
    pub fn start() -> Counter {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut line = String::new();
                let _ = std::io::BufReader::new(&s).read_line(&mut line);
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                *h.lock().unwrap().entry(path).or_insert(0) += 1;
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        Counter { port, hits }
    }

    /// `RUN` text that records one execution under `name`.
    pub fn hit(&self, name: &str) -> String {
        format!("wget -q -O /dev/null http://127.0.0.1:{}/{name}", self.port)
    }

    /// Hits so far, then reset.
    pub fn take(&self) -> std::collections::BTreeMap<String, usize> {
        std::mem::take(&mut *self.hits.lock().unwrap())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        ENVS.set(ENVS.get().saturating_sub(1));
    }
}

/// Every end-to-end test holds a share of this lock through its [`Env`]; the comparisons with
/// Docker's BuildKit (compat_buildkit, progress_text) hold it alone through [`exclusive`].
/// As separate binaries they never overlapped with the other tests, and in one binary they
/// failed beside them: `docker save` of bigtree lost files of its overlay mount, and
/// BuildKit left its /etc/hosts and /etc/resolv.conf stubs in runsteps' image, while
/// interop's docker save/load/rmi ran at the same time (each passes alone).
static E2E: std::sync::RwLock<()> = std::sync::RwLock::new(());

thread_local! {
    static EXCLUSIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static ENVS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A share of [`E2E`] for a test that runs strata without an [`Env`] (buildkit_cases' run.sh):
/// none under `exclusive()` or when this thread's Env holds one already.
pub fn share() -> Option<std::sync::RwLockReadGuard<'static, ()>> {
    if EXCLUSIVE.get() || ENVS.get() > 0 {
        None
    } else {
        Some(E2E.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Held by a BuildKit comparison: no other end-to-end test runs meanwhile (Envs made on this
/// thread meanwhile take no share).
pub struct Exclusive(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>);

pub fn exclusive() -> Exclusive {
    let g = E2E.write().unwrap_or_else(|e| e.into_inner());
    EXCLUSIVE.set(true);
    Exclusive(g)
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        EXCLUSIVE.set(false);
    }
}

/// A store with `busybox:local` (the rootfs of [`busybox_tar`]).
pub fn busybox_env() -> Env {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    env
}

/// A port nothing listens on (bound once by the kernel's choice, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `GET /` on 127.0.0.1:port: the whole response, empty when nothing answers.
pub fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
