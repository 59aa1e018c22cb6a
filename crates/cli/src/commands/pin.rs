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
    /// False when the snapshot already was in the state asked for (nothing written).
    changed: bool,
    /// The record written, if any.
    record: Option<Record>,
    message: String,
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
    let (id, snap) = ctx.find_snapshot(&repo, spec)?;
    let marks = repo.marks()?.remove(&id).unwrap_or_default();
    let tz = ctx.config.time_zone()?;
    if kind == MARK_VERIFIED && snap.kind != BackupKind::PreChange {
        return Err(UsageError(format!(
            "snapshot {} is a {} snapshot; only pre-change snapshots are marked verified \
             (to keep another snapshot, pin it: `backstop pin {}`)",
            id.short(),
            snap.kind.as_str(),
            id.short()
        ))
        .into());
    }
    let unchanged = match kind {
        MARK_VERIFIED => marks.verified.as_ref().map(|r| {
            format!(
                "snapshot {} was already marked verified at {}{}",
                id.short(),
                crate::output::time(r.time, &tz),
                r.by.as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            )
        }),
        PIN if marks.pinned => Some(format!("snapshot {} is already pinned", id.short())),
        UNPIN if !marks.pinned => Some(format!("snapshot {} is not pinned", id.short())),
        _ => None,
    };
    let out = match unchanged {
        Some(message) => Out {
            snapshot: id,
            source: snap.source.name,
            changed: false,
            record: None,
            message,
        },
        None => {
            let record = Record::mark(kind, id, Timestamp::now(), &host(), by, note);
            repo.write_record(&record)?;
            let what = match kind {
                PIN => "pinned: forget never removes it",
                UNPIN => "unpinned: retention applies to it again",
                _ => "marked verified: retention applies to it after the grace period",
            };
            Out {
                snapshot: id,
                message: format!("snapshot {} of {} {what}", id.short(), snap.source.name),
                source: snap.source.name,
                changed: true,
                record: Some(record),
            }
        }
    };
    if g.json {
        print_json(&out)?;
    } else if !g.quiet {
        outln!("{}", out.message)?;
    }
    Ok(crate::exit::OK)
}
