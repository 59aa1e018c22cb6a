//! `backstop verify`

use backstop_engine::VerifyOptions;

use crate::context::{Ctx, GlobalArgs};
use crate::output::{Bar, bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also read every pack and check every chunk against its id
    #[arg(long)]
    pub read_data: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let bar = Bar::new(g.quiet || g.json);
    let report = backstop_engine::verify(
        &repo,
        &VerifyOptions {
            read_data: a.read_data,
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
