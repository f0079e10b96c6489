//! `strata cp` end to end: both directions on a running and a stopped container, docker's
//! directory rules (`SRC` vs `SRC/.`, existing directory vs new name, trailing slashes),
//! owners (root unless `-a`), tar streams on stdin/stdout, and hostile symlinks in the
//! container that must lead neither writes nor reads to the host.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Output, Stdio};

use crate::common::{tool, Env};
use crate::volume_cli::{setup, Cleanup};

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A detached container named `name` that prepared `script` and then sleeps.
fn running(env: &Env, name: &str, script: &str) -> String {
    let s = format!("{script} && echo ready > /ready && exec sleep 1000");
    let id = env.ok(&["run", "-d", "--name", name, "busybox:local", "sh", "-c", &s]);
    // The script's files exist once /ready does (cp out of a running container).
    for _ in 0..400 {
        if env
            .run(&["cp", &format!("{name}:/ready"), "-"])
            .status
            .success()
        {
            return id.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("container {name} never got ready");
}

fn cp(env: &Env, a: &str, b: &str) -> Output {
    env.run(&["cp", a, b])
}

#[test]
fn both_directions_with_docker_directory_rules() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _c = Cleanup(&env);
    running(
        &env,
        "c1",
        "busybox mkdir -p /data/sub && echo in-ctr > /data/sub/f && echo top > /data/top",
    );
    let h = |p: &str| env.path(p).to_str().unwrap().to_string();
    std::fs::create_dir(env.path("out")).unwrap();

    // A directory into an existing directory: under its own name.
    assert!(cp(&env, "c1:/data", &h("out")).status.success());
    assert_eq!(
        std::fs::read_to_string(env.path("out/data/sub/f")).unwrap(),
        "in-ctr\n"
    );
    // SRC/. : the content only.
    let o = cp(&env, "c1:/data/.", &h("out"));
    assert!(o.status.success(), "{}", out(&o));
    assert!(env.path("out/top").is_file() && env.path("out/sub/f").is_file());
    // To a new name: the directory becomes it; a file takes the name.
    assert!(cp(&env, "c1:/data", &h("copy")).status.success());
    assert!(env.path("copy/sub/f").is_file());
    assert!(cp(&env, "c1:/data/top", &h("renamed")).status.success());
    assert_eq!(
        std::fs::read_to_string(env.path("renamed")).unwrap(),
        "top\n"
    );
    // Errors: a directory over a file, a missing directory with a trailing slash, a file
    // with one, a missing source, no container at all, two containers.
    let o = cp(&env, "c1:/data", &h("renamed"));
    assert!(!o.status.success() && out(&o).contains("cannot copy a directory to a file"));
    let o = cp(&env, "c1:/data/top", &h("nodir/"));
    assert!(
        !o.status.success() && out(&o).contains("no such directory"),
        "{}",
        out(&o)
    );
    let o = cp(&env, "c1:/data/top/", &h("out"));
    assert!(
        !o.status.success() && out(&o).contains("not a directory"),
        "{}",
        out(&o)
    );
    let o = cp(&env, "c1:/nope", &h("out"));
    assert!(
        out(&o).contains("Could not find the file /nope in container c1"),
        "{}",
        out(&o)
    );
    let o = cp(&env, &h("out"), &h("x"));
    assert!(out(&o).contains("must specify at least one container source"));
    let o = cp(&env, "c1:/a", "c1:/b");
    assert!(out(&o).contains("copying between containers is not supported"));

    // Into the container: owned by root unless -a, which keeps the host's owner.
    std::fs::create_dir_all(env.path("tree/inner")).unwrap();
    std::fs::write(env.path("tree/inner/g"), "from-host\n").unwrap();
    std::os::unix::fs::chown(env.path("tree/inner/g"), Some(1234), Some(4321)).unwrap();
    // (busybox has no /tmp: a directory copied to a missing path becomes it.)
    assert!(cp(&env, &h("tree"), "c1:/tmp").status.success());
    assert!(cp(&env, &h("tree/inner/g"), "c1:/tmp/inner/")
        .status
        .success());
    let ls = env.ok(&["cp", "c1:/tmp/inner/g", "-"]);
    assert!(ls.contains("from-host"), "{ls}");
    let o = cp(&env, "c1:/tmp/inner/g", &h("g-root"));
    assert!(o.status.success());
    assert_eq!(std::fs::metadata(env.path("g-root")).unwrap().uid(), 0);
    assert!(env
        .run(&["cp", "-a", &h("tree/inner/g"), "c1:/tmp/g-kept"])
        .status
        .success());
    assert!(env
        .run(&["cp", "-a", "c1:/tmp/g-kept", &h("g-kept")])
        .status
        .success());
    let md = std::fs::metadata(env.path("g-kept")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 4321));
    // The container sees what was copied in.
    let o = env.ok(&["container", "cp", "c1:/tmp/inner/g", &h("via-alias")]);
    assert_eq!(o, "");
    assert_eq!(
        std::fs::read_to_string(env.path("via-alias")).unwrap(),
        "from-host\n"
    );

    // Stopped: its overlay is read and written all the same.
    env.ok(&["stop", "-t", "0", "c1"]);
    assert!(cp(&env, &h("renamed"), "c1:/data/after-stop")
        .status
        .success());
    assert!(cp(&env, "c1:/data/after-stop", &h("back")).status.success());
    assert_eq!(std::fs::read_to_string(env.path("back")).unwrap(), "top\n");
    assert!(cp(&env, "c1:/data/sub/f", &h("stopped-f")).status.success());
    assert_eq!(
        std::fs::read_to_string(env.path("stopped-f")).unwrap(),
        "in-ctr\n"
    );
    // Nothing stays mounted.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(env.root().to_str().unwrap()));
    env.fsck_clean();
}

#[test]
fn tar_streams_on_stdin_and_stdout() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _c = Cleanup(&env);
    running(&env, "c2", "busybox mkdir -p /d/e && echo x > /d/e/f");
    let o = env.run(&["cp", "c2:/d", "-"]);
    assert!(o.status.success());
    let tar_path = env.path("d.tar");
    std::fs::write(&tar_path, &o.stdout).unwrap();
    let list = tool("tar", &["-tf", tar_path.to_str().unwrap()]);
    assert_eq!(list, "d/\nd/e/\nd/e/f\n");

    // A tar on stdin lands in an existing directory.
    let src = env.path("src");
    std::fs::create_dir_all(src.join("s")).unwrap();
    std::fs::write(src.join("s/h"), "streamed\n").unwrap();
    let tar = tool("tar", &["-C", src.to_str().unwrap(), "-cf", "-", "s"]);
    let mut child = env
        .cmd()
        .args(["cp", "-", "c2:/d"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(tar.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let o = env.run(&["cp", "c2:/d/s/h", "-"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("streamed"));
    // Not into a file.
    let o = env
        .cmd()
        .args(["cp", "-", "c2:/d/e/f"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out(&o).contains("must be a directory"), "{}", out(&o));
}

#[test]
fn symlinks_in_the_container_never_reach_the_host() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _c = Cleanup(&env);
    // A secret on the host, at a path the container could name through its links.
    let secret = env.path("host-secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let unique = format!("strata-cp-escape-{}", std::process::id());
    let script = format!(
        "busybox ln -s / /escape && busybox ln -s ../../../../../.. /up && \
         busybox ln -s {} /leak && busybox mkdir -p /d && busybox ln -s / /d/{unique}",
        secret.display()
    );
    running(&env, "evil", &script);
    let h = |p: &str| env.path(p).to_str().unwrap().to_string();

    // Writes through links land inside the container.
    let payload = env.path("payload");
    std::fs::write(&payload, "payload\n").unwrap();
    for dest in [
        format!("evil:/escape/{unique}"),
        format!("evil:/up/{unique}-up"),
        format!("evil:/up{}", env.path("written-through-up").display()),
    ] {
        let o = cp(&env, payload.to_str().unwrap(), &dest);
        // Either refused or written inside the container; never on the host.
        let _ = o;
    }
    assert!(!std::path::Path::new(&format!("/{unique}")).exists());
    assert!(!std::path::Path::new(&format!("/{unique}-up")).exists());
    assert!(!env.path("written-through-up").exists());
    let o = cp(&env, &format!("evil:/{unique}"), "-");
    assert!(
        o.status.success(),
        "written in the container's root: {}",
        out(&o)
    );
    // A tar whose entry meets a link in the destination directory stays inside too.
    let t = env.path("t");
    std::fs::create_dir_all(t.join(&unique)).unwrap();
    std::fs::write(t.join(&unique).join("x"), "x").unwrap();
    assert!(cp(&env, &format!("{}/.", t.display()), "evil:/d")
        .status
        .success());
    assert!(!std::path::Path::new(&format!("/{unique}")).exists());
    assert!(!std::path::Path::new("/x").exists() || std::fs::read("/x").unwrap() != b"x");

    // Reads through links read the container's files, not the host's.
    let o = cp(&env, "evil:/leak", &h("leaked"));
    assert!(o.status.success(), "{}", out(&o));
    // Without -L the link itself is copied.
    assert!(std::fs::symlink_metadata(env.path("leaked"))
        .unwrap()
        .file_type()
        .is_symlink());
    for src in [
        "evil:/leak".to_string(),
        format!("evil:/up{}", secret.display()),
        format!("evil:/escape{}", secret.display()),
    ] {
        let o = env.run(&["cp", "-L", &src, "-"]);
        assert!(!o.status.success(), "{src}: {}", out(&o));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("host secret"),
            "{src} read the host's file"
        );
    }
    let o = env.run(&["cp", "-L", "evil:/escape/etc/passwd", "-"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("nobody:x:65534"),
        "the container's passwd: {text}"
    );

    // The same on the stopped container's overlay.
    env.ok(&["stop", "-t", "0", "evil"]);
    let o = cp(
        &env,
        payload.to_str().unwrap(),
        &format!("evil:/escape/{unique}-stopped"),
    );
    assert!(o.status.success(), "{}", out(&o));
    assert!(!std::path::Path::new(&format!("/{unique}-stopped")).exists());
    let o = env.run(&["cp", "-L", &format!("evil:/up{}", secret.display()), "-"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("host secret"));
    env.fsck_clean();
}

#[test]
fn a_stopped_containers_volumes_and_binds() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _c = Cleanup(&env);
    let hb = env.path("hb");
    std::fs::create_dir(&hb).unwrap();
    std::fs::write(hb.join("hostfile"), "bound\n").unwrap();
    let bind = format!("{}:/hb:ro", hb.display());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cv",
        "-v",
        "cvol:/vol",
        "-v",
        &bind,
        "busybox:local",
        "sh",
        "-c",
        "echo in-volume > /vol/f",
    ]);
    for _ in 0..400 {
        if env.ok(&["inspect", "-f", "{{.State.Status}}", "cv"]) == "exited\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "cv"]),
        "exited\n"
    );
    let h = |p: &str| env.path(p).to_str().unwrap().to_string();
    // Out of the volume and the bind, the volume whole under its own name.
    assert!(cp(&env, "cv:/vol/f", &h("f")).status.success());
    assert_eq!(
        std::fs::read_to_string(env.path("f")).unwrap(),
        "in-volume\n"
    );
    assert!(cp(&env, "cv:/hb/hostfile", &h("hf")).status.success());
    assert_eq!(std::fs::read_to_string(env.path("hf")).unwrap(), "bound\n");
    std::fs::create_dir(env.path("whole")).unwrap();
    assert!(cp(&env, "cv:/vol", &h("whole")).status.success());
    assert!(env.path("whole/vol/f").is_file());
    // Into the volume; never into the read-only bind.
    assert!(cp(&env, &h("hf"), "cv:/vol/new").status.success());
    let v = env.root().join("volumes/cvol/_data/new");
    assert_eq!(std::fs::read_to_string(v).unwrap(), "bound\n");
    let o = cp(&env, &h("f"), "cv:/hb/written");
    assert!(
        out(&o).contains("mounted volume is marked read-only"),
        "{}",
        out(&o)
    );
    assert!(!hb.join("written").exists());
}
