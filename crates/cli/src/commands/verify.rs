//! `backstop verify`

use backstop_engine::VerifyOptions;
use backstop_engine::drill::{DrillOptions, restore_drill};
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
    let repo = ctx.open()?;
    if a.restore_test {
        return drill(&ctx, &repo, a.snapshot.as_deref());
    }
    let bar = Bar::new(g.quiet || g.json);
    let report = backstop_engine::verify(
        &repo,
        &VerifyOptions {
            read_data: a.read_data,
            host: crate::context::host(),
        },
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
        for a in &p.affected {
            let shown: Vec<&str> = a.items.iter().take(5).map(String::as_str).collect();
            let more = a.items.len().saturating_sub(shown.len());
            outln!(
                "  affects snapshot {} of {}: {}{}",
                a.snapshot.short(),
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
        if report.unreferenced_packs > 0 {
            outln!(
                "note: {} pack(s) are not referenced by any index (left by an interrupted backup; harmless)",
                report.unreferenced_packs
            )?;
        }
    }
    Ok(code)
}

/// `verify --restore-test`: drills one snapshot, or the latest of each source.
fn drill(
    ctx: &Ctx<'_>,
    repo: &backstop_engine::Repository,
    spec: Option<&str>,
) -> anyhow::Result<u8> {
    let g = ctx.args;
    let index = crate::context::load_index(repo, g.quiet)?;
    let targets: Vec<(SnapshotId, Snapshot)> = match spec {
        Some(s) => vec![ctx.find_snapshot(repo, s)?],
        None => backstop_engine::spec::drill_targets(&repo.snapshots()?.0, None),
    };
    if targets.is_empty() {
        return Err(backstop_engine::Error::NotFound(
            "the repository has no snapshots to drill".into(),
        )
        .into());
    }
    let opts = DrillOptions {
        scratch: std::env::temp_dir(),
        time: Timestamp::now(),
        host: crate::context::host(),
    };
    let mut records = Vec::new();
    for (id, snap) in &targets {
        let bar = Bar::new(g.quiet || g.json);
        let r = restore_drill(repo, &index, *id, snap, &opts, &bar);
        bar.done();
        let r = r?;
        if !g.json && !g.quiet {
            outln!(
                "restore drill of snapshot {} ({}, {}): {} in {:.1} s",
                id.short(),
                snap.source.name,
                snap.time,
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
