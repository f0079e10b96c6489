//! Hostile layers. Every test extracts into `<outer tempdir>/target` next to a sentinel
//! file and directory, and checks that the outside is untouched and the result is an error
//! or stays inside the target.

mod common;

use layer::{ApplyOptions, Error, Whiteouts};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

// ---------------------------------------------------------------------------------------
// Raw tar crafting: names and link names are copied byte for byte, nothing is validated.
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(&mut self, name: &[u8], kind: u8, size: u64, link: &[u8]) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            let n = name.len().min(100);
            old.name[..n].copy_from_slice(&name[..n]);
            let l = link.len().min(100);
            old.linkname[..l].copy_from_slice(&link[..l]);
        }
        h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self
    }
    fn data(&mut self, d: &[u8]) -> &mut Self {
        self.0.extend_from_slice(d);
        let pad = (512 - d.len() % 512) % 512;
        self.0.resize(self.0.len() + pad, 0);
        self
    }
    fn file(&mut self, name: &str, content: &[u8]) -> &mut Self {
        self.header(name.as_bytes(), b'0', content.len() as u64, b"")
            .data(content)
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        self.header(name.as_bytes(), b'5', 0, b"")
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name.as_bytes(), b'2', 0, target.as_bytes())
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name.as_bytes(), b'1', 0, target.as_bytes())
    }
    fn device(&mut self, name: &str, kind: u8, major: u32, minor: u32) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_mode(0o600);
        h.set_size(0);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self
    }
    /// A PAX extended header with the given raw record bytes.
    fn pax(&mut self, records: &[u8]) -> &mut Self {
        self.header(b"PaxHeaders.0/x", b'x', records.len() as u64, b"")
            .data(records)
    }
    fn end(&mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        std::mem::take(&mut self.0)
    }
}

fn record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = key.len() + value.len() + 3;
    let mut len = base + base.to_string().len();
    if len.to_string().len() + base != len {
        len = base + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

// ---------------------------------------------------------------------------------------
// The sandbox: <outer>/target is extracted into; <outer>/sentinel and
// <outer>/sentinel_dir/inner must never change.
// ---------------------------------------------------------------------------------------

struct Sandbox {
    outer: tempfile::TempDir,
    target: PathBuf,
}

const PRECIOUS: &[u8] = b"precious\n";

impl Sandbox {
    fn new() -> Self {
        // tmpfs when there is one: file churn on the ext4 root is slow here (discard).
        let shm = Path::new("/dev/shm");
        let outer = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let target = outer.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(outer.path().join("sentinel"), PRECIOUS).unwrap();
        fs::create_dir(outer.path().join("sentinel_dir")).unwrap();
        fs::write(outer.path().join("sentinel_dir/inner"), PRECIOUS).unwrap();
        Sandbox { outer, target }
    }

    fn outer(&self) -> &Path {
        self.outer.path()
    }

    /// The sentinel's absolute path without its leading `/`, as it would appear beneath
    /// the target if an absolute name were made relative.
    fn outer_rel(&self) -> String {
        self.outer()
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    }

    fn apply(&self, tar: &[u8]) -> layer::Result<layer::ApplyInfo> {
        self.apply_with(tar, &ApplyOptions::default())
    }

    fn apply_with(&self, tar: &[u8], opts: &ApplyOptions) -> layer::Result<layer::ApplyInfo> {
        let r = layer::apply(tar, &self.target, opts);
        self.check_outside();
        r
    }

    fn check_outside(&self) {
        let mut names: Vec<String> = fs::read_dir(self.outer())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["sentinel", "sentinel_dir", "target"],
            "outer dir changed"
        );
        for p in ["sentinel", "sentinel_dir/inner"] {
            let p = self.outer().join(p);
            let md = fs::symlink_metadata(&p).unwrap();
            assert!(md.is_file(), "{} replaced", p.display());
            assert_eq!(fs::read(&p).unwrap(), PRECIOUS, "{} written", p.display());
            assert_eq!(md.nlink(), 1, "{} hard-linked", p.display());
            assert_eq!(md.mode() & 0o7777, 0o644, "{} chmod-ed", p.display());
            assert_eq!((md.uid(), md.gid()), (0, 0), "{} chown-ed", p.display());
        }
        let d = fs::metadata(self.outer().join("sentinel_dir")).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o755);
        assert_eq!(
            fs::read_dir(self.outer().join("sentinel_dir"))
                .unwrap()
                .count(),
            1
        );
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.target.join(rel)).unwrap()
    }
}

fn assert_unsafe(r: layer::Result<layer::ApplyInfo>) {
    match r {
        Err(Error::Unsafe { .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn assert_err(r: layer::Result<layer::ApplyInfo>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(i) => panic!("expected an error, got {i:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

#[test]
fn dotdot_prefix_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.apply(&Raw::default().file("../sentinel", b"pwned").end()));
}

#[test]
fn dotdot_in_the_middle_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.apply(&Raw::default().file("a/../../sentinel", b"pwned").end()));
    // Even when it would stay inside: no layer writer produces `..`.
    assert_unsafe(s.apply(&Raw::default().file("a/../b", b"x").end()));
}

#[test]
fn absolute_names_are_made_relative() {
    let s = Sandbox::new();
    let abs_sentinel = format!("{}/sentinel", s.outer().display());
    s.apply(
        &Raw::default()
            .file("/etc/strata-hostile-abs", b"inside")
            .file(&abs_sentinel, b"pwned")
            .end(),
    )
    .unwrap();
    assert_eq!(s.read("etc/strata-hostile-abs"), b"inside");
    assert!(!Path::new("/etc/strata-hostile-abs").exists());
    assert_eq!(s.read(&format!("{}/sentinel", s.outer_rel())), b"pwned");
}

#[test]
fn nul_and_empty_names_are_refused() {
    let s = Sandbox::new();
    // A NUL in the header name field just ends the name.
    s.apply(
        &Raw::default()
            .header(b"ok\0../../sentinel", b'0', 0, b"")
            .end(),
    )
    .unwrap();
    assert!(s.target.join("ok").is_file());
    // A NUL inside a PAX path is malformed.
    let mut recs = record("path", b"a\0/../../sentinel");
    recs.extend(record("uid", b"0"));
    let err = assert_err(s.apply(&Raw::default().pax(&recs).file("x", b"pwned").end()));
    assert!(err.contains("NUL"), "{err}");
    // An empty name.
    assert_unsafe(s.apply(&Raw::default().header(b"", b'0', 0, b"").end()));
    // A file named like the root.
    assert_unsafe(s.apply(&Raw::default().file("./", b"x").end()));
    assert_unsafe(s.apply(&Raw::default().file("/", b"x").end()));
    // The root as a directory entry is ignored, not chmod-ed to the entry's mode.
    s.apply(&Raw::default().dir("./").dir("/").end()).unwrap();
}

// ---------------------------------------------------------------------------------------
// Symlinks
// ---------------------------------------------------------------------------------------

#[test]
fn symlink_to_root_then_write_through_it() {
    let s = Sandbox::new();
    s.apply(
        &Raw::default()
            .symlink("link", "/")
            .file("link/etc/strata-hostile-root", b"inside")
            .end(),
    )
    .unwrap();
    assert_eq!(s.read("etc/strata-hostile-root"), b"inside");
    assert!(!Path::new("/etc/strata-hostile-root").exists());
    assert!(fs::symlink_metadata(s.target.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn symlink_to_outer_absolute_path_then_write() {
    let s = Sandbox::new();
    let outer = s.outer().to_str().unwrap().to_string();
    s.apply(
        &Raw::default()
            .symlink("out", &outer)
            .file("out/sentinel", b"pwned")
            .end(),
    )
    .unwrap();
    // Followed as if the target were `/`: lands at <target>/<outer path>/sentinel.
    assert_eq!(s.read(&format!("{}/sentinel", s.outer_rel())), b"pwned");
}

#[test]
fn symlink_dotdot_then_write_through_it() {
    let s = Sandbox::new();
    s.apply(
        &Raw::default()
            .symlink("up", "../..")
            .file("up/sentinel", b"pwned")
            .end(),
    )
    .unwrap();
    assert_eq!(s.read("sentinel"), b"pwned");
}

#[test]
fn relative_symlink_chain_escape() {
    let s = Sandbox::new();
    s.apply(
        &Raw::default()
            .dir("a/")
            .symlink("a/s1", "../s2")
            .symlink("s2", "a/s3")
            .symlink("a/s3", "../../../..")
            .file("a/s1/sentinel", b"pwned")
            .file("a/s1/sentinel_dir/inner", b"pwned")
            .end(),
    )
    .unwrap();
    assert_eq!(s.read("sentinel"), b"pwned");
    assert_eq!(s.read("sentinel_dir/inner"), b"pwned");
}

#[test]
fn symlink_loop_is_an_error() {
    let s = Sandbox::new();
    let err = assert_err(
        s.apply(
            &Raw::default()
                .symlink("l1", "l2")
                .symlink("l2", "l1")
                .file("l1/x", b"x")
                .end(),
        ),
    );
    assert!(err.contains("l1/x"), "error names the entry: {err}");
}

#[test]
fn file_replaces_symlink_instead_of_writing_through_it() {
    let s = Sandbox::new();
    let sentinel = format!("{}/sentinel", s.outer().display());
    s.apply(
        &Raw::default()
            .symlink("f", &sentinel)
            .file("f", b"pwned")
            .symlink("g", "../sentinel")
            .file("g", b"pwned")
            .end(),
    )
    .unwrap();
    for n in ["f", "g"] {
        let md = fs::symlink_metadata(s.target.join(n)).unwrap();
        assert!(md.is_file());
        assert_eq!(s.read(n), b"pwned");
    }
}

#[test]
fn directory_entry_replaces_symlink_instead_of_chmod_through_it() {
    let s = Sandbox::new();
    let outer_dir = format!("{}/sentinel_dir", s.outer().display());
    let mut raw = Raw::default();
    raw.symlink("d", &outer_dir);
    // A world-writable directory entry with the symlink's name, then a file inside it.
    let mut h = tar::Header::new_ustar();
    h.set_path("d/").unwrap();
    h.set_mode(0o777);
    h.set_uid(1234);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_cksum();
    raw.0.extend_from_slice(h.as_bytes());
    raw.file("d/inner", b"pwned");
    s.apply(&raw.end()).unwrap();
    let md = fs::symlink_metadata(s.target.join("d")).unwrap();
    assert!(md.is_dir());
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o777, 1234));
    assert_eq!(s.read("d/inner"), b"pwned");
}

// ---------------------------------------------------------------------------------------
// Hard links
// ---------------------------------------------------------------------------------------

#[test]
fn hardlink_to_absolute_host_paths_is_contained() {
    let s = Sandbox::new();
    let passwd_links = fs::metadata("/etc/passwd").unwrap().nlink();
    let err = assert_err(s.apply(&Raw::default().hardlink("h", "/etc/passwd").end()));
    assert!(err.contains("hard link"), "{err}");
    let sentinel = format!("{}/sentinel", s.outer().display());
    assert_err(s.apply(&Raw::default().hardlink("h", &sentinel).end()));
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd_links);
    // With a file of that name inside the target, the link is to that file.
    s.apply(
        &Raw::default()
            .file("etc/passwd", b"layer's own")
            .hardlink("h", "/etc/passwd")
            .end(),
    )
    .unwrap();
    assert_eq!(s.read("h"), b"layer's own");
}

#[test]
fn hardlink_to_dotdot_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.apply(&Raw::default().hardlink("h", "../sentinel").end()));
    assert_unsafe(s.apply(&Raw::default().hardlink("h", "a/../../sentinel").end()));
    assert_unsafe(s.apply(&Raw::default().hardlink("h", "").end()));
    assert_unsafe(s.apply(&Raw::default().hardlink("h", "/").end()));
}

#[test]
fn hardlink_through_symlink_is_contained() {
    let s = Sandbox::new();
    let outer = s.outer().to_str().unwrap().to_string();
    assert_err(
        s.apply(
            &Raw::default()
                .symlink("l", &outer)
                .hardlink("h", "l/sentinel")
                .end(),
        ),
    );
    assert_err(
        s.apply(
            &Raw::default()
                .symlink("up", "..")
                .hardlink("h2", "up/sentinel")
                .end(),
        ),
    );
    // A hard link to a symlink pointing outside links the symlink itself; writing the
    // link's name afterwards replaces it rather than writing through it.
    s.apply(
        &Raw::default()
            .symlink("s", &format!("{outer}/sentinel"))
            .hardlink("h3", "s")
            .file("h3", b"pwned")
            .end(),
    )
    .unwrap();
    assert!(fs::symlink_metadata(s.target.join("s"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(s.read("h3"), b"pwned");
}

#[test]
fn hardlink_to_directory_or_itself_fails() {
    let s = Sandbox::new();
    assert_err(s.apply(&Raw::default().dir("d/").hardlink("h", "d").end()));
    assert_err(s.apply(&Raw::default().file("f", b"x").hardlink("f", "f").end()));
    assert_eq!(s.read("f"), b"x");
}

// ---------------------------------------------------------------------------------------
// Whiteouts
// ---------------------------------------------------------------------------------------

#[test]
fn whiteouts_of_dot_dotdot_and_empty_are_refused() {
    let s = Sandbox::new();
    fs::write(s.target.join("keep"), b"k").unwrap();
    for name in [".wh...", ".wh..", ".wh.", "a/.wh...", "/.wh.."] {
        assert_unsafe(s.apply(&Raw::default().dir("a/").file(name, b"").end()));
    }
    assert_eq!(s.read("keep"), b"k");
    for mode in [Whiteouts::Remove, Whiteouts::Overlay] {
        let opts = ApplyOptions {
            whiteouts: mode,
            ..Default::default()
        };
        assert_unsafe(s.apply_with(&Raw::default().file(".wh...", b"").end(), &opts));
    }
}

#[test]
fn whiteout_removes_inside_only() {
    let s = Sandbox::new();
    fs::write(s.target.join("sentinel"), b"lower").unwrap();
    fs::create_dir_all(s.target.join("dir/sub")).unwrap();
    fs::write(s.target.join("dir/sub/f"), b"lower").unwrap();
    let outer = s.outer().to_str().unwrap().to_string();
    s.apply(
        &Raw::default()
            .file(".wh.sentinel", b"")
            .file(".wh.dir", b"")
            .symlink("l", &outer)
            .file("l/.wh.sentinel", b"")
            .file("l/.wh.sentinel_dir", b"")
            .symlink("up", "../..")
            .file("up/.wh.target", b"")
            .file(".wh.missing", b"")
            .file("nodir/.wh.x", b"")
            .end(),
    )
    .unwrap();
    assert!(!s.target.join("sentinel").exists());
    assert!(!s.target.join("dir").exists());
    // `up/.wh.target` resolved to <target>/target, which does not exist.
    assert!(s.target.exists());
}

#[test]
fn whiteout_never_removes_this_layers_entries() {
    let s = Sandbox::new();
    s.apply(&Raw::default().file("x", b"new").file(".wh.x", b"").end())
        .unwrap();
    assert_eq!(s.read("x"), b"new");
}

#[test]
fn opaque_whiteout_at_root() {
    let s = Sandbox::new();
    fs::write(s.target.join("old"), b"lower").unwrap();
    fs::create_dir_all(s.target.join("olddir/x")).unwrap();
    fs::create_dir_all(s.target.join("kept/lowerchild")).unwrap();
    s.apply(
        &Raw::default()
            .file("-first", b"sorted before the marker")
            .dir("kept/")
            .file(".wh..wh..opq", b"")
            .file("new", b"n")
            .end(),
    )
    .unwrap();
    let mut names: Vec<_> = fs::read_dir(&s.target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["-first", "kept", "new"]);
    // Lower-layer content of a directory this layer re-created is hidden too.
    assert_eq!(fs::read_dir(s.target.join("kept")).unwrap().count(), 0);
}

#[test]
fn opaque_whiteout_through_symlinks_is_contained() {
    let s = Sandbox::new();
    let outer = s.outer().to_str().unwrap().to_string();
    s.apply(
        &Raw::default()
            .symlink("l", &outer)
            .file("l/.wh..wh..opq", b"")
            .symlink("up", "../..")
            .dir("x/")
            .file("up/x/.wh..wh..opq", b"")
            .end(),
    )
    .unwrap();
}

#[test]
fn overlay_mode_whiteouts_stay_inside() {
    let s = Sandbox::new();
    let opts = ApplyOptions {
        whiteouts: Whiteouts::Overlay,
        ..Default::default()
    };
    s.apply_with(
        &Raw::default()
            .symlink("up", "../..")
            .file("up/.wh.sentinel", b"")
            .file("up/sentinel_dir/.wh..wh..opq", b"")
            .end(),
        &opts,
    )
    .unwrap();
    let md = fs::symlink_metadata(s.target.join("sentinel")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(
        s.target.join("sentinel_dir"),
        "trusted.overlay.opaque",
        &mut buf[..],
    )
    .unwrap();
    assert_eq!(&buf[..n], b"y");
}

// ---------------------------------------------------------------------------------------
// Devices, replacement
// ---------------------------------------------------------------------------------------

#[test]
fn device_nodes_are_created_inside_only() {
    let s = Sandbox::new();
    s.apply(
        &Raw::default()
            .device("dev/null2", b'3', 1, 3)
            .device("dev/loop9", b'4', 7, 9)
            .device("dev/fifo", b'6', 0, 0)
            .end(),
    )
    .unwrap();
    let md = fs::symlink_metadata(s.target.join("dev/null2")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), rustix::fs::makedev(1, 3));
    assert!(fs::symlink_metadata(s.target.join("dev/loop9"))
        .unwrap()
        .file_type()
        .is_block_device());
    assert!(fs::symlink_metadata(s.target.join("dev/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let mut raw = Raw::default();
    raw.header(b"../sentinel_dev", b'3', 0, b"");
    assert_unsafe(s.apply(&raw.end()));
    let outer = s.outer().to_str().unwrap().to_string();
    s.apply(
        &Raw::default()
            .symlink("o", &outer)
            .device("o/sentinel", b'3', 1, 3)
            .end(),
    )
    .unwrap();
}

#[test]
fn file_replaces_directory_and_directory_replaces_file() {
    let s = Sandbox::new();
    fs::create_dir_all(s.target.join("lowerdir/deep")).unwrap();
    fs::write(s.target.join("lowerdir/deep/f"), b"lower").unwrap();
    fs::write(s.target.join("lowerfile"), b"lower").unwrap();
    s.apply(
        &Raw::default()
            .file("lowerdir", b"now a file")
            .dir("lowerfile/")
            .file("lowerfile/child", b"c")
            .dir("x/")
            .file("x/child", b"c")
            .file("x", b"file replaces this layer's dir")
            .end(),
    )
    .unwrap();
    assert_eq!(s.read("lowerdir"), b"now a file");
    assert_eq!(s.read("lowerfile/child"), b"c");
    assert_eq!(s.read("x"), b"file replaces this layer's dir");
    // A child of what is now a file cannot be created.
    let err = assert_err(s.apply(&Raw::default().file("x/y", b"y").end()));
    assert!(err.contains("x/y"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Malformed streams
// ---------------------------------------------------------------------------------------

#[test]
fn giant_pax_header_is_refused_without_reading_it() {
    let s = Sandbox::new();
    let mut raw = Raw::default();
    raw.header(b"PaxHeaders.0/x", b'x', 1 << 30, b"");
    // The stream ends right after the header: an implementation that reads (or
    // allocates) the declared gigabyte first would report truncation instead.
    let start = Instant::now();
    let r = s.apply(&raw.0);
    match r {
        Err(Error::Malformed { reason, .. }) => assert!(reason.contains("limit"), "{reason}"),
        other => panic!("expected a size refusal, got {other:?}"),
    }
    assert!(start.elapsed().as_secs() < 2);
    for kind in [b'L', b'K', b'g'] {
        let mut raw = Raw::default();
        raw.header(b"././@LongLink", kind, (layer::MAX_META_SIZE) + 1, b"");
        assert!(matches!(s.apply(&raw.0), Err(Error::Malformed { .. })));
    }
}

#[test]
fn bad_pax_records_are_refused() {
    let s = Sandbox::new();
    for recs in [
        b"99999999999999999999 path=x\n".to_vec(),
        b"5 path=x\n".to_vec(),
        b"9 path=x!".to_vec(),
        b"nonsense".to_vec(),
        record("size", b"-1"),
        record("size", b"12abc"),
        record("uid", b"99999999999999999999999"),
        record("mtime", b"1.x"),
        record("GNU.sparse.map", b"0,1"),
    ] {
        let r = s.apply(&Raw::default().pax(&recs).file("x", b"data").end());
        assert!(
            matches!(r, Err(Error::Malformed { .. })),
            "{:?}: {r:?}",
            String::from_utf8_lossy(&recs)
        );
    }
    // uid -1 would be "no change" to chown: refused.
    let r = s.apply(
        &Raw::default()
            .pax(&record("uid", b"4294967295"))
            .file("x", b"")
            .end(),
    );
    assert_unsafe(r);
}

#[test]
fn truncated_streams_are_clear_errors() {
    let s = Sandbox::new();
    let full = Raw::default().file("big", &[7u8; 10_000]).end();
    for cut in [100, 512, 600, 512 + 9_999, 512 + 10_240 + 100] {
        match s.apply(&full[..cut]) {
            Err(Error::Truncated { .. }) => {}
            other => panic!("cut at {cut}: expected truncation, got {other:?}"),
        }
    }
    // An extended header with no entry after it.
    let mut raw = Raw::default();
    raw.pax(&record("path", b"x"));
    assert!(matches!(s.apply(&raw.0), Err(Error::Truncated { .. })));
    // A clean end at a header boundary is accepted, like Go's reader.
    let cut = 512 + 10_240;
    s.apply(&full[..cut]).unwrap();
    assert_eq!(s.read("big"), vec![7u8; 10_000]);
}

#[test]
fn corrupt_headers_are_refused() {
    let s = Sandbox::new();
    let mut bad = Raw::default().file("x", b"data").end();
    bad[0] = b'y'; // checksum no longer matches
    assert!(matches!(s.apply(&bad), Err(Error::Malformed { .. })));
    let mut raw = Raw::default();
    raw.header(b"sparse", b'S', 0, b"");
    assert!(matches!(s.apply(&raw.end()), Err(Error::Malformed { .. })));
    let mut raw = Raw::default();
    raw.header(b"weird", b'V', 0, b"");
    assert!(matches!(s.apply(&raw.end()), Err(Error::Malformed { .. })));
    // A zero block followed by garbage.
    let mut z = vec![0u8; 512];
    z.extend_from_slice(&Raw::default().file("x", b"").end());
    assert!(matches!(s.apply(&z), Err(Error::Malformed { .. })));
    assert!(!s.target.join("x").exists());
}

#[test]
fn header_only_types_carry_no_data() {
    // A symlink header claiming 512 bytes of data, followed by a real header: like Go, we
    // read no data for it, so the next header is the next entry (and it is refused).
    let s = Sandbox::new();
    let mut raw = Raw::default();
    raw.header(b"l", b'2', 512, b"target");
    raw.file("../sentinel", b"smuggled");
    assert_unsafe(s.apply(&raw.end()));
    let mut raw = Raw::default();
    raw.header(b"d/", b'5', 512, b"");
    raw.file("inside", b"ok");
    s.apply(&raw.end()).unwrap();
    assert_eq!(s.read("inside"), b"ok");
}

#[test]
fn gnu_long_names_are_honoured_and_checked() {
    let s = Sandbox::new();
    let long = format!("{}/../../../sentinel", "a".repeat(150));
    let mut raw = Raw::default();
    raw.header(b"././@LongLink", b'L', long.len() as u64 + 1, b"");
    let mut data = long.into_bytes();
    data.push(0);
    raw.data(&data);
    raw.file("short", b"pwned");
    assert_unsafe(s.apply(&raw.end()));

    let long = format!("{}/f", "b".repeat(150));
    let mut raw = Raw::default();
    raw.header(b"././@LongLink", b'L', long.len() as u64, b"");
    raw.data(long.as_bytes());
    raw.file("short", b"ok");
    s.apply(&raw.end()).unwrap();
    assert_eq!(s.read(&long), b"ok");
}

// ---------------------------------------------------------------------------------------
// Random damage
// ---------------------------------------------------------------------------------------

#[test]
fn mutated_streams_never_panic_or_escape() {
    let outer_abs = "/tmp/strata-never-there";
    let mut base = Raw::default();
    base.dir("d/")
        .file("d/f", b"some content that spans a little")
        .symlink("d/up", "../..")
        .symlink("d/abs", outer_abs)
        .hardlink("d/h", "d/f")
        .pax(
            &[
                record("path", b"d/long-pax-name").as_slice(),
                &record("SCHILY.xattr.user.x", b"v"),
            ]
            .concat(),
        )
        .file("ignored", b"pax-named")
        .file("d/.wh.f", b"")
        .file("d/.wh..wh..opq", b"")
        .device("d/null", b'3', 1, 3);
    let base = base.end();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let (mut ok, mut err) = (0, 0);
    for i in 0..1000 {
        let s = Sandbox::new();
        let mut t = base.clone();
        if i % 5 == 0 {
            t.truncate(rnd(t.len()));
        }
        for _ in 0..1 + rnd(6) {
            let at = rnd(t.len().max(1));
            if let Some(b) = t.get_mut(at) {
                // Mostly inside headers, where the interesting fields are.
                *b = match rnd(4) {
                    0 => b'/',
                    1 => b'.',
                    2 => 0,
                    _ => rnd(256) as u8,
                };
            }
        }
        match s.apply(&t) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
        assert!(!Path::new(outer_abs).exists());
    }
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
}
