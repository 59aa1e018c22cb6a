//! `backstop restore`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use backstop_engine::{RestoreOptions, plan_restore};

use crate::context::{Ctx, GlobalArgs, load_index};
use crate::output::{Bar, bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, unique id prefix, latest, or latest:SOURCE
    pub snapshot: String,
    /// Directory to restore into (created if missing)
    #[arg(long)]
    pub to: PathBuf,
    /// Print what would be restored and what exists already; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Replace existing files
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let (id, snap) = repo.find_snapshot(&a.snapshot)?;
    let index = load_index(&repo, g.quiet)?;
    let opts = RestoreOptions {
        target: a.to.clone(),
        overwrite: a.overwrite,
    };
    let (plan, items) = plan_restore(&repo, &index, id, &snap, &opts)?;
    if a.dry_run {
        if g.json {
            print_json(&plan)?;
        } else {
            outln!(
                "would restore snapshot {} of {} ({}) into {}: {} file(s), {} dir(s), {} link(s), {}",
                id.short(),
                plan.source,
                plan.time,
                a.to.display(),
                plan.files.files,
                plan.files.dirs,
                plan.files.symlinks,
                bytes(plan.files.bytes)
            )?;
            if !plan.files.existing.is_empty() {
                outln!(
                    "{} path(s) exist already and {}:",
                    plan.files.existing.len(),
                    if a.overwrite {
                        "would be replaced"
                    } else {
                        "block the restore unless --overwrite is given"
                    }
                )?;
                for p in plan.files.existing.iter().take(20) {
                    outln!("  {p}")?;
                }
            }
        }
        return Ok(crate::exit::OK);
    }
    let bar = Bar::new(g.quiet || g.json);
    let started = Instant::now();
    let r = backstop_engine::restore(&repo, &index, plan, &items, &opts, &bar);
    bar.done();
    let summary =
        r.with_context(|| format!("restoring snapshot {} into {}", id.short(), a.to.display()))?;
    if g.json {
        print_json(&summary)?;
    } else if !g.quiet {
        outln!(
            "restored snapshot {} of {} into {}: {} file(s), {} in {:.1} s; every chunk checked against its id",
            id.short(),
            summary.plan.source,
            a.to.display(),
            summary.plan.files.files,
            bytes(summary.bytes_written),
            started.elapsed().as_secs_f64()
        )?;
    }
    Ok(crate::exit::OK)
}
