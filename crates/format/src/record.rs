//! Records attached to snapshots: the results of restore drills.
//!
//! A record is a small sealed JSON object in `records/`, written after the fact and never
//! changed; a snapshot's verification state is its newest record.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::FormatError;
use crate::id::SnapshotId;

pub const RECORD_VERSION: u32 = 1;

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
    /// `restore-drill`.
    pub kind: String,
    pub snapshot: SnapshotId,
    pub time: Timestamp,
    pub host: String,
    pub passed: bool,
    /// How long the restore and its checks took.
    pub duration_ms: u64,
    pub checks: Vec<Check>,
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
            kind: "restore-drill".into(),
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
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
    }
}
