//! Stats: where the space goes, so that storage can be watched.
//!
//! Sizes of the repository's objects by kind, what each source's snapshots use (a chunk's
//! stored size is its share of its compressed frame), the deduplication ratio (bytes the
//! snapshots hold over bytes stored), what backups added per day, and the free space where the
//! backend can tell.

use std::collections::{BTreeMap, HashSet};

use backstop_format::{ChunkId, Timestamp};
use backstop_storage::Kind;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::repository::content::Loader;
use crate::repository::index::{IdSet, Index};

/// What to report.
#[derive(Debug, Clone)]
pub struct StatsOptions {
    pub now: Timestamp,
    /// Days are counted in this zone.
    pub time_zone: TimeZone,
    /// How many days of growth to report.
    pub days: u32,
}

/// One source's share.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStats {
    pub name: String,
    pub snapshots: usize,
    pub newest: Option<Timestamp>,
    /// Content bytes of the newest snapshot.
    pub newest_bytes: u64,
    /// Content bytes of all its snapshots together (what plain copies would take).
    pub logical_bytes: u64,
    /// Stored bytes of the chunks its snapshots use (chunks shared with other sources count
    /// here and there).
    pub stored_bytes: u64,
    /// Stored bytes used by this source alone.
    pub exclusive_bytes: u64,
}

/// What backups added on one day.
#[derive(Debug, Clone, Serialize)]
pub struct DayGrowth {
    pub date: Date,
    pub snapshots: usize,
    /// Stored bytes the backups of that day added (before any later prune).
    pub bytes_added: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    pub repository: String,
    /// All objects: packs, index files, snapshots, records, keys, locks.
    pub total_bytes: u64,
    pub pack_bytes: u64,
    pub index_bytes: u64,
    pub snapshot_bytes: u64,
    pub record_bytes: u64,
    pub snapshots: usize,
    pub chunks: usize,
    /// Stored bytes that no snapshot uses (reclaimed by `prune`).
    pub unused_bytes: u64,
    /// Content bytes of every snapshot over stored pack bytes.
    pub dedup_ratio: f64,
    pub sources: Vec<SourceStats>,
    /// The last `days` days, oldest first, days without backups included.
    pub growth: Vec<DayGrowth>,
    /// Average stored bytes added per day over those days.
    pub growth_per_day: u64,
    /// Free space where the repository is, when the backend can tell.
    pub free_bytes: Option<u64>,
    /// At the average growth, days until the free space is used up.
    pub days_until_full: Option<u64>,
}

pub fn stats(repo: &Repository, opts: &StatsOptions) -> Result<StatsReport> {
    let st = repo.storage();
    let size_of = |k: Kind| -> Result<u64> { Ok(st.list(k)?.iter().map(|o| o.size).sum()) };
    let pack_bytes = size_of(Kind::Pack)?;
    let index_bytes = size_of(Kind::Index)?;
    let snapshot_bytes = size_of(Kind::Snapshot)?;
    let record_bytes = size_of(Kind::Record)?;
    let total_bytes =
        pack_bytes + index_bytes + snapshot_bytes + record_bytes + size_of(Kind::Key)?;
    let index = Index::load(repo)?.index;
    let snaps = repo.snapshots()?.readable;
    let loader = Loader::new(repo, &index);

    let mut per_source: BTreeMap<String, (SourceStats, IdSet, HashSet<ChunkId>)> = BTreeMap::new();
    for (_, snap) in &snaps {
        let (s, used, walked) = per_source
            .entry(snap.source.name.clone())
            .or_insert_with(|| {
                let s = SourceStats {
                    name: snap.source.name.clone(),
                    ..SourceStats::default()
                };
                (s, IdSet::default(), HashSet::new())
            });
        s.snapshots += 1;
        s.logical_bytes += snap.stats.bytes;
        if s.newest.is_none_or(|t| t <= snap.time) {
            s.newest = Some(snap.time);
            s.newest_bytes = snap.stats.bytes;
        }
        // A damaged snapshot counts with what can be read of it; verify reports the damage.
        let _ = loader.collect_snapshot_ids(snap, used, walked);
    }
    let stored = |id: &ChunkId| -> u64 {
        index.get(id).map_or(0, |l| {
            u64::from(l.length) * u64::from(l.raw_length) / u64::from(l.frame_length.max(1))
        })
    };
    let mut all = IdSet::default();
    for (_, used, _) in per_source.values() {
        all.extend(used.iter().copied());
    }
    let mut sources = Vec::new();
    for (_, (mut s, used, _)) in per_source {
        s.stored_bytes = used.iter().map(stored).sum();
        sources.push((s, used));
    }
    // Exclusive: used by one source and no other.
    for i in 0..sources.len() {
        let exclusive: u64 = sources[i]
            .1
            .iter()
            .filter(|id| {
                sources
                    .iter()
                    .enumerate()
                    .all(|(j, (_, u))| j == i || !u.contains(id))
            })
            .map(stored)
            .sum();
        sources[i].0.exclusive_bytes = exclusive;
    }
    // Unused space per pack: its size times the share of its chunks' stored bytes that no
    // snapshot uses (so headers and trailers of a fully used pack count as used, as in prune).
    let mut per_pack: std::collections::HashMap<u32, (u64, u64)> = Default::default();
    for (id, l) in index.iter() {
        let e = per_pack.entry(l.pack).or_default();
        let s = stored(id);
        e.0 += s;
        if all.contains(id) {
            e.1 += s;
        }
    }
    let unused_bytes: u64 = per_pack
        .iter()
        .map(|(&pack, &(total, used))| {
            let size = index.pack(pack).size;
            size - (size * used).checked_div(total).unwrap_or(0)
        })
        .sum();
    let logical: u64 = snaps.iter().map(|(_, s)| s.stats.bytes).sum();

    let today = opts.now.to_zoned(opts.time_zone.clone()).date();
    let first = today
        .checked_sub(jiff::Span::new().days(i64::from(opts.days.max(1)) - 1))
        .map_err(|e| Error::Internal(format!("date arithmetic: {e}")))?;
    let mut growth: BTreeMap<Date, DayGrowth> = BTreeMap::new();
    let mut d = first;
    while d <= today {
        growth.insert(
            d,
            DayGrowth {
                date: d,
                snapshots: 0,
                bytes_added: 0,
            },
        );
        d = d
            .tomorrow()
            .map_err(|e| Error::Internal(format!("date arithmetic: {e}")))?;
    }
    for (_, snap) in &snaps {
        let day = snap.time.to_zoned(opts.time_zone.clone()).date();
        if let Some(g) = growth.get_mut(&day) {
            g.snapshots += 1;
            g.bytes_added += snap.stats.bytes_added;
        }
    }
    let growth: Vec<DayGrowth> = growth.into_values().collect();
    let growth_per_day = growth.iter().map(|g| g.bytes_added).sum::<u64>() / growth.len() as u64;
    let free_bytes = st.free_space();
    Ok(StatsReport {
        repository: st.location(),
        total_bytes,
        pack_bytes,
        index_bytes,
        snapshot_bytes,
        record_bytes,
        snapshots: snaps.len(),
        chunks: index.len(),
        unused_bytes,
        dedup_ratio: if pack_bytes == 0 {
            0.0
        } else {
            logical as f64 / pack_bytes as f64
        },
        sources: sources.into_iter().map(|(s, _)| s).collect(),
        growth,
        growth_per_day,
        free_bytes,
        days_until_full: free_bytes
            .filter(|_| growth_per_day > 0)
            .map(|f| f / growth_per_day),
    })
}
