//! `backstop repair index | snapshots | records`

use backstop_engine::repair::{
    RepairIndexSummary, RepairRecordsSummary, RepairSnapshotsOptions, RepairSnapshotsSummary,
};
use backstop_format::Timestamp;

use crate::context::{Ctx, GlobalArgs, host};
use crate::output::{Bar, bytes, print_json, time};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Rebuild the index from the packs themselves (after a lost or damaged index file);
    /// deletes no pack
    Index(DryRun),
    /// Copy each snapshot part of which is lost into a repaired snapshot of what can still be
    /// read (lost bytes are zeros, losses are listed); the damaged snapshot is kept
    Snapshots(SnapshotsArgs),
    /// Delete records (pins, drills, marks) that cannot be read: they stop `forget`
    Records(DryRun),
}

#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    /// Show what would be repaired, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also read every content and check it against its hash (finds damaged bytes in packs
    /// that look whole; reads the whole repository)
    #[arg(long)]
    pub read_data: bool,
    /// Then forget each damaged snapshot that has a repaired copy (check the copies first)
    #[arg(long)]
    pub forget: bool,
}

#[derive(clap::Args, Debug)]
pub struct DryRun {
    /// Show what would be done, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open_for_checks()?;
    match a.what {
        What::Index(d) => index(g, &repo, d.dry_run),
        What::Records(d) => records(g, &repo, d.dry_run),
        What::Snapshots(a) => snapshots(g, &repo, &a, &ctx.config.time_zone()?),
    }
}

fn index(g: &GlobalArgs, repo: &backstop_engine::Repository, dry_run: bool) -> anyhow::Result<u8> {
    let bar = Bar::new(g.quiet || g.json);
    let r = backstop_engine::repair::repair_index(repo, &host(), dry_run, &bar);
    bar.done();
    let s = r?;
    if g.json {
        print_json(&s)?;
    } else if !g.quiet {
        print_index(&s)?;
    }
    if s.unreadable_packs.is_empty() {
        return Ok(crate::exit::OK);
    }
    // What could be indexed was; what is in the other packs is not reachable through the
    // index, so the repository is still damaged: say so in the exit code too.
    eprintln!(
        "error: {} pack(s) could not be indexed; the snapshots that need their data are still          damaged",
        s.unreadable_packs.len()
    );
    eprintln!(
        "hint: `backstop verify` names those snapshots; `backstop repair snapshots` keeps what          they still hold. A copy of the damaged pack (from another copy of the repository) can          be put back under packs/ and `backstop repair index` run again"
    );
    Ok(crate::exit::INTEGRITY)
}

fn print_index(s: &RepairIndexSummary) -> anyhow::Result<()> {
    let verb = |done: &str, would: &str| if s.dry_run { would } else { done }.to_string();
    for d in &s.damaged_index_files {
        outln!(
            "index file {} is damaged ({}): {}",
            d.name,
            d.error,
            verb("replaced", "would be replaced")
        )?;
    }
    for p in &s.missing_packs {
        outln!(
            "pack {p} is missing: {} (`backstop verify` names the snapshots that needed it; \
             `backstop repair snapshots` saves what they still hold)",
            verb("dropped from the index", "would be dropped from the index")
        )?;
    }
    for p in &s.unreadable_packs {
        outln!(
            "pack {} cannot be indexed ({}); it is left where it is",
            p.name,
            p.error
        )?;
    }
    if s.nothing_to_do() {
        outln!(
            "the index names every readable pack ({} pack(s), {} index file(s)): nothing to repair",
            s.packs,
            s.index_files
        )?;
        return Ok(());
    }
    outln!(
        "{} {} pack(s) ({} chunk(s)) from their trailers; {} {} index file(s), {} {}",
        verb("indexed", "would index"),
        s.packs_indexed,
        s.chunks_indexed,
        verb("wrote", "would write"),
        if s.dry_run {
            "new".to_string()
        } else {
            s.index_files_written.to_string()
        },
        verb("deleted", "would delete"),
        s.damaged_index_files.len() + s.stale_index_files.len()
    )?;
    if s.dry_run {
        outln!("dry run: nothing was changed")?;
    } else {
        outln!("no pack was deleted; run `backstop verify` to check the result")?;
    }
    Ok(())
}

fn records(
    g: &GlobalArgs,
    repo: &backstop_engine::Repository,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let s = backstop_engine::repair::repair_records(repo, &host(), dry_run)?;
    if g.json {
        print_json(&s)?;
    } else if !g.quiet {
        print_records(&s)?;
    }
    Ok(crate::exit::OK)
}

fn print_records(s: &RepairRecordsSummary) -> anyhow::Result<()> {
    if s.damaged.is_empty() {
        outln!("all {} record(s) can be read: nothing to repair", s.records)?;
        return Ok(());
    }
    for d in &s.damaged {
        outln!(
            "record {} cannot be read ({}): {}",
            d.name,
            d.error,
            if s.dry_run {
                "would be deleted"
            } else {
                "deleted"
            }
        )?;
    }
    outln!(
        "a damaged record may have been a pin: check that every snapshot that must be kept is pinned \
         (`backstop pin SNAPSHOT`); pinned now: {}",
        if s.pinned.is_empty() {
            "none".to_string()
        } else {
            s.pinned
                .iter()
                .map(|id| id.short())
                .collect::<Vec<_>>()
                .join(", ")
        }
    )?;
    if s.dry_run {
        outln!("dry run: nothing was changed")?;
    }
    Ok(())
}

fn snapshots(
    g: &GlobalArgs,
    repo: &backstop_engine::Repository,
    a: &SnapshotsArgs,
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<u8> {
    let opts = RepairSnapshotsOptions {
        host: host(),
        time: Timestamp::now(),
        program: format!("backstop {}", env!("CARGO_PKG_VERSION")),
        dry_run: a.dry_run,
        read_data: a.read_data,
        forget_damaged: a.forget,
    };
    let bar = Bar::new(g.quiet || g.json);
    let r = backstop_engine::repair::repair_snapshots(repo, &opts, &bar);
    bar.done();
    let s = r?;
    if g.json {
        print_json(&s)?;
    } else if !g.quiet {
        print_snapshots(&s, tz)?;
    }
    Ok(crate::exit::OK)
}

fn print_snapshots(s: &RepairSnapshotsSummary, tz: &jiff::tz::TimeZone) -> anyhow::Result<()> {
    for u in &s.unreadable {
        outln!(
            "snapshot {} cannot be read ({}): nothing of it can be saved (`backstop forget {}` \
             deletes it)",
            u.name,
            u.error,
            u.name
        )?;
    }
    for id in &s.already_repaired {
        outln!(
            "snapshot {} is damaged and already has a repaired copy",
            id.short()
        )?;
    }
    for r in &s.repaired {
        match r.id {
            Some(id) => outln!(
                "snapshot {} of {} ({}) repaired as snapshot {} ({} item(s)):",
                r.from.short(),
                r.source,
                time(r.time, tz),
                id.short(),
                r.items
            )?,
            None => outln!(
                "snapshot {} of {} ({}) would be repaired:",
                r.from.short(),
                r.source,
                time(r.time, tz)
            )?,
        }
        for l in &r.losses {
            let what = if l.dropped {
                "nothing could be read: left out".to_string()
            } else {
                format!(
                    "{} of {} lost{} at {}",
                    bytes(l.bytes()),
                    bytes(l.size),
                    if l.path == backstop_engine::repair::snapshots::ITEM_LIST {
                        ""
                    } else {
                        " (zeros in the copy)"
                    },
                    l.ranges
                        .iter()
                        .take(4)
                        .map(|[a, b]| format!("{a}..{b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                        + if l.ranges.len() > 4 { ", ..." } else { "" }
                )
            };
            outln!("  {}: {what}", l.path)?;
            if let Some(d) = &l.detail {
                outln!("    {d}")?;
            }
        }
    }
    for id in &s.forgotten {
        outln!(
            "damaged snapshot {} {}",
            id.short(),
            if s.dry_run {
                "would be forgotten"
            } else {
                "forgotten"
            }
        )?;
    }
    if s.repaired.is_empty() && s.forgotten.is_empty() {
        outln!(
            "checked {} snapshot(s): nothing lost that a repair could save",
            s.snapshots
        )?;
    } else if s.dry_run {
        outln!("dry run: nothing was changed")?;
    } else if !s.repaired.is_empty() && s.forgotten.is_empty() {
        outln!(
            "the damaged snapshot(s) are kept; check the repaired copies (`backstop restore`, \
             `backstop verify --restore-test SNAPSHOT`), then `backstop repair snapshots --forget` \
             forgets the damaged ones"
        )?;
    }
    Ok(())
}
