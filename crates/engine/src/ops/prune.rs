//! Prune: reclaim the space of forgotten snapshots.
//!
//! Under an *exclusive* lock (backups hold shared ones, so none runs; a backup that loaded the
//! index before the lock checks, once it holds its own lock, that the index files it read are
//! still there): work out every chunk and tree node the remaining snapshots use, then
//!
//! 1. write the used chunks of packs chosen for repacking into new packs (their index files
//!    are written by the pack writer once the packs are durable);
//! 2. write new index files for the old packs that stay;
//! 3. delete the old index files;
//! 4. delete the packs that hold nothing used, the repacked ones, and packs no index names
//!    (left by interrupted backups: with the exclusive lock held, no backup is writing one);
//! 5. delete records of snapshots that no longer exist.
//!
//! Crash safety: until step 3 every old index file is there and names only packs that still
//! exist, so the repository reads as before (new packs only add second copies). During step 3
//! the new files already cover every pack that stays. In step 4 no index file names a pack
//! being deleted any more. So `kill -9` at any instant leaves a repository in which every
//! remaining snapshot restores; what an interrupted prune leaves behind (extra packs, extra
//! index files) is found and removed by the next prune. Step 3 relies on deletes being
//! durable in order: the local backend syncs the directory after each delete.
//!
//! A content stored as a delta uses the base's tree nodes but only the base chunks it does
//! not patch; chunks of the base at patched positions are unused once no remaining snapshot
//! has them (a later backup that needs such a chunk again stores it again, since dedup goes
//! by the index).
//!
//! Prune refuses to delete anything when the repository is damaged (an index file, snapshot
//! or tree node that cannot be read, a used chunk in no index, a pack holding used chunks that
//! is missing): it could not tell what is still needed.

use std::collections::HashSet;

use backstop_format::pack::{BlobEntry, BlobKind, IndexFile, IndexPack};
use backstop_format::record::Record;
use backstop_format::{ChunkId, IndexId, PackId, SnapshotId, Timestamp};
use backstop_storage::{Kind, Storage};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::repository::SnapshotList;
use crate::repository::content::Loader;
use crate::repository::index::{IdSet, Index, LoadedIndex};
use crate::repository::indexed::Indexed;
use crate::repository::lock::Lock;
use crate::store::ChunkStore;
use crate::store::chunker::Batch;

/// Entries per index file written by prune.
const INDEX_FILE_ENTRIES: usize = 64 * 1024;
/// Plaintext gathered before it is handed to the chunk store when repacking.
const REPACK_BATCH: usize = 8 << 20;

/// How to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack partly used packs until the unused bytes left in packs are at most this
    /// percentage of the used bytes (restic's `--max-unused`); 0 repacks every partly used pack.
    pub max_unused_percent: f64,
    pub host: String,
    /// Plan as if these snapshots were already gone (a dry run of `forget --prune`).
    pub assume_forgotten: HashSet<SnapshotId>,
}

impl PruneOptions {
    pub fn new(host: String) -> Self {
        Self {
            max_unused_percent: 5.0,
            host,
            assume_forgotten: HashSet::new(),
        }
    }
}

/// What a pack holds that is still used.
#[derive(Debug, Clone)]
struct PackUse {
    id: PackId,
    size: u64,
    entries: Vec<BlobEntry>,
    /// Which entries are used here (used, and this is the copy the index chose).
    used_mask: Vec<bool>,
    /// Stored bytes of frames attributable to used chunks.
    used: u64,
    used_chunks: usize,
}

/// What prune will do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrunePlan {
    pub snapshots: usize,
    pub packs: usize,
    /// Stored bytes of all packs.
    pub bytes: u64,
    pub used_chunks: usize,
    /// Stored bytes of packs attributable to used chunks.
    pub used_bytes: u64,
    pub unused_bytes: u64,
    /// Packs holding nothing used.
    pub delete_packs: usize,
    pub delete_bytes: u64,
    /// Partly used packs whose used chunks are written anew.
    pub repack_packs: usize,
    pub repack_bytes: u64,
    /// Of the repacked bytes, how many are used (and written again).
    pub repack_used_bytes: u64,
    /// Packs no index file names (left by an interrupted backup or prune).
    pub unreferenced_packs: usize,
    pub unreferenced_bytes: u64,
    /// Unused bytes that stay in packs (below the repack threshold).
    pub unused_after: u64,
    /// Index files that will be replaced.
    pub index_files: usize,
    /// Records of snapshots that no longer exist.
    pub orphan_records: usize,
    #[serde(skip)]
    delete: Vec<PackId>,
    #[serde(skip)]
    repack: Vec<PackUse>,
    #[serde(skip)]
    keep: Vec<PackUse>,
    #[serde(skip)]
    unreferenced: Vec<String>,
    #[serde(skip)]
    old_index: Vec<String>,
    #[serde(skip)]
    records: Vec<String>,
}

impl PrunePlan {
    /// Bytes the repository is expected to shrink by (repacked chunks are recompressed, so
    /// this is close, not exact).
    pub fn bytes_freed(&self) -> u64 {
        self.delete_bytes + self.unreferenced_bytes + self.repack_bytes
            - self.repack_used_bytes.min(self.repack_bytes)
    }
}

/// What prune did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneSummary {
    pub dry_run: bool,
    pub plan: PrunePlan,
    /// Stored bytes of all packs before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub packs_written: u64,
    pub packs_deleted: usize,
    pub index_files_written: usize,
    /// Temporary files left by commands that died (interrupted writes), removed.
    pub temporary_files_removed: u64,
    pub temporary_bytes_removed: u64,
    pub seconds: f64,
}

/// Runs prune: plans under an exclusive lock and, unless `dry_run`, applies the plan (a dry
/// run takes a shared lock: it changes nothing).
pub fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<PruneSummary> {
    if !dry_run && !opts.assume_forgotten.is_empty() {
        return Err(Error::Invalid(
            "assume_forgotten is only for dry runs: forget the snapshots first".into(),
        ));
    }
    let started = std::time::Instant::now();
    let lock = Lock::acquire(repo, !dry_run, "prune", &opts.host, Timestamp::now())?;
    if !dry_run {
        lock.check_can_delete("prune")?;
    }
    let plan = plan_prune(repo, opts, progress)?;
    let mut summary = PruneSummary {
        dry_run,
        bytes_before: plan.bytes + plan.unreferenced_bytes,
        bytes_after: 0,
        packs_written: 0,
        packs_deleted: 0,
        index_files_written: 0,
        temporary_files_removed: 0,
        temporary_bytes_removed: 0,
        seconds: 0.0,
        plan,
    };
    if !dry_run {
        apply(repo, &mut summary, progress)?;
        // Under the exclusive lock no other command writes, except one whose lock went stale
        // (not refreshed for 30 minutes): a temporary file untouched that long is not being
        // written by anyone that still counts as running (a pack takes seconds).
        let removed = repo
            .storage()
            .remove_stale_temporary(crate::repository::lock::STALE)?;
        summary.temporary_files_removed = removed.files;
        summary.temporary_bytes_removed = removed.bytes;
        summary.bytes_after = repo
            .storage()
            .list(Kind::Pack)?
            .iter()
            .map(|o| o.size)
            .sum();
    } else {
        summary.bytes_after = summary.bytes_before - summary.plan.bytes_freed();
    }
    lock.release()?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Reads every index file; any that cannot be read stops prune.
fn read_index_files(repo: &Repository) -> Result<Vec<(String, IndexFile)>> {
    let names = repo.storage().list(Kind::Index)?;
    names
        .par_iter()
        .map(|o| {
            let raw = repo.storage().read(Kind::Index, &o.name)?;
            let file = IndexFile::decode(repo.crypter(), &raw).map_err(|e| {
                Error::Integrity(format!(
                    "index file {} cannot be read ({e}); prune cannot tell which packs are \
                     needed: run `backstop verify` first",
                    o.name
                ))
            })?;
            Ok((o.name.clone(), file))
        })
        .collect()
}

/// Every chunk and tree node the snapshots use.
fn used_chunks(
    loader: &Loader<'_>,
    snaps: &[(SnapshotId, backstop_format::manifest::Snapshot)],
    progress: &dyn Progress,
) -> Result<IdSet> {
    let mut used = IdSet::default();
    let mut walked: HashSet<ChunkId> = HashSet::new();
    let damaged = |sid: &SnapshotId, e: Error| {
        Error::Integrity(format!(
            "snapshot {sid} cannot be read in full ({e}); prune cannot tell what it needs: run \
             `backstop verify`"
        ))
    };
    for (sid, snap) in snaps {
        progress.item(&format!("snapshot {}", sid.short()));
        loader
            .collect_snapshot_ids(snap, &mut used, &mut walked)
            .map_err(|e| damaged(sid, e))?;
    }
    Ok(used)
}

/// Works out what prune would do. Call with a lock held.
pub fn plan_prune(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PrunePlan> {
    progress.phase("prune: reading the index", None);
    let files = read_index_files(repo)?;
    let LoadedIndex { index, unreadable } = Index::load(repo)?;
    if let Some(problem) = unreadable.first() {
        return Err(Error::Integrity(format!(
            "{problem}: run `backstop verify` first"
        )));
    }
    let SnapshotList {
        readable: mut snaps,
        unreadable: bad,
    } = repo.snapshots()?;
    // A damaged snapshot that a dry-run forget would delete is assumed gone like the others.
    let assumed =
        |name: &str| SnapshotId::from_hex(name).is_ok_and(|id| opts.assume_forgotten.contains(&id));
    if let Some((name, e)) = bad.iter().find(|(name, _)| !assumed(name)) {
        return Err(Error::Integrity(format!(
            "snapshot {name} cannot be read ({e}); prune cannot tell what it needs: run \
             `backstop verify`; if nothing in it can be read, `backstop forget {name}` deletes it"
        )));
    }
    snaps.retain(|(id, _)| !opts.assume_forgotten.contains(id));
    progress.phase("prune: finding used data", None);
    let loader = Loader::new(repo, &index);
    let used = used_chunks(&loader, &snaps, progress)?;
    if let Some(id) = used.iter().find(|id| !index.contains(id)) {
        return Err(Error::Integrity(format!(
            "chunk {id} is used by a snapshot but is in no index: run `backstop verify`"
        )));
    }
    let stored = repo.pack_sizes()?;

    let mut plan = PrunePlan {
        snapshots: snaps.len(),
        used_chunks: used.len(),
        index_files: files.len(),
        old_index: files.iter().map(|(n, _)| n.clone()).collect(),
        ..PrunePlan::default()
    };
    let mut seen: HashSet<PackId> = HashSet::new();
    let mut partly: Vec<PackUse> = Vec::new();
    for p in files.iter().flat_map(|(_, f)| f.packs.iter()) {
        if !seen.insert(p.id) {
            continue;
        }
        let pos = index
            .pack_position_of(&p.id)
            .expect("the index holds every pack of the files it was loaded from");
        let u = pack_use(p, pos, &index, &used);
        let present = stored.get(&p.id.to_hex());
        if present != Some(&p.size) {
            if u.used_chunks > 0 {
                return Err(Error::Integrity(format!(
                    "pack {} holds data that snapshots use but is {}: run `backstop verify`",
                    p.id,
                    if present.is_some() {
                        "not the size the index records"
                    } else {
                        "missing"
                    }
                )));
            }
            // Nothing used in it: it just drops out of the index.
            continue;
        }
        plan.packs += 1;
        plan.bytes += p.size;
        plan.used_bytes += u.used;
        if u.used_chunks == 0 {
            plan.delete_packs += 1;
            plan.delete_bytes += p.size;
            plan.delete.push(p.id);
        } else if u.used < p.size {
            partly.push(u);
        } else {
            plan.keep.push(u);
        }
    }
    plan.unused_bytes = plan.bytes - plan.used_bytes;
    choose_repacks(&mut plan, partly, opts.max_unused_percent);
    for (name, &size) in &stored {
        let known = PackId::from_hex(name).is_ok_and(|id| seen.contains(&id));
        if !known {
            plan.unreferenced_packs += 1;
            plan.unreferenced_bytes += size;
            plan.unreferenced.push(name.clone());
        }
    }
    let (records, _) = repo.records_checked()?;
    let alive: HashSet<SnapshotId> = snaps.iter().map(|(id, _)| *id).collect();
    plan.records = records
        .into_iter()
        .filter(|(_, r): &(String, Record)| !alive.contains(&r.snapshot))
        .map(|(n, _)| n)
        .collect();
    plan.orphan_records = plan.records.len();
    Ok(plan)
}

/// How much of a pack is used: a chunk counts where the index has chosen this copy of it (a
/// chunk stored twice is used in one pack only), and a frame's stored bytes are shared among
/// its chunks by plaintext length.
fn pack_use(p: &IndexPack, pos: u32, index: &Index, used: &IdSet) -> PackUse {
    let mut u = PackUse {
        id: p.id,
        size: p.size,
        entries: p.blobs.clone(),
        used_mask: Vec::with_capacity(p.blobs.len()),
        used: 0,
        used_chunks: 0,
    };
    // The frame being summed: offset, stored length, used plaintext, frame plaintext.
    type Frame = (u32, u32, u64, u64);
    fn close(f: Option<Frame>, u: &mut PackUse) {
        if let Some((_, len, used_raw, raw)) = f
            && raw > 0
        {
            u.used += u64::from(len) * used_raw / raw;
        }
    }
    let mut frame: Option<Frame> = None;
    for e in &p.blobs {
        if frame.is_none_or(|f| f.0 != e.offset) {
            close(frame.take(), &mut u);
            frame = Some((e.offset, e.length, 0, u64::from(e.frame_length)));
        }
        let here = used.contains(&e.id)
            && index
                .get(&e.id)
                .is_some_and(|l| l.pack == pos && l.offset == e.offset);
        u.used_mask.push(here);
        if here {
            u.used_chunks += 1;
            if let Some(f) = frame.as_mut() {
                f.2 += u64::from(e.raw_length);
            }
        }
    }
    close(frame.take(), &mut u);
    // Header and trailer go with the pack: a fully used pack counts as fully used.
    if u.used_chunks == p.blobs.len() {
        u.used = p.size;
    }
    u
}

/// Picks partly used packs to repack, most wasteful first, until what stays unused is at most
/// `max_unused_percent` of the used bytes.
fn choose_repacks(plan: &mut PrunePlan, mut partly: Vec<PackUse>, max_unused_percent: f64) {
    let limit = (plan.used_bytes as f64 * max_unused_percent.max(0.0) / 100.0) as u64;
    let mut unused: u64 = partly.iter().map(|u| u.size - u.used).sum();
    partly.sort_by(|a, b| {
        let ra = (a.size - a.used) as f64 / a.size as f64;
        let rb = (b.size - b.used) as f64 / b.size as f64;
        rb.total_cmp(&ra)
    });
    for u in partly {
        if unused > limit || max_unused_percent <= 0.0 {
            unused -= u.size - u.used;
            plan.repack_packs += 1;
            plan.repack_bytes += u.size;
            plan.repack_used_bytes += u.used;
            plan.repack.push(u);
        } else {
            plan.keep.push(u);
        }
    }
    plan.unused_after = unused;
}

fn apply(repo: &Repository, summary: &mut PruneSummary, progress: &dyn Progress) -> Result<()> {
    let plan = &summary.plan;
    // 1. Repack: the used chunks of the chosen packs go into new packs. The store gets an
    // empty index, so it stores every chunk it is given (once) instead of finding it in the
    // pack it comes from.
    if !plan.repack.is_empty() {
        progress.phase("prune: repacking", Some(plan.repack_bytes));
        let index = Index::load(repo)?.index;
        let empty = Indexed::empty(repo);
        let mut store = ChunkStore::new(&empty);
        let loader = Loader::new(repo, &index);
        let mut batches = [Batch::new(), Batch::new()];
        for u in &plan.repack {
            repack_pack(repo, &loader, &index, u, &mut store, &mut batches)?;
            progress.bytes(u.size);
        }
        flush_batch(&mut store, &mut batches, true)?;
        let stats = store.finish()?;
        summary.packs_written = stats.packs;
    }
    // Packs are named by their content, and without encryption repacking is deterministic:
    // a pack just written may carry the name of one this plan deletes (left by an
    // interrupted prune that planned the same repack). Whatever the new index files name
    // must stay.
    let written = packs_named_by_new_index_files(repo, &plan.old_index)?;
    // 2. New index files for the old packs that stay.
    progress.phase("prune: writing the index", None);
    summary.index_files_written += write_index_files(
        repo,
        plan.keep.iter().map(|u| IndexPack {
            id: u.id,
            size: u.size,
            blobs: u.entries.clone(),
        }),
    )?;
    // 3. The old index files, now covered by the new ones.
    progress.phase("prune: deleting", None);
    let storage: &dyn Storage = repo.storage().as_ref();
    for name in &plan.old_index {
        storage.delete(Kind::Index, name)?;
    }
    // 4. Packs nothing names any more.
    let doomed: Vec<String> = plan
        .delete
        .iter()
        .chain(plan.repack.iter().map(|u| &u.id))
        .map(PackId::to_hex)
        .chain(plan.unreferenced.iter().cloned())
        .filter(|name| !written.contains(name))
        .collect();
    for name in &doomed {
        storage.delete(Kind::Pack, name)?;
        summary.packs_deleted += 1;
    }
    // 5. Records of forgotten snapshots.
    for name in &plan.records {
        storage.delete(Kind::Record, name)?;
    }
    Ok(())
}

/// The packs named by index files other than `old` (those the repack's pack writer wrote).
fn packs_named_by_new_index_files(repo: &Repository, old: &[String]) -> Result<HashSet<String>> {
    let mut named = HashSet::new();
    for o in repo.storage().list(Kind::Index)? {
        if old.contains(&o.name) {
            continue;
        }
        let raw = repo.storage().read(Kind::Index, &o.name)?;
        let file = IndexFile::decode(repo.crypter(), &raw)
            .map_err(|e| Error::Integrity(format!("index file {} just written: {e}", o.name)))?;
        named.extend(file.packs.iter().map(|p| p.id.to_hex()));
    }
    Ok(named)
}

/// Writes index files naming `packs`, about [`INDEX_FILE_ENTRIES`] chunk entries each, and
/// returns how many. Each file is durable when its write returns (shared with `repair index`).
pub(crate) fn write_index_files(
    repo: &Repository,
    packs: impl IntoIterator<Item = IndexPack>,
) -> Result<usize> {
    let mut written = 0;
    let mut pending: Vec<IndexPack> = Vec::new();
    let mut entries = 0;
    for p in packs {
        entries += p.blobs.len();
        pending.push(p);
        if entries >= INDEX_FILE_ENTRIES {
            write_index(repo, &mut pending)?;
            written += 1;
            entries = 0;
        }
    }
    if !pending.is_empty() {
        write_index(repo, &mut pending)?;
        written += 1;
    }
    Ok(written)
}

fn write_index(repo: &Repository, packs: &mut Vec<IndexPack>) -> Result<()> {
    let file = IndexFile {
        packs: std::mem::take(packs),
        supersedes: Vec::new(),
    };
    repo.storage().write_new(
        Kind::Index,
        &IndexId::random().to_hex(),
        &file.encode(repo.crypter()),
    )?;
    Ok(())
}

/// Reads one pack whole, checks it against its name, and queues its used chunks.
fn repack_pack(
    repo: &Repository,
    loader: &Loader<'_>,
    index: &Index,
    u: &PackUse,
    store: &mut ChunkStore<'_>,
    batches: &mut [Batch; 2],
) -> Result<()> {
    let bytes = repo.storage().read(Kind::Pack, &u.id.to_hex())?;
    if PackId(*blake3::hash(&bytes).as_bytes()) != u.id {
        return Err(Error::Integrity(format!(
            "pack {} does not match its name (damaged); nothing was deleted: run `backstop verify`",
            u.id
        )));
    }
    let mut frame: Option<(u32, Vec<u8>)> = None;
    for (e, _) in u
        .entries
        .iter()
        .zip(&u.used_mask)
        .filter(|(_, used)| **used)
    {
        let loc = index
            .get(&e.id)
            .expect("used entries were found in the index");
        if frame.as_ref().is_none_or(|f| f.0 != e.offset) {
            let stored = bytes
                .get(e.offset as usize..(e.offset + e.length) as usize)
                .ok_or_else(|| {
                    Error::Integrity(format!("pack {}: a frame lies outside the pack", u.id))
                })?;
            frame = Some((e.offset, loader.open_frame(&loc, stored)?));
        }
        let plain = &frame.as_ref().expect("just decoded").1;
        let chunk = loader.cut(&e.id, &loc, plain)?;
        let slot = usize::from(e.kind == BlobKind::Tree);
        batches[slot].push(&chunk);
        flush_batch(store, batches, false)?;
    }
    Ok(())
}

/// Hands the gathered chunks to the store once there are enough of them (or all, at the end).
fn flush_batch(store: &mut ChunkStore<'_>, batches: &mut [Batch; 2], all: bool) -> Result<()> {
    for (slot, b) in batches.iter_mut().enumerate() {
        if b.is_empty() || (!all && b.bytes() < REPACK_BATCH) {
            continue;
        }
        let full = std::mem::take(b);
        if slot == 0 {
            store.add_data_batch(full, None)?;
        } else {
            store.add_meta(&full)?;
        }
    }
    Ok(())
}
