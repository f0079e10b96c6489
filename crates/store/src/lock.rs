//! The store lock: [`Writer`] (held shared, the one way to write) and [`Exclusive`] (held
//! alone, for GC), taken with [`Store::lock_shared`] and [`Store::lock_exclusive`]; the
//! short lock of index.json's read-modify-write.

use std::fs::{File, OpenOptions};
use std::io;

use crate::{IoContext, Result, Store};

/// A held flock (released on drop).
pub struct StoreLock {
    _file: File,
}

/// The store lock held shared: the one way to write to the store. Every write API (blobs,
/// images, refs, meta, roots, cache records, temp dirs that become store items) is a method
/// of `Writer`, so a write without the lock does not compile; reads go through
/// `Deref<Target = Store>` as on an unlocked [`Store`]. Prune waits until every `Writer`
/// is dropped, so nothing written under one can be collected before it is referenced.
/// Released on drop. Two `Writer`s of one process coexist (the lock is shared), but an
/// [`Exclusive`] taken while this process holds a `Writer` waits for ever.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("store-doc-writer-{}", std::process::id()));
/// let store = store::Store::open(&dir).unwrap();
/// let w = store.lock_shared().unwrap();
/// let d = w.write_blob(b"hello").unwrap();
/// drop(w);
/// assert!(store.has_blob(&d)); // reads need no lock
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// Without the guard the same write does not compile:
///
/// ```compile_fail
/// # let dir = std::env::temp_dir().join(format!("store-doc-nowriter-{}", std::process::id()));
/// let store = store::Store::open(&dir).unwrap();
/// store.write_blob(b"hello").unwrap(); // no method `write_blob` on `Store`
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct Writer<'s> {
    pub(crate) store: &'s Store,
    _lock: StoreLock,
}

impl std::ops::Deref for Writer<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

/// The store lock held exclusive (no [`Writer`] runs meanwhile): garbage collection, and
/// every write, through `Deref<Target = Writer>`.
#[must_use = "the lock is released when the guard is dropped"]
pub struct Exclusive<'s>(Writer<'s>);

impl<'s> std::ops::Deref for Exclusive<'s> {
    type Target = Writer<'s>;
    fn deref(&self) -> &Writer<'s> {
        &self.0
    }
}

impl Store {
    pub(crate) fn lock_file(
        &self,
        name: &str,
        mode: rustix::fs::FlockOperation,
    ) -> Result<StoreLock> {
        let p = self.root.join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("open {}", p.display()))?;
        rustix::fs::flock(&f, mode)
            .map_err(io::Error::from)
            .ctx(|| format!("lock {}", p.display()))?;
        Ok(StoreLock { _file: f })
    }

    /// Take the store lock shared, for writing: held by every writer for the whole of its
    /// work, so prune never removes a blob that a writer has written but not yet
    /// referenced. Readers may hold it too, so no prune removes what they read. Taking it
    /// sweeps the temporaries of commands that are gone ([`Store::sweep_tmp`]).
    pub fn lock_shared(&self) -> Result<Writer<'_>> {
        let l = self.lock_file("lock", rustix::fs::FlockOperation::LockShared)?;
        self.sweep_tmp();
        Ok(Writer {
            store: self,
            _lock: l,
        })
    }

    /// Take the store lock exclusive, waiting for every writer: for prune (which sweeps
    /// the temporaries itself, to count them).
    pub fn lock_exclusive(&self) -> Result<Exclusive<'_>> {
        let l = self.lock_file("lock", rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Exclusive(Writer {
            store: self,
            _lock: l,
        }))
    }

    pub(crate) fn refs_lock(&self) -> Result<StoreLock> {
        self.lock_file("refs.lock", rustix::fs::FlockOperation::LockExclusive)
    }
}
