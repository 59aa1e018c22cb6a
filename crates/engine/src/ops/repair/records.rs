//! `repair records`: delete records that cannot be read.
//!
//! A record is a small object attached to one snapshot (a restore drill, a pin, an unpin, a
//! mark-verified). One that cannot be read says nothing, not even which snapshot it was for,
//! but `forget` refuses to run past it because it might have been a pin. Deleting it is the only
//! repair; the summary lists the snapshots that are still pinned so that a person can pin again
//! what the damaged record may have pinned.

use backstop_format::SnapshotId;
use backstop_storage::Kind;
use serde::Serialize;

use crate::error::Result;
use crate::ops::repair::index::NamedProblem;
use crate::repository::lock::Lock;
use crate::repository::{Marks, Repository};

/// What `repair records` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairRecordsSummary {
    pub dry_run: bool,
    /// Records read.
    pub records: usize,
    /// Records that cannot be read, with why: deleted (unless a dry run).
    pub damaged: Vec<NamedProblem>,
    pub deleted: usize,
    /// Snapshots pinned by the records that can be read.
    pub pinned: Vec<SnapshotId>,
}

/// Deletes the records that cannot be read, under the exclusive lock.
pub fn repair_records(
    repo: &Repository,
    host: &str,
    dry_run: bool,
) -> Result<RepairRecordsSummary> {
    let lock = Lock::acquire(
        repo,
        !dry_run,
        "repair records",
        host,
        backstop_format::Timestamp::now(),
    )?;
    let (ok, bad) = repo.records_checked()?;
    let mut pinned: Vec<SnapshotId> =
        Marks::from_records(ok.iter().map(|(_, r)| r.clone()).collect())
            .into_iter()
            .filter(|(_, m)| m.pinned)
            .map(|(id, _)| id)
            .collect();
    pinned.sort();
    let mut summary = RepairRecordsSummary {
        dry_run,
        records: ok.len() + bad.len(),
        damaged: bad
            .iter()
            .map(|(name, e)| NamedProblem {
                name: name.clone(),
                error: e.to_string(),
            })
            .collect(),
        deleted: 0,
        pinned,
    };
    if !dry_run {
        for (name, _) in &bad {
            repo.storage().delete(Kind::Record, name)?;
            summary.deleted += 1;
        }
    }
    lock.release()?;
    Ok(summary)
}
