//! `backstop object-lock extend`: lengthens the retention of every object of a repository made
//! with `init --object-lock-days N`, so that the packs today's snapshots still use stay locked
//! after their first retention ends (engine `ops::object_lock`; docs/s3.md, "History a
//! compromised machine cannot delete"). The daemon runs it every half of N days.

use backstop_engine::ops::object_lock::{ExtendOptions, extend_retention};
use backstop_format::Timestamp;

use crate::context::{Ctx, GlobalArgs};
use crate::output::{Bar, invalid_is_usage, print_json, time};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Lengthen the retention of every object (but locks) to now plus the repository's days
    /// (one request each); run it more often than every N days
    Extend(ExtendArgs),
}

#[derive(clap::Args, Debug)]
pub struct ExtendArgs {
    /// Days from now, at least the repository's own [default: the repository's]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: Option<u32>,
    /// Count the objects, without a request
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let What::Extend(a) = a.what;
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let tz = ctx.config.time_zone()?;
    let opts = ExtendOptions {
        now: Timestamp::now(),
        days: a.days,
        dry_run: a.dry_run,
    };
    let bar = Bar::new(g.quiet || g.json);
    let report = extend_retention(&repo, &opts, &bar).map_err(|e| invalid_is_usage(e.into()));
    bar.done();
    let report = report?;
    if g.json {
        print_json(&report)?;
    } else if !g.quiet {
        let total: u64 = report.extended.values().sum();
        let kinds: Vec<String> = report
            .extended
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        outln!(
            "{} {total} objects ({}) retained until {} ({}, {} days){}",
            if report.dry_run {
                "would lengthen"
            } else {
                "lengthened"
            },
            kinds.join(", "),
            time(report.until, &tz),
            report.mode,
            report.days,
            match report.already_longer {
                0 => String::new(),
                n => format!("; {n} already retained longer"),
            }
        )?;
    }
    Ok(crate::exit::OK)
}
