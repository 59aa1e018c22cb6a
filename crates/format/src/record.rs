//! Records attached to snapshots: the results of restore drills, and lifecycle marks (pinned,
//! unpinned, a pre-change snapshot marked verified by a person).
//!
//! A record is a small sealed JSON object in `records/`, written after the fact and never
//! changed; a snapshot's state of each kind is its newest record of that kind. Records of a
//! snapshot are deleted after the snapshot itself by `forget`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::FormatError;
use crate::id::SnapshotId;

pub const RECORD_VERSION: u32 = 1;

/// The result of a restore drill (`passed`, `duration_ms` and `checks` are filled in).
pub const RESTORE_DRILL: &str = "restore-drill";
/// The snapshot is pinned: never forgotten.
pub const PIN: &str = "pin";
/// Undoes an earlier pin.
pub const UNPIN: &str = "unpin";
/// Someone confirmed that the change a pre-change snapshot guarded went well (`by`, `note`).
pub const MARK_VERIFIED: &str = "mark-verified";
/// A backup of `source` failed (`note` says why); `snapshot` is the source's newest snapshot
/// then, all zeros if it had none. Deleted when a backup of the source succeeds.
pub const BACKUP_FAILED: &str = "backup-failed";
/// A database restore went ahead although the restored image failed a check (`--force`):
/// `checks` holds the checks, `passed` is false, `note` says where it was restored.
pub const FORCED_RESTORE: &str = "forced-restore";

/// The name of the check that lists what could not be checked (tables whose module, tokenizer
/// or collation only the application defines). It passes: a check that passes with it passed
/// with limits.
pub const NOT_CHECKABLE: &str = "not checkable";

/// One check of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// The result of restoring a snapshot into a scratch location and checking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// [`RESTORE_DRILL`], [`PIN`], [`UNPIN`], [`MARK_VERIFIED`], [`FORCED_RESTORE`] or
    /// [`BACKUP_FAILED`]; readers
    /// ignore kinds they do not know.
    pub kind: String,
    pub snapshot: SnapshotId,
    pub time: Timestamp,
    pub host: String,
    #[serde(default)]
    pub passed: bool,
    /// How long the restore and its checks took.
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Who made a mark (a person's name, or the host user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The source a [`BACKUP_FAILED`] record is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Record {
    /// A lifecycle mark (pin, unpin, mark-verified) of a snapshot.
    pub fn mark(
        kind: &str,
        snapshot: SnapshotId,
        time: Timestamp,
        host: &str,
        by: Option<String>,
        note: Option<String>,
    ) -> Self {
        Self {
            version: RECORD_VERSION,
            kind: kind.to_string(),
            snapshot,
            time,
            host: host.to_string(),
            passed: true,
            duration_ms: 0,
            checks: Vec::new(),
            by,
            note,
            source: None,
        }
    }
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("records serialize")
    }

    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(b).map_err(|e| FormatError::Json(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Record {
            version: RECORD_VERSION,
            kind: RESTORE_DRILL.into(),
            snapshot: SnapshotId([7; 32]),
            time: Timestamp::UNIX_EPOCH,
            host: "h".into(),
            passed: true,
            duration_ms: 1234,
            checks: vec![Check {
                name: "integrity_check".into(),
                passed: true,
                detail: "ok".into(),
            }],
            by: None,
            note: None,
            source: None,
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn marks_round_trip_and_old_records_still_read() {
        let m = Record::mark(
            MARK_VERIFIED,
            SnapshotId([1; 32]),
            Timestamp::UNIX_EPOCH,
            "h",
            Some("ana".into()),
            Some("stock count matches".into()),
        );
        assert_eq!(Record::decode(&m.encode()).unwrap(), m);
        // A record written before marks existed has no `by`/`note`.
        let old = br#"{"version":1,"kind":"restore-drill","snapshot":"0101010101010101010101010101010101010101010101010101010101010101","time":"2026-01-01T00:00:00Z","host":"h","passed":false,"duration_ms":5,"checks":[]}"#;
        let r = Record::decode(old).unwrap();
        assert_eq!((r.by, r.passed, r.duration_ms), (None, false, 5));
    }
}
