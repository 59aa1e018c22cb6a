//! Where the check keeps its page summaries: in memory, or past a size in a scratch file.
//!
//! The summaries are written once, in page order, as the capture streams the pages, and read
//! once each by the walk, in tree order. In memory they take about 12 bytes a page (a 10 GiB
//! database: 33 MiB, the largest part of a backup's memory that grows with the database).
//! Past [`ScratchOptions::check_pages_in_memory`] pages they go to an anonymous scratch file
//! through a write buffer, and the walk reads them back in small blocks through a few cached
//! ones: leaves of one table mostly lie side by side, so most reads are served from a block
//! read for a neighbour. Plain `Seek` and `Read` on the file keep it portable.
//!
//! A scratch file that cannot be created, written or read never changes a verdict: the
//! check gives up (a false alarm) and SQLite's own `PRAGMA quick_check` decides, as for any
//! problem the check finds.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use crate::ScratchOptions;

/// Bytes read from the scratch file at a time.
const BLOCK: usize = 4096;
/// Blocks kept, chosen by block number (direct-mapped): 64 KiB in all.
const CACHED_BLOCKS: usize = 16;
/// The write buffer in front of the scratch file.
const WRITE_BUFFER: usize = 256 << 10;

pub(super) enum Summaries {
    Memory(Vec<u8>),
    File(Box<ScratchSummaries>),
}

pub(super) struct ScratchSummaries {
    out: BufWriter<File>,
    len: u64,
    /// Set at the first failure: what went wrong (the check then gives up).
    failed: Option<String>,
    /// Whether the write buffer was flushed for reading.
    readable: bool,
    /// Set at the first read that failed.
    read_failed: RefCell<Option<String>>,
    cache: RefCell<Vec<Option<CachedBlock>>>,
}

/// A block of the scratch file: its number and bytes.
type CachedBlock = (u64, Vec<u8>);

impl Summaries {
    /// In memory for up to `scratch.check_pages_in_memory` pages; else in a scratch file (in
    /// memory after all if the file cannot be made: the limit on pages bounds it).
    pub(super) fn new(page_count: u64, scratch: &ScratchOptions) -> Self {
        if page_count <= scratch.check_pages_in_memory {
            return Summaries::Memory(Vec::new());
        }
        let dir = scratch.dir.clone().unwrap_or_else(std::env::temp_dir);
        match tempfile::tempfile_in(&dir) {
            Ok(file) => Summaries::File(Box::new(ScratchSummaries {
                out: BufWriter::with_capacity(WRITE_BUFFER, file),
                len: 0,
                failed: None,
                readable: false,
                read_failed: RefCell::new(None),
                cache: RefCell::new(vec![None; CACHED_BLOCKS]),
            })),
            Err(_) => Summaries::Memory(Vec::new()),
        }
    }

    pub(super) fn len(&self) -> u64 {
        match self {
            Summaries::Memory(v) => v.len() as u64,
            Summaries::File(f) => f.len,
        }
    }

    pub(super) fn append(&mut self, bytes: &[u8]) {
        match self {
            Summaries::Memory(v) => v.extend_from_slice(bytes),
            Summaries::File(f) => {
                if f.failed.is_none()
                    && let Err(e) = f.out.write_all(bytes)
                {
                    f.failed = Some(format!("writing the check's scratch file: {e}"));
                }
                f.len += bytes.len() as u64;
            }
        }
    }

    /// Drops what was kept (the check gave up).
    pub(super) fn clear(&mut self) {
        *self = Summaries::Memory(Vec::new());
    }

    /// Ends the writing: what follows only reads. Returns the first failure, if any.
    pub(super) fn finish_writing(&mut self) -> Option<String> {
        let Summaries::File(f) = self else {
            return None;
        };
        if f.failed.is_none()
            && let Err(e) = f.out.flush()
        {
            f.failed = Some(format!("writing the check's scratch file: {e}"));
        }
        f.readable = true;
        f.failed.clone()
    }

    /// Bytes `start..end` (empty if they cannot be had: the caller's decoding then finds a
    /// summary that does not add up, and the check gives up).
    pub(super) fn get(&self, start: u64, end: u64) -> Cow<'_, [u8]> {
        if start > end || end > self.len() {
            return Cow::Borrowed(&[]);
        }
        match self {
            Summaries::Memory(v) => Cow::Borrowed(&v[start as usize..end as usize]),
            Summaries::File(f) => Cow::Owned(f.read(start, end).unwrap_or_else(|e| {
                f.read_failed.borrow_mut().get_or_insert(e);
                Vec::new()
            })),
        }
    }

    /// The first read of the scratch file that failed, if one did: the summaries read since
    /// were empty, so the walk's verdict does not count.
    pub(super) fn read_failure(&self) -> Option<String> {
        match self {
            Summaries::Memory(_) => None,
            Summaries::File(f) => f.read_failed.borrow().clone(),
        }
    }
}

impl ScratchSummaries {
    fn read(&self, start: u64, end: u64) -> Result<Vec<u8>, String> {
        if !self.readable {
            return Err("the check's scratch file was read before it was written".into());
        }
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        let mut at = start;
        while at < end {
            let block = at / BLOCK as u64;
            let from = (at - block * BLOCK as u64) as usize;
            let upto = (end - block * BLOCK as u64).min(BLOCK as u64) as usize;
            self.with_block(block, |bytes| {
                out.extend_from_slice(bytes.get(from..upto).unwrap_or_default());
            })
            .map_err(|e| format!("reading the check's scratch file: {e}"))?;
            at = (block + 1) * BLOCK as u64;
        }
        Ok(out)
    }

    /// Calls `f` with block `block` of the file, read into the cache if it is not there.
    fn with_block(&self, block: u64, f: impl FnOnce(&[u8])) -> std::io::Result<()> {
        let mut cache = self.cache.borrow_mut();
        let slot = &mut cache[(block % CACHED_BLOCKS as u64) as usize];
        if slot.as_ref().is_none_or(|(b, _)| *b != block) {
            let start = block * BLOCK as u64;
            let len = (self.len - start).min(BLOCK as u64) as usize;
            let mut bytes = slot.take().map(|(_, v)| v).unwrap_or_default();
            bytes.resize(len, 0);
            let mut file = self.out.get_ref();
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(&mut bytes)?;
            *slot = Some((block, bytes));
        }
        if let Some((_, bytes)) = slot {
            f(bytes);
        }
        Ok(())
    }
}

/// Pages whose summaries share one stored start offset in [`Extents`].
const GROUP: usize = 16;
/// A length byte that stands for a summary of 255 bytes or more, whose length is in
/// `Extents::long`.
const LONG: u8 = u8::MAX;

/// Where each page's summary lies in the summaries' byte stream, in about 1.25 bytes a page
/// instead of a 4-byte offset: a length byte per page and the start of every group of
/// [`GROUP`] pages. Page `p`'s summary starts at its group's start plus the lengths of the
/// pages before it in the group (each summary starts where the previous page's ends: they are
/// written in page order). The few summaries of 255 bytes or more (interior pages with many
/// children) keep their lengths in a list sorted by page, as pages come in order.
pub(super) struct Extents {
    starts: Vec<u32>,
    lens: Vec<u8>,
    long: Vec<(u32, u32)>,
}

impl Extents {
    /// Room for pages `0..pages`.
    pub(super) fn new(pages: usize) -> Self {
        Self {
            starts: vec![0; pages.div_ceil(GROUP)],
            lens: vec![0; pages],
            long: Vec::new(),
        }
    }

    fn len_of(&self, i: usize) -> u32 {
        match self.lens[i] {
            LONG => self
                .long
                .binary_search_by_key(&(i as u32), |&(p, _)| p)
                .map_or(0, |k| self.long[k].1),
            n => u32::from(n),
        }
    }

    /// The summed lengths of the pages before `i` in its group.
    fn before(&self, i: usize) -> u32 {
        (i / GROUP * GROUP..i).fold(0u32, |sum, j| sum.wrapping_add(self.len_of(j)))
    }

    /// Records page `i`'s summary as bytes `start..end`; pages are recorded in order, once
    /// each, each starting where the previous one ended. A page past the room is ignored.
    pub(super) fn set(&mut self, i: usize, start: u32, end: u32) {
        if i >= self.lens.len() {
            return;
        }
        let len = end.wrapping_sub(start);
        if len >= u32::from(LONG) {
            self.lens[i] = LONG;
            self.long.push((i as u32, len));
        } else {
            self.lens[i] = len as u8;
        }
        self.starts[i / GROUP] = start.wrapping_sub(self.before(i));
    }

    /// Page `i`'s summary, as `start..end` (empty for a page never recorded).
    pub(super) fn get(&self, i: usize) -> Option<(u32, u32)> {
        if i >= self.lens.len() {
            return None;
        }
        let start = self.starts[i / GROUP].wrapping_add(self.before(i));
        Some((start, start.wrapping_add(self.len_of(i))))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn extents_give_back_every_page_s_bytes() {
        // Lengths of every size class, including 255 exactly and past it, over several groups.
        let lens: Vec<u32> = (0..200u32)
            .map(|p| [0, 4, 17, 254, 255, 256, 3000][p as usize % 7])
            .collect();
        let mut e = Extents::new(lens.len() + 1);
        let mut at = 0u32;
        let mut expected = vec![(0, 0)];
        for (k, &len) in lens.iter().enumerate() {
            e.set(k + 1, at, at + len);
            expected.push((at, at + len));
            at += len;
        }
        for (i, &want) in expected.iter().enumerate() {
            assert_eq!(e.get(i), Some(want), "page {i}");
        }
        assert_eq!(e.get(expected.len()), None);
        e.set(expected.len() + 5, 0, 1); // past the room: ignored
    }

    use super::*;

    fn on_disk() -> Summaries {
        let s = Summaries::new(
            10,
            &ScratchOptions {
                dir: None,
                check_pages_in_memory: 0,
            },
        );
        assert!(matches!(s, Summaries::File(_)));
        s
    }

    #[test]
    fn a_scratch_file_gives_back_what_memory_would() {
        let mut mem = Summaries::new(10, &ScratchOptions::default());
        assert!(matches!(mem, Summaries::Memory(_)));
        let mut disk = on_disk();
        let mut ranges = Vec::new();
        // Records of every length across block boundaries, some longer than a block.
        for i in 0..3000u64 {
            let len = (i * 37 % 300) as usize + if i % 500 == 0 { 9000 } else { 0 };
            let bytes: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
            let start = mem.len();
            mem.append(&bytes);
            disk.append(&bytes);
            ranges.push((start, mem.len()));
        }
        assert_eq!(mem.finish_writing(), None);
        assert_eq!(disk.finish_writing(), None);
        // In the walk's order: scattered, not in page order.
        for k in 0..ranges.len() {
            let (s, e) = ranges[(k * 7919) % ranges.len()];
            assert_eq!(disk.get(s, e), mem.get(s, e), "bytes {s}..{e}");
        }
        assert_eq!(disk.get(5, 4).len(), 0);
        assert_eq!(disk.get(0, disk.len() + 1).len(), 0);
    }

    #[test]
    fn nothing_is_read_before_the_writing_ends() {
        let mut disk = on_disk();
        disk.append(b"abcdef");
        assert_eq!(disk.get(0, 3).len(), 0);
        assert!(disk.read_failure().is_some_and(|e| e.contains("before")));
        disk.finish_writing();
        assert_eq!(&*disk.get(0, 3), b"abc");
    }
}
