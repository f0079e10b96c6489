//! The everyday commands on multi-platform images (issue 18): two one-layer images imported
//! with `import --platform` (busybox for the host's platform, a small file tree for the
//! other: the platform is metadata only, nothing of it runs), joined by `manifest create`;
//! then images/inspect/history/tag/rmi, save in both formats, load, run --platform, and a
//! push to a local registry read back with skopeo and pulled by platform into another store.

use serde_json::Value;

use crate::common::{busybox_tar, tool, Env};
// strata with a private docker config directory (no credentials of the user's).
use crate::registry::{ok, strata};

/// The host's platform and another one, in docker's spelling.
fn platforms() -> (&'static str, &'static str) {
    if std::env::consts::ARCH == "aarch64" {
        ("linux/arm64", "linux/amd64")
    } else {
        ("linux/amd64", "linux/arm64")
    }
}

fn arch(p: &str) -> &str {
    p.rsplit('/').next().unwrap()
}

fn fails(env: &Env, args: &[&str]) -> String {
    let o = strata(env, args);
    assert!(!o.status.success(), "strata {args:?} should fail");
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `host-img` (busybox, the host's platform), `other-img` (another platform) and `multi:1`
/// joining them; returns the two image ids.
fn fixture(env: &Env) -> (String, String) {
    let (host, other) = platforms();
    let bb = env.path("busybox.tar");
    busybox_tar(&bb);
    let tree = env.path("other");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("hello"), "not for this host\n").unwrap();
    std::fs::write(tree.join("etc/os-release"), "ID=other\n").unwrap();
    let other_tar = env.path("other.tar");
    tool(
        "tar",
        &[
            "-C",
            tree.to_str().unwrap(),
            "-cf",
            other_tar.to_str().unwrap(),
            ".",
        ],
    );
    let host_id = ok(
        env,
        &[
            "import",
            "--platform",
            host,
            bb.to_str().unwrap(),
            "host-img",
        ],
    );
    let other_id = ok(
        env,
        &[
            "import",
            "--platform",
            other,
            other_tar.to_str().unwrap(),
            "other-img",
        ],
    );
    ok(
        env,
        &["manifest", "create", "multi:1", "host-img", "other-img"],
    );
    (host_id.trim().to_string(), other_id.trim().to_string())
}

fn short(id: &str) -> &str {
    &id.trim_start_matches("sha256:")[..12]
}

#[test]
fn manifest_create_images_inspect_tag_rmi() {
    strata_tests::require!(Busybox);
    let env = Env::new();
    let (host, other) = platforms();
    let (host_id, other_id) = fixture(&env);
    let cfg: Value = serde_json::from_str(&ok(&env, &["inspect", "other-img"])).unwrap();
    assert_eq!(cfg[0]["Architecture"], arch(other));
    assert_eq!(cfg[0]["Os"], "linux");

    // One platform, one image: two of one platform are refused, clearly.
    let e = fails(&env, &["manifest", "create", "two", "host-img", "host-img"]);
    assert!(e.contains(&format!("both images for {host}")), "{e}");
    let e = fails(&env, &["manifest", "create", "multi:1", "host-img"]);
    assert!(e.contains("already exists"), "{e}");

    // manifest inspect: the index, both platforms.
    let ix: Value = serde_json::from_str(&ok(&env, &["manifest", "inspect", "multi:1"])).unwrap();
    assert_eq!(ix["mediaType"], "application/vnd.oci.image.index.v1+json");
    let archs: Vec<&str> = ix["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, [arch(host), arch(other)]);

    // images: one line for the index (its digest's short id), platforms on request.
    let lines = ok(
        &env,
        &[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.Platform}}",
            "multi",
        ],
    );
    let line = lines.trim();
    assert!(line.starts_with("multi:1 "), "{line}");
    assert!(line.ends_with(&format!(" {host},{other}")), "{line}");
    let index_id = line.split(' ').nth(1).unwrap();
    assert_ne!(index_id, short(&host_id));
    let no_trunc = ok(&env, &["images", "-q", "--no-trunc", "multi"]);
    assert!(no_trunc.trim().starts_with(&format!("sha256:{index_id}")));
    let picked = ok(
        &env,
        &[
            "images",
            "--platform",
            other,
            "--format",
            "{{.Repository}} {{.ID}}",
        ],
    );
    assert!(
        picked.contains(&format!("multi {}", short(&other_id))),
        "{picked}"
    );
    assert!(!picked.contains("host-img"), "{picked}");
    let filtered = ok(
        &env,
        &[
            "images",
            "--filter",
            &format!("platform={other}"),
            "--format",
            "{{.Repository}} {{.ID}}",
        ],
    );
    assert_eq!(filtered, picked, "--filter platform= is --platform");
    let e = fails(&env, &["images", "--platform", "linux/"]);
    assert!(e.contains("invalid platform"), "{e}");
    let table = ok(&env, &["images"]);
    assert!(
        !table.contains("PLATFORM"),
        "the default table is docker's: {table}"
    );

    // inspect/history --platform pick from the index; a plain image of another platform is
    // docker's error.
    let id = ok(
        &env,
        &[
            "inspect",
            "--platform",
            other,
            "--format",
            "{{.Id}}",
            "multi:1",
        ],
    );
    assert_eq!(id.trim(), other_id);
    let id = ok(&env, &["inspect", "--format", "{{.Id}}", "multi:1"]);
    assert_eq!(id.trim(), host_id, "without --platform: the host's");
    let h = ok(&env, &["history", "-q", "--platform", other, "multi:1"]);
    assert_eq!(h.trim(), short(&other_id));
    let e = fails(&env, &["inspect", "--platform", other, "host-img"]);
    assert!(
        e.contains(&format!(
            "image with reference host-img was found but does not match the specified \
             platform: wanted {other}, actual: {host}"
        )),
        "{e}"
    );

    // rmi of an image an index holds untags it; the index keeps it.
    let out = ok(&env, &["rmi", "other-img"]);
    assert_eq!(out, "Untagged: other-img:latest\n");
    let id = ok(
        &env,
        &[
            "inspect",
            "--platform",
            other,
            "--format",
            "{{.Id}}",
            "multi:1",
        ],
    );
    assert_eq!(id.trim(), other_id);
    ok(&env, &["tag", &other_id, "other-img"]);

    // tag copies the index; rmi of an index's name removes the name only.
    ok(&env, &["tag", "multi:1", "copy:2"]);
    let ix2 = ok(&env, &["manifest", "inspect", "copy:2"]);
    assert_eq!(
        serde_json::from_str::<Value>(&ix2).unwrap(),
        ix,
        "the same index"
    );
    let out = ok(&env, &["rmi", "copy:2"]);
    assert_eq!(out, "Untagged: copy:2\n");
    let out = ok(&env, &["rmi", "multi:1"]);
    assert!(
        out.starts_with("Untagged: multi:1\nDeleted: sha256:"),
        "{out}"
    );
    let left = ok(&env, &["images", "--format", "{{.Repository}}"]);
    let mut left: Vec<&str> = left.lines().collect();
    left.sort();
    assert_eq!(left, ["host-img", "other-img"]);
    env.fsck_clean();
}

#[test]
fn save_both_formats_and_load_back() {
    strata_tests::require!(Busybox, Skopeo);
    let env = Env::new();
    let (host, other) = platforms();
    let (host_id, other_id) = fixture(&env);

    // OCI: index.json → the index blob → both manifests.
    let oci = env.path("multi-oci.tar");
    ok(
        &env,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            oci.to_str().unwrap(),
            "multi:1",
        ],
    );
    let raw: Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}", oci.display()),
        ],
    ))
    .unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(crate::multiplatform::platforms_of(&raw), [host, other]);

    // docker-archive: one image, the host's or --platform's.
    for (flag, want) in [(None, &host_id), (Some(other), &other_id)] {
        let path = env.path("multi-docker.tar");
        let mut args = vec!["save", "-o", path.to_str().unwrap()];
        if let Some(p) = flag {
            args.extend(["--platform", p]);
        }
        args.push("multi:1");
        ok(&env, &args);
        let m: Value = serde_json::from_str(&tool(
            "tar",
            &["-xOf", path.to_str().unwrap(), "manifest.json"],
        ))
        .unwrap();
        assert_eq!(m.as_array().unwrap().len(), 1);
        assert_eq!(
            m[0]["Config"],
            format!("{}.json", want.trim_start_matches("sha256:"))
        );
        assert_eq!(m[0]["RepoTags"][0], "multi:1");
    }

    // load of the OCI archive into another store: the index again, both images.
    let env2 = Env::new();
    let out = ok(&env2, &["load", "-i", oci.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: multi:1\n");
    let line = ok(
        &env2,
        &["images", "--format", "{{.Repository}} {{.Platform}}"],
    );
    assert_eq!(line, format!("multi {host},{other}\n"));
    let id = ok(
        &env2,
        &[
            "inspect",
            "--platform",
            other,
            "--format",
            "{{.Id}}",
            "multi:1",
        ],
    );
    assert_eq!(id.trim(), other_id);
    env2.fsck_clean();
}

#[test]
fn run_picks_the_platform_and_warns_of_another() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let (host, other) = platforms();
    fixture(&env);
    let o = strata(
        &env,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--platform",
            host,
            "multi:1",
            "/bin/echo",
            "picked",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "picked\n");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("WARNING"));

    // Another platform's image, without --platform: docker's warning, then it runs (here
    // its file is no program: 126).
    let o = strata(
        &env,
        &["run", "--rm", "--network", "none", "other-img", "/hello"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "WARNING: The requested image's platform ({other}) does not match the detected \
             host platform ({host}) and no specific platform was requested"
        )),
        "{err}"
    );
    // Asked for a platform the image is not of: docker's error, exit 125.
    let o = strata(
        &env,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--pull",
            "never",
            "--platform",
            host,
            "other-img",
            "/hello",
        ],
    );
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("was found but does not match the specified platform"),
        "{err}"
    );
}

#[test]
fn push_an_index_and_pull_one_platform_elsewhere() {
    strata_tests::require!(Root, Busybox, Skopeo, Registry);
    let reg = crate::registry::Registry::start();
    let env = Env::new();
    let (host, other) = platforms();
    let (_, other_id) = fixture(&env);
    let name = format!("127.0.0.1:{}/strata/multi:1", reg.port);
    ok(&env, &["tag", "multi:1", &name]);
    let out = ok(&env, &["push", &name]);
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("1: digest: sha256:"), "{out}");

    let raw: Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
    ))
    .unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let archs: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, [arch(host), arch(other)]);
    let digest = last
        .split("digest: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let skopeo_digest: Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{name}")],
    ))
    .unwrap();
    assert_eq!(skopeo_digest["Digest"], digest, "the tag names the index");

    // Another store pulls the other platform: the same config, a plain image.
    let env2 = Env::new();
    ok(&env2, &["pull", "--platform", other, &name]);
    let id = ok(
        &env2,
        &["inspect", "--format", "{{.Id}} {{.Architecture}}", &name],
    );
    assert_eq!(id.trim(), format!("{other_id} {}", arch(other)));
    let line = ok(&env2, &["images", "--format", "{{.ID}} {{.Platform}}"]);
    assert_eq!(line, format!("{} {other}\n", short(&other_id)));

    // skopeo copies the whole index into an OCI archive; strata loads it as one.
    let archive = env2.path("skopeo-all.tar");
    tool(
        "skopeo",
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci-archive:{}:copied:3", archive.display()),
        ],
    );
    let out = ok(&env2, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: copied:3\n");
    let line = ok(&env2, &["images", "--format", "{{.Platform}}", "copied"]);
    assert_eq!(line, format!("{host},{other}\n"));
    let id = ok(
        &env2,
        &[
            "inspect",
            "--platform",
            other,
            "--format",
            "{{.Id}}",
            "copied:3",
        ],
    );
    assert_eq!(id.trim(), other_id);
    env2.fsck_clean();
}

#[test]
fn an_index_of_docker_manifests_is_pushed_as_a_docker_manifest_list() {
    strata_tests::require!(Root, Busybox, Skopeo, Registry);
    let reg = crate::registry::Registry::start();
    let env = Env::new();
    let (host, other) = platforms();
    fixture(&env);
    let host_reg = format!("127.0.0.1:{}", reg.port);
    // Each image into the registry, then converted by skopeo to Docker schema2 manifests.
    for img in ["host-img", "other-img"] {
        let oci = format!("{host_reg}/oci/{img}:1");
        ok(&env, &["tag", img, &oci]);
        ok(&env, &["push", &oci]);
        tool(
            "skopeo",
            &[
                "copy",
                "--format",
                "v2s2",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &format!("docker://{oci}"),
                &format!("docker://{host_reg}/v2s2/{img}:1"),
            ],
        );
    }
    // Pulled into another store, they keep their Docker manifests for a push.
    let env2 = Env::new();
    let h = format!("{host_reg}/v2s2/host-img:1");
    let o = format!("{host_reg}/v2s2/other-img:1");
    ok(&env2, &["pull", &h]);
    ok(&env2, &["pull", "--platform", other, &o]);
    let list = format!("{host_reg}/v2s2/list:1");
    ok(&env2, &["manifest", "create", &list, &h, &o]);
    ok(&env2, &["push", &list]);
    let raw: Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{list}"),
        ],
    ))
    .unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    for (m, p) in raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip([host, other])
    {
        assert_eq!(
            m["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(m["platform"]["architecture"], arch(p));
    }
}
