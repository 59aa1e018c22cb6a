//! Repository locks.
//!
//! Appends (backups) never conflict with each other: every object they write has a unique or
//! content-derived name. What they must not meet is a deletion (prune) that removes a pack they
//! have just deduplicated against. So backups hold *shared* locks and deleting operations an
//! *exclusive* one. Object stores have no atomic create-if-absent, so acquiring is
//! write-then-check: write our lock, list all locks, and back off (deleting ours) if a
//! conflicting one is there. Two contenders may both back off; neither can proceed unsafely.
//!
//! A holder refreshes its lock every [`REFRESH`]; a lock not refreshed for [`STALE`] belongs to
//! a process that died, and is ignored (and removed by the next exclusive holder). On the same
//! host a lock whose process no longer exists is stale at once.
//!
//! Locks are leases, so that credentials that may write but not delete (an append-only key,
//! the defence against a machine that is taken over) never leave the repository locked. A lock
//! object's name starts with the time it was written (`SECONDS-RANDOM`), and each refresh
//! writes the lock under a new name before removing the old one; so a lock whose name is older
//! than [`STALE`] is stale without being read, and the locks such a key cannot delete cost one
//! listing, not a read each. A holder that cannot delete its lock when it finishes overwrites
//! it as `released`, which no one waits for; if even that fails, the lease runs out by itself.
//!
//! Readers (restore, verify, drills) that cannot write a lock at all (a read-only copy of the
//! repository, a full disk, no write permission) still check the locks they can see and refuse
//! to run beside an exclusive one; then they proceed without a lock of their own and say so
//! ([`Lock::for_reader`]). Nothing they do can damage the repository; what they risk is a prune
//! starting meanwhile, which would make them fail on a missing pack, never hand out wrong bytes
//! (every chunk is checked against its id).

use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backstop_format::config::LockInfo;
use backstop_format::{LockId, Timestamp};
use backstop_storage::Kind;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::Repository;

/// How often a held lock is refreshed.
pub const REFRESH: Duration = Duration::from_secs(5 * 60);
/// How old an unrefreshed lock must be to be ignored.
pub const STALE: Duration = Duration::from_secs(30 * 60);

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct Lock {
    repo: Repository,
    /// The names it was written under and has not removed: the newest last (empty for a reader
    /// that holds none). Shared with the refresher, which adds a name at each refresh.
    names: Arc<Mutex<Vec<String>>>,
    info: LockInfo,
    stop: Option<Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

/// Whether a lock is stale at `now`.
pub fn is_stale(info: &LockInfo, now: Timestamp, host: &str) -> bool {
    let age = now.duration_since(info.refreshed);
    if info.released || age.as_secs() > STALE.as_secs() as i64 {
        return true;
    }
    info.host == host && info.pid != std::process::id() && !process_exists(info.pid)
}

/// A new lock object's name: the time it is written, in Unix seconds, and a random id.
fn lock_name(at: Timestamp) -> String {
    format!(
        "{:010}-{}",
        at.as_second().max(0),
        LockId::random().to_hex()
    )
}

/// Whether the name of a lock object says it was written more than [`STALE`] before `now`
/// (each refresh writes a new one, so it cannot be held). Names without a time (locks of
/// earlier versions) say nothing.
fn stale_by_name(name: &str, now: Timestamp) -> bool {
    let written = name
        .split_once('-')
        .and_then(|(secs, _)| secs.parse::<i64>().ok())
        .and_then(|secs| Timestamp::from_second(secs).ok());
    written.is_some_and(|t| now.duration_since(t).as_secs() > STALE.as_secs() as i64)
}

/// Removes the lock object `name`: deletes it, or where deleting is refused (credentials that
/// may not delete) overwrites it as released. Gone already is fine.
fn retire(repo: &Repository, name: &str, info: &LockInfo) -> Result<()> {
    match repo.storage().delete(Kind::Lock, name) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(_) => {
            let released = LockInfo {
                released: true,
                refreshed: Timestamp::now(),
                ..info.clone()
            };
            let body = serde_json::to_vec(&released).expect("lock serializes");
            repo.write_object(Kind::Lock, name, &body)
        }
    }
}

#[cfg(target_os = "linux")]
fn process_exists(pid: u32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(not(target_os = "linux"))]
fn process_exists(_pid: u32) -> bool {
    // Without a portable check, rely on the refresh time alone.
    true
}

/// Who holds a lock, what for and since when, for messages.
pub fn describe(info: &LockInfo, now: Timestamp) -> String {
    format!(
        "{} {} by {} (pid {}) since {}, last refreshed {} ago",
        if info.exclusive {
            "exclusive"
        } else {
            "shared"
        },
        info.operation,
        info.host,
        info.pid,
        info.created,
        human_age(now.duration_since(info.refreshed).as_secs())
    )
}

fn human_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..7200 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

/// One lock object as `unlock` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct LockStatus {
    pub name: String,
    /// `None` for a lock object that cannot be read (damaged: it protects nothing).
    pub info: Option<LockInfo>,
    /// Not refreshed for [`STALE`], or of a process on this host that no longer exists.
    pub stale: bool,
    /// Who, what and since when, in words.
    pub description: String,
}

/// What [`unlock`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnlockSummary {
    pub removed: Vec<LockStatus>,
    /// Locks of operations that look alive, left in place (all of them removed with
    /// `remove_all`).
    pub kept: Vec<LockStatus>,
}

/// Every lock in the repository with who holds it and whether it is stale.
pub fn list_locks(repo: &Repository, now: Timestamp, host: &str) -> Result<Vec<LockStatus>> {
    let mut out = Vec::new();
    for o in repo.storage().list(Kind::Lock)? {
        let info: Option<LockInfo> = repo
            .read_object(Kind::Lock, &o.name)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (stale, description) = match &info {
            Some(i) => (is_stale(i, now, host), describe(i, now)),
            None => (true, "unreadable lock object".to_string()),
        };
        out.push(LockStatus {
            name: o.name,
            info,
            stale,
            description,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes stale and unreadable locks (left by processes that died), or with `remove_all`
/// every lock, including those of operations that may still be running.
pub fn unlock(
    repo: &Repository,
    remove_all: bool,
    now: Timestamp,
    host: &str,
) -> Result<UnlockSummary> {
    let mut summary = UnlockSummary::default();
    for l in list_locks(repo, now, host)? {
        if l.stale || remove_all {
            match repo.storage().delete(Kind::Lock, &l.name) {
                // Released by its holder meanwhile: gone either way.
                Err(e) if e.is_not_found() => {}
                r => r?,
            }
            summary.removed.push(l);
        } else {
            summary.kept.push(l);
        }
    }
    Ok(summary)
}

/// Lists the locks held by others that conflict with a lock of the given kind.
fn conflicts(
    repo: &Repository,
    own: &str,
    exclusive: bool,
    now: Timestamp,
    host: &str,
) -> Result<Vec<LockInfo>> {
    let mut out = Vec::new();
    for o in repo.storage().list(Kind::Lock)? {
        if o.name == own {
            continue;
        }
        if stale_by_name(&o.name, now) {
            // Not refreshed for the stale period: not held. The next exclusive holder removes
            // it if it may (a lock that credentials could not delete stays, and costs nothing).
            if exclusive {
                let _ = repo.storage().delete(Kind::Lock, &o.name);
            }
            continue;
        }
        let info: LockInfo = match repo.read_object(Kind::Lock, &o.name).and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("lock {}: {e}", o.name)))
        }) {
            Ok(i) => i,
            // Deleted since listing, or unreadable: a damaged lock cannot protect anything.
            Err(_) => continue,
        };
        if is_stale(&info, now, host) {
            // Left by a process that died: the next exclusive holder removes it (a shared
            // one leaves it, so two backups never race to delete each other's locks).
            if exclusive {
                let _ = repo.storage().delete(Kind::Lock, &o.name);
            }
        } else if exclusive || info.exclusive {
            out.push(info);
        }
    }
    Ok(out)
}

impl Lock {
    /// Acquires a shared (`exclusive = false`) or exclusive lock.
    pub fn acquire(
        repo: &Repository,
        exclusive: bool,
        operation: &str,
        host: &str,
        now: Timestamp,
    ) -> Result<Self> {
        let name = lock_name(now);
        let existing = conflicts(repo, &name, exclusive, now, host)?;
        if let Some(c) = existing.first() {
            return Err(Error::Locked(describe(c, now)));
        }
        let info = LockInfo {
            exclusive,
            operation: operation.to_string(),
            host: host.to_string(),
            pid: std::process::id(),
            created: now,
            refreshed: now,
            released: false,
        };
        let body = serde_json::to_vec(&info).expect("lock serializes");
        repo.write_object(Kind::Lock, &name, &body)
            .map_err(|e| match e {
                Error::Storage(cause) => Error::CannotLock { cause },
                e => e,
            })?;
        let mut lock = Lock {
            repo: repo.clone(),
            names: Arc::new(Mutex::new(vec![name.clone()])),
            info,
            stop: None,
            refresher: None,
        };
        let raced = conflicts(repo, &name, exclusive, now, host)?;
        if let Some(c) = raced.first() {
            return Err(Error::Locked(describe(c, now)));
        }
        lock.start_refresh();
        Ok(lock)
    }

    /// Every [`REFRESH`], writes the lock under a new name (the time in it), then removes the
    /// names before it; one it cannot remove stays listed, to be released at the end.
    fn start_refresh(&mut self) {
        let (tx, rx) = channel::<()>();
        let repo = self.repo.clone();
        let names = self.names.clone();
        let mut info = self.info.clone();
        self.stop = Some(tx);
        self.refresher = std::thread::Builder::new()
            .name("lock-refresh".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(REFRESH) {
                    let now = Timestamp::now();
                    info.refreshed = now;
                    let name = lock_name(now);
                    let body = serde_json::to_vec(&info).expect("lock serializes");
                    if repo.write_object(Kind::Lock, &name, &body).is_err() {
                        continue;
                    }
                    let mut held = names.lock().expect("lock names");
                    let older = std::mem::replace(&mut *held, vec![name]);
                    for old in older {
                        // Written by this holder: stale by its name once STALE has passed.
                        if repo.storage().delete(Kind::Lock, &old).is_err()
                            && !stale_by_name(&old, now)
                        {
                            held.insert(0, old);
                        }
                    }
                }
            })
            .ok();
    }

    /// A shared lock for an operation that only reads (verify, restore): as [`Lock::acquire`],
    /// except that where no lock can be written (read-only media, a full disk, no write
    /// permission) it proceeds without one, after checking that no exclusive lock it can see is
    /// held, and says so through `progress`.
    pub fn for_reader(
        repo: &Repository,
        operation: &str,
        host: &str,
        progress: &dyn Progress,
    ) -> Result<Self> {
        match Self::acquire(repo, false, operation, host, Timestamp::now()) {
            Err(Error::CannotLock { cause }) => {
                progress.warning(&format!(
                    "proceeding without a lock: {cause} (a read-only or full repository?); \
                     no prune is running now, but one started meanwhile would not see this {operation}"
                ));
                Ok(Lock {
                    repo: repo.clone(),
                    names: Arc::new(Mutex::new(Vec::new())),
                    info: LockInfo {
                        exclusive: false,
                        operation: operation.to_owned(),
                        host: host.to_owned(),
                        pid: std::process::id(),
                        created: Timestamp::now(),
                        refreshed: Timestamp::now(),
                        released: true,
                    },
                    stop: None,
                    refresher: None,
                })
            }
            r => r,
        }
    }

    /// Whether this lock is stored in the repository (false for a reader that could not write
    /// one, see [`Lock::for_reader`]).
    pub fn is_held(&self) -> bool {
        !self.names.lock().expect("lock names").is_empty()
    }

    /// A shared lock for an operation that reads chunks through `index` (restore, drill): no
    /// prune can delete them while it is held, and the index is checked to be current.
    pub fn for_reading(
        ix: &crate::repository::indexed::Indexed<'_>,
        operation: &str,
        host: &str,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let lock = Self::for_reader(ix.repo(), operation, host, progress)?;
        ix.check_current()?;
        Ok(lock)
    }

    /// Checks, before `operation` deletes anything, that the storage lets these credentials
    /// delete: writes a probe (a released lock, harmless if it stays) and deletes it. A
    /// refusal is [`Error::CannotDelete`], so an append-only key stops the operation before it
    /// has changed anything, rather than halfway.
    pub fn check_can_delete(&self, operation: &str) -> Result<()> {
        let name = lock_name(Timestamp::now());
        let probe = LockInfo {
            released: true,
            ..self.info.clone()
        };
        let body = serde_json::to_vec(&probe).expect("lock serializes");
        self.repo.write_object(Kind::Lock, &name, &body)?;
        match self.repo.storage().delete(Kind::Lock, &name) {
            Ok(()) => Ok(()),
            Err(cause @ backstop_storage::Error::AccessDenied { .. }) => Err(Error::CannotDelete {
                operation: operation.to_owned(),
                cause,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Releases the lock now (also done on drop): each of its objects is deleted, or marked
    /// released where deleting is refused. Fails only if neither could be done (the lease then
    /// runs out by itself within [`STALE`]).
    pub fn release(mut self) -> Result<()> {
        self.stop_refresh();
        self.retire_all()
    }

    fn retire_all(&mut self) -> Result<()> {
        let names = std::mem::take(&mut *self.names.lock().expect("lock names"));
        let mut first_error = None;
        for name in names {
            if let Err(e) = retire(&self.repo, &name, &self.info) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn stop_refresh(&mut self) {
        self.stop = None;
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop_refresh();
        let _ = self.retire_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use backstop_storage::{MemoryStorage, ObjectInfo, Storage};

    use super::*;
    use crate::InitOptions;

    fn repo(storage: Arc<dyn Storage>) -> Repository {
        let opts = InitOptions::new(None, Timestamp::now(), "till".into());
        Repository::init(storage, &opts).unwrap()
    }

    fn infos(repo: &Repository) -> Vec<LockInfo> {
        let names = repo.storage().list(Kind::Lock).unwrap();
        let read = |o: ObjectInfo| repo.read_object(Kind::Lock, &o.name).unwrap();
        names
            .into_iter()
            .map(|o| serde_json::from_slice(&read(o)).unwrap())
            .collect()
    }

    #[test]
    fn a_name_tells_a_lock_not_refreshed_for_the_stale_period() {
        let now = Timestamp::now();
        let name = lock_name(now);
        assert!(!stale_by_name(&name, now));
        assert!(!stale_by_name(
            &name,
            now + jiff::SignedDuration::from_mins(29)
        ));
        assert!(stale_by_name(
            &name,
            now + jiff::SignedDuration::from_mins(31)
        ));
        // A lock of an earlier version (a bare random id) is read to be judged.
        let old = LockId::random().to_hex();
        assert!(!stale_by_name(
            &old,
            now + jiff::SignedDuration::from_hours(48)
        ));
    }

    /// Without deletes, a finished holder's lock stays as `released` and blocks no one; the
    /// delete probe refuses a deleting operation before it starts.
    #[test]
    fn a_lock_that_cannot_be_deleted_is_left_released() {
        let storage = Arc::new(MemoryStorage::new());
        let repo = repo(storage.clone());
        // As an append-only key: every delete refused.
        storage.refuse_deletes(true);
        let lock = Lock::acquire(&repo, false, "backup", "till", Timestamp::now()).unwrap();
        assert!(!infos(&repo)[0].released);
        let err = lock.check_can_delete("prune").unwrap_err();
        assert!(matches!(err, Error::CannotDelete { .. }), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::Denied);
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        lock.release().unwrap();
        let left = infos(&repo);
        assert_eq!(left.len(), 2, "the lock and the probe: {left:?}");
        assert!(left.iter().all(|l| l.released), "{left:?}");
        // An exclusive lock is not kept waiting by them.
        Lock::acquire(&repo, true, "prune", "office", Timestamp::now()).unwrap();
    }

    /// Locks whose names are older than the stale period are not read: an unreadable one that
    /// old blocks nothing, and a lock a dead holder could not delete is removed by the next
    /// exclusive holder that may delete.
    #[test]
    fn old_lock_names_are_skipped_and_removed_by_an_exclusive_holder() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let repo = repo(storage.clone());
        let hours_ago = Timestamp::now() - jiff::SignedDuration::from_hours(2);
        let info = LockInfo {
            exclusive: true,
            operation: "prune".into(),
            host: "elsewhere".into(),
            pid: 1,
            created: hours_ago,
            // A holder whose clock is wrong says it refreshed just now; its name says otherwise.
            refreshed: Timestamp::now(),
            released: false,
        };
        let old = lock_name(hours_ago);
        repo.write_object(Kind::Lock, &old, &serde_json::to_vec(&info).unwrap())
            .unwrap();
        let shared = Lock::acquire(&repo, false, "backup", "till", Timestamp::now()).unwrap();
        drop(shared);
        let exclusive = Lock::acquire(&repo, true, "prune", "till", Timestamp::now()).unwrap();
        exclusive.release().unwrap();
        assert!(storage.list(Kind::Lock).unwrap().is_empty());
    }
}
