//! `backstop verify`

use backstop_engine::drill::restore_drill;
use backstop_engine::verify::Repair;
use backstop_format::manifest::Snapshot;
use backstop_format::{SnapshotId, Timestamp};

use crate::context::{Ctx, GlobalArgs};
use crate::output::{Bar, bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also read every pack and check every chunk against its id
    #[arg(long)]
    pub read_data: bool,
    /// Run a restore drill: restore into a scratch directory, check thoroughly (for a database:
    /// integrity_check, foreign_key_check, row counts, image hash), time it, and record the result
    #[arg(long)]
    pub restore_test: bool,
    /// The snapshot to drill (id, prefix, latest, latest:SOURCE, SOURCE@TIME) [default: the newest
    /// of each source that is not a pre-restore safety snapshot]
    #[arg(requires = "restore_test")]
    pub snapshot: Option<String>,
    /// Drill the newest snapshot of each source (safety snapshots taken before a restore excepted)
    #[arg(long, requires = "restore_test", conflicts_with = "snapshot")]
    pub latest: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open_for_checks()?;
    if a.restore_test {
        return drill(&ctx, &repo, a.snapshot.as_deref());
    }
    let bar = Bar::new(g.quiet || g.json);
    let report = backstop_engine::verify(
        &repo,
        &backstop_app::verify::verify_options(a.read_data, &crate::context::runtime()),
        &bar,
    );
    bar.done();
    let report = report?;
    let code = if report.is_clean() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    };
    if g.json {
        print_json(&report)?;
        return Ok(code);
    }
    for p in &report.problems {
        outln!("PROBLEM {}: {} {}", p.kind, p.object, p.message)?;
        match p.repair {
            Some(r) => outln!("  repair: {}", repair_command(r))?,
            None if p.kind == "damaged-key" => outln!(
                "  repair: none needed while another key file opens the repository; put back a copy of this one or delete it"
            )?,
            None => outln!("  repair: none gets this back")?,
        }
        for a in &p.affected {
            let shown: Vec<&str> = a.items.iter().take(5).map(String::as_str).collect();
            let more = a.items.len().saturating_sub(shown.len());
            outln!(
                "  affects snapshot {}{} of {}: {}{}",
                a.snapshot.short(),
                a.repaired_as
                    .map(|c| format!(" (repaired copy: {})", c.short()))
                    .unwrap_or_default(),
                a.source,
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )?;
        }
    }
    if !g.quiet {
        outln!(
            "checked {} snapshot(s), {} pack(s), {} chunk(s){}: {}",
            report.snapshots,
            report.packs,
            report.chunks,
            if report.read_data {
                format!(", read {}", bytes(report.bytes_read))
            } else {
                " (structure only; --read-data reads all data)".into()
            },
            if report.is_clean() {
                "no problems found".to_string()
            } else {
                format!("{} problem(s) found", report.problems.len())
            }
        )?;
        if report.unindexed_needed_packs > 0 {
            outln!(
                "{} pack(s) hold data that snapshots need but no index names them: run `backstop repair index`",
                report.unindexed_needed_packs
            )?;
        }
        let others = report.unreferenced_packs - report.unindexed_needed_packs;
        if others > 0 && report.unindexed_needed_packs > 0 {
            // Below a tree node that no index names, verify cannot see what else is needed.
            outln!(
                "note: {others} other pack(s) are not referenced by any index; `backstop repair index` indexes them too (prune removes what no snapshot needs)",
            )?;
        } else if others > 0 {
            outln!(
                "note: {others} pack(s) are not referenced by any index and hold nothing a snapshot needs (left by an interrupted backup; harmless)",
            )?;
        }
        // Problems whose every affected snapshot already has a repaired copy: the repair that
        // is left is forgetting the damaged snapshots.
        let copied = |p: &&backstop_engine::verify::Problem| {
            p.repair == Some(Repair::Snapshots)
                && !p.affected.is_empty()
                && p.affected.iter().all(|a| a.repaired_as.is_some())
        };
        if report.problems.iter().any(|p| copied(&p)) {
            outln!(
                "damaged snapshots that have a repaired copy: once the copies are checked, \
                 `backstop repair snapshots --forget` forgets the damaged ones"
            )?;
        }
        let mut repairs: Vec<Repair> = report
            .problems
            .iter()
            .filter(|p| !copied(p))
            .filter_map(|p| p.repair)
            .filter(|r| *r != Repair::Forget)
            .collect();
        repairs.sort_by_key(|r| *r as u8);
        repairs.dedup();
        let lost: Vec<&str> = report
            .problems
            .iter()
            .filter(|p| p.repair == Some(Repair::Forget))
            .map(|p| p.object.as_str())
            .collect();
        if !repairs.is_empty() || !lost.is_empty() {
            let mut cmds: Vec<String> = repairs
                .iter()
                .map(|r| repair_command(*r).to_string())
                .collect();
            if !lost.is_empty() {
                // Last: an index repair can make nothing of an unreadable snapshot object.
                cmds.push(format!("backstop forget {}", lost.join(" ")));
            }
            outln!(
                "to get back what can be got back, run in this order: {}",
                cmds.join(", then ")
            )?;
        }
    }
    Ok(code)
}

/// The command line of a repair.
fn repair_command(r: Repair) -> &'static str {
    match r {
        Repair::Index => "backstop repair index",
        Repair::Snapshots => "backstop repair snapshots",
        Repair::Records => "backstop repair records",
        Repair::Forget => "backstop forget",
    }
}

/// `verify --restore-test`: drills one snapshot, or the latest of each source.
fn drill(
    ctx: &Ctx<'_>,
    repo: &backstop_engine::Repository,
    spec: Option<&str>,
) -> anyhow::Result<u8> {
    let g = ctx.args;
    let ix = crate::context::load_index(repo, g.quiet)?;
    let targets: Vec<(SnapshotId, Snapshot)> = match spec {
        Some(s) => vec![ctx.find_snapshot(repo, s)?],
        None => backstop_app::snapshots::drill_targets(repo, None)?,
    };
    let opts = backstop_app::verify::drill_options(
        std::env::temp_dir(),
        &crate::context::runtime(),
        Timestamp::now(),
    );
    let mut records = Vec::new();
    for (id, snap) in &targets {
        let bar = Bar::new(g.quiet || g.json);
        // A server database's dump is drilled on its source's server.
        let opts = backstop_engine::drill::DrillOptions {
            server: backstop_app::verify::server_drill(&ctx.config, &snap.source.name)?,
            rules: backstop_app::verify::source_rules(&ctx.config, &snap.source.name),
            ..opts.clone()
        };
        let r = restore_drill(&ix, *id, snap, &opts, &bar);
        bar.done();
        let r = r?;
        if !g.json && !g.quiet {
            outln!(
                "restore drill of snapshot {} ({}, {}): {} in {:.1} s",
                id.short(),
                snap.source.name,
                crate::output::time(snap.time, &ctx.config.time_zone()?),
                crate::output::drill_verdict(r.passed, &r.checks),
                r.duration_ms as f64 / 1000.0
            )?;
            crate::output::print_checks(&r.checks)?;
        }
        records.push(r);
    }
    if g.json {
        print_json(&records)?;
    }
    Ok(if records.iter().all(|r| r.passed) {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}
