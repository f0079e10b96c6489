//! Integration tests for the executor (`harness = false`); they need root and busybox, which
//! `main` says in one line through `strata_tests::check`.
//!
//! This binary is its own init helper: `main` calls `exec::maybe_run_init()` first. It also
//! plays a throw-away caller for the SIGKILL test (`__kill-parent`). The tests run one after
//! another in one process, on a busybox rootfs built from Debian's busybox-static
//! (`/bin/busybox`). `cargo test -p exec -- NAME` runs
//! the tests whose name contains NAME.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use exec::{Error, ExecSpec, Mount, Network, Rootfs, Stdio};

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Fx {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    base: PathBuf,
    state: PathBuf,
    n: AtomicU32,
}

struct Layers {
    upper: PathBuf,
    work: PathBuf,
}

/// A busybox rootfs: /bin/busybox and its applet links, /etc/passwd and /etc/group, /tmp.
/// No /proc, /dev, /sys, /etc/hosts or /etc/resolv.conf, so every run has to create (and
/// then remove) mount points.
fn build_rootfs(root: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static (apt-get install -y busybox-static)"
    );
    for d in ["bin", "etc", "tmp", "root", "home/alice"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nbob:x:1001:100::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nwheel:x:10:alice,bob\nstaff:x:50:\nusers:x:100:alice\nalice:x:1000:\n",
    )
    .unwrap();
}

impl Fx {
    fn new() -> Fx {
        let parent = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let tmp = tempfile::Builder::new()
            .prefix("exec-test-")
            .tempdir_in(parent)
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let base = dir.join("base");
        build_rootfs(&base);
        let state = dir.join("state");
        std::fs::create_dir(&state).unwrap();
        Fx {
            _tmp: tmp,
            dir,
            base,
            state,
            n: AtomicU32::new(0),
        }
    }

    fn fresh(&self, what: &str) -> PathBuf {
        let p = self
            .dir
            .join(format!("{what}-{}", self.n.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn layers(&self) -> Layers {
        let d = self.fresh("run");
        let (upper, work) = (d.join("upper"), d.join("work"));
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        Layers { upper, work }
    }

    /// A spec on a fresh overlay over the busybox rootfs, stdout/stderr piped.
    fn spec(&self, args: &[&str]) -> (ExecSpec, Layers) {
        let l = self.layers();
        let mut spec = ExecSpec::new(
            Rootfs::Overlay {
                lower: vec![self.base.clone()],
                upper: l.upper.clone(),
                work: l.work.clone(),
            },
            args.iter().map(|s| s.to_string()).collect(),
        );
        spec.env = vec![PATH.to_string()];
        spec.stdout = Stdio::Pipe;
        spec.stderr = Stdio::Pipe;
        spec.state_dir = Some(self.state.clone());
        (spec, l)
    }

    fn sh(&self, script: &str) -> (ExecSpec, Layers) {
        self.spec(&["/bin/sh", "-c", script])
    }
}

fn out(spec: &ExecSpec) -> (i32, String, String) {
    let o = exec::run(spec).unwrap_or_else(|e| panic!("run failed: {e}"));
    (
        o.status.code,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn stdout_ok(spec: &ExecSpec) -> String {
    let (code, o, e) = out(spec);
    assert_eq!(code, 0, "stdout: {o}\nstderr: {e}");
    o
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The host's mounts at or under `dir` (mountinfo lines, mount point in field 5). Only the
/// test's own directories are looked at: anything else on the machine (another builder, a
/// dockerd) may mount and unmount while the suite runs.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split(' ').nth(4).is_some_and(|mp| {
                mp == dir || mp.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
            })
        })
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------

fn exit_codes(fx: &Fx) {
    assert_eq!(out(&fx.sh("exit 0").0).0, 0);
    let o = exec::run(&fx.sh("exit 3").0).unwrap();
    assert_eq!((o.status.code, o.status.signal), (3, None));
    assert!(!o.status.success());

    // kill() takes down pid 1 with SIGKILL.
    let mut r = exec::spawn(&fx.spec(&["sleep", "1000"]).0).unwrap();
    r.kill().unwrap();
    let st = r.wait().unwrap();
    assert_eq!((st.code, st.signal), (137, Some(9)));

    // A signal pid 1 has a handler for is forwarded.
    let (mut spec, _l) = fx.sh("trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done");
    spec.stderr = Stdio::Null;
    let mut r = exec::spawn(&spec).unwrap();
    let mut line = String::new();
    BufReader::new(r.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    r.signal(libc::SIGTERM).unwrap();
    assert_eq!(r.wait().unwrap().code, 7);

    // A child killed by a signal inside: the shell reports 128+9.
    assert_eq!(out(&fx.sh("sh -c 'kill -9 $$'; exit $?").0).0, 137);
}

fn stdio(fx: &Fx) {
    let (code, o, e) = out(&fx.sh("echo out; echo err >&2; echo more").0);
    assert_eq!((code, o.as_str(), e.as_str()), (0, "out\nmore\n", "err\n"));

    let (mut spec, _l) = fx.spec(&["cat"]);
    spec.stdin = Stdio::Pipe;
    let mut r = exec::spawn(&spec).unwrap();
    let mut stdin = r.stdin.take().unwrap();
    stdin.write_all(b"hello through stdin\n").unwrap();
    drop(stdin);
    let mut s = String::new();
    r.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello through stdin\n");
    assert!(r.wait().unwrap().success());

    // stdout to a file
    let path = fx.fresh("log").join("out.log");
    let f = std::fs::File::create(&path).unwrap();
    let (mut spec, _l) = fx.sh("echo to-file");
    spec.stdout = Stdio::File(std::sync::Arc::new(f));
    exec::run(&spec).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "to-file\n");
}

fn env_exact(fx: &Fx) {
    let (mut spec, _l) = fx.spec(&["env"]);
    spec.env = vec![
        "PATH=/bin".into(),
        "FOO=bar baz".into(),
        "EMPTY=".into(),
        "HOME=/nowhere".into(),
    ];
    assert_eq!(
        stdout_ok(&spec),
        "PATH=/bin\nFOO=bar baz\nEMPTY=\nHOME=/nowhere\n"
    );

    // PATH lookup uses the spec's PATH, not the host's.
    let (mut spec, _l) = fx.spec(&["true"]);
    spec.env = vec!["PATH=/nonexistent".into()];
    match exec::run(&spec) {
        Err(Error::Exec {
            program,
            message,
            kind,
        }) => {
            assert_eq!(program, "true");
            assert_eq!(message, "executable file not found in $PATH");
            assert_eq!(kind, exec::ExecFailure::NotFound);
        }
        other => panic!("expected an exec error, got {other:?}"),
    }
}

fn cwd_created(fx: &Fx) {
    let (mut spec, l) = fx.spec(&["pwd"]);
    spec.cwd = "/work/dir/sub".into();
    spec.user = Some("alice".into());
    assert_eq!(stdout_ok(&spec), "/work/dir/sub\n");
    let m = std::fs::metadata(l.upper.join("work/dir/sub")).unwrap();
    assert!(m.is_dir());
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    assert_eq!(std::fs::metadata(l.upper.join("work")).unwrap().uid(), 1000);

    // An existing directory is left alone.
    let (mut spec, l) = fx.spec(&["pwd"]);
    spec.cwd = "/tmp".into();
    assert_eq!(stdout_ok(&spec), "/tmp\n");
    assert!(!l.upper.join("tmp").exists());
}

fn users(fx: &Fx) {
    let id = |user: Option<&str>| {
        let (mut spec, _l) = fx.spec(&["id"]);
        spec.user = user.map(str::to_string);
        stdout_ok(&spec).trim_end().to_string()
    };
    assert_eq!(id(None), "uid=0(root) gid=0(root)");
    assert_eq!(
        id(Some("alice")),
        "uid=1000(alice) gid=1000(alice) groups=10(wheel),100(users)"
    );
    assert_eq!(
        id(Some("bob")),
        "uid=1001(bob) gid=100(users) groups=10(wheel)"
    );
    assert_eq!(id(Some("alice:staff")), "uid=1000(alice) gid=50(staff)");
    // A bare uid found in /etc/passwd gets its gid and groups (Docker 20.10's BuildKit).
    assert_eq!(
        id(Some("1000")),
        "uid=1000(alice) gid=1000(alice) groups=10(wheel),100(users)"
    );
    assert_eq!(id(Some("1000:50")), "uid=1000(alice) gid=50(staff)");
    assert_eq!(id(Some("4242")), "uid=4242 gid=0(root)");
    assert_eq!(id(Some("4242:4343")), "uid=4242 gid=4343");
}

fn unknown_user(fx: &Fx) {
    let (mut spec, _l) = fx.spec(&["id"]);
    spec.user = Some("nobody123".into());
    let e = exec::run(&spec).unwrap_err();
    assert!(matches!(e, Error::User(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "unable to find user nobody123: no matching entries in passwd file"
    );
    spec.user = Some("alice:nogroup".into());
    assert_eq!(
        exec::run(&spec).unwrap_err().to_string(),
        "unable to find group nogroup: no matching entries in group file"
    );
}

fn hostname(fx: &Fx) {
    let (mut spec, _l) = fx.sh("hostname; grep localhost /etc/hosts");
    spec.hostname = "buildbox".into();
    spec.extra_hosts = vec![("db.local".into(), "10.1.2.3".parse().unwrap())];
    assert_eq!(
        stdout_ok(&spec),
        "buildbox\n127.0.0.1\tlocalhost buildbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    );
    let (mut spec, _l) = fx.spec(&["cat", "/etc/hosts"]);
    spec.extra_hosts = vec![("db.local".into(), "10.1.2.3".parse().unwrap())];
    assert!(stdout_ok(&spec).ends_with("10.1.2.3\tdb.local\n"));
    // The host's name is untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        "buildbox\n"
    );
}

fn proc_and_pid1(fx: &Fx) {
    let o = stdout_ok(
        &fx.sh("echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'")
            .0,
    );
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "1", "the command is pid 1");
    assert!(lines[1].starts_with("/bin/sh -c echo $$"), "{o}");
    // pid 1 (sh) and the ls + grep it runs: only the container's processes are visible.
    assert!(lines[2].parse::<u32>().unwrap() <= 3, "{o}");
    let mounts = stdout_ok(&fx.spec(&["cat", "/proc/mounts"]).0);
    for want in [
        " / overlay ",
        " /proc proc ",
        " /dev tmpfs ",
        " /dev/pts devpts ",
        " /dev/shm tmpfs ",
        " /dev/mqueue mqueue ",
        " /sys sysfs ro,",
        " /proc/sys proc ro,",
        " /proc/keys ",
        " /etc/hosts ",
        " /etc/resolv.conf ",
    ] {
        assert!(mounts.contains(want), "missing {want:?} in\n{mounts}");
    }
    let o = stdout_ok(&fx.sh("ls -l /dev/null /dev/ptmx; head -c 4 /dev/zero | od -An -tx1; cat /proc/keys | wc -c; echo x > /proc/sys/kernel/hostname && echo writable; true").0);
    assert!(o.contains("/dev/ptmx -> pts/ptmx"), "{o}");
    assert!(o.contains(" 00 00 00 00"), "{o}");
    assert!(o.contains("\n0\n"), "/proc/keys must be masked: {o}");
    assert!(!o.contains("writable"), "/proc/sys must be read-only: {o}");
}

fn etc_files_not_in_upper(fx: &Fx) {
    let (spec, l) = fx.sh("cat /etc/resolv.conf >/dev/null && grep -q localhost /etc/hosts && ls -d /proc/1 /dev/null /sys/kernel");
    let upper_before = std::fs::metadata(&l.upper).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    stdout_ok(&spec);
    // /etc existed (so the overlay copied it up to create the stubs); /proc, /dev and /sys
    // did not: everything was removed again.
    assert_eq!(entries(&l.upper), vec!["etc"]);
    assert_eq!(entries(&l.upper.join("etc")), Vec::<String>::new());
    let (a, b) = (
        std::fs::metadata(fx.base.join("etc")).unwrap(),
        std::fs::metadata(l.upper.join("etc")).unwrap(),
    );
    assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()));
    let (a, b) = (upper_before, std::fs::metadata(&l.upper).unwrap());
    assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()));

    // With a rootfs that has them, nothing at all is written.
    let full = fx.fresh("fullroot");
    for d in ["proc", "dev", "sys", "etc"] {
        std::fs::create_dir(full.join(d)).unwrap();
    }
    std::fs::write(full.join("etc/hosts"), "").unwrap();
    std::fs::write(full.join("etc/resolv.conf"), "").unwrap();
    std::fs::write(full.join("etc/hostname"), "image\n").unwrap();
    let (mut spec, l) = fx.spec(&["cat", "/etc/hostname"]);
    spec.hostname = "fromspec".into();
    if let Rootfs::Overlay { lower, .. } = &mut spec.rootfs {
        lower.insert(0, full.clone());
    }
    assert_eq!(stdout_ok(&spec), "fromspec\n");
    assert_eq!(entries(&l.upper), Vec::<String>::new());
}

/// A mount target that is a dangling symlink (Ubuntu's /etc/resolv.conf) gets its target
/// created inside the rootfs, never on the host, and removed afterwards.
fn dangling_symlink_target(fx: &Fx) {
    let top = fx.fresh("symlinks");
    std::fs::create_dir(top.join("etc")).unwrap();
    std::os::unix::fs::symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        top.join("etc/resolv.conf"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc", top.join("escape")).unwrap();
    let (mut spec, l) =
        fx.sh("grep -c nameserver /etc/resolv.conf >/dev/null; ls /run/systemd/resolve");
    if let Rootfs::Overlay { lower, .. } = &mut spec.rootfs {
        lower.insert(0, top.clone());
    }
    assert_eq!(stdout_ok(&spec), "stub-resolv.conf\n");
    assert_eq!(entries(&l.upper), vec!["etc"]);

    // A bind target through an absolute symlink lands inside the rootfs, not on the host.
    let src = fx.fresh("escsrc");
    std::fs::write(src.join("strata-escape-test"), "inside\n").unwrap();
    let (mut spec, _l) = fx.spec(&["cat", "/etc/strata-escape-test"]);
    if let Rootfs::Overlay { lower, .. } = &mut spec.rootfs {
        lower.insert(0, top.clone());
    }
    spec.mounts = vec![Mount::Bind {
        source: src,
        target: "/escape".into(),
        readonly: true,
    }];
    assert_eq!(stdout_ok(&spec), "inside\n");
    assert!(!Path::new("/etc/strata-escape-test").exists());
}

fn overlay_writes(fx: &Fx) {
    let before = std::fs::read(fx.base.join("etc/passwd")).unwrap();
    let (spec, l) = fx.sh("echo hi > /newfile && echo 'carol:x:1002:1002::/:/bin/sh' >> /etc/passwd && rm /bin/vi && rm -r /home/alice");
    stdout_ok(&spec);
    assert_eq!(
        std::fs::read_to_string(l.upper.join("newfile")).unwrap(),
        "hi\n"
    );
    assert!(std::fs::read_to_string(l.upper.join("etc/passwd"))
        .unwrap()
        .contains("carol"));
    assert_eq!(std::fs::read(fx.base.join("etc/passwd")).unwrap(), before);
    // Deleting lower files leaves whiteouts (char device 0/0) in the upperdir.
    for p in ["bin/vi", "home/alice"] {
        let m = std::fs::symlink_metadata(l.upper.join(p)).unwrap();
        assert!(m.file_type().is_char_device(), "{p} is not a whiteout");
        assert_eq!(m.rdev(), 0);
        assert!(std::fs::symlink_metadata(fx.base.join(p)).is_ok());
    }
}

fn many_layers(fx: &Fx) {
    let layers = fx.fresh("layers");
    let mut lower = Vec::new();
    for i in 0..200 {
        let d = layers.join(format!("layer-with-a-fairly-long-directory-name-{i:03}"));
        std::fs::create_dir_all(d.join("layers")).unwrap();
        std::fs::write(d.join("layers").join(format!("f{i}")), format!("{i}\n")).unwrap();
        std::fs::write(d.join("layers/top"), format!("{i}\n")).unwrap();
        lower.push(d);
    }
    lower.reverse(); // top first
    lower.push(fx.base.clone());
    let (mut spec, _l) = fx.sh("ls /layers | wc -l; cat /layers/top /layers/f0");
    if let Rootfs::Overlay { lower: l, .. } = &mut spec.rootfs {
        *l = lower;
    }
    assert_eq!(stdout_ok(&spec), "201\n199\n0\n");
}

fn network_none(fx: &Fx) {
    {
        let net = Network::None;
        let (mut spec, _l) = fx.sh("ls /sys/class/net; cat /sys/class/net/lo/flags; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping-ok");
        spec.network = net;
        let o = stdout_ok(&spec);
        let lines: Vec<&str> = o.lines().collect();
        assert_eq!(lines[0], "lo", "{o}");
        let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(flags & 1, 1, "lo must be up: {o}");
        assert_eq!(lines[2], "ping-ok");
    }
}

/// `ExecSpec::network_hook` runs with the helper's pid once the namespace exists and before
/// the command: a link it adds there is present when the command starts; its error fails
/// the start with its words.
fn network_hook(fx: &Fx) {
    let (mut spec, _l) = fx.sh("ls /sys/class/net | tr '\\n' ' '");
    spec.network = Network::None;
    spec.network_hook = Some(exec::NetworkHook(std::sync::Arc::new(|pid| {
        let st = Command::new("ip")
            .args([
                "link",
                "add",
                "hk0",
                "netns",
                &pid.to_string(),
                "type",
                "veth",
                "peer",
                "name",
                "hk1",
                "netns",
                &pid.to_string(),
            ])
            .status()
            .map_err(|e| e.to_string())?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("ip: {st}"))
        }
    })));
    assert_eq!(stdout_ok(&spec).trim(), "hk0 hk1 lo");
    let (mut spec, _l) = fx.sh("echo ran");
    spec.network = Network::None;
    spec.network_hook = Some(exec::NetworkHook(std::sync::Arc::new(|_| {
        Err("no such network".to_string())
    })));
    let e = exec::run(&spec).unwrap_err().to_string();
    assert!(e.contains("no such network"), "{e}");
}

/// Live (not zombie) slirp4netns processes whose parent is `ppid`.
fn slirps_of(ppid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if field("Name:").as_deref() == Some("slirp4netns")
            && field("PPid:").as_deref() == Some(&ppid.to_string())
            && !field("State:").unwrap_or_default().starts_with('Z')
        {
            v.push(pid);
        }
    }
    v
}

/// Run `f` on a thread of its own in a fresh network namespace that stands in for the
/// host: `lo` up and a veth pair with the test host address 10.199.0.1/24 on `t0`. The
/// container's slirp4netns starts from that thread, so it connects out from there.
fn in_test_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare(CLONE_NEWNET) on this thread only; it changes no memory.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
            for args in [
                &["link", "set", "lo", "up"][..],
                &["link", "add", "t0", "type", "veth", "peer", "name", "t1"],
                &["addr", "add", "10.199.0.1/24", "dev", "t0"],
                &["link", "set", "t0", "up"],
                &["link", "set", "t1", "up"],
            ] {
                let st = Command::new("ip")
                    .args(args)
                    .status()
                    .expect("run ip (iproute2)");
                assert!(st.success(), "ip {args:?}");
            }
            f()
        })
        .join()
        .unwrap()
    })
}

/// A TCP server answering every connection with `reply`; returns its port.
fn serve(addr: &str, reply: &'static str) -> u16 {
    let l = std::net::TcpListener::bind((addr, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let _ = c.write_all(reply.as_bytes());
        }
    });
    port
}

/// The private network: `lo` and `tap0` (slirp4netns), a server on the (test) host's
/// address reachable, the host's loopback not (directly or through the gateway), and no
/// slirp4netns left after the run.
fn network_private(fx: &Fx) {
    let o = in_test_netns(|| {
        let host_lo = serve("127.0.0.1", "host-loopback\n");
        let test_host = serve("10.199.0.1", "test-host\n");
        let (mut spec, _l) = fx.sh(&format!(
            "ls /sys/class/net | tr '\\n' ' '; echo; \
             nc -w 5 10.199.0.1 {test_host} </dev/null; echo far=$?; \
             nc -w 2 127.0.0.1 {host_lo} </dev/null; echo lo=$?; \
             nc -w 2 10.0.2.2 {host_lo} </dev/null; echo gw=$?; \
             cat /etc/resolv.conf"
        ));
        spec.network = Network::Private;
        stdout_ok(&spec)
    });
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0].trim(), "lo tap0", "{o}");
    assert_eq!(lines[1..3], ["test-host", "far=0"], "{o}");
    assert!(!o.contains("host-loopback"), "{o}");
    assert!(o.contains("lo=1") && o.contains("gw=1"), "{o}");
    assert!(o.contains("nameserver "), "{o}");
    // Killed when the run ends (and reaped in the background: its exit takes a while).
    let t = Instant::now();
    while !slirps_of(std::process::id()).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "slirp4netns left running"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A pool's namespace serves one run after another with one slirp4netns, and nothing of a
/// run (a listening socket) is left for the next; dropping the pool ends its slirp4netns.
fn network_pool(fx: &Fx) {
    in_test_netns(|| {
        let test_host = serve("10.199.0.1", "test-host\n");
        let pool = std::sync::Arc::new(exec::NetworkPool::new());
        let run = |script: &str| {
            let (mut spec, _l) = fx.sh(script);
            spec.network = Network::Private;
            spec.network_pool = Some(pool.clone());
            stdout_ok(&spec)
        };
        // A listener left running in the background when the run ends (port 7777 = 0x1E61).
        let first = run(
            "busybox nc -l -p 7777 -e echo hi & sleep 0.3; cat /proc/net/tcp /proc/net/tcp6 | busybox grep -c ':1E61 '",
        );
        assert_eq!(first, "1\n");
        let slirps = slirps_of(std::process::id());
        assert_eq!(slirps.len(), 1, "{slirps:?}");
        let second = run(&format!(
            "busybox nc -w 2 127.0.0.1 7777 </dev/null; echo old=$?; busybox nc -w 5 10.199.0.1 {test_host} </dev/null"
        ));
        assert_eq!(second, "old=1\ntest-host\n");
        assert_eq!(slirps_of(std::process::id()), slirps, "not reused");
        drop(pool);
        let t = Instant::now();
        while !slirps_of(std::process::id()).is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "slirp4netns left running"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    });
}

fn network_host(fx: &Fx) {
    let mut host = entries(Path::new("/sys/class/net"));
    host.sort();
    let o = stdout_ok(&fx.spec(&["ls", "-1", "/sys/class/net"]).0);
    let inside: Vec<String> = o.lines().map(str::to_string).collect();
    assert_eq!(inside, host);
}

/// The host's root disk as `(major, minor)`: the block device of `/`'s filesystem, else any
/// block device the host has.
fn host_disk() -> (u64, u64) {
    let dev = std::fs::metadata("/").unwrap().dev();
    let (ma, mi) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    if Path::new(&format!("/sys/dev/block/{ma}:{mi}")).exists() {
        return (ma, mi);
    }
    let any = std::fs::read_dir("/sys/dev/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("this host has no block device at all: the raw-disk case cannot be tested");
    let (a, b) = any.split_once(':').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// Only the default device set can be opened: a node made by `mknod` (CAP_MKNOD is in the
/// default set, as in Docker) or shipped in a layer cannot be opened, wherever it lives:
/// the rootfs, /dev, a tmpfs, a bind mount, a lower layer, a plain-directory rootfs.
fn devices(fx: &Fx) {
    let (ma, mi) = host_disk();
    let token = format!("strata-devices-test-{}", std::process::id());
    let layer = fx.fresh("devlayer");
    let node = std::ffi::CString::new(layer.join("lowerkmsg").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mknod has no other memory effects.
    let r = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 11)) };
    assert_eq!(
        r,
        0,
        "mknod on the host: {}",
        std::io::Error::last_os_error()
    );
    let rw = fx.fresh("devbind");
    let script = format!(
        r#"t() {{ if "$@" 2>/dev/null; then echo "OPENED: $*"; else echo denied; fi; }}
mknod /tmp/kmsg c 1 11 && mknod /tmp/mem c 1 1 && mknod /tmp/disk b {ma} {mi} \
  && mknod /dev/kmsg2 c 1 11 && mknod /scratch/kmsg c 1 11 && mknod /mnt/rw/kmsg c 1 11 \
  && echo made
for n in /tmp/kmsg /dev/kmsg2 /scratch/kmsg /mnt/rw/kmsg /lowerkmsg; do t sh -c "echo {token} > $n"; done
t head -c 1 /tmp/mem
t head -c 512 /tmp/disk
echo ok > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c \
  && head -c 4 /dev/random | wc -c && cat /dev/null && echo devices-ok
echo x 2>/dev/null > /dev/full || echo full-refused"#
    );
    let (mut spec, _l) = fx.sh(&script);
    if let Rootfs::Overlay { lower, .. } = &mut spec.rootfs {
        lower.insert(0, layer.clone());
    }
    spec.mounts = vec![
        Mount::Tmpfs {
            target: "/scratch".into(),
            size: None,
            mode: None,
        },
        Mount::Bind {
            source: rw.clone(),
            target: "/mnt/rw".into(),
            readonly: false,
        },
    ];
    let o = stdout_ok(&spec);
    assert_eq!(
        o,
        "made\ndenied\ndenied\ndenied\ndenied\ndenied\ndenied\ndenied\n4\n4\n4\ndevices-ok\nfull-refused\n"
    );
    // The node made on the bind mount is on the host, still unopenable from the container.
    assert!(rw.join("kmsg").exists());

    // A plain-directory rootfs is nodev too.
    let dir = fx.fresh("devdir");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fx.base.display()))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(cp.success());
    let mut spec = ExecSpec::new(
        Rootfs::Dir(dir.clone()),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("mknod /tmp/k c 1 11 && (echo {token} > /tmp/k) 2>&1; echo rc=$?"),
        ],
    );
    spec.env = vec![PATH.to_string()];
    spec.stdout = Stdio::Pipe;
    spec.stderr = Stdio::Pipe;
    spec.state_dir = Some(fx.state.clone());
    let o = stdout_ok(&spec);
    assert!(
        o.contains("Permission denied") && o.ends_with("rc=1\n"),
        "{o}"
    );

    // Nothing reached the host's kernel log.
    let kmsg = Command::new("dmesg").output().unwrap();
    assert!(
        !String::from_utf8_lossy(&kmsg.stdout).contains(&token),
        "a container wrote to the host's kernel log"
    );
}

fn bind_mounts(fx: &Fx) {
    let src = fx.fresh("bindsrc");
    std::fs::write(src.join("f"), "from host\n").unwrap();
    let rw = fx.fresh("bindrw");
    let file = fx.fresh("bindfile").join("single");
    std::fs::write(&file, "single file\n").unwrap();
    let (mut spec, l) = fx.sh(
        "cat /mnt/ro/f; echo x > /mnt/ro/g || echo refused; echo y > /srv/rw/new && echo written; cat /opt/deep/single",
    );
    spec.mounts = vec![
        Mount::Bind {
            source: src.clone(),
            target: "/mnt/ro".into(),
            readonly: true,
        },
        Mount::Bind {
            source: rw.clone(),
            target: "/srv/rw".into(),
            readonly: false,
        },
        Mount::Bind {
            source: file,
            target: "/opt/deep/single".into(),
            readonly: true,
        },
    ];
    let (code, o, e) = out(&spec);
    assert_eq!(code, 0, "{e}");
    assert_eq!(o, "from host\nrefused\nwritten\nsingle file\n");
    assert!(e.contains("Read-only file system"), "{e}");
    assert!(!src.join("g").exists());
    assert_eq!(std::fs::read_to_string(rw.join("new")).unwrap(), "y\n");
    // The mount points (and their parents) were created for the run and removed after it.
    assert_eq!(entries(&l.upper), vec!["etc"]);

    // A missing source is a setup error naming it.
    let (mut spec, _l) = fx.spec(&["true"]);
    spec.mounts = vec![Mount::Bind {
        source: "/nonexistent/source".into(),
        target: "/x".into(),
        readonly: false,
    }];
    let e = exec::run(&spec).unwrap_err();
    assert!(matches!(e, Error::Setup { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "container setup failed: bind /nonexistent/source on /x: no such file or directory"
    );
}

fn tmpfs_mount(fx: &Fx) {
    let (mut spec, l) =
        fx.sh("echo x > /scratch/y && cat /scratch/y && grep ' /scratch ' /proc/mounts");
    spec.mounts = vec![Mount::Tmpfs {
        target: "/scratch".into(),
        size: Some(1 << 20),
        mode: None,
    }];
    let o = stdout_ok(&spec);
    assert!(
        o.starts_with("x\ntmpfs /scratch tmpfs rw,nosuid,nodev"),
        "{o}"
    );
    assert!(o.contains("size=1024k"), "{o}");
    assert!(!l.upper.join("scratch").exists());
}

fn readonly_rootfs(fx: &Fx) {
    let (mut spec, l) = fx.sh("touch /x 2>&1; touch /tmp/y 2>&1; echo done");
    spec.readonly_rootfs = true;
    let o = stdout_ok(&spec);
    assert!(o.matches("Read-only file system").count() == 2, "{o}");
    assert_eq!(entries(&l.upper), vec!["etc"]);
}

fn missing_binary(fx: &Fx) {
    let e = exec::run(&fx.spec(&["/bin/nonexistent", "arg"]).0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "exec: \"/bin/nonexistent\": no such file or directory"
    );
    let e = exec::run(&fx.spec(&["nosuchcmd"]).0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "exec: \"nosuchcmd\": executable file not found in $PATH"
    );

    // RUN on scratch: an empty rootfs has no /bin/sh.
    let empty = fx.fresh("scratch");
    let (mut spec, l) = fx.sh("true");
    spec.rootfs = Rootfs::Overlay {
        lower: vec![empty.clone()],
        upper: l.upper.clone(),
        work: l.work.clone(),
    };
    let e = exec::run(&spec).unwrap_err();
    assert!(matches!(e, Error::Exec { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "exec: \"/bin/sh\": no such file or directory"
    );
    // Not even the mount points stay behind.
    assert_eq!(entries(&l.upper), Vec::<String>::new());
}

fn capabilities(fx: &Fx) {
    let caps = |user: Option<&str>| {
        let (mut spec, _l) = fx.spec(&["grep", "^Cap", "/proc/self/status"]);
        spec.user = user.map(str::to_string);
        stdout_ok(&spec)
    };
    assert_eq!(exec::DEFAULT_CAPABILITIES, 0xa80425fb);
    assert_eq!(
        caps(None),
        "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n"
    );
    assert_eq!(
        caps(Some("alice")),
        "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n"
    );
    let (mut spec, _l) = fx.spec(&["grep", "NoNewPrivs", "/proc/self/status"]);
    assert_eq!(stdout_ok(&spec), "NoNewPrivs:\t0\n");
    spec.no_new_privs = true;
    assert_eq!(stdout_ok(&spec), "NoNewPrivs:\t1\n");
}

/// `exec::join`: a process in a running container's namespaces, confined as its pid 1,
/// dying with it.
fn join_running(fx: &Fx) {
    use std::sync::Arc;
    let (mut spec, _l) = fx.sh("echo hi > /tmp/x; echo ready; while true; do sleep 1; done");
    spec.hostname = "joined".into();
    spec.no_new_privs = true;
    let mut container = exec::spawn(&spec).unwrap();
    let mut ready = String::new();
    BufReader::new(container.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");
    let pid = container.pid();
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::PidfdFlags::empty(),
    )
    .unwrap();
    let pidfd = Arc::new(pidfd);
    let join_spec = |args: &[&str]| {
        let mut j = exec::JoinSpec::new(
            pidfd.clone(),
            pid,
            args.iter().map(|s| s.to_string()).collect(),
        );
        j.env = vec![PATH.to_string()];
        j.no_new_privs = true;
        j.stdout = Stdio::Pipe;
        j.stderr = Stdio::Pipe;
        j
    };
    let run = |j: &exec::JoinSpec| -> Result<(i32, String), Error> {
        let mut r = exec::join(j)?;
        let mut out = String::new();
        r.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        Ok((r.wait()?.code, out))
    };
    let ok = |args: &[&str]| {
        let (code, out) = run(&join_spec(args)).unwrap();
        assert_eq!(code, 0, "{args:?}: {out}");
        out
    };
    // The container's files, pid namespace, hostname.
    assert_eq!(ok(&["cat", "/tmp/x"]), "hi\n");
    let pids = ok(&[
        "sh",
        "-c",
        "echo $$; cat /proc/sys/kernel/hostname; cat /proc/1/cmdline",
    ]);
    let mut lines = pids.lines();
    assert_ne!(lines.next(), Some("1"));
    assert_eq!(lines.next(), Some("joined"));
    assert!(
        lines.next().unwrap().starts_with("/bin/sh\0-c\0echo hi"),
        "{pids}"
    );
    // The confinement of the container's pid 1.
    let show = |p: &str| {
        format!("grep -E '^(Seccomp|NoNewPrivs|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/{p}/status")
    };
    let mine = ok(&["sh", "-c", &show("self")]);
    assert_eq!(mine, ok(&["sh", "-c", &show("1")]));
    assert!(mine.contains("Seccomp:\t2\n"), "{mine}");
    assert!(mine.contains("NoNewPrivs:\t1\n"), "{mine}");
    assert!(mine.contains("CapEff:\t00000000a80425fb\n"), "{mine}");
    let mut alice = join_spec(&[
        "sh",
        "-c",
        "id -u; echo $HOME; pwd; grep CapEff /proc/self/status",
    ]);
    alice.user = Some("alice".into());
    alice.cwd = PathBuf::from("/tmp");
    assert_eq!(
        run(&alice).unwrap(),
        (
            0,
            "1000\n/home/alice\n/tmp\nCapEff:\t0000000000000000\n".into()
        )
    );
    // Setup failures are errors; the working directory is not created.
    let mut nowhere = join_spec(&["true"]);
    nowhere.cwd = PathBuf::from("/nope");
    assert!(matches!(run(&nowhere), Err(Error::Setup { .. })));
    assert!(matches!(
        run(&join_spec(&["no-such-command"])),
        Err(Error::Exec {
            kind: exec::ExecFailure::NotFound,
            ..
        })
    ));
    // A process of this namespace is not a container.
    let mut me = join_spec(&["true"]);
    me.target_pid = std::process::id();
    assert!(matches!(exec::join(&me), Err(Error::InvalidSpec(_))));

    // The joined process dies with the container.
    let mut sleeper = exec::join(&join_spec(&["sleep", "1000"])).unwrap();
    container.kill().unwrap();
    assert_eq!(container.wait().unwrap().signal, Some(9));
    assert_eq!(sleeper.wait().unwrap().code, 137);
    // And nothing joins a container that is gone.
    assert!(matches!(
        exec::join(&join_spec(&["true"])),
        Err(Error::Gone)
    ));
}

fn dir_rootfs(fx: &Fx) {
    let root = fx.fresh("dirroot");
    build_rootfs(&root);
    let (mut spec, _l) = fx.sh("echo made > /made; ls /proc/self/fd >/dev/null && echo ok");
    spec.rootfs = Rootfs::Dir(root.clone());
    assert_eq!(stdout_ok(&spec), "ok\n");
    assert_eq!(
        std::fs::read_to_string(root.join("made")).unwrap(),
        "made\n"
    );
    let mut want = vec!["bin", "etc", "home", "made", "root", "tmp"];
    want.sort();
    assert_eq!(entries(&root), want);
    assert_eq!(entries(&root.join("etc")), vec!["group", "passwd"]);
}

fn tty(fx: &Fx) {
    let (mut spec, _l) = fx.sh("tty; echo hi");
    spec.tty = true;
    let mut r = exec::spawn(&spec).unwrap();
    assert!(r.stdout.is_none());
    let mut master = r.pty.take().unwrap();
    let mut s = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => s.extend_from_slice(&buf[..n]),
            Err(_) => break, // EIO once the slave side is closed
        }
    }
    assert!(r.wait().unwrap().success());
    assert_eq!(String::from_utf8_lossy(&s), "/dev/pts/0\r\nhi\r\n");
}

fn sigkill_parent(fx: &Fx) {
    let before = mounts_under(&fx.dir);
    let l = fx.layers();
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .arg("__kill-parent")
        .arg(&fx.base)
        .arg(&l.upper)
        .arg(&l.work)
        .arg(&fx.state)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pids: Vec<i32> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (container, helper) = (pids[0], pids[1]);
    assert!(Path::new(&format!("/proc/{container}")).exists());
    let private_dirs = entries(&fx.state);
    assert_eq!(private_dirs.len(), 1, "{private_dirs:?}");
    // The private network's slirp4netns goes with the caller (its exit fd closes).
    let slirps = slirps_of(parent.id());
    assert_eq!(slirps.len(), 1, "{slirps:?}");

    parent.kill().unwrap(); // SIGKILL
    parent.wait().unwrap();
    let gone = |pid: i32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for its new parent to reap it is gone too.
        Ok(s) => s.rsplit(')').next().unwrap().trim_start().starts_with('Z'),
    };
    let t = Instant::now();
    let slirp = slirps[0] as i32;
    while !(gone(container) && gone(helper) && gone(slirp) && entries(&fx.state).is_empty()) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "container {container}, helper {helper} or slirp4netns {slirp} survived, or {:?} stayed",
            entries(&fx.state)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mounts_under(&fx.dir), before);
    assert_eq!(entries(&l.upper), vec!["etc"]);
}

/// `__kill-parent <lower> <upper> <work> <state>`: start `sleep 1000`, print the pids, wait
/// to be killed.
fn kill_parent_mode(args: &[String]) -> ! {
    let mut spec = ExecSpec::new(
        Rootfs::Overlay {
            lower: vec![PathBuf::from(&args[0])],
            upper: PathBuf::from(&args[1]),
            work: PathBuf::from(&args[2]),
        },
        vec!["sleep".into(), "1000".into()],
    );
    spec.env = vec![PATH.to_string()];
    spec.state_dir = Some(PathBuf::from(&args[3]));
    spec.network = Network::Private;
    let r = exec::spawn(&spec).unwrap();
    println!("{} {}", r.pid(), r.helper_pid());
    std::io::stdout().flush().unwrap();
    std::mem::forget(r);
    loop {
        std::thread::sleep(Duration::from_secs(1000));
    }
}

/// Runs started from several threads at once do not interfere (each helper gets only its own
/// control socket).
fn parallel(fx: &Fx) {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                scope.spawn(move || {
                    let (spec, l) = fx.sh(&format!("echo {i} > /id; sleep 0.{i}; cat /id"));
                    let o = stdout_ok(&spec);
                    assert_eq!(o, format!("{i}\n"));
                    assert_eq!(
                        std::fs::read_to_string(l.upper.join("id")).unwrap(),
                        format!("{i}\n")
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

fn no_leftovers(fx: &Fx, mounts_at_start: &[String]) {
    let now = mounts_under(&fx.dir);
    assert_eq!(
        now,
        mounts_at_start,
        "mounts changed under {}",
        fx.dir.display()
    );
    assert!(!now.iter().any(|l| l.contains("strata-exec")), "{now:?}");
    assert_eq!(
        entries(&fx.state),
        Vec::<String>::new(),
        "private dirs left behind"
    );
}

/// Docker's default profile: the issue's escape (a user namespace, then a mount in it) is
/// refused; the filter is installed without no_new_privs (set-uid binaries keep working).
fn seccomp_default(fx: &Fx) {
    let (spec, _l) = fx.sh("unshare -U -r -m sh -c 'mount -t tmpfs none /etc' && echo escaped");
    let (code, o, e) = out(&spec);
    assert_ne!(code, 0, "stdout: {o}\nstderr: {e}");
    assert!(!o.contains("escaped"), "{o}");
    assert!(
        e.contains("unshare") && e.contains("Operation not permitted"),
        "{e}"
    );
    let (code, _, e) = out(&fx.sh("unshare -p -f true").0);
    assert_ne!(code, 0);
    assert!(e.contains("Operation not permitted"), "{e}");
    let o = stdout_ok(
        &fx.sh("grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status")
            .0,
    );
    assert_eq!(o, "NoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t2\n");
    // Ordinary work still runs: fork, pipes, files.
    assert_eq!(
        stdout_ok(
            &fx.sh("echo a | (cat; mkdir -p /tmp/d && echo b > /tmp/d/f; cat /tmp/d/f)")
                .0
        ),
        "a\nb\n"
    );
}

/// `Seccomp::Unconfined` installs nothing: the same escape works (as under
/// `docker run --security-opt seccomp=unconfined`).
fn seccomp_unconfined(fx: &Fx) {
    let (mut spec, _l) = fx.sh("grep '^Seccomp:' /proc/self/status; unshare -U -r -m sh -c 'mount -t tmpfs none /etc && id -u'");
    spec.seccomp = exec::Seccomp::Unconfined;
    assert_eq!(stdout_ok(&spec), "Seccomp:\t0\n0\n");
}

/// A profile of one's own: mkdir denied (EPERM), the rest allowed; a profile that denies a
/// call the init itself needs (setresuid) fails the start with a setup error.
fn seccomp_custom_profile(fx: &Fx) {
    let json = br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;
    let profile = std::sync::Arc::new(exec::SeccompProfile::from_json(json).unwrap());
    let (mut spec, _l) = fx.sh("touch /tmp/f && echo touched; mkdir /tmp/d");
    spec.seccomp = exec::Seccomp::Profile(profile);
    let (code, o, e) = out(&spec);
    assert_eq!(code, 1);
    assert_eq!(o, "touched\n");
    assert_eq!(
        e,
        "mkdir: can't create directory '/tmp/d': Operation not permitted\n"
    );

    let json = br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["setresuid"],"action":"SCMP_ACT_ERRNO"}]}"#;
    let (mut spec, _l) = fx.sh("true");
    spec.seccomp = exec::Seccomp::Profile(std::sync::Arc::new(
        exec::SeccompProfile::from_json(json).unwrap(),
    ));
    match exec::run(&spec) {
        Err(Error::Setup { context, message }) => {
            assert_eq!(
                (context.as_str(), message.as_str()),
                ("setuid 0", "operation not permitted")
            );
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
}

/// A host program (this test binary, on the host's /usr bound read-only) probes calls a shell
/// cannot make: clone3 gives ENOSYS under the default profile (so libc falls back to clone),
/// EINVAL (size 0) unconfined; threads still start; unshare(CLONE_NEWUSER) is EPERM, through
/// the 64-bit and (on x86_64) the i386 entry.
fn seccomp_clone3(fx: &Fx) {
    let libs = fx.fresh("libs");
    std::os::unix::fs::symlink("usr/lib", libs.join("lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib64", libs.join("lib64")).unwrap();
    let probe = |seccomp: exec::Seccomp| {
        let l = fx.layers();
        let mut spec = ExecSpec::new(
            Rootfs::Overlay {
                lower: vec![libs.clone(), fx.base.clone()],
                upper: l.upper,
                work: l.work,
            },
            vec!["/probe".into(), "__seccomp-probe".into()],
        );
        spec.env = vec![PATH.to_string()];
        spec.stdout = Stdio::Pipe;
        spec.stderr = Stdio::Pipe;
        spec.state_dir = Some(fx.state.clone());
        spec.seccomp = seccomp;
        spec.mounts = vec![
            Mount::Bind {
                source: "/usr".into(),
                target: "/usr".into(),
                readonly: true,
            },
            Mount::Bind {
                source: std::env::current_exe().unwrap(),
                target: "/probe".into(),
                readonly: true,
            },
        ];
        stdout_ok(&spec)
    };
    // The 32-bit ABI gets the profile too (its own syscall numbers).
    let i386 = |unshare: i32| {
        if cfg!(target_arch = "x86_64") {
            format!("int80 getpid: 1\nint80 unshare(CLONE_NEWUTS): {unshare}\n")
        } else {
            String::new()
        }
    };
    assert_eq!(
        probe(exec::Seccomp::Default),
        "clone3: errno 38\nthread: ok\nunshare(CLONE_NEWUSER): errno 1\n".to_string() + &i386(-1)
    );
    assert_eq!(
        probe(exec::Seccomp::Unconfined),
        "clone3: errno 22\nthread: ok\nunshare(CLONE_NEWUSER): ok\n".to_string() + &i386(0)
    );
}

/// `__seccomp-probe`: what `seccomp_clone3` checks, run inside the container.
fn seccomp_probe_mode() -> ! {
    let errno = |rc: libc::c_long| {
        if rc == 0 {
            "ok".to_string()
        } else {
            format!(
                "errno {}",
                std::io::Error::last_os_error().raw_os_error().unwrap()
            )
        }
    };
    // SAFETY: clone3 with a null argument and size 0 creates nothing: it fails (EINVAL) or is
    // refused by the filter.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    println!("clone3: {}", errno(rc));
    let t = std::thread::spawn(|| 7).join();
    println!(
        "thread: {}",
        if t.ok() == Some(7) { "ok" } else { "failed" }
    );
    // SAFETY: unshare takes only flags; the process exits right after.
    let rc = unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) };
    println!("unshare(CLONE_NEWUSER): {}", errno(rc));
    #[cfg(target_arch = "x86_64")]
    {
        // The i386 ABI (`int 0x80`) from this 64-bit process: getpid is 20, unshare 310.
        println!("int80 getpid: {}", int80(20, 0));
        // Unconfined, the process is now in its own user namespace, where it may do this.
        println!(
            "int80 unshare(CLONE_NEWUTS): {}",
            int80(310, libc::CLONE_NEWUTS as u32)
        );
    }
    std::process::exit(0);
}

/// An i386 system call; returns the kernel's result (`-errno` on failure).
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, arg: u32) -> i32 {
    let ret: i32;
    // SAFETY: a plain system call through the i386 entry; rbx (reserved by LLVM) is swapped
    // with a scratch register around it and restored, r8–r11 are declared clobbered.
    unsafe {
        std::arch::asm!(
            "xchg {a:r}, rbx",
            "int 0x80",
            "xchg {a:r}, rbx",
            a = inout(reg) u64::from(arg) => _,
            inlateout("eax") nr as i32 => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret
}

type Test = (&'static str, fn(&Fx));

fn main() {
    exec::maybe_run_init();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__kill-parent") {
        kill_parent_mode(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("__seccomp-probe") {
        seccomp_probe_mode();
    }
    // What every test here needs, said once (SKIPPED outside CI, a failure under CI=true).
    if !strata_tests::check(
        "exec",
        &[strata_tests::Need::Root, strata_tests::Need::Busybox],
    ) {
        return;
    }
    let filter: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();

    let tests: &[Test] = &[
        ("exit_codes", exit_codes),
        ("stdio", stdio),
        ("env_exact", env_exact),
        ("cwd_created", cwd_created),
        ("users", users),
        ("unknown_user", unknown_user),
        ("hostname", hostname),
        ("proc_and_pid1", proc_and_pid1),
        ("etc_files_not_in_upper", etc_files_not_in_upper),
        ("dangling_symlink_target", dangling_symlink_target),
        ("overlay_writes", overlay_writes),
        ("many_layers", many_layers),
        ("network_none", network_none),
        ("network_host", network_host),
        ("network_private", network_private),
        ("network_pool", network_pool),
        ("network_hook", network_hook),
        ("bind_mounts", bind_mounts),
        ("tmpfs_mount", tmpfs_mount),
        ("devices", devices),
        ("readonly_rootfs", readonly_rootfs),
        ("missing_binary", missing_binary),
        ("capabilities", capabilities),
        ("join_running", join_running),
        ("dir_rootfs", dir_rootfs),
        ("tty", tty),
        ("sigkill_parent", sigkill_parent),
        ("parallel", parallel),
        ("seccomp_default", seccomp_default),
        ("seccomp_unconfined", seccomp_unconfined),
        ("seccomp_custom_profile", seccomp_custom_profile),
        ("seccomp_clone3", seccomp_clone3),
    ];
    let fx = Fx::new();
    let mounts_at_start = mounts_under(&fx.dir);
    let (mut passed, mut failed) = (0, 0);
    let mut run = |name: &str, f: &dyn Fn()| {
        let t = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({} ms)", t.elapsed().as_millis());
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    };
    for (name, f) in tests {
        if filter.is_empty() || filter.iter().any(|p| name.contains(p.as_str())) {
            run(name, &|| f(&fx));
        }
    }
    run("no_leftovers", &|| no_leftovers(&fx, &mounts_at_start));
    drop(fx);
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
