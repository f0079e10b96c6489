//! The context's stat cache end to end: a rebuild after one file of a 2,000-file context
//! changed misses with the new content; after a `touch` (content unchanged), or nothing at
//! all, it hits; content replaced with its size and mtime restored is still noticed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{busybox_tar, Env};

const DOCKERFILE: &str = "FROM busybox:local\nCOPY . /app\n";

/// A 2,000-file context (20 directories of 100) and a Dockerfile outside it.
fn setup() -> (Env, PathBuf, PathBuf) {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    let ctx = env.path("ctx");
    for d in 0..20 {
        let dir = ctx.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:03}")), format!("file {d} {f}\n")).unwrap();
        }
    }
    let df = env.path("Dockerfile");
    fs::write(&df, DOCKERFILE).unwrap();
    (env, ctx, df)
}

/// Build `ctx` with the Dockerfile `df` into the local directory `out`; whether its COPY
/// was CACHED.
fn build(env: &Env, df: &Path, ctx: &Path, out: &Path) -> bool {
    let _ = fs::remove_dir_all(out);
    let o = env.run(&[
        "build",
        "--progress=plain",
        "-f",
        df.to_str().unwrap(),
        "--output",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    // `#2 [2/2] COPY . /app`, then `#2 CACHED` on a hit.
    let id = e
        .lines()
        .find(|l| l.ends_with("COPY . /app"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no COPY step in\n{e}"));
    e.lines().any(|l| l == format!("{id} CACHED"))
}

/// New content written into `p` and its mtime put back (as `touch -d` would): only the
/// ctime tells it changed.
fn rewrite_keeping_mtime(p: &Path, content: &str) {
    let mtime = fs::metadata(p).unwrap().modified().unwrap();
    fs::write(p, content).unwrap();
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

fn stat_caches(env: &Env) -> Vec<PathBuf> {
    fs::read_dir(env.root().join("cache/stat"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_rebuild_reads_what_changed() {
    strata_tests::require!(Root, Busybox);
    let (env, ctx, df) = setup();
    let out = env.path("out");
    // Files younger than 2 s are not kept in the cache (their change could share the
    // timestamp tick of their hashing): let them age first.
    std::thread::sleep(Duration::from_millis(2100));
    assert!(!build(&env, &df, &ctx, &out));
    assert_eq!(stat_caches(&env).len(), 1, "one stat cache for the context");
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let saved = ino(&stat_caches(&env)[0]);

    // Nothing changed: a hit, and the cache is not rewritten (a rewrite is a new file
    // renamed into place).
    assert!(build(&env, &df, &ctx, &out));
    assert_eq!(ino(&stat_caches(&env)[0]), saved);

    // One file changed: a miss, with the new content.
    let f = ctx.join("d07/f042");
    fs::write(&f, "changed!\n").unwrap();
    assert!(!build(&env, &df, &ctx, &out));
    assert_eq!(
        fs::read_to_string(out.join("app/d07/f042")).unwrap(),
        "changed!\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("app/d07/f041")).unwrap(),
        "file 7 41\n"
    );

    // Touched, content unchanged: a hit.
    std::thread::sleep(Duration::from_millis(50));
    let g = ctx.join("d03/f003");
    let t = fs::File::options().write(true).open(&g).unwrap();
    t.set_modified(std::time::SystemTime::now()).unwrap();
    drop(t);
    assert!(build(&env, &df, &ctx, &out));

    // New content of the same size with the old mtime put back (`touch -d`): only the
    // ctime tells, and it does.
    std::thread::sleep(Duration::from_millis(2100));
    assert!(build(&env, &df, &ctx, &out));
    let h = ctx.join("d11/f011");
    let before = fs::metadata(&h).unwrap();
    rewrite_keeping_mtime(&h, "FILE 11 11\n");
    let after = fs::metadata(&h).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap())
    );
    assert!(!build(&env, &df, &ctx, &out));
    assert_eq!(
        fs::read_to_string(out.join("app/d11/f011")).unwrap(),
        "FILE 11 11\n"
    );

    // A corrupt stat cache is an empty one.
    fs::write(&stat_caches(&env)[0], b"strata/stat-cache/v1\ngarbage").unwrap();
    assert!(build(&env, &df, &ctx, &out));
    assert_ne!(
        fs::read(&stat_caches(&env)[0]).unwrap(),
        b"strata/stat-cache/v1\ngarbage"
    );
    env.ok(&["prune"]);
    env.fsck_clean();
    assert_eq!(stat_caches(&env).len(), 1, "prune keeps the stat cache");
    env.ok(&["prune", "--all"]);
    assert!(stat_caches(&env).is_empty(), "prune --all drops it");
    env.fsck_clean();
}

/// The snapshot directory of the top layer of image `name`.
fn top_snapshot(env: &Env, name: &str) -> PathBuf {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", name])).unwrap();
    let layers = v[0]["RootFS"]["Layers"].as_array().expect("RootFS.Layers");
    let top = layers.last().unwrap().as_str().unwrap();
    env.root()
        .join("snapshots")
        .join(top.strip_prefix("sha256:").unwrap())
}

/// A COPY of a changed context links what its previous layer already holds (same bytes,
/// owner, mode and mtime) instead of copying it again, and copies the rest: the changed
/// file, a file whose bytes changed behind the same size and mtime, a file whose mode
/// changed. The new layer and the old one stay what they were made from.
#[test]
fn a_changed_context_links_what_the_previous_layer_holds() {
    strata_tests::require!(Root, Busybox);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (env, ctx, df) = setup();
    let build = |tag: &str| {
        env.ok(&[
            "build",
            "-q",
            "-f",
            df.to_str().unwrap(),
            "-t",
            tag,
            ctx.to_str().unwrap(),
        ])
    };
    build("t:1");
    let old = top_snapshot(&env, "t:1");
    assert!(old.join("app/d00/f000").is_file(), "no snapshot at {old:?}");

    fs::write(ctx.join("d01/f001"), "changed content\n").unwrap();
    rewrite_keeping_mtime(&ctx.join("d02/f002"), "FILE 2 2\n");
    fs::set_permissions(ctx.join("d03/f003"), fs::Permissions::from_mode(0o600)).unwrap();
    build("t:2");
    let new = top_snapshot(&env, "t:2");
    assert_ne!(old, new);

    let ino = |p: PathBuf| fs::symlink_metadata(&p).unwrap().ino();
    let mut linked = 0;
    for d in 0..20 {
        for f in 0..100 {
            let rel = format!("app/d{d:02}/f{f:03}");
            if ino(old.join(&rel)) == ino(new.join(&rel)) {
                linked += 1;
            }
        }
    }
    assert_eq!(linked, 1997, "all but the three changed files are links");
    for (rel, content, mode) in [
        ("app/d01/f001", "changed content\n", 0o644),
        ("app/d02/f002", "FILE 2 2\n", 0o644),
        ("app/d03/f003", "file 3 3\n", 0o600),
    ] {
        assert_ne!(ino(old.join(rel)), ino(new.join(rel)), "{rel} was linked");
        assert_eq!(fs::read_to_string(new.join(rel)).unwrap(), content, "{rel}");
        let m = fs::metadata(new.join(rel)).unwrap();
        assert_eq!(m.mode() & 0o7777, mode, "{rel}");
    }
    // The old layer is untouched.
    assert_eq!(
        fs::read_to_string(old.join("app/d02/f002")).unwrap(),
        "file 2 2\n"
    );
    assert_eq!(
        fs::metadata(old.join("app/d03/f003")).unwrap().mode() & 0o7777,
        0o644
    );
    // The image is what a copy would have made: its layer unpacks to the same files
    // (`fsck` re-hashes every layer against its diffID).
    env.fsck_clean();
    let out = env.path("out");
    env.ok(&[
        "build",
        "-q",
        "--no-cache",
        "-f",
        df.to_str().unwrap(),
        "--output",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("app/d02/f002")).unwrap(),
        "FILE 2 2\n"
    );
}
