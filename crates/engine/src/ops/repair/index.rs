//! `repair index`: rebuild the index from the packs themselves.
//!
//! Every pack carries its own chunk table in its trailer (docs/design.md, "Packs"), so an index
//! file that was lost or damaged loses nothing that the packs cannot tell again. Under the
//! exclusive lock:
//!
//! 1. read every index file; an index file that does not decode is *damaged*, one that names a
//!    pack that is not stored is *stale*; the others are *sound* and stay as they are;
//! 2. the packs to index are those of damaged or stale files that are still stored, and every
//!    stored pack no sound file names: the former keep their entries from the file that named
//!    them, the latter are read from their trailers (two range reads each, no chunk is read);
//! 3. write new index files naming those packs;
//! 4. delete the damaged and stale index files.
//!
//! Nothing else is deleted, packs never. Crash safety: until step 4 every old index file is
//! still there, so the repository reads at least as well as before (the new files only add
//! entries for packs that exist; a chunk indexed twice keeps one location and either copy
//! serves). From step 3's end the new files name every stored pack the old damaged or stale
//! files named, so deleting those in any order loses no entry for a pack that exists. A killed
//! repair therefore leaves a repository that is no worse than before, and running it again
//! finishes the job. Packs an interrupted backup left (no snapshot needs their chunks) are
//! indexed too: extra index entries are harmless, and prune removes what no snapshot uses.
//! Stale files are rewritten without their missing packs so that a chunk also stored in a pack
//! that exists (an interrupted backup's copy) is read from there.

use std::collections::{HashMap, HashSet};

use backstop_format::PackId;
use backstop_format::pack::{
    IndexFile, IndexPack, PACK_FOOTER_LEN, decode_trailer, trailer_len, trailer_start,
};
use backstop_storage::Kind;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::repository::lock::Lock;

/// What `repair index` found and did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexSummary {
    pub dry_run: bool,
    /// Index files read.
    pub index_files: usize,
    /// Index files that cannot be decoded, with why; replaced.
    pub damaged_index_files: Vec<NamedProblem>,
    /// Index files that name packs that are not stored; rewritten without them.
    pub stale_index_files: Vec<String>,
    /// Packs stored.
    pub packs: usize,
    /// Packs no readable index file named, indexed from their trailers.
    pub packs_indexed: usize,
    /// Chunk entries those packs added.
    pub chunks_indexed: usize,
    /// Packs an index file named that are not stored: they drop out of the index.
    pub missing_packs: Vec<String>,
    /// Stored packs whose trailer cannot be read: not indexed, left where they are.
    pub unreadable_packs: Vec<NamedProblem>,
    pub index_files_written: usize,
    pub index_files_deleted: usize,
}

impl RepairIndexSummary {
    /// Whether the index already named every stored pack it could.
    pub fn nothing_to_do(&self) -> bool {
        self.damaged_index_files.is_empty()
            && self.stale_index_files.is_empty()
            && self.packs_indexed == 0
    }
}

/// An object and what is wrong with it.
#[derive(Debug, Clone, Serialize)]
pub struct NamedProblem {
    pub name: String,
    pub error: String,
}

/// Rebuilds the index from the packs' trailers (see the module documentation). With `dry_run`
/// nothing is written or deleted (a shared lock is taken instead).
pub fn repair_index(
    repo: &Repository,
    host: &str,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<RepairIndexSummary> {
    let lock = Lock::acquire(
        repo,
        !dry_run,
        "repair index",
        host,
        backstop_format::Timestamp::now(),
    )?;
    progress.phase("repair index: reading the index", None);
    let (files, damaged) = read_index_files(repo)?;
    let stored = repo.pack_sizes()?;
    let mut summary = RepairIndexSummary {
        dry_run,
        index_files: files.len() + damaged.len(),
        damaged_index_files: damaged,
        packs: stored.len(),
        ..RepairIndexSummary::default()
    };
    // Sound files stay; the packs of stale ones that are still stored carry over.
    let mut named: HashSet<PackId> = HashSet::new();
    let mut carried: HashMap<PackId, IndexPack> = HashMap::new();
    let mut missing: HashSet<PackId> = HashSet::new();
    for (name, file) in files {
        let absent: Vec<PackId> = file
            .packs
            .iter()
            .filter(|p| !stored.contains_key(&p.id.to_hex()))
            .map(|p| p.id)
            .collect();
        if absent.is_empty() {
            named.extend(file.packs.iter().map(|p| p.id));
            continue;
        }
        missing.extend(absent);
        summary.stale_index_files.push(name);
        for p in file.packs {
            if stored.contains_key(&p.id.to_hex()) {
                carried.entry(p.id).or_insert(p);
            }
        }
    }
    carried.retain(|id, _| !named.contains(id));
    let mut missing: Vec<String> = missing.iter().map(PackId::to_hex).collect();
    missing.sort();
    summary.missing_packs = missing;
    // Stored packs nothing readable names: their trailers say what they hold.
    let mut unindexed: Vec<(PackId, u64)> = stored
        .iter()
        .filter_map(|(name, &size)| PackId::from_hex(name).ok().map(|id| (id, size)))
        .filter(|(id, _)| !named.contains(id) && !carried.contains_key(id))
        .collect();
    unindexed.sort();
    progress.phase("repair index: reading pack trailers", None);
    let read: Vec<(PackId, Result<IndexPack>)> = unindexed
        .par_iter()
        .map(|&(id, size)| {
            progress.item(&format!("pack {}", id.short()));
            (id, read_trailer(repo, id, size))
        })
        .collect();
    let mut new_packs: Vec<IndexPack> = carried.into_values().collect();
    for (id, r) in read {
        match r {
            Ok(p) => {
                summary.packs_indexed += 1;
                summary.chunks_indexed += p.blobs.len();
                new_packs.push(p);
            }
            // Whatever the reason (damage, a read error), the pack stays where it is.
            Err(e) => summary.unreadable_packs.push(NamedProblem {
                name: id.to_hex(),
                error: e.to_string(),
            }),
        }
    }
    if dry_run || summary.nothing_to_do() {
        lock.release()?;
        return Ok(summary);
    }
    progress.phase("repair index: writing the index", None);
    new_packs.sort_by_key(|p| p.id);
    summary.index_files_written = crate::ops::prune::write_index_files(repo, new_packs)?;
    // Only now, with every stored pack named by a file that is durable, the old files go.
    let doomed = summary
        .damaged_index_files
        .iter()
        .map(|d| &d.name)
        .chain(&summary.stale_index_files);
    for name in doomed {
        repo.storage().delete(Kind::Index, name)?;
        summary.index_files_deleted += 1;
    }
    lock.release()?;
    Ok(summary)
}

/// Decodable index files with their names, and the damaged ones.
type IndexFiles = (Vec<(String, IndexFile)>, Vec<NamedProblem>);

/// Decodable index files by name, and the names of those that are not with why. A file that
/// cannot be *read* (a storage failure, not damage) stops the repair: it might be sound.
fn read_index_files(repo: &Repository) -> Result<IndexFiles> {
    let names = repo.storage().list(Kind::Index)?;
    let results: Vec<(String, Result<std::result::Result<IndexFile, String>>)> = names
        .par_iter()
        .map(|o| {
            let r = repo
                .storage()
                .read(Kind::Index, &o.name)
                .map(|raw| IndexFile::decode(repo.crypter(), &raw).map_err(|e| e.to_string()));
            (o.name.clone(), r.map_err(Error::from))
        })
        .collect();
    let mut ok = Vec::new();
    let mut damaged = Vec::new();
    for (name, r) in results {
        match r? {
            Ok(file) => ok.push((name, file)),
            Err(error) => damaged.push(NamedProblem { name, error }),
        }
    }
    Ok((ok, damaged))
}

/// A pack's index entries from its trailer: the footer, then the trailer, by range reads.
pub(crate) fn read_trailer(repo: &Repository, id: PackId, size: u64) -> Result<IndexPack> {
    let name = id.to_hex();
    let damaged = |e: backstop_format::FormatError| {
        Error::Integrity(format!("pack {name}: the trailer cannot be read: {e}"))
    };
    let footer_at = size
        .checked_sub(PACK_FOOTER_LEN as u64)
        .ok_or_else(|| Error::Integrity(format!("pack {name} is too short to hold a trailer")))?;
    let footer = repo
        .storage()
        .read_range(Kind::Pack, &name, footer_at, PACK_FOOTER_LEN as u64)?;
    let tlen = trailer_len(&footer).map_err(damaged)?;
    let start = trailer_start(size, tlen).map_err(damaged)?;
    let trailer = repo
        .storage()
        .read_range(Kind::Pack, &name, start, tlen as u64)?;
    let blobs = decode_trailer(repo.crypter(), &trailer, start).map_err(damaged)?;
    Ok(IndexPack { id, size, blobs })
}
