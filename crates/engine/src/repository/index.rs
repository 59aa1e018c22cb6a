//! The index: where each chunk is stored.
//!
//! In memory (the fast path, and always for [`Index::load`]): one entry is the 32-byte id plus
//! 28 bytes of location, in a vector sorted by id (chunks added later go to a small hash map
//! keyed by the id's own first bytes: ids are uniformly random, so hashing them again is wasted
//! work). A 1 GiB SQLite database at 4 KiB pages is 262,144 entries, about 18 MiB with the
//! lookup tables (about 73 bytes per entry in all).
//!
//! On disk ([`Index::load_for_backup`] of a repository past [`SpillOptions::index_entries`]):
//! the entries go to a sorted table in a scratch file (57 bytes each: id, location), and memory
//! holds only the table's fences and filter, about 2 bytes per entry (see `crate::repository::spill`, which
//! also argues why a lookup there can say "stored" only for an id it read back whole). A 10 GiB
//! database (2.6 M entries) then costs about 5 MiB instead of 190. A lookup that the filter
//! passes costs one positional read of at most 4 KiB, which the system's page cache serves;
//! `iter` is not available on this path (verify, stats and prune load the index whole).

use std::collections::HashMap;
use std::sync::OnceLock;

use backstop_format::pack::{BlobEntry, BlobKind, IndexFile, IndexPack};
use backstop_format::{ChunkId, IndexId, PackId};
use backstop_storage::Kind;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::repository::Repository;
pub use crate::repository::ids::{IdHasher, IdMap, IdSet};
use crate::repository::spill::{DiskTable, IndexBuilder, SpillOptions};

/// Bytes of one entry in the on-disk table: the id, six u32 of location, a flags byte.
const RECORD: usize = 32 + 6 * 4 + 1;

/// Where one chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Position in [`Index::packs`].
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    /// Where the chunk starts in its frame's plaintext.
    pub raw_offset: u32,
    /// Plaintext length of the frame.
    pub frame_length: u32,
    pub compressed: bool,
    pub kind: BlobKind,
}

/// A pack known to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackInfo {
    pub id: PackId,
    pub size: u64,
}

/// The union of all index files.
///
/// What was loaded lives in one vector sorted by id (exactly sized: no hash table slack, which
/// for a power-of-two table can double the memory); packs added afterwards go to a small map.
#[derive(Debug, Default)]
pub struct Index {
    sorted: Vec<(ChunkId, Location)>,
    /// The first eight bytes of each id in `sorted`, as a big-endian integer: a lookup searches
    /// these (eight per cache line) and reads one entry of `sorted`, instead of an entry (60
    /// bytes, another cache miss) per step of the search.
    prefixes: Vec<u64>,
    /// `starts[b]` is the first position in `sorted` whose id begins with the `bits` bits `b`:
    /// a lookup searches a bucket of a few entries instead of the whole vector.
    starts: Vec<u32>,
    bits: u32,
    recent: IdMap<Location>,
    packs: Vec<PackInfo>,
    pack_pos: HashMap<PackId, u32>,
    /// The entries loaded, when they are kept in a scratch file instead of `sorted`.
    disk: Option<DiskTable>,
    /// The first failure to read `disk` (such a lookup counted as "not stored").
    disk_error: OnceLock<String>,
    /// When a backup with this index moves what it looks up to scratch files.
    spill: SpillOptions,
    /// Index files loaded.
    pub files: Vec<IndexId>,
}

impl std::fmt::Debug for DiskTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTable")
            .field("len", &self.len())
            .field("memory", &self.memory())
            .finish()
    }
}

/// An index file that could not be read: the index is loaded without it (a backup stores again
/// what it cannot find, and `verify` names the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexProblem {
    /// The index file's name.
    pub file: String,
    pub error: String,
}

impl std::fmt::Display for IndexProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "index file {} cannot be read ({})",
            self.file, self.error
        )
    }
}

/// An index as loaded, with the files that could not be read.
#[derive(Debug)]
pub struct LoadedIndex {
    pub index: Index,
    pub unreadable: Vec<IndexProblem>,
}

impl Index {
    /// Loads every index file into memory. Files that cannot be read are returned as problems
    /// rather than failing: a backup can still run (it stores again what it cannot find), and
    /// verify names them.
    pub fn load(repo: &Repository) -> Result<LoadedIndex> {
        let names = repo.storage().list(Kind::Index)?;
        let mut idx = Index::default();
        // Every entry takes at least its 32-byte id in a file (ids do not compress), so this
        // bounds the number of entries; capacity that is never touched costs no memory.
        let bound: u64 = names.iter().map(|o| o.size / 32).sum();
        idx.sorted
            .reserve_exact(usize::try_from(bound).unwrap_or(0));
        let problems = idx.load_files(repo, &names, |idx, pos, p| {
            idx.sorted
                .extend(p.blobs.iter().map(|b| (b.id, location(pos, b))));
            Ok(())
        })?;
        idx.sort();
        Ok(LoadedIndex {
            index: idx,
            unreadable: problems,
        })
    }

    /// Loads the index for a backup: like [`Index::load`] for a repository of up to
    /// `spill.index_entries` entries; past that, the entries go to a sorted scratch file (see
    /// the module documentation) and only lookups (`get`, `contains`) are available. The
    /// backup's own set of new chunks follows `spill` too.
    pub fn load_for_backup(repo: &Repository, spill: &SpillOptions) -> Result<LoadedIndex> {
        let names = repo.storage().list(Kind::Index)?;
        let bound: u64 = names.iter().map(|o| o.size / 32).sum();
        if bound <= spill.index_entries {
            let mut loaded = Self::load(repo)?;
            loaded.index.spill = spill.clone();
            return Ok(loaded);
        }
        let mut idx = Index {
            spill: spill.clone(),
            ..Index::default()
        };
        let mut builder = IndexBuilder::new(spill, RECORD, bound).map_err(Error::scratch)?;
        let mut record = [0u8; RECORD];
        let problems = idx.load_files(repo, &names, |_, pos, p| {
            for b in &p.blobs {
                encode(&mut record, &b.id, &location(pos, b));
                builder.push(&record).map_err(Error::scratch)?;
            }
            Ok(())
        })?;
        idx.disk = Some(builder.finish().map_err(Error::scratch)?);
        Ok(LoadedIndex {
            index: idx,
            unreadable: problems,
        })
    }

    /// Decodes the index files `names`, a few at a time in parallel, and hands each pack to
    /// `add` with its position in [`Index::packs`]: decoded files are dropped as soon as their
    /// entries are added, so loading never holds the index twice.
    fn load_files(
        &mut self,
        repo: &Repository,
        names: &[backstop_storage::ObjectInfo],
        mut add: impl FnMut(&mut Self, u32, &IndexPack) -> Result<()>,
    ) -> Result<Vec<IndexProblem>> {
        let mut problems = Vec::new();
        for group in names.chunks(2 * rayon::current_num_threads().max(1)) {
            let decoded: Vec<(String, std::result::Result<IndexFile, String>)> = group
                .par_iter()
                .map(|o| {
                    let r = repo
                        .storage()
                        .read(Kind::Index, &o.name)
                        .map_err(|e| e.to_string())
                        .and_then(|raw| {
                            IndexFile::decode(repo.crypter(), &raw).map_err(|e| e.to_string())
                        });
                    (o.name.clone(), r)
                })
                .collect();
            for (name, r) in decoded {
                match r {
                    Ok(file) => {
                        if let Ok(id) = IndexId::from_hex(&name) {
                            self.files.push(id);
                        }
                        for p in &file.packs {
                            let pos = self.pack_position(p);
                            add(self, pos, p)?;
                        }
                    }
                    Err(error) => problems.push(IndexProblem { file: name, error }),
                }
            }
        }
        Ok(problems)
    }

    /// Sorts the loaded entries and builds the lookup tables.
    fn sort(&mut self) {
        // A chunk stored in several packs (two backups that ran at once) keeps one location.
        self.sorted.sort_unstable_by_key(|e| e.0);
        self.sorted.dedup_by(|a, b| a.0 == b.0);
        self.prefixes = self.sorted.iter().map(|(id, _)| prefix(id)).collect();
        // Two to four entries per bucket: the bucket table costs one or two bytes per entry.
        self.bits = (usize::BITS - (self.sorted.len() / 4).leading_zeros()).clamp(8, 24);
        self.starts = bucket_starts(&self.prefixes, self.bits);
    }

    fn pack_position(&mut self, p: &IndexPack) -> u32 {
        match self.pack_pos.get(&p.id) {
            Some(&pos) => pos,
            None => {
                let pos = u32::try_from(self.packs.len()).expect("fewer than 4 billion packs");
                self.packs.push(PackInfo {
                    id: p.id,
                    size: p.size,
                });
                self.pack_pos.insert(p.id, pos);
                pos
            }
        }
    }

    /// Fails with [`Error::IndexChanged`] unless every index file this index was loaded from
    /// is still there. Prune deletes old index files before the packs they name, so once a
    /// lock is held (no prune running), this proves that every chunk the index knows still
    /// exists: a backup may deduplicate against it, a restore may read it.
    pub(crate) fn check_current(&self, repo: &Repository) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let names: std::collections::HashSet<String> = repo
            .storage()
            .list(Kind::Index)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        if self.files.iter().all(|f| names.contains(&f.to_hex())) {
            Ok(())
        } else {
            Err(Error::IndexChanged)
        }
    }

    /// Adds a pack's entries. A chunk already known keeps its location.
    pub fn add_pack(&mut self, p: &IndexPack) {
        let pos = self.pack_position(p);
        for b in &p.blobs {
            if !self.contains(&b.id) {
                self.recent.insert(b.id, location(pos, b));
            }
        }
    }

    pub fn get(&self, id: &ChunkId) -> Option<Location> {
        // Ids sort by their bytes, so by their first eight bytes read as a big-endian integer.
        let key = prefix(id);
        let (lo, hi) = if self.starts.is_empty() {
            (0, self.prefixes.len())
        } else {
            let b = (key >> (64 - self.bits)) as usize;
            (self.starts[b] as usize, self.starts[b + 1] as usize)
        };
        let mut i = lo + self.prefixes[lo..hi].partition_point(|&k| k < key);
        while i < hi && self.prefixes[i] == key {
            if self.sorted[i].0 == *id {
                return Some(self.sorted[i].1);
            }
            i += 1;
        }
        if let Some(disk) = &self.disk {
            match disk.find(id) {
                Ok(Some(r)) => return Some(decode(r.bytes())),
                Ok(None) => {}
                // Not stored, as far as this backup can tell: the chunk is stored again (see
                // `crate::repository::spill`), and the failure is reported by `disk_error`.
                Err(e) => {
                    let _ = self.disk_error.set(e.to_string());
                }
            }
        }
        self.recent.get(id).copied()
    }

    /// Fails if a lookup in the on-disk table could not read it: such lookups answered "not
    /// stored", which is safe (the chunk was stored again) but must not pass unnoticed.
    pub fn disk_error(&self) -> Result<()> {
        match self.disk_error.get() {
            Some(e) => Err(Error::Scratch(e.clone())),
            None => Ok(()),
        }
    }

    /// When a backup with this index moves what it looks up to scratch files.
    pub fn spill_options(&self) -> &SpillOptions {
        &self.spill
    }

    /// Whether the entries are in a scratch file (see [`Index::load_for_backup`]).
    pub fn is_on_disk(&self) -> bool {
        self.disk.is_some()
    }

    pub fn contains(&self, id: &ChunkId) -> bool {
        self.get(id).is_some()
    }

    /// The position of a pack in [`Index::packs`].
    pub fn pack_position_of(&self, id: &PackId) -> Option<u32> {
        self.pack_pos.get(id).copied()
    }

    pub fn pack(&self, pos: u32) -> PackInfo {
        self.packs[pos as usize]
    }

    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    pub fn len(&self) -> usize {
        let disk = self.disk.as_ref().map_or(0, DiskTable::len);
        self.sorted.len() + self.recent.len() + usize::try_from(disk).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every chunk with its location, of an index loaded whole ([`Index::load`]; one kept on
    /// disk by [`Index::load_for_backup`] lists only the chunks added since).
    pub fn iter(&self) -> impl Iterator<Item = (&ChunkId, &Location)> {
        debug_assert!(self.disk.is_none(), "iter on an index kept on disk");
        self.sorted
            .iter()
            .map(|(k, v)| (k, v))
            .chain(self.recent.iter())
    }
}

fn bucket_starts(prefixes: &[u64], bits: u32) -> Vec<u32> {
    let mut starts = vec![0u32; (1 << bits) + 1];
    let mut pos = 0usize;
    for (b, start) in starts.iter_mut().enumerate() {
        while pos < prefixes.len() && ((prefixes[pos] >> (64 - bits)) as usize) < b {
            pos += 1;
        }
        *start = u32::try_from(pos).expect("fewer than 4 billion chunks");
    }
    starts
}

fn prefix(id: &ChunkId) -> u64 {
    u64::from_be_bytes(id.as_bytes()[..8].try_into().expect("ids are 32 bytes"))
}

fn location(pack: u32, b: &BlobEntry) -> Location {
    Location {
        pack,
        offset: b.offset,
        length: b.length,
        raw_length: b.raw_length,
        raw_offset: b.raw_offset,
        frame_length: b.frame_length,
        compressed: b.compressed,
        kind: b.kind,
    }
}

/// Writes an entry as a record of the on-disk table.
fn encode(out: &mut [u8; RECORD], id: &ChunkId, l: &Location) {
    out[..32].copy_from_slice(id.as_bytes());
    let fields = [
        l.pack,
        l.offset,
        l.length,
        l.raw_length,
        l.raw_offset,
        l.frame_length,
    ];
    for (i, v) in fields.iter().enumerate() {
        out[32 + 4 * i..36 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    out[RECORD - 1] = u8::from(l.compressed) | (u8::from(l.kind == BlobKind::Tree) << 1);
}

/// Reads a record of the on-disk table back (its id is the caller's).
fn decode(r: &[u8]) -> Location {
    let u = |i: usize| u32::from_le_bytes(r[32 + 4 * i..36 + 4 * i].try_into().expect("4 bytes"));
    let flags = r[RECORD - 1];
    Location {
        pack: u(0),
        offset: u(1),
        length: u(2),
        raw_length: u(3),
        raw_offset: u(4),
        frame_length: u(5),
        compressed: flags & 1 != 0,
        kind: if flags & 2 != 0 {
            BlobKind::Tree
        } else {
            BlobKind::Data
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pack: u32) -> Location {
        Location {
            pack,
            offset: 0,
            length: 1,
            raw_length: 1,
            raw_offset: 0,
            frame_length: 1,
            compressed: false,
            kind: BlobKind::Data,
        }
    }

    fn id(n: u64, shared_prefix: bool) -> ChunkId {
        let mut b = *blake3::hash(&n.to_le_bytes()).as_bytes();
        if shared_prefix {
            // Ids that differ only past the eight bytes the search compares first.
            b[..8].copy_from_slice(&[7; 8]);
        }
        ChunkId(b)
    }

    #[test]
    fn finds_every_entry_and_nothing_else() {
        for n in [0u64, 1, 5, 1000, 70_000] {
            let mut idx = Index::default();
            for i in 0..n {
                idx.sorted.push((id(i, i % 10 == 0), loc(i as u32)));
                // Duplicates keep one location.
                if i % 7 == 0 {
                    idx.sorted.push((id(i, i % 10 == 0), loc(i as u32)));
                }
            }
            idx.sort();
            assert_eq!(idx.len() as u64, n);
            for i in 0..n {
                assert_eq!(idx.get(&id(i, i % 10 == 0)).map(|l| l.pack), Some(i as u32));
            }
            for i in n..n + 500 {
                assert!(!idx.contains(&id(i, i % 2 == 0)));
            }
        }
    }
}
