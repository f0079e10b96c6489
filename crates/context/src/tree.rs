//! Source trees: the build context (a walked, filtered snapshot) and a stage's root
//! directory (read on demand), plus chroot-style path resolution over either.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::gopath::{self, go_lossy};
use crate::matcher::{MatchInfo, Matcher};
use crate::Error;

/// The type of a file, from `lstat` (symlinks are never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// The `lstat` fields a tree keeps per entry: what selection, digests and copies read,
/// in a fifth of the memory of a [`std::fs::Metadata`] (a context of 200,000 files holds
/// one per file). The methods are named as [`MetadataExt`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_nsec: u32,
    ctime_nsec: u32,
    nlink: u32,
    size: u64,
    mtime: i64,
    ctime: i64,
    dev: u64,
    ino: u64,
    rdev: u64,
}

impl From<&Metadata> for Stat {
    fn from(m: &Metadata) -> Stat {
        Stat {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            mtime_nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
            ctime_nsec: m.ctime_nsec().clamp(0, 999_999_999) as u32,
            nlink: m.nlink().min(u64::from(u32::MAX)) as u32,
            size: m.size(),
            mtime: m.mtime(),
            ctime: m.ctime(),
            dev: m.dev(),
            ino: m.ino(),
            rdev: m.rdev(),
        }
    }
}

#[allow(missing_docs)]
impl Stat {
    /// `st_mode`: file type and permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }
    pub fn uid(&self) -> u32 {
        self.uid
    }
    pub fn gid(&self) -> u32 {
        self.gid
    }
    /// Size in bytes (as [`MetadataExt::size`]).
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn mtime(&self) -> i64 {
        self.mtime
    }
    pub fn mtime_nsec(&self) -> i64 {
        i64::from(self.mtime_nsec)
    }
    pub fn ctime(&self) -> i64 {
        self.ctime
    }
    pub fn ctime_nsec(&self) -> i64 {
        i64::from(self.ctime_nsec)
    }
    pub fn dev(&self) -> u64 {
        self.dev
    }
    pub fn ino(&self) -> u64 {
        self.ino
    }
    pub fn rdev(&self) -> u64 {
        self.rdev
    }
    pub fn nlink(&self) -> u64 {
        u64::from(self.nlink)
    }
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// One file of a tree: its `lstat` metadata and, for a symlink, its target.
#[derive(Debug, Clone)]
pub struct Node {
    /// The file type.
    pub kind: FileKind,
    /// `lstat` metadata (mode, owner, size, …).
    pub metadata: Stat,
    /// The symlink's target as stored, for [`FileKind::Symlink`].
    pub link_target: Option<PathBuf>,
}

impl Node {
    fn from_metadata(metadata: Metadata, path: &Path) -> io::Result<Node> {
        let ft = metadata.file_type();
        let kind = if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else {
            FileKind::Other
        };
        let link_target = if kind == FileKind::Symlink {
            Some(fs::read_link(path)?)
        } else {
            None
        };
        Ok(Node {
            kind,
            metadata: Stat::from(&metadata),
            link_target,
        })
    }

    /// Whether this is a directory (not a symlink to one).
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// A tree COPY/ADD sources are taken from. Paths are relative to its root (the empty
/// path is the root). Implementations answer `lstat`-like questions and never follow a
/// symlink; [`SourceTree::lstat`] and [`SourceTree::read_dir`] are only asked about paths
/// whose every parent is a real directory of the tree.
pub trait SourceTree {
    /// The tree's root on disk.
    fn disk_root(&self) -> &Path;
    /// The entry at `rel`, or `None` when there is none (or a parent is not a directory).
    fn lstat(&self, rel: &Path) -> io::Result<Option<Node>>;
    /// The names in directory `rel`, sorted by bytes.
    fn read_dir(&self, rel: &Path) -> io::Result<Vec<OsString>>;
    /// How many entries the whole tree holds, when it knows (a selection from it reserves
    /// that much once instead of growing by doubling); 0 when it does not.
    fn size_hint(&self) -> usize {
        0
    }
    /// Where `rel` is on disk.
    fn disk_path(&self, rel: &Path) -> PathBuf {
        self.disk_root().join(rel)
    }
}

/// The build context: a directory walked once (sorted, symlinks not followed) with the
/// ignore patterns applied as BuildKit's context transfer applies them. Excluded paths do
/// not exist for anything that reads the context afterwards; a directory that is
/// excluded but holds re-included files is kept (with only those files).
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    nodes: HashMap<PathBuf, Node>,
    children: HashMap<PathBuf, Vec<OsString>>,
    order: Vec<PathBuf>,
}

impl Context {
    /// Walks `root` and keeps what `matcher` (the `.dockerignore` patterns, if the caller
    /// has any) does not exclude. `root` itself may be given through a symlink.
    pub fn load(root: &Path, matcher: Option<&Matcher>) -> Result<Context, Error> {
        let root = fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let root_meta = fs::symlink_metadata(&root).map_err(|e| Error::io(&root, e))?;
        if !root_meta.is_dir() {
            return Err(Error::io(
                &root,
                io::Error::new(io::ErrorKind::NotADirectory, "context is not a directory"),
            ));
        }
        let mut ctx = Context {
            root: root.clone(),
            nodes: HashMap::new(),
            children: HashMap::new(),
            order: Vec::new(),
        };
        ctx.nodes.insert(
            PathBuf::new(),
            Node::from_metadata(root_meta, &root).map_err(|e| Error::io(&root, e))?,
        );
        ctx.children.insert(PathBuf::new(), Vec::new());

        struct Frame {
            rel: PathBuf,
            info: MatchInfo,
            node: Option<Node>,
        }
        let mut stack: Vec<Frame> = Vec::new();
        let mut walk = WalkDir::new(&root)
            .follow_links(false)
            .sort_by_file_name()
            .min_depth(1)
            .into_iter();
        while let Some(item) = walk.next() {
            let entry = match item {
                Ok(e) => e,
                Err(err) => {
                    let path = err
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    let denied = err
                        .io_error()
                        .is_some_and(|e| e.kind() == io::ErrorKind::PermissionDenied);
                    if denied {
                        if let (Some(m), Ok(rel)) = (matcher, path.strip_prefix(&root)) {
                            if m.matches_bytes(rel.as_os_str().as_bytes()) {
                                continue;
                            }
                        }
                    }
                    let io = err
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("walk error"));
                    return Err(Error::io(&path, io));
                }
            };
            let depth = entry.depth();
            while stack.len() >= depth {
                stack.pop();
            }
            let rel = match entry.path().strip_prefix(&root) {
                Ok(r) => r.to_path_buf(),
                Err(_) => continue,
            };
            let meta = entry.metadata().map_err(|e| {
                Error::io(
                    entry.path(),
                    e.into_io_error()
                        .unwrap_or_else(|| io::Error::other("metadata")),
                )
            })?;
            let node =
                Node::from_metadata(meta, entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            let is_dir = node.is_dir();
            let (excluded, info) = match matcher {
                Some(m) => {
                    let parent = stack.last().map(|f| f.info.clone()).unwrap_or_default();
                    m.matches_using_parent_results(&go_lossy(rel.as_os_str().as_bytes()), &parent)
                }
                None => (false, MatchInfo::default()),
            };
            if excluded {
                if is_dir {
                    let skip = matcher.is_some_and(|m| {
                        m.can_skip_excluded_dir(&go_lossy(rel.as_os_str().as_bytes()))
                    });
                    if skip {
                        walk.skip_current_dir();
                    } else {
                        stack.push(Frame {
                            rel,
                            info,
                            node: Some(node),
                        });
                    }
                }
                continue;
            }
            // Kept: its excluded ancestors come back, as fsutil sends them before it.
            for f in stack.iter_mut() {
                if let Some(n) = f.node.take() {
                    ctx.insert(f.rel.clone(), n);
                }
            }
            ctx.insert(rel.clone(), node);
            if is_dir {
                stack.push(Frame {
                    rel,
                    info,
                    node: None,
                });
            }
        }
        Ok(ctx)
    }

    fn insert(&mut self, rel: PathBuf, node: Node) {
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(name) = rel.file_name() {
            self.children
                .entry(parent)
                .or_default()
                .push(name.to_os_string());
        }
        if node.is_dir() {
            self.children.entry(rel.clone()).or_default();
        }
        self.order.push(rel.clone());
        self.nodes.insert(rel, node);
    }

    /// The context directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The entry at `rel` (relative to the root, no symlink resolution).
    pub fn get(&self, rel: &Path) -> Option<&Node> {
        self.nodes.get(rel)
    }

    /// Every kept entry except the root, depth first, names sorted by bytes, each
    /// directory before what it holds.
    pub fn entries(&self) -> impl Iterator<Item = (&Path, &Node)> {
        self.order
            .iter()
            .filter_map(|p| self.nodes.get(p).map(|n| (p.as_path(), n)))
    }

    /// Number of kept entries, the root excluded.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the context holds nothing but its root.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl SourceTree for Context {
    fn disk_root(&self) -> &Path {
        &self.root
    }

    fn lstat(&self, rel: &Path) -> io::Result<Option<Node>> {
        Ok(self.nodes.get(rel).cloned())
    }

    fn size_hint(&self) -> usize {
        self.len()
    }

    fn read_dir(&self, rel: &Path) -> io::Result<Vec<OsString>> {
        Ok(self.children.get(rel).cloned().unwrap_or_default())
    }
}

/// A directory read as it is on disk, with no filter: the root filesystem of a build
/// stage for `COPY --from`.
#[derive(Debug, Clone)]
pub struct StageRoot {
    root: PathBuf,
}

impl StageRoot {
    /// A stage root at `root` (which must be a directory; it may be reached through a
    /// symlink).
    pub fn new(root: &Path) -> Result<StageRoot, Error> {
        let root = fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        Ok(StageRoot { root })
    }
}

impl SourceTree for StageRoot {
    fn disk_root(&self) -> &Path {
        &self.root
    }

    fn lstat(&self, rel: &Path) -> io::Result<Option<Node>> {
        let p = self.root.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) => Node::from_metadata(m, &p).map(Some),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn read_dir(&self, rel: &Path) -> io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        for e in fs::read_dir(self.root.join(rel))? {
            names.push(e?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }
}

/// Most symlinks followed while resolving one path (containerd's `RootPath`).
const MAX_LINKS: usize = 255;

/// Resolves `path` (absolute, already cleaned, e.g. `/a/b`) inside `tree` as if its root
/// were `/` (containerd continuity's `RootPath`, which BuildKit uses for COPY sources):
/// symlinks in every component are followed, and the last one too when `follow_final`;
/// an absolute target restarts at the root, `..` never climbs above it, a relative target
/// is joined to the resolved directory and cleaned lexically. Returns the resolved path
/// relative to the root and its entry, or `None` when nothing is there.
pub fn resolve_in_root(
    tree: &dyn SourceTree,
    path: &[u8],
    follow_final: bool,
) -> Result<Option<(PathBuf, Node)>, Error> {
    let io_err = |rel: &Path, e| Error::io(&tree.disk_path(rel), e);
    let mut pending: Vec<Vec<u8>> = components_rev(&gopath::join_root(path));
    let mut cur = PathBuf::new();
    let mut cur_node = match tree.lstat(&cur).map_err(|e| io_err(&cur, e))? {
        Some(n) => n,
        None => return Ok(None),
    };
    let mut links = 0usize;
    while let Some(c) = pending.pop() {
        let cand = cur.join(OsStr::from_bytes(&c));
        let node = match tree.lstat(&cand).map_err(|e| io_err(&cand, e))? {
            Some(n) => n,
            None => return Ok(None),
        };
        match node.kind {
            FileKind::Symlink if follow_final || !pending.is_empty() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::TooManyLinks(go_lossy(path).into_owned()));
                }
                let target = node
                    .link_target
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .as_os_str()
                    .as_bytes();
                let mut joined = Vec::new();
                if target.first() != Some(&b'/') {
                    joined.extend_from_slice(cur.as_os_str().as_bytes());
                    joined.push(b'/');
                }
                joined.extend_from_slice(target);
                let mut again = components_rev(&gopath::join_root(&joined));
                // Resolve the link's target from the root, then the rest of the path.
                again.splice(0..0, pending.drain(..));
                pending = again;
                cur = PathBuf::new();
                cur_node = match tree.lstat(&cur).map_err(|e| io_err(&cur, e))? {
                    Some(n) => n,
                    None => return Ok(None),
                };
            }
            FileKind::Dir => {
                cur = cand;
                cur_node = node;
            }
            _ => {
                if !pending.is_empty() {
                    // A file used as a directory: ENOTDIR, nothing there.
                    return Ok(None);
                }
                cur = cand;
                cur_node = node;
            }
        }
    }
    Ok(Some((cur, cur_node)))
}

/// The components of a cleaned absolute path, last first (so `pop` gives the first).
fn components_rev(abs: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = abs
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect();
    v.reverse();
    v
}
