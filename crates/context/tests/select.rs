//! Context loading, source selection, destination rules and digests, on temp dirs.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use context::{
    digest_placed, place, resolve_destination, select, Context, DestKind, Destination, Error,
    FileKind, Matcher, SelectOptions, Selection, StageRoot, StatCache,
};

/// Builds a tree: `name` → file with content, `name/` → dir, `name -> target` → symlink.
fn tree(spec: &[&str]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for s in spec {
        let p = |n: &str| t.path().join(n);
        if let Some((name, target)) = s.split_once(" -> ") {
            fs::create_dir_all(p(name).parent().unwrap()).unwrap();
            symlink(target, p(name)).unwrap();
        } else if let Some(d) = s.strip_suffix('/') {
            fs::create_dir_all(p(d)).unwrap();
        } else {
            fs::create_dir_all(p(s).parent().unwrap()).unwrap();
            fs::write(p(s), format!("{s}-contents")).unwrap();
        }
    }
    t
}

fn ctx(t: &tempfile::TempDir, ignore: Option<&str>) -> Context {
    let m = ignore.map(|i| Matcher::from_ignore_file(i.as_bytes()).unwrap());
    Context::load(t.path(), m.as_ref()).unwrap()
}

fn paths(c: &Context) -> Vec<String> {
    c.entries()
        .map(|(p, _)| p.to_str().unwrap().to_string())
        .collect()
}

fn sel(c: &dyn context::SourceTree, srcs: &[&str]) -> Result<Selection, Error> {
    select(c, srcs, &SelectOptions::default())
}

/// Each selected entry as "source-path:rel:kind".
fn flat(s: &Selection) -> Vec<String> {
    s.sources
        .iter()
        .flat_map(|src| {
            src.entries.iter().map(move |e| {
                let k = match e.kind {
                    FileKind::File => "f",
                    FileKind::Dir => "d",
                    FileKind::Symlink => "l",
                    FileKind::Other => "o",
                };
                format!("{}:{}:{k}", src.path.display(), e.rel.display())
            })
        })
        .collect()
}

/// Placement on an empty image, as "dest kind".
fn placed(s: &Selection, dest: &str, workdir: &str) -> Vec<String> {
    let d = resolve_destination(dest, workdir);
    place(&d, s, |_| DestKind::Missing)
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.dest.display(),
                if p.entry.is_dir() { "d" } else { "f" }
            )
        })
        .collect()
}

// ---- context loading -------------------------------------------------------------

#[test]
fn context_walk_is_sorted_and_keeps_symlinks() {
    let t = tree(&["b", "a/", "a/z", "a/y", "l -> /etc", "c/"]);
    let c = ctx(&t, None);
    assert_eq!(paths(&c), ["a", "a/y", "a/z", "b", "c", "l"]);
    assert_eq!(c.get(Path::new("l")).unwrap().kind, FileKind::Symlink);
    assert_eq!(
        c.get(Path::new("l")).unwrap().link_target.as_deref(),
        Some(Path::new("/etc"))
    );
}

#[test]
fn context_dockerignore_rules() {
    let t = tree(&[
        "app.log",
        "keep.log",
        "build/out.bin",
        "build/keep/x",
        "docs/a.md",
        "docs/tmp/a.tmp",
        "node_modules/m/index.js",
        ".git/HEAD",
        "src/main.rs",
    ]);
    let c = ctx(
        &t,
        Some("# comment\n*.log\n!keep.log\nbuild\n!build/keep\n**/*.tmp\nnode_modules\n/.git\n"),
    );
    assert_eq!(
        paths(&c),
        [
            "build",
            "build/keep",
            "build/keep/x",
            "docs",
            "docs/a.md",
            "docs/tmp",
            "keep.log",
            "src",
            "src/main.rs"
        ]
    );
    // An excluded path does not exist for COPY.
    let err = sel(&c, &["app.log"]).unwrap_err();
    assert_eq!(err.to_string(), "\"/app.log\" not found: not found");
    assert!(sel(&c, &["build/out.bin"]).is_err());
}

#[test]
fn context_reinclusion_with_wildcard_exclusion() {
    // "!*/keep" has a wildcard: excluded directories must be walked to find re-inclusions.
    let t = tree(&["a/keep", "a/drop", "b/keep", "c"]);
    let c = ctx(&t, Some("a\nb\n!*/keep\n"));
    assert_eq!(paths(&c), ["a", "a/keep", "b", "b/keep", "c"]);
}

#[test]
fn context_excluded_dir_without_reinclusion_is_gone() {
    let t = tree(&["a/x", "a/y/z", "b"]);
    let c = ctx(&t, Some("a\n"));
    assert_eq!(paths(&c), ["b"]);
    let c = ctx(&t, Some("*\n!b\n"));
    assert_eq!(paths(&c), ["b"]);
}

#[test]
fn context_invalid_dockerignore() {
    let e = Matcher::from_ignore_file(b"ok\n!\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid excludepatterns: [ok !]: illegal exclusion pattern: \"!\""
    );
    assert!(Matcher::from_ignore_file(b"[a-\n").is_err());
}

#[test]
fn context_root_through_symlink() {
    let t = tree(&["real/f"]);
    symlink(t.path().join("real"), t.path().join("alias")).unwrap();
    let c = Context::load(&t.path().join("alias"), None).unwrap();
    assert_eq!(paths(&c), ["f"]);
    assert_eq!(c.root(), fs::canonicalize(t.path().join("real")).unwrap());
}

// ---- symlinks and escapes --------------------------------------------------------

#[test]
fn symlink_to_host_file_is_not_found() {
    let t = tree(&[
        "passwd -> /etc/passwd",
        "up -> ../../../../../../etc/passwd",
        "f",
    ]);
    let c = ctx(&t, None);
    assert_eq!(
        sel(&c, &["passwd"]).unwrap_err().to_string(),
        "\"/passwd\" not found: not found"
    );
    assert!(matches!(sel(&c, &["up"]).unwrap_err(), Error::NotFound(_)));
    // Through a wildcard too.
    assert!(matches!(
        sel(&c, &["pass*"]).unwrap_err(),
        Error::NotFound(_)
    ));
    // ../ in the source itself stops at the root.
    assert_eq!(flat(&sel(&c, &["../../f"]).unwrap()), ["/f::f"]);
}

#[test]
fn symlink_escape_resolves_inside_the_root() {
    let t = tree(&[
        "etc/passwd",
        "abs -> /etc/passwd",
        "rel -> ../../../../etc/passwd",
        "dir -> /etc",
        "loop -> loop",
        "sub/deep -> ../../../etc",
    ]);
    let c = ctx(&t, None);
    for src in ["abs", "rel", "dir/passwd", "sub/deep/passwd"] {
        let s = sel(&c, &[src]).unwrap();
        let e = &s.sources[0].entries[0];
        assert_eq!(
            e.source,
            t.path().join("etc/passwd").canonicalize().unwrap(),
            "{src}"
        );
        assert_eq!(
            fs::read_to_string(&e.source).unwrap(),
            "etc/passwd-contents"
        );
        assert_eq!(
            s.sources[0].name,
            OsStr::new(Path::new(src).file_name().unwrap())
        );
    }
    assert!(matches!(
        sel(&c, &["loop"]).unwrap_err(),
        Error::TooManyLinks(_)
    ));
}

#[test]
fn symlinks_inside_a_copied_directory_are_kept() {
    let t = tree(&["d/f", "d/host -> /etc/passwd", "d/sib -> f"]);
    let c = ctx(&t, None);
    let s = sel(&c, &["d"]).unwrap();
    assert_eq!(flat(&s), ["/d::d", "/d:f:f", "/d:host:l", "/d:sib:l"]);
    let host = &s.sources[0].entries[2];
    assert_eq!(host.link_target.as_deref(), Some(Path::new("/etc/passwd")));
    assert_eq!(host.source, c.root().join("d/host"));
    assert!(fs::symlink_metadata(&host.source)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn path_through_symlinked_directory() {
    let t = tree(&["sub/foo", "link -> sub", "abs -> /sub", "chain -> link"]);
    let c = ctx(&t, None);
    for src in ["link/foo", "abs/foo", "chain/foo", "chain/../sub/foo"] {
        let s = sel(&c, &[src]).unwrap();
        assert_eq!(
            s.sources[0].entries[0].source,
            c.root().join("sub/foo"),
            "{src}"
        );
        assert_eq!(placed(&s, "/x/", "/"), ["/x/foo f"]);
    }
    // Wildcards under a symlinked directory: the literal prefix is resolved.
    let s = sel(&c, &["link/f*"]).unwrap();
    assert_eq!(flat(&s), ["/sub/foo::f"]);
}

// ---- wildcards -------------------------------------------------------------------

#[test]
fn wildcards_do_not_cross_slash() {
    let t = tree(&[
        "a.txt",
        "b.txt",
        "sub/c.txt",
        "sub/deeper/d.txt",
        "x\\*y",
        "[ab].md",
        "a.md",
    ]);
    let c = ctx(&t, None);
    assert_eq!(
        flat(&sel(&c, &["*.txt"]).unwrap()),
        ["/a.txt::f", "/b.txt::f"]
    );
    assert_eq!(flat(&sel(&c, &["*/*.txt"]).unwrap()), ["/sub/c.txt::f"]);
    assert_eq!(
        flat(&sel(&c, &["s?b/*/?.txt"]).unwrap()),
        ["/sub/deeper/d.txt::f"]
    );
    assert_eq!(
        flat(&sel(&c, &["[ab].txt"]).unwrap()),
        ["/a.txt::f", "/b.txt::f"]
    );
    assert_eq!(flat(&sel(&c, &["[^a].txt"]).unwrap()), ["/b.txt::f"]);
    // `!` is not a negation in Go's filepath.Match: `[!a]` is the class of '!' and 'a'.
    assert_eq!(flat(&sel(&c, &["[!a].txt"]).unwrap()), ["/a.txt::f"]);
    // A source whose wildcards are all escaped is not a wildcard: it is looked up as
    // written, backslashes included (fsutil does not unescape literal paths).
    assert!(matches!(
        sel(&c, &["\\[ab\\].md"]).unwrap_err(),
        Error::NotFound(_)
    ));
    assert_eq!(flat(&sel(&c, &["x\\*y"]).unwrap()), ["/x\\*y::f"]);
    // In a wildcard source, escapes work as in filepath.Match.
    assert_eq!(flat(&sel(&c, &["x\\\\\\*?"]).unwrap()), ["/x\\*y::f"]);
    assert_eq!(flat(&sel(&c, &["[[]ab].md"]).unwrap()), ["/[ab].md::f"]);
}

#[test]
fn wildcard_matching_a_directory_takes_it_whole() {
    let t = tree(&["dir1/a", "dir1/sub/b", "dir2/c", "file"]);
    let c = ctx(&t, None);
    let s = sel(&c, &["dir*"]).unwrap();
    assert_eq!(
        flat(&s),
        [
            "/dir1::d",
            "/dir1:a:f",
            "/dir1:sub:d",
            "/dir1:sub/b:f",
            "/dir2::d",
            "/dir2:c:f"
        ]
    );
    // Contents of every matched directory go into the destination.
    assert_eq!(
        placed(&s, "/out/", "/"),
        [
            "/out d",
            "/out/a f",
            "/out/sub d",
            "/out/sub/b f",
            "/out d",
            "/out/c f"
        ]
    );
}

#[test]
fn empty_wildcards() {
    let t = tree(&["foo", "dir/"]);
    let c = ctx(&t, None);
    // BuildKit: a wildcard matching nothing is fine, even alone.
    assert!(sel(&c, &["nomatch*"]).unwrap().sources.is_empty());
    assert_eq!(flat(&sel(&c, &["foo", "nomatch*"]).unwrap()), ["/foo::f"]);
    assert!(sel(&c, &["dir/*"]).unwrap().sources.is_empty());
    // The classic rule on request: an error only when nothing matched at all.
    let classic = SelectOptions {
        allow_empty_wildcard: false,
        ..Default::default()
    };
    assert!(matches!(
        select(&c, &["nomatch*", "no*2"], &classic).unwrap_err(),
        Error::NoSourceFiles
    ));
    assert_eq!(
        select(&c, &["nomatch*", "no*2"], &classic)
            .unwrap_err()
            .to_string(),
        "no source files were specified"
    );
    assert!(select(&c, &["foo", "nomatch*"], &classic).is_ok());
    // A wildcard under a missing directory is an error; so is a missing literal source.
    assert_eq!(
        sel(&c, &["missing/*"]).unwrap_err().to_string(),
        "\"/missing\" not found: not found"
    );
    assert_eq!(
        sel(&c, &["foo", "nope"]).unwrap_err().to_string(),
        "\"/nope\" not found: not found"
    );
}

// ---- --exclude and --parents -----------------------------------------------------

#[test]
fn exclude_is_relative_to_each_source() {
    let t = tree(&[
        "dir/a.txt",
        "dir/b.md",
        "dir/sub/c.txt",
        "top.txt",
        "build/keep/x",
        "build/out",
    ]);
    let c = ctx(&t, None);
    let ex = |e: &[&str]| SelectOptions {
        excludes: e.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let s = select(&c, &["dir"], &ex(&["*.txt"])).unwrap();
    assert_eq!(
        flat(&s),
        ["/dir::d", "/dir:b.md:f", "/dir:sub:d", "/dir:sub/c.txt:f"]
    );
    let s = select(&c, &["dir"], &ex(&["**/*.txt"])).unwrap();
    assert_eq!(flat(&s), ["/dir::d", "/dir:b.md:f", "/dir:sub:d"]);
    // A source named directly is never excluded by its own name.
    let s = select(&c, &["top.txt"], &ex(&["*.txt"])).unwrap();
    assert_eq!(flat(&s), ["/top.txt::f"]);
    // Excluding everything leaves the directory itself.
    let s = select(&c, &["dir"], &ex(&["*"])).unwrap();
    assert_eq!(flat(&s), ["/dir::d"]);
    // A re-inclusion keeps the excluded directory, and only what is re-included in it.
    let s = select(&c, &["."], &ex(&["build", "!build/keep", "dir", "top.txt"])).unwrap();
    assert_eq!(
        flat(&s),
        ["/::d", "/:build:d", "/:build/keep:d", "/:build/keep/x:f"]
    );
    // Bad patterns are errors.
    assert!(matches!(
        select(&c, &["dir"], &ex(&["!"])).unwrap_err(),
        Error::Pattern(_)
    ));
}

#[test]
fn parents_keep_the_directory_structure() {
    let t = tree(&[
        "x/y/file.txt",
        "x/y/other",
        "x/z/file.txt",
        "a/b.md",
        "a/c/d.md",
        "top.md",
    ]);
    let c = ctx(&t, None);
    let par = SelectOptions {
        parents: true,
        ..Default::default()
    };
    let s = select(&c, &["x/y/file.txt"], &par).unwrap();
    assert_eq!(
        placed(&s, "/dst/", "/"),
        ["/dst d", "/dst/x d", "/dst/x/y d", "/dst/x/y/file.txt f"]
    );
    // Wildcards and ** (patternmatcher syntax).
    let s = select(&c, &["x/*/file.txt"], &par).unwrap();
    assert_eq!(
        placed(&s, "/dst/", "/"),
        [
            "/dst d",
            "/dst/x d",
            "/dst/x/y d",
            "/dst/x/y/file.txt f",
            "/dst/x/z d",
            "/dst/x/z/file.txt f"
        ]
    );
    let s = select(&c, &["**/*.md"], &par).unwrap();
    assert_eq!(
        placed(&s, "/dst/", "/"),
        [
            "/dst d",
            "/dst/a d",
            "/dst/a/b.md f",
            "/dst/a/c d",
            "/dst/a/c/d.md f",
            "/dst/top.md f"
        ]
    );
    // The /./ pivot: structure kept below it only.
    let s = select(&c, &["x/./y/file.txt"], &par).unwrap();
    assert_eq!(
        placed(&s, "/dst/", "/"),
        ["/dst d", "/dst/y d", "/dst/y/file.txt f"]
    );
    // A directory keeps all of its contents.
    let s = select(&c, &["a"], &par).unwrap();
    assert_eq!(
        placed(&s, "/dst/", "/"),
        [
            "/dst d",
            "/dst/a d",
            "/dst/a/b.md f",
            "/dst/a/c d",
            "/dst/a/c/d.md f"
        ]
    );
    // A literal path that is missing is an error; a wildcard matching nothing is not.
    assert!(matches!(
        select(&c, &["x/nope"], &par).unwrap_err(),
        Error::NotFound(_)
    ));
    assert_eq!(flat(&select(&c, &["x/*.none"], &par).unwrap()), ["/::d"]);
}

// ---- destination rules -----------------------------------------------------------

fn dest(p: &str, is_dir: bool) -> Destination {
    Destination {
        path: PathBuf::from(p),
        is_dir,
    }
}

#[test]
fn destination_paths() {
    assert_eq!(resolve_destination("foo", "/app"), dest("/app/foo", false));
    assert_eq!(resolve_destination("foo/", "/app"), dest("/app/foo", true));
    assert_eq!(resolve_destination(".", "/app"), dest("/app", true));
    assert_eq!(resolve_destination("", "/w"), dest("/w", true));
    assert_eq!(resolve_destination("x/.", "/"), dest("/x", true));
    assert_eq!(
        resolve_destination("/abs//y/", "/ignored"),
        dest("/abs/y", true)
    );
    assert_eq!(resolve_destination("../..", "/a/b/c"), dest("/a", false));
    assert_eq!(resolve_destination("../../../..", "/a"), dest("/", false));
    assert_eq!(resolve_destination("rel", ""), dest("/rel", false));
    assert_eq!(
        resolve_destination("rel", "relwd"),
        dest("/relwd/rel", false)
    );
    assert_eq!(resolve_destination("/", "/x"), dest("/", true));
}

#[test]
fn destination_rules() {
    let t = tree(&["f1", "f2", "d/a", "d/s/b", "link -> f1"]);
    let c = ctx(&t, None);
    let one = sel(&c, &["f1"]).unwrap();
    // Single file to a non-slash destination: it is the file.
    assert_eq!(placed(&one, "/x", "/"), ["/x f"]);
    assert_eq!(placed(&one, "x", "/work"), ["/work/x f"]);
    // ... unless the destination exists as a directory.
    let d = resolve_destination("/x", "/");
    let p = place(&d, &one, |p| {
        if p == Path::new("/x") {
            DestKind::Dir
        } else {
            DestKind::Missing
        }
    })
    .unwrap();
    assert_eq!(p[0].dest, Path::new("/x/f1"));
    // Trailing slash, ".", "/": into the directory.
    assert_eq!(placed(&one, "/x/", "/"), ["/x/f1 f"]);
    assert_eq!(placed(&one, ".", "/w"), ["/w/f1 f"]);
    assert_eq!(placed(&one, "/", "/w"), ["/f1 f"]);
    // A followed symlink keeps the name it was given.
    assert_eq!(
        placed(&sel(&c, &["link"]).unwrap(), "/x/", "/"),
        ["/x/link f"]
    );
    // A directory source: its contents, never the directory itself.
    let dir = sel(&c, &["d"]).unwrap();
    assert_eq!(
        placed(&dir, "/x", "/"),
        ["/x d", "/x/a f", "/x/s d", "/x/s/b f"]
    );
    assert_eq!(
        placed(&dir, "/x/", "/"),
        ["/x d", "/x/a f", "/x/s d", "/x/s/b f"]
    );
    // Onto an existing file: an error (BuildKit: cannot copy to non-directory).
    let nd = |_: &Path| DestKind::NotDir;
    assert!(matches!(
        place(&resolve_destination("/x", "/"), &dir, nd).unwrap_err(),
        Error::NotADirectory(_)
    ));
    assert!(matches!(
        place(&resolve_destination("/x/", "/"), &one, nd).unwrap_err(),
        Error::NotADirectory(_)
    ));
    // Several files to a non-slash destination: BuildKit copies each onto it, the last wins.
    let two = sel(&c, &["f1", "f2"]).unwrap();
    assert_eq!(placed(&two, "/x", "/"), ["/x f", "/x f"]);
    assert_eq!(placed(&two, "/x/", "/"), ["/x/f1 f", "/x/f2 f"]);
    // A directory first makes the destination a directory for the files after it.
    let mixed = sel(&c, &["d", "f1"]).unwrap();
    assert_eq!(
        placed(&mixed, "/x", "/"),
        ["/x d", "/x/a f", "/x/s d", "/x/s/b f", "/x/f1 f"]
    );
    // A file first, then a directory onto it: an error.
    let bad = sel(&c, &["f1", "d"]).unwrap();
    assert!(place(&resolve_destination("/x", "/"), &bad, |_| DestKind::Missing).is_err());
}

// ---- stage roots -----------------------------------------------------------------

#[test]
fn stage_root_resolution() {
    let t = tree(&[
        "usr/bin/tool",
        "bin -> usr/bin",
        "lib -> /usr/lib",
        "usr/lib/x.so",
        "etc/",
    ]);
    let root = StageRoot::new(t.path()).unwrap();
    let s = sel(&root, &["/bin/tool"]).unwrap();
    assert_eq!(
        s.sources[0].entries[0].source,
        root_path(&t).join("usr/bin/tool")
    );
    let s = sel(&root, &["/lib/*.so"]).unwrap();
    assert_eq!(flat(&s), ["/usr/lib/x.so::f"]);
    let s = sel(&root, &["/"]).unwrap();
    assert!(flat(&s).contains(&"/:bin:l".to_string()));
    assert!(matches!(
        sel(&root, &["/nope"]).unwrap_err(),
        Error::NotFound(_)
    ));
}

fn root_path(t: &tempfile::TempDir) -> PathBuf {
    fs::canonicalize(t.path()).unwrap()
}

#[test]
fn non_utf8_names() {
    let t = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"caf\xe9");
    fs::write(t.path().join(name), b"x").unwrap();
    let c = Context::load(t.path(), Some(&Matcher::new(&["nothing"]).unwrap())).unwrap();
    let s = sel(&c, &["caf*"]).unwrap();
    assert_eq!(s.sources[0].name, name);
    let p = place(&resolve_destination("/d/", "/"), &s, |_| DestKind::Missing).unwrap();
    assert_eq!(p[0].dest.as_os_str().as_bytes(), b"/d/caf\xe9");
    assert!(digest_placed(&p, &StatCache::new())
        .unwrap()
        .starts_with("sha256:"));
    // `?` is one Go rune: an invalid byte counts as one.
    assert_eq!(sel(&c, &["caf?"]).unwrap().sources.len(), 1);
    // And the ignore matcher reads it the same way.
    let c = Context::load(t.path(), Some(&Matcher::new(&["caf?"]).unwrap())).unwrap();
    assert!(c.is_empty());
}

// ---- digests ---------------------------------------------------------------------

fn digest_of(c: &Context, srcs: &[&str], dest: &str) -> String {
    let s = sel(c, srcs).unwrap();
    let p = place(&resolve_destination(dest, "/"), &s, |_| DestKind::Missing).unwrap();
    digest_placed(&p, &StatCache::new()).unwrap()
}

#[test]
fn digest_covers_content_mode_and_paths_but_not_times() {
    let t = tree(&["d/a", "d/b", "d/l -> a"]);
    let c = ctx(&t, None);
    let d0 = digest_of(&c, &["d"], "/x/");
    assert_eq!(d0, digest_of(&c, &["d"], "/x/"), "deterministic");
    assert!(d0.starts_with("sha256:") && d0.len() == 71);
    assert_eq!(
        sel(&c, &["d"]).unwrap().digest(&StatCache::new()).unwrap(),
        sel(&c, &["d"]).unwrap().digest(&StatCache::new()).unwrap()
    );
    // Times do not count.
    let f = fs::File::options()
        .write(true)
        .open(t.path().join("d/a"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    drop(f);
    let c = ctx(&t, None);
    assert_eq!(d0, digest_of(&c, &["d"], "/x/"));
    // The destination counts.
    assert_ne!(d0, digest_of(&c, &["d"], "/y/"));
    // Content counts (same size).
    fs::write(t.path().join("d/a"), "d/b-contents").unwrap();
    let c = ctx(&t, None);
    let d1 = digest_of(&c, &["d"], "/x/");
    assert_ne!(d0, d1);
    // Mode counts.
    fs::set_permissions(t.path().join("d/b"), fs::Permissions::from_mode(0o600)).unwrap();
    let c = ctx(&t, None);
    assert_ne!(d1, digest_of(&c, &["d"], "/x/"));
    // Symlink targets count.
    fs::remove_file(t.path().join("d/l")).unwrap();
    symlink("b", t.path().join("d/l")).unwrap();
    let c2 = ctx(&t, None);
    assert_ne!(digest_of(&c, &["d"], "/x/"), digest_of(&c2, &["d"], "/x/"));
}

#[test]
fn digest_streams_large_files_and_notices_changes() {
    let t = tempfile::tempdir().unwrap();
    let big = t.path().join("big");
    let block: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    {
        use std::io::Write;
        let mut f = fs::File::create(&big).unwrap();
        for _ in 0..5 {
            f.write_all(&block).unwrap();
        }
    }
    let c = Context::load(t.path(), None).unwrap();
    let d = digest_of(&c, &["big"], "/");
    assert_eq!(d, digest_of(&c, &["big"], "/"));
    // Replaced after selection: refused, not hashed.
    let s = sel(&c, &["big"]).unwrap();
    fs::remove_file(&big).unwrap();
    fs::write(&big, b"other").unwrap();
    let p = place(&resolve_destination("/", "/"), &s, |_| DestKind::Missing).unwrap();
    assert!(matches!(
        digest_placed(&p, &StatCache::new()).unwrap_err(),
        Error::Changed(_) | Error::Io { .. }
    ));
}
