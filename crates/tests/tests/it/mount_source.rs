//! `RUN --mount=...,source=PATH`: the file or directory at PATH of the stage, image or
//! context is mounted at the target (not the source's root), with PATH resolved inside that
//! root (`..` and symlinks, absolute or relative, never leave it); writes through `rw` are
//! discarded; `type=cache,from=` is seeded from PATH; a missing source is a located error.
//! BuildKit (Docker 20.10) gives the same outputs for the same Dockerfile.

use std::fs;

use crate::common::{busybox_env as setup, Env};

/// The busybox rootfs's /etc/passwd (common::busybox_tar), not the host's.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";

fn context(env: &Env, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> String {
    let dir = env.path(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (p, c) in files {
        let f = dir.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, c).unwrap();
    }
    dir.to_str().unwrap().to_string()
}

const STAGE_A: &str = "FROM busybox:local AS a\n\
RUN mkdir -p /d/e && echo cval > /c && echo dval > /d/e/f && echo gone > /d/gone \
 && ln -s /d /abs && ln -s ../../c /d/up && ln -s / /d/root && ln -s ../../../.. /d/dotdot\n\
RUN rm /d/gone && echo later > /d/later\n";

#[test]
fn bind_source_is_the_path_inside_the_stage_image_or_context() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let df = format!(
        "{STAGE_A}FROM busybox:local\n\
RUN --mount=type=bind,from=a,source=/c,target=/mnt/c cat /mnt/c > /file\n\
RUN --mount=type=bind,from=a,source=d,target=/mnt/d ls /mnt/d > /dir-list && cat /mnt/d/e/f > /dir-f\n\
RUN --mount=type=bind,from=a,source=d/e/f,target=/mnt/x cat /mnt/x > /relative\n\
RUN --mount=type=bind,from=a,source=abs/e/f,target=/mnt/x cat /mnt/x > /abs-link\n\
RUN --mount=type=bind,from=a,source=d/up,target=/mnt/x cat /mnt/x > /rel-link\n\
RUN --mount=type=bind,from=a,source=../../../c,target=/mnt/x cat /mnt/x > /dotdot\n\
RUN --mount=type=bind,from=a,source=../../etc/passwd,target=/mnt/x cat /mnt/x > /dotdot-passwd\n\
RUN --mount=type=bind,from=a,source=d/root/etc/passwd,target=/mnt/x cat /mnt/x > /root-link\n\
RUN --mount=type=bind,from=a,source=d/dotdot/etc/passwd,target=/mnt/x cat /mnt/x > /dotdot-link\n\
RUN --mount=type=bind,from=busybox:local,source=etc/passwd,target=/mnt/x cat /mnt/x > /image\n\
RUN --mount=type=bind,source=sub/s.txt,target=/mnt/s cat /mnt/s > /context-file\n\
RUN --mount=type=bind,source=/sub/../sub,target=/mnt/s cat /mnt/s/s.txt > /context-dir\n\
RUN --mount=type=bind,from=a,source=/c,target=/mnt/c,rw echo changed > /mnt/c && cat /mnt/c > /rw\n\
RUN --mount=type=bind,from=a,source=/d,target=/mnt/d,rw echo new > /mnt/d/n && ls /mnt/d > /rw-dir\n\
RUN --mount=type=bind,from=a,source=/c,target=/mnt/c cat /mnt/c > /after-rw\n"
    );
    let ctx = context(&env, "ctx", &df, &[("sub/s.txt", "subf\n")]);
    let out = env.path("out");
    env.ok(&[
        "build",
        "-t",
        "ms:1",
        "-o",
        &format!("type=local,dest={}", out.display()),
        &ctx,
    ]);
    let read = |n: &str| fs::read_to_string(out.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    assert_eq!(read("file"), "cval\n", "a file source mounts the file");
    // A directory of two layers: the lower layer's entries, the upper's, and not the one
    // the upper layer deleted (a whiteout).
    assert_eq!(read("dir-list"), "dotdot\ne\nlater\nroot\nup\n");
    assert_eq!(read("dir-f"), "dval\n");
    assert_eq!(read("relative"), "dval\n");
    assert_eq!(
        read("abs-link"),
        "dval\n",
        "an absolute link resolves in the stage"
    );
    assert_eq!(read("rel-link"), "cval\n");
    assert_eq!(read("dotdot"), "cval\n", "`..` stops at the stage's root");
    // Escapes that would reach the host's /etc/passwd read the stage's.
    assert_eq!(read("dotdot-passwd"), PASSWD);
    assert_eq!(read("root-link"), PASSWD, "a link to / is the stage's root");
    assert_eq!(
        read("dotdot-link"),
        PASSWD,
        "a link climbing out stays inside"
    );
    assert_eq!(read("image"), PASSWD, "from= an image");
    assert_eq!(read("context-file"), "subf\n", "a file of the context");
    assert_eq!(read("context-dir"), "subf\n");
    assert_eq!(read("rw"), "changed\n");
    assert_eq!(read("rw-dir"), "dotdot\ne\nlater\nn\nroot\nup\n");
    assert_eq!(read("after-rw"), "cval\n", "rw writes are discarded");
    env.fsck_clean();
}

#[test]
fn cache_mount_from_is_seeded_from_the_source_path() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let df = format!(
        "{STAGE_A}FROM busybox:local\n\
RUN --mount=type=cache,id=seeded,from=a,source=d/e,target=/mnt/cc ls /mnt/cc > /seed && echo more > /mnt/cc/more\n\
RUN --mount=type=cache,id=seeded,from=a,source=d/e,target=/mnt/cc ls /mnt/cc > /kept\n"
    );
    let ctx = context(&env, "ctx", &df, &[]);
    let out = env.path("out");
    env.ok(&[
        "build",
        "-o",
        &format!("type=local,dest={}", out.display()),
        &ctx,
    ]);
    let read = |n: &str| fs::read_to_string(out.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    assert_eq!(
        read("seed"),
        "f\n",
        "the cache starts as the source directory"
    );
    assert_eq!(read("kept"), "f\nmore\n", "and then keeps what RUNs write");
    env.fsck_clean();
}

#[test]
fn missing_mount_source_is_a_located_error_and_tags_nothing() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    for (name, mount) in [
        ("stage", "type=bind,from=a,source=/nope/x,target=/mnt"),
        ("context", "type=bind,source=nope,target=/mnt"),
        ("cache", "type=cache,from=a,source=nope,target=/mnt"),
        // A link that climbs out lands on the stage's /, where there is no `work`.
        (
            "escape",
            "type=bind,from=a,source=d/dotdot/work,target=/mnt",
        ),
    ] {
        let df = format!("{STAGE_A}FROM busybox:local\nRUN echo ok\nRUN --mount={mount} ls /mnt\n");
        let ctx = context(&env, name, &df, &[]);
        let e = env.fails(&["build", "-t", "missing:1", &ctx]);
        let shown = mount
            .split(',')
            .find_map(|f| f.strip_prefix("source="))
            .unwrap();
        assert!(
            e.contains("error: ")
                && e.contains("Dockerfile:6:")
                && e.contains("not found")
                && e.contains(&format!("source={shown}"))
                && e.contains('^'),
            "{name}: {e}"
        );
        assert!(e.contains("mount source \"/"), "{name}: {e}");
        assert!(
            e.contains("ERROR: mount source"),
            "the step says it failed: {e}"
        );
    }
    let images = env.ok(&["images"]);
    assert!(!images.contains("missing"), "{images}");
    env.fsck_clean();
}

#[test]
fn step_name_keeps_the_mount_as_written() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let df = format!(
        "{STAGE_A}FROM busybox:local\n\
RUN --mount=type=bind,from=a,source=/c,target=/mnt/c cat /mnt/c\n\
RUN --mount=target=/mnt/cc,id=x,type=cache ls /mnt/cc\n"
    );
    let ctx = context(&env, "ctx", &df, &[]);
    let o = env.run(&["build", "--progress=plain", &ctx]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains(
            "[stage-1 2/3] RUN --mount=type=bind,from=a,source=/c,target=/mnt/c cat /mnt/c\n"
        ),
        "{e}"
    );
    assert!(
        e.contains("[stage-1 3/3] RUN --mount=target=/mnt/cc,id=x,type=cache ls /mnt/cc\n"),
        "{e}"
    );
}

#[test]
fn a_changed_mount_source_reruns_the_step() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let df = "FROM busybox:local AS a\nARG V=1\nRUN echo $V > /c\n\
FROM busybox:local\n\
RUN --mount=type=bind,from=a,source=/c,target=/mnt/c cat /mnt/c > /from-stage\n\
RUN --mount=type=bind,source=f.txt,target=/mnt/f cat /mnt/f > /from-context\n";
    let ctx = context(&env, "ctx", df, &[("f.txt", "one\n")]);
    let build = |v: &str| {
        let out = env.path(&format!("out-{v}-{}", rand_suffix()));
        let o = env.run(&[
            "build",
            "--progress=plain",
            "--build-arg",
            &format!("V={v}"),
            "-o",
            &format!("type=local,dest={}", out.display()),
            &ctx,
        ]);
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{e}");
        let read = |n: &str| fs::read_to_string(out.join(n)).unwrap();
        (e, read("from-stage"), read("from-context"))
    };
    let cached = |e: &str, n: usize| {
        let step = format!("[stage-1 {n}/3]");
        let id = e
            .lines()
            .find(|l| l.contains(&step))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .to_string();
        e.lines().any(|l| l == format!("{id} CACHED"))
    };
    let (_, s, c) = build("1");
    assert_eq!((s.as_str(), c.as_str()), ("1\n", "one\n"));
    let (e, _, _) = build("1");
    assert!(cached(&e, 2) && cached(&e, 3), "nothing changed: {e}");
    // The stage it mounts from changed: that RUN runs again and sees the new file.
    let (e, s, _) = build("2");
    assert!(!cached(&e, 2), "{e}");
    assert!(e.contains("the mount at /mnt/c changed"), "{e}");
    assert_eq!(s, "2\n");
    // The context file it mounts changed.
    fs::write(std::path::Path::new(&ctx).join("f.txt"), "two\n").unwrap();
    let (e, _, c) = build("2");
    assert!(cached(&e, 2) && !cached(&e, 3), "{e}");
    assert_eq!(c, "two\n");
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn context_mounts_leave_out_what_dockerignore_excludes() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let df = "FROM busybox:local\n\
RUN --mount=type=bind,target=/ctx ls -a /ctx /ctx/sub > /all\n\
RUN --mount=type=bind,source=sub,target=/s,rw echo x > /s/new && ls /s > /sub\n";
    let ctx = context(
        &env,
        "ctx",
        df,
        &[
            (".dockerignore", "secret.txt\nsub/b\n"),
            ("secret.txt", "s\n"),
            ("keep.txt", "k\n"),
            ("sub/a", "a\n"),
            ("sub/b", "b\n"),
        ],
    );
    let build = |out: &str| {
        let o = env.run(&[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", env.path(out).display()),
            &ctx,
        ]);
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{e}");
        e
    };
    build("out");
    let read = |n: &str| fs::read_to_string(env.path("out").join(n)).unwrap();
    assert_eq!(
        read("all"),
        "/ctx:\n.\n..\n.dockerignore\nDockerfile\nkeep.txt\nsub\n\n/ctx/sub:\n.\n..\na\n"
    );
    assert_eq!(read("sub"), "a\nnew\n");
    assert!(!std::path::Path::new(&ctx).join("sub/new").exists());
    // An excluded file is no source, and changing it reruns nothing.
    fs::write(std::path::Path::new(&ctx).join("sub/b"), "changed\n").unwrap();
    let e = build("out2");
    assert_eq!(e.matches(" CACHED").count(), 2, "{e}");
    let df2 = "FROM busybox:local\nRUN --mount=type=bind,source=secret.txt,target=/x cat /x\n";
    fs::write(std::path::Path::new(&ctx).join("Dockerfile"), df2).unwrap();
    let e = env.fails(&["build", &ctx]);
    assert!(
        e.contains("Dockerfile:2:") && e.contains("mount source \"/secret.txt\" not found"),
        "{e}"
    );
}
