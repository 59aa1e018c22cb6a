//! `backstop pin`, `backstop unpin` and `backstop mark-verified`: lifecycle marks, stored as
//! records attached to a snapshot.

use backstop_format::Timestamp;
use backstop_format::record::{PIN, Record, UNPIN};
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, host};
use crate::output::print_json;

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
    mark(g, &a.snapshot, PIN, a.note)
}

pub fn unpin(g: &GlobalArgs, a: PinArgs) -> anyhow::Result<u8> {
    mark(g, &a.snapshot, UNPIN, a.note)
}

/// As the page's "Mark verified" button and the API do it
/// ([`backstop_app::restore::mark_verified`]); its refusal of a snapshot of another kind is a
/// usage error here (exit 2).
pub fn mark_verified(g: &GlobalArgs, a: MarkArgs) -> anyhow::Result<u8> {
    let by = a.by.or_else(user).filter(|b| !b.trim().is_empty());
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let (id, snapshot) = ctx.find_snapshot(&repo, &a.snapshot)?;
    let found = backstop_app::snapshots::Found {
        id,
        snapshot,
        spec: a.snapshot.clone(),
        as_of: None,
    };
    let tz = ctx.config.time_zone()?;
    let out = backstop_app::restore::mark_verified(&repo, &found, by, a.note, &host(), &tz)
        .map_err(crate::output::invalid_is_usage)?;
    if g.json {
        print_json(&out)?;
    } else if !g.quiet {
        outln!("{}", out.message)?;
    }
    Ok(crate::exit::OK)
}

fn user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
}

/// Pins or unpins (`kind`) the snapshot `spec` names; one already so is left as it is.
fn mark(g: &GlobalArgs, spec: &str, kind: &str, note: Option<String>) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let (id, snap) = ctx.find_snapshot(&repo, spec)?;
    let marks = repo.marks()?.remove(&id).unwrap_or_default();
    let unchanged = match kind {
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
            let record = Record::mark(kind, id, Timestamp::now(), &host(), None, note);
            repo.write_record(&record)?;
            let what = match kind {
                PIN => "pinned: forget never removes it",
                _ => "unpinned: retention applies to it again",
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
