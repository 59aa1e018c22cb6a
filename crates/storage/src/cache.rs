//! A local cache in front of a remote repository: [`CachedStorage`].
//!
//! Listing snapshots, loading the index and walking the previous version's tree read the same
//! objects at every run. From a bucket each is a request (a whole index file, one manifest, or
//! a tree node's few kilobytes), so a run that needs a few thousand of them spends its time
//! waiting. The cache keeps, in a folder of the user's cache directory:
//!
//! - index files and snapshot manifests, whole, as they are read or written;
//! - packs that a caller marks as worth keeping ([`Storage::read_range_cached`],
//!   [`Storage::write_cached`]: the engine's packs of tree nodes and item lists, a few percent of
//!   the data), whole, so that every later read of a node in them is local.
//!
//! What makes it safe:
//!
//! - **Objects are immutable.** Index files, manifests and packs are written once under a name
//!   that is never reused (random ids, or for packs the BLAKE3 of their bytes), so a cached
//!   copy never goes stale; it can only disappear from the remote. Every reader lists before it
//!   reads (the index is the index files listed now), and [`Storage::list`] goes to the remote
//!   and drops cached objects the listing no longer has (or has with another size): a snapshot
//!   forgotten or an index file pruned on another machine is forgotten here too.
//! - **Damage is found and mended.** Each cached index file and manifest ends with the BLAKE3
//!   of its bytes, checked at every read; a cached pack must hash to its name, checked at its
//!   first read in each process. A copy that fails is deleted and read again from the remote.
//! - **The cache never decides an outcome.** A cache that cannot be read or written is skipped
//!   (the remote answers); writes and deletes go to the remote first, and the cache follows.
//!   Whole-object reads of packs (`verify --read-data`) always go to the remote. A command that
//!   must judge the remote itself (verify, repair) is run without the cache by its caller.
//!
//! The cache holds the same bytes as the remote, so an encrypted repository's cached objects
//! are encrypted too. Files are written to a temporary name and renamed, without a sync: a copy
//! lost or cut short by a crash fails its check and is fetched again.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{Kind, ObjectInfo, Removed, Result, Storage};

/// Bytes of the BLAKE3 hash at the end of a cached index file or manifest.
const HASH_LEN: usize = 32;

/// The name of the file that marks a cache directory for backup tools (see
/// <https://bford.info/cachedir/>), and its required first line.
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";

/// Whether whole objects of `kind` are kept (packs only when a caller asks).
fn whole_kind(kind: Kind) -> bool {
    matches!(kind, Kind::Index | Kind::Snapshot)
}

/// A storage with a local cache folder in front (see the module documentation).
pub struct CachedStorage<S> {
    inner: S,
    dir: PathBuf,
    /// Packs whose cached copy hashed to its name in this process.
    checked: Mutex<HashSet<String>>,
    /// One lock per pack being fetched whole, so that threads wanting the same pack wait for
    /// one download instead of each making its own.
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Whether `dir` is removed when this is dropped ([`CachedStorage::temporary`]).
    temporary: bool,
}

impl<S: Storage> CachedStorage<S> {
    /// `inner` with its cache in `dir` (one folder per repository: the caller names it by the
    /// repository's id). The folder is made if missing, with a `CACHEDIR.TAG` in its parent.
    pub fn new(inner: S, dir: impl Into<PathBuf>) -> io::Result<Self> {
        let cache = Self::in_folder(inner, dir.into())?;
        if let Some(parent) = cache.dir.parent() {
            let tag = parent.join(CACHEDIR_TAG);
            if !tag.exists() {
                let _ = fs::write(
                    &tag,
                    format!(
                        "{CACHEDIR_SIGNATURE}\n# This file is a cache directory tag created by \
                         backstop: what is here can be fetched again from the repositories.\n"
                    ),
                );
            }
        }
        Ok(cache)
    }

    fn in_folder(inner: S, dir: PathBuf) -> io::Result<Self> {
        for kind in [Kind::Index, Kind::Snapshot, Kind::Pack] {
            fs::create_dir_all(dir.join(kind.dir()))?;
        }
        Ok(Self {
            inner,
            dir,
            checked: Mutex::new(HashSet::new()),
            fetching: Mutex::new(HashMap::new()),
            temporary: false,
        })
    }

    /// `inner` with a new, empty cache in a folder of its own under `parent`, removed when this
    /// is dropped: for a command that must judge the remote copy itself (every object it reads
    /// comes from the remote, once) but would otherwise fetch each tree node with its own
    /// request.
    pub fn temporary(inner: S, parent: &Path) -> io::Result<Self> {
        let name = crate::local::random_hex().map_err(|e| io::Error::other(e.to_string()))?;
        let dir = parent.join(format!("backstop-cache-{name}"));
        fs::create_dir_all(parent)?;
        fs::create_dir(&dir)?;
        let mut cache = Self::in_folder(inner, dir.clone()).inspect_err(|_| {
            let _ = fs::remove_dir_all(&dir);
        })?;
        cache.temporary = true;
        Ok(cache)
    }

    /// The storage behind the cache.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        self.dir.join(kind.dir()).join(name)
    }

    /// Writes a cache file under a temporary name and renames it into place; failures are
    /// ignored (the next read fetches the object again).
    fn put(&self, kind: Kind, name: &str, parts: &[&[u8]]) {
        let path = self.path(kind, name);
        let tmp = path.with_file_name(format!(
            ".{name}.tmp-{}",
            crate::local::random_hex().unwrap_or_default()
        ));
        let written = (|| -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            for p in parts {
                io::Write::write_all(&mut f, p)?;
            }
            drop(f);
            fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    fn forget(&self, kind: Kind, name: &str) {
        if !crate::is_valid_name(name) {
            return;
        }
        let _ = fs::remove_file(self.path(kind, name));
        if kind == Kind::Pack {
            self.checked.lock().expect("cache lock").remove(name);
        }
    }

    /// The cached copy of a whole index file or manifest, if there is a sound one.
    fn cached_whole(&self, kind: Kind, name: &str) -> Option<Vec<u8>> {
        let mut bytes = fs::read(self.path(kind, name)).ok()?;
        let split = bytes.len().checked_sub(HASH_LEN)?;
        let sound = blake3::hash(&bytes[..split]).as_bytes()[..] == bytes[split..];
        if !sound {
            self.forget(kind, name);
            return None;
        }
        bytes.truncate(split);
        Some(bytes)
    }

    fn keep_whole(&self, kind: Kind, name: &str, data: &[u8]) {
        self.put(kind, name, &[data, blake3::hash(data).as_bytes()]);
    }

    /// Whether the cached pack is sound: it hashes to its name (checked once per process).
    fn pack_is_sound(&self, name: &str) -> bool {
        if self.checked.lock().expect("cache lock").contains(name) {
            return true;
        }
        let Ok(bytes) = fs::read(self.path(Kind::Pack, name)) else {
            return false;
        };
        if blake3::hash(&bytes).to_hex().as_str() != name {
            self.forget(Kind::Pack, name);
            return false;
        }
        self.checked
            .lock()
            .expect("cache lock")
            .insert(name.to_owned());
        true
    }

    /// A range of a cached pack that is known sound; `None` if it cannot be read.
    fn read_cached_range(&self, name: &str, offset: u64, len: u64) -> Option<Vec<u8>> {
        let mut f = fs::File::open(self.path(Kind::Pack, name)).ok()?;
        let size = f.metadata().ok()?.len();
        if offset.checked_add(len)? > size {
            return None;
        }
        f.seek(SeekFrom::Start(offset)).ok()?;
        let mut out = vec![0u8; usize::try_from(len).ok()?];
        f.read_exact(&mut out).ok()?;
        Some(out)
    }

    fn cut(data: &[u8], kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let size = data.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(data[offset as usize..end as usize].to_vec()),
            _ => Err(crate::Error::short_read(
                kind,
                name,
                offset,
                len,
                size.saturating_sub(offset),
            )),
        }
    }
}

impl<S> Drop for CachedStorage<S> {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl<S: Storage> std::fmt::Debug for CachedStorage<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStorage")
            .field("inner", &self.inner)
            .field("dir", &self.dir)
            .finish()
    }
}

impl<S: Storage> Storage for CachedStorage<S> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    /// The remote's listing; cached copies of objects it no longer has, or has with another
    /// size, are dropped.
    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        let listed = self.inner.list(kind)?;
        if whole_kind(kind) || kind == Kind::Pack {
            let sizes: HashMap<&str, u64> =
                listed.iter().map(|o| (o.name.as_str(), o.size)).collect();
            let extra = if kind == Kind::Pack {
                0
            } else {
                HASH_LEN as u64
            };
            if let Ok(entries) = fs::read_dir(self.dir.join(kind.dir())) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !crate::is_valid_name(&name) {
                        continue; // a temporary file of a write in progress
                    }
                    let len = e.metadata().map(|m| m.len()).ok();
                    if sizes.get(name.as_str()).map(|s| s + extra) != len {
                        self.forget(kind, &name);
                    }
                }
            }
        }
        Ok(listed)
    }

    fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo> {
        self.inner.stat(kind, name)
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        if !whole_kind(kind) {
            return self.inner.read(kind, name);
        }
        crate::validate_name(name)?;
        if let Some(b) = self.cached_whole(kind, name) {
            return Ok(b);
        }
        let data = self.inner.read(kind, name)?;
        self.keep_whole(kind, name, &data);
        Ok(data)
    }

    fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if whole_kind(kind) {
            return Self::cut(&self.read(kind, name)?, kind, name, offset, len);
        }
        self.inner.read_range(kind, name, offset, len)
    }

    /// From the cached pack when there is a sound one; else the whole pack is fetched (once,
    /// however many threads ask), kept, and cut.
    fn read_range_cached(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if kind != Kind::Pack {
            return self.read_range(kind, name, offset, len);
        }
        crate::validate_name(name)?;
        let fetch = {
            let mut fetching = self.fetching.lock().expect("cache lock");
            fetching.entry(name.to_owned()).or_default().clone()
        };
        let _one_at_a_time = fetch.lock().expect("cache lock");
        if self.pack_is_sound(name)
            && let Some(b) = self.read_cached_range(name, offset, len)
        {
            return Ok(b);
        }
        let data = self.inner.read(kind, name)?;
        let out = Self::cut(&data, kind, name, offset, len)?;
        if blake3::hash(&data).to_hex().as_str() == name {
            self.put(kind, name, &[&data]);
            self.checked
                .lock()
                .expect("cache lock")
                .insert(name.to_owned());
        }
        Ok(out)
    }

    fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(kind, name, data)?;
        if whole_kind(kind) {
            self.keep_whole(kind, name, data);
        }
        Ok(())
    }

    fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write_new(kind, name, data)?;
        if whole_kind(kind) {
            self.keep_whole(kind, name, data);
        }
        Ok(())
    }

    fn write_cached(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(kind, name, data)?;
        if kind == Kind::Pack {
            self.put(kind, name, &[data]);
        } else if whole_kind(kind) {
            self.keep_whole(kind, name, data);
        }
        Ok(())
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let r = self.inner.delete(kind, name);
        self.forget(kind, name);
        r
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        self.inner.exists(kind, name)
    }

    fn free_space(&self) -> Option<u64> {
        self.inner.free_space()
    }

    fn parallelism(&self) -> usize {
        self.inner.parallelism()
    }

    fn retain_writes(&self, retention: crate::Retention) -> Result<()> {
        self.inner.retain_writes(retention)
    }

    fn extend_retention(
        &self,
        kind: Kind,
        name: &str,
        mode: crate::RetentionMode,
        until: jiff::Timestamp,
    ) -> Result<()> {
        self.inner.extend_retention(kind, name, mode, until)
    }

    fn retained_until(&self, kind: Kind, name: &str) -> Result<Option<jiff::Timestamp>> {
        self.inner.retained_until(kind, name)
    }

    fn remove_stale_temporary(&self, older_than: std::time::Duration) -> Result<Removed> {
        self.inner.remove_stale_temporary(older_than)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    fn cached(dir: &Path) -> (Arc<MemoryStorage>, CachedStorage<Arc<MemoryStorage>>) {
        let remote = Arc::new(MemoryStorage::new());
        remote.create().unwrap();
        let cache = CachedStorage::new(remote.clone(), dir.join("repo-id")).unwrap();
        (remote, cache)
    }

    #[test]
    fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        crate::conformance::run_all(&|| {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::new(
                CachedStorage::new(MemoryStorage::new(), dir.path().join(k.to_string())).unwrap(),
            )
        });
    }

    #[test]
    fn index_files_are_read_once_and_dropped_when_the_remote_lists_them_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, cache) = cached(dir.path());
        remote.write(Kind::Index, "aa01", b"index file").unwrap();
        assert_eq!(cache.read(Kind::Index, "aa01").unwrap(), b"index file");
        // Served from the cache: the remote copy is changed behind its back (which a real
        // repository never does) and the cached bytes still come back.
        remote.corrupt(Kind::Index, "aa01", |b| b[0] ^= 1);
        assert_eq!(cache.read(Kind::Index, "aa01").unwrap(), b"index file");
        assert_eq!(
            cache.read_range(Kind::Index, "aa01", 6, 4).unwrap(),
            b"file"
        );
        // Gone from the remote (pruned on another machine): the next listing drops it.
        remote.delete(Kind::Index, "aa01").unwrap();
        assert!(cache.list(Kind::Index).unwrap().is_empty());
        assert!(!cache.path(Kind::Index, "aa01").exists());
        assert!(cache.read(Kind::Index, "aa01").unwrap_err().is_not_found());
    }

    #[test]
    fn a_damaged_cached_copy_is_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let (_remote, cache) = cached(dir.path());
        cache.write(Kind::Snapshot, "5a", b"manifest").unwrap();
        let path = cache.path(Kind::Snapshot, "5a");
        let mut bytes = fs::read(&path).unwrap();
        bytes[2] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.read(Kind::Snapshot, "5a").unwrap(), b"manifest");
        // Mended: the copy is sound again.
        assert_eq!(
            cache.cached_whole(Kind::Snapshot, "5a").unwrap(),
            b"manifest"
        );
        fs::write(&path, b"short").unwrap();
        assert_eq!(cache.read(Kind::Snapshot, "5a").unwrap(), b"manifest");
    }

    #[test]
    fn packs_marked_for_the_cache_are_kept_whole_and_checked_against_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, cache) = cached(dir.path());
        let pack = b"a pack of tree nodes".repeat(100);
        let name = blake3::hash(&pack).to_hex().to_string();
        remote.write(Kind::Pack, &name, &pack).unwrap();
        assert_eq!(
            cache.read_range_cached(Kind::Pack, &name, 2, 4).unwrap(),
            &pack[2..6]
        );
        assert_eq!(fs::read(cache.path(Kind::Pack, &name)).unwrap(), pack);
        // Later ranges come from the copy, even with the remote gone.
        remote.delete(Kind::Pack, &name).unwrap();
        assert_eq!(
            cache.read_range_cached(Kind::Pack, &name, 100, 20).unwrap(),
            &pack[100..120]
        );
        // Whole reads and plain ranged reads are the remote's (verify reads those).
        assert!(cache.read(Kind::Pack, &name).unwrap_err().is_not_found());
        assert!(
            cache
                .read_range(Kind::Pack, &name, 0, 1)
                .unwrap_err()
                .is_not_found()
        );
        // A damaged copy is found by the next process (a new instance) and fetched again.
        remote.write(Kind::Pack, &name, &pack).unwrap();
        let path = cache.path(Kind::Pack, &name);
        let mut bytes = fs::read(&path).unwrap();
        bytes[5] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let again = CachedStorage::new(remote.clone(), cache.dir()).unwrap();
        assert_eq!(
            again.read_range_cached(Kind::Pack, &name, 0, 8).unwrap(),
            &pack[..8]
        );
        assert_eq!(fs::read(&path).unwrap(), pack);
        // A range past the end is a short read, as from the remote.
        assert!(matches!(
            again.read_range_cached(Kind::Pack, &name, pack.len() as u64 - 2, 4),
            Err(crate::Error::ShortRead { .. })
        ));
    }

    #[test]
    fn a_pack_that_does_not_hash_to_its_name_is_read_but_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, cache) = cached(dir.path());
        remote
            .write(Kind::Pack, "0abc", b"not what its name says")
            .unwrap();
        assert_eq!(
            cache.read_range_cached(Kind::Pack, "0abc", 0, 3).unwrap(),
            b"not"
        );
        assert!(!cache.path(Kind::Pack, "0abc").exists());
    }

    #[test]
    fn written_packs_marked_for_the_cache_are_kept_and_deletes_follow() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, cache) = cached(dir.path());
        let pack = b"tree pack".to_vec();
        let name = blake3::hash(&pack).to_hex().to_string();
        cache.write_cached(Kind::Pack, &name, &pack).unwrap();
        assert_eq!(remote.read(Kind::Pack, &name).unwrap(), pack);
        assert!(cache.path(Kind::Pack, &name).exists());
        cache.delete(Kind::Pack, &name).unwrap();
        assert!(!cache.path(Kind::Pack, &name).exists());
        // A plain write of a pack is not kept.
        cache.write(Kind::Pack, &name, &pack).unwrap();
        assert!(!cache.path(Kind::Pack, &name).exists());
    }

    #[test]
    fn a_cache_folder_that_cannot_be_written_never_fails_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let (remote, cache) = cached(dir.path());
        remote.write(Kind::Index, "bb", b"index").unwrap();
        fs::remove_dir_all(cache.dir()).unwrap();
        fs::write(cache.dir(), b"a file where the folder was").unwrap();
        assert_eq!(cache.read(Kind::Index, "bb").unwrap(), b"index");
        assert_eq!(cache.list(Kind::Index).unwrap().len(), 1);
        cache.write(Kind::Snapshot, "cc", b"m").unwrap();
        assert_eq!(remote.read(Kind::Snapshot, "cc").unwrap(), b"m");
    }

    #[test]
    fn a_temporary_cache_starts_empty_and_is_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(MemoryStorage::new());
        remote.write(Kind::Index, "aa", b"index").unwrap();
        let cache = CachedStorage::temporary(remote.clone(), dir.path()).unwrap();
        let folder = cache.dir().to_path_buf();
        assert!(folder.starts_with(dir.path()));
        assert_eq!(cache.read(Kind::Index, "aa").unwrap(), b"index");
        assert!(cache.path(Kind::Index, "aa").exists());
        let other = CachedStorage::temporary(remote, dir.path()).unwrap();
        assert_ne!(other.dir(), folder, "each has a folder of its own");
        assert!(!dir.path().join(CACHEDIR_TAG).exists());
        drop(cache);
        assert!(!folder.exists());
    }

    #[test]
    fn the_cache_root_is_tagged_for_backup_tools() {
        let dir = tempfile::tempdir().unwrap();
        let _ = cached(dir.path());
        let tag = fs::read_to_string(dir.path().join(CACHEDIR_TAG)).unwrap();
        assert!(tag.starts_with(CACHEDIR_SIGNATURE));
    }
}
