//! `backstop stats`

use backstop_engine::{StatsOptions, stats};
use backstop_format::Timestamp;

use crate::context::{Ctx, GlobalArgs};
use crate::output::{bytes, print_json, time};
use jiff::tz::TimeZone;

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
    let now = Timestamp::now();
    let r = stats(
        &repo,
        &StatsOptions {
            now,
            time_zone: tz.clone(),
            days: a.days.max(1),
        },
    )?;
    if g.json {
        print_json(&r)?;
        return Ok(crate::exit::OK);
    }
    let snaps = repo.snapshots()?.readable;
    let times: Vec<Timestamp> = snaps.iter().map(|(_, s)| s.time).collect();
    let added: Vec<(Timestamp, u64)> = snaps
        .iter()
        .map(|(_, s)| (s.time, s.stats.bytes_added))
        .collect();
    let growth = Growth::of(&added, now, a.days.max(1));
    outln!("repository   {}", r.repository)?;
    outln!(
        "stored       {} ({} in packs, {} index, {} snapshots and records)",
        bytes(r.total_bytes),
        bytes(r.pack_bytes),
        bytes(r.index_bytes),
        bytes(r.snapshot_bytes + r.record_bytes)
    )?;
    let content: u64 = r.sources.iter().map(|s| s.logical_bytes).sum();
    outln!(
        "snapshots    {} holding {} chunks: {} of content in {} of packs, {:.1}x smaller (deduplication and compression together)",
        r.snapshots,
        r.chunks,
        bytes(content),
        bytes(r.pack_bytes),
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
            match growth.per_day() {
                Some(0) => " (no growth in that time)".to_string(),
                Some(per_day) if f / per_day > 3650 =>
                    " (more than 10 years at the average growth)".to_string(),
                Some(per_day) => format!(" (about {} days at the average growth)", f / per_day),
                None => " (no estimate of when it is full: too little history)".to_string(),
            }
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
            s.newest.map(|t| time(t, &tz)).unwrap_or_default()
        )?;
    }
    outln!()?;
    outln!("{}", growth.headline(times.first().copied(), &tz))?;
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

/// How fast the repository grows, measured over the history there is: the last `days` days, or
/// since the first backup when the history is shorter. The first backup is the starting point,
/// not growth, so a single backup (or less than a day of history) gives no rate at all rather
/// than one backup spread over a month.
#[derive(Debug, PartialEq)]
struct Growth {
    /// Stored bytes added after the start.
    added: u64,
    /// Seconds from the start to now.
    span: i64,
    /// Whether the history is shorter than the window asked for.
    since_first: bool,
    days: u32,
}

const DAY: i64 = 86_400;

impl Growth {
    /// `snaps`: each snapshot's time and stored bytes added, oldest first.
    fn of(snaps: &[(Timestamp, u64)], now: Timestamp, days: u32) -> Self {
        let window = now.as_second() - i64::from(days) * DAY;
        let (start, since_first) = match snaps.first() {
            Some((first, _)) if first.as_second() > window => (first.as_second(), true),
            _ => (window, false),
        };
        let added = snaps
            .iter()
            .filter(|(t, _)| t.as_second() > start || (!since_first && t.as_second() == start))
            .map(|(_, b)| b)
            .sum();
        // No backup at all is no history at all.
        let span = match snaps.is_empty() {
            true => 0,
            false => (now.as_second() - start).max(0),
        };
        Self {
            added,
            span,
            since_first,
            days,
        }
    }

    /// Stored bytes a day, when the history is long enough to tell.
    fn per_day(&self) -> Option<u64> {
        (self.span >= DAY)
            .then(|| (u128::from(self.added) * DAY as u128 / self.span as u128) as u64)
    }

    fn headline(&self, first: Option<Timestamp>, tz: &TimeZone) -> String {
        match (self.per_day(), first) {
            (_, None) => "growth       no backups yet".into(),
            (None, Some(first)) => format!(
                "growth       too little history for a daily average yet: the first backup was {} ({}), and an average needs a day",
                time(first, tz),
                backstop_policy::format_age(self.span)
            ),
            (Some(per_day), Some(first)) if self.since_first => format!(
                "growth       {} a day on average since the first backup ({}, {:.1} days ago; the first backup itself is not growth)",
                bytes(per_day),
                time(first, tz),
                self.span as f64 / DAY as f64
            ),
            (Some(per_day), Some(_)) => format!(
                "growth       {} a day on average over the last {} days",
                bytes(per_day),
                self.days
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn one_backup_is_no_growth_rate() {
        let now = at("2026-12-05T12:00:00Z");
        let g = Growth::of(&[(at("2026-12-05T09:00:00Z"), 30 << 20)], now, 30);
        assert_eq!(g.per_day(), None, "{g:?}");
        assert!(
            g.headline(Some(at("2026-12-05T09:00:00Z")), &TimeZone::UTC)
                .contains("too little history")
        );
        let none = Growth::of(&[], now, 30);
        assert_eq!(none.per_day(), None);
    }

    #[test]
    fn a_short_history_is_measured_over_its_own_span() {
        let now = at("2026-12-05T12:00:00Z");
        // The first backup (1 GiB) is where history starts; then 10 MiB on each of four days.
        let mut snaps = vec![(at("2026-12-01T12:00:00Z"), 1 << 30)];
        for d in 2..=5 {
            snaps.push((at(&format!("2026-12-0{d}T11:00:00Z")), 10 << 20));
        }
        let g = Growth::of(&snaps, now, 30);
        assert_eq!(g.per_day(), Some(10 << 20), "{g:?}");
        assert!(g.since_first);
        let h = g.headline(Some(snaps[0].0), &TimeZone::UTC);
        assert!(
            h.contains("since the first backup (2026-12-01 12:00:00, 4.0 days ago"),
            "{h}"
        );
    }

    #[test]
    fn a_long_history_is_measured_over_the_window() {
        let now = at("2026-12-31T00:00:00Z");
        let snaps = vec![
            (at("2026-10-01T00:00:00Z"), 1 << 30),
            (at("2026-12-22T00:00:00Z"), 7 << 20),
            (at("2026-12-30T00:00:00Z"), 3 << 20),
        ];
        let g = Growth::of(&snaps, now, 10);
        assert_eq!(g.per_day(), Some(1 << 20), "{g:?}");
        assert!(!g.since_first);
        assert!(
            g.headline(Some(snaps[0].0), &TimeZone::UTC)
                .contains("over the last 10 days")
        );
    }
}
