//! Many-file build contexts end to end: every file arrives, with its bytes, and a changed file
//! is rebuilt. (Timings against BuildKit are scripts/bench-scale.sh's, not a test's.)

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{busybox_tar, scratch, Env};

/// A context of `n` files under `dir`: `n / 100` folders `src/dNNN` of 100 files, each of
/// 100..2,100 deterministic pseudo-random bytes. Returns the files' paths relative to `dir`.
pub fn many_files(dir: &Path, n: usize, seed: u64) -> Vec<PathBuf> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut files = Vec::with_capacity(n);
    for i in 0..n {
        let rel = PathBuf::from(format!("src/d{:03}/f{i:05}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(dir.join(rel.parent().unwrap())).unwrap();
        }
        let len = 100 + (next() % 2000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        fs::write(dir.join(&rel), bytes).unwrap();
        files.push(rel);
    }
    files
}

/// Every file of `files` is in `out/app` with the same bytes as in `ctx`, and `out/app` holds
/// nothing else.
fn same_tree(ctx: &Path, out: &Path, files: &[PathBuf]) {
    let mut differ = Vec::new();
    for rel in files {
        let want = fs::read(ctx.join(rel)).unwrap();
        match fs::read(out.join("app").join(rel)) {
            Ok(got) if got == want => {}
            Ok(_) => differ.push(format!("{} differs", rel.display())),
            Err(e) => differ.push(format!("{}: {e}", rel.display())),
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} files wrong, first: {:?}",
        differ.len(),
        files.len(),
        &differ[..differ.len().min(5)]
    );
    let mut count = 0;
    let mut stack = vec![out.join("app")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                count += 1;
            }
        }
    }
    assert_eq!(count, files.len(), "files under /app");
}

/// 10,000 files copied with `COPY . /app` (Dockerfile outside the context): the RUN after it
/// sees all of them, the image holds each with its bytes, and after one file changes a
/// rebuild holds the new bytes (and still every other file).
#[test]
fn ten_thousand_files_copied_whole_and_rebuilt_after_one_change() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    // The context and the exports on tmpfs when there is one (see scratch); the store on disk.
    let scratch = scratch();
    let ctx = scratch.path().join("ctx");
    let files = many_files(&ctx, 10_000, 0x5ca1e);
    let df = env.path("Dockerfile.scale");
    fs::write(
        &df,
        "FROM busybox:local\nCOPY . /app\nRUN find /app -type f | wc -l > /count && ls /app/src | wc -l > /dirs\n",
    )
    .unwrap();
    let build = |out: &Path| {
        env.ok(&[
            "build",
            "-q",
            "--network",
            "none",
            "-f",
            df.to_str().unwrap(),
            "-t",
            "scale:1",
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ])
    };
    let out1 = scratch.path().join("out1");
    let id1 = build(&out1);
    same_tree(&ctx, &out1, &files);
    assert_eq!(fs::read_to_string(out1.join("count")).unwrap(), "10000\n");
    assert_eq!(fs::read_to_string(out1.join("dirs")).unwrap(), "100\n");
    // The image in the store (not only the export) has them.
    let probe = |path: &str| {
        let o = env.run(&["run", "--rm", "--network", "none", "scale:1", "cat", path]);
        assert!(
            o.status.success(),
            "run cat {path}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    let sample = "src/d073/f07342";
    assert_eq!(
        probe(&format!("/app/{sample}")),
        fs::read(ctx.join(sample)).unwrap()
    );

    // One file changes: the rebuild has its new bytes and every other file as before.
    let changed = "src/d042/f04217";
    fs::write(ctx.join(changed), "changed content\n").unwrap();
    let out2 = scratch.path().join("out2");
    let id2 = build(&out2);
    assert_ne!(id1, id2, "a changed file gives another image");
    assert_eq!(
        fs::read(out2.join("app").join(changed)).unwrap(),
        b"changed content\n"
    );
    same_tree(&ctx, &out2, &files);
    assert_eq!(fs::read_to_string(out2.join("count")).unwrap(), "10000\n");
    assert_eq!(
        probe(&format!("/app/{changed}")),
        b"changed content\n",
        "the tagged image is the rebuilt one"
    );
    // Nothing changed: the same image.
    let out3 = scratch.path().join("out3");
    assert_eq!(build(&out3), id2);
    env.fsck_clean();
}
