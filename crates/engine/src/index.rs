//! The in-memory index: where each chunk is stored.
//!
//! One entry is the 32-byte id plus 28 bytes of location, in a vector sorted by id (chunks
//! added later go to a small hash map keyed by the id's own first bytes: ids are uniformly
//! random, so hashing them again is wasted work). A 1 GiB SQLite database at 4 KiB pages is
//! 262,144 entries, about 16 MiB.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use backstop_format::pack::{BlobEntry, BlobKind, IndexFile, IndexPack};
use backstop_format::{ChunkId, IndexId, PackId};
use backstop_storage::Kind;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::repo::Repository;

/// Uses the first eight bytes of an id as its hash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // ChunkId hashes as its [u8; 32], which arrives as a length prefix then the bytes.
        if bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        }
    }
}

/// A map keyed by chunk id, hashed by the id's own bytes.
pub type IdMap<V> = HashMap<ChunkId, V, BuildHasherDefault<IdHasher>>;
/// A set of chunk ids, hashed by the ids' own bytes.
pub type IdSet = std::collections::HashSet<ChunkId, BuildHasherDefault<IdHasher>>;

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
    /// `starts[b]` is the first position in `sorted` whose id begins with the 16 bits `b`:
    /// a lookup searches a bucket of a few entries instead of the whole vector.
    starts: Vec<u32>,
    recent: IdMap<Location>,
    packs: Vec<PackInfo>,
    pack_pos: HashMap<PackId, u32>,
    /// Index files loaded.
    pub files: Vec<IndexId>,
}

impl Index {
    /// Loads every index file. Files that cannot be read are returned as problems rather than
    /// failing: a backup can still run (it stores again what it cannot find), and verify names
    /// them.
    pub fn load(repo: &Repository) -> Result<(Self, Vec<(String, String)>)> {
        let names = repo.storage().list(Kind::Index)?;
        let mut idx = Index::default();
        let mut problems = Vec::new();
        // Every entry takes at least its 32-byte id in a file (ids do not compress), so this
        // bounds the number of entries; capacity that is never touched costs no memory.
        let bound: u64 = names.iter().map(|o| o.size / 32).sum();
        idx.sorted
            .reserve_exact(usize::try_from(bound).unwrap_or(0));
        // A few files at a time, decoded in parallel: decoded files are dropped as soon as
        // their entries are in the vector, so loading never holds the index twice.
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
                            idx.files.push(id);
                        }
                        for p in &file.packs {
                            let pos = idx.pack_position(p);
                            idx.sorted
                                .extend(p.blobs.iter().map(|b| (b.id, location(pos, b))));
                        }
                    }
                    Err(e) => problems.push((name, e)),
                }
            }
        }
        // A chunk stored in several packs (two backups that ran at once) keeps one location.
        idx.sorted.sort_unstable_by_key(|e| e.0);
        idx.sorted.dedup_by(|a, b| a.0 == b.0);
        idx.starts = bucket_starts(&idx.sorted);
        Ok((idx, problems))
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
    pub fn check_current(&self, repo: &Repository) -> Result<()> {
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
        // Ids sort by their bytes; comparing the first eight as one big-endian integer decides
        // almost every step of the search without a byte-wise comparison.
        let key = prefix(id);
        let bucket = if self.starts.is_empty() {
            &self.sorted[..]
        } else {
            let b = (key >> 48) as usize;
            &self.sorted[self.starts[b] as usize..self.starts[b + 1] as usize]
        };
        match bucket.binary_search_by(|(k, _)| prefix(k).cmp(&key).then_with(|| k.cmp(id))) {
            Ok(i) => Some(bucket[i].1),
            Err(_) => self.recent.get(id).copied(),
        }
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
        self.sorted.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every chunk with its location.
    pub fn iter(&self) -> impl Iterator<Item = (&ChunkId, &Location)> {
        self.sorted
            .iter()
            .map(|(k, v)| (k, v))
            .chain(self.recent.iter())
    }
}

fn bucket_starts(sorted: &[(ChunkId, Location)]) -> Vec<u32> {
    let mut starts = vec![0u32; (1 << 16) + 1];
    let mut pos = 0usize;
    for (b, start) in starts.iter_mut().enumerate() {
        while pos < sorted.len() && ((prefix(&sorted[pos].0) >> 48) as usize) < b {
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
