//! `backstop stats`

use backstop_engine::{StatsOptions, stats};
use backstop_format::Timestamp;

use crate::context::{Ctx, GlobalArgs};
use crate::output::{bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Days of growth to show
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub days: u32,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let tz = ctx.config.time_zone()?;
    let r = stats(
        &repo,
        &StatsOptions {
            now: Timestamp::now(),
            time_zone: tz,
            days: a.days.max(1),
        },
    )?;
    if g.json {
        print_json(&r)?;
        return Ok(crate::exit::OK);
    }
    outln!("repository   {}", r.repository)?;
    outln!(
        "stored       {} ({} in packs, {} index, {} snapshots and records)",
        bytes(r.total_bytes),
        bytes(r.pack_bytes),
        bytes(r.index_bytes),
        bytes(r.snapshot_bytes + r.record_bytes)
    )?;
    outln!(
        "snapshots    {} holding {} chunks; dedup ratio {:.1}x (content of all snapshots / stored)",
        r.snapshots,
        r.chunks,
        r.dedup_ratio
    )?;
    outln!(
        "unused       {} (reclaimed by `backstop prune`)",
        bytes(r.unused_bytes)
    )?;
    match r.free_bytes {
        Some(f) => outln!(
            "free space   {}{}",
            bytes(f),
            r.days_until_full
                .map(|d| if d > 3650 {
                    " (more than 10 years at the average growth)".to_string()
                } else {
                    format!(" (about {d} days at the average growth)")
                })
                .unwrap_or_default()
        )?,
        None => outln!("free space   unknown for this kind of storage")?,
    }
    outln!()?;
    outln!(
        "{:<20} {:>9} {:>12} {:>12} {:>12}  NEWEST",
        "SOURCE",
        "SNAPSHOTS",
        "CONTENT",
        "STORED",
        "ALONE"
    )?;
    for s in &r.sources {
        outln!(
            "{:<20} {:>9} {:>12} {:>12} {:>12}  {}",
            s.name,
            s.snapshots,
            bytes(s.logical_bytes),
            bytes(s.stored_bytes),
            bytes(s.exclusive_bytes),
            s.newest.map(|t| t.to_string()).unwrap_or_default()
        )?;
    }
    outln!()?;
    outln!(
        "growth over the last {} days: {} a day on average",
        r.growth.len(),
        bytes(r.growth_per_day)
    )?;
    for d in r.growth.iter().filter(|d| d.snapshots > 0) {
        outln!(
            "  {}  {:>3} backup(s)  +{}",
            d.date,
            d.snapshots,
            bytes(d.bytes_added)
        )?;
    }
    Ok(crate::exit::OK)
}
