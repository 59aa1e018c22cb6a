//! Cutting a byte stream into chunks, push style: bytes go in as they arrive, finished chunks
//! come out. Content-defined cuts depend only on the bytes from the start of the chunk, so the
//! tail of the buffer (a chunk that may still grow) is carried over to the next push.

use backstop_format::config::ChunkerParams;
use backstop_sources::Chunking;

/// Chunks cut from a stream, stored contiguously: one allocation per batch instead of one per
/// chunk (a 1 GiB database is 262,144 pages).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch of the given chunks.
    pub fn of(chunks: &[&[u8]]) -> Self {
        let mut b = Self::new();
        for c in chunks {
            b.push(c);
        }
        b
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.data.extend_from_slice(chunk);
        self.ends.push(self.data.len());
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Chunk `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    /// Chunks `first..=last`, which lie one after the other, as one slice.
    pub fn span(&self, first: usize, last: usize) -> &[u8] {
        let start = if first == 0 { 0 } else { self.ends[first - 1] };
        &self.data[start..self.ends[last]]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Bytes in all chunks.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Empties the batch, keeping its allocations for the next one.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    /// Takes the batch's byte buffer, old contents and all, to be filled again (a read buffer
    /// that is recycled instead of allocated and faulted in afresh); the batch is left empty.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.ends.clear();
        std::mem::take(&mut self.data)
    }
}

/// Cuts a stream into chunks.
#[derive(Debug)]
pub struct Cutter {
    chunking: Chunking,
    params: ChunkerParams,
    buf: Vec<u8>,
}

impl Cutter {
    pub fn new(chunking: Chunking, params: ChunkerParams) -> Self {
        Self {
            chunking,
            params,
            buf: Vec::new(),
        }
    }

    /// Adds bytes and appends every chunk that is now complete to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Batch) {
        // Fixed-size chunks straight from the input when nothing is carried over: one copy
        // less for every page of a database.
        if let Chunking::Fixed(size) = self.chunking
            && self.buf.is_empty()
        {
            let size = size.max(1) as usize;
            let whole = data.len() / size * size;
            for c in data[..whole].chunks_exact(size) {
                out.push(c);
            }
            self.buf.extend_from_slice(&data[whole..]);
            return;
        }
        self.buf.extend_from_slice(data);
        self.cut(false, out);
    }

    /// Like [`Cutter::push`], for a buffer the caller gives away: fixed-size chunks, when
    /// nothing is carried over and `out` is empty, keep `data` itself as `out`'s storage instead
    /// of being copied into it (a 1 GiB database is then never copied here).
    pub fn push_owned(&mut self, mut data: Vec<u8>, out: &mut Batch) {
        if let Chunking::Fixed(size) = self.chunking
            && self.buf.is_empty()
            && out.is_empty()
        {
            let size = size.max(1) as usize;
            let whole = data.len() / size * size;
            self.buf.extend_from_slice(&data[whole..]);
            data.truncate(whole);
            out.ends.clear();
            out.ends.extend((1..=whole / size).map(|k| k * size));
            out.data = data;
            return;
        }
        self.push(&data, out);
    }

    /// Appends the remaining chunks.
    pub fn finish(&mut self, out: &mut Batch) {
        self.cut(true, out);
    }

    fn cut(&mut self, eof: bool, out: &mut Batch) {
        let mut start = 0;
        match self.chunking {
            Chunking::Fixed(size) => {
                let size = size.max(1) as usize;
                while self.buf.len() - start >= size {
                    out.push(&self.buf[start..start + size]);
                    start += size;
                }
            }
            Chunking::ContentDefined => {
                let max = self.params.max as usize;
                let cdc = fastcdc::v2020::FastCDC::new(
                    &self.buf,
                    self.params.min as usize,
                    self.params.avg as usize,
                    max,
                );
                // Only cut while a whole maximum-size chunk is available, unless at the end:
                // a cut found in a shorter tail could move once more bytes arrive.
                while (eof && start < self.buf.len()) || self.buf.len() - start >= max {
                    let (_, end) = cdc.cut(start, self.buf.len() - start);
                    let end = end.max(start + 1);
                    out.push(&self.buf[start..end]);
                    start = end;
                }
            }
        }
        if eof && start < self.buf.len() {
            out.push(&self.buf[start..]);
            start = self.buf.len();
        }
        self.buf.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(n: usize, seed: u8) -> Vec<u8> {
        let mut v = vec![0u8; n];
        blake3::Hasher::new_derive_key("test")
            .update(&[seed])
            .finalize_xof()
            .fill(&mut v);
        v
    }

    fn small() -> ChunkerParams {
        ChunkerParams {
            min: 256,
            avg: 1024,
            max: 4096,
        }
    }

    proptest! {
        /// However the input is split into pushes, the chunks are the same and add up to it.
        #[test]
        fn cuts_do_not_depend_on_push_sizes(n in 0usize..40_000, step in 1usize..9000, fixed in any::<bool>()) {
            let d = data(n, 1);
            let chunking = if fixed { Chunking::Fixed(4096) } else { Chunking::ContentDefined };
            let mut whole = Batch::new();
            let mut c = Cutter::new(chunking, small());
            c.push(&d, &mut whole);
            c.finish(&mut whole);
            let mut parts = Batch::new();
            let mut c = Cutter::new(chunking, small());
            for piece in d.chunks(step) {
                // Chunks come out in several batches: join them for the comparison.
                let mut b = Batch::new();
                c.push(piece, &mut b);
                for ch in b.iter() { parts.push(ch); }
            }
            c.finish(&mut parts);
            prop_assert_eq!(&whole, &parts);
            let whole: Vec<Vec<u8>> = whole.iter().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(whole.concat(), d);
            for ch in &whole[..whole.len().saturating_sub(1)] {
                prop_assert!(ch.len() <= 4096);
                if fixed { prop_assert_eq!(ch.len(), 4096); }
            }
        }
    }

    proptest! {
        /// Handing the buffers over cuts the same chunks as lending them, whatever the
        /// chunking, the chunk size and the read sizes (reads need not end on a chunk boundary).
        #[test]
        fn owned_pushes_cut_like_borrowed_ones(
            n in 0usize..40_000,
            step in 1usize..9000,
            size in prop_oneof![Just(0u32), Just(1000), Just(4096)],
            fixed in any::<bool>(),
        ) {
            let d = data(n, 3);
            let chunking = if fixed { Chunking::Fixed(size) } else { Chunking::ContentDefined };
            let mut lent = Batch::new();
            let mut c = Cutter::new(chunking, small());
            c.push(&d, &mut lent);
            c.finish(&mut lent);
            let mut owned = Batch::new();
            let mut c = Cutter::new(chunking, small());
            let mut out = Batch::new();
            for piece in d.chunks(step) {
                // A reused batch, as the reader thread of a backup reuses them.
                out.clear();
                c.push_owned(piece.to_vec(), &mut out);
                for ch in out.iter() { owned.push(ch); }
                prop_assert_eq!(out.bytes(), out.iter().map(<[u8]>::len).sum::<usize>());
            }
            c.finish(&mut owned);
            prop_assert_eq!(&lent, &owned);
            if let Some(last) = owned.len().checked_sub(1) {
                prop_assert_eq!(owned.span(0, last), &d[..]);
                prop_assert_eq!(owned.span(last, last), owned.get(last));
            }
        }
    }

    #[test]
    fn an_insert_changes_few_chunks() {
        let d = data(200_000, 2);
        let mut e = d.clone();
        e.splice(100_000..100_000, b"inserted".iter().copied());
        let cut = |x: &[u8]| {
            let mut out = Batch::new();
            let mut c = Cutter::new(Chunking::ContentDefined, small());
            c.push(x, &mut out);
            c.finish(&mut out);
            out.iter().map(<[u8]>::to_vec).collect::<Vec<_>>()
        };
        let a = cut(&d);
        let b = cut(&e);
        let shared = b.iter().filter(|ch| a.contains(ch)).count();
        assert!(
            shared + 3 >= b.len(),
            "only {shared} of {} chunks shared",
            b.len()
        );
    }
}
