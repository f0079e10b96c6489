//! `strata compose` end to end: a three-service project (web → api → db, healthchecks,
//! `service_healthy`, one port for all three, a published port, a named volume) brought up,
//! used, and taken down leaving nothing; an attached `up` stopped by Ctrl-C; the tutorials'
//! development/production file with a real Node server (a bind-mounted source reloaded,
//! the memory limit in the production container's cgroup); bad input refused before
//! anything starts.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{busybox_env as setup, free_port, http_get, tool, Env};
use crate::run_cli::{eventually, stderr, stdout, supervisors};

/// `GET /` on 127.0.0.1:`port`: the body, or `None` while nothing answers.
fn get(port: u16) -> Option<String> {
    let response = http_get(port);
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// Poll `GET /` until the body is `want` (20 s).
fn wait_body(port: u16, want: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < end {
        last = get(port);
        if last.as_deref() == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("GET :{port} never gave {want:?} (last {last:?})");
}

/// `strata compose -p NAME -f FILE ARGS`.
fn compose(env: &Env, name: &str, file: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["compose", "-p", name, "-f", file.to_str().unwrap()];
    all.extend_from_slice(args);
    env.run(&all)
}

fn compose_ok(env: &Env, name: &str, file: &Path, args: &[&str]) -> String {
    let o = compose(env, name, file, args);
    assert!(
        o.status.success(),
        "compose {args:?}:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Mounts under the store (the networks' namespace files are there), in this mount
/// namespace.
fn leftovers(env: &Env) -> Vec<String> {
    let root = env.root().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(str::to_string)
        .collect()
}

/// The three-service project of the issue: web (built) → api → db with a healthcheck and
/// `condition: service_healthy`, each listening on 8080 in its own network namespace, web
/// published on the host; names resolved between services; `down -v` leaves nothing.
#[test]
fn three_services_up_reach_each_other_and_down_leaves_nothing() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let dir = env.path("proj");
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(
        dir.join("web/Dockerfile"),
        "FROM busybox:local\nRUN busybox mkdir -p /srv\n\
         CMD [\"sh\", \"-c\", \"until busybox wget -q -O /srv/index.html http://api:8080/; do sleep 0.2; done; exec busybox httpd -f -p 8080 -h /srv\"]\n",
    )
    .unwrap();
    let port = free_port();
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            r#"services:
  web:
    build: ./web
    ports: ["127.0.0.1:{port}:8080"]
    depends_on: [api]
    stop_grace_period: 1s
  api:
    image: busybox:local
    init: true
    command: ["sh", "-c", "busybox mkdir -p /srv; until busybox wget -q -O /srv/index.html http://db:8080/; do sleep 0.2; done; exec busybox httpd -f -p 8080 -h /srv"]
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox:local
    init: true
    command: ["sh", "-c", "echo from-db > /data/index.html && exec busybox httpd -f -p 8080 -h /data"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 200ms
      retries: 50
volumes:
  data:
"#
        ),
    )
    .unwrap();
    let o = compose(&env, "trio", &file, &["up", "-d", "--wait"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // --wait: every container running (healthy where it has a check) before it returned.
    assert!(err.ends_with(" Container trio-web-1  Running\n"), "{err}");
    // db became healthy before api was created.
    let healthy = err.find("Container trio-db-1  Healthy").expect(&err);
    let api = err.find("Container trio-api-1  Creating").expect(&err);
    assert!(healthy < api, "{err}");
    assert!(err.contains("Network trio_default  Created"), "{err}");
    assert!(err.contains("Volume \"trio_data\"  Created"), "{err}");
    // The host reaches web, web reached api by name, api reached db by name.
    wait_body(port, "from-db\n");
    let ps = compose_ok(&env, "trio", &file, &["ps"]);
    for name in ["trio-web-1", "trio-api-1", "trio-db-1"] {
        assert!(ps.contains(name), "{ps}");
    }
    assert!(ps.contains("(healthy)"), "{ps}");
    let labelled = env.ok(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=trio",
    ]);
    assert_eq!(labelled.lines().count(), 3, "{labelled}");
    let db = env.ok(&[
        "ps",
        "--format",
        "{{.Names}}",
        "--filter",
        "label=com.docker.compose.service=db",
    ]);
    assert_eq!(db.trim(), "trio-db-1");
    // exec by service; the names resolve both ways.
    let out = compose_ok(
        &env,
        "trio",
        &file,
        &[
            "exec",
            "-T",
            "db",
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://web:8080/",
        ],
    );
    assert_eq!(out, "from-db\n");
    // A second up changes nothing.
    let o = compose(&env, "trio", &file, &["up", "-d"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Container trio-web-1  Running"), "{err}");
    assert!(!err.contains("Creating"), "{err}");
    // While up: the network's namespace is mounted in the store.
    assert!(
        leftovers(&env).iter().any(|l| l.contains(" nsfs ")),
        "{:?}",
        leftovers(&env)
    );
    // down -v: nothing left.
    let o = compose(&env, "trio", &file, &["down", "-v"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Network trio_default  Removed"), "{err}");
    assert!(err.contains("Volume trio_data  Removed"), "{err}");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
    assert_eq!(env.ok(&["network", "ls", "-q"]), "");
    eventually("the supervisors to exit", || supervisors(&env).is_empty());
    assert_eq!(leftovers(&env), Vec::<String>::new());
    assert!(get(port).is_none(), "the port is still served");
}

/// An attached `up` prints the services' logs with name prefixes and stops the project
/// on Ctrl-C (SIGINT), as docker compose does.
#[test]
fn attached_up_prefixes_logs_and_ctrl_c_stops() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let dir = env.path("att");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        r#"services:
  one:
    image: busybox:local
    command: ["sh", "-c", "echo one says hi; exec sleep 1000"]
  two:
    image: busybox:local
    command: ["sh", "-c", "echo two says hi; exec sleep 1000"]
    stop_grace_period: 1s
"#,
    )
    .unwrap();
    let mut child = env
        .cmd()
        .args(["compose", "-p", "att", "-f", file.to_str().unwrap(), "up"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    eventually("both services to run", || {
        env.ok(&[
            "ps",
            "-q",
            "--filter",
            "label=com.docker.compose.project=att",
        ])
        .lines()
        .count()
            == 2
    });
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill with a pid of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let out = reader.join().unwrap();
    assert!(out.contains("att-one-1  | one says hi\n"), "{out}");
    assert!(out.contains("att-two-1  | two says hi\n"), "{out}");
    assert!(err.contains("Attaching to att-one-1, att-two-1"), "{err}");
    assert!(
        err.contains("Gracefully stopping... (press Ctrl+C again to force)"),
        "{err}"
    );
    assert!(err.contains("Container att-two-1  Stopped"), "{err}");
    assert_eq!(status.code(), Some(130), "{err}");
    // Stopped, not removed (as compose); down removes them.
    let left = env.ok(&["ps", "-aq", "--filter", "status=exited"]);
    assert_eq!(left.lines().count(), 2, "{left}");
    compose_ok(&env, "att", &file, &["down"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// A rootfs with busybox and the host's `node` with its shared libraries, as an image.
fn node_image(env: &Env) {
    let root = env.path("node-rootfs");
    let node = tool("sh", &["-c", "command -v node"]);
    let node = PathBuf::from(node.trim());
    let node = std::fs::canonicalize(&node).unwrap();
    for d in ["bin", "usr/local/bin", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "cat", "ls", "sleep", "echo", "mkdir"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::copy(&node, root.join("usr/local/bin/node")).unwrap();
    let libs = tool("ldd", &[node.to_str().unwrap()]);
    for l in libs.lines() {
        // "libx.so => /lib/x86_64-linux-gnu/libx.so (0x...)" or "/lib64/ld-linux... (0x...)"
        let path = l
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            let dest = root.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(std::fs::canonicalize(p).unwrap(), &dest).unwrap();
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let tar = env.path("node.tar");
    tool(
        "tar",
        &[
            "--owner=0",
            "--group=0",
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    env.ok(&[
        "import",
        "--change",
        "ENV PATH=/usr/local/bin:/bin",
        tar.to_str().unwrap(),
        "node:local",
    ]);
}

/// The tutorials' file: one Dockerfile's `development` and `production` targets as two
/// services; the development one bind-mounts the source and `node --watch` reloads a
/// change; the production one runs under `deploy.resources.limits` (its cgroup says 512M
/// and half a CPU).
#[test]
fn tutorial_dev_and_prod_targets() {
    strata_tests::require!(Root, Busybox, Node);
    let env = setup();
    node_image(&env);
    let dir = env.path("tutorial");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM node:local AS base\nWORKDIR /app\nCOPY package.json ./\n\
         FROM base AS development\nCMD [\"node\", \"--watch\", \"server.js\"]\n\
         FROM base AS production\nCOPY server.js ./\nCMD [\"node\", \"server.js\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("package.json"), "{\"name\": \"app\"}\n").unwrap();
    let server = |v: &str| {
        format!(
            "require('http').createServer((q, r) => r.end('{v} ' + process.env.NODE_ENV + '\\n')).listen(3000);\n"
        )
    };
    std::fs::write(dir.join("server.js"), server("v1")).unwrap();
    let (dev, prod) = (free_port(), free_port());
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            r#"version: "3.8"
services:
  app-dev:
    build: {{ context: ., target: development }}
    volumes: [ ".:/app", "/app/node_modules" ]
    environment: [ NODE_ENV=development ]
    ports: [ "127.0.0.1:{dev}:3000" ]
  app-prod:
    build: {{ context: ., target: production }}
    environment: [ NODE_ENV=production ]
    ports: [ "127.0.0.1:{prod}:3000" ]
    deploy: {{ resources: {{ limits: {{ cpus: "0.5", memory: 512M }} }} }}
"#
        ),
    )
    .unwrap();
    let o = compose(&env, "tut", &file, &["up", "-d", "--build"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("the attribute `version` is obsolete"), "{err}");
    wait_body(dev, "v1 development\n");
    wait_body(prod, "v1 production\n");
    // A source change on the host: the development server reloads it, production keeps its
    // copy.
    std::fs::write(dir.join("server.js"), server("v2")).unwrap();
    wait_body(dev, "v2 development\n");
    assert_eq!(get(prod).as_deref(), Some("v1 production\n"));
    // The anonymous volume hides the bind mount's node_modules.
    assert!(!dir.join("node_modules").join("x").exists());
    // The production container's limits, in docker's terms and in its cgroup.
    let id = env
        .ok(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            "label=com.docker.compose.service=app-prod",
        ])
        .trim()
        .to_string();
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
            &id
        ])
        .trim(),
        "536870912 500000000"
    );
    let root = Path::new("/sys/fs/cgroup");
    let (mem, cpu) = if root.join("cgroup.controllers").is_file() {
        let d = root.join("strata").join(&id);
        (d.join("memory.max"), d.join("cpu.max"))
    } else {
        (
            root.join("memory/strata")
                .join(&id)
                .join("memory.limit_in_bytes"),
            root.join("cpu/strata").join(&id).join("cpu.cfs_quota_us"),
        )
    };
    assert_eq!(std::fs::read_to_string(&mem).unwrap().trim(), "536870912");
    let quota = std::fs::read_to_string(&cpu).unwrap();
    assert!(quota.starts_with("50000"), "{quota}");
    compose_ok(&env, "tut", &file, &["down", "-v"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// Bad input: nothing is created, and the error names what is wrong.
#[test]
fn bad_input_starts_nothing() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let dir = env.path("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("compose.yaml");
    let cases = [
        (
            "services:\n  a:\n    image: busybox:local\n    depends_on: [b]\n  b:\n    image: busybox:local\n    depends_on: [a]\n",
            "cycle",
        ),
        (
            "services:\n  a:\n    image: busybox:local\n    privileged: true\n",
            "services.a.privileged: not supported by strata compose yet",
        ),
        (
            "services:\n  a:\n    image: busybox:local\n    platform: linux/\n",
            "services.a.platform: invalid platform \"linux/\": expected OS/ARCH[/VARIANT]",
        ),
        (
            "services:\n  a:\n    image: busybox:local\n    read_only: true\n",
            "services.a.read_only: not supported by strata compose yet",
        ),
        (
            "services:\n  a:\n    image: busybox:local\n    comand: [\"true\"]\n",
            "compose.yaml:4:5: services.a.comand: additional property not allowed",
        ),
        (
            "services:\n  a:\n    image: busybox:local\n    environment:\n      K: ${STRATA_TEST_UNSET_VAR:?must be set}\n",
            "compose.yaml:5:10: services.a.environment.K: required variable STRATA_TEST_UNSET_VAR is missing a value: must be set",
        ),
        (
            "services:\n  a:\n    image: busybox:local\n    ports: 80\n",
            "compose.yaml:4:12: services.a.ports",
        ),
        (
            "services:\n  a:\n    image: busybox:local\n    command: [\"true\"]\n  b:\n    image: no-such-image-anywhere.invalid/x:1\n    depends_on: [a]\n",
            "no-such-image-anywhere.invalid",
        ),
    ];
    // A port in use on the host.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let in_use = format!(
        "services:\n  a:\n    image: busybox:local\n    command: [\"sleep\", \"100\"]\n  b:\n    image: busybox:local\n    ports: [\"127.0.0.1:{port}:80\"]\n    depends_on: [a]\n"
    );
    let want_port = format!(
        "compose.yaml:7:13: services.b.ports[0]: Bind for 127.0.0.1:{port} failed: port is already allocated"
    );
    let cases: Vec<(&str, &str)> = cases
        .into_iter()
        .chain([(in_use.as_str(), want_port.as_str())])
        .collect();
    for (text, want) in cases {
        std::fs::write(&file, text).unwrap();
        let o = compose(&env, "bad", &file, &["up", "-d"]);
        assert_eq!(o.status.code(), Some(1), "{text}\n{}", stderr(&o));
        assert!(stderr(&o).contains(want), "{text}\n{}", stderr(&o));
        assert_eq!(env.ok(&["ps", "-aq"]), "", "{text}");
        assert_eq!(env.ok(&["network", "ls", "-q"]), "", "{text}");
    }
}

/// File secrets: a build secret for `RUN --mount=type=secret` and a service secret at
/// /run/secrets/NAME (read-only); `compose run --rm` runs a one-off container of the service
/// with a command of its own and leaves nothing.
#[test]
fn secrets_and_one_off_run() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let dir = env.path("sec");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token.txt"), "s3cret").unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:local\nRUN --mount=type=secret,id=token busybox wc -c < /run/secrets/token > /built\n",
    )
    .unwrap();
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        r#"services:
  app:
    build:
      context: .
      secrets: [token]
    secrets: [token]
    command: ["cat", "/built", "/run/secrets/token"]
secrets:
  token:
    file: ./token.txt
"#,
    )
    .unwrap();
    compose_ok(&env, "sec", &file, &["build", "-q"]);
    let out = compose_ok(
        &env,
        "sec",
        &file,
        &[
            "run",
            "--rm",
            "-T",
            "app",
            "sh",
            "-c",
            "cat /built /run/secrets/token; echo; echo x > /run/secrets/token || echo read-only",
        ],
    );
    assert_eq!(out, "6\ns3cret\nread-only\n");
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    // The secret is in no layer of the image.
    let tar = env.path("app.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "sec-app"]);
    let bytes = std::fs::read(&tar).unwrap();
    assert!(
        !bytes.windows(6).any(|w| w == b"s3cret"),
        "the secret leaked"
    );
    compose_ok(&env, "sec", &file, &["down"]);
}

/// `deploy.replicas`, `logs` by service with prefixes, `stop`/`start`/`restart`/`rm`,
/// `ps -a/--services/--format json`, `images`, and a smaller scale on the next `up`.
#[test]
fn replicas_and_lifecycle_commands() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let dir = env.path("life");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("compose.yaml");
    let text = |n: u32| {
        format!(
            "services:\n  app:\n    image: busybox:local\n    init: true\n    command: [\"sh\", \"-c\", \"echo hello from $$HOSTNAME; exec sleep 1000\"]\n    hostname: box\n    deploy: {{ replicas: {n} }}\n"
        )
    };
    std::fs::write(&file, text(2)).unwrap();
    compose_ok(&env, "life", &file, &["up", "-d"]);
    let running = || {
        let out = compose_ok(&env, "life", &file, &["ps", "--format", "json"]);
        let mut names: Vec<String> = out
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["Service"], "app");
                v["Name"].as_str().unwrap().to_string()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(running(), ["life-app-1", "life-app-2"]);
    assert_eq!(
        compose_ok(&env, "life", &file, &["ps", "--services"]),
        "app\n"
    );
    eventually("both to log", || {
        compose_ok(&env, "life", &file, &["logs", "app"])
            .lines()
            .count()
            == 2
    });
    let logs = compose_ok(&env, "life", &file, &["logs", "app"]);
    assert!(logs.contains("life-app-1  | hello from box\n"), "{logs}");
    assert!(logs.contains("life-app-2  | hello from box\n"), "{logs}");
    let bare = compose_ok(&env, "life", &file, &["logs", "--no-log-prefix"]);
    assert_eq!(bare, "hello from box\nhello from box\n");
    compose_ok(&env, "life", &file, &["stop", "-t", "1"]);
    assert!(running().is_empty());
    let all = compose_ok(&env, "life", &file, &["ps", "-a"]);
    assert_eq!(all.matches("Exited").count(), 2, "{all}");
    compose_ok(&env, "life", &file, &["start"]);
    assert_eq!(running(), ["life-app-1", "life-app-2"]);
    compose_ok(&env, "life", &file, &["restart", "-t", "1"]);
    assert_eq!(running(), ["life-app-1", "life-app-2"]);
    let images = compose_ok(&env, "life", &file, &["images"]);
    assert!(images.starts_with("CONTAINER"), "{images}");
    assert!(
        images.contains("life-app-1") && images.contains("busybox"),
        "{images}"
    );
    // One replica now: the second goes, the first is kept (same configuration).
    std::fs::write(&file, text(1)).unwrap();
    let o = compose(&env, "life", &file, &["up", "-d"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Container life-app-2  Removed"), "{err}");
    assert!(err.contains("Container life-app-1  Running"), "{err}");
    assert_eq!(running(), ["life-app-1"]);
    // rm refuses nothing running without -s; with -s it stops and removes.
    let o = compose(&env, "life", &file, &["rm", "-f"]);
    assert!(
        stderr(&o).contains("No stopped containers"),
        "{}",
        stderr(&o)
    );
    compose_ok(&env, "life", &file, &["rm", "-f", "-s"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    compose_ok(&env, "life", &file, &["down"]);
}

/// The service-level limits of the older file format (`mem_limit`, `cpus`, `pids_limit`)
/// reach the container as `deploy.resources.limits` do.
#[test]
fn service_level_limits() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let dir = env.path("lim");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  a:\n    image: busybox:local\n    init: true\n    command: [\"sleep\", \"100\"]\n    mem_limit: 64m\n    cpus: 0.25\n    pids_limit: 50\n    platform: linux/amd64\n",
    )
    .unwrap();
    compose_ok(&env, "lim", &file, &["up", "-d"]);
    let out = env.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}",
        "lim-a-1",
    ]);
    assert_eq!(out.trim(), "67108864 250000000 50");
    compose_ok(&env, "lim", &file, &["down", "-t", "1"]);
}
