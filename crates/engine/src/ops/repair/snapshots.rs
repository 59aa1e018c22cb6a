//! `repair snapshots`: a snapshot part of which is lost is copied into a new snapshot of what
//! can still be read.
//!
//! A chunk or tree node is *usable* when the index names it and its pack is stored with the
//! size the index records (with `read_data`, every content is also read and checked against
//! its hash, which finds damaged bytes inside intact-looking packs). A snapshot with anything
//! unusable gets a *repaired* copy:
//!
//! - an item whose content is partly lost keeps its size, the bytes that can be read, and zeros
//!   where bytes are lost (so every byte that is there stays at its offset: a database keeps
//!   each page in its place); the lost byte ranges are recorded. An item nothing of which can be
//!   read is left out and recorded as dropped;
//! - an item list that is partly lost keeps every line that can be read whole; what lies in the
//!   lost part is recorded as a loss of `(item list)`, with the items around it;
//! - the copy has the original's source, time, kind, tags and description, and
//!   `repaired: {from, time, losses}`; a pin of the original is carried over.
//!
//! The damaged snapshot is kept (a person forgets it once the copy is checked), and a snapshot
//! that already has a repaired copy is not repaired again. Writing follows the backup order
//! (packs, index, then the snapshot last), so a killed repair leaves at most unreferenced packs.

use std::collections::{HashMap, HashSet};

use backstop_format::manifest::{Item, ItemKind, Loss, Repaired, Snapshot, SnapshotStats};
use backstop_format::record::{PIN, Record};
use backstop_format::tree::{ChunkRef, Content, TreeNode, decode_patches};
use backstop_format::{ChunkId, PackId, SnapshotId, Timestamp};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ops::backup::ItemList;
use crate::ops::repair::index::NamedProblem;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::repository::SnapshotList;
use crate::repository::content::Loader;
use crate::repository::index::{Index, LoadedIndex};
use crate::repository::indexed::Indexed;
use crate::repository::lock::Lock;
use crate::store::chunker::Batch;
use crate::store::{ChunkStore, TreeBuilder};

/// Zeros stand in for lost bytes in pieces of at most this size (one stored chunk serves all).
const ZERO_CHUNK: usize = 64 << 10;
/// The name of the item list in losses.
pub const ITEM_LIST: &str = "(item list)";

/// How to repair snapshots.
#[derive(Debug, Clone)]
pub struct RepairSnapshotsOptions {
    pub host: String,
    /// When the repair runs (recorded in each repaired snapshot).
    pub time: Timestamp,
    pub program: String,
    /// Find what would be repaired, write nothing.
    pub dry_run: bool,
    /// Also read every content and check it against its hash.
    pub read_data: bool,
    /// Then forget each damaged snapshot that has a repaired copy (delete it and its records).
    pub forget_damaged: bool,
}

/// One repaired (or, in a dry run, damaged) snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedSnapshot {
    pub from: SnapshotId,
    /// The new snapshot; `None` in a dry run.
    pub id: Option<SnapshotId>,
    pub source: String,
    pub time: Timestamp,
    /// Items in the repaired snapshot.
    pub items: u64,
    pub losses: Vec<Loss>,
}

/// What `repair snapshots` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairSnapshotsSummary {
    pub dry_run: bool,
    /// Snapshots checked.
    pub snapshots: usize,
    pub repaired: Vec<RepairedSnapshot>,
    /// Damaged snapshots that already have a repaired copy.
    pub already_repaired: Vec<SnapshotId>,
    /// Snapshots nothing of which can be read (the object itself, or every line of its item
    /// list): no copy is made.
    pub unreadable: Vec<NamedProblem>,
    /// Stored bytes the repaired snapshots added.
    pub bytes_added: u64,
    /// Damaged snapshots forgotten (or, in a dry run, that would be) because they have a
    /// repaired copy.
    pub forgotten: Vec<SnapshotId>,
}

/// A stretch of a content: a chunk that is usable, or bytes that are lost.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Chunk(ChunkRef),
    Lost(u64),
}

/// Repairs every snapshot with unusable parts (see the module documentation).
pub fn repair_snapshots(
    repo: &Repository,
    opts: &RepairSnapshotsOptions,
    progress: &dyn Progress,
) -> Result<RepairSnapshotsSummary> {
    let lock = Lock::acquire(
        repo,
        !opts.dry_run,
        "repair snapshots",
        &opts.host,
        opts.time,
    )?;
    let LoadedIndex { index, unreadable } = Index::load(repo)?;
    if let Some(problem) = unreadable.first() {
        return Err(index_first(problem.to_string()));
    }
    let stored = repo.pack_sizes()?;
    // Chunks in packs no index names are not lost, only unindexed: those are for `repair
    // index`, and a copy made now would lose them for nothing.
    let unindexed: HashSet<ChunkId> = stored
        .iter()
        .filter_map(|(name, &size)| PackId::from_hex(name).ok().map(|id| (id, size)))
        .filter(|(id, _)| index.pack_position_of(id).is_none())
        .filter_map(|(id, size)| crate::ops::repair::index::read_trailer(repo, id, size).ok())
        .flat_map(|p| p.blobs.into_iter().map(|b| b.id))
        .collect();
    let bad_packs: HashSet<u32> = index
        .packs()
        .iter()
        .enumerate()
        .filter(|(_, p)| stored.get(&p.id.to_hex()) != Some(&p.size))
        .map(|(i, _)| u32::try_from(i).expect("fewer than 4 billion packs"))
        .collect();
    let usable = |id: &ChunkId| index.get(id).is_some_and(|l| !bad_packs.contains(&l.pack));
    let loader = Loader::new(repo, &index);
    let walker = Walker {
        loader,
        usable: &usable,
        unindexed: &unindexed,
        unindexed_needed: std::cell::Cell::new(0),
    };
    let SnapshotList {
        readable: snaps,
        unreadable: bad,
    } = repo.snapshots()?;
    let mut summary = RepairSnapshotsSummary {
        dry_run: opts.dry_run,
        snapshots: snaps.len() + bad.len(),
        unreadable: bad
            .into_iter()
            .map(|(name, e)| NamedProblem {
                name,
                error: e.to_string(),
            })
            .collect(),
        ..RepairSnapshotsSummary::default()
    };
    let repaired_from: HashSet<SnapshotId> = snaps
        .iter()
        .filter_map(|(_, s)| s.repaired.as_ref().map(|r| r.from))
        .collect();
    let pinned: HashSet<SnapshotId> = repo
        .marks()?
        .into_iter()
        .filter(|(_, m)| m.pinned)
        .map(|(id, _)| id)
        .collect();
    // Contents found whole, by tree root: shared contents are checked once.
    let mut whole: HashSet<ChunkId> = HashSet::new();
    // The store deduplicates against nothing: a zero chunk "found" in a lost pack would be
    // lost again. It is given only zeros, tree nodes and item lists: a few small objects.
    let empty = Indexed::empty(repo);
    let mut store = ChunkStore::new(&empty);
    let mut plans: Vec<(&SnapshotId, &Snapshot, Plan)> = Vec::new();
    progress.phase("repair snapshots: checking", None);
    for (sid, snap) in &snaps {
        progress.item(&format!("snapshot {}", sid.short()));
        let Some(plan) = walker.check(snap, opts.read_data, &mut whole) else {
            continue;
        };
        if repaired_from.contains(sid) {
            summary.already_repaired.push(*sid);
            continue;
        }
        if plan.items.is_empty() {
            // Not one item could be read: a copy would hold nothing but the list of losses.
            summary.unreadable.push(NamedProblem {
                name: sid.to_hex(),
                error: "no part of its item list can be read".into(),
            });
            continue;
        }
        plans.push((sid, snap, plan));
    }
    // Before anything is written.
    let needed = walker.unindexed_needed.get();
    if needed > 0 {
        return Err(index_first(format!(
            "{needed} chunk(s) that snapshots need are in packs no index names"
        )));
    }
    let mut pending: Vec<(RepairedSnapshot, Snapshot)> = Vec::new();
    for (sid, snap, plan) in plans {
        progress.item(&format!("repairing snapshot {}", sid.short()));
        let mut r = RepairedSnapshot {
            from: *sid,
            id: None,
            source: snap.source.name.clone(),
            time: snap.time,
            items: 0,
            losses: Vec::new(),
        };
        if opts.dry_run {
            r.losses = plan.losses();
            r.items = (plan.items.len() - r.losses.iter().filter(|l| l.dropped).count()) as u64;
            summary.repaired.push(r);
            continue;
        }
        let copy = walker.rebuild(&mut store, snap, plan, opts, &mut r)?;
        pending.push((r, copy));
    }
    if opts.dry_run {
        drop(store);
        if opts.forget_damaged {
            summary.forgotten = summary.already_repaired.clone();
            summary
                .forgotten
                .extend(summary.repaired.iter().map(|r| r.from));
        }
        lock.release()?;
        return Ok(summary);
    }
    // Packs and their index files first; each snapshot after (the commit point).
    summary.bytes_added = store.finish()?.bytes_added;
    for (mut r, mut copy) in pending {
        copy.stats.bytes_added = 0;
        let id = repo.write_snapshot(&copy)?;
        if pinned.contains(&r.from) {
            repo.write_record(&Record::mark(
                PIN,
                id,
                opts.time,
                &opts.host,
                Some("backstop repair".into()),
                Some(format!("repaired copy of pinned snapshot {}", r.from)),
            ))?;
        }
        r.id = Some(id);
        summary.repaired.push(r);
    }
    if opts.forget_damaged {
        let copied: Vec<SnapshotId> = summary
            .already_repaired
            .iter()
            .copied()
            .chain(summary.repaired.iter().map(|r| r.from))
            .collect();
        forget(repo, &copied)?;
        summary.forgotten = copied;
    }
    lock.release()?;
    Ok(summary)
}

/// Deletes snapshots, each before its records (as `forget` does: a crash in between leaves
/// records of a snapshot that is gone, which prune removes).
fn forget(repo: &Repository, ids: &[SnapshotId]) -> Result<()> {
    let (records, _) = repo.records_checked()?;
    for id in ids {
        repo.storage()
            .delete(backstop_storage::Kind::Snapshot, &id.to_hex())?;
        for (name, _) in records.iter().filter(|(_, r)| r.snapshot == *id) {
            repo.storage()
                .delete(backstop_storage::Kind::Record, name)?;
        }
    }
    Ok(())
}

/// What is lost in one snapshot: each item with the pieces of its content when any are lost
/// (`None`: the item is whole), and the item list's losses.
struct Plan {
    items: Vec<(Item, Option<Vec<Piece>>)>,
    list_loss: Option<Loss>,
}

impl Plan {
    /// The losses as known before reading (a dry run).
    fn losses(&self) -> Vec<Loss> {
        let mut out: Vec<Loss> = self.list_loss.iter().cloned().collect();
        for (item, pieces) in &self.items {
            if let Some(p) = pieces {
                let ranges = lost_ranges(p);
                let dropped = ranges.iter().map(|[a, b]| b - a).sum::<u64>() >= item.size;
                out.push(Loss {
                    path: item.path.clone(),
                    size: item.size,
                    ranges,
                    dropped,
                    detail: None,
                });
            }
        }
        out
    }
}

fn lost_ranges(pieces: &[Piece]) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    let mut pos = 0;
    for p in pieces {
        let n = match p {
            Piece::Chunk(r) => r.size,
            Piece::Lost(n) => {
                add_range(&mut out, pos, pos + n);
                *n
            }
        };
        pos += n;
    }
    out
}

fn add_range(ranges: &mut Vec<[u64; 2]>, a: u64, b: u64) {
    match ranges.last_mut() {
        Some(last) if last[1] == a => last[1] = b,
        _ => ranges.push([a, b]),
    }
}

/// Refuses to repair snapshots before the index is whole.
fn index_first(why: String) -> Error {
    Error::Integrity(format!(
        "{why}: run `backstop repair index` first, so that nothing the packs still hold is \
         counted as lost"
    ))
}

struct Walker<'a> {
    loader: Loader<'a>,
    usable: &'a dyn Fn(&ChunkId) -> bool,
    /// Chunks held by packs no index names.
    unindexed: &'a HashSet<ChunkId>,
    /// How many unusable chunks and nodes were among those.
    unindexed_needed: std::cell::Cell<usize>,
}

impl Walker<'_> {
    /// The plan for one snapshot, or `None` when nothing of it is lost.
    fn check(
        &self,
        snap: &Snapshot,
        read_data: bool,
        whole: &mut HashSet<ChunkId>,
    ) -> Option<Plan> {
        let list = self.pieces(&snap.items);
        let lost_list = list.iter().any(|p| matches!(p, Piece::Lost(_)));
        let (items, list_loss) = if lost_list {
            self.read_list(&snap.items, &list)
        } else {
            match self.loader.read_items(&snap.items) {
                Ok(items) => (items, None),
                // Damaged bytes in the item list: read it chunk by chunk.
                Err(_) => self.read_list(&snap.items, &list),
            }
        };
        let mut damaged = list_loss.is_some();
        let mut planned = Vec::with_capacity(items.len());
        for item in items {
            let pieces = match &item.content {
                Some(c) if !c.tree.is_some_and(|t| whole.contains(&t.id)) => {
                    let pieces = self.pieces(c);
                    let lost = pieces.iter().any(|p| matches!(p, Piece::Lost(_)));
                    if lost || (read_data && !self.reads_whole(c)) {
                        damaged = true;
                        Some(pieces)
                    } else {
                        whole.extend(c.tree.map(|t| t.id));
                        None
                    }
                }
                _ => None,
            };
            planned.push((item, pieces));
        }
        damaged.then_some(Plan {
            items: planned,
            list_loss,
        })
    }

    /// Whether a content reads back whole and matches its hash.
    fn reads_whole(&self, c: &Content) -> bool {
        let mut sink = HashSink(blake3::Hasher::new());
        self.loader
            .write_content(c, &mut sink, &crate::progress::NoProgress)
            .is_ok()
            && sink.0.finalize().to_hex().as_str() == c.hash
    }

    /// A content as usable chunks and lost stretches, in order.
    fn pieces(&self, c: &Content) -> Vec<Piece> {
        let mut out = Vec::new();
        if let Some(d) = &c.delta {
            self.delta_pieces(c, d, &mut out);
        } else {
            for r in &c.chunks {
                self.chunk(r, &mut out);
            }
            if let Some(root) = c.tree {
                self.node(&root, &mut out);
            }
        }
        let covered: u64 = out
            .iter()
            .map(|p| match p {
                Piece::Chunk(r) => r.size,
                Piece::Lost(n) => *n,
            })
            .sum();
        if covered != c.size {
            // A description that does not add up is not to be trusted in any part.
            return vec![Piece::Lost(c.size)];
        }
        out
    }

    /// Whether a chunk or node can be read; counts those only a `repair index` would make so.
    fn usable(&self, id: &ChunkId) -> bool {
        let ok = (self.usable)(id);
        if !ok && self.unindexed.contains(id) {
            self.unindexed_needed.set(self.unindexed_needed.get() + 1);
        }
        ok
    }

    fn chunk(&self, r: &ChunkRef, out: &mut Vec<Piece>) {
        if self.usable(&r.id) {
            out.push(Piece::Chunk(*r));
        } else {
            lose(out, r.size);
        }
    }

    fn node(&self, r: &ChunkRef, out: &mut Vec<Piece>) {
        let node = self
            .usable(&r.id)
            .then(|| self.loader.read_chunk(&r.id).ok())
            .flatten()
            .and_then(|b| TreeNode::decode(&b).ok())
            .filter(|n| n.size() == r.size);
        match node {
            Some(n) if n.level == 0 => n.entries.iter().for_each(|e| self.chunk(e, out)),
            Some(n) => n.entries.iter().for_each(|e| self.node(e, out)),
            None => lose(out, r.size),
        }
    }

    /// A delta: each chunk position from its patch, else from the base; a position whose base
    /// node is lost and that has no patch is lost. An unreadable patch list loses it all.
    fn delta_pieces(&self, c: &Content, d: &backstop_format::tree::Delta, out: &mut Vec<Piece>) {
        let cs = u64::from(d.chunk_size);
        let patches = self
            .loader
            .read_content(&d.patch)
            .ok()
            .and_then(|b| decode_patches(&b).ok());
        let (Some(patches), true) = (patches, cs > 0) else {
            lose(out, c.size);
            return;
        };
        let patches: HashMap<u64, ChunkRef> = patches.into_iter().collect();
        let mut base = Vec::new();
        self.node(&d.base, &mut base);
        // The base's chunk positions: every chunk but the last is `cs` bytes long.
        let mut slots: Vec<Option<ChunkRef>> = Vec::new();
        for p in base {
            match p {
                Piece::Chunk(r) => slots.push(Some(r)),
                Piece::Lost(n) => slots.extend(std::iter::repeat_n(None, n.div_ceil(cs) as usize)),
            }
        }
        for i in 0..c.size.div_ceil(cs) {
            let len = cs.min(c.size - i * cs);
            match patches
                .get(&i)
                .copied()
                .or_else(|| slots.get(i as usize).copied().flatten())
            {
                Some(r) if r.size == len => self.chunk(&r, out),
                _ => lose(out, len),
            }
        }
    }

    /// The items of a partly lost item list: every line that can be read whole.
    fn read_list(&self, list: &Content, pieces: &[Piece]) -> (Vec<Item>, Option<Loss>) {
        let mut items: Vec<Item> = Vec::new();
        let mut ranges: Vec<[u64; 2]> = Vec::new();
        // Positions in `items` where a loss lies.
        let mut gaps: Vec<usize> = Vec::new();
        let mut segment: Vec<u8> = Vec::new();
        let mut pos = 0;
        let flush = |segment: &mut Vec<u8>, items: &mut Vec<Item>| {
            // A line cut by a loss does not parse (its braces do not balance), so every line
            // that parses is whole.
            for line in segment.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(item) = serde_json::from_slice::<Item>(line) {
                    items.push(item);
                }
            }
            segment.clear();
        };
        for p in pieces {
            let (n, bytes) = match p {
                Piece::Chunk(r) => (r.size, self.loader.read_chunk(&r.id).ok()),
                Piece::Lost(n) => (*n, None),
            };
            match bytes {
                Some(b) => segment.extend_from_slice(&b),
                None => {
                    flush(&mut segment, &mut items);
                    add_range(&mut ranges, pos, pos + n);
                    gaps.push(items.len());
                }
            }
            pos += n;
        }
        flush(&mut segment, &mut items);
        if ranges.is_empty() {
            return (items, None);
        }
        gaps.dedup();
        let around: Vec<String> = gaps
            .iter()
            .map(|&g| {
                let before = g
                    .checked_sub(1)
                    .and_then(|i| items.get(i))
                    .map(|i| i.path.as_str());
                let after = items.get(g).map(|i| i.path.as_str());
                format!(
                    "after {} and before {}",
                    before.unwrap_or("the first item"),
                    after.unwrap_or("the end")
                )
            })
            .collect();
        let loss = Loss {
            path: ITEM_LIST.into(),
            size: list.size,
            ranges,
            dropped: false,
            detail: Some(format!(
                "items in the lost part of the item list are missing: {}",
                around.join("; ")
            )),
        };
        (items, Some(loss))
    }

    /// Writes the repaired copy's contents and item list; returns the copy (not yet stored).
    fn rebuild(
        &self,
        store: &mut ChunkStore<'_>,
        snap: &Snapshot,
        plan: Plan,
        opts: &RepairSnapshotsOptions,
        r: &mut RepairedSnapshot,
    ) -> Result<Snapshot> {
        let mut losses: Vec<Loss> = plan.list_loss.into_iter().collect();
        let mut list = ItemList::new();
        let mut stats = SnapshotStats::default();
        for (mut item, pieces) in plan.items {
            if let Some(pieces) = pieces {
                let size = item.content.as_ref().map_or(0, |c| c.size);
                let (content, ranges) = self.rebuild_content(store, &pieces)?;
                let dropped = content.is_none();
                // A database with lost pages cannot pass SQLite's checks, which a database
                // restore insists on: the copy holds its bytes as a plain file instead.
                let detail = item.database.take().map(|db| {
                    item.kind = ItemKind::File;
                    format!(
                        "a SQLite database (pages of {} bytes): kept as a plain file whose lost pages are zeros",
                        db.page_size
                    )
                });
                losses.push(Loss {
                    path: item.path.clone(),
                    size,
                    ranges,
                    dropped,
                    detail,
                });
                let Some(content) = content else { continue };
                item.content = Some(content);
            }
            match item.kind {
                ItemKind::Dir => stats.dirs += 1,
                ItemKind::File | ItemKind::Stream | ItemKind::Sqlite => stats.files += 1,
                _ => {}
            }
            stats.items += 1;
            stats.bytes += item.content.as_ref().map_or(0, |c| c.size);
            list.push(store, &item)?;
        }
        let items = list.finish(store)?;
        r.items = stats.items;
        r.losses = losses.clone();
        let mut copy = snap.clone();
        copy.items = items;
        copy.stats = stats;
        copy.program = opts.program.clone();
        copy.warnings.push(format!(
            "repaired copy of snapshot {}: {} item(s) with losses",
            r.from,
            losses.len()
        ));
        copy.repaired = Some(Repaired {
            from: r.from,
            time: opts.time,
            losses,
        });
        Ok(copy)
    }

    /// A content of the chunks that read back right, with zeros for the rest. `None` when
    /// nothing could be read.
    fn rebuild_content(
        &self,
        store: &mut ChunkStore<'_>,
        pieces: &[Piece],
    ) -> Result<(Option<Content>, Vec<[u64; 2]>)> {
        let mut tree = TreeBuilder::new();
        let mut hash = blake3::Hasher::new();
        let mut ranges = Vec::new();
        let mut pos = 0;
        let mut read_any = false;
        let zeros = vec![0u8; ZERO_CHUNK];
        for p in pieces {
            let (n, bytes) = match p {
                Piece::Chunk(r) => (
                    r.size,
                    self.loader
                        .read_chunk(&r.id)
                        .ok()
                        .filter(|b| b.len() as u64 == r.size)
                        .map(|b| (b, *r)),
                ),
                Piece::Lost(n) => (*n, None),
            };
            match bytes {
                Some((b, r)) => {
                    hash.update(&b);
                    tree.push(store, r)?;
                    read_any = true;
                }
                None => {
                    add_range(&mut ranges, pos, pos + n);
                    let mut left = n;
                    while left > 0 {
                        let k = left.min(ZERO_CHUNK as u64) as usize;
                        hash.update(&zeros[..k]);
                        let refs = store.add_data(&Batch::of(&[&zeros[..k]]))?;
                        for r in refs {
                            tree.push(store, r)?;
                        }
                        left -= k as u64;
                    }
                }
            }
            pos += n;
        }
        if !read_any && pos > 0 {
            return Ok((None, ranges));
        }
        let content = tree.finish(store, hash.finalize().to_hex().to_string())?;
        Ok((Some(content), ranges))
    }
}

fn lose(out: &mut Vec<Piece>, n: u64) {
    if let Some(Piece::Lost(m)) = out.last_mut() {
        *m += n;
    } else {
        out.push(Piece::Lost(n));
    }
}

/// Hashes what is written to it.
struct HashSink(blake3::Hasher);

impl std::io::Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
