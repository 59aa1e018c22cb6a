//! `backstop repair index | snapshots | records`

use backstop_engine::repair::{RepairIndexSummary, RepairRecordsSummary};

use crate::context::{Ctx, GlobalArgs, host};
use crate::output::{Bar, print_json};

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
    /// Delete records (pins, drills, marks) that cannot be read: they stop `forget`
    Records(DryRun),
}

#[derive(clap::Args, Debug)]
pub struct DryRun {
    /// Show what would be done, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    match a.what {
        What::Index(d) => index(g, &repo, d.dry_run),
        What::Records(d) => records(g, &repo, d.dry_run),
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
    Ok(crate::exit::OK)
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
