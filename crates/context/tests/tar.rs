//! A context given as a tar stream: extraction stays inside its directory.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use context::{extract_tar, Context, Error, FileKind};
use tar::{EntryType, Header};

/// A tar built member by member, names written raw (no validation by the tar crate).
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn member(mut self, name: &[u8], ty: EntryType, mode: u32, link: &[u8], data: &[u8]) -> Tar {
        let mut h = Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, name: &str, mode: u32, data: &str) -> Tar {
        self.member(
            name.as_bytes(),
            EntryType::Regular,
            mode,
            b"",
            data.as_bytes(),
        )
    }

    fn dir(self, name: &str, mode: u32) -> Tar {
        self.member(name.as_bytes(), EntryType::Directory, mode, b"", b"")
    }

    fn symlink(self, name: &str, target: &str) -> Tar {
        self.member(
            name.as_bytes(),
            EntryType::Symlink,
            0o777,
            target.as_bytes(),
            b"",
        )
    }

    fn hardlink(self, name: &str, target: &str) -> Tar {
        self.member(
            name.as_bytes(),
            EntryType::Link,
            0o644,
            target.as_bytes(),
            b"",
        )
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn unsafe_path(r: Result<(), Error>) -> bool {
    matches!(r, Err(Error::UnsafeTarPath { .. }))
}

#[test]
fn extracts_a_context() {
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .dir("./", 0o755)
        .dir("d/", 0o750)
        .file("d/f", 0o640, "hello")
        .symlink("d/l", "f")
        .hardlink("d/h", "d/f")
        .file("./top", 0o755, "top")
        .file("implicit/parent/x", 0o644, "x")
        .dir("ro/", 0o555)
        .file("ro/inner", 0o644, "in")
        .bytes();
    let dest = t.path().join("ctx");
    let c = Context::from_tar(&tar[..], &dest, None).unwrap();
    let paths: Vec<_> = c
        .entries()
        .map(|(p, _)| p.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "d",
            "d/f",
            "d/h",
            "d/l",
            "implicit",
            "implicit/parent",
            "implicit/parent/x",
            "ro",
            "ro/inner",
            "top"
        ]
    );
    let m = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();
    assert_eq!(
        m("").mode() & 0o777,
        0o700,
        "the extraction directory is private"
    );
    assert_eq!(m("d").mode() & 0o7777, 0o750);
    assert_eq!(m("d/f").mode() & 0o7777, 0o640);
    assert_eq!(m("top").mode() & 0o7777, 0o755);
    assert_eq!(m("ro").mode() & 0o7777, 0o555);
    assert_eq!(m("d/h").ino(), m("d/f").ino());
    assert_eq!(c.get(Path::new("d/l")).unwrap().kind, FileKind::Symlink);
    assert_eq!(fs::read_to_string(dest.join("d/f")).unwrap(), "hello");
}

#[test]
fn refuses_parent_and_absolute_names() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("ctx");
    assert!(unsafe_path(extract_tar(
        &Tar::new().file("../evil", 0o644, "x").bytes()[..],
        &dest
    )));
    assert!(!t.path().join("evil").exists());
    let dest = t.path().join("ctx2");
    assert!(unsafe_path(extract_tar(
        &Tar::new().file("a/../../evil", 0o644, "x").bytes()[..],
        &dest
    )));
    let dest = t.path().join("ctx3");
    assert!(unsafe_path(extract_tar(
        &Tar::new().file("/abs", 0o644, "x").bytes()[..],
        &dest
    )));
    let dest = t.path().join("ctx4");
    assert!(unsafe_path(extract_tar(
        &Tar::new().hardlink("h", "../outside").bytes()[..],
        &dest
    )));
}

#[test]
fn never_writes_through_a_symlink() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), "safe").unwrap();

    // A symlinked directory, then a file beneath it.
    let tar = Tar::new()
        .symlink("l", outside.to_str().unwrap())
        .file("l/x", 0o644, "evil")
        .bytes();
    assert!(unsafe_path(extract_tar(&tar[..], &t.path().join("c1"))));
    assert!(!outside.join("x").exists());

    // A relative escape the same way.
    let tar = Tar::new()
        .symlink("l", "../outside")
        .file("l/victim", 0o644, "evil")
        .bytes();
    assert!(unsafe_path(extract_tar(&tar[..], &t.path().join("c2"))));
    assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "safe");

    // A symlink replaced by a file: the link goes, the target stays.
    let victim = outside.join("victim");
    let tar = Tar::new()
        .symlink("f", victim.to_str().unwrap())
        .file("f", 0o644, "evil")
        .bytes();
    extract_tar(&tar[..], &t.path().join("c3")).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "safe");
    assert_eq!(fs::read_to_string(t.path().join("c3/f")).unwrap(), "evil");

    // A hard link through a symlink.
    let tar = Tar::new()
        .symlink("l", outside.to_str().unwrap())
        .hardlink("h", "l/victim")
        .bytes();
    assert!(unsafe_path(extract_tar(&tar[..], &t.path().join("c4"))));

    // A directory replaced by a symlink later: its mode is not applied through the link.
    fs::create_dir(outside.join("b")).unwrap();
    fs::set_permissions(outside.join("b"), fs::Permissions::from_mode(0o755)).unwrap();
    let tar = Tar::new()
        .dir("a/", 0o755)
        .dir("a/b/", 0o700)
        .symlink("a", outside.to_str().unwrap())
        .bytes();
    extract_tar(&tar[..], &t.path().join("c5")).unwrap();
    assert_eq!(
        fs::metadata(outside.join("b")).unwrap().mode() & 0o777,
        0o755
    );
    assert!(fs::symlink_metadata(t.path().join("c5/a"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn destination_must_be_new_or_empty() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("x"), "x").unwrap();
    let tar = Tar::new().file("f", 0o644, "x").bytes();
    assert!(extract_tar(&tar[..], t.path()).is_err());
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    extract_tar(&tar[..], &empty).unwrap();
    assert_eq!(fs::read_to_string(empty.join("f")).unwrap(), "x");
}

#[test]
fn context_symlinks_from_a_tar_stay_inside() {
    // A tar context whose symlink points at the host's /etc/passwd: COPY of it is "not
    // found", never the host's file.
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .symlink("passwd", "/etc/passwd")
        .file("ok", 0o644, "ok")
        .bytes();
    let c = Context::from_tar(&tar[..], &t.path().join("ctx"), None).unwrap();
    let err = context::select(&c, &["passwd"], &Default::default()).unwrap_err();
    assert_eq!(err.to_string(), "\"/passwd\" not found: not found");
}

#[test]
fn a_context_is_not_a_layer() {
    // Whiteout names are ordinary files; devices and FIFOs are skipped, not created.
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .file("keep", 0o644, "k")
        .file(".wh.keep", 0o644, "w")
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", 0o644, "o")
        .member(b"fifo", EntryType::Fifo, 0o644, b"", b"")
        .member(b"null", EntryType::Char, 0o666, b"", b"")
        .bytes();
    let dest = t.path().join("ctx");
    extract_tar(&tar[..], &dest).unwrap();
    assert_eq!(fs::read_to_string(dest.join("keep")).unwrap(), "k");
    assert_eq!(fs::read_to_string(dest.join(".wh.keep")).unwrap(), "w");
    assert_eq!(
        fs::read_to_string(dest.join("d/.wh..wh..opq")).unwrap(),
        "o"
    );
    assert!(fs::symlink_metadata(dest.join("fifo")).is_err());
    assert!(fs::symlink_metadata(dest.join("null")).is_err());
}

#[test]
fn long_names_as_gnu_tar_and_go_write_them() {
    // GNU 'L' entries (the tar crate's, GNU tar's) and PAX `path` records (Go's).
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    let mut gnu = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    gnu.append_data(&mut h, &long, &b"gnu"[..]).unwrap();
    let gnu = gnu.into_inner().unwrap();

    let mut pax = tar::Builder::new(Vec::new());
    pax.append_pax_extensions([("path", long.as_bytes())])
        .unwrap();
    let mut h = Header::new_ustar();
    h.as_old_mut().name[..5].copy_from_slice(b"short");
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    pax.append(&h, &b"pax"[..]).unwrap();
    let pax = pax.into_inner().unwrap();

    let t = tempfile::tempdir().unwrap();
    for (tar, want) in [(gnu, "gnu"), (pax, "pax")] {
        let dest = t.path().join(want);
        extract_tar(&tar[..], &dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join(&long)).unwrap(), want);
    }
}
