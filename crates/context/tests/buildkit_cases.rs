//! The cases of `conformance/buildkit-cases/` about .dockerignore and COPY, run as
//! selection + destination mapping against their `ctx/` directories.
//!
//! Each case's COPY instructions are written out by hand below (this crate has no
//! Dockerfile parser; the Dockerfile is quoted in a comment), applied to a small in-memory
//! image the way BuildKit's file backend applies a copy, and the result compared with the
//! case's `oracle.txt` (type, mode, path and content hash or link target) — or, for error
//! cases, the error text with the case's `expect-fail` regex.
//!
//! The cases' contexts are prepared like `tools/common.sh` `bk_prep_ctx` does (copy,
//! directories 0755, files 0755/0644). The symlinks the upstream tests create are
//! committed as links and listed per case; a copy that stored one as a regular file holding
//! the link target gets it re-created from that file.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use context::{
    place, resolve_destination, select, Context, DestKind, Error, FileKind, Matcher, SelectOptions,
    SourceTree,
};
use sha2::{Digest, Sha256};

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../conformance/buildkit-cases/cases"
);

fn case_dir(name: &str) -> PathBuf {
    let root = Path::new(CASES);
    assert!(
        root.is_dir(),
        "BuildKit conformance cases not found at {CASES}: the checkout is incomplete"
    );
    let d = root.join(name);
    assert!(
        d.is_dir(),
        "conformance case {name} is missing at {}",
        d.display()
    );
    d
}

fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    let mut names: Vec<_> = fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let (s, d) = (src.join(&n), dst.join(&n));
        let m = fs::symlink_metadata(&s).unwrap();
        if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&s).unwrap(), &d).unwrap();
        } else if m.is_dir() {
            copy_tree(&s, &d);
        } else {
            fs::copy(&s, &d).unwrap();
        }
    }
}

fn normalise(p: &Path) {
    let m = fs::symlink_metadata(p).unwrap();
    if m.file_type().is_symlink() {
        return;
    }
    if m.is_dir() {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        for e in fs::read_dir(p).unwrap() {
            normalise(&e.unwrap().path());
        }
    } else {
        let mode = if m.mode() & 0o111 != 0 { 0o755 } else { 0o644 };
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// `bk_prep_ctx` plus the symlinks the upstream test creates.
fn prep_ctx(case: &str, symlinks: &[&str]) -> tempfile::TempDir {
    let dir = case_dir(case);
    let tmp = tempfile::tempdir().unwrap();
    if dir.join("ctx").is_dir() {
        copy_tree(&dir.join("ctx"), tmp.path());
    }
    for l in symlinks {
        let p = tmp.path().join(l);
        let m =
            fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{case}: symlink {l} missing: {e}"));
        if m.file_type().is_file() {
            let target = fs::read_to_string(&p).unwrap();
            fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink(target.trim_end_matches('\n'), &p).unwrap();
        }
    }
    normalise(tmp.path());
    tmp
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    kind: char,
    mode: u32,
    extra: String,
}

/// Just enough of an image filesystem to apply copies the way BuildKit does.
#[derive(Default)]
struct Image(BTreeMap<String, Item>);

fn hash16(p: &Path) -> String {
    let data = fs::read(p).unwrap();
    hex::encode(Sha256::digest(&data))[..16].to_string()
}

impl Image {
    fn kind_of(&self, p: &Path) -> DestKind {
        let mut path = p.to_str().unwrap().to_string();
        for _ in 0..16 {
            match self.0.get(&path) {
                None if path == "/" => return DestKind::Dir,
                None => return DestKind::Missing,
                Some(i) if i.kind == 'd' => return DestKind::Dir,
                Some(i) if i.kind == 'l' => {
                    path = if i.extra.starts_with('/') {
                        i.extra.clone()
                    } else {
                        let parent = Path::new(&path)
                            .parent()
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_string();
                        format!("{}/{}", parent.trim_end_matches('/'), i.extra)
                    };
                }
                Some(_) => return DestKind::NotDir,
            }
        }
        DestKind::NotDir
    }

    fn mkdir_all(&mut self, p: &Path) {
        let mut cur = PathBuf::from("/");
        for c in p.components().skip(1) {
            cur.push(c);
            self.0
                .entry(cur.to_str().unwrap().to_string())
                .or_insert(Item {
                    kind: 'd',
                    mode: 0o755,
                    extra: String::new(),
                });
        }
    }

    /// `COPY <sources> <dest>` under `workdir`.
    fn copy(
        &mut self,
        tree: &dyn SourceTree,
        sources: &[&str],
        dest: &str,
        workdir: &str,
    ) -> Result<(), Error> {
        let sel = select(tree, sources, &SelectOptions::default())?;
        let d = resolve_destination(dest, workdir);
        let placed = place(&d, &sel, |p| self.kind_of(p))?;
        if d.is_dir {
            self.mkdir_all(&d.path);
        } else if let Some(parent) = d.path.parent() {
            self.mkdir_all(parent);
        }
        for p in placed {
            let e = p.entry;
            let key = p.dest.to_str().unwrap().to_string();
            if e.rel.as_os_str().is_empty() && e.is_dir() {
                self.mkdir_all(&p.dest);
                continue;
            }
            let mode = e.metadata.mode() & 0o7777;
            let item = match e.kind {
                FileKind::File => Item {
                    kind: 'f',
                    mode,
                    extra: hash16(&e.source),
                },
                FileKind::Dir => Item {
                    kind: 'd',
                    mode,
                    extra: String::new(),
                },
                FileKind::Symlink => Item {
                    kind: 'l',
                    mode: 0o777,
                    extra: e
                        .link_target
                        .as_ref()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string(),
                },
                FileKind::Other => panic!("unexpected special file {}", e.source.display()),
            };
            self.0.insert(key, item);
        }
        Ok(())
    }

    fn lines(&self, under: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(p, _)| p.starts_with(under))
            .map(|(p, i)| {
                let mut l = format!("{} 0o{:o} 0:0 {}", i.kind, i.mode, p);
                if !i.extra.is_empty() {
                    l.push(' ');
                    l.push_str(&i.extra);
                }
                l
            })
            .collect()
    }
}

/// The oracle's file lines, normalised like `bk_norm` (mount-point directories dropped).
fn oracle(case: &str, under: &str) -> Vec<String> {
    let text = fs::read_to_string(case_dir(case).join("oracle.txt")).unwrap();
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("f ") || l.starts_with("d ") || l.starts_with("l "))
        .filter(|l| {
            !["/dev", "/proc", "/sys", "/etc"]
                .iter()
                .any(|m| l.starts_with("d ") && l.ends_with(&format!(" {m}")))
        })
        .filter(|l| l.split(' ').nth(3).is_some_and(|p| p.starts_with(under)))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn check(case: &str, img: &Image, under: &str) {
    let mut got = img.lines(under);
    got.sort();
    let want = oracle(case, under);
    assert!(
        !want.is_empty(),
        "case {case}: the oracle has no lines under {under}"
    );
    assert_eq!(got, want, "case {case}");
}

fn expect_fail(case: &str, err: &dyn std::fmt::Display) {
    let re = fs::read_to_string(case_dir(case).join("expect-fail")).unwrap();
    let re = regex::Regex::new(&format!("(?i){}", re.lines().next().unwrap())).unwrap();
    let msg = err.to_string();
    assert!(
        re.is_match(&msg),
        "case {case}: error {msg:?} does not match {re}"
    );
}

fn load(tmp: &tempfile::TempDir, dockerignore: bool) -> Context {
    let m = if dockerignore {
        Some(
            Matcher::from_ignore_file(&fs::read(tmp.path().join(".dockerignore")).unwrap())
                .unwrap(),
        )
    } else {
        None
    };
    Context::load(tmp.path(), m.as_ref()).unwrap()
}

#[test]
fn dockerignore() {
    // FROM scratch
    // COPY . .
    let tmp = prep_ctx("dockerignore", &[]);
    let ctx = load(&tmp, true);
    let mut img = Image::default();
    img.copy(&ctx, &["."], ".", "/").unwrap();
    check("dockerignore", &img, "/");
}

#[test]
fn dockerignore_dirs() {
    // FROM scratch
    // COPY . /all/
    // COPY docs /docs/
    let tmp = prep_ctx("dockerignore-dirs", &[]);
    let ctx = load(&tmp, true);
    let mut img = Image::default();
    img.copy(&ctx, &["."], "/all/", "/").unwrap();
    img.copy(&ctx, &["docs"], "/docs/", "/").unwrap();
    check("dockerignore-dirs", &img, "/");
}

#[test]
fn copy_wildcards() {
    let tmp = prep_ctx("copy-wildcards", &[]);
    let ctx = load(&tmp, false);
    let mut img = Image::default();
    for (srcs, dest) in [
        (&["*.go"][..], "/gofiles/"),           // COPY *.go /gofiles/
        (&["f*.go"], "foo2.go"),                // COPY f*.go foo2.go
        (&["sub/*"], "/subdest/"),              // COPY sub/* /subdest/
        (&["sub/*/dir2/foo"], "/subdest2/"),    // COPY sub/*/dir2/foo /subdest2/
        (&["sub/*/dir2/foo"], "/subdest3/bar"), // COPY sub/*/dir2/foo /subdest3/bar
        (&["."], "all/"),                       // COPY . all/
        (&["sub/dir1/"], "subdest4"),           // COPY sub/dir1/ subdest4
        (&["sub/dir1/."], "subdest5"),          // COPY sub/dir1/. subdest5
        (&["sub/dir1"], "subdest6"),            // COPY sub/dir1 subdest6
    ] {
        img.copy(&ctx, srcs, dest, "/").unwrap();
    }
    check("copy-wildcards", &img, "/");
}

#[test]
fn copy_follow_symlinks() {
    // FROM scratch
    // COPY foo /
    // COPY foo/sub bar
    let tmp = prep_ctx("copy-follow-symlinks", &["foo/sub"]);
    let ctx = load(&tmp, false);
    let mut img = Image::default();
    img.copy(&ctx, &["foo"], "/", "/").unwrap();
    img.copy(&ctx, &["foo/sub"], "bar", "/").unwrap();
    check("copy-follow-symlinks", &img, "/");
}

#[test]
fn copy_symlinks_wildcard() {
    // FROM scratch
    // COPY foo /
    // COPY sub/l* alllinks/
    let tmp = prep_ctx(
        "copy-symlinks-wildcard",
        &["foo", "sub/l0", "sub/l1", "sub/second"],
    );
    let ctx = load(&tmp, false);
    let mut img = Image::default();
    img.copy(&ctx, &["foo"], "/", "/").unwrap();
    img.copy(&ctx, &["sub/l*"], "alllinks/", "/").unwrap();
    check("copy-symlinks-wildcard", &img, "/");
}

#[test]
fn copy_through_symlink_context() {
    // FROM scratch
    // COPY link/foo .
    let tmp = prep_ctx("copy-through-symlink-context", &["link"]);
    let ctx = load(&tmp, false);
    let mut img = Image::default();
    img.copy(&ctx, &["link/foo"], ".", "/").unwrap();
    check("copy-through-symlink-context", &img, "/");
}

#[test]
fn copy_dest_trailing_slash() {
    // FROM busybox
    // COPY testfile /sample/
    // (only /sample is ours; the rest of the oracle is the base image)
    let tmp = prep_ctx("copy-dest-trailing-slash", &[]);
    let ctx = load(&tmp, false);
    let mut img = Image::default();
    img.copy(&ctx, &["testfile"], "/sample/", "/").unwrap();
    check("copy-dest-trailing-slash", &img, "/sample");
    assert_eq!(
        fs::read_to_string(tmp.path().join("testfile")).unwrap(),
        "contents0"
    );
}

#[test]
fn copy_empty_wildcard() {
    // FROM scratch
    // COPY foo nomatch* /
    let tmp = prep_ctx("copy-empty-wildcard", &[]);
    let ctx = load(&tmp, false);
    let mut img = Image::default();
    img.copy(&ctx, &["foo", "nomatch*"], "/", "/").unwrap();
    check("copy-empty-wildcard", &img, "/");
}

#[test]
fn copy_unicode_path() {
    // FROM scratch
    // COPY test-äöü.txt /
    // COPY test-%C3%A4%C3%B6%C3%BC.txt /
    // COPY test+aou.txt /
    let tmp = prep_ctx("copy-unicode-path", &[]);
    let ctx = load(&tmp, false);
    let mut img = Image::default();
    for src in [
        "test-äöü.txt",
        "test-%C3%A4%C3%B6%C3%BC.txt",
        "test+aou.txt",
    ] {
        img.copy(&ctx, &[src], "/", "/").unwrap();
    }
    check("copy-unicode-path", &img, "/");
}

#[test]
fn err_copy_missing_source() {
    // from scratch
    // env foo=bar
    // copy foo bar
    let tmp = prep_ctx("err-copy-missing-source", &[]);
    let ctx = load(&tmp, false);
    let err = Image::default()
        .copy(&ctx, &["foo"], "bar", "/")
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound(ref p) if p == "/foo"),
        "{err:?}"
    );
    expect_fail("err-copy-missing-source", &err);
    // BuildKit's words exactly.
    let bk =
        fs::read_to_string(case_dir("err-copy-missing-source").join("buildkit-error.txt")).unwrap();
    assert!(
        bk.contains(&err.to_string()),
        "{bk:?} does not contain {err}"
    );
}

#[test]
fn err_dockerignore_invalid() {
    // FROM scratch
    // COPY . .      with a .dockerignore holding "!"
    let tmp = prep_ctx("err-dockerignore-invalid", &[]);
    let err = Matcher::from_ignore_file(&fs::read(tmp.path().join(".dockerignore")).unwrap())
        .unwrap_err();
    expect_fail("err-dockerignore-invalid", &err);
    let bk = fs::read_to_string(case_dir("err-dockerignore-invalid").join("buildkit-error.txt"))
        .unwrap();
    assert!(
        bk.contains(&err.to_string()),
        "{bk:?} does not contain {err}"
    );
}
