//! The stat cache: a regular file's content digest, remembered by its `lstat` metadata so an
//! unchanged file is not read again (as BuildKit's fsutil and git's index do).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::select::Entry;
use crate::Error;

/// First bytes of a saved cache; a file that does not start with them is ignored.
const MAGIC: &[u8] = b"strata/stat-cache/v1\n";

/// How long before the moment a file is hashed its ctime must be for the record to be kept.
const RACY_SECS: i64 = 2;

/// The `lstat` fields a record is keyed by: all of them must match for a lookup to hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Stat {
    fn of(m: &crate::tree::Stat) -> Stat {
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    stat: Stat,
    digest: [u8; 32],
}

/// A record and where it stands in this build.
#[derive(Clone, Copy, Debug)]
struct Used {
    record: Record,
    /// Whether it may be saved (it is not racy).
    keep: bool,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Loaded, not looked up by this build (not saved again).
    Loaded,
    /// Loaded and found to match.
    Hit,
    /// Hashed by this build.
    New,
}

#[derive(Default)]
struct Inner {
    /// Path (its bytes) → record: what was loaded and what this build looked up or hashed
    /// (the in-process memo, and what is saved). One table: a context of 50,000 files has
    /// 50,000 records.
    records: HashMap<Vec<u8>, Used>,
    /// Whether a loaded record was found stale.
    dropped: bool,
}

/// Regular files' content digests (sha256 of the bytes), remembered by `lstat` metadata.
///
/// A record maps a file's absolute source path to its metadata — device, inode, size,
/// mtime and ctime (seconds and nanoseconds), `st_mode`, uid and gid — and the sha256 of its
/// content. A lookup ([`StatCache::file_digest`]) is trusted only when *all* of those fields
/// equal the entry's current `lstat` metadata ([`Entry::metadata`], taken by the walk); the
/// file is then not opened at all. Otherwise the file is read (checked to still be the
/// selected file: same device and inode, regular, exactly the selected size, else
/// [`Error::Changed`]) and a new record made.
///
/// Racy-clean rule (as git's index): a record is kept for [`StatCache::to_bytes`] only when
/// the file's ctime is at least 2 seconds before the moment its hashing started, and its
/// metadata when opened equals the walk's. A file written within the same timestamp tick
/// as (or after) the hashing is therefore hashed again next time. The ctime cannot be set
/// by users (`utimensat` sets only atime and mtime) and every write, truncate, chmod, chown
/// or rename moves it to the current time, so a file changed after it was hashed no longer
/// matches its record, even when its size and mtime were restored.
///
/// Known limit: a system clock stepped backwards can give a later change the ctime of an
/// earlier state, and then a stale record can match.
///
/// Within one build the cache is also the memo that has each file read at most once (a
/// racy record serves this build but is not saved), so the step's memo key and its content
/// key see the same content. Thread-safe: a mutex inside, held only for lookups, never
/// while a file is read (so two threads asking at the same moment for a file not yet known,
/// e.g. two stages copying it concurrently, may both read it).
pub struct StatCache {
    inner: Mutex<Inner>,
    hashed: AtomicU64,
    /// Bytes of the files hashed.
    hashed_bytes: AtomicU64,
    base: Option<PathBuf>,
    /// The time a hashing starts (tests move it forward to keep fresh files' records).
    clock: fn() -> SystemTime,
}

impl std::fmt::Debug for StatCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatCache")
            .field("hashed", &self.hashed())
            .finish_non_exhaustive()
    }
}

impl Default for StatCache {
    fn default() -> StatCache {
        StatCache::new()
    }
}

impl StatCache {
    /// An empty cache (also the in-process memo of one build). Relative source paths are
    /// keyed as joined to the current directory.
    pub fn new() -> StatCache {
        StatCache {
            inner: Mutex::new(Inner::default()),
            hashed: AtomicU64::new(0),
            hashed_bytes: AtomicU64::new(0),
            base: std::env::current_dir().ok(),
            clock: SystemTime::now,
        }
    }

    /// A cache saved by [`StatCache::to_bytes`]. Bytes that are not such a cache (empty,
    /// truncated, corrupt, another version or another program's) give an empty cache.
    pub fn from_bytes(bytes: &[u8]) -> StatCache {
        let c = StatCache::new();
        if let Some(loaded) = parse(bytes) {
            c.lock().records = loaded;
        }
        c
    }

    /// How many files this cache has read (hashed) so far.
    pub fn hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }

    /// How many bytes the files this cache has read hold.
    pub fn hashed_bytes(&self) -> u64 {
        self.hashed_bytes.load(Ordering::Relaxed)
    }

    /// How many files this build asked about (read, or answered by a record).
    pub fn looked_up(&self) -> usize {
        self.lock()
            .records
            .values()
            .filter(|u| u.state != State::Loaded)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The records to save: those this build looked up or hashed, less the racy ones;
    /// `None` when nothing was looked up or they are exactly what was loaded (nothing to
    /// save). Records of files this build did not look at are dropped.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let inner = self.lock();
        if inner.records.values().all(|u| u.state == State::Loaded) {
            return None;
        }
        // The same as loaded: every loaded record was looked up and found unchanged, and
        // nothing else is kept.
        let same = !inner.dropped
            && inner.records.values().all(|u| match u.state {
                State::Loaded => false,
                State::Hit => true,
                State::New => !u.keep,
            });
        if same {
            return None;
        }
        let mut keep: Vec<(&Vec<u8>, &Record)> = inner
            .records
            .iter()
            .filter(|(_, u)| u.keep && u.state != State::Loaded)
            .map(|(p, u)| (p, &u.record))
            .collect();
        keep.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(MAGIC.len() + keep.len() * 160 + 32);
        out.extend_from_slice(MAGIC);
        for (p, r) in keep {
            out.extend_from_slice(&(p.len() as u64).to_be_bytes());
            out.extend_from_slice(p);
            let s = &r.stat;
            for v in [s.dev, s.ino, s.size] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            for v in [s.mtime, s.mtime_nsec, s.ctime, s.ctime_nsec] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            for v in [s.mode, s.uid, s.gid] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&r.digest);
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        Some(out)
    }

    /// The bytes of `source` as an absolute path.
    fn key(&self, source: &Path) -> Vec<u8> {
        match &self.base {
            Some(b) if !source.is_absolute() => b.join(source).into_os_string().into_vec(),
            _ => source.as_os_str().as_bytes().to_vec(),
        }
    }

    /// The sha256 of a regular file's content: from a record whose metadata all equals the
    /// entry's (the file is not opened), else read and remembered. The file must still be
    /// the selected one (same device and inode, regular, `entry`'s size): anything else is
    /// [`Error::Changed`].
    pub fn file_digest(&self, entry: &Entry) -> Result<[u8; 32], Error> {
        let stat = Stat::of(&entry.metadata);
        let key = self.key(&entry.source);
        {
            let mut inner = self.lock();
            let mut stale_loaded = false;
            if let Some(u) = inner.records.get_mut(&key) {
                if u.record.stat == stat {
                    if u.state == State::Loaded {
                        u.state = State::Hit;
                    }
                    return Ok(u.record.digest);
                }
                // Stale: the file is hashed again below.
                stale_loaded = u.state != State::New;
            }
            inner.dropped |= stale_loaded;
        }
        let started = (self.clock)();
        let (digest, opened) = hash_file(entry, stat.size)?;
        self.hashed.fetch_add(1, Ordering::Relaxed);
        self.hashed_bytes.fetch_add(stat.size, Ordering::Relaxed);
        let keep = opened == stat && !is_racy(&stat, started);
        let record = Record { stat, digest };
        let used = Used {
            record,
            keep,
            state: State::New,
        };
        self.lock().records.insert(key, used);
        Ok(digest)
    }
}

/// Whether a file hashed at `started` may have changed within its ctime's tick: its ctime
/// is not at least [`RACY_SECS`] before `started` (a clock before the epoch: racy).
fn is_racy(stat: &Stat, started: SystemTime) -> bool {
    let Ok(now) = started.duration_since(UNIX_EPOCH) else {
        return true;
    };
    let ctime_ns = i128::from(stat.ctime) * 1_000_000_000 + i128::from(stat.ctime_nsec);
    let limit_ns = now.as_nanos() as i128 - i128::from(RACY_SECS) * 1_000_000_000;
    ctime_ns > limit_ns
}

/// The sha256 of the file's bytes and its metadata when opened; refused with
/// [`Error::Changed`] unless it is still the selected file with the selected size.
fn hash_file(e: &Entry, size: u64) -> Result<([u8; 32], Stat), Error> {
    let changed = || Error::Changed(e.source.display().to_string());
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&e.source)
        .map_err(|err| Error::io(&e.source, err))?;
    let now = f.metadata().map_err(|err| Error::io(&e.source, err))?;
    if now.dev() != e.metadata.dev() || now.ino() != e.metadata.ino() || !now.is_file() {
        return Err(changed());
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut r = f.take(size.saturating_add(1));
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io(&e.source, err)),
        };
        total += n as u64;
        if total > size {
            return Err(changed());
        }
        h.update(&buf[..n]);
    }
    if total != size {
        return Err(changed());
    }
    Ok((h.finalize().into(), Stat::of(&(&now).into())))
}

/// A saved cache's records; `None` for anything that is not one, whole and intact.
fn parse(bytes: &[u8]) -> Option<HashMap<Vec<u8>, Used>> {
    let body = bytes.strip_prefix(MAGIC)?;
    let split = body.len().checked_sub(32)?;
    let (records, sum) = bytes.split_at(MAGIC.len() + split);
    if Sha256::digest(records).as_slice() != sum {
        return None;
    }
    let mut r = Reader(&records[MAGIC.len()..]);
    // A record takes 108 bytes and its path: about 150 bytes in all.
    let mut out = HashMap::with_capacity(records.len() / 150);
    while !r.0.is_empty() {
        let len = usize::try_from(r.u64()?).ok()?;
        let path = r.take(len)?.to_vec();
        let stat = Stat {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime: r.u64()? as i64,
            mtime_nsec: r.u64()? as i64,
            ctime: r.u64()? as i64,
            ctime_nsec: r.u64()? as i64,
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
        };
        let digest: [u8; 32] = r.take(32)?.try_into().ok()?;
        let used = Used {
            record: Record { stat, digest },
            keep: true,
            state: State::Loaded,
        };
        out.insert(path, used);
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests;
