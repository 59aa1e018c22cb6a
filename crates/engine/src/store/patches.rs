//! A delta's patch list while it is built, with its head in a scratch file once it is long.
//!
//! A day's changes to a large database touch pages all over it, and each changed page is a
//! patch record (about 35 bytes encoded): 370,000 of them, 13 MB, for a day of the 10 GiB bench
//! database. The records are appended in order and read in order, twice at most (by
//! [`ContentBuilder`](super::builder::ContentBuilder) when it turns the delta into a full tree,
//! and when the list is stored), so past [`SpillOptions::patches`] records in memory the
//! encoded records move to an anonymous scratch file (see `repository::spill`) as one piece,
//! cut between records; memory keeps the latest records and a few words per piece.
//!
//! Each piece is a run of the list's encoding (`backstop_format::tree::PatchList`): the pieces
//! in order, then the records still in memory, are the whole encoding, byte for byte, so the
//! stored list does not depend on where it was cut. A piece's first gap counts from the index
//! after the previous piece's last record, which the piece keeps.

use backstop_format::tree::{
    ChunkRef, Delta, MAX_PATCH_RECORD, PatchList, next_patch, patch_records,
};

use crate::error::{Error, Result};
use crate::repository::content::{Cursor, Loader};
use crate::repository::spill::{Scratch, SpillOptions};

/// A run of the encoding in the scratch file.
struct Piece {
    at: u64,
    len: usize,
    /// The index its first record's gap counts from.
    next: u64,
}

/// Patch records, sorted by index, in memory and (past a limit) in a scratch file.
pub(crate) struct PatchSpool {
    list: PatchList,
    /// Records in memory (in `list`'s bytes).
    in_memory: u64,
    /// `list.next_index()` when its bytes were last taken: where their first gap counts from.
    memory_next: u64,
    /// `options.patches` bounds the records in memory.
    options: SpillOptions,
    scratch: Option<Scratch>,
    pieces: Vec<Piece>,
}

impl PatchSpool {
    /// An empty list that keeps at most `options.patches` records in memory.
    pub fn new(options: &SpillOptions) -> Self {
        Self {
            list: PatchList::default(),
            in_memory: 0,
            memory_next: 0,
            options: options.clone(),
            scratch: None,
            pieces: Vec::new(),
        }
    }

    /// Appends a record; `index` is greater than the last record's.
    pub fn push(&mut self, index: u64, r: ChunkRef) -> Result<()> {
        self.list.push(index, r);
        self.in_memory += 1;
        if self.in_memory > self.options.patches {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        let scratch = match &mut self.scratch {
            Some(s) => s,
            None => self
                .scratch
                .insert(self.options.scratch().map_err(Error::scratch)?),
        };
        let bytes = self.list.take_bytes();
        let at = scratch.append(&bytes).map_err(Error::scratch)?;
        self.pieces.push(Piece {
            at,
            len: bytes.len(),
            next: self.memory_next,
        });
        self.memory_next = self.list.next_index();
        self.in_memory = 0;
        Ok(())
    }

    /// The number of records.
    pub fn len(&self) -> u64 {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Calls `f` with each run of the encoding in order (the whole encoding of the list, as
    /// `backstop_format::tree::decode_patches` reads it) and the index its first gap counts
    /// from.
    pub fn for_each_piece(&self, mut f: impl FnMut(&[u8], u64) -> Result<()>) -> Result<()> {
        let mut buf = Vec::new();
        if let Some(scratch) = &self.scratch {
            for p in &self.pieces {
                buf.resize(p.len, 0);
                scratch.read(&mut buf, p.at).map_err(Error::scratch)?;
                f(&buf, p.next)?;
            }
        }
        f(self.list.as_bytes(), self.memory_next)
    }

    /// Calls `f` with each record, in order.
    pub fn for_each(&self, mut f: impl FnMut(u64, ChunkRef) -> Result<()>) -> Result<()> {
        self.for_each_piece(|bytes, next| {
            for r in patch_records(bytes, next) {
                // The bytes were encoded by `PatchList::push` and read back whole.
                let (i, c) =
                    r.map_err(|e| Error::Scratch(format!("a patch list read back: {e}")))?;
                f(i, c)?;
            }
            Ok(())
        })
    }
}

/// A stored patch list (a delta's `patch` content) read record by record, a chunk of it at a
/// time: how a backup compares with the previous version without holding its records (a 10 GiB
/// database some days past its base has hundreds of thousands). Each chunk is checked against
/// its id as it is read, and at the end the record count and length against the delta's.
pub(crate) struct PatchReader<'a> {
    loader: Loader<'a>,
    cursor: Cursor<'a>,
    /// Bytes read and not yet decoded start at `at`.
    buf: Vec<u8>,
    at: usize,
    /// Whether the content has no chunk left.
    exhausted: bool,
    next: u64,
    records: u64,
    bytes: u64,
    expected_records: u64,
    expected_bytes: u64,
}

impl<'a> PatchReader<'a> {
    pub fn new(loader: Loader<'a>, delta: &Delta) -> Result<Self> {
        if delta.patch.delta.is_some() {
            return Err(Error::Integrity(
                "a delta's patch list is itself a delta".into(),
            ));
        }
        Ok(Self {
            loader,
            cursor: loader.cursor(&delta.patch),
            buf: Vec::new(),
            at: 0,
            exhausted: false,
            next: 0,
            records: 0,
            bytes: 0,
            expected_records: delta.patches,
            expected_bytes: delta.patch.size,
        })
    }

    /// Reads chunks until a whole record is ahead (or the content ends).
    fn fill(&mut self) -> Result<()> {
        while self.buf.len() - self.at < MAX_PATCH_RECORD && !self.exhausted {
            match self.cursor.next_chunk()? {
                Some(r) => {
                    let chunk = self.loader.read_chunk(&r.id)?;
                    if chunk.len() as u64 != r.size {
                        return Err(Error::Integrity(format!(
                            "chunk {} of a patch list has the wrong length",
                            r.id
                        )));
                    }
                    self.buf.drain(..self.at);
                    self.at = 0;
                    self.buf.extend_from_slice(&chunk);
                    self.bytes += r.size;
                }
                None => self.exhausted = true,
            }
        }
        Ok(())
    }

    /// The next record, in index order; `None` after the last.
    pub fn next_record(&mut self) -> Result<Option<(u64, ChunkRef)>> {
        self.fill()?;
        let damaged = |what: &str| Error::Integrity(format!("a delta's patch list {what}"));
        match next_patch(&self.buf[self.at..], self.next)
            .map_err(|e| damaged(&format!("cannot be read: {e}")))?
        {
            Some(((i, r), len)) => {
                self.at += len;
                self.next = i + 1;
                self.records += 1;
                if self.records > self.expected_records {
                    return Err(damaged("has more records than its delta says"));
                }
                Ok(Some((i, r)))
            }
            None if self.records != self.expected_records => {
                Err(damaged("has fewer records than its delta says"))
            }
            None if self.bytes != self.expected_bytes => {
                Err(damaged("is not as long as its delta says"))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_format::ChunkId;
    use backstop_format::tree::{decode_patches, encode_patches};

    fn records(n: u64) -> Vec<(u64, ChunkRef)> {
        (0..n)
            .map(|k| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&k.to_le_bytes());
                (
                    k * 8 + k % 7,
                    ChunkRef {
                        id: ChunkId(id),
                        size: 4096 + k % 2,
                    },
                )
            })
            .collect()
    }

    fn spool(records: &[(u64, ChunkRef)], limit: u64) -> PatchSpool {
        let mut s = PatchSpool::new(&SpillOptions {
            patches: limit,
            ..SpillOptions::default()
        });
        for &(i, r) in records {
            s.push(i, r).unwrap();
        }
        s
    }

    #[test]
    fn the_pieces_are_the_whole_encoding_wherever_the_list_is_cut() {
        let all = records(1000);
        for limit in [0, 1, 7, 999, 1000, u64::MAX] {
            let s = spool(&all, limit);
            assert_eq!(s.len(), 1000);
            assert_eq!(s.scratch.is_some(), limit < 1000, "limit {limit}");
            let mut bytes = Vec::new();
            s.for_each_piece(|b, _| {
                bytes.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            assert_eq!(bytes, encode_patches(&all), "limit {limit}");
            assert_eq!(decode_patches(&bytes).unwrap(), all);
            let mut seen = Vec::new();
            s.for_each(|i, r| {
                seen.push((i, r));
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, all, "limit {limit}");
        }
    }

    #[test]
    fn an_empty_list_has_one_empty_piece() {
        let s = spool(&[], 0);
        assert!(s.is_empty());
        let mut calls = 0;
        s.for_each_piece(|b, next| {
            assert!(b.is_empty());
            assert_eq!(next, 0);
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_scratch_folder_that_is_missing_fails_the_push_that_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PatchSpool::new(&SpillOptions {
            dir: Some(dir.path().join("missing")),
            ..SpillOptions::all_above(2)
        });
        let all = records(3);
        s.push(all[0].0, all[0].1).unwrap();
        s.push(all[1].0, all[1].1).unwrap();
        let err = s.push(all[2].0, all[2].1).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
