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
    // 3-2-1: where each source's newest snapshot is held, against its rules.
    let copies = match ctx.repo_location() {
        Some(loc) => backstop_app::copies::copies(
            &ctx.config,
            &repo,
            &loc,
            ctx.passphrase()?.as_deref(),
            &ctx.cache_use(),
            now,
        )?,
        None => Vec::new(),
    };
    let copies_of = |name: &str| copies.iter().find(|c| c.source == name);
    let attention = |s: &backstop_engine::status::SourceStatus| {
        s.needs_attention() || copies_of(&s.name).is_some_and(|c| !c.problems.is_empty())
    };
    let code = if report.needs_attention() || copies.iter().any(|c| !c.problems.is_empty()) {
        crate::exit::ATTENTION
    } else {
        crate::exit::OK
    };
    if g.json {
        let mut value = serde_json::to_value(&report)?;
        for s in value["sources"].as_array_mut().into_iter().flatten() {
            let Some(c) = s["name"].as_str().and_then(copies_of) else {
                continue;
            };
            if !c.problems.is_empty() {
                if s["state"] == "ok" {
                    s["state"] = "copies".into();
                }
                for p in &c.problems {
                    s["problems"]
                        .as_array_mut()
                        .expect("problems is a list")
                        .push(p.as_str().into());
                }
            }
            s["copies"] = serde_json::to_value(c)?;
        }
        print_json(&value)?;
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
            if attention(s) { "!!" } else { "ok" },
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
        if let Some(v) = &s.validation {
            outln!(
                "   validation     {} at the last capture",
                match v.failing.len() {
                    0 => format!("all {} rules hold", v.rules),
                    n => format!("{n} of {} rules failing", v.rules),
                }
            )?;
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
        if let Some(c) = copies_of(&s.name) {
            let kinds: Vec<&str> = c
                .repositories
                .iter()
                .filter(|r| r.holds_newest)
                .map(|r| r.storage)
                .collect();
            outln!(
                "   copies         {} hold the newest snapshot ({}){}",
                c.copies,
                kinds.join(", "),
                if c.offsite {
                    ", one offsite"
                } else {
                    ", none offsite"
                }
            )?;
            for r in &c.repositories {
                let place = r.name.clone().unwrap_or_else(|| r.location.clone());
                let newest = match r.newest_age_seconds {
                    Some(a) if r.holds_newest => format!("newest ({})", age(a)),
                    Some(a) => format!("behind: its newest is {}", age(a)),
                    None if r.error.is_some() => "cannot be read".into(),
                    None => "no snapshot".into(),
                };
                let verified = match r.newest_verified_age_seconds {
                    Some(a) => format!("verified snapshot {}", age(a)),
                    None => "no drill passed there".into(),
                };
                outln!("                  {place}: {newest}, {verified}")?;
            }
        }
        for p in s
            .problems
            .iter()
            .chain(copies_of(&s.name).into_iter().flat_map(|c| &c.problems))
        {
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
