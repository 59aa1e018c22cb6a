//! Verify: check that every snapshot can be restored.
//!
//! Structure (always): every index file decodes; every pack the index names exists with the
//! size the index records; every snapshot decodes; every chunk and tree node a snapshot
//! references is in the index. With `read_data`: every pack is read in full, its hash compared
//! with its name, its trailer compared with the index, and every chunk decoded and hashed
//! against its id. Each problem names what is affected: which snapshots and items.

use std::collections::{HashMap, HashSet};

use backstop_format::pack::read_pack_entries;
use backstop_format::{ChunkId, PackId, SnapshotId};
use backstop_storage::Kind;
use rayon::prelude::*;
use serde::Serialize;

use crate::content::Loader;
use crate::error::Result;
use crate::index::Index;
use crate::progress::Progress;
use crate::repo::Repository;

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Read and check every byte of every pack.
    pub read_data: bool,
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// missing-pack, pack-size, damaged-pack, damaged-chunk, missing-chunk, damaged-index,
    /// damaged-snapshot.
    pub kind: String,
    pub object: String,
    pub message: String,
    /// Snapshots affected, with the items affected in each.
    pub affected: Vec<Affected>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    pub snapshot: SnapshotId,
    pub source: String,
    pub items: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub snapshots: usize,
    pub packs: usize,
    pub chunks: usize,
    pub bytes_read: u64,
    pub read_data: bool,
    /// Packs present but not in any index (left by an interrupted backup; prune removes them).
    pub unreferenced_packs: usize,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(kind: &str, object: String, message: String) -> Problem {
    Problem {
        kind: kind.into(),
        object,
        message,
        affected: Vec::new(),
    }
}

pub fn verify(
    repo: &Repository,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        read_data: opts.read_data,
        ..VerifyReport::default()
    };
    let (index, bad_index) = Index::load(repo)?;
    for (name, msg) in bad_index {
        report.problems.push(problem("damaged-index", name, msg));
    }
    report.chunks = index.len();
    report.packs = index.packs().len();
    let stored: HashMap<String, u64> = repo
        .storage()
        .list(Kind::Pack)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    // Chunks that cannot be read, to attribute to snapshots afterwards.
    let mut bad_chunks: HashMap<ChunkId, usize> = HashMap::new();
    let mut bad_packs: HashSet<PackId> = HashSet::new();
    for p in index.packs() {
        match stored.get(&p.id.to_hex()) {
            None => {
                report.problems.push(problem(
                    "missing-pack",
                    p.id.to_hex(),
                    "pack file is missing".into(),
                ));
                bad_packs.insert(p.id);
            }
            Some(&size) if size != p.size => {
                report.problems.push(problem(
                    "pack-size",
                    p.id.to_hex(),
                    format!(
                        "pack file has {size} bytes, the index says {} (truncated?)",
                        p.size
                    ),
                ));
                bad_packs.insert(p.id);
            }
            Some(_) => {}
        }
    }
    let indexed: HashSet<String> = index.packs().iter().map(|p| p.id.to_hex()).collect();
    report.unreferenced_packs = stored.keys().filter(|n| !indexed.contains(*n)).count();

    if opts.read_data {
        read_packs(repo, &index, &bad_packs, progress, &mut report);
    }
    for p in &report.problems {
        if let Ok(id) = ChunkId::from_hex(&p.object) {
            bad_chunks.insert(id, 0);
        }
    }
    for (id, loc) in index.iter() {
        if bad_packs.contains(&index.pack(loc.pack).id) {
            bad_chunks.entry(*id).or_insert(0);
        }
    }
    check_snapshots(repo, &index, &mut bad_chunks, &mut report)?;
    Ok(report)
}

fn read_packs(
    repo: &Repository,
    index: &Index,
    skip: &HashSet<PackId>,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) {
    let packs: Vec<_> = index
        .packs()
        .iter()
        .filter(|p| !skip.contains(&p.id))
        .copied()
        .collect();
    progress.phase("read data", Some(packs.iter().map(|p| p.size).sum()));
    let expected: HashMap<PackId, Vec<(ChunkId, crate::index::Location)>> = {
        let mut m: HashMap<PackId, Vec<_>> = HashMap::new();
        for (id, loc) in index.iter() {
            m.entry(index.pack(loc.pack).id)
                .or_default()
                .push((*id, *loc));
        }
        m
    };
    let loader = Loader::new(repo, index);
    let results: Vec<(u64, Vec<Problem>)> = packs
        .par_iter()
        .map(|p| {
            let name = p.id.to_hex();
            let bytes = match repo.storage().read(Kind::Pack, &name) {
                Ok(b) => b,
                Err(e) => return (0, vec![problem("missing-pack", name, e.to_string())]),
            };
            progress.bytes(bytes.len() as u64);
            let mut probs = Vec::new();
            if PackId(*blake3::hash(&bytes).as_bytes()) != p.id {
                probs.push(problem(
                    "damaged-pack",
                    name.clone(),
                    "pack content does not match its id".into(),
                ));
            }
            if let Err(e) = read_pack_entries(repo.crypter(), &bytes) {
                probs.push(problem(
                    "damaged-pack",
                    name.clone(),
                    format!("pack trailer: {e}"),
                ));
            }
            for (id, loc) in expected.get(&p.id).map(Vec::as_slice).unwrap_or_default() {
                let (a, b) = (
                    loc.offset as usize,
                    loc.offset as usize + loc.length as usize,
                );
                let r = match bytes.get(a..b) {
                    Some(s) => loader_decode(&loader, id, loc, s),
                    None => Err("chunk lies outside the pack".into()),
                };
                if let Err(msg) = r {
                    probs.push(problem(
                        "damaged-chunk",
                        id.to_hex(),
                        format!("in pack {name}: {msg}"),
                    ));
                }
            }
            (bytes.len() as u64, probs)
        })
        .collect();
    for (n, probs) in results {
        report.bytes_read += n;
        report.problems.extend(probs);
    }
}

fn loader_decode(
    loader: &Loader<'_>,
    id: &ChunkId,
    loc: &crate::index::Location,
    stored: &[u8],
) -> std::result::Result<(), String> {
    let plain = backstop_format::blob::open_chunk(
        loader.repo.crypter(),
        stored,
        loc.compressed,
        loc.raw_length,
    )
    .map_err(|e| e.to_string())?;
    if loader.repo.crypter().chunk_id(&plain) != *id {
        return Err("content does not match the chunk id".into());
    }
    Ok(())
}

/// Walks every snapshot's item list and contents, and attributes unreadable chunks.
fn check_snapshots(
    repo: &Repository,
    index: &Index,
    bad: &mut HashMap<ChunkId, usize>,
    report: &mut VerifyReport,
) -> Result<()> {
    let (snaps, bad_snaps) = repo.snapshots()?;
    report.snapshots = snaps.len() + bad_snaps.len();
    for (name, e) in bad_snaps {
        report
            .problems
            .push(problem("damaged-snapshot", name, e.to_string()));
    }
    let loader = Loader::new(repo, index);
    let mut missing_reported: HashSet<ChunkId> = HashSet::new();
    let mut clean_roots: HashSet<ChunkId> = HashSet::new();
    for (sid, snap) in &snaps {
        let mut items_hit: Vec<String> = Vec::new();
        let hit = |r: &ChunkId,
                   missing_reported: &mut HashSet<ChunkId>,
                   report: &mut VerifyReport|
         -> bool {
            if bad.contains_key(r) {
                return true;
            }
            if !index.contains(r) {
                if missing_reported.insert(*r) {
                    report.problems.push(problem(
                        "missing-chunk",
                        r.to_hex(),
                        "referenced by a snapshot but not in any index".into(),
                    ));
                }
                return true;
            }
            false
        };
        let items = match loader.read_items(&snap.items) {
            Ok(items) => items,
            Err(e) => {
                report.problems.push(problem(
                    "damaged-snapshot",
                    sid.to_hex(),
                    format!("the item list cannot be read: {e}"),
                ));
                continue;
            }
        };
        for item in &items {
            let Some(c) = &item.content else { continue };
            // The same content in an earlier snapshot was already walked clean.
            let key = c.tree.map(|t| t.id);
            if key.is_some_and(|k| clean_roots.contains(&k)) {
                continue;
            }
            let affected = std::cell::Cell::new(false);
            let mut newly_missing = Vec::new();
            let r = loader.walk(
                c,
                &mut |n| {
                    if bad.contains_key(&n.id) || !index.contains(&n.id) {
                        affected.set(true);
                        newly_missing.push(n.id);
                    }
                },
                &mut |r| {
                    if hit(&r.id, &mut missing_reported, report) {
                        affected.set(true);
                    }
                    Ok(())
                },
            );
            for id in newly_missing {
                if !bad.contains_key(&id) && missing_reported.insert(id) {
                    report.problems.push(problem(
                        "missing-chunk",
                        id.to_hex(),
                        "tree node not in any index".into(),
                    ));
                }
            }
            if r.is_err() || affected.get() {
                items_hit.push(item.path.clone());
            } else if let Some(k) = key {
                clean_roots.insert(k);
            }
        }
        if !items_hit.is_empty() {
            let a = Affected {
                snapshot: *sid,
                source: snap.source.name.clone(),
                items: items_hit,
            };
            for p in report.problems.iter_mut() {
                if matches!(
                    p.kind.as_str(),
                    "missing-pack"
                        | "pack-size"
                        | "damaged-pack"
                        | "damaged-chunk"
                        | "missing-chunk"
                        | "damaged-index"
                ) {
                    p.affected.push(a.clone());
                }
            }
        }
    }
    Ok(())
}
