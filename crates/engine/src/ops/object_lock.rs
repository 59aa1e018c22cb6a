//! Retentions kept ahead of time: in a repository made with an object lock
//! (`init --object-lock-days N`), every object is written with a retention of N days, but a
//! pack written a year ago may still hold chunks today's snapshots use. Once its first
//! retention has ended, a stolen key that may delete versions could remove it. So the
//! retention of every object the repository keeps (config, keys, packs, index files,
//! snapshots, records; not its locks) is lengthened to `now + days`, each with one request
//! (S3 PutObjectRetention), as kopia's maintenance does. Run more often than every N days,
//! nothing the repository holds is ever left without a retention (the daemon runs it every
//! half of N).
//!
//! A retention is only ever lengthened. An object already retained past the new date (a run
//! with more `days`) is left as it is: the storage refuses to shorten it, and its retention is
//! read to tell that refusal from a failure.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use backstop_format::Timestamp;
use backstop_format::config::LockMode;
use backstop_storage::{Kind, RetentionMode, Storage as _};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::Repository;

/// The kinds whose objects carry a retention (every kind but locks).
const RETAINED: [Kind; 6] = [
    Kind::Config,
    Kind::Key,
    Kind::Pack,
    Kind::Index,
    Kind::Snapshot,
    Kind::Record,
];

/// How far to lengthen.
#[derive(Debug, Clone, Copy)]
pub struct ExtendOptions {
    pub now: Timestamp,
    /// Days from `now`; `None` for the repository's own (`init --object-lock-days`). Fewer
    /// than the repository's are refused.
    pub days: Option<u32>,
    /// Count what would be lengthened, without a request.
    pub dry_run: bool,
}

/// What a run lengthened.
#[derive(Debug, Clone, Serialize)]
pub struct ExtendReport {
    /// `compliance` or `governance`.
    pub mode: &'static str,
    pub days: u32,
    /// The new retain-until date of every object.
    pub until: Timestamp,
    /// Objects lengthened, per kind (`pack`, `index`...).
    pub extended: BTreeMap<&'static str, u64>,
    /// Objects already retained past `until`, left as they were.
    pub already_longer: u64,
    /// Objects listed but gone by the time their turn came (a prune removed them).
    pub gone: u64,
    pub dry_run: bool,
}

/// Lengthens the retention of every object of `repo` but its locks to `opts.now` plus the
/// days (see the module). Fails if the repository has no object lock, or if any object could
/// not be lengthened (after trying every one: each failure is a warning, the first one the
/// error).
pub fn extend_retention(
    repo: &Repository,
    opts: &ExtendOptions,
    progress: &dyn Progress,
) -> Result<ExtendReport> {
    let Some(lock) = repo.config().object_lock else {
        return Err(Error::Invalid(
            "this repository has no object lock: only a repository made with `backstop init \
             --object-lock-days N` (in an S3 bucket with Object Lock) has retentions to lengthen"
                .into(),
        ));
    };
    let days = opts.days.unwrap_or(lock.days);
    if days < lock.days {
        return Err(Error::Invalid(format!(
            "--days {days} is shorter than the repository's retention of {} days: a retention \
             is lengthened to at least that",
            lock.days
        )));
    }
    let until = opts
        .now
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .map_err(|_| Error::Invalid(format!("{days} days from now is past the last date")))?;
    let mode = crate::repository::retention(lock).mode;
    let storage = repo.storage();
    let mut objects = Vec::new();
    for kind in RETAINED {
        for o in storage.list(kind)? {
            objects.push((kind, o.name));
        }
    }
    let mut report = ExtendReport {
        mode: match lock.mode {
            LockMode::Compliance => "compliance",
            LockMode::Governance => "governance",
        },
        days,
        until,
        extended: BTreeMap::new(),
        already_longer: 0,
        gone: 0,
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        for (kind, _) in &objects {
            *report.extended.entry(kind.name()).or_default() += 1;
        }
        return Ok(report);
    }
    progress.phase("lengthening retentions", None);
    // Several requests in flight on a remote storage: each waits mostly on the network. After
    // a failure no new object is taken: a key without the permission fails every one alike.
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let outcomes: Mutex<Vec<(Kind, Result<Lengthened>)>> = Mutex::new(Vec::new());
    let threads = storage.parallelism().clamp(1, 8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((kind, name)) = objects.get(i) else {
                        return;
                    };
                    let r = lengthen(repo, *kind, name, mode, until);
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    progress.item(name);
                    outcomes.lock().expect("outcomes").push((*kind, r));
                }
            });
        }
    });
    let mut first = None;
    let mut failed = 0;
    for (kind, r) in outcomes.into_inner().expect("outcomes") {
        match r {
            Ok(Lengthened::Done) => *report.extended.entry(kind.name()).or_default() += 1,
            Ok(Lengthened::AlreadyLonger) => report.already_longer += 1,
            Ok(Lengthened::Gone) => report.gone += 1,
            Err(e) => {
                progress.warning(&e.to_string());
                failed += 1;
                first.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first {
        progress.warning(&format!(
            "{failed} object(s) could not be lengthened, and the run stopped there: the \
             retentions of the others are as they were or lengthened ({} of {} done)",
            report.extended.values().sum::<u64>(),
            objects.len()
        ));
        return Err(e);
    }
    Ok(report)
}

/// What became of one object.
enum Lengthened {
    Done,
    /// Retained past the new date already (the storage refused to shorten it).
    AlreadyLonger,
    /// Deleted since it was listed.
    Gone,
}

/// Lengthens one object's retention to `until`.
fn lengthen(
    repo: &Repository,
    kind: Kind,
    name: &str,
    mode: RetentionMode,
    until: Timestamp,
) -> Result<Lengthened> {
    let storage = repo.storage();
    match storage.extend_retention(kind, name, mode, until) {
        Ok(()) => Ok(Lengthened::Done),
        Err(e) if e.is_not_found() => Ok(Lengthened::Gone),
        Err(e) => match storage.retained_until(kind, name) {
            Ok(Some(held)) if held >= until => Ok(Lengthened::AlreadyLonger),
            _ => Err(e.into()),
        },
    }
}
