//! Real clients accept strata's archives, and strata loads theirs with identical layer
//! digests: skopeo, umoci, podman and Docker 20.10 (installed and started by .ci/run through
//! scripts/peers.sh). Every name used in docker's and podman's stores is unique to
//! the test run and removed afterwards.

use crate::common::{busybox_tar, tool, unique, Env};
use serde_json::Value;

const DOCKER: &str = "/usr/bin/docker";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

fn setup() -> (Env, String, Value) {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    let tar = tar.to_str().unwrap().to_string();
    env.ok(&["import", "--change", "CMD [\"sh\"]", &tar, "interop/bb:1"]);
    let inspect = json(&env.ok(&["inspect", "interop/bb:1"]))[0].clone();
    (env, tar, inspect)
}

#[test]
fn skopeo_inspects_both_archive_formats() {
    strata_tests::require!(Root, Busybox, Skopeo);
    let (env, _, inspect) = setup();
    let docker = env.path("d.tar");
    let oci = env.path("o.tar");
    env.ok(&["save", "-o", docker.to_str().unwrap(), "interop/bb:1"]);
    env.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
        "interop/bb:1",
    ]);
    let d = json(&tool(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", docker.display())],
    ));
    // docker-archive layers are the uncompressed layers: their digests are the diffIDs.
    assert_eq!(d["Layers"], inspect["RootFS"]["Layers"]);
    let cfg = json(&tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("docker-archive:{}", docker.display()),
        ],
    ));
    assert_eq!(cfg["config"]["Cmd"][0], "sh");
    assert_eq!(cfg["rootfs"]["diff_ids"], inspect["RootFS"]["Layers"]);
    let o = json(&tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", oci.display())],
    ));
    assert_eq!(o["Architecture"], "amd64");
    assert_eq!(o["Layers"].as_array().unwrap().len(), 1);
    let ocfg = json(&tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci-archive:{}", oci.display()),
        ],
    ));
    assert_eq!(ocfg["rootfs"]["diff_ids"], inspect["RootFS"]["Layers"]);
}

#[test]
fn umoci_unpacks_an_oci_export() {
    strata_tests::require!(Root, Busybox, Umoci);
    let (env, _, _) = setup();
    let oci = env.path("o.tar");
    env.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
        "interop/bb:1",
    ]);
    let layout = env.path("layout");
    std::fs::create_dir_all(&layout).unwrap();
    tool(
        "tar",
        &["-xf", oci.to_str().unwrap(), "-C", layout.to_str().unwrap()],
    );
    let ls = tool("umoci", &["ls", "--layout", layout.to_str().unwrap()]);
    assert_eq!(ls.trim(), "interop/bb:1");
    let bundle = env.path("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:interop/bb:1", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let busybox = std::fs::read(bundle.join("rootfs/bin/busybox")).unwrap();
    assert_eq!(busybox, std::fs::read("/bin/busybox").unwrap());
    let link = std::fs::read_link(bundle.join("rootfs/bin/sh")).unwrap();
    assert_eq!(link.to_str(), Some("busybox"));
    let cfg = json(&std::fs::read_to_string(bundle.join("config.json")).unwrap());
    assert_eq!(cfg["process"]["args"][0], "sh");
}

struct Cleanup(Vec<(&'static str, String)>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for (tool, name) in &self.0 {
            let _ = std::process::Command::new(tool)
                .args(["rmi", "-f", name])
                .output();
        }
    }
}

#[test]
fn podman_loads_and_runs_strata_archives() {
    strata_tests::require!(Root, Busybox, Podman);
    let (env, _, inspect) = setup();
    let name = unique("podman");
    env.ok(&["tag", "interop/bb:1", &name]);
    let _c = Cleanup(vec![("podman", format!("docker.io/{name}"))]);
    for format in ["docker", "oci"] {
        let f = env.path(&format!("p-{format}.tar"));
        env.ok(&["save", "--format", format, "-o", f.to_str().unwrap(), &name]);
        let out = tool("podman", &["load", "-i", f.to_str().unwrap()]);
        assert!(out.contains(&name), "{out}");
        let loaded = out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .unwrap()
            .trim()
            .to_string();
        let run = tool(
            "podman",
            &[
                "run",
                "--rm",
                "--network=none",
                &loaded,
                "sh",
                "-c",
                "echo ran-in-podman; id -u",
            ],
        );
        assert_eq!(run, "ran-in-podman\n0\n");
        let pi = json(&tool("podman", &["image", "inspect", &loaded]));
        assert_eq!(pi[0]["RootFS"]["Layers"], inspect["RootFS"]["Layers"]);
        let _ = std::process::Command::new("podman")
            .args(["rmi", "-f", &loaded])
            .output();
    }
}

#[test]
fn docker_loads_and_runs_strata_archives() {
    strata_tests::require!(Root, Busybox, Docker);
    let (env, _, inspect) = setup();
    let name = unique("docker");
    env.ok(&["tag", "interop/bb:1", &name]);
    let _c = Cleanup(vec![("/usr/bin/docker", name.clone())]);
    let f = env.path("docker.tar");
    env.ok(&["save", "-o", f.to_str().unwrap(), &name]);
    let out = tool(DOCKER, &["load", "-i", f.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Loaded image: {name}"));
    let run = tool(
        DOCKER,
        &[
            "run",
            "--rm",
            "--network=none",
            &name,
            "sh",
            "-c",
            "echo ran-in-docker",
        ],
    );
    assert_eq!(run, "ran-in-docker\n");
    let di = json(&tool(DOCKER, &["image", "inspect", &name]));
    assert_eq!(
        di[0]["Id"], inspect["Id"],
        "docker computes the same image id"
    );
    assert_eq!(di[0]["RootFS"]["Layers"], inspect["RootFS"]["Layers"]);
    // Sizes as docker computes them.
    assert_eq!(di[0]["Size"], inspect["Size"]);
}

#[test]
fn archives_saved_by_docker_and_podman_load_with_identical_layer_digests() {
    strata_tests::require!(Root, Busybox, Docker, Podman);
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    let dname = unique("from-docker");
    let pname = unique("from-podman");
    let _c = Cleanup(vec![
        ("/usr/bin/docker", dname.clone()),
        ("podman", format!("localhost/{pname}")),
    ]);
    tool(DOCKER, &["import", tar.to_str().unwrap(), &dname]);
    let dsave = env.path("docker-saved.tar");
    tool(DOCKER, &["save", "-o", dsave.to_str().unwrap(), &dname]);
    let out = env.ok(&["load", "-i", dsave.to_str().unwrap()]);
    assert_eq!(out, format!("Loaded image: {dname}\n"));
    let ours = json(&env.ok(&["inspect", &dname]));
    let theirs = json(&tool(DOCKER, &["image", "inspect", &dname]));
    assert_eq!(ours[0]["RootFS"]["Layers"], theirs[0]["RootFS"]["Layers"]);
    assert_eq!(ours[0]["Id"], theirs[0]["Id"]);
    assert_eq!(ours[0]["Size"], theirs[0]["Size"]);

    tool(
        "podman",
        &[
            "import",
            tar.to_str().unwrap(),
            &format!("localhost/{pname}"),
        ],
    );
    for format in ["docker-archive", "oci-archive"] {
        let psave = env.path(&format!("podman-{format}.tar"));
        tool(
            "podman",
            &[
                "save",
                "--format",
                format,
                "-o",
                psave.to_str().unwrap(),
                &format!("localhost/{pname}"),
            ],
        );
        let other = Env::new();
        other.ok(&["load", "-i", psave.to_str().unwrap()]);
        let theirs = json(&tool(
            "podman",
            &["image", "inspect", &format!("localhost/{pname}")],
        ));
        let ids = other.ok(&["images", "-q", "--no-trunc"]);
        let ours = json(&other.ok(&["inspect", ids.lines().next().expect("one image loaded")]));
        assert_eq!(
            ours[0]["RootFS"]["Layers"], theirs[0]["RootFS"]["Layers"],
            "{format}"
        );
    }
}
