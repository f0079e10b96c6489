//! `build --platform` (issue 18): several target platforms in one build, a stage on
//! `$BUILDPLATFORM` built once and natively, RUN of linux/arm64 under QEMU through
//! binfmt_misc, one image per platform joined in an image index, and `plan --platform`.
//! The bases are busybox for linux/amd64 (the host's /bin/busybox) and for linux/arm64
//! (Debian's busybox-static:arm64, made by scripts/peers.sh), joined into one index by a
//! strata build itself (`FROM scratch` + `COPY rootfs-$TARGETARCH/ /`).

use std::fs;
use std::path::Path;

use crate::common::{busybox_tar, tool, Counter, Env};

/// A store with `busybox:latest` as an index of linux/amd64 and linux/arm64.
fn two_platform_busybox() -> Env {
    let env = Env::new();
    let ctx = env.path("bb");
    for (arch, tar) in [
        ("amd64", env.path("bb-amd64.tar")),
        (
            "arm64",
            strata_tests::peers_data().join("busybox-arm64-rootfs.tar"),
        ),
    ] {
        if arch == "amd64" {
            busybox_tar(&tar);
        }
        let dir = ctx.join(format!("rootfs-{arch}"));
        fs::create_dir_all(&dir).unwrap();
        tool(
            "tar",
            &["-C", dir.to_str().unwrap(), "-xf", tar.to_str().unwrap()],
        );
    }
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY rootfs-$TARGETARCH/ /\nCMD [\"sh\"]\n",
    )
    .unwrap();
    env.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "busybox:latest",
        ctx.to_str().unwrap(),
    ]);
    env
}

/// What `name` points at in the store's index.json: (media type, blob JSON).
fn ref_target(env: &Env, name: &str) -> (String, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(env.root().join("index.json")).unwrap()).unwrap();
    let d = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no ref {name} in {index}"))
        .clone();
    (
        d["mediaType"].as_str().unwrap().to_string(),
        blob_json(env, d["digest"].as_str().unwrap()),
    )
}

fn blob_json(env: &Env, digest: &str) -> serde_json::Value {
    let p = env
        .root()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// An index's platforms as `os/arch`, in its order.
pub(crate) fn platforms_of(index: &serde_json::Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

/// e_machine of an ELF file (0x3e x86-64, 0xb7 aarch64).
fn elf_machine(p: &Path) -> u16 {
    let b = fs::read(p).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{} is no ELF file", p.display());
    u16::from_le_bytes([b[18], b[19]])
}

#[test]
fn two_platforms_share_the_native_stage_and_emulate_the_other() {
    strata_tests::require!(Root, Busybox, Qemu, Arm64Busybox);
    let env = two_platform_busybox();
    let (media, bb) = ref_target(&env, "docker.io/library/busybox:latest");
    assert_eq!(media, "application/vnd.oci.image.index.v1+json");
    assert_eq!(platforms_of(&bb), ["linux/amd64", "linux/arm64"]);

    let c = Counter::start();
    let ctx = env.path("app");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM busybox AS build\n\
             RUN {} && uname -m > /build-arch\n\
             ARG TARGETARCH\n\
             RUN echo $TARGETARCH > /target\n\
             FROM busybox\n\
             ARG TARGETPLATFORM\n\
             COPY --from=build /build-arch /target /\n\
             RUN {} && uname -m > /arch && echo $TARGETPLATFORM > /platform\n",
            c.hit("shared"),
            c.hit("final"),
        ),
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let out = env.path("out");
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--network",
            "host",
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "app:multi",
        ];
        args.extend_from_slice(extra);
        args.push(ctx);
        let o = env.run(&args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{err}");
        err
    };
    let log = build(&[]);
    // The $BUILDPLATFORM stage's step ran once for both platforms; the final stage's once
    // each (the arm64 one emulated).
    let hits = c.take();
    assert_eq!(hits.get("shared"), Some(&1), "{hits:?}\n{log}");
    assert_eq!(hits.get("final"), Some(&2), "{hits:?}\n{log}");
    assert!(log.contains("[linux/arm64 stage-1 3/3] RUN"), "{log}");
    assert!(log.contains("exporting manifest list sha256:"), "{log}");
    // --no-cache: still once for the shared step (BuildKit builds a shared vertex once).
    let dest = format!("type=local,dest={}", out.display());
    let meta = env.path("meta.json");
    let iid = env.path("iid");
    let log = build(&[
        "--no-cache",
        "--output",
        &dest,
        "--metadata-file",
        meta.to_str().unwrap(),
        "--iidfile",
        iid.to_str().unwrap(),
    ]);
    let hits = c.take();
    assert_eq!(hits.get("shared"), Some(&1), "{hits:?}\n{log}");
    assert_eq!(hits.get("final"), Some(&2), "{hits:?}\n{log}");

    // One directory per platform: the arm64 image's RUN ran under emulation, the build
    // stage natively for both.
    let read = |p: &str| fs::read_to_string(out.join(p)).unwrap().trim().to_string();
    assert_eq!(read("linux_amd64/arch"), "x86_64");
    assert_eq!(read("linux_arm64/arch"), "aarch64");
    assert_eq!(read("linux_arm64/build-arch"), "x86_64");
    assert_eq!(read("linux_arm64/target"), "arm64");
    assert_eq!(read("linux_amd64/target"), "amd64");
    assert_eq!(read("linux_arm64/platform"), "linux/arm64");
    assert_eq!(elf_machine(&out.join("linux_arm64/bin/busybox")), 0xb7);
    assert_eq!(elf_machine(&out.join("linux_amd64/bin/busybox")), 0x3e);

    // The tag names an index of the two images, each with its platform in its config; the
    // --iidfile and --metadata-file name the index, as buildx's.
    let (media, ix) = ref_target(&env, "docker.io/library/app:multi");
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    assert_eq!(
        m["containerimage.descriptor"]["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{m}"
    );
    let index_digest = m["containerimage.digest"].as_str().unwrap().to_string();
    assert_eq!(fs::read_to_string(&iid).unwrap(), index_digest);
    assert_eq!(
        blob_json(&env, &index_digest)["manifests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(media, "application/vnd.oci.image.index.v1+json");
    assert_eq!(platforms_of(&ix), ["linux/amd64", "linux/arm64"]);
    for (i, arch) in [(0, "amd64"), (1, "arm64")] {
        let m = blob_json(&env, ix["manifests"][i]["digest"].as_str().unwrap());
        let cfg = blob_json(&env, m["config"]["digest"].as_str().unwrap());
        assert_eq!(cfg["architecture"], arch, "{cfg}");
    }
    env.fsck_clean();

    // One platform: one plain image (no index), of that platform.
    env.ok(&[
        "build",
        "-q",
        "--network",
        "host",
        "--platform",
        "linux/arm64",
        "-t",
        "app:arm64",
        ctx,
    ]);
    c.take();
    let (media, m) = ref_target(&env, "docker.io/library/app:arm64");
    assert_eq!(media, "application/vnd.oci.image.manifest.v1+json");
    let cfg = blob_json(&env, m["config"]["digest"].as_str().unwrap());
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(cfg["os"], "linux");

    // plan --platform says which stages run natively and which emulated.
    let plan = env.ok(&["plan", "--platform", "linux/amd64,linux/arm64", ctx]);
    assert!(
        plan.contains("stage platforms for linux/arm64:\n  build: linux/amd64, native\n  stage-1: linux/arm64, emulated (binfmt_misc)"),
        "{plan}"
    );
}

#[test]
fn a_base_without_the_platform_is_a_clear_error_and_tags_nothing() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let tar = env.path("bb.tar");
    busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "busybox:amd64only"]);
    let ctx = env.path("c");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM busybox:amd64only\nRUN true\n").unwrap();
    let err = env.fails(&[
        "build",
        "--platform",
        "linux/amd64,linux/s390x",
        "-t",
        "x:multi",
        ctx.to_str().unwrap(),
    ]);
    assert!(
        err.contains("busybox:amd64only") && err.contains("linux/s390x"),
        "{err}"
    );
    assert!(!fs::read_to_string(env.root().join("index.json"))
        .unwrap()
        .contains("x:multi"));
    // The same base on $BUILDPLATFORM serves every target platform (a regression: the
    // bases were once all made sure of for the target platform).
    fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=$BUILDPLATFORM busybox:amd64only AS b\nRUN echo hi > /hi\n\
         FROM scratch\nCOPY --from=b /hi /hi\n",
    )
    .unwrap();
    env.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/s390x",
        "-t",
        "x:multi",
        ctx.to_str().unwrap(),
    ]);
    let err = env.fails(&["build", "--platform", "linux/", ctx.to_str().unwrap()]);
    assert!(err.contains("invalid platform"), "{err}");
    env.fsck_clean();
}

#[test]
fn an_exported_cache_carries_every_platform() {
    strata_tests::require!(Root, Busybox, Qemu, Arm64Busybox);
    let env = two_platform_busybox();
    let c = Counter::start();
    let ctx = env.path("app");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM busybox AS build\n\
             ARG TARGETARCH\n\
             RUN {} && echo $TARGETARCH > /t\n\
             FROM busybox\n\
             COPY --from=build /t /t\n\
             RUN {} && uname -m > /m\n",
            c.hit("build"),
            c.hit("final"),
        ),
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let cache = env.path("cache");
    let build = |cache_flag: &str, cache_arg: String| {
        env.ok(&[
            "build",
            "-q",
            "--network",
            "host",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "app:multi",
            cache_flag,
            &cache_arg,
            ctx,
        ])
    };
    let first = build(
        "--cache-to",
        format!("type=local,dest={},mode=max", cache.display()),
    );
    let hits = c.take();
    assert_eq!(hits.get("build"), Some(&2), "{hits:?}");
    assert_eq!(hits.get("final"), Some(&2), "{hits:?}");
    // The store forgets its cache; the exported one serves both platforms' steps.
    env.ok(&["prune", "--all"]);
    let second = build(
        "--cache-from",
        format!("type=local,src={}", cache.display()),
    );
    assert_eq!(
        c.take(),
        Default::default(),
        "every step of both platforms cached"
    );
    assert_eq!(first.trim(), second.trim(), "the same image index");
    assert!(first.trim().starts_with("sha256:"), "{first}");
    env.fsck_clean();
}

#[test]
fn several_platforms_push_as_an_index_and_save_as_an_oci_archive() {
    strata_tests::require!(Root, Busybox, Qemu, Arm64Busybox, Registry, Skopeo, Python3);
    let env = two_platform_busybox();
    let ctx = env.path("app");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG TARGETARCH\nRUN uname -m > /m && echo $TARGETARCH > /a\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let reg = crate::registry::Registry::start();
    let name = format!("127.0.0.1:{}/mp/app:1", reg.port);
    let oci = env.path("app-oci.tar");
    env.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        &name,
        "--push",
        "--output",
        &format!("type=oci,dest={}", oci.display()),
        ctx,
    ]);
    // The registry has the index with both platforms.
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ],
    );
    let ix: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(platforms_of(&ix), ["linux/amd64", "linux/arm64"], "{raw}");
    // Another store pulls the arm64 image; its RUN ran emulated.
    let other = Env::new();
    other.ok(&["pull", "-q", "--platform", "linux/arm64", &name]);
    let got = other.ok(&[
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &name,
        "cat",
        "/m",
        "/a",
    ]);
    assert_eq!(got, "aarch64\narm64\n");
    // The OCI archive holds the index (skopeo reads it whole).
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}", oci.display()),
        ],
    );
    let ix: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(platforms_of(&ix), ["linux/amd64", "linux/arm64"], "{raw}");
    // A docker archive holds no index: refused, as BuildKit, and nothing is tagged.
    let err = env.fails(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "app:docker",
        "--output",
        &format!("type=docker,dest={}", env.path("d.tar").display()),
        ctx,
    ]);
    assert!(
        err.contains("docker exporter does not currently support exporting manifest lists"),
        "{err}"
    );
    assert!(!fs::read_to_string(env.root().join("index.json"))
        .unwrap()
        .contains("app:docker"));
}

#[test]
fn compose_platform_builds_and_runs_the_service_for_it() {
    strata_tests::require!(Root, Busybox, Qemu, Arm64Busybox);
    let env = two_platform_busybox();
    let dir = env.path("proj");
    fs::create_dir_all(dir.join("app")).unwrap();
    fs::write(
        dir.join("app/Dockerfile"),
        "FROM busybox\nARG TARGETARCH\nRUN echo \"$(uname -m) $TARGETARCH\" > /built\n",
    )
    .unwrap();
    let file = dir.join("compose.yaml");
    fs::write(
        &file,
        "services:\n  \
           built:\n    build: ./app\n    platform: linux/arm64\n    command: [\"cat\", \"/built\"]\n  \
           pulled:\n    image: busybox:latest\n    platform: linux/arm64\n    command: [\"busybox\", \"uname\", \"-m\"]\n  \
           native:\n    image: busybox:latest\n    command: [\"busybox\", \"uname\", \"-m\"]\n",
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-p", "mp", "-f", file.to_str().unwrap()];
        all.extend_from_slice(args);
        env.ok(&all)
    };
    compose(&["build", "-q"]);
    assert_eq!(compose(&["run", "--rm", "-T", "built"]), "aarch64 arm64\n");
    assert_eq!(compose(&["run", "--rm", "-T", "pulled"]), "aarch64\n");
    assert_eq!(compose(&["run", "--rm", "-T", "native"]), "x86_64\n");
    compose(&["down"]);
}
