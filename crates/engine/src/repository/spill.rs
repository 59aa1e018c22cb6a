//! Sorted tables of chunk ids in scratch files: how a backup of a large repository answers
//! "is this chunk stored?" without holding every id in memory.
//!
//! A [`SortedTable`] is a run of fixed-size records sorted by their first 32 bytes (a chunk id,
//! no id twice) in a scratch file. In memory it keeps the first id of each block of about
//! 4 KiB of records (the fence table: 32 bytes per block, under half a byte per record) and a
//! blocked Bloom filter (12 bits per record, one cache line per lookup). A lookup asks the
//! filter; only a "maybe" reads the one block the fences point to (a positional read: no
//! mmap, which would need `unsafe`) and searches it for the full 32-byte id.
//!
//! Correctness rests on one rule: **a table answers "stored" only after finding the whole id in
//! the file.** The filter can only say "maybe" wrongly (then the read finds nothing, at the
//! cost of one read), never "no" for an id it holds, since every id is added to it as its
//! record is written. A wrong "stored" would lose data (the chunk would never be written); a
//! wrong "not stored" only stores a chunk twice, which the index tolerates (a chunk found in
//! two packs keeps one location). So every failure to read the file counts as "not stored"
//! and is reported, never as "stored".
//!
//! Crash safety: scratch files are anonymous (`tempfile::tempfile_in`: unlinked at once on
//! Unix, delete-on-close on Windows), so a crash leaves nothing behind and nothing is ever read
//! back from an earlier run: each backup builds its tables again from the index files it
//! loaded (under the lock that proves them current, see `Index::check_current`). They live in
//! the system's temporary folder unless [`SpillOptions::dir`] names another.
//!
//! Two users: `Index` spills the entries of a large repository into one table with locations
//! ([`IndexBuilder`]), sorted by bucketing (a first pass writes each entry to the bucket of its
//! id's first bits, a second sorts each bucket in memory and appends it to the table), and
//! [`NewChunks`], the backup's own set of new chunks, keeps the latest ids in a hash set and
//! moves them to a sorted run when it is full.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use backstop_format::ChunkId;

use crate::repository::ids::IdSet;

/// Bytes read for one lookup (at most): a block of records.
const BLOCK_BYTES: usize = 4096;
/// Bloom filter bits per id; with 8 probes in one 512-bit block, about 0.5 % false "maybe".
const BLOOM_BITS_PER_ID: u64 = 12;
const BLOOM_PROBES: u32 = 8;
/// Bytes a writer gathers before one positional write.
const WRITE_BUFFER: usize = 256 << 10;

/// When a backup moves what it must look up into scratch files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillOptions {
    /// Index entries above which the index is kept in a sorted scratch file (with a small
    /// table and a filter in memory) instead of in memory. Counted before loading, from the
    /// index files' sizes (every entry takes at least 32 bytes there), so it is an upper bound
    /// of the real count. The default, 524,288, keeps a repository of about 1.4 GiB of 4 KiB
    /// database pages (27 MiB of index in memory) on the in-memory path.
    pub index_entries: u64,
    /// New chunks a backup keeps in its in-memory set before it moves them to a sorted run in
    /// a scratch file. The default, 229,376, fills a hash table of 2^18 slots (8.6 MiB) to
    /// its load limit, so the set never grows past it.
    pub new_chunks: usize,
    /// Database pages above which a SQLite capture's integrity check keeps its page summaries
    /// in a scratch file (`backstop_sources::ScratchOptions::check_pages_in_memory`).
    pub check_pages: u64,
    /// Patch records of a delta (an item that changed in many places) kept in memory while it
    /// is built; past them the earlier records move to a scratch file (`store::patches`). The
    /// default, 8,192, is about 280 KiB.
    pub patches: u64,
    /// Where scratch files go; `None` is the system's temporary folder.
    pub dir: Option<PathBuf>,
}

impl Default for SpillOptions {
    fn default() -> Self {
        Self {
            index_entries: 1 << 19,
            new_chunks: 7 << 15,
            check_pages: backstop_sources::ScratchOptions::default().check_pages_in_memory,
            patches: 1 << 13,
            dir: None,
        }
    }
}

impl SpillOptions {
    /// The same options with every threshold at `entries`: what a test uses to force the
    /// on-disk path on a small repository (0 spills everything).
    pub fn all_above(entries: u64) -> Self {
        Self {
            index_entries: entries,
            new_chunks: usize::try_from(entries).unwrap_or(usize::MAX),
            check_pages: entries,
            patches: entries,
            dir: None,
        }
    }

    /// What a source's captures are told (see `Source::use_scratch`).
    pub fn for_sources(&self) -> backstop_sources::ScratchOptions {
        backstop_sources::ScratchOptions {
            dir: self.dir.clone(),
            check_pages_in_memory: self.check_pages,
        }
    }

    pub(crate) fn scratch(&self) -> io::Result<Scratch> {
        let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        let file = tempfile::tempfile_in(&dir).map_err(|e| annotate(&dir, e))?;
        Ok(Scratch { file, dir, end: 0 })
    }
}

/// An anonymous scratch file, written by appending and read by position.
pub(crate) struct Scratch {
    file: File,
    dir: PathBuf,
    end: u64,
}

impl Scratch {
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let at = self.end;
        write_all_at(&self.file, bytes, at).map_err(|e| annotate(&self.dir, e))?;
        self.end += bytes.len() as u64;
        Ok(at)
    }

    pub(crate) fn read(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        read_exact_at(&self.file, buf, at).map_err(|e| annotate(&self.dir, e))
    }
}

/// Says which folder a scratch file failed in.
fn annotate(dir: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("scratch file in {}: {e}", dir.display()))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, at)
}

/// `seek_read` moves the file's cursor, which nothing here uses: every access is positional.
#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, at) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut at: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A blocked Bloom filter over chunk ids: each id sets 8 bits in one 512-bit block. Ids are
/// uniformly random (keyed hashes of content), so their own bytes serve as the hashes.
pub(crate) struct Bloom {
    words: Vec<u64>,
    blocks: u64,
}

impl Bloom {
    pub fn with_capacity(ids: u64) -> Self {
        let blocks = (ids * BLOOM_BITS_PER_ID).div_ceil(512).max(1);
        Self {
            words: vec![0; usize::try_from(blocks * 8).expect("a filter that fits in memory")],
            blocks,
        }
    }

    /// The block (its first word) and the 8 bits of `id`, as (word, mask) pairs.
    fn probes(&self, id: &ChunkId) -> (usize, impl Iterator<Item = (usize, u64)> + use<>) {
        let b = id.as_bytes();
        let h1 = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        let h2 = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
        let block = ((u128::from(h1) * u128::from(self.blocks)) >> 64) as usize * 8;
        let probes = (0..BLOOM_PROBES).map(move |i| {
            let bit = (h2 >> (i * 8)) as usize & 511;
            (bit / 64, 1u64 << (bit % 64))
        });
        (block, probes)
    }

    pub fn insert(&mut self, id: &ChunkId) {
        let (block, probes) = self.probes(id);
        for (w, mask) in probes {
            self.words[block + w] |= mask;
        }
    }

    /// False only for an id never inserted.
    pub fn may_contain(&self, id: &ChunkId) -> bool {
        let (block, mut probes) = self.probes(id);
        probes.all(|(w, mask)| self.words[block + w] & mask != 0)
    }

    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// A run of records sorted by id in a scratch file, found through fences and a filter (see
/// the module documentation).
pub(crate) struct SortedTable {
    /// Offset of the first record in the scratch file.
    base: u64,
    record: usize,
    per_block: usize,
    len: u64,
    /// The first id of each block.
    fences: Vec<ChunkId>,
    bloom: Bloom,
}

impl SortedTable {
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The record of `id`, if the table holds it: the whole id was found in the file.
    pub fn find(&self, scratch: &Scratch, id: &ChunkId) -> io::Result<Option<Record>> {
        if self.len == 0 || !self.bloom.may_contain(id) {
            return Ok(None);
        }
        let block = self.fences.partition_point(|f| f <= id);
        if block == 0 {
            return Ok(None);
        }
        let block = block - 1;
        let first = (block * self.per_block) as u64;
        let count = (self.len - first).min(self.per_block as u64) as usize;
        let mut buf = [0u8; BLOCK_BYTES];
        let bytes = &mut buf[..count * self.record];
        scratch.read(bytes, self.base + first * self.record as u64)?;
        let (mut lo, mut hi) = (0, count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let r = &bytes[mid * self.record..(mid + 1) * self.record];
            match r[..32].cmp(id.as_bytes().as_slice()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(Record::from(r))),
            }
        }
        Ok(None)
    }

    /// Bytes of memory the table holds.
    pub fn memory(&self) -> usize {
        self.fences.len() * 32 + self.bloom.bytes()
    }
}

/// One record as read back: at most a block's worth of bytes, its id first.
#[derive(Clone, Copy)]
pub(crate) struct Record {
    bytes: [u8; 64],
    len: usize,
}

impl Record {
    fn from(r: &[u8]) -> Self {
        let mut bytes = [0u8; 64];
        bytes[..r.len()].copy_from_slice(r);
        Self {
            bytes,
            len: r.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Writes one [`SortedTable`] at the end of a scratch file, from records given in id order.
pub(crate) struct TableWriter {
    table: SortedTable,
    buf: Vec<u8>,
    last: Option<ChunkId>,
}

impl TableWriter {
    /// A table of `record`-byte records (at most 64, the id first) of which there are at most
    /// `capacity` (sizes the filter).
    pub fn new(scratch: &Scratch, record: usize, capacity: u64) -> Self {
        assert!(
            (32..=64).contains(&record),
            "records hold an id and fit a Record"
        );
        Self {
            table: SortedTable {
                base: scratch.end,
                record,
                per_block: BLOCK_BYTES / record,
                len: 0,
                fences: Vec::new(),
                bloom: Bloom::with_capacity(capacity),
            },
            buf: Vec::with_capacity(WRITE_BUFFER),
            last: None,
        }
    }

    /// Appends a record. Ids must come in increasing order; a repeated id is skipped (the first
    /// record of an id is kept).
    pub fn push(&mut self, scratch: &mut Scratch, record: &[u8]) -> io::Result<()> {
        debug_assert_eq!(record.len(), self.table.record);
        let id = ChunkId(record[..32].try_into().expect("records start with an id"));
        if let Some(last) = self.last {
            if last == id {
                return Ok(());
            }
            debug_assert!(last < id, "records come in id order");
        }
        self.last = Some(id);
        if self.table.len.is_multiple_of(self.table.per_block as u64) {
            self.table.fences.push(id);
        }
        self.table.bloom.insert(&id);
        self.table.len += 1;
        self.buf.extend_from_slice(record);
        if self.buf.len() + self.table.record > WRITE_BUFFER {
            self.flush(scratch)?;
        }
        Ok(())
    }

    fn flush(&mut self, scratch: &mut Scratch) -> io::Result<()> {
        if !self.buf.is_empty() {
            scratch.append(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub fn finish(mut self, scratch: &mut Scratch) -> io::Result<SortedTable> {
        self.flush(scratch)?;
        self.table.fences.shrink_to_fit();
        Ok(self.table)
    }
}

/// A scratch file and the one table in it: the entries of a large index.
pub(crate) struct DiskTable {
    scratch: Scratch,
    table: SortedTable,
}

impl DiskTable {
    pub fn find(&self, id: &ChunkId) -> io::Result<Option<Record>> {
        self.table.find(&self.scratch, id)
    }

    pub fn len(&self) -> u64 {
        self.table.len()
    }

    pub fn memory(&self) -> usize {
        self.table.memory()
    }
}

/// Sorts records by id without holding them all: the first pass appends each record to the
/// bucket of its id's first bits (buffered, in a scratch file), the second reads one bucket at
/// a time, sorts it and appends it to the table.
pub(crate) struct IndexBuilder {
    record: usize,
    bits: u32,
    buckets: Vec<Bucket>,
    /// Bytes a bucket gathers in memory before it is appended to `scratch`.
    buffer: usize,
    scratch: Scratch,
    options: SpillOptions,
    count: u64,
}

#[derive(Default)]
struct Bucket {
    buf: Vec<u8>,
    /// (offset, length) of the bucket's parts in the scratch file.
    parts: Vec<(u64, usize)>,
}

/// Records per bucket aimed at: a bucket sorted in memory is a few MiB.
const BUCKET_RECORDS: u64 = 64 << 10;
/// Memory for the first pass's bucket buffers, all together.
const BUCKET_BUFFERS: usize = 4 << 20;

impl IndexBuilder {
    /// For at most `bound` records of `record` bytes.
    pub fn new(options: &SpillOptions, record: usize, bound: u64) -> io::Result<Self> {
        let buckets = (bound / BUCKET_RECORDS).next_power_of_two().clamp(1, 4096);
        let bits = buckets.trailing_zeros();
        let buckets = buckets as usize;
        Ok(Self {
            record,
            bits,
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            buffer: (BUCKET_BUFFERS / buckets).clamp(4 << 10, 256 << 10),
            scratch: options.scratch()?,
            options: options.clone(),
            count: 0,
        })
    }

    pub fn push(&mut self, record: &[u8]) -> io::Result<()> {
        debug_assert_eq!(record.len(), self.record);
        let b = if self.bits == 0 {
            0
        } else {
            (u32::from_be_bytes(record[..4].try_into().expect("4 bytes")) >> (32 - self.bits))
                as usize
        };
        let bucket = &mut self.buckets[b];
        if bucket.buf.capacity() == 0 {
            bucket.buf.reserve_exact(self.buffer);
        }
        bucket.buf.extend_from_slice(record);
        self.count += 1;
        if bucket.buf.len() + self.record > self.buffer {
            let at = self.scratch.append(&bucket.buf)?;
            bucket.parts.push((at, bucket.buf.len()));
            bucket.buf.clear();
        }
        Ok(())
    }

    /// Sorts the buckets into one table (in a scratch file of its own) and drops the buckets.
    pub fn finish(mut self) -> io::Result<DiskTable> {
        let mut out = self.options.scratch()?;
        let mut writer = TableWriter::new(&out, self.record, self.count);
        let mut all = Vec::new();
        for bucket in std::mem::take(&mut self.buckets) {
            all.clear();
            for &(at, len) in &bucket.parts {
                let from = all.len();
                all.resize(from + len, 0);
                self.scratch.read(&mut all[from..], at)?;
            }
            all.extend_from_slice(&bucket.buf);
            drop(bucket);
            let mut records: Vec<&[u8]> = all.chunks_exact(self.record).collect();
            // Stable: of two records of one id, the first pushed is kept.
            records.sort_by(|a, b| a[..32].cmp(&b[..32]));
            for r in records {
                writer.push(&mut out, r)?;
            }
        }
        let table = writer.finish(&mut out)?;
        Ok(DiskTable {
            scratch: out,
            table,
        })
    }
}

/// The ids a backup stored so far: the latest in a hash set, older ones in sorted runs in a
/// scratch file (see the module documentation). Lookups in the runs take `&self` and may run
/// in parallel; only [`NewChunks::insert`] and [`NewChunks::spill_if_full`] change the set.
pub(crate) struct NewChunks {
    recent: IdSet,
    options: SpillOptions,
    runs: Vec<SortedTable>,
    scratch: Option<Scratch>,
}

impl NewChunks {
    pub fn new(options: SpillOptions) -> Self {
        Self {
            recent: IdSet::default(),
            options,
            runs: Vec::new(),
            scratch: None,
        }
    }

    /// Makes room for `n` more ids, up to the set's limit (the rest will be in runs).
    pub fn reserve(&mut self, n: u64) {
        let room = self.options.new_chunks.saturating_sub(self.recent.len());
        self.recent
            .reserve(usize::try_from(n).unwrap_or(usize::MAX).min(room));
    }

    /// Whether `id` is in one of the runs: found whole in the scratch file.
    pub fn in_runs(&self, id: &ChunkId) -> io::Result<bool> {
        let Some(scratch) = &self.scratch else {
            return Ok(false);
        };
        for run in &self.runs {
            if run.find(scratch, id)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Adds `id`, which the caller found in no run; false if the set held it already.
    pub fn insert(&mut self, id: ChunkId) -> bool {
        self.recent.insert(id)
    }

    /// Whether the set holds `id` (in memory or in a run).
    pub fn contains(&self, id: &ChunkId) -> io::Result<bool> {
        Ok(self.recent.contains(id) || self.in_runs(id)?)
    }

    /// Moves the in-memory ids to a new sorted run once there are as many as allowed.
    pub fn spill_if_full(&mut self) -> io::Result<()> {
        if self.recent.is_empty() || self.recent.len() < self.options.new_chunks {
            return Ok(());
        }
        let scratch = match &mut self.scratch {
            Some(s) => s,
            None => self.scratch.insert(self.options.scratch()?),
        };
        let mut ids: Vec<ChunkId> = self.recent.drain().collect();
        ids.sort_unstable();
        let mut writer = TableWriter::new(scratch, 32, ids.len() as u64);
        for id in &ids {
            writer.push(scratch, id.as_bytes())?;
        }
        self.runs.push(writer.finish(scratch)?);
        Ok(())
    }

    /// Ids held, in memory and in runs.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.recent.len() as u64 + self.runs.iter().map(SortedTable::len).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ChunkId {
        ChunkId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn the_filter_never_forgets_and_rarely_guesses() {
        let mut bloom = Bloom::with_capacity(10_000);
        for n in 0..10_000 {
            bloom.insert(&id(n));
        }
        assert!((0..10_000).all(|n| bloom.may_contain(&id(n))));
        let wrong = (10_000..110_000)
            .filter(|&n| bloom.may_contain(&id(n)))
            .count();
        assert!(wrong < 1_500, "{wrong} false maybes in 100,000");
    }

    fn table_of(ids: &[ChunkId], record: usize) -> DiskTable {
        let mut b =
            IndexBuilder::new(&SpillOptions::default(), record, ids.len() as u64 * 4).unwrap();
        for (i, id) in ids.iter().enumerate() {
            let mut r = vec![0u8; record];
            r[..32].copy_from_slice(id.as_bytes());
            r[32..].fill(i as u8);
            b.push(&r).unwrap();
        }
        b.finish().unwrap()
    }

    #[test]
    fn a_table_finds_every_record_and_nothing_else() {
        for n in [0u64, 1, 70, 71, 72, 5_000, 300_000] {
            let ids: Vec<ChunkId> = (0..n).map(id).collect();
            let t = table_of(&ids, 57);
            assert_eq!(t.len(), n);
            for (i, x) in ids.iter().enumerate() {
                let r = t.find(x).unwrap().expect("stored");
                assert_eq!(&r.bytes()[..32], x.as_bytes());
                assert_eq!(r.bytes()[40], i as u8);
            }
            for m in n..n + 2_000 {
                assert!(t.find(&id(m)).unwrap().is_none());
            }
        }
    }

    #[test]
    fn a_hit_in_the_filter_is_confirmed_against_the_whole_id() {
        // Ids that share everything the filter and the fences look at with a stored id, and
        // differ only in the last byte: the filter says "maybe" for all of them, the file no.
        let ids: Vec<ChunkId> = (0..1_000).map(id).collect();
        let t = table_of(&ids, 40);
        for x in &ids {
            let mut twin = *x;
            twin.0[31] ^= 1;
            assert!(t.table.bloom.may_contain(&twin));
            assert!(t.find(&twin).unwrap().is_none());
        }
    }

    #[test]
    fn duplicates_keep_the_first_record() {
        let ids = [id(1), id(2), id(1), id(3), id(2)];
        let t = table_of(&ids, 33);
        assert_eq!(t.len(), 3);
        assert_eq!(t.find(&id(1)).unwrap().unwrap().bytes()[32], 0);
        assert_eq!(t.find(&id(2)).unwrap().unwrap().bytes()[32], 1);
    }

    #[test]
    fn new_chunks_spill_to_runs_and_are_still_found() {
        let mut set = NewChunks::new(SpillOptions::all_above(100));
        for n in 0..1_050 {
            assert!(!set.contains(&id(n)).unwrap());
            assert!(!set.in_runs(&id(n)).unwrap());
            assert!(set.insert(id(n)));
            set.spill_if_full().unwrap();
        }
        assert_eq!(set.runs.len(), 10);
        assert_eq!(set.len(), 1_050);
        for n in 0..1_050 {
            assert!(set.contains(&id(n)).unwrap(), "{n}");
        }
        assert!(set.in_runs(&id(5)).unwrap());
        assert!(!set.in_runs(&id(1_049)).unwrap());
        for n in 1_050..3_000 {
            assert!(!set.contains(&id(n)).unwrap());
        }
    }

    #[test]
    fn a_missing_scratch_folder_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let options = SpillOptions {
            dir: Some(dir.path().join("missing")),
            ..SpillOptions::all_above(0)
        };
        let err = IndexBuilder::new(&options, 40, 10)
            .err()
            .expect("no folder");
        assert!(err.to_string().contains("missing"), "{err}");
        let mut set = NewChunks::new(options);
        set.insert(id(1));
        assert!(set.spill_if_full().is_err());
    }
}
