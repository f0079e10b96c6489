//! Issue 10, item 4: RUN and `strata run` get a network namespace of their own, with a
//! route out through slirp4netns, from which the host's loopback (and its abstract unix
//! sockets) cannot be reached; `--network host` is an explicit choice, and `RUN
//! --network=host` needs `--allow network.host`.
//!
//! Each test runs strata from a thread in a fresh network namespace that stands in for the
//! host: its loopback is "the host's loopback", and a veth end with 10.199.0.1/24 is a test
//! host outside the container. So nothing is added to the machine's real network, no
//! traffic leaves the machine, and the test's own slirp4netns processes are told apart from
//! anyone else's by their network namespace: none may be left when the test ends.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::guard::{after, setup};

/// The test host's address, on a veth of the test's namespace.
const TEST_HOST: &str = "10.199.0.1";

/// The namespace a test runs strata from.
struct TestNet {
    /// `net:[inode]`, as /proc/PID/ns/net reads.
    id: String,
}

/// Run `f` on a thread in a fresh network namespace (`lo` up, a veth pair with
/// [`TEST_HOST`]); afterwards no slirp4netns may be left in that namespace.
fn in_test_netns<T: Send>(f: impl FnOnce(&TestNet) -> T + Send) -> T {
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare(CLONE_NEWNET) moves this thread only into a new network
            // namespace; no memory is involved.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
            for args in [
                &["link", "set", "lo", "up"][..],
                &["link", "add", "t0", "type", "veth", "peer", "name", "t1"],
                &["addr", "add", &format!("{TEST_HOST}/24"), "dev", "t0"],
                &["link", "set", "t0", "up"],
                &["link", "set", "t1", "up"],
            ] {
                crate::common::tool("ip", args);
            }
            // This thread's namespace (/proc/self would be the main thread's).
            let id = std::fs::read_link("/proc/thread-self/ns/net")
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let net = TestNet { id };
            let out = f(&net);
            net.no_slirp_left();
            out
        })
        .join()
    });
    match r {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

impl TestNet {
    /// Live slirp4netns processes whose network namespace is this one.
    fn slirps(&self) -> Vec<(u32, u32)> {
        let mut found = Vec::new();
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
                    .unwrap_or_default()
            };
            if field("Name:") != "slirp4netns" || field("State:").starts_with('Z') {
                continue;
            }
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            if ns == self.id {
                found.push((pid, field("PPid:").parse().unwrap_or(0)));
            }
        }
        found
    }

    /// Waits (up to 3 s) until no slirp4netns runs in this namespace.
    fn no_slirp_left(&self) {
        let t = Instant::now();
        while !self.slirps().is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "slirp4netns left running: {:?}",
                self.slirps()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A TCP server (in the calling thread's namespace) that answers each connection with
/// `reply` and counts connections.
fn serve(addr: &str, reply: &'static str) -> (u16, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind((addr, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let _ = c.write_all(reply.as_bytes());
        }
    });
    (port, hits)
}

/// An abstract unix socket `@name` (in the calling thread's namespace), kept open.
fn abstract_socket(name: &str) -> std::os::unix::net::UnixListener {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    std::os::unix::net::UnixListener::bind_addr(&addr).unwrap()
}

/// A shell script probing the host's loopback at `port` (directly and through slirp's
/// gateway 10.0.2.2) and looking for the abstract socket `name`.
fn probe(port: u16, name: &str) -> String {
    format!(
        "busybox nc -w 3 127.0.0.1 {port} </dev/null; echo lo=$?; \
         busybox nc -w 3 10.0.2.2 {port} </dev/null; echo gw=$?; \
         echo abstract=$(busybox grep -c @{name} /proc/net/unix)"
    )
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn unique(what: &str) -> String {
    format!(
        "strata-{what}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(['(', ')'], "")
}

#[test]
fn run_reaches_neither_the_hosts_loopback_nor_its_abstract_sockets() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    in_test_netns(|_| {
        let (port, hits) = serve("127.0.0.1", "host-loopback\n");
        let name = unique("abstract");
        let _sock = abstract_socket(&name);
        let o = env.run(&["run", "busybox:local", "sh", "-c", &probe(port, &name)]);
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(o.status.success(), "{out}{err}");
        assert!(!out.contains("host-loopback"), "{out}");
        assert!(out.contains("lo=1\n") && out.contains("gw=1\n"), "{out}");
        assert!(out.contains("abstract=0\n"), "{out}");
        // Nothing listens on the container's own loopback; slirp4netns refuses the way
        // through its gateway to the host's loopback.
        for line in [
            "nc: can't connect to remote host (127.0.0.1): Connection refused",
            "nc: can't connect to remote host (10.0.2.2): Network is unreachable",
        ] {
            assert!(err.contains(line), "{err}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        // The control: the host's network sees both.
        let o = env.run(&[
            "run",
            "--network",
            "host",
            "busybox:local",
            "sh",
            "-c",
            &probe(port, &name),
        ]);
        let out = stdout(&o);
        assert!(out.contains("host-loopback\nlo=0\n"), "{out}");
        assert!(out.contains("abstract=1\n"), "{out}");
    });
    after(&canary, &env);
}

#[test]
fn build_run_reaches_neither_the_hosts_loopback_nor_its_abstract_sockets() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    in_test_netns(|_| {
        let (port, hits) = serve("127.0.0.1", "host-loopback\n");
        let name = unique("abstract");
        let _sock = abstract_socket(&name);
        let ctx = env.path("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM busybox:local\nRUN ({}) > /out 2>&1\n",
                probe(port, &name)
            ),
        )
        .unwrap();
        let ctx = ctx.to_str().unwrap();
        let result = |img: &str| env.ok(&["run", "--network", "none", img, "cat", "/out"]);
        env.ok(&["build", "-q", "-t", "private", ctx]);
        let out = result("private");
        assert!(!out.contains("host-loopback"), "{out}");
        assert!(
            out.contains(
                "nc: can't connect to remote host (127.0.0.1): Connection refused\nlo=1\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "nc: can't connect to remote host (10.0.2.2): Network is unreachable\ngw=1\n"
            ),
            "{out}"
        );
        assert!(out.contains("abstract=0\n"), "{out}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        // `build --network host` is the explicit way to the host's network.
        env.ok(&["build", "-q", "--network", "host", "-t", "hostnet", ctx]);
        let out = result("hostnet");
        assert!(out.contains("host-loopback\nlo=0\n"), "{out}");
        assert!(out.contains("abstract=1\n"), "{out}");
        assert!(hits.load(Ordering::SeqCst) >= 1);
    });
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn a_test_host_is_reachable_from_run_and_build_through_the_private_network() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    in_test_netns(|_| {
        let (port, hits) = serve(TEST_HOST, "hello-from-the-test-host\n");
        let fetch = format!("busybox nc -w 5 {TEST_HOST} {port} </dev/null");
        // strata run: default network, the route out is slirp4netns' tap0.
        let o = env.run(&[
            "run",
            "busybox:local",
            "sh",
            "-c",
            &format!("{fetch}; busybox ip route"),
        ]);
        let out = stdout(&o);
        assert!(o.status.success(), "{out}{}", stderr(&o));
        assert!(out.starts_with("hello-from-the-test-host\n"), "{out}");
        assert!(out.contains("default via 10.0.2.2 dev tap0"), "{out}");
        // RUN, default network.
        let ctx = env.path("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM busybox:local\nRUN {fetch} > /got\n"),
        )
        .unwrap();
        env.ok(&["build", "-q", "-t", "got", ctx.to_str().unwrap()]);
        let got = env.ok(&["run", "--network", "none", "got", "cat", "/got"]);
        assert_eq!(got, "hello-from-the-test-host\n");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // --network none stays without a route out.
        let o = env.run(&[
            "run",
            "--network",
            "none",
            "busybox:local",
            "sh",
            "-c",
            &fetch,
        ]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("Network is unreachable"),
            "{}",
            stderr(&o)
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    });
    after(&canary, &env);
}

#[test]
fn run_network_host_needs_the_network_host_entitlement() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    in_test_netns(|_| {
        let (port, hits) = serve("127.0.0.1", "host-loopback\n");
        let ctx = env.path("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM busybox:local\nRUN echo first > /first\nRUN --network=host busybox nc -w 3 127.0.0.1 {port} > /got\n"
            ),
        )
        .unwrap();
        let ctx = ctx.to_str().unwrap();
        let err = env.fails(&["build", "-q", "-t", "h", ctx]);
        let file = Path::new(ctx).join("Dockerfile");
        let line = format!("error: {}:3:5: network.host is not allowed", file.display());
        assert!(
            err.lines().next() == Some(line.as_str()) || err.contains(&line),
            "{err}"
        );
        assert!(err.contains("--allow network.host"), "{err}");
        // Refused before anything ran, and nothing tagged.
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert!(!env.run(&["inspect", "h"]).status.success());
        let err = env.fails(&["build", "-q", "--allow", "network.everything", ctx]);
        assert!(
            err.contains("--allow: unknown entitlement \"network.everything\""),
            "{err}"
        );
        // With the entitlement (as buildx's --allow network.host) it runs on the host's
        // network, and so it does under `build --network host` (buildx grants it then).
        env.ok(&["build", "-q", "--allow", "network.host", "-t", "h", ctx]);
        assert_eq!(
            env.ok(&["run", "--network", "none", "h", "cat", "/got"]),
            "host-loopback\n"
        );
        env.ok(&["build", "-q", "--no-cache", "--network", "host", ctx]);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    });
    after(&canary, &env);
}

/// `GET /` on 127.0.0.1:port of the calling thread's namespace.
fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    s.shutdown(std::net::Shutdown::Write).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn publish_works_and_detached_networks_end_with_their_container() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    in_test_netns(|net| {
        let (far, _) = serve(TEST_HOST, "hello-from-the-test-host\n");
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let publish = format!("127.0.0.1:{port}:80");
        // An httpd serving what it fetched from the test host through the private network.
        let script = format!(
            "busybox mkdir -p /www && busybox nc -w 5 {TEST_HOST} {far} </dev/null > /www/index.html && \
             exec busybox httpd -f -p 80 -h /www"
        );
        let id = env.ok(&[
            "run",
            "-d",
            "-p",
            &publish,
            "busybox:local",
            "sh",
            "-c",
            &script,
        ]);
        let id = id.trim();
        let t = Instant::now();
        let mut response = String::new();
        while !response.contains("hello-from-the-test-host") {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no answer: {response:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
            response = http_get(port).unwrap_or_default();
        }
        // The supervisor keeps the container's slirp4netns while it runs ...
        let slirps = net.slirps();
        assert_eq!(slirps.len(), 1, "{slirps:?}");
        // ... and it ends with the container.
        env.ok(&["rm", "-f", id]);
        net.no_slirp_left();
        assert!(http_get(port).is_none());

        // A killed supervisor takes the network with it too.
        let id = env.ok(&["run", "-d", "busybox:local", "sleep", "1000"]);
        let slirps = net.slirps();
        assert_eq!(slirps.len(), 1, "{slirps:?}");
        let supervisor = slirps[0].1 as i32;
        // SAFETY: kill(2) on the supervisor this test started (the slirp's parent).
        assert_eq!(unsafe { libc::kill(supervisor, libc::SIGKILL) }, 0);
        net.no_slirp_left();
        env.ok(&["rm", "-f", id.trim()]);
    });
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn a_run_step_leaves_nothing_listening_for_the_next() {
    strata_tests::require!(Root, Busybox);
    // RUN steps of one build reuse a private network (one slirp4netns per concurrent RUN,
    // as BuildKit pools its namespaces): what one step left listening dies with it.
    let (env, canary) = setup();
    in_test_netns(|_| {
        let ctx = env.path("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM busybox:local\n\
             RUN busybox nc -l -p 7777 -e echo left-behind & busybox sleep 0.3; \
             cat /proc/net/tcp /proc/net/tcp6 | busybox grep -c ':1E61 ' > /listening\n\
             RUN busybox nc -w 2 127.0.0.1 7777 </dev/null > /got 2>&1; echo rc=$? >> /got\n",
        )
        .unwrap();
        env.ok(&["build", "-q", "-t", "steps", ctx.to_str().unwrap()]);
        let out = env.ok(&[
            "run",
            "--network",
            "none",
            "steps",
            "cat",
            "/listening",
            "/got",
        ]);
        assert_eq!(
            out,
            "1\nnc: can't connect to remote host (127.0.0.1): Connection refused\nrc=1\n"
        );
    });
    after(&canary, &env);
}

/// A user-defined network keeps the containment: its bridge and gateway live in a namespace
/// of the network's own, so the host (here the test's namespace) gains no interface, address
/// or route and cannot reach a member except through `-p`; a member reaches neither the
/// host's loopback (directly, through slirp's gateway or through the network's gateway) nor
/// its abstract sockets, and cannot change its address (no CAP_NET_ADMIN).
#[test]
fn a_user_defined_network_adds_no_way_into_the_host_or_out_of_the_container() {
    strata_tests::require!(Root, Busybox);
    let (env, canary) = setup();
    in_test_netns(|_| {
        let before = crate::common::tool("ip", &["-o", "addr"]);
        env.ok(&["network", "create", "sec"]);
        let member = env.ok(&[
            "run", "-d", "--network", "sec", "busybox:local", "sh", "-c",
            "busybox mkdir -p /www && echo member > /www/index.html && exec busybox httpd -f -p 8080 -h /www",
        ]);
        let member = member.trim();
        // The host's view: no new address, no route to the network, no bridge.
        assert_eq!(crate::common::tool("ip", &["-o", "addr"]), before);
        let routes = crate::common::tool("ip", &["route"]);
        assert!(!routes.contains("10.89."), "{routes}");
        let links = crate::common::tool("ip", &["-o", "link"]);
        assert!(!links.contains("br0") && !links.contains(": v"), "{links}");
        let refused = std::net::TcpStream::connect_timeout(
            &"10.89.0.2:8080".parse().unwrap(),
            Duration::from_secs(2),
        );
        assert!(refused.is_err(), "the host reached a member");

        // A member's view.
        let (port, hits) = serve("127.0.0.1", "host-loopback\n");
        let name = unique("abstract");
        let _sock = abstract_socket(&name);
        let script = format!(
            "{}; busybox nc -w 3 10.89.0.1 {port} </dev/null; echo bridge=$?; \
             busybox wget -qO- http://10.89.0.2:8080/; \
             busybox ip addr add 10.89.0.9/24 dev eth0; echo addr=$?",
            probe(port, &name)
        );
        let o = env.run(&[
            "run",
            "--rm",
            "--network",
            "sec",
            "busybox:local",
            "sh",
            "-c",
            &script,
        ]);
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(o.status.success(), "{out}{err}");
        assert!(!out.contains("host-loopback"), "{out}");
        assert!(out.contains("lo=1\n") && out.contains("gw=1\n"), "{out}");
        assert!(out.contains("bridge=1\n"), "{out}");
        assert!(out.contains("abstract=0\n"), "{out}");
        // Its fellow member, yes; its own address, fixed.
        assert!(out.contains("member\n"), "{out}");
        assert!(out.contains("addr=") && !out.contains("addr=0"), "{out}");
        assert!(err.contains("Operation not permitted"), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);

        env.ok(&["rm", "-f", member]);
        env.ok(&["network", "rm", "sec"]);
    });
    after(&canary, &env);
}
