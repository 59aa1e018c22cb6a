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
    let state = repo.verification()?;
    let rows: Vec<Row> = snaps
        .into_iter()
        .filter(|(_, s)| a.source.as_ref().is_none_or(|n| &s.source.name == n))
        .filter(|(_, s)| a.tag.as_ref().is_none_or(|t| s.tags.contains(t)))
        .map(|(id, s)| Row {
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
            verification: state.get(&id).map(Verification::from_record),
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
        let mut extra = r.tags.join(",");
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
