//! `backstop pin`, `backstop unpin` and `backstop mark-verified`: lifecycle marks, stored as
//! records attached to a snapshot.

use backstop_format::Timestamp;
use backstop_format::manifest::BackupKind;
use backstop_format::record::{MARK_VERIFIED, PIN, Record, UNPIN};
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, host};
use crate::output::{UsageError, print_json};

#[derive(clap::Args, Debug)]
pub struct PinArgs {
    /// The snapshot (id, unique prefix, latest, latest:SOURCE)
    pub snapshot: String,
    /// Why (shown with the snapshot)
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct MarkArgs {
    /// The pre-change snapshot whose change went well
    pub snapshot: String,
    /// Who confirmed it [default: the user running backstop]
    #[arg(long)]
    pub by: Option<String>,
    /// What was checked
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Serialize)]
struct Out {
    snapshot: backstop_format::SnapshotId,
    source: String,
    record: Record,
}

pub fn pin(g: &GlobalArgs, a: PinArgs) -> anyhow::Result<u8> {
    mark(g, &a.snapshot, PIN, None, a.note)
}

pub fn unpin(g: &GlobalArgs, a: PinArgs) -> anyhow::Result<u8> {
    mark(g, &a.snapshot, UNPIN, None, a.note)
}

pub fn mark_verified(g: &GlobalArgs, a: MarkArgs) -> anyhow::Result<u8> {
    let by = a.by.or_else(user).filter(|b| !b.trim().is_empty());
    mark(g, &a.snapshot, MARK_VERIFIED, by, a.note)
}

fn user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
}

fn mark(
    g: &GlobalArgs,
    spec: &str,
    kind: &str,
    by: Option<String>,
    note: Option<String>,
) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let (id, snap) = repo.find_snapshot(spec)?;
    let marks = repo.marks()?.remove(&id).unwrap_or_default();
    match kind {
        MARK_VERIFIED if snap.kind != BackupKind::PreChange => {
            return Err(UsageError(format!(
                "snapshot {} is a {} snapshot; only pre-change snapshots are marked verified \
                 (to keep another snapshot, pin it: `backstop pin {}`)",
                id.short(),
                snap.kind.as_str(),
                id.short()
            ))
            .into());
        }
        MARK_VERIFIED if marks.verified.is_some() => {
            let r = marks.verified.expect("checked");
            outln!(
                "snapshot {} was already marked verified at {}{}",
                id.short(),
                r.time,
                r.by.map(|b| format!(" by {b}")).unwrap_or_default()
            )?;
            return Ok(crate::exit::OK);
        }
        PIN if marks.pinned => {
            outln!("snapshot {} is already pinned", id.short())?;
            return Ok(crate::exit::OK);
        }
        UNPIN if !marks.pinned => {
            outln!("snapshot {} is not pinned", id.short())?;
            return Ok(crate::exit::OK);
        }
        _ => {}
    }
    let record = Record::mark(kind, id, Timestamp::now(), &host(), by, note);
    repo.write_record(&record)?;
    if g.json {
        print_json(&Out {
            snapshot: id,
            source: snap.source.name,
            record,
        })?;
    } else if !g.quiet {
        let what = match kind {
            PIN => "pinned: forget never removes it",
            UNPIN => "unpinned: retention applies to it again",
            _ => "marked verified: retention applies to it after the grace period",
        };
        outln!("snapshot {} of {} {what}", id.short(), snap.source.name)?;
    }
    Ok(crate::exit::OK)
}
