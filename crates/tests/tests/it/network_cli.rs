//! User-defined networks end to end: `strata network create|ls|inspect|rm|prune` and
//! `run --network NAME --network-alias A`: members reach each other by name and alias (two
//! httpd on the same port), non-members cannot, `/etc/hosts` follows members coming and
//! going, `-p` works from the host, and nothing (mount, namespace, process, store entry) is
//! left after `rm -f` and `network rm`.

use std::io::Write;

use crate::common::{free_port, http_get as get, Env};
use crate::run_cli::{eventually, run_d, setup, stderr, stdout, supervisors};

/// `strata run -d ARGS sh -c SCRIPT`: the id.
fn run_sh(env: &Env, args: &[&str], script: &str) -> String {
    let mut all = args.to_vec();
    all.extend_from_slice(&["sh", "-c", script]);
    run_d(env, &all)
}

/// An httpd on port 8080 serving `text`.
fn httpd(text: &str) -> String {
    format!(
        "busybox mkdir -p /www && echo {text} > /www/index.html && \
         exec busybox httpd -f -p 8080 -h /www"
    )
}

/// Removes every container, then every network of the store when dropped (also when a
/// test fails), then checks that no supervisor, mount or network is left.
struct Cleanup<'a>(&'a Env);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let env = self.0;
        for id in stdout(&env.run(&["ps", "-aq", "--no-trunc"])).lines() {
            let _ = env.run(&["rm", "-f", id]);
        }
        for id in stdout(&env.run(&["network", "ls", "-q", "--no-trunc"])).lines() {
            let _ = env.run(&["network", "rm", id]);
        }
        if std::thread::panicking() {
            return;
        }
        eventually("the supervisors to exit", || supervisors(env).is_empty());
        assert_nothing_left(env);
    }
}

/// No container, no network directory, no mount under the store (the netns bind mounts),
/// no process of the store.
fn assert_nothing_left(env: &Env) {
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.ok(&["network", "ls", "-q"]), "");
    let nets: Vec<_> = std::fs::read_dir(env.root().join("networks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".lock")
        .collect();
    assert!(nets.is_empty(), "left in networks/: {nets:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = env.root();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "mounts under the store:\n{mounts}"
    );
}

/// `strata exec C busybox wget -qO- URL`: (exit code, stdout + stderr).
fn wget(env: &Env, c: &str, url: &str) -> (i32, String) {
    let o = env.run(&["exec", c, "busybox", "wget", "-qO-", url]);
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", stdout(&o), stderr(&o)),
    )
}

/// The host's first global IPv4 address (`ip -o -4 addr`), if it has one.
fn host_address() -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(word.split('/').next()?.to_string())
}

/// A TCP server on `ip` answering every connection with `text`: its port.
fn serve(ip: &str, text: &'static str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(format!("{text}\n").as_bytes());
        }
    });
    port
}

#[test]
fn members_reach_each_other_by_name_and_alias() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _cleanup = Cleanup(&env);
    let id = env.ok(&["network", "create", "--label", "team=a", "app"]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    env.ok(&["network", "create", "other"]);

    // Two services on the same port, each in its own namespace.
    let one = run_sh(
        &env,
        &[
            "--name",
            "one",
            "--network",
            "app",
            "--network-alias",
            "first",
            "busybox:local",
        ],
        &httpd("from-one"),
    );
    run_sh(
        &env,
        &[
            "--name",
            "two",
            "--network",
            "app",
            "--network-alias",
            "second",
            "busybox:local",
        ],
        &httpd("from-two"),
    );
    for (from, to, text) in [
        ("one", "two", "from-two"),
        ("one", "second", "from-two"),
        ("two", "one", "from-one"),
        ("two", "first", "from-one"),
    ] {
        eventually(&format!("{from} to reach {to}"), || {
            wget(&env, from, &format!("http://{to}:8080/"))
                .1
                .contains(text)
        });
    }
    let hosts = env.ok(&["exec", "one", "cat", "/etc/hosts"]);
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(
        hosts.contains("\tone first") || hosts.contains(" one first"),
        "{hosts}"
    );
    assert!(hosts.contains("two"), "{hosts}");

    // A container started later appears in the earlier ones' hosts files (rewritten in
    // place), is reachable at once, and its -p port works from the host.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    run_sh(
        &env,
        &[
            "--name",
            "three",
            "--network",
            "app",
            "-p",
            &publish,
            "busybox:local",
        ],
        &httpd("from-three"),
    );
    let hosts = env.ok(&["exec", "one", "cat", "/etc/hosts"]);
    assert!(hosts.contains("three"), "{hosts}");
    eventually("one to reach three", || {
        wget(&env, "one", "http://three:8080/")
            .1
            .contains("from-three")
    });
    eventually("three through -p", || get(port).contains("from-three"));

    // A foreground member reaches them by name too; its route out is still slirp4netns'.
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        "busybox:local",
        "sh",
        "-c",
        "busybox wget -qO- http://one:8080/ && busybox ip route",
    ]);
    assert!(out.contains("from-one"), "{out}");
    assert!(out.contains("default via 10.0.2.2 dev tap0"), "{out}");
    assert!(out.contains("10.89.0.0/24 dev eth0"), "{out}");

    // Outbound as on the default network: a service on the host's own (non-loopback)
    // address is reachable through slirp4netns, the host's loopback is not (not through
    // the slirp gateway, nor through the network's gateway).
    if let Some(host_ip) = host_address() {
        let far = serve(&host_ip, "host-service");
        let near = serve("127.0.0.1", "host-loopback");
        let script = format!(
            "busybox nc -w 5 {host_ip} {far} </dev/null; echo far=$?; \
             busybox nc -w 2 10.0.2.2 {near} </dev/null; echo gw=$?; \
             busybox nc -w 2 10.89.0.1 {near} </dev/null; echo bridge=$?"
        );
        let out = env.ok(&[
            "run",
            "--rm",
            "--network",
            "app",
            "busybox:local",
            "sh",
            "-c",
            &script,
        ]);
        assert!(out.contains("host-service\nfar=0"), "{out}");
        assert!(!out.contains("host-loopback"), "{out}");
        assert!(out.contains("gw=1") && out.contains("bridge=1"), "{out}");
    }

    // Not a member: no name, and the address does not lead to the service.
    let ip = serde_json::from_str::<serde_json::Value>(&env.ok(&["inspect", "one"])).unwrap()[0]
        ["NetworkSettings"]["Networks"]["app"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("10.89.0."), "{ip}");
    for net in ["other", "default"] {
        let script = format!(
            "busybox wget -qO- http://one:8080/; busybox wget -qO- http://{ip}:8080/; true"
        );
        let o = env.run(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox:local",
            "sh",
            "-c",
            &script,
        ]);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("bad address 'one:8080'"), "{net}: {all}");
        assert!(!all.contains("from-one"), "{net}: {all}");
    }

    // The gateway, in the network's own namespace, offers nothing (not the host).
    let (code, out) = wget(&env, "one", "http://10.89.0.1:8080/");
    assert_ne!(code, 0, "{out}");

    // A member leaving is dropped from the others' hosts files.
    env.ok(&["stop", "-t", "1", "two"]);
    let hosts = env.ok(&["exec", "one", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("two"), "{hosts}");
    assert!(hosts.contains("three"), "{hosts}");

    // inspect and ls.
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "app"])).unwrap();
    let n = &v[0];
    assert_eq!(n["Name"], "app");
    assert_eq!(n["Id"], id);
    assert_eq!(n["Scope"], "local");
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.89.0.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.89.0.1");
    assert_eq!(n["Labels"]["team"], "a");
    assert_eq!(n["Containers"][&one]["Name"], "one");
    assert_eq!(n["Containers"][&one]["IPv4Address"], format!("{ip}/24"));
    assert_eq!(n["Containers"].as_object().unwrap().len(), 2, "{n}");
    let ls = env.ok(&["network", "ls"]);
    let mut lines = ls.lines();
    let header: Vec<&str> = lines.next().unwrap().split("   ").map(str::trim).collect();
    assert_eq!(
        header
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect::<Vec<_>>(),
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
    );
    assert!(ls.contains(&format!("{}   app ", &id[..12])), "{ls}");
    assert_eq!(
        env.ok(&["network", "ls", "-q", "--filter", "label=team=a"]),
        format!("{}\n", &id[..12])
    );
    assert_eq!(
        env.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}}",
            "--filter",
            "name=oth"
        ]),
        "other bridge\n"
    );
    assert_eq!(
        env.ok(&["network", "inspect", "-f", "{{.Name}}", &id[..8]]),
        "app\n"
    );

    // Refused while containers are attached, even a stopped one (docker's words, exit 1).
    let err = env.fails(&["network", "rm", "app"]);
    assert!(
        err.contains(&format!(
            "error while removing network: network app id {id} has active endpoints"
        )),
        "{err}"
    );
    env.ok(&["rm", "-f", "one", "three"]);
    let err = env.fails(&["network", "rm", "app"]);
    assert!(err.contains("has active endpoints"), "{err}");
    env.ok(&["rm", "two"]);
    assert_eq!(env.ok(&["network", "rm", "app", "other"]), "app\nother\n");
    eventually("the supervisors to exit", || supervisors(&env).is_empty());
    assert_nothing_left(&env);
}

#[test]
fn network_errors_prune_and_restarts() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _cleanup = Cleanup(&env);
    // Unknown network: docker's message in strata's words, 125.
    let o = env.run(&["run", "--rm", "--network", "nope", "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("network nope not found"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&[
        "run",
        "--rm",
        "--network-alias",
        "x",
        "busybox:local",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let alias_only =
        "network-scoped alias is supported only for containers in user defined networks";
    assert!(stderr(&o).contains(alias_only), "{}", stderr(&o));
    env.ok(&["network", "create", "a"]);
    let o = env.run(&[
        "run",
        "--rm",
        "--network",
        "a",
        "--network-alias",
        "x y",
        "busybox:local",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("invalid network alias"),
        "{}",
        stderr(&o)
    );
    let err = env.fails(&["network", "create", "a"]);
    assert!(err.contains("network with name a already exists"), "{err}");
    let err = env.fails(&["network", "create", "host"]);
    assert!(err.contains("already exists"), "{err}");
    let err = env.fails(&["network", "inspect", "zzz"]);
    assert!(err.contains("Error: No such network: zzz"), "{err}");
    let err = env.fails(&["network", "rm", "zzz"]);
    assert!(err.contains("network zzz not found"), "{err}");
    env.ok(&["network", "rm", "-f", "zzz"]);
    // The lowest free subnet, reused after a removal.
    env.ok(&["network", "create", "b"]);
    let subnet = |n: &str| {
        env.ok(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}}",
            n,
        ])
    };
    assert_eq!(subnet("b"), "10.89.1.0/24\n");
    env.ok(&["network", "rm", "a"]);
    env.ok(&["network", "create", "c"]);
    assert_eq!(subnet("c"), "10.89.0.0/24\n");

    // A restarting member: its address is released at each exit and taken again.
    let id = run_sh(
        &env,
        &[
            "--network",
            "b",
            "--restart",
            "on-failure:3",
            "busybox:local",
        ],
        "busybox sleep 0.3; exit 1",
    );
    let restarts = || {
        let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
        v[0]["RestartCount"].as_i64().unwrap()
    };
    eventually("three restarts", || restarts() == 3);
    eventually("the last run to end", || {
        env.ok(&["inspect", "-f", "{{.State.Status}}", &id]).trim() == "exited"
    });
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["network", "inspect", "b"])).unwrap();
    assert_eq!(v[0]["Containers"], serde_json::json!({}), "{v}");

    // A member whose supervisor is SIGKILLed dies with it; `rm -f` releases its endpoint and
    // the others' hosts files forget it.
    run_sh(
        &env,
        &["--name", "k1", "--network", "b", "busybox:local"],
        "exec busybox sleep 600",
    );
    let k2 = run_sh(
        &env,
        &["--name", "k2", "--network", "b", "busybox:local"],
        "exec busybox sleep 600",
    );
    assert!(env.ok(&["exec", "k1", "cat", "/etc/hosts"]).contains("k2"));
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.root().join("containers").join(&k2).join("state.json")).unwrap(),
    )
    .unwrap();
    let sup = state["supervisor"].as_u64().unwrap() as i32;
    assert_eq!(
        std::process::Command::new("kill")
            .args(["-9", &sup.to_string()])
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    eventually("k2 to be dead", || {
        env.ok(&["ps", "-a"])
            .lines()
            .any(|l| l.contains("Dead") && l.ends_with("k2"))
    });
    env.ok(&["rm", "-f", "k2"]);
    let hosts = env.ok(&["exec", "k1", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("k2"), "{hosts}");
    env.ok(&["rm", "-f", "k1"]);

    // Two networks: eth0 and eth1, and the members of both by name.
    run_sh(
        &env,
        &["--name", "onc", "--network", "c", "busybox:local"],
        "exec busybox sleep 600",
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "b",
        "--network",
        "c",
        "busybox:local",
        "sh",
        "-c",
        "busybox ip -o -4 addr && busybox ping -c1 -W2 onc",
    ]);
    assert!(
        out.contains("eth0    inet 10.89.1.") || out.contains("eth0 inet 10.89.1."),
        "{out}"
    );
    assert!(
        out.contains("eth1    inet 10.89.0.") || out.contains("eth1 inet 10.89.0."),
        "{out}"
    );
    assert!(out.contains("1 packets received"), "{out}");
    assert_eq!(
        env.ok(&["ps", "--format", "{{.Names}} {{.Networks}}"]),
        "onc c\n"
    );
    env.ok(&["rm", "-f", "onc"]);

    // Members started at once: distinct addresses, each listed in every hosts file.
    let names: Vec<String> = (0..5).map(|i| format!("par{i}")).collect();
    std::thread::scope(|s| {
        for n in &names {
            let env = &env;
            s.spawn(move || {
                run_sh(
                    env,
                    &["--name", n, "--network", "c", "busybox:local"],
                    "exec busybox sleep 600",
                )
            });
        }
    });
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["network", "inspect", "c"])).unwrap();
    let mut ips: Vec<&str> = v[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["IPv4Address"].as_str().unwrap())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 5, "{v}");
    for n in &names {
        let hosts = env.ok(&["exec", n, "cat", "/etc/hosts"]);
        for other in &names {
            assert!(hosts.contains(other.as_str()), "{n}: {hosts}");
        }
        assert_eq!(
            hosts.lines().filter(|l| l.starts_with("10.89.0.")).count(),
            5,
            "{hosts}"
        );
    }
    for n in &names {
        env.ok(&["rm", "-f", n]);
    }

    // prune: only what no container uses (b has a stopped member).
    let out = env.ok(&["network", "prune", "-f"]);
    assert_eq!(out, "Deleted Networks:\nc\n");
    assert_eq!(env.ok(&["network", "ls", "--format", "{{.Name}}"]), "b\n");
    env.ok(&["rm", &id]);
    env.ok(&["network", "prune", "-f"]);
    assert_eq!(env.ok(&["network", "ls", "-q"]), "");
}
