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
//! Readers (restore, verify, drills) that cannot write a lock at all (a read-only copy of the
//! repository, a full disk, no write permission) still check the locks they can see and refuse
//! to run beside an exclusive one; then they proceed without a lock of their own and say so
//! ([`Lock::for_reader`]). Nothing they do can damage the repository; what they risk is a prune
//! starting meanwhile, which would make them fail on a missing pack, never hand out wrong bytes
//! (every chunk is checked against its id).

use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
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
    name: String,
    stop: Option<Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

/// Whether a lock is stale at `now`.
pub fn is_stale(info: &LockInfo, now: Timestamp, host: &str) -> bool {
    let age = now.duration_since(info.refreshed);
    if age.as_secs() > STALE.as_secs() as i64 {
        return true;
    }
    info.host == host && info.pid != std::process::id() && !process_exists(info.pid)
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
        let name = LockId::random().to_hex();
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
        };
        let body = serde_json::to_vec(&info).expect("lock serializes");
        repo.write_object(Kind::Lock, &name, &body)
            .map_err(|e| match e {
                Error::Storage(cause) => Error::CannotLock { cause },
                e => e,
            })?;
        let mut lock = Lock {
            repo: repo.clone(),
            name,
            stop: None,
            refresher: None,
        };
        let raced = conflicts(repo, &lock.name, exclusive, now, host)?;
        if let Some(c) = raced.first() {
            return Err(Error::Locked(describe(c, now)));
        }
        lock.start_refresh(info);
        Ok(lock)
    }

    fn start_refresh(&mut self, mut info: LockInfo) {
        let (tx, rx) = channel::<()>();
        let repo = self.repo.clone();
        let name = self.name.clone();
        self.stop = Some(tx);
        self.refresher = std::thread::Builder::new()
            .name("lock-refresh".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(REFRESH) {
                    info.refreshed = Timestamp::now();
                    let body = serde_json::to_vec(&info).expect("lock serializes");
                    let _ = repo.write_object(Kind::Lock, &name, &body);
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
                    name: String::new(),
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
        !self.name.is_empty()
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

    /// Releases the lock now (also done on drop).
    pub fn release(mut self) -> Result<()> {
        self.stop_refresh();
        let r = self.repo.storage().delete(Kind::Lock, &self.name);
        self.name.clear();
        Ok(r?)
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
        if !self.name.is_empty() {
            let _ = self.repo.storage().delete(Kind::Lock, &self.name);
        }
    }
}
