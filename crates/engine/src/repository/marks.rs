//! What a snapshot's records say about it (pins, drills, mark-verified), and what the snapshot
//! is to a retention policy: read by forget and by the listing alike.

use std::collections::HashMap;

use backstop_format::SnapshotId;
use backstop_format::manifest::Snapshot;
use backstop_format::record::{MARK_VERIFIED, PIN, RESTORE_DRILL, Record, UNPIN};
use backstop_policy::Candidate;

/// What the records say about one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// The newest restore drill.
    pub drill: Option<Record>,
    /// Pinned by the newest pin or unpin record.
    pub pinned: bool,
    /// The first mark-verified record (later ones do not extend the grace period).
    pub verified: Option<Record>,
    /// How many records the snapshot has (forget deletes them with it).
    pub records: usize,
}

impl Marks {
    /// Folds records, oldest first, into each snapshot's state.
    pub fn from_records(records: Vec<Record>) -> HashMap<SnapshotId, Marks> {
        let mut m: HashMap<SnapshotId, Marks> = HashMap::new();
        for r in records {
            let e = m.entry(r.snapshot).or_default();
            e.records += 1;
            match r.kind.as_str() {
                RESTORE_DRILL => e.drill = Some(r),
                PIN => e.pinned = true,
                UNPIN => e.pinned = false,
                MARK_VERIFIED if e.verified.is_none() => e.verified = Some(r),
                _ => {}
            }
        }
        m
    }
}

/// What one snapshot is to the policy.
pub fn candidate(id: SnapshotId, snap: &Snapshot, marks: Option<&Marks>) -> Candidate {
    Candidate {
        id,
        time: snap.time,
        kind: snap.kind,
        tags: snap.tags.clone(),
        pinned: marks.is_some_and(|m| m.pinned),
        verified_at: marks.and_then(|m| m.verified.as_ref()).map(|r| r.time),
        drill_passed: marks
            .and_then(|m| m.drill.as_ref())
            .is_some_and(|r| r.passed),
    }
}
