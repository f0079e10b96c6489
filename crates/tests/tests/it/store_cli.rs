//! The image commands end to end on a private store: determinism, bad input, crash safety,
//! concurrency. No peers needed.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{busybox_tar, scratch, tool, Env};

fn setup() -> (Env, String) {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    (env, tar.to_str().unwrap().to_string())
}

#[test]
fn import_save_load_save_is_byte_identical() {
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    env.ok(&["import", &tar, "bb:1"]);
    for format in ["docker", "oci"] {
        let a = env.path(&format!("a-{format}.tar"));
        let b = env.path(&format!("b-{format}.tar"));
        env.ok(&[
            "save",
            "--format",
            format,
            "-o",
            a.to_str().unwrap(),
            "bb:1",
        ]);
        let other = Env::new();
        let out = other.ok(&["load", "-i", a.to_str().unwrap()]);
        assert_eq!(out, "Loaded image: bb:1\n");
        other.ok(&[
            "save",
            "--format",
            format,
            "-o",
            b.to_str().unwrap(),
            "bb:1",
        ]);
        assert!(
            fs::read(&a).unwrap() == fs::read(&b).unwrap(),
            "{format} archives differ"
        );
    }
    // The same directory (tarball) imported twice gives the same layer digest.
    env.ok(&["import", &tar, "bb:2"]);
    let l1 = env.ok(&["inspect", "--", "bb:1"]);
    let l2 = env.ok(&["inspect", "--", "bb:2"]);
    let layers = |s: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(s).unwrap()[0]["RootFS"]["Layers"].clone()
    };
    assert_eq!(layers(&l1), layers(&l2));
}

#[test]
fn images_history_inspect_tag_rmi() {
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    let id = env.ok(&[
        "import",
        "--change",
        "CMD [\"sh\"]",
        "--change",
        "ENV A=1",
        &tar,
        "example.com/team/app:v1",
    ]);
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let images = env.ok(&["images"]);
    let mut lines = images.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("REPOSITORY"), "{header}");
    for col in ["TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(row.starts_with("example.com/team/app"), "{row}");
    assert!(row.contains(&id[7..19]), "{row}");
    assert_eq!(env.ok(&["images", "-q"]).trim(), &id[7..19]);
    let json: serde_json::Value =
        serde_json::from_str(env.ok(&["images", "--format", "json"]).trim()).unwrap();
    assert_eq!(json["Repository"], "example.com/team/app");
    assert_eq!(json["Tag"], "v1");
    assert_eq!(
        env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "example.com/team/app:v1\n"
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "example.com/team/app:v1"])).unwrap();
    assert_eq!(inspect[0]["Id"], id);
    assert_eq!(inspect[0]["RepoTags"][0], "example.com/team/app:v1");
    assert_eq!(inspect[0]["Config"]["Cmd"][0], "sh");
    assert_eq!(inspect[0]["Config"]["Env"][0], "A=1");
    assert_eq!(inspect[0]["Os"], "linux");
    assert!(inspect[0]["Size"].as_u64().unwrap() > 100_000);

    let hist = env.ok(&["history", "example.com/team/app:v1"]);
    assert!(hist.starts_with("IMAGE"), "{hist}");
    assert!(hist.contains("Imported from -"), "{hist}");

    env.ok(&["tag", "example.com/team/app:v1", "short"]);
    assert!(env.ok(&["images"]).contains("short "));
    let rm = env.ok(&["rmi", "short"]);
    assert_eq!(rm, "Untagged: short:latest\n");
    let rm = env.ok(&["rmi", "example.com/team/app:v1"]);
    assert!(
        rm.contains("Untagged: example.com/team/app:v1") && rm.contains(&format!("Deleted: {id}")),
        "{rm}"
    );
    assert_eq!(env.ok(&["images", "-q"]), "");
    // Nothing left but the layout files.
    let blobs = fs::read_dir(env.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
}

#[test]
fn bad_input_gets_one_line_errors_and_leaves_the_store_as_it_was() {
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    env.ok(&["import", &tar, "bb:1"]);
    let saved = env.path("bb.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), "bb:1"]);
    let before = env.ok(&["images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]);

    let e = env.fails(&["inspect", "nosuch:image"]);
    assert!(e.contains("No such image: nosuch:image"), "{e}");
    let e = env.fails(&["save", "-o", env.path("x.tar").to_str().unwrap(), "nosuch"]);
    assert!(e.contains("no such image: nosuch"), "{e}");
    assert!(!env.path("x.tar").exists());
    let e = env.fails(&["tag", "nosuch", "x"]);
    assert!(e.contains("nosuch"), "{e}");

    // Truncated archive.
    let bytes = fs::read(&saved).unwrap();
    let trunc = env.path("trunc.tar");
    fs::write(&trunc, &bytes[..bytes.len() / 3]).unwrap();
    let e = env.fails(&["load", "-i", trunc.to_str().unwrap()]);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains(trunc.to_str().unwrap()), "{e}");
    // Not an archive at all.
    let junk = env.path("junk.tar");
    fs::write(&junk, b"this is not an archive").unwrap();
    let e = env.fails(&["load", "-i", junk.to_str().unwrap()]);
    assert_eq!(e.lines().count(), 1, "{e}");
    // Digest mismatch: change one byte of the busybox binary inside the archive.
    let mut bad = bytes.clone();
    let pos = bad
        .windows(8)
        .position(|w| w == b"BusyBox ")
        .expect("busybox banner in archive");
    bad[pos] = b'b';
    let badf = env.path("bad.tar");
    fs::write(&badf, &bad).unwrap();
    let e = env.fails(&["load", "-i", badf.to_str().unwrap()]);
    assert!(e.contains("hashes to") && e.contains("config says"), "{e}");
    // A rootfs that is not a tarball.
    let e = env.fails(&["import", junk.to_str().unwrap(), "junk:1"]);
    assert!(e.contains("not a valid tar"), "{e}");
    // A missing file.
    let e = env.fails(&["import", "/nonexistent.tar", "x"]);
    assert!(e.contains("/nonexistent.tar"), "{e}");

    assert_eq!(
        env.ok(&["images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]),
        before
    );
    env.fsck_clean();
}

#[test]
fn full_disk_fails_cleanly() {
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    let small = env.path("small");
    fs::create_dir_all(&small).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            small.to_str().unwrap(),
        ])
        .status()
        .expect("mount");
    assert!(
        st.success(),
        "mounting a 1 MiB tmpfs failed (tests run as root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(small.clone());
    let root = small.join("store");
    let o = Command::new(strata_tests::strata_bin())
        .args(["--root", root.to_str().unwrap(), "import", &tar, "big:1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("No space left on device"), "{e}");
    let o = Command::new(strata_tests::strata_bin())
        .args(["--root", root.to_str().unwrap(), "fsck"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "temp files left behind"
    );
}

/// SIGKILL at 20 moments during import, load and save: the store stays consistent and the
/// next command succeeds.
#[test]
fn killed_at_random_moments_store_stays_consistent() {
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    env.ok(&["import", &tar, "base:1"]);
    let archive = env.path("base.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "base:1"]);
    let mut seed: u64 = 0x5eed_1234;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..20 {
        let out = env.path(&format!("out-{i}.tar"));
        let args: Vec<String> = match i % 3 {
            0 => vec!["import".into(), tar.clone(), format!("imp:{i}")],
            1 => vec!["load".into(), "-i".into(), archive.to_str().unwrap().into()],
            _ => vec![
                "save".into(),
                "--format".into(),
                "oci".into(),
                "-o".into(),
                out.to_str().unwrap().into(),
                "base:1".into(),
            ],
        };
        let mut child = env
            .cmd()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rand() % 40_000));
        let _ = child.kill();
        let _ = child.wait();
        env.fsck_clean();
        // The next command succeeds.
        env.ok(&["images", "-q"]);
        if i % 3 == 2 {
            // A killed save leaves no partial archive under the requested name.
            if out.exists() {
                let o = Env::new();
                o.ok(&["load", "-i", out.to_str().unwrap()]);
            }
        }
    }
    env.ok(&["prune"]);
    env.fsck_clean();
    env.ok(&["import", &tar, "after:1"]);
}

/// SIGKILL during a build that copies 50,000 small files (`COPY . /app`): at 0.5 s, 1.5 s and
/// 3 s after the start and once just after the COPY step began; at least one kill lands while
/// the COPY runs (its title printed, its DONE not). After each the store is consistent, and a
/// full build then succeeds with every file in the image.
#[test]
fn killed_during_a_50k_file_copy_store_stays_consistent() {
    use std::io::BufRead;
    use std::sync::mpsc;
    use std::time::Instant;
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    env.ok(&["import", &tar, "busybox:local"]);
    let scratch = scratch();
    let ctx = scratch.path().join("ctx");
    let mut seed: u64 = 0x50_000;
    for i in 0..50_000u64 {
        let dir = ctx.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let line = format!("{i} {seed:016x}\n");
        let len = 100 + (seed % 200) as usize;
        fs::write(
            dir.join(format!("f{i:05}")),
            line.repeat(len / line.len() + 1),
        )
        .unwrap();
    }
    let df = env.path("Dockerfile.kill");
    fs::write(
        &df,
        "FROM busybox:local\nCOPY . /app\nRUN ls /app | wc -l\n",
    )
    .unwrap();
    let build = |extra: &[&str]| {
        let mut c = env.cmd();
        c.args(["build", "--progress=plain", "--network", "none"])
            .args(extra)
            .args(["-f", df.to_str().unwrap(), ctx.to_str().unwrap()]);
        c
    };
    // Kill moments: after a fixed delay, or a delay after the COPY's title line.
    enum At {
        Start(u64),
        CopyStarted(u64),
    }
    let mut during_copy = 0;
    let mut phases = Vec::new();
    for at in [
        At::Start(500),
        At::Start(1500),
        At::Start(3000),
        At::CopyStarted(200),
    ] {
        // --no-cache: a COPY finished by an earlier attempt is done again.
        let mut child = build(&["--no-cache"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let is_copy_title = |l: &str| l.starts_with('#') && l.contains("] COPY . /app");
        match at {
            At::Start(ms) => std::thread::sleep(Duration::from_millis(ms)),
            At::CopyStarted(ms) => {
                while !lines.iter().any(|l: &String| is_copy_title(l)) {
                    let left = Duration::from_secs(30).saturating_sub(start.elapsed());
                    match rx.recv_timeout(left) {
                        Ok(l) => lines.push(l),
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
        let killed_at = start.elapsed();
        let _ = child.kill();
        let status = child.wait().unwrap();
        // Everything it printed before it died (the pipe closes with it).
        while let Ok(l) = rx.recv_timeout(Duration::from_secs(5)) {
            lines.push(l);
        }
        let id = lines
            .iter()
            .find(|l| is_copy_title(l))
            .map(|l| l.split_whitespace().next().unwrap().to_string());
        let phase = match &id {
            _ if status.success() => "after the build",
            None => "before the COPY",
            Some(id) if lines.iter().any(|l| l.starts_with(&format!("{id} DONE"))) => {
                "after the COPY"
            }
            Some(_) => {
                during_copy += 1;
                "during the COPY"
            }
        };
        phases.push(format!("{killed_at:.1?}: {phase}"));
        env.fsck_clean();
        // The next command succeeds.
        env.ok(&["images", "-q"]);
    }
    assert!(
        during_copy > 0,
        "no kill landed during the COPY: {phases:?}"
    );
    let o = build(&["-t", "many:1"]).output().unwrap();
    assert!(
        o.status.success(),
        "the build after the kills failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.fsck_clean();
    let count = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "many:1",
        "sh",
        "-c",
        "find /app -type f | wc -l; ls /app | wc -l; cat /app/d123/f12345",
    ]);
    let want = fs::read_to_string(ctx.join("d123/f12345")).unwrap();
    assert_eq!(count, format!("50000\n500\n{want}"), "{phases:?}");
}

/// Four processes each import, tag, save and remove their own images in one store while a
/// fifth prunes in a loop.
#[test]
fn concurrent_processes_share_one_store() {
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Stops the pruner however the workers end (a failed worker must fail the test, not
    // leave the pruner looping).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let (prunes, results) = std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                env.ok(&["prune"]);
                n += 1;
            }
            n
        });
        let results: Vec<std::thread::Result<()>> = {
            let _stop = Stop(&stop);
            let workers: Vec<_> = (0..4)
                .map(|w| {
                    let env = &env;
                    let tar = tar.clone();
                    s.spawn(move || {
                        for i in 0..5 {
                            let name = format!("w{w}:i{i}");
                            env.ok(&["import", &tar, &name]);
                            env.ok(&["tag", &name, &format!("w{w}-copy:i{i}")]);
                            let out = env.path(&format!("w{w}-{i}.tar"));
                            env.ok(&["save", "-o", out.to_str().unwrap(), &name]);
                            env.ok(&["rmi", &format!("w{w}-copy:i{i}")]);
                            if i % 2 == 0 {
                                env.ok(&["rmi", &name]);
                            }
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join()).collect()
        };
        (pruner.join(), results)
    });
    for r in results {
        if let Err(e) = r {
            std::panic::resume_unwind(e);
        }
    }
    assert!(prunes.expect("pruner") > 0);
    env.fsck_clean();
    let q = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(q.lines().count(), 4 * 2, "{q}");
}

#[test]
fn untagged_images_are_kept_until_removed() {
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    let id = env.ok(&["import", &tar]);
    let id = id.trim();
    assert_eq!(
        env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]),
        format!("<none>:<none> {}\n", &id[7..19])
    );
    let f = env.path("noname.tar");
    env.ok(&["save", "-o", f.to_str().unwrap(), &id[7..19]]);
    let other = Env::new();
    assert_eq!(
        other.ok(&["load", "-i", f.to_str().unwrap()]),
        format!("Loaded image ID: {id}\n")
    );
    other.ok(&["prune"]);
    assert_eq!(other.ok(&["images", "-q"]).trim(), &id[7..19]);
    other.ok(&["history", &id[7..19]]);
    assert_eq!(other.ok(&["rmi", &id[7..19]]), format!("Deleted: {id}\n"));
    assert_eq!(other.ok(&["images", "-q"]), "");
    other.fsck_clean();
    // docker's `image prune` removes dangling images, and says which.
    other.ok(&["load", "-i", f.to_str().unwrap()]);
    let out = other.ok(&["image", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Images:\ndeleted: {id}\n\n")),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(other.ok(&["images", "-q"]), "");
    other.fsck_clean();
    // A named image is no dangling one.
    other.ok(&["load", "-i", f.to_str().unwrap()]);
    other.ok(&["tag", &id[7..19], "kept:1"]);
    let out = other.ok(&["system", "prune", "-f"]);
    assert!(!out.contains("Deleted Images:"), "{out}");
    assert_eq!(other.ok(&["images", "-q"]).trim(), &id[7..19]);
}

/// Rows of `images` are per image id, as docker's: an untagged image that gets a name (by
/// `tag`, or by building it again with `-t`) shows only its named rows, no `<none>` row as
/// well (Docker 20.10 shows only `NAME TAG` in `images` and `images -a`); without its names
/// it is gone, as `docker rmi` deletes it.
#[test]
fn a_named_image_has_no_none_row() {
    strata_tests::require!(Root, Busybox);
    let (env, tar) = setup();
    let rows = |env: &Env| env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let id = env.ok(&["import", &tar]);
    let id = id.trim();
    let short = &id[7..19];
    env.ok(&["tag", short, "bb:1"]);
    assert_eq!(rows(&env), format!("bb:1 {short}\n"));
    env.ok(&["tag", "bb:1", "bb:2"]);
    assert_eq!(rows(&env), format!("bb:1 {short}\nbb:2 {short}\n"));
    assert_eq!(env.ok(&["images", "-q"]), format!("{short}\n"));
    env.ok(&["rmi", "bb:2"]);
    assert_eq!(
        env.ok(&["rmi", "bb:1"]),
        format!("Untagged: bb:1\nDeleted: {id}\n")
    );
    assert_eq!(rows(&env), "");
    env.fsck_clean();
    // An untagged build, then the same build with -t (the same image, from the cache).
    env.ok(&["import", &tar, "base:1"]);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM base:1\nCOPY f /f\n").unwrap();
    fs::write(ctx.join("f"), "x\n").unwrap();
    let ctx = ctx.to_str().unwrap();
    let built = env.ok(&["build", "-q", ctx]);
    let b = &built.trim()[7..19];
    assert_eq!(env.ok(&["build", "-q", "-t", "app:1", ctx]), built);
    let listed = rows(&env);
    assert!(listed.contains(&format!("app:1 {b}\n")), "{listed}");
    assert!(!listed.contains("<none>"), "{listed}");
    // The reverse order too: named first, then built again without -t.
    env.ok(&["build", "-q", ctx]);
    assert!(!rows(&env).contains("<none>"), "{}", rows(&env));
    env.fsck_clean();
}

#[test]
fn save_into_a_fifo_writes_through_it_and_keeps_it() {
    strata_tests::require!(Root, Busybox);
    // `save -o /dev/null` once replaced /dev/null with a regular file (write beside, then
    // rename). A FIFO stands in for the device: it must stay a FIFO and carry the archive.
    let (env, tar) = setup();
    env.ok(&["import", &tar, "bb:1"]);
    let fifo = env.path("pipe");
    tool("mkfifo", &[fifo.to_str().unwrap()]);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).unwrap())
    };
    env.ok(&["save", "-o", fifo.to_str().unwrap(), "bb:1"]);
    let bytes = reader.join().unwrap();
    assert!(bytes.len() > 1024, "the archive went through the FIFO");
    assert_eq!(&bytes[257..262], b"ustar", "a tar archive");
    let ft = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&ft),
        "the FIFO was replaced"
    );
    assert!(std::fs::read_dir(env.dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("strata-tmp")));
}
