//! Failed backup attempts, so that `status` and the daemon's page can say that a source's last
//! backup failed, and why, even though no snapshot records it.
//!
//! A failure is a `backup-failed` record in the repository (the repository is what every front
//! end reads, and it may be shared by several machines). A successful backup of the source
//! deletes its failure records, so they never pile up beyond the failures since the last
//! success. Recording is best effort: a repository that cannot be written (a full disk) cannot
//! hold the record either, and the caller still reports the failure itself.

use std::collections::HashMap;

use backstop_format::record::{BACKUP_FAILED, RECORD_VERSION, Record};
use backstop_format::{RecordId, SnapshotId, Timestamp};
use backstop_storage::Kind;

use crate::error::Result;
use crate::repository::Repository;

/// How much of a failure's reason is kept.
const REASON_MAX: usize = 2048;

/// Failure records are named with this start (the rest random, like any record name), so that
/// a successful backup finds them by listing the records instead of reading every one of them
/// (drills and pins pile up over the years). A record whose name starts so is not necessarily a
/// failure (another record's random name may begin the same way), so its kind is still read.
pub const FAILURE_NAME_PREFIX: &str = "bfa11ed0";

/// Records that a backup of `source` failed at `time` for `reason`.
pub fn record_backup_failure(
    repo: &Repository,
    source: &str,
    time: Timestamp,
    host: &str,
    reason: &str,
) -> Result<()> {
    let newest = repo
        .snapshots()
        .ok()
        .and_then(|list| {
            list.readable
                .into_iter()
                .rev()
                .find(|(_, s)| s.source.name == source)
        })
        .map_or(SnapshotId([0; 32]), |(id, _)| id);
    let mut note = reason.to_string();
    if note.len() > REASON_MAX {
        let mut cut = REASON_MAX;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str(" [...]");
    }
    let record = Record {
        version: RECORD_VERSION,
        kind: BACKUP_FAILED.into(),
        snapshot: newest,
        time,
        host: host.to_string(),
        passed: false,
        duration_ms: 0,
        checks: Vec::new(),
        by: None,
        note: Some(note),
        source: Some(source.to_string()),
    };
    let name = format!(
        "{FAILURE_NAME_PREFIX}{}",
        &RecordId::random().to_hex()[FAILURE_NAME_PREFIX.len()..]
    );
    repo.write_new_object(Kind::Record, &name, &record.encode())?;
    Ok(())
}

/// Each source's newest failed backup attempt.
pub fn last_failures(records: &[Record]) -> HashMap<String, Record> {
    let mut out: HashMap<String, Record> = HashMap::new();
    for r in records.iter().filter(|r| r.kind == BACKUP_FAILED) {
        let Some(source) = &r.source else { continue };
        if out.get(source).is_none_or(|o| o.time <= r.time) {
            out.insert(source.clone(), r.clone());
        }
    }
    out
}

/// Deletes the failure records of `source` (after one of its backups succeeded). Errors are
/// left to the next success: a stale failure record older than the newest snapshot is ignored
/// by `status` anyway.
pub(crate) fn clear_backup_failures(repo: &Repository, source: &str) {
    let Ok(names) = repo.storage().list(Kind::Record) else {
        return;
    };
    for o in names {
        if !o.name.starts_with(FAILURE_NAME_PREFIX) {
            continue;
        }
        let Ok(r) = repo
            .read_object(Kind::Record, &o.name)
            .and_then(|b| Record::decode(&b).map_err(|e| crate::Error::format("a record", e)))
        else {
            continue;
        };
        if r.kind == BACKUP_FAILED && r.source.as_deref() == Some(source) {
            let _ = repo.storage().delete(Kind::Record, &o.name);
        }
    }
}
