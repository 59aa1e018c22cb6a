//! `backstop snapshots`

use backstop_format::manifest::{BackupKind, SourceKind};
use backstop_format::{SnapshotId, Timestamp};
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs};
use crate::output::{bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only snapshots of this source
    #[arg(long)]
    pub source: Option<String>,
    /// Only snapshots with this tag
    #[arg(long)]
    pub tag: Option<String>,
}

/// One row of `snapshots --json`.
#[derive(Serialize)]
pub struct Row {
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
}

/// A pre-change snapshot's lifecycle state.
#[derive(Serialize)]
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
        snap: &backstop_format::manifest::Snapshot,
        marks: Option<&backstop_engine::repo::Marks>,
        lifecycle: &backstop_policy::Lifecycle,
        now: Timestamp,
    ) -> Option<Self> {
        let c = backstop_engine::forget::candidate(id, snap, marks);
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
#[derive(Serialize)]
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

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let (snaps, bad) = repo.snapshots()?;
    for (name, e) in &bad {
        eprintln!("warning: snapshot {name} cannot be read: {e}");
    }
    let marks = repo.marks()?;
    let lifecycle = ctx.config.lifecycle()?;
    let now = Timestamp::now();
    let rows: Vec<Row> = snaps
        .into_iter()
        .filter(|(_, s)| a.source.as_ref().is_none_or(|n| &s.source.name == n))
        .filter(|(_, s)| a.tag.as_ref().is_none_or(|t| s.tags.contains(t)))
        .map(|(id, s)| Row {
            pinned: marks.get(&id).is_some_and(|m| m.pinned),
            pre_change: PreChange::of(id, &s, marks.get(&id), &lifecycle, now),
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
        })
        .collect();
    if g.json {
        print_json(&rows)?;
        return Ok(crate::exit::OK);
    }
    if rows.is_empty() {
        outln!("no snapshots")?;
        return Ok(crate::exit::OK);
    }
    let tz = jiff::tz::TimeZone::system();
    outln!(
        "{:<10} {:<19} {:<16} {:<11} {:>10}  {:<19} {}",
        "ID",
        "TIME",
        "SOURCE",
        "KIND",
        "SIZE",
        "VERIFIED",
        "TAGS / DESCRIPTION"
    )?;
    for r in &rows {
        let t = r
            .time
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string();
        let mut extra = String::new();
        if r.pinned {
            extra.push_str("[pinned] ");
        }
        if let Some(p) = &r.pre_change {
            extra.push_str(&format!("[{}] ", p.human()));
        }
        extra.push_str(&r.tags.join(","));
        if let Some(d) = &r.description {
            if !extra.is_empty() {
                extra.push(' ');
            }
            extra.push_str(d);
        }
        outln!(
            "{:<10} {:<19} {:<16} {:<11} {:>10}  {:<19} {}",
            r.id.short(),
            t,
            r.source,
            r.kind.as_str(),
            bytes(r.bytes),
            Verification::human(r.verification.as_ref()),
            extra
        )?;
    }
    outln!("{} snapshot(s)", rows.len())?;
    Ok(crate::exit::OK)
}
