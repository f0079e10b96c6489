//! `strata pull/push/login/logout` against real registries: each test starts its own
//! Debian `docker-registry` on a free loopback port (killed by a Drop guard), and checks the
//! results with skopeo and Docker 20.10 (dockerd started by scripts/peers.sh).

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{busybox_tar, free_port, tool, Env};
use serde_json::Value;

const DOCKER: &str = "/usr/bin/docker";

/// A `docker-registry` process with its own storage, killed on drop.
pub(crate) struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub(crate) port: u16,
}

impl Registry {
    pub(crate) fn start() -> Registry {
        Registry::start_with("")
    }

    /// `auth` is a YAML fragment placed at the top level of the config.
    fn start_with(auth: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut r = Registry {
            child: None,
            dir,
            port,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("/usr/bin/docker-registry (Debian package docker-registry; scripts/peers.sh installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "docker-registry exited ({st}):\n{}",
                    std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "docker-registry did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps a blob's bytes.
    fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// strata with a private docker config directory.
pub(crate) fn strata(env: &Env, args: &[&str]) -> Output {
    env.cmd()
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .env_remove("STRATA_INSECURE_REGISTRIES")
        .env_remove("STRATA_REGISTRY_MIRRORS")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run strata")
}

pub(crate) fn ok(env: &Env, args: &[&str]) -> String {
    let o = strata(env, args);
    assert!(
        o.status.success(),
        "strata {args:?} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(env: &Env, args: &[&str]) -> String {
    let o = strata(env, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "strata {args:?} should fail:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stderr).unwrap()
}

fn inspect(env: &Env, name: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(env, &["inspect", name])).unwrap();
    v[0].clone()
}

/// The `digest: sha256:...` of push's last line.
fn pushed_digest(out: &str) -> String {
    let last = out.lines().last().unwrap_or("");
    let d = last
        .split("digest: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no digest in push output:\n{out}"));
    assert!(last.contains(" size: "), "{out}");
    d.to_string()
}

fn pulled_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no Digest line in pull output:\n{out}"))
        .to_string()
}

/// A two-layer image: busybox imported, plus a COPY of `extra` bytes.
fn two_layer_image(env: &Env, name: &str, extra: &[u8]) {
    let tar = env.path("bb.tar");
    if !tar.exists() {
        busybox_tar(&tar);
    }
    let base = format!("{name}-base");
    ok(env, &["import", tar.to_str().unwrap(), &base]);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("extra.bin"), extra).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY extra.bin /extra.bin\nCMD [\"/bin/sh\"]\n"),
    )
    .unwrap();
    ok(env, &["build", "-q", "-t", name, ctx.to_str().unwrap()]);
}

/// Incompressible bytes (xorshift64).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn no_leftovers(env: &Env) {
    let tmp = env.root().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temp files left in the store: {left:?}");
    let out = ok(env, &["fsck"]);
    assert!(out.contains("is consistent"), "{out}");
}

/// Every blob file in the store hashes to its name.
fn blobs_intact(env: &Env) {
    let dir = env.root().join("blobs/sha256");
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let out = tool("sha256sum", &[e.path().to_str().unwrap()]);
        assert_eq!(
            out.split(' ').next().unwrap(),
            e.file_name().to_str().unwrap(),
            "blob {} is not what its name says",
            e.path().display()
        );
    }
}

#[test]
fn push_then_pull_into_a_fresh_store_gives_identical_digests() {
    strata_tests::require!(Root, Busybox, Registry);
    let reg = Registry::start();
    let a = Env::new();
    let name = format!("{}/strata/two:1", reg.host());
    two_layer_image(&a, &name, &vec![7u8; 3 << 20]);
    let src = inspect(&a, &name);

    let out = ok(&a, &["push", &name]);
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/strata/two]\n",
            reg.host()
        )),
        "{out}"
    );
    assert_eq!(out.matches(": Pushed").count(), 2, "{out}");
    let digest = pushed_digest(&out);
    assert!(out
        .lines()
        .last()
        .unwrap()
        .starts_with("1: digest: sha256:"));

    let b = Env::new();
    let out = ok(&b, &["pull", &name]);
    assert!(out.starts_with("1: Pulling from strata/two\n"), "{out}");
    assert_eq!(pulled_digest(&out), digest, "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{out}"
    );
    assert!(out.ends_with(&format!("{name}\n")), "{out}");
    let got = inspect(&b, &name);
    assert_eq!(got["Id"], src["Id"], "same config digest");
    assert_eq!(got["RootFS"], src["RootFS"], "same diffIDs");
    assert_eq!(
        got["RepoDigests"][0],
        format!("{}/strata/two@{digest}", reg.host())
    );
    no_leftovers(&b);
    blobs_intact(&b);

    // Pulled again: nothing is downloaded.
    let again = ok(&b, &["pull", &name]);
    assert_eq!(again.matches("Already exists").count(), 2, "{again}");
    assert!(again.contains("Status: Image is up to date for"), "{again}");
    // By digest.
    let by_digest = format!("{}/strata/two@{digest}", reg.host());
    let out = ok(&b, &["pull", "-q", &by_digest]);
    assert_eq!(out, format!("{by_digest}\n"));

    // The pulled image pushed elsewhere keeps its manifest digest (its compressed layers
    // were kept as they came), and the layers are mounted instead of uploaded.
    let other = format!("{}/copy/two:x", reg.host());
    ok(&b, &["tag", &name, &other]);
    let out = ok(&b, &["push", &other]);
    assert_eq!(pushed_digest(&out), digest, "{out}");
    assert_eq!(
        out.matches("Mounted from strata/two").count(),
        2,
        "layers mounted: {out}"
    );
    // A second push only finds what is there.
    let out = ok(&a, &["push", &name]);
    assert_eq!(out.matches("Layer already exists").count(), 2, "{out}");
    assert_eq!(pushed_digest(&out), digest);
}

#[test]
fn skopeo_reads_what_strata_pushed() {
    strata_tests::require!(Root, Busybox, Skopeo, Registry);
    let reg = Registry::start();
    let env = Env::new();
    let name = format!("{}/strata/sk:1", reg.host());
    two_layer_image(&env, &name, b"hello skopeo\n");
    let digest = pushed_digest(&ok(&env, &["push", &name]));
    let src = inspect(&env, &name);

    let info: Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{name}")],
    ))
    .unwrap();
    assert_eq!(info["Digest"], digest);
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    let cfg: Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
    ))
    .unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"], src["RootFS"]["Layers"]);

    let layout = env.path("oci");
    tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}:one", layout.display()),
        ],
    );
    // skopeo wrote the very manifest the registry holds.
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);
}

#[test]
fn strata_pulls_what_skopeo_pushed_gzip_zstd_and_by_digest() {
    strata_tests::require!(Root, Busybox, Skopeo, Registry);
    let reg = Registry::start();
    let env = Env::new();
    two_layer_image(&env, "src/img:1", b"pushed by skopeo\n");
    let src = inspect(&env, "src/img:1");
    let archive = env.path("img.tar");
    ok(
        &env,
        &["save", "-o", archive.to_str().unwrap(), "src/img:1"],
    );

    // zstd first: once skopeo knows a gzip form of a layer in this registry it reuses it.
    for (tag, extra) in [
        // OCI manifests: Docker schema2 has no zstd media type.
        (
            "zstd",
            vec!["--format", "oci", "--dest-compress-format", "zstd"],
        ),
        ("gzip", vec![]),
    ] {
        // One repository each: skopeo would reuse the gzip blobs already in a repository.
        let dest = format!("{}/skopeo/img-{tag}:{tag}", reg.host());
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        args.extend(extra.iter().copied());
        let from = format!("docker-archive:{}", archive.display());
        let to = format!("docker://{dest}");
        args.push(&from);
        args.push(&to);
        tool("skopeo", &args);
        let info: Value =
            serde_json::from_str(&tool("skopeo", &["inspect", "--tls-verify=false", &to])).unwrap();
        let digest = info["Digest"].as_str().unwrap().to_string();
        let raw: Value = serde_json::from_str(&tool(
            "skopeo",
            &["inspect", "--raw", "--tls-verify=false", &to],
        ))
        .unwrap();
        // skopeo re-encodes the config when it converts to OCI (Go's encoder; timestamps
        // with trailing zeros in their nanoseconds come out shorter), so the image id to
        // expect is the one in the manifest it pushed.
        let config_digest = raw["config"]["digest"].as_str().unwrap().to_string();
        if tag == "gzip" {
            assert_eq!(config_digest, src["Id"].as_str().unwrap(), "no conversion");
        }
        if tag == "zstd" {
            assert!(
                raw["layers"][0]["mediaType"]
                    .as_str()
                    .unwrap()
                    .ends_with("+zstd"),
                "{raw}"
            );
        }

        let fresh = Env::new();
        let out = ok(&fresh, &["pull", &dest]);
        assert_eq!(pulled_digest(&out), digest, "{out}");
        let got = inspect(&fresh, &dest);
        assert_eq!(got["Id"], config_digest, "{tag}: the config skopeo pushed");
        assert_eq!(got["RootFS"], src["RootFS"]);
        no_leftovers(&fresh);
        blobs_intact(&fresh);
        // By digest, into another store.
        let by_digest = format!("{}/skopeo/img-{tag}@{digest}", reg.host());
        let other = Env::new();
        ok(&other, &["pull", &by_digest]);
        assert_eq!(inspect(&other, &by_digest)["Id"], config_digest);
        // Pushed back under another name: the same manifest (zstd layers stay zstd).
        let back = format!("{}/back/img:{tag}", reg.host());
        ok(&fresh, &["tag", &dest, &back]);
        assert_eq!(pushed_digest(&ok(&fresh, &["push", &back])), digest);
    }
}

/// A minimal HTTP/1.1 request to the registry (for pushing what neither strata nor skopeo
/// writes: an uncompressed layer, an image index).
fn http(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn sha256(bytes: &[u8]) -> String {
    use std::process::Stdio;
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = c.wait_with_output().unwrap();
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&out.stdout)
            .split(' ')
            .next()
            .unwrap()
    )
}

fn put_blob(port: u16, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let (st, text) = http(
        port,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        "application/octet-stream",
        b"",
    );
    assert_eq!(st, 202, "{text}");
    let loc = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .unwrap();
    let path = match loc.find("/v2/") {
        Some(i) => loc[i..].to_string(),
        None => loc,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let (st, text) = http(
        port,
        "PUT",
        &format!("{path}{sep}digest={d}"),
        "application/octet-stream",
        bytes,
    );
    assert_eq!(st, 201, "{text}");
    d
}

fn put_manifest(port: u16, repo: &str, reference: &str, media: &str, bytes: &[u8]) -> String {
    let (st, text) = http(
        port,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        media,
        bytes,
    );
    assert_eq!(st, 201, "{text}");
    sha256(bytes)
}

#[test]
fn uncompressed_layers_and_image_indexes() {
    strata_tests::require!(Root, Busybox, Registry);
    let reg = Registry::start();
    let env = Env::new();
    let tar = env.path("bb.tar");
    busybox_tar(&tar);
    let layer = std::fs::read(&tar).unwrap();
    let diff_id = put_blob(reg.port, "idx/img", &layer);
    let mk_config = |arch: &str| {
        serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "test"}]
        }))
        .unwrap()
    };
    let mut manifests = Vec::new();
    for arch in ["arm64", "amd64"] {
        let cfg = mk_config(arch);
        let cd = put_blob(reg.port, "idx/img", &cfg);
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": diff_id, "size": layer.len()}]
        }))
        .unwrap();
        let md = put_manifest(
            reg.port,
            "idx/img",
            arch,
            "application/vnd.docker.distribution.manifest.v2+json",
            &m,
        );
        manifests.push((arch, md, m.len(), sha256(&cfg)));
    }
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": manifests.iter().map(|(arch, d, size, _)| serde_json::json!({
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": d, "size": size,
            "platform": {"architecture": arch, "os": "linux"}
        })).collect::<Vec<_>>()
    }))
    .unwrap();
    let list_digest = put_manifest(
        reg.port,
        "idx/img",
        "multi",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        &list,
    );

    let name = format!("{}/idx/img:multi", reg.host());
    let out = ok(&env, &["pull", &name]);
    // docker prints the list's digest.
    assert_eq!(pulled_digest(&out), list_digest, "{out}");
    let got = inspect(&env, &name);
    assert_eq!(got["Architecture"], "amd64");
    assert_eq!(got["Id"], manifests[1].3, "the amd64 image was picked");
    assert_eq!(got["RootFS"]["Layers"][0], diff_id);
    let arm = Env::new();
    ok(&arm, &["pull", "--platform", "linux/arm64", &name]);
    assert_eq!(inspect(&arm, &name)["Id"], manifests[0].3);
    let err = fails(&arm, &["pull", "--platform", "linux/s390x", &name]);
    assert!(
        err.contains("no matching manifest for linux/s390x"),
        "{err}"
    );
    no_leftovers(&env);
    blobs_intact(&env);

    // Unknown tags and repositories are clear errors.
    let err = fails(&env, &["pull", &format!("{}/idx/img:nope", reg.host())]);
    assert!(err.contains("manifest unknown"), "{err}");
}

struct DockerCleanup(Vec<String>);
impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new(DOCKER).args(["rmi", "-f", n]).output();
        }
    }
}

#[test]
fn docker_pulls_and_runs_what_strata_pushed_and_strata_pulls_what_docker_pushed() {
    strata_tests::require!(Root, Busybox, Docker, Registry);
    let info = Command::new(DOCKER)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match &info {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "dockerd is not running or {DOCKER} is missing: run `bash scripts/peers.sh` \
             (CI's .ci/run does) -- this test needs Docker 20.10: {info:?}"
        ),
    }
    let reg = Registry::start();
    let env = Env::new();
    let name = format!("{}/strata/dk:1", reg.host());
    two_layer_image(&env, &name, b"made by strata\n");
    let src = inspect(&env, &name);
    let digest = pushed_digest(&ok(&env, &["push", &name]));

    let docker_name = format!("{}/fromdocker/bb:1", reg.host());
    let _c = DockerCleanup(vec![name.clone(), docker_name.clone()]);
    let out = tool(DOCKER, &["pull", &name]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    let run = tool(
        DOCKER,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &name,
            "cat",
            "/extra.bin",
        ],
    );
    assert_eq!(run, "made by strata\n");
    let id = tool(DOCKER, &["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(id.trim(), src["Id"].as_str().unwrap());

    // docker import + push: docker's own gzip and Docker schema2 media types.
    let tar = env.path("bb.tar");
    tool(DOCKER, &["import", tar.to_str().unwrap(), &docker_name]);
    let out = tool(DOCKER, &["push", &docker_name]);
    let docker_digest = out
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let docker_id = tool(
        DOCKER,
        &["image", "inspect", "--format", "{{.Id}}", &docker_name],
    );
    let fresh = Env::new();
    let out = ok(&fresh, &["pull", &docker_name]);
    assert_eq!(pulled_digest(&out), docker_digest);
    assert_eq!(
        inspect(&fresh, &docker_name)["Id"].as_str().unwrap(),
        docker_id.trim()
    );
    no_leftovers(&fresh);
    blobs_intact(&fresh);
    // And strata's store can run it.
    let run = ok(
        &fresh,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &docker_name,
            "echo",
            "ok",
        ],
    );
    assert_eq!(run, "ok\n");
}

fn htpasswd_line(user: &str, pass: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(pass, 5).unwrap())
}

#[test]
fn login_with_htpasswd_then_push_and_pull() {
    strata_tests::require!(Root, Busybox, Skopeo, Registry);
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, htpasswd_line("alice", "s3cret pass")).unwrap();
    let reg = Registry::start_with(&format!(
        "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
        htpasswd.display()
    ));
    let env = Env::new();
    let name = format!("{}/private/bb:1", reg.host());
    two_layer_image(&env, &name, b"secret\n");

    let err = fails(&env, &["push", &name]);
    assert!(
        err.contains("unauthorized: authentication required"),
        "{err}"
    );

    let wrong = fails(&env, &["login", "-u", "alice", "-p", "nope", &reg.host()]);
    assert!(
        wrong.contains("unauthorized: incorrect username or password"),
        "{wrong}"
    );
    assert!(!env.path("docker-config/config.json").exists());

    let mut c = env
        .cmd()
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .args(["login", "-u", "alice", "--password-stdin", &reg.host()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"s3cret pass\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Login Succeeded\n");
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(env.path("docker-config/config.json")).unwrap())
            .unwrap();
    // As docker stores it: base64("alice:s3cret pass").
    assert_eq!(cfg["auths"][reg.host()]["auth"], "YWxpY2U6czNjcmV0IHBhc3M=");

    let digest = pushed_digest(&ok(&env, &["push", &name]));
    // Another store with the same docker config pulls.
    let other = Env::new();
    std::fs::create_dir_all(other.path("docker-config")).unwrap();
    std::fs::copy(
        env.path("docker-config/config.json"),
        other.path("docker-config/config.json"),
    )
    .unwrap();
    assert_eq!(pulled_digest(&ok(&other, &["pull", &name])), digest);
    // skopeo agrees the image is there (with the same credentials).
    let info = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "alice:s3cret pass",
            &format!("docker://{name}"),
        ],
    );
    assert!(info.contains(&digest), "{info}");

    let out = ok(&other, &["logout", &reg.host()]);
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.host())
    );
    let err = fails(
        &other,
        &["pull", &format!("{}/private/bb:other", reg.host())],
    );
    assert!(err.contains("unauthorized"), "{err}");
}

#[test]
fn damaged_blobs_are_refused_and_nothing_half_written_stays() {
    strata_tests::require!(Root, Busybox, Skopeo, Registry);
    let reg = Registry::start();
    let env = Env::new();
    let name = format!("{}/fault/img:1", reg.host());
    // Incompressible content so the layer blob is big enough to damage in the middle.
    let noise = noise(2 << 20, 1);
    two_layer_image(&env, &name, &noise);
    ok(&env, &["push", &name]);
    let manifest: Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
    ))
    .unwrap();
    let big = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64().unwrap())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let data = reg.blob_data(&big);
    let good = std::fs::read(&data).unwrap();

    // 1. Bytes flipped in the middle: the digest does not match.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&data, &bad).unwrap();
    let fresh = Env::new();
    let err = fails(&fresh, &["pull", &name]);
    eprintln!("pull of a damaged blob:\n{err}");
    assert!(err.contains(&big), "names the blob: {err}");
    assert!(
        err.contains("digest mismatch") || err.contains("not a valid layer"),
        "{err}"
    );
    no_leftovers(&fresh);
    blobs_intact(&fresh);
    assert!(!fresh.root().join("blobs/sha256").join(&big[7..]).exists());
    let images = ok(&fresh, &["images", "-q"]);
    assert_eq!(images, "", "no image was tagged");

    // 2. Truncated.
    std::fs::write(&data, &good[..good.len() / 3]).unwrap();
    let err = fails(&fresh, &["pull", &name]);
    assert!(err.contains(&big), "{err}");
    no_leftovers(&fresh);
    blobs_intact(&fresh);

    // Fixed: the same pull now succeeds.
    std::fs::write(&data, &good).unwrap();
    ok(&fresh, &["pull", &name]);
    assert_eq!(inspect(&fresh, &name)["Id"], inspect(&env, &name)["Id"]);
    no_leftovers(&fresh);
    blobs_intact(&fresh);
}

/// Make the last close of `s` send a RST (SO_LINGER with a zero timeout).
fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket fd with a pointer to a live `linger` and its size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// A TCP proxy that forwards client → server at about `rate` bytes/s (so a push takes a
/// while), server → client at full speed. It lives as long as the test process.
/// Returns the port and a count of the bytes forwarded client → server.
fn slow_proxy(upstream: u16, rate: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(client) = c else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue; // upstream down: the client sees the connection closed
            };
            let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 << 10];
                let pause = Duration::from_secs_f64(buf.len() as f64 / rate as f64);
                loop {
                    match c1.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s1.write_all(&buf[..n]).is_err() {
                                // The server is gone: reset the client as the dead
                                // server's kernel would, rather than leave it writing
                                // into a closed window until TCP gives up.
                                reset_on_close(&c1);
                                break;
                            }
                            counter.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                            if n == buf.len() {
                                std::thread::sleep(pause);
                            }
                        }
                    }
                }
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            let (mut s2, mut c2) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, sent)
}

#[test]
fn registry_stopped_mid_push_then_push_again_after_restart() {
    strata_tests::require!(Root, Busybox, Registry);
    let mut reg = Registry::start();
    let (proxy, sent) = slow_proxy(reg.port, 2 << 20);
    let env = Env::new();
    let name = format!("127.0.0.1:{proxy}/slow/img:1");
    let noise = noise(6 << 20, 2);
    two_layer_image(&env, &name, &noise);
    // Compress once up front (kept in the store), so the push below is only the transfer.
    ok(
        &env,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            env.path("warm.tar").to_str().unwrap(),
            &name,
        ],
    );

    let child = env
        .cmd()
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .args(["push", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the registry once a good part of the layers is on its way (~7 MB in all).
    let t0 = Instant::now();
    while sent.load(std::sync::atomic::Ordering::SeqCst) < 2 << 20 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the push never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    reg.stop();
    let started = Instant::now();
    // Each line of the push's output with the time it came, so a slow failure shows where
    // the time went.
    let mut child = child;
    let (out, errs) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let timed = |r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut lines = String::new();
            for l in std::io::BufReader::new(r).lines() {
                let Ok(l) = l else { break };
                lines.push_str(&format!("[{:6.2}s] {l}\n", started.elapsed().as_secs_f64()));
            }
            lines
        })
    };
    let (out, errs) = (timed(Box::new(out)), timed(Box::new(errs)));
    let status = child.wait().unwrap();
    let exited = started.elapsed();
    let (out, err) = (out.join().unwrap(), errs.join().unwrap());
    eprintln!("push while the registry stopped (exit after {exited:?}):\n{out}{err}");
    let o = Output {
        status,
        stdout: out.into_bytes(),
        stderr: err.clone().into_bytes(),
    };
    assert_eq!(o.status.code(), Some(1), "push must fail: {o:?}");
    assert!(
        err.contains(&format!("pushing {name}")) && err.contains("blob sha256:"),
        "clear error naming the image and blob: {err}"
    );
    assert!(
        exited < Duration::from_secs(30),
        "fails in bounded time: {exited:?}"
    );

    reg.spawn();
    let out = ok(&env, &["push", &name]);
    let digest = pushed_digest(&out);
    let fresh = Env::new();
    assert_eq!(pulled_digest(&ok(&fresh, &["pull", &name])), digest);
    assert_eq!(inspect(&fresh, &name)["Id"], inspect(&env, &name)["Id"]);
    let _ = reg.path("registry.log");
}

#[test]
fn unreachable_registry_fails_fast_naming_image_and_registry() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let port = free_port(); // nothing listens there
    let name = format!("127.0.0.1:{port}/nobody/img:1");
    let t = Instant::now();
    let err = fails(&env, &["pull", &name]);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert!(err.contains(&format!("pulling {name}")), "{err}");
    assert!(
        err.contains(&format!("cannot reach registry 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/v2/")),
        "{err}"
    );
    no_leftovers(&env);
}

#[test]
fn insecure_opt_in_and_bad_input() {
    strata_tests::require!(Root, Busybox, Registry);
    let reg = Registry::start();
    let env = Env::new();
    // `localhost` is as insecure-allowed as 127.0.0.1.
    let name = format!("localhost:{}/lh/img:1", reg.port);
    let tar = env.path("bb.tar");
    busybox_tar(&tar);
    ok(&env, &["import", tar.to_str().unwrap(), &name]);
    let d = pushed_digest(&ok(&env, &["push", &name]));
    let fresh = Env::new();
    assert_eq!(pulled_digest(&ok(&fresh, &["pull", &name])), d);

    let err = fails(&env, &["pull", "Not/A:Valid@ref"]);
    assert!(err.contains("invalid reference format"), "{err}");
    let err = fails(
        &env,
        &[
            "push",
            &format!("{}/x@sha256:{}", reg.host(), "a".repeat(64)),
        ],
    );
    assert!(err.contains("digest reference"), "{err}");
    // (`linux` alone is containerd's linux on the host's architecture: valid.)
    let err = fails(&env, &["pull", "--platform", "linux/", &name]);
    assert!(err.contains("invalid platform"), "{err}");
    let p: &Path = &env.path("docker-config");
    assert!(!p.join("config.json").exists());
}

/// A token server for docker-registry's `auth: token` mode: checks basic credentials and
/// grants what is asked, as an RS256 JWT carrying its certificate in `x5c` (signed with the
/// `openssl` CLI). Counts the tokens it issued.
struct TokenServer {
    port: u16,
    issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unquery(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

impl TokenServer {
    fn start(dir: &Path, user: &str, pass: &str) -> TokenServer {
        use base64::Engine as _;
        tool(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=strata-test-token",
                "-keyout",
                dir.join("key.pem").to_str().unwrap(),
                "-out",
                dir.join("cert.pem").to_str().unwrap(),
            ],
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.join("cert.pem"))
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let key = dir.join("key.pem");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = issued.clone();
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let target = text.split(' ').nth(1).unwrap_or("").to_string();
                let authorized = text.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == want
                    })
                });
                if !authorized {
                    let _ = c.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let query = target.split_once('?').map(|x| x.1).unwrap_or("");
                let mut access = Vec::new();
                for kv in query.split('&') {
                    if let Some(v) = kv.strip_prefix("scope=") {
                        let v = unquery(v);
                        let parts: Vec<&str> = v.split(':').collect();
                        if parts.len() == 3 {
                            access.push(serde_json::json!({
                                "type": parts[0], "name": parts[1],
                                "actions": parts[2].split(',').collect::<Vec<_>>()
                            }));
                        }
                    }
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": "strata-test-issuer", "sub": "alice", "aud": "strata-test",
                    "exp": now + 300, "nbf": now - 10, "iat": now,
                    "jti": format!("t{}", counter.load(std::sync::atomic::Ordering::SeqCst)),
                    "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let mut p = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                p.stdin
                    .take()
                    .unwrap()
                    .write_all(signing_input.as_bytes())
                    .unwrap();
                let sig = p.wait_with_output().unwrap().stdout;
                let jwt = format!("{signing_input}.{}", b64url(&sig));
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = serde_json::json!({"token": jwt, "expires_in": 300}).to_string();
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer { port, issued }
    }
}

#[test]
fn bearer_token_auth_login_push_pull() {
    strata_tests::require!(Root, Busybox, Registry);
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path(), "alice", "tok3n-pass");
    let reg = Registry::start_with(&format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: strata-test\n    issuer: strata-test-issuer\n    rootcertbundle: {}\n",
        ts.port,
        dir.path().join("cert.pem").display()
    ));
    let env = Env::new();
    let name = format!("{}/tok/img:1", reg.host());
    two_layer_image(&env, &name, b"behind a token\n");

    let err = fails(&env, &["push", &name]);
    assert!(
        err.contains("unauthorized: authentication required"),
        "{err}"
    );
    let err = fails(&env, &["login", "-u", "alice", "-p", "wrong", &reg.host()]);
    assert!(
        err.contains("unauthorized: incorrect username or password"),
        "{err}"
    );
    let out = ok(
        &env,
        &["login", "-u", "alice", "-p", "tok3n-pass", &reg.host()],
    );
    assert_eq!(out, "Login Succeeded\n");

    let before = ts.issued.load(std::sync::atomic::Ordering::SeqCst);
    let digest = pushed_digest(&ok(&env, &["push", &name]));
    let used = ts.issued.load(std::sync::atomic::Ordering::SeqCst) - before;
    // One token for the repository's scope, reused by every blob request.
    assert_eq!(used, 1, "tokens are cached per scope");

    // A mount across repositories asks for both scopes in one token.
    let other = format!("{}/tok/other:1", reg.host());
    ok(&env, &["tag", &name, &other]);
    let out = ok(&env, &["push", &other]);
    assert_eq!(out.matches("Mounted from tok/img").count(), 2, "{out}");

    let fresh = Env::new();
    std::fs::create_dir_all(fresh.path("docker-config")).unwrap();
    std::fs::copy(
        env.path("docker-config/config.json"),
        fresh.path("docker-config/config.json"),
    )
    .unwrap();
    assert_eq!(pulled_digest(&ok(&fresh, &["pull", &name])), digest);
    assert_eq!(inspect(&fresh, &name)["Id"], inspect(&env, &name)["Id"]);
    no_leftovers(&fresh);
}

#[test]
fn docker_hub_pulls_go_through_the_mirrors_in_order() {
    strata_tests::require!(Root, Busybox, Registry);
    let mirror = Registry::start();
    let env = Env::new();
    let tar = env.path("bb.tar");
    busybox_tar(&tar);
    let on_mirror = format!("{}/library/mirrored:1", mirror.host());
    ok(&env, &["import", tar.to_str().unwrap(), &on_mirror]);
    let digest = pushed_digest(&ok(&env, &["push", &on_mirror]));

    let fresh = Env::new();
    let dead = free_port();
    let o = fresh
        .cmd()
        .env("DOCKER_CONFIG", fresh.path("docker-config"))
        .env(
            "STRATA_REGISTRY_MIRRORS",
            format!("http://127.0.0.1:{dead}, http://{}", mirror.host()),
        )
        .args(["pull", "mirrored:1"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(
        out.contains(&format!("mirror http://127.0.0.1:{dead} failed")),
        "the dead mirror was tried first: {out}"
    );
    assert_eq!(pulled_digest(&out), digest);
    assert!(out.ends_with("docker.io/library/mirrored:1\n"), "{out}");
    let got = inspect(&fresh, "mirrored:1");
    assert_eq!(got["Id"], inspect(&env, &on_mirror)["Id"]);
    assert_eq!(got["RepoTags"][0], "mirrored:1");
    assert_eq!(got["RepoDigests"][0], format!("mirrored@{digest}"));

    // A build's `FROM mirrored:1` (Docker Hub) resolves through the mirror too.
    let builder = Env::new();
    let ctx = builder.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM mirrored:1\nRUN echo built > /built\n",
    )
    .unwrap();
    let o = builder
        .cmd()
        .env("DOCKER_CONFIG", builder.path("docker-config"))
        .env(
            "STRATA_REGISTRY_MIRRORS",
            format!("http://{}", mirror.host()),
        )
        .args([
            "build",
            "--progress=plain",
            "-t",
            "built:1",
            ctx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("#0 pulled docker.io/library/mirrored:1"),
        "{err}"
    );
    assert_eq!(
        inspect(&builder, "mirrored:1")["Id"],
        inspect(&env, &on_mirror)["Id"]
    );
}

/// `compose push` sends the built services' images to their registry; `compose pull` on
/// another store fetches the image-only services' images (and `up` then runs them).
#[test]
fn compose_push_and_pull() {
    strata_tests::require!(Root, Busybox, Registry);
    let reg = Registry::start();
    let port = reg.port;
    let a = Env::new();
    let tar = a.path("busybox.tar");
    busybox_tar(&tar);
    ok(&a, &["import", tar.to_str().unwrap(), "busybox:local"]);
    let dir = a.path("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:local\nRUN echo built > /marker\n",
    )
    .unwrap();
    let image = format!("127.0.0.1:{port}/proj/app:1");
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        format!("services:\n  app:\n    build: .\n    image: {image}\n    command: [\"cat\", \"/marker\"]\n"),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    ok(&a, &["compose", "-f", f, "build"]);
    let out = strata(&a, &["compose", "-f", f, "push"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("Image {image}  Pushed")), "{err}");
    // Store B: only the image (no build section).
    let b = Env::new();
    let dir_b = b.path("proj");
    std::fs::create_dir_all(&dir_b).unwrap();
    let file_b = dir_b.join("compose.yaml");
    std::fs::write(
        &file_b,
        format!("services:\n  app:\n    image: {image}\n    command: [\"cat\", \"/marker\"]\n"),
    )
    .unwrap();
    let fb = file_b.to_str().unwrap();
    let out = strata(&b, &["compose", "-f", fb, "pull"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("Image {image}  Pulled")), "{err}");
    assert_eq!(inspect(&b, &image)["Id"], inspect(&a, &image)["Id"]);
    let out = ok(&b, &["compose", "-f", fb, "run", "--rm", "-T", "app"]);
    assert_eq!(out, "built\n");
    ok(&b, &["compose", "-f", fb, "down"]);
}

/// `--cache-to type=inline`: the pushed image carries its cache in its config, so an empty
/// store given `--cache-from IMAGE` re-runs only the steps whose layers the final image
/// lacks (mode=min, as BuildKit's inline cache) and makes the same layers; a store that has
/// pulled the image uses it without the registry; an image without an inline cache is
/// said and ignored.
#[test]
fn inline_cache_travels_in_the_image() {
    strata_tests::require!(Root, Busybox, Registry);
    let mut reg = Registry::start();
    let port = reg.port;
    let a = Env::new();
    let tar = a.path("busybox.tar");
    busybox_tar(&tar);
    let base = format!("127.0.0.1:{port}/base/busybox:1");
    ok(&a, &["import", tar.to_str().unwrap(), &base]);
    ok(&a, &["push", &base]);
    let counter = crate::common::Counter::start();
    let ctx = a.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS build\nCOPY a.txt /a.txt\nRUN {} && cp /a.txt /out\n\
FROM {base}\nCOPY --from=build /out /out\nRUN {} && echo done > /done\n",
            counter.hit("build"),
            counter.hit("final")
        ),
    )
    .unwrap();
    let app = format!("127.0.0.1:{port}/app/inline:1");
    let ctx_s = ctx.to_str().unwrap();
    let build = |env: &Env, from: &str| {
        let out = strata(
            env,
            &[
                "build",
                "--network",
                "host",
                "--progress=plain",
                "--cache-to",
                "type=inline",
                "--cache-from",
                from,
                "-t",
                &app,
                ctx_s,
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    };
    // Store A: nothing cached anywhere (the base has no inline cache: said, not an error).
    let err = build(&a, &base);
    assert!(
        err.contains("the image has no inline cache (build it with --cache-to type=inline)"),
        "{err}"
    );
    assert_eq!(counter.take().len(), 2);
    ok(&a, &["push", &app]);
    let layers_a = inspect(&a, &app)["RootFS"].clone();
    assert_eq!(
        layers_a["Layers"].as_array().map(Vec::len),
        Some(3),
        "{layers_a}"
    );
    // The records are in the image config under strata's key (docker save's config file).
    let saved = a.path("saved");
    std::fs::create_dir_all(&saved).unwrap();
    let archive = a.path("app.tar");
    ok(&a, &["save", "-o", archive.to_str().unwrap(), &app]);
    tool(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            saved.to_str().unwrap(),
        ],
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(saved.join("manifest.json")).unwrap()).unwrap();
    let config: Value = serde_json::from_slice(
        &std::fs::read(saved.join(manifest[0]["Config"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let inline = &config["strata.buildcache.v1"];
    assert_eq!(inline["version"], 1, "{config}");
    // The final stage's four steps (FROM's base layer has no step of this build: the base
    // image's own layer), COPY --from and RUN with layers.
    let records = inline["records"].as_array().unwrap();
    assert!(records.len() >= 2, "{inline}");
    assert_eq!(inline["layers"], serde_json::json!([]), "{inline}");
    // Store B is empty: the build stage runs (mode=min keeps only the final image's
    // steps), the final stage is served by the image's inline records.
    let b = Env::new();
    let err = build(&b, &app);
    assert!(err.contains(&format!("#0 pulled {base}")), "{err}");
    let hits = counter.take();
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        ["build"],
        "{hits:?}"
    );
    assert!(
        err.contains("fetched 2 layers from the imported cache"),
        "{err}"
    );
    // The same layers; the config differs in the memo of the re-run build stage's layers.
    assert_eq!(inspect(&b, &app)["RootFS"], layers_a, "the same layers");
    // Store C pulls the image, then builds with the registry gone: the store's copy serves.
    let c = Env::new();
    ok(&c, &["pull", &base]);
    ok(&c, &["pull", &app]);
    reg.stop();
    let err = build(&c, &app);
    let hits = counter.take();
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        ["build"],
        "{hits:?}\n{err}"
    );
    assert_eq!(inspect(&c, &app)["RootFS"], layers_a);
    ok(&c, &["fsck"]);
}

/// Builds and registries: a base image only in the registry is pulled for FROM, `--push`
/// sends the result, and a `type=registry` cache built on store A lets an empty store B
/// rebuild with every step CACHED (RUNs counted on 127.0.0.1), fetching only the base image
/// and the final image's own layers.
#[test]
fn builds_pull_bases_push_and_share_a_registry_cache() {
    strata_tests::require!(Root, Busybox, Registry);
    let reg = Registry::start();
    let port = reg.port;
    let a = Env::new();
    let b = Env::new();
    let tar = a.path("busybox.tar");
    busybox_tar(&tar);
    let base = format!("127.0.0.1:{port}/base/busybox:1");
    ok(&a, &["import", tar.to_str().unwrap(), &base]);
    ok(&a, &["push", &base]);
    let counter = crate::common::Counter::start();
    let ctx = a.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS build\nCOPY a.txt /a.txt\nRUN {} && head -c 300000 /dev/urandom > /big && cp /a.txt /out\n\
FROM {base}\nCOPY --from=build /out /out\nRUN {} && echo done > /done\n",
            counter.hit("build"),
            counter.hit("final")
        ),
    )
    .unwrap();
    let cache = format!("127.0.0.1:{port}/cache/app:buildcache");
    let app = format!("127.0.0.1:{port}/app/app:1");
    let ctx_s = ctx.to_str().unwrap();
    let to = format!("type=registry,ref={cache},mode=max");
    let out = strata(
        &a,
        &[
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--cache-to",
            &to,
            "--push",
            "-t",
            &app,
            ctx_s,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("#0 pushed {app}")), "{err}");
    assert_eq!(counter.take().len(), 2);
    let id_a = inspect(&a, &app)["Id"].clone();

    // Store B is empty: the base comes from the registry, every step from the cache.
    let from = format!("type=registry,ref={cache}");
    let out = strata(
        &b,
        &[
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--cache-from",
            &from,
            "-t",
            &app,
            ctx_s,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("#0 pulled {base}")), "{err}");
    assert!(err.contains("(0 RUN executed, 4 steps cached)"), "{err}");
    assert!(
        err.contains("fetched 2 layers from the imported cache"),
        "{err}"
    );
    assert!(counter.take().is_empty(), "store B ran a RUN step");
    assert_eq!(inspect(&b, &app)["Id"], id_a);
    // What was pushed is the same image: pulled into a third store, same id.
    let c = Env::new();
    ok(&c, &["pull", &app]);
    assert_eq!(inspect(&c, &app)["Id"], id_a);
    // A one-file change on store B: the build stage's COPY and RUN and the final stage's
    // steps after the COPY --from re-run; the base is not pulled again.
    std::fs::write(ctx.join("a.txt"), "a2\n").unwrap();
    let out = strata(
        &b,
        &[
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--cache-from",
            &from,
            "-t",
            &app,
            ctx_s,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("#0 pulling"), "{err}");
    let hits = counter.take();
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        ["build", "final"],
        "{hits:?}"
    );
    ok(&b, &["fsck"]);
}

/// Offline: an image neither in the store nor reachable fails in seconds, naming the image
/// and the registry tried.
#[test]
fn a_base_image_nowhere_fails_fast_naming_image_and_registry() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let port = free_port(); // nothing listens there
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM 127.0.0.1:{port}/nowhere/img:1\nRUN true\n"),
    )
    .unwrap();
    let started = Instant::now();
    let err = fails(&env, &["build", ctx.to_str().unwrap()]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.contains(&format!("127.0.0.1:{port}/nowhere/img:1")),
        "{err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("failed to resolve image"), "{err}");
}

#[test]
fn run_pulls_an_image_that_is_not_in_the_store_as_docker_run_does() {
    strata_tests::require!(Root, Busybox, Registry);
    let reg = Registry::start();
    let a = Env::new();
    let name = format!("{}/strata/runme:1", reg.host());
    two_layer_image(&a, &name, b"pulled by run\n");
    ok(&a, &["push", &name]);

    let fresh = Env::new();
    // --pull never: the store's answer only, docker's message, exit 125.
    let o = strata(&fresh, &["run", "--rm", "--pull", "never", &name, "true"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("Unable to find image '{name}' locally")),
        "{err}"
    );
    // Default (missing): pulled first, the pull's lines on stderr, then the container runs.
    let o = strata(&fresh, &["run", "--rm", &name, "cat", "/extra.bin"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(
        out, "pulled by run\n",
        "stdout is the container's only: {err}"
    );
    assert!(
        err.starts_with(&format!("Unable to find image '{name}' locally\n")),
        "{err}"
    );
    assert!(
        err.contains("Digest: sha256:") && err.contains("Status: Downloaded newer image for"),
        "{err}"
    );
    assert_eq!(inspect(&fresh, &name)["Id"], inspect(&a, &name)["Id"]);
    // `images --digests` shows the digest it was pulled by.
    let digest = pulled_digest(&err);
    let rows = ok(
        &fresh,
        &[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Digest}}",
        ],
    );
    assert_eq!(rows, format!("{}/strata/runme {digest}\n", reg.host()));
    // Now in the store: no pull.
    let o = strata(&fresh, &["run", "--rm", &name, "true"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    // --pull always asks the registry even so; a registry that is gone is exit 125.
    drop(reg);
    let o = strata(&fresh, &["run", "--rm", "--pull", "always", &name, "true"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("pulling {name}")), "{err}");
}

/// On a terminal, push and pull draw a byte bar per layer (docker's `Pushing [==>  ]
/// 2MB/6MB`); without one they print no byte lines at all (docker's non-tty output).
#[test]
fn transfers_draw_byte_bars_on_a_terminal_only() {
    strata_tests::require!(Root, Busybox, Registry);
    let reg = Registry::start();
    // Uploads through the slow proxy take a few seconds: the bar is drawn for sure.
    let (proxy, _) = slow_proxy(reg.port, 2 << 20);
    let env = Env::new();
    let name = format!("127.0.0.1:{proxy}/bars/img:1");
    two_layer_image(&env, &name, &noise(5 << 20, 3));
    let o = std::process::Command::new("script")
        .arg("-qec")
        .arg(format!("{} push {name}", strata_tests::strata_bin()))
        .arg("/dev/null")
        .env("STRATA_ROOT", env.root())
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(": Pushing ["), "a byte bar: {out}");
    assert!(
        out.contains("/5.00 MiB") || out.contains("/5 MiB"),
        "bytes in all: {out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    // Without a terminal: docker's lines, no byte counts.
    let fresh = Env::new();
    let pulled = ok(&fresh, &["pull", &name]);
    assert!(!pulled.contains("Downloading"), "{pulled}");
    assert_eq!(pulled.matches(": Pull complete").count(), 2, "{pulled}");
}
