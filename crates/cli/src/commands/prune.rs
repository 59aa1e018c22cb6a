//! `backstop prune`

use backstop_engine::{PruneOptions, PruneSummary};

use crate::context::{Ctx, GlobalArgs};
use crate::output::{Bar, UsageError, bytes, print_json};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Show what would be deleted and repacked, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Repack partly used packs until at most this share of the used space is left unused,
    /// in percent (0 repacks every partly used pack)
    #[arg(long, default_value_t = 5.0, value_name = "PERCENT")]
    pub max_unused: f64,
}

impl Args {
    pub fn options(&self) -> anyhow::Result<PruneOptions> {
        if !(0.0..=100.0).contains(&self.max_unused) {
            return Err(UsageError(format!(
                "--max-unused {} is not a percentage between 0 and 100",
                self.max_unused
            ))
            .into());
        }
        Ok(backstop_app::retention::prune_options(
            Some(self.max_unused),
            &crate::context::runtime(),
        ))
    }
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let opts = a.options()?;
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let summary = run_prune(&repo, &opts, a.dry_run, g)?;
    if g.json {
        print_json(&summary)?;
    } else if !g.quiet {
        print_summary(&summary)?;
    }
    Ok(crate::exit::OK)
}

pub fn run_prune(
    repo: &backstop_engine::Repository,
    opts: &PruneOptions,
    dry_run: bool,
    g: &GlobalArgs,
) -> anyhow::Result<PruneSummary> {
    let bar = Bar::new(g.quiet || g.json);
    let r = backstop_engine::prune(repo, opts, dry_run, &bar);
    bar.done();
    Ok(r?)
}

pub fn print_summary(s: &PruneSummary) -> anyhow::Result<()> {
    let p = &s.plan;
    outln!(
        "{} snapshot(s) use {} chunks: {} of {} in {} packs used, {} unused",
        p.snapshots,
        p.used_chunks,
        bytes(p.used_bytes),
        bytes(p.bytes),
        p.packs,
        bytes(p.unused_bytes)
    )?;
    let verb = if s.dry_run { "would" } else { "did" };
    outln!(
        "{verb} delete {} unused pack(s) ({}), repack {} pack(s) ({}, of which {} used), \
         delete {} pack(s) no index names ({}), {} record(s) of forgotten snapshots",
        p.delete_packs,
        bytes(p.delete_bytes),
        p.repack_packs,
        bytes(p.repack_bytes),
        bytes(p.repack_used_bytes),
        p.unreferenced_packs,
        bytes(p.unreferenced_bytes),
        p.orphan_records
    )?;
    if s.dry_run {
        outln!(
            "would free about {}; {} would stay unused in packs below the repack threshold",
            bytes(p.bytes_freed()),
            bytes(p.unused_after)
        )?;
        outln!("dry run: nothing was changed")?;
    } else {
        outln!(
            "packs: {} -> {} ({} written, {} deleted) in {:.1}s",
            bytes(s.bytes_before),
            bytes(s.bytes_after),
            s.packs_written,
            s.packs_deleted,
            s.seconds
        )?;
        if s.temporary_files_removed > 0 {
            outln!(
                "removed {} temporary file(s) ({}) left by interrupted commands",
                s.temporary_files_removed,
                bytes(s.temporary_bytes_removed)
            )?;
        }
    }
    Ok(())
}
