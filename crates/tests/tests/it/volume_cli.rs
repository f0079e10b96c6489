//! `run -v/--mount/--tmpfs` and `strata volume ...` end to end: bind mounts both ways and
//! read-only, named volumes across runs, copy-up of the image's content into a new volume,
//! image VOLUMEs, the volume commands' docker output, volumes in use, `rm -v`, `--rm`,
//! volumes kept by store prunes; and the small run flags (`-h`, `--add-host`, `--env-file`).

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Output, Stdio};

use crate::common::{busybox_tar, tool, Env};

/// A store with `busybox:local` and `app:local`: busybox plus `/app/node_modules/pkg/index.js`
/// owned by 1000:1000 and `VOLUME /data`.
pub(crate) fn setup() -> Env {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    let t = tar.to_str().unwrap();
    env.ok(&["import", t, "busybox:local"]);
    let app = env.path("app-tree");
    std::fs::create_dir_all(app.join("app/node_modules/pkg")).unwrap();
    std::fs::write(
        app.join("app/node_modules/pkg/index.js"),
        "module.exports = 1\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/", app.join("escape")).unwrap();
    tool(
        "tar",
        &[
            "--owner=1000",
            "--group=1000",
            "--numeric-owner",
            "-C",
            app.to_str().unwrap(),
            "-rf",
            t,
            "app",
            "escape",
        ],
    );
    env.ok(&["import", "--change", "VOLUME /data", t, "app:local"]);
    env
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Removes every container when dropped (the store's volumes go with the Env).
pub(crate) struct Cleanup<'a>(pub &'a Env);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = self.0.run(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.0.run(&["rm", "-f", id]);
        }
    }
}

fn volume_names(env: &Env) -> Vec<String> {
    env.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bind_mounts_both_ways_read_only_and_relative() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let host = env.path("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello from the host\n").unwrap();
    let spec = format!("{}:/mnt", host.display());
    let o = env.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox:local",
        "sh",
        "-c",
        "cat /mnt/from-host && echo written > /mnt/from-ctr",
    ]);
    assert_eq!(o, "hello from the host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("from-ctr")).unwrap(),
        "written\n"
    );

    // :ro refuses writes, and the host is untouched.
    let ro = format!("{}:/mnt:ro", host.display());
    let o = env.run(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "busybox:local",
        "sh",
        "-c",
        "echo no > /mnt/ro-write",
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("Read-only file system"), "{}", out(&o));
    assert!(!host.join("ro-write").exists());

    // A mount target through a symlink of the image (`/escape -> /`) stays in the rootfs.
    let unique = format!("strata-bind-escape-{}", std::process::id());
    let through = format!("{}:/escape/{unique}", host.display());
    let vol_through = format!("v-escape:/escape/{unique}-vol");
    let o = env.ok(&[
        "run",
        "--rm",
        "-v",
        &through,
        "-v",
        &vol_through,
        "app:local",
        "sh",
        "-c",
        &format!("cat /{unique}/from-host && echo in-vol > /{unique}-vol/f"),
    ]);
    assert_eq!(o, "hello from the host\n");
    assert!(!std::path::Path::new(&format!("/{unique}")).exists());
    assert!(!std::path::Path::new(&format!("/{unique}-vol")).exists());
    let f = env.root().join("volumes/v-escape/_data/f");
    assert_eq!(std::fs::read_to_string(f).unwrap(), "in-vol\n");

    // --mount type=bind,readonly the same; a missing source is docker's error.
    let m = format!("type=bind,source={},target=/m,readonly", host.display());
    let o = env.run(&[
        "run",
        "--rm",
        "--mount",
        &m,
        "busybox:local",
        "sh",
        "-c",
        "echo x > /m/y",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!host.join("y").exists());
    let missing = env.path("missing-src");
    let m = format!("type=bind,source={},target=/m", missing.display());
    let o = env.run(&["run", "--rm", "--mount", &m, "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", out(&o));
    assert!(
        out(&o).contains(&format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            missing.display()
        )),
        "{}",
        out(&o)
    );
    assert!(!missing.exists());

    // -v creates a missing host directory; `./rel` is relative to the current directory.
    let o = env
        .cmd()
        .current_dir(env.dir.path())
        .args([
            "run",
            "--rm",
            "-v",
            "./made/here:/w",
            "busybox:local",
            "sh",
            "-c",
            "echo rel > /w/f",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        std::fs::read_to_string(env.path("made/here/f")).unwrap(),
        "rel\n"
    );
    // A relative path without `.` is a volume name, and `a/b` is not a valid one.
    let o = env.run(&["run", "--rm", "-v", "a/b:/w", "busybox:local", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(out(&o).contains("includes invalid characters for a local volume name"));
    env.fsck_clean();
}

#[test]
fn named_volume_persists_and_copy_up_fills_new_volumes() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "busybox:local",
        "sh",
        "-c",
        "echo kept > /d/file",
    ]);
    let o = env.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "busybox:local",
        "cat",
        "/d/file",
    ]);
    assert_eq!(o, "kept\n");
    // Named volumes stay after --rm.
    assert_eq!(volume_names(&env), vec!["data"]);

    // A new anonymous volume over /app/node_modules starts with the image's files and owners.
    let o = env.ok(&[
        "run",
        "-d",
        "--name",
        "nm",
        "-v",
        "/app/node_modules",
        "app:local",
        "sleep",
        "1000",
    ]);
    let _c = Cleanup(&env);
    assert_eq!(o.trim().len(), 64);
    let inspect = env.ok(&["inspect", "nm"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let mounts = v[0]["Mounts"].as_array().unwrap().clone();
    // `-v /app/node_modules` plus the image's VOLUME /data.
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    let nm = mounts
        .iter()
        .find(|m| m["Destination"] == "/app/node_modules")
        .unwrap();
    assert_eq!(nm["Type"], "volume");
    assert_eq!(nm["Driver"], "local");
    assert_eq!(nm["RW"], true);
    let name = nm["Name"].as_str().unwrap().to_string();
    assert_eq!(name.len(), 64);
    let source = std::path::PathBuf::from(nm["Source"].as_str().unwrap());
    assert_eq!(source, env.root().join("volumes").join(&name).join("_data"));
    let f = source.join("pkg/index.js");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "module.exports = 1\n");
    let md = std::fs::metadata(&f).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1000));
    assert_eq!(std::fs::metadata(&source).unwrap().uid(), 1000);
    let data = mounts.iter().find(|m| m["Destination"] == "/data").unwrap();
    assert_eq!(data["Type"], "volume");

    // A named volume that already has content is not filled again.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/app/node_modules",
        "app:local",
        "true",
    ]);
    let o = env.ok(&["run", "--rm", "-v", "data:/x", "busybox:local", "ls", "/x"]);
    assert_eq!(o, "file\n");
    // A new named volume is filled; with nocopy it is not.
    let o = env.ok(&[
        "run",
        "--rm",
        "-v",
        "fresh:/app/node_modules",
        "app:local",
        "ls",
        "/app/node_modules",
    ]);
    assert_eq!(o, "pkg\n");
    let o = env.ok(&[
        "run",
        "--rm",
        "-v",
        "empty:/app/node_modules:nocopy",
        "app:local",
        "ls",
        "/app/node_modules",
    ]);
    assert_eq!(o, "");
    env.fsck_clean();
}

#[test]
fn volume_commands_print_as_docker() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    assert_eq!(env.ok(&["volume", "ls"]), "DRIVER    VOLUME NAME\n");
    assert_eq!(env.ok(&["volume", "create", "v1"]), "v1\n");
    // Creating an existing volume is not an error (docker's).
    assert_eq!(env.ok(&["volume", "create", "v1"]), "v1\n");
    assert_eq!(
        env.ok(&["volume", "create", "--label", "team=a", "v2"]),
        "v2\n"
    );
    let anon = env.ok(&["volume", "create"]);
    let anon = anon.trim();
    assert_eq!(anon.len(), 64);
    assert!(anon.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        env.ok(&["volume", "ls"]),
        format!("DRIVER    VOLUME NAME\nlocal     {anon}\nlocal     v1\nlocal     v2\n")
    );
    assert_eq!(
        env.ok(&["volume", "ls", "-q", "--filter", "label=team=a"]),
        "v2\n"
    );
    assert_eq!(
        env.ok(&["volume", "ls", "-q", "--filter", "name=v1"]),
        "v1\n"
    );
    assert_eq!(
        env.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Labels}}",
            "-f",
            "name=v2"
        ]),
        "v2 local team=a\n"
    );
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["volume", "inspect", "v2"])).unwrap();
    let v = &j[0];
    assert_eq!(v["Name"], "v2");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["team"], "a");
    assert_eq!(v["Options"], serde_json::Value::Null);
    assert!(v["CreatedAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(
        v["Mountpoint"].as_str().unwrap(),
        env.root().join("volumes/v2/_data").to_str().unwrap()
    );
    assert_eq!(
        env.ok(&["volume", "inspect", "-f", "{{.Name}}:{{.Scope}}", "v1"]),
        "v1:local\n"
    );
    // `inspect` finds volumes after containers and images, as docker's.
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Name}} {{.Driver}}", "v1"]),
        "v1 local\n"
    );
    let e = env.fails(&["volume", "inspect", "nope"]);
    assert!(e.contains("No such volume: nope"), "{e}");
    let e = env.fails(&["volume", "rm", "nope"]);
    assert!(e.contains("get nope: no such volume"), "{e}");
    env.ok(&["volume", "rm", "-f", "nope"]);

    // A volume a container uses, running or not, is not removed; `dangling` tells them apart.
    let id = env.ok(&["run", "-d", "-v", "v1:/d", "busybox:local", "sleep", "1000"]);
    let id = id.trim();
    let _c = Cleanup(&env);
    let e = env.fails(&["volume", "rm", "v1"]);
    assert!(
        e.contains(&format!("remove v1: volume is in use - [{id}]")),
        "{e}"
    );
    env.ok(&["stop", "-t", "0", id]);
    let e = env.fails(&["volume", "rm", "-f", "v1"]);
    assert!(e.contains("volume is in use"), "{e}");
    assert_eq!(
        env.ok(&["volume", "ls", "-q", "--filter", "dangling=false"]),
        "v1\n"
    );

    // prune: anonymous unused volumes only, after a confirmation read from stdin.
    let prune = |args: &[&str], answer: &str| {
        let mut c = env.cmd();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", out(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let o = prune(&["volume", "prune"], "");
    assert_eq!(
        o,
        "WARNING! This will remove anonymous local volumes not used by at least one container.\n\
         Are you sure you want to continue? [y/N] "
    );
    let o = prune(&["volume", "prune"], "n\n");
    assert!(!o.contains("Deleted"), "{o}");
    assert_eq!(volume_names(&env).len(), 3);
    // `volume create` makes named volumes, even without a name: only -a prunes them.
    let o = prune(&["volume", "prune"], "y\n");
    assert!(o.ends_with("Total reclaimed space: 0B\n"), "{o}");
    assert_eq!(volume_names(&env).len(), 3);
    let o = env.ok(&["volume", "prune", "-f", "-a"]);
    assert_eq!(
        o,
        format!("Deleted Volumes:\n{anon}\nv2\n\nTotal reclaimed space: 0B\n")
    );
    assert_eq!(volume_names(&env), vec!["v1"]);
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "v1:/d",
        "busybox:local",
        "sh",
        "-c",
        "echo 123456789 > /d/ten",
    ]);
    assert_eq!(
        env.ok(&[
            "system",
            "df",
            "--format",
            "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}"
        ])
        .lines()
        .find(|l| l.starts_with("Local Volumes"))
        .unwrap(),
        "Local Volumes 1 1 10B 0B (0%)"
    );
    env.ok(&["rm", id]);
    assert_eq!(env.ok(&["volume", "rm", "v1"]), "v1\n");
    assert!(volume_names(&env).is_empty());
    env.fsck_clean();
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_run_rm_and_volumes_survive_prune() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _c = Cleanup(&env);
    // --rm (foreground and detached) removes the anonymous volumes, not the named ones.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "/anon",
        "-v",
        "named:/n",
        "busybox:local",
        "true",
    ]);
    assert_eq!(volume_names(&env), vec!["named"]);
    env.ok(&["run", "--rm", "app:local", "true"]);
    assert_eq!(volume_names(&env), vec!["named"]);

    // A detached --rm container's anonymous volumes go when it has exited.
    env.ok(&["run", "-d", "--rm", "-v", "/anon", "busybox:local", "true"]);
    for _ in 0..400 {
        if env.ok(&["ps", "-aq"]).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert_eq!(volume_names(&env), vec!["named"]);

    // A container that is not created leaves no anonymous volume behind.
    let t = env.ok(&[
        "run",
        "-d",
        "--name",
        "taken",
        "busybox:local",
        "sleep",
        "1000",
    ]);
    let o = env.run(&[
        "run",
        "-d",
        "--name",
        "taken",
        "-v",
        "/anon",
        "busybox:local",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", out(&o));
    assert!(out(&o).contains("is already in use"), "{}", out(&o));
    // A published port that is taken fails the run after its volumes were made.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = format!("127.0.0.1:{}:80", busy.local_addr().unwrap().port());
    let o = env.run(&[
        "run",
        "--rm",
        "-v",
        "/anon",
        "-p",
        &p,
        "busybox:local",
        "true",
    ]);
    assert!(out(&o).contains("already allocated"), "{}", out(&o));
    assert_eq!(o.status.code(), Some(125), "{}", out(&o));
    assert_eq!(volume_names(&env), vec!["named"]);
    env.ok(&["rm", "-f", t.trim()]);

    // rm keeps them, rm -v removes the anonymous ones.
    let a = env.ok(&["run", "-d", "-v", "/anon", "busybox:local", "sleep", "1000"]);
    let b = env.ok(&[
        "run",
        "-d",
        "-v",
        "/anon",
        "-v",
        "named:/n",
        "busybox:local",
        "sleep",
        "1000",
    ]);
    assert_eq!(volume_names(&env).len(), 3);
    env.ok(&["rm", "-f", a.trim()]);
    assert_eq!(volume_names(&env).len(), 3);
    env.ok(&["rm", "-f", "-v", b.trim()]);
    let left = volume_names(&env);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"named".to_string()));

    // Write into a volume, then prune everything the store can: the volume stays.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "named:/n",
        "busybox:local",
        "sh",
        "-c",
        "echo precious > /n/f",
    ]);
    env.ok(&["rmi", "app:local"]);
    env.ok(&["system", "prune", "--all"]);
    env.ok(&["prune", "--all"]);
    assert_eq!(volume_names(&env).len(), 2);
    let f = env.root().join("volumes/named/_data/f");
    assert_eq!(std::fs::read_to_string(f).unwrap(), "precious\n");
    env.fsck_clean();
}

#[test]
fn tmpfs_hostname_add_host_env_file() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let o = env.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:size=1m,mode=700",
        "--mount",
        "type=tmpfs,target=/u",
        "busybox:local",
        "sh",
        "-c",
        "busybox grep -E ' /(t|u) ' /proc/mounts; busybox stat -c %a /u",
    ]);
    assert!(o.contains("tmpfs /t tmpfs rw,nosuid,nodev"), "{o}");
    assert!(o.contains("size=1024k,mode=700"), "{o}");
    // docker's default mode for a tmpfs, 1777 (which /proc/mounts leaves out).
    assert!(
        o.contains("tmpfs /u tmpfs") && o.ends_with("\n1777\n"),
        "{o}"
    );
    let e = env.run(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t",
        "-v",
        "/x:/t",
        "busybox:local",
        "true",
    ]);
    assert_eq!(e.status.code(), Some(125));
    assert!(out(&e).contains("Duplicate mount point: /t"), "{}", out(&e));

    let o = env.ok(&[
        "run",
        "--rm",
        "-h",
        "box.example",
        "--add-host",
        "db.local:10.1.2.3",
        "busybox:local",
        "sh",
        "-c",
        "cat /proc/sys/kernel/hostname; echo $HOSTNAME; cat /etc/hosts",
    ]);
    let mut lines = o.lines();
    assert_eq!(lines.next(), Some("box.example"));
    assert_eq!(lines.next(), Some("box.example"));
    assert!(o.contains("10.1.2.3\tdb.local"), "{o}");
    let e = env.run(&["run", "--rm", "--add-host", "nope", "busybox:local", "true"]);
    assert_eq!(e.status.code(), Some(125));
    // `--help` still prints the help (`-h` is the host name, as in docker).
    assert!(env.ok(&["run", "--help"]).contains("--hostname"));

    let f = env.path("env.list");
    std::fs::write(
        &f,
        "# a comment\nA=1\n  B=two words\nFROM_HOST\nNOT_SET_ANYWHERE_XYZ\nC=\"quoted\"\n",
    )
    .unwrap();
    let o = env
        .cmd()
        .env("FROM_HOST", "h")
        .env_remove("NOT_SET_ANYWHERE_XYZ")
        .args([
            "run",
            "--rm",
            "--env-file",
            f.to_str().unwrap(),
            "-e",
            "A=override",
            "busybox:local",
            "env",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let env_out = String::from_utf8(o.stdout).unwrap();
    for want in [
        "A=override\n",
        "B=two words\n",
        "FROM_HOST=h\n",
        "C=\"quoted\"\n",
    ] {
        assert!(env_out.contains(want), "{want:?} in {env_out}");
    }
    assert!(!env_out.contains("NOT_SET_ANYWHERE_XYZ"), "{env_out}");
}
