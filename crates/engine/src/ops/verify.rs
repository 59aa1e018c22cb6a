//! Verify: check that every snapshot can be restored.
//!
//! Structure (always): every index file decodes; every pack the index names exists with the
//! size the index records; every snapshot decodes; every chunk and tree node a snapshot
//! references is in the index. With `read_data`: every pack is read in full, its hash compared
//! with its name, its trailer compared with the index, and every chunk decoded and hashed
//! against its id. Each problem names what is affected: which snapshots and items.
//!
//! Read order. Backups may run beside a verify (both hold shared locks), and a backup writes
//! packs, then index files, then its snapshot (docs/design.md, "Write ordering"). So verify
//! reads the snapshots *first* and the index after: every snapshot it read was committed before
//! the index was loaded, so every index file naming its chunks is there to be loaded. Read the
//! other way round, a backup finishing in between leaves a snapshot whose chunks the loaded
//! index does not know: a false "missing-chunk". Packs are listed after the index, so every
//! pack the index names was durable before the listing. What verify judges is what was
//! committed when it started; later snapshots are for the next run.

use std::collections::{HashMap, HashSet};

use backstop_format::pack::read_pack_entries;
use backstop_format::{ChunkId, PackId, SnapshotId};
use backstop_storage::Kind;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::repository::content::Loader;
use crate::repository::index::{Index, LoadedIndex};

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Read and check every byte of every pack.
    pub read_data: bool,
    /// Recorded in the shared lock held while verifying (so no prune runs meanwhile).
    pub host: String,
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// missing-pack, pack-size, damaged-pack, damaged-chunk, missing-chunk, damaged-index,
    /// damaged-snapshot, damaged-record, damaged-key.
    pub kind: String,
    pub object: String,
    pub message: String,
    /// Snapshots affected, with the items affected in each.
    pub affected: Vec<Affected>,
    /// What gets back what can be got back (`null`: nothing can).
    pub repair: Option<Repair>,
}

/// The repair that deals with a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Repair {
    /// The data is in packs the index does not name (a lost or damaged index file).
    #[serde(rename = "backstop repair index")]
    Index,
    /// The data is gone or damaged: a repaired copy of each affected snapshot keeps the rest.
    #[serde(rename = "backstop repair snapshots")]
    Snapshots,
    /// A record cannot be read.
    #[serde(rename = "backstop repair records")]
    Records,
    /// The snapshot object itself cannot be read: nothing in it can be got back, and prune
    /// cannot run while it is there. `backstop forget <the problem's subject>` deletes it.
    #[serde(rename = "backstop forget")]
    Forget,
}

#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    pub snapshot: SnapshotId,
    pub source: String,
    pub items: Vec<String>,
    /// The repaired copy `repair snapshots` made of this snapshot, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired_as: Option<SnapshotId>,
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
    /// Of those, packs holding chunks that snapshots need but no index names (a lost index
    /// file): `repair index` makes them readable again.
    pub unindexed_needed_packs: usize,
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
        repair: None,
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
    let _lock = crate::repository::lock::Lock::for_reader(repo, "verify", &opts.host, progress)?;
    // Snapshots before the index: see the module comment.
    let snapshots = committed_snapshots(repo)?;
    let LoadedIndex { index, unreadable } = Index::load(repo)?;
    for p in unreadable {
        report
            .problems
            .push(problem("damaged-index", p.file, p.error));
    }
    report.chunks = index.len();
    report.packs = index.packs().len();
    let stored = repo.pack_sizes()?;
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
    let unreferenced: Vec<(PackId, u64)> = stored
        .iter()
        .filter(|(n, _)| !indexed.contains(*n))
        .filter_map(|(n, &size)| PackId::from_hex(n).ok().map(|id| (id, size)))
        .collect();
    report.unreferenced_packs = unreferenced.len();
    // What the packs no index names hold, from their trailers (two small reads each): a chunk
    // a snapshot needs that is there is one `repair index` gets back.
    let unindexed: HashMap<ChunkId, PackId> = unreferenced
        .par_iter()
        .filter_map(|&(id, size)| crate::ops::repair::index::read_trailer(repo, id, size).ok())
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|p| p.blobs.into_iter().map(move |b| (b.id, p.id)))
        .collect();

    if opts.read_data {
        read_packs(repo, &index, &bad_packs, progress, &mut report);
    }
    // Which problems each unreadable chunk belongs to, to attribute snapshots and items.
    let pack_problem: HashMap<String, usize> = report
        .problems
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            matches!(
                p.kind.as_str(),
                "missing-pack" | "pack-size" | "damaged-pack"
            )
        })
        .map(|(i, p)| (p.object.clone(), i))
        .collect();
    let mut bad: HashMap<ChunkId, Vec<usize>> = HashMap::new();
    for (i, p) in report.problems.iter().enumerate() {
        if p.kind != "damaged-chunk" {
            continue;
        }
        if let Ok(id) = ChunkId::from_hex(&p.object) {
            let entry = bad.entry(id).or_default();
            entry.push(i);
            if let Some(&pi) = index
                .get(&id)
                .and_then(|loc| pack_problem.get(&index.pack(loc.pack).id.to_hex()))
            {
                entry.push(pi);
            }
        }
    }
    // Packs no index names that hold a copy of what a missing or damaged pack held (an
    // interrupted backup's): `repair index` makes the copy the one that is read.
    let mut needed: HashSet<PackId> = HashSet::new();
    for (id, loc) in index.iter() {
        let pack = index.pack(loc.pack).id;
        if bad_packs.contains(&pack)
            && let Some(&pi) = pack_problem.get(&pack.to_hex())
        {
            bad.entry(*id).or_default().push(pi);
            if let Some(copy) = unindexed.get(id) {
                needed.insert(*copy);
                report.problems[pi].repair = Some(Repair::Index);
            }
        }
    }
    check_snapshots(
        repo,
        &index,
        snapshots,
        &unindexed,
        &mut needed,
        &mut bad,
        &mut report,
    )?;
    report.unindexed_needed_packs = needed.len();
    check_records(repo, &mut report)?;
    for key in crate::repository::damaged_key_files(repo)? {
        report.problems.push(problem(
            "damaged-key",
            key.file,
            format!("key file cannot be used with any passphrase ({}); another key file opened the repository", key.error),
        ));
    }
    assign_repairs(&mut report);
    Ok(report)
}

/// Records that cannot be read: `forget` refuses to run past them (one might be a pin).
fn check_records(repo: &Repository, report: &mut VerifyReport) -> Result<()> {
    let (_, bad) = repo.records_checked()?;
    for (name, e) in bad {
        report.problems.push(problem(
            "damaged-record",
            name,
            format!("{e} (it may have been a pin; forget refuses to run until it is dealt with)"),
        ));
    }
    Ok(())
}

/// Says for each problem which repair deals with it. A missing chunk that a pack no index
/// names holds already has [`Repair::Index`].
fn assign_repairs(report: &mut VerifyReport) {
    let index_first = report
        .problems
        .iter()
        .any(|p| p.repair == Some(Repair::Index));
    for p in &mut report.problems {
        if p.repair.is_some() {
            continue;
        }
        p.repair = match p.kind.as_str() {
            "damaged-index" => Some(Repair::Index),
            "damaged-record" => Some(Repair::Records),
            // An unreadable item list is often only unindexed: the index repair comes first.
            "damaged-snapshot" if p.message.contains("item list") && index_first => {
                Some(Repair::Index)
            }
            "damaged-snapshot" if p.message.contains("item list") => Some(Repair::Snapshots),
            // The snapshot object itself: nothing is known about what it held, and prune
            // cannot tell what it needed; forgetting it is all that can be done.
            "damaged-snapshot" => Some(Repair::Forget),
            // A key file: another one opened the repository; the damaged one is of no use.
            "damaged-key" => None,
            _ => Some(Repair::Snapshots),
        };
    }
}

/// The snapshots to check: every one that can be read, and the unreadable ones with why. One
/// deleted between listing and reading was forgotten (`forget` runs beside verify), not damaged.
fn committed_snapshots(repo: &Repository) -> Result<crate::repository::SnapshotList> {
    let mut list = repo.snapshots()?;
    list.unreadable
        .retain(|(_, e)| !matches!(e, crate::Error::Storage(s) if s.is_not_found()));
    Ok(list)
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
    // How many chunks the index places in each pack: the only per-pack state kept up front,
    // so verifying needs no second copy of the index.
    let mut expected = vec![0u32; index.packs().len()];
    for (_, loc) in index.iter() {
        expected[loc.pack as usize] += 1;
    }
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
            // The chunks the index places in this pack, in pack order: from the trailer when it
            // can be read and agrees, else (damage) by a scan of the index.
            let pos = index.packs().iter().position(|x| x.id == p.id).unwrap_or(0);
            let in_index = |id: &ChunkId, offset: u32| {
                index
                    .get(id)
                    .filter(|loc| index.pack(loc.pack).id == p.id && loc.offset == offset)
            };
            let mut chunks: Vec<(ChunkId, crate::repository::index::Location)> =
                match read_pack_entries(repo.crypter(), &bytes) {
                    Ok(entries) => entries
                        .iter()
                        .filter_map(|e| in_index(&e.id, e.offset).map(|loc| (e.id, loc)))
                        .collect(),
                    Err(e) => {
                        probs.push(problem(
                            "damaged-pack",
                            name.clone(),
                            format!("pack trailer: {e}"),
                        ));
                        Vec::new()
                    }
                };
            if chunks.len() != expected[pos] as usize {
                chunks = index
                    .iter()
                    .filter(|(_, loc)| index.pack(loc.pack).id == p.id)
                    .map(|(id, loc)| (*id, *loc))
                    .collect();
                chunks.sort_by_key(|(_, loc)| (loc.offset, loc.raw_offset));
            }
            // One decoded frame at a time.
            let mut frame: Option<(u32, std::result::Result<Vec<u8>, String>)> = None;
            for (id, loc) in &chunks {
                if frame.as_ref().is_none_or(|(o, _)| *o != loc.offset) {
                    let (a, b) = (
                        loc.offset as usize,
                        loc.offset as usize + loc.length as usize,
                    );
                    let decoded = match bytes.get(a..b) {
                        Some(s) => backstop_format::blob::open_chunk(
                            repo.crypter(),
                            s,
                            loc.compressed,
                            loc.frame_length,
                        )
                        .map_err(|e| e.to_string()),
                        None => Err("frame lies outside the pack".into()),
                    };
                    frame = Some((loc.offset, decoded));
                }
                let f = &frame.as_ref().expect("set just above").1;
                let r = f
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|f| check_chunk(&loader, id, loc, f));
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

fn check_chunk(
    loader: &Loader<'_>,
    id: &ChunkId,
    loc: &crate::repository::index::Location,
    frame: &[u8],
) -> std::result::Result<(), String> {
    let a = loc.raw_offset as usize;
    let plain = frame
        .get(a..a + loc.raw_length as usize)
        .ok_or("chunk lies outside its frame")?;
    if loader.repo.crypter().chunk_id(plain) != *id {
        return Err("content does not match the chunk id".into());
    }
    Ok(())
}

/// What one snapshot walk found: the problems each item (or the item list) touches.
type Hits = HashMap<usize, Vec<String>>;

/// Walks every snapshot's item list and contents, and attributes unreadable chunks to the
/// snapshots and items that need them. Chunks referenced but not indexed become missing-chunk
/// problems.
fn check_snapshots(
    repo: &Repository,
    index: &Index,
    crate::repository::SnapshotList {
        readable: snaps,
        unreadable: bad_snaps,
    }: crate::repository::SnapshotList,
    unindexed: &HashMap<ChunkId, PackId>,
    needed: &mut HashSet<PackId>,
    bad: &mut HashMap<ChunkId, Vec<usize>>,
    report: &mut VerifyReport,
) -> Result<()> {
    report.snapshots = snaps.len() + bad_snaps.len();
    for (name, e) in bad_snaps {
        report
            .problems
            .push(problem("damaged-snapshot", name, e.to_string()));
    }
    let loader = Loader::new(repo, index);
    let copies: HashMap<SnapshotId, SnapshotId> = snaps
        .iter()
        .filter_map(|(id, s)| s.repaired.as_ref().map(|r| (r.from, *id)))
        .collect();
    let mut un = Unindexed {
        chunks: unindexed,
        needed,
        problems: HashMap::new(),
    };
    // Contents already walked clean (by their tree root), so shared content is walked once.
    let mut clean_roots: HashSet<ChunkId> = HashSet::new();
    for (sid, snap) in &snaps {
        let mut hits: Hits = HashMap::new();
        let list_ok = walk_content(
            &loader,
            (index, &mut un),
            bad,
            report,
            &snap.items,
            "(item list)",
            &mut hits,
            &mut clean_roots,
        );
        let items = if list_ok {
            loader.read_items(&snap.items).map_err(|e| e.to_string())
        } else {
            Err("chunks of the item list are missing or damaged".into())
        };
        match items {
            Ok(items) => {
                for item in &items {
                    if let Some(c) = &item.content {
                        walk_content(
                            &loader,
                            (index, &mut un),
                            bad,
                            report,
                            c,
                            &item.path,
                            &mut hits,
                            &mut clean_roots,
                        );
                    }
                }
            }
            Err(e) => {
                report.problems.push(problem(
                    "damaged-snapshot",
                    sid.to_hex(),
                    format!("the item list cannot be read: {e}"),
                ));
                let i = report.problems.len() - 1;
                hits.entry(i).or_default().push("(item list)".into());
            }
        }
        for (i, items) in hits {
            report.problems[i].affected.push(Affected {
                snapshot: *sid,
                source: snap.source.name.clone(),
                items,
                repaired_as: copies.get(sid).copied(),
            });
        }
    }
    for (pack, (i, n)) in un.problems {
        report.problems[i].message = format!(
            "{n} chunk(s) or tree node(s) referenced by snapshots are in no index: pack {pack} \
             holds them, but no index names that pack"
        );
    }
    Ok(())
}

/// Chunks held by packs that no index names, and the one missing-chunk problem per such pack
/// (its position in the report and how many chunks it stands for).
struct Unindexed<'a> {
    chunks: &'a HashMap<ChunkId, PackId>,
    needed: &'a mut HashSet<PackId>,
    problems: HashMap<PackId, (usize, usize)>,
}

/// Walks one content; records in `hits` which problems it touches. Returns whether it is clean.
#[allow(clippy::too_many_arguments)]
fn walk_content(
    loader: &Loader<'_>,
    (index, un): (&Index, &mut Unindexed<'_>),
    bad: &mut HashMap<ChunkId, Vec<usize>>,
    report: &mut VerifyReport,
    content: &backstop_format::tree::Content,
    name: &str,
    hits: &mut Hits,
    clean_roots: &mut HashSet<ChunkId>,
) -> bool {
    let root = content.tree.map(|t| t.id);
    if root.is_some_and(|r| clean_roots.contains(&r)) {
        return true;
    }
    let mut touched: HashSet<usize> = HashSet::new();
    let mut check =
        |id: &ChunkId, what: &str, report: &mut VerifyReport, touched: &mut HashSet<usize>| {
            if let Some(ps) = bad.get(id) {
                touched.extend(ps.iter().copied());
            } else if let Some(pack) = un.chunks.get(id).filter(|_| !index.contains(id)) {
                // One problem per pack, not one per chunk: a lost index file of a large
                // database would otherwise be tens of thousands of lines.
                un.needed.insert(*pack);
                let (i, n) = un.problems.entry(*pack).or_insert_with(|| {
                    let mut p = problem("missing-chunk", pack.to_hex(), String::new());
                    p.repair = Some(Repair::Index);
                    report.problems.push(p);
                    (report.problems.len() - 1, 0)
                });
                *n += 1;
                bad.insert(*id, vec![*i]);
                touched.insert(*i);
            } else if !index.contains(id) {
                report.problems.push(problem(
                    "missing-chunk",
                    id.to_hex(),
                    format!("{what} referenced by a snapshot but not in any index"),
                ));
                let i = report.problems.len() - 1;
                bad.insert(*id, vec![i]);
                touched.insert(i);
            }
        };
    let mut nodes = Vec::new();
    let r = loader.walk(content, &mut |n| nodes.push(n.id), &mut |c| {
        check(&c.id, "chunk", report, &mut touched);
        Ok(())
    });
    for id in &nodes {
        check(id, "tree node", report, &mut touched);
    }
    // Damage that only reading shows (a structural verify did not read the packs).
    if let Err(e) = r
        && touched.is_empty()
    {
        report
            .problems
            .push(problem("damaged-chunk", name.to_string(), e.to_string()));
        touched.insert(report.problems.len() - 1);
    }
    for i in &touched {
        hits.entry(*i).or_default().push(name.to_string());
    }
    if touched.is_empty()
        && let Some(r) = root
    {
        clean_roots.insert(r);
    }
    touched.is_empty()
}
