//! `backstop status`

use backstop_engine::status::{StatusOptions, status};
use backstop_format::Timestamp;
use backstop_policy::format_age as age;

use crate::context::{Ctx, GlobalArgs};
use crate::output::print_json;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(g: &GlobalArgs, _a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let tz = ctx.config.time_zone()?;
    let now = Timestamp::now();
    let report = status(
        &repo,
        &StatusOptions {
            now,
            time_zone: tz.clone(),
            sources: ctx.config.expectations()?,
        },
    )?;
    let code = if report.needs_attention() {
        crate::exit::ATTENTION
    } else {
        crate::exit::OK
    };
    if g.json {
        print_json(&report)?;
        return Ok(code);
    }
    if report.sources.is_empty() {
        outln!("no sources: configure them in backstop.toml or run a backup")?;
    }
    let local = |t: Timestamp| crate::output::time(t, &tz);
    // How long each passed drill took (the report says when it ran).
    let drills = repo.verification()?;
    for s in &report.sources {
        outln!(
            "{} {}{}",
            if s.needs_attention() { "!!" } else { "ok" },
            s.name,
            if s.configured {
                ""
            } else {
                " (not in backstop.toml)"
            }
        )?;
        match (s.last_backup, s.last_backup_age_seconds) {
            (Some(t), Some(a)) => outln!(
                "   last backup    {} ({}), {} snapshot(s)",
                local(t),
                age(a),
                s.snapshots
            )?,
            _ => outln!("   last backup    never")?,
        }
        if let Some(sch) = &s.schedule {
            let next = s.next_run.map(local).unwrap_or_else(|| "-".into());
            outln!("   schedule       {sch}, next run {next}")?;
        }
        if let Some(h) = &s.database_health {
            outln!("   database       {h} at the last capture")?;
        }
        match &s.verified {
            Some(v) => outln!(
                "   verified       snapshot of {}: {}",
                local(v.snapshot_time),
                match drills.get(&v.snapshot) {
                    Some(r) => crate::output::drill(true, v.drilled, r.duration_ms, now),
                    None => format!("drill passed {}", age(v.age_seconds)),
                }
            )?,
            None => outln!("   verified       no restore drill passed yet")?,
        }
        for p in &s.problems {
            outln!("   PROBLEM        {p}")?;
        }
    }
    if report.unreadable_snapshots > 0 {
        outln!(
            "!! {} snapshot(s) cannot be read: run `backstop verify`",
            report.unreadable_snapshots
        )?;
    }
    Ok(code)
}
