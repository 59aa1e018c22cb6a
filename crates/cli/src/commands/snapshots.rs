//! `backstop snapshots`

use backstop_app::copies::{Holders, holders, other_repositories};
use backstop_engine::listing::{ListFilter, SnapshotRow, list_snapshots};
use backstop_format::Timestamp;
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs};
use crate::output::{bytes, drill, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only snapshots of this source
    #[arg(long)]
    pub source: Option<String>,
    /// Only snapshots with this tag
    #[arg(long)]
    pub tag: Option<String>,
    /// Do not open the other repositories of backstop.toml (the main one, each
    /// `[repositories.NAME]`, each `copy_to`) to show which hold a copy of each snapshot
    #[arg(long)]
    pub no_copies: bool,
}

/// A row of the listing with the other repositories that hold the same snapshot.
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    row: &'a SnapshotRow,
    /// Where copies of it are: other repositories' names (else locations).
    copies: &'a [String],
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let now = Timestamp::now();
    let filter = ListFilter {
        source: a.source.clone(),
        tag: a.tag.clone(),
        kind: None,
    };
    let (rows, bad) = list_snapshots(&repo, &filter, &ctx.config.lifecycle()?, now)?;
    for (name, e) in &bad {
        eprintln!("warning: snapshot {name} cannot be read: {e}");
    }
    let held = match (a.no_copies, ctx.repo_location()) {
        (false, Some(this)) => {
            let others = other_repositories(&ctx.config, &this);
            holders(&others, ctx.passphrase()?.as_deref(), &ctx.cache_use())
        }
        _ => Holders::default(),
    };
    for (name, e) in &held.unreadable {
        eprintln!("warning: which snapshots {name} holds is not shown: {e}");
    }
    let copies = |r: &SnapshotRow| held.by_snapshot.get(&r.id).map_or(&[][..], Vec::as_slice);
    if g.json {
        let rows: Vec<Row> = rows
            .iter()
            .map(|row| Row {
                row,
                copies: copies(row),
            })
            .collect();
        print_json(&rows)?;
        return Ok(crate::exit::OK);
    }
    if rows.is_empty() {
        outln!("no snapshots")?;
        return Ok(crate::exit::OK);
    }
    let tz = ctx.config.time_zone()?;
    outln!(
        "{:<10} {:<19} {:<16} {:<11} {:>10}  {:<36} {}",
        "ID",
        "TIME",
        "SOURCE",
        "KIND",
        "SIZE",
        "VERIFIED",
        "TAGS / DESCRIPTION"
    )?;
    for r in &rows {
        let t = crate::output::time(r.time, &tz);
        let verified = match &r.verification {
            None => "not drilled".to_string(),
            Some(v) => drill(v.state == "passed", v.time, v.duration_ms, now),
        };
        let mut extra = String::new();
        if r.pinned {
            extra.push_str("[pinned] ");
        }
        if let Some(from) = &r.repaired_from {
            extra.push_str(&format!("[repaired copy of {}] ", from.short()));
        }
        if let Some(p) = &r.pre_change {
            extra.push_str(&format!("[{}] ", p.human()));
        }
        if !copies(r).is_empty() {
            extra.push_str(&format!("[also in {}] ", copies(r).join(", ")));
        }
        extra.push_str(&r.tags.join(","));
        if let Some(d) = &r.description {
            if !extra.is_empty() {
                extra.push(' ');
            }
            extra.push_str(d);
        }
        outln!(
            "{:<10} {:<19} {:<16} {:<11} {:>10}  {:<36} {}",
            r.id.short(),
            t,
            r.source,
            r.kind.as_str(),
            bytes(r.bytes),
            verified,
            extra
        )?;
    }
    outln!("{} snapshot(s)", rows.len())?;
    Ok(crate::exit::OK)
}
