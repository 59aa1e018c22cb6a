//! The snapshot list with each snapshot's state (pinned, pre-change lifecycle, newest restore
//! drill), shared by `backstop snapshots` and the daemon.

use backstop_format::manifest::{BackupKind, Snapshot, SourceKind};
use backstop_format::{SnapshotId, Timestamp};
use backstop_policy::Lifecycle;
use serde::Serialize;

use crate::error::Result;
use crate::repository::SnapshotList;
use crate::repository::{Marks, Repository};

/// Which snapshots to list; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub source: Option<String>,
    pub tag: Option<String>,
    pub kind: Option<BackupKind>,
}

/// One snapshot as `snapshots --json` and `GET /api/v1/snapshots` list it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRow {
    pub id: SnapshotId,
    pub time: Timestamp,
    pub source: String,
    pub source_kind: SourceKind,
    pub kind: BackupKind,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub ticket: Option<String>,
    pub host: String,
    pub paths: Vec<String>,
    pub bytes: u64,
    pub items: u64,
    pub warnings: usize,
    /// The newest restore drill of this snapshot, if any.
    pub verification: Option<Verification>,
    /// Pinned snapshots are never forgotten.
    pub pinned: bool,
    /// Pre-change snapshots only: `pending-verification`, `verified` (within the grace period)
    /// or `retired` (retention applies again).
    pub pre_change: Option<PreChange>,
    /// A copy made by `repair snapshots` of this damaged snapshot (see `show` for its losses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired_from: Option<SnapshotId>,
}

/// A pre-change snapshot's lifecycle state.
#[derive(Debug, Clone, Serialize)]
pub struct PreChange {
    pub state: &'static str,
    /// End of the grace period, when verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Timestamp>,
}

impl PreChange {
    pub fn of(
        id: SnapshotId,
        snap: &Snapshot,
        marks: Option<&Marks>,
        lifecycle: &backstop_policy::Lifecycle,
        now: Timestamp,
    ) -> Option<Self> {
        let c = crate::repository::marks::candidate(id, snap, marks);
        let state = backstop_policy::pre_change_state(&c, lifecycle, now)?;
        let verified = marks.and_then(|m| m.verified.as_ref());
        let (state, until) = match state {
            backstop_policy::PreChangeState::PendingVerification => ("pending-verification", None),
            backstop_policy::PreChangeState::Verified { until } => ("verified", Some(until)),
            backstop_policy::PreChangeState::Retired => ("retired", None),
        };
        Some(Self {
            state,
            until,
            verified_by: verified.and_then(|r| r.by.clone()),
            verified_at: verified.map(|r| r.time),
        })
    }

    /// Short human form for the table.
    pub fn human(&self) -> String {
        match self.state {
            "pending-verification" => "pre-change: pending".into(),
            "verified" => "pre-change: verified".into(),
            _ => "pre-change: retired".into(),
        }
    }
}

/// A snapshot's verification state, from its newest restore drill.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// `passed` or `failed`.
    pub state: &'static str,
    pub time: Timestamp,
    pub duration_ms: u64,
}

impl Verification {
    pub fn from_record(r: &backstop_format::record::Record) -> Self {
        Self {
            state: if r.passed { "passed" } else { "failed" },
            time: r.time,
            duration_ms: r.duration_ms,
        }
    }

    /// A short human form.
    pub fn human(v: Option<&Self>) -> String {
        match v {
            None => "not drilled".into(),
            Some(v) => format!("drill {} {:.1}s", v.state, v.duration_ms as f64 / 1000.0),
        }
    }
}

/// A snapshot that cannot be read: its name and why.
pub type Unreadable = (String, String);

/// The snapshots matching `filter`, oldest first, and the names of those that cannot be read.
pub fn list_snapshots(
    repo: &Repository,
    filter: &ListFilter,
    lifecycle: &Lifecycle,
    now: Timestamp,
) -> Result<(Vec<SnapshotRow>, Vec<Unreadable>)> {
    let SnapshotList {
        readable: snaps,
        unreadable: bad,
    } = repo.snapshots()?;
    let marks = repo.marks()?;
    let rows = snaps
        .into_iter()
        .filter(|(_, s)| filter.source.as_ref().is_none_or(|n| &s.source.name == n))
        .filter(|(_, s)| filter.tag.as_ref().is_none_or(|t| s.tags.contains(t)))
        .filter(|(_, s)| filter.kind.is_none_or(|k| s.kind == k))
        .map(|(id, s)| SnapshotRow {
            pinned: marks.get(&id).is_some_and(|m| m.pinned),
            pre_change: PreChange::of(id, &s, marks.get(&id), lifecycle, now),
            verification: marks
                .get(&id)
                .and_then(|m| m.drill.as_ref())
                .map(Verification::from_record),
            id,
            time: s.time,
            source: s.source.name,
            source_kind: s.source.kind,
            kind: s.kind,
            tags: s.tags,
            description: s.description,
            ticket: s.ticket,
            host: s.host,
            paths: s.paths,
            bytes: s.stats.bytes,
            items: s.stats.items,
            warnings: s.warnings.len(),
            repaired_from: s.repaired.map(|r| r.from),
        })
        .collect();
    let bad = bad.into_iter().map(|(n, e)| (n, e.to_string())).collect();
    Ok((rows, bad))
}
