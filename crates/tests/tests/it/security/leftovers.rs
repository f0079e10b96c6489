//! Issue 10, item 9: temporaries of killed commands. A build, load, pull or save killed
//! mid-way leaves its temporaries (named after its pid and start time); the next command
//! that takes the store lock removes them, `save` removes its own dead siblings, `prune`
//! counts what it freed, and a refused unpack leaves nothing under tmp/.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::guard::{after, Canary};
use crate::common::{busybox_tar, free_port, tool, Env};

/// Bytes under `p` (file lengths).
fn size_of(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

fn tmp_entries(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(env.root().join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Wait until `cond` holds (the command is mid-way), failing if `child` ends first.
fn wait_for(child: &mut Child, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the command ended ({st}) before {what}:\n{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// xorshift bytes: incompressible, so transfers and compression take a measurable while.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// An image `big:1` in `env`'s store: busybox plus `mb` MB of noise in one layer.
fn big_image(env: &Env, mb: usize) {
    let rootfs = env.path("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    tool(
        "tar",
        &[
            "-xf",
            bb(env).to_str().unwrap(),
            "-C",
            rootfs.to_str().unwrap(),
        ],
    );
    std::fs::write(rootfs.join("noise"), noise(mb << 20, 7)).unwrap();
    let tar = env.path("big.tar");
    tool(
        "tar",
        &[
            "-C",
            rootfs.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    std::fs::remove_dir_all(&rootfs).unwrap();
    env.ok(&["import", tar.to_str().unwrap(), "big:1"]);
    std::fs::remove_file(&tar).unwrap();
}

fn bb(env: &Env) -> PathBuf {
    let p = env.path("busybox.tar");
    if !p.exists() {
        busybox_tar(&p);
    }
    p
}

/// After a kill: the temporaries are there (the kill did leave some), the next command that
/// takes the lock (`images`) removes them all, and the store is consistent.
fn next_command_sweeps(env: &Env) {
    assert!(
        !tmp_entries(env).is_empty(),
        "the killed command left nothing: the test did not kill it mid-way"
    );
    env.ok(&["images"]);
    assert_eq!(
        tmp_entries(env),
        Vec::<String>::new(),
        "tmp/ after `images`"
    );
    env.fsck_clean();
}

/// A build killed mid-RUN (its upperdir holds 50 MB): `prune`, the next command, counts
/// those 50 MB among what it freed, and tmp/ is empty.
#[test]
fn killed_build_is_swept_and_prune_counts_it() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    env.ok(&["import", bb(&env).to_str().unwrap(), "bb:1"]);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:1\nRUN busybox dd if=/dev/zero of=/big bs=1M count=50 2>/dev/null && sleep 1000\n",
    )
    .unwrap();
    let mut child = env
        .cmd()
        .args(["build", "-t", "killed:1", ctx.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = env.root().join("tmp");
    wait_for(&mut child, "the RUN wrote 50 MB", || {
        size_of(&tmp) >= 50 << 20
    });
    kill9(&mut child);
    let left = tmp_entries(&env);
    assert!(!left.is_empty());

    let out = env.ok(&["prune"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("deleted temporaries of gone commands: "))
        .unwrap_or_else(|| panic!("prune does not report temporaries:\n{out}"));
    // Every entry the build left (its RUN dir, and the CLI's own dir) is counted.
    assert_eq!(
        line,
        format!(
            "deleted temporaries of gone commands: {} ({})",
            left.len(),
            line.rsplit_once('(').unwrap().1.trim_end_matches(')')
        )
    );
    let mb = |s: &str| -> f64 {
        let s = s.trim();
        let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap());
        let n: f64 = num.parse().unwrap();
        n * match unit {
            "kB" => 1e-3,
            "MB" => 1.0,
            "GB" => 1e3,
            u => panic!("unit {u} in {s}"),
        }
    };
    let freed = mb(line.rsplit_once('(').unwrap().1.trim_end_matches(')'));
    assert!(freed >= 52.4, "{line}"); // 50 MiB = 52.4 MB
    let total = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(mb(total) >= freed, "{out}");
    assert_eq!(tmp_entries(&env), Vec::<String>::new());
    env.fsck_clean();
    // Nothing left to free the second time.
    let out = env.ok(&["prune"]);
    assert!(!out.contains("temporaries"), "{out}");
    after(&canary, &env);
}

/// A load killed while it spools a 48 MB archive from a pipe that has stopped.
#[test]
fn killed_load_is_swept_by_the_next_command() {
    strata_tests::require!(Root, Busybox);
    let src = Env::new();
    big_image(&src, 48);
    let archive = src.path("big-archive.tar");
    src.ok(&["save", "-o", archive.to_str().unwrap(), "big:1"]);
    let bytes = std::fs::read(&archive).unwrap();

    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let mut child = env
        .cmd()
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Half the archive, then the pipe stays open and silent: the load waits mid-way.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    let tmp = env.root().join("tmp");
    wait_for(&mut child, "the load spooled 20 MB", || {
        size_of(&tmp) >= 20 << 20
    });
    kill9(&mut child);
    drop(stdin);
    next_command_sweeps(&env);
    after(&canary, &env);
}

/// A TCP proxy to `upstream` that forwards at most `limit` bytes of responses in all, then
/// holds every connection silent (until dropped): a transfer through it stops mid-way.
struct StallingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl StallingProxy {
    fn start(upstream: u16, limit: u64) -> StallingProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let st = stop.clone();
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok((client, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let (c2, u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || pipe(c2, u2, None));
                let (sent, st) = (sent.clone(), st.clone());
                std::thread::spawn(move || pipe(up, client, Some((sent, limit, st))));
            }
        });
        StallingProxy { port, stop }
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

type Budget = (Arc<AtomicU64>, u64, Arc<AtomicBool>);

fn pipe(mut from: TcpStream, mut to: TcpStream, budget: Option<Budget>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((sent, limit, stop)) = &budget {
            if sent.fetch_add(n as u64, Ordering::Relaxed) >= *limit {
                // Hold the connection open and silent.
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// A `docker-registry` on the loopback with its own storage, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/docker-registry (Debian package docker-registry)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "docker-registry exited"
            );
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "docker-registry did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pull killed while its 48 MB layer is half-way through (the registry's answers stall
/// behind a proxy after 16 MB).
#[test]
fn killed_pull_is_swept_by_the_next_command() {
    strata_tests::require!(Root, Busybox, Registry);
    let reg = Registry::start();
    let src = Env::new();
    big_image(&src, 48);
    let name = format!("127.0.0.1:{}/big:1", reg.port);
    src.ok(&["tag", "big:1", &name]);
    src.ok(&["push", &name]);

    let proxy = StallingProxy::start(reg.port, 16 << 20);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let mut child = env
        .cmd()
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .args(["pull", &format!("127.0.0.1:{}/big:1", proxy.port)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = env.root().join("tmp");
    wait_for(&mut child, "the pull received 8 MB", || {
        size_of(&tmp) >= 8 << 20
    });
    kill9(&mut child);
    drop(proxy);
    next_command_sweeps(&env);
    after(&canary, &env);
}

/// `save -o X` killed while it writes: its `.X.strata-tmp.*` sibling stays until the next
/// `save -o X`, which removes it (and leaves a live save's sibling and other files alone).
#[test]
fn killed_save_leaves_a_sibling_the_next_save_removes() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    big_image(&env, 48);
    let out_dir = env.path("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let x = out_dir.join("x.tar");
    let siblings = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&out_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".x.tar.strata-tmp."))
            .collect();
        v.sort();
        v
    };
    // OCI with gzip: compressing 48 MB of noise keeps the save busy for a while.
    let mut child = env
        .cmd()
        .args([
            "save",
            "--format",
            "oci",
            "-o",
            x.to_str().unwrap(),
            "big:1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "the save created its temp file", || {
        !siblings().is_empty()
    });
    kill9(&mut child);
    let dead = siblings();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(!x.exists());
    // A file that only looks similar, and a sibling of a live process (this test): kept.
    let other = out_dir.join(".y.tar.strata-tmp.1.2.3");
    std::fs::write(&other, b"not ours").unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(19)
        .unwrap()
        .to_string();
    let live = out_dir.join(format!(
        ".x.tar.strata-tmp.{}.{start}.0",
        std::process::id()
    ));
    std::fs::write(&live, b"in progress").unwrap();

    env.ok(&["save", "-o", x.to_str().unwrap(), "big:1"]);
    assert!(x.is_file());
    let left = siblings();
    assert!(
        !left.contains(&dead[0]),
        "the dead sibling stayed: {left:?}"
    );
    assert_eq!(left, vec![live.file_name().unwrap().to_string_lossy()]);
    assert!(other.exists());
    // The killed save's compressed-layer ingest was under tmp/: swept by the save's lock.
    assert_eq!(tmp_entries(&env), Vec::<String>::new());
    env.fsck_clean();
    after(&canary, &env);
}

/// A layer with a `../` entry is refused when unpacked (`run`, and a build's FROM); the
/// refused unpack leaves no `tmp/snap-*` behind.
#[test]
fn refused_unpack_leaves_no_snapshot_temporary() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    // A docker-archive whose only layer holds `../escaped`.
    let work = env.path("hostile");
    std::fs::create_dir_all(work.join("in/sub")).unwrap();
    std::fs::write(work.join("in/escaped"), b"out of the layer\n").unwrap();
    tool(
        "tar",
        &[
            "-P",
            "-C",
            work.join("in/sub").to_str().unwrap(),
            "-cf",
            work.join("layer.tar").to_str().unwrap(),
            "../escaped",
        ],
    );
    let listing = tool("tar", &["-tf", work.join("layer.tar").to_str().unwrap()]);
    assert_eq!(listing.trim(), "../escaped");
    let diff = tool("sha256sum", &[work.join("layer.tar").to_str().unwrap()]);
    let diff = diff.split(' ').next().unwrap();
    std::fs::write(
        work.join("config.json"),
        format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/escaped"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["hostile:1"],"Layers":["layer.tar"]}]"#,
    )
    .unwrap();
    let archive = env.path("hostile.tar");
    tool(
        "tar",
        &[
            "-C",
            work.to_str().unwrap(),
            "-cf",
            archive.to_str().unwrap(),
            "manifest.json",
            "config.json",
            "layer.tar",
        ],
    );
    let loaded = env.run(&["load", "-i", archive.to_str().unwrap()]);
    if loaded.status.success() {
        // Loaded: the refusal comes at unpack, from `run` and from a build's FROM.
        let o = env.run(&["run", "--rm", "hostile:1"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{err}"); // docker's "the daemon failed"
        assert_eq!(
            err.trim_end(),
            "error: prepare the layers of hostile:1: refusing layer entry \"../escaped\": '..' component"
        );
        assert_eq!(tmp_entries(&env), Vec::<String>::new(), "after run: {err}");
        let ctx = env.path("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM hostile:1\nRUN true\n").unwrap();
        let err = env.fails(&["build", "-q", ctx.to_str().unwrap()]);
        assert!(err.contains("../escaped"), "{err}");
        assert_eq!(
            tmp_entries(&env),
            Vec::<String>::new(),
            "after build: {err}"
        );
    } else {
        // Refused at load already: nothing may stay either.
        let err = String::from_utf8_lossy(&loaded.stderr);
        assert!(err.contains("../escaped"), "{err}");
        assert_eq!(tmp_entries(&env), Vec::<String>::new(), "after load: {err}");
    }
    assert!(!env.root().join("escaped").exists());
    assert!(!env.root().join("tmp/escaped").exists());
    env.fsck_clean();
    after(&canary, &env);
}
