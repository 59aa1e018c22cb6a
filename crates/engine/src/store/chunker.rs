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

    /// An empty batch with room for `bytes` bytes of chunks.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            ends: Vec::new(),
        }
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
    /// The stream offset of `buf[0]`.
    offset: u64,
    /// [`Chunking::Zip`]: the stream offset of the next member's local header, while the
    /// members can be followed.
    next_member: Option<u64>,
}

/// What a zip member's local header at the start of some bytes says.
#[derive(Debug, PartialEq, Eq)]
enum Member {
    /// A member: its local header's bytes (name and extra field included), then its data's.
    Len(u64, u64),
    /// Fewer bytes than a local header.
    NeedMore,
    /// Not a member whose length the header gives: the central directory, a member whose
    /// sizes follow its data (bit 3) or are in a zip64 field, or no zip at all.
    Not,
}

/// Reads the local file header at the start of `b`.
fn member(b: &[u8]) -> Member {
    const HEADER: usize = 30;
    if b.len() < HEADER {
        // A short stream that does not start as a header is not one.
        return match b.iter().zip(b"PK\x03\x04").all(|(x, y)| x == y) {
            true => Member::NeedMore,
            false => Member::Not,
        };
    }
    let u16_at = |i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let compressed = u32::from_le_bytes([b[18], b[19], b[20], b[21]]);
    if &b[..4] != b"PK\x03\x04" || u16_at(6) & 8 != 0 || compressed == u32::MAX {
        return Member::Not;
    }
    Member::Len(
        HEADER as u64 + u16_at(26) + u16_at(28),
        u64::from(compressed),
    )
}

/// Content-defined chunks of `seg` into `out`, while their cuts are final: every one when
/// `complete` (nothing follows `seg` in its part of the stream), else while a whole
/// maximum-size chunk is available (a cut found in a shorter tail could move once more bytes
/// arrive). The bytes cut.
fn cut_defined(params: &ChunkerParams, seg: &[u8], complete: bool, out: &mut Batch) -> usize {
    let max = params.max as usize;
    let cdc = fastcdc::v2020::FastCDC::new(seg, params.min as usize, params.avg as usize, max);
    let mut start = 0;
    while (complete && start < seg.len()) || seg.len() - start >= max {
        let (_, end) = cdc.cut(start, seg.len() - start);
        let end = end.max(start + 1);
        out.push(&seg[start..end]);
        start = end;
    }
    start
}

impl Cutter {
    pub fn new(chunking: Chunking, params: ChunkerParams) -> Self {
        Self {
            chunking,
            params,
            buf: Vec::new(),
            offset: 0,
            next_member: (chunking == Chunking::Zip).then_some(0),
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
                start = cut_defined(&self.params, &self.buf, eof, out);
            }
            Chunking::Zip => start = self.cut_members(eof, out),
        }
        if eof && start < self.buf.len() {
            out.push(&self.buf[start..]);
            start = self.buf.len();
        }
        self.buf.drain(..start);
        self.offset += start as u64;
    }

    /// [`Chunking::Zip`]: each member's local header cut as a chunk, and its data, once all
    /// here, on its own (content-defined within it); the bytes cut.
    fn cut_members(&mut self, eof: bool, out: &mut Batch) -> usize {
        let mut start = 0;
        while let Some(next) = self.next_member {
            let at = usize::try_from(next - self.offset).unwrap_or(usize::MAX);
            if at > self.buf.len() {
                if eof {
                    // The archive ends inside a member: no more members to follow.
                    self.next_member = None;
                    break;
                }
                return start + cut_defined(&self.params, &self.buf[start..], false, out);
            }
            start += cut_defined(&self.params, &self.buf[start..at], true, out);
            match member(&self.buf[at..]) {
                // The header is a chunk of its own: writers that stamp the time of saving into
                // every header leave the members' data alike all the same.
                Member::Len(header, data) if (self.buf.len() - at) as u64 >= header => {
                    let end = at + header as usize;
                    out.push(&self.buf[at..end]);
                    start = end;
                    self.next_member = Some(next + header + data);
                }
                Member::Len(..) | Member::NeedMore if !eof => return start,
                Member::Len(..) | Member::NeedMore | Member::Not => self.next_member = None,
            }
        }
        start + cut_defined(&self.params, &self.buf[start..], eof, out)
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

    /// A zip archive of `members` (name, content), stored uncompressed, with a central
    /// directory: what a workbook is, as far as cutting goes.
    fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in members {
            let at = out.len() as u32;
            let header = |sig: &[u8], out: &mut Vec<u8>| {
                out.extend_from_slice(sig);
                out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&[0; 4]); // crc (not checked here)
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(&(name.len() as u16).to_le_bytes());
                out.extend_from_slice(&[0, 0]);
            };
            header(b"PK\x03\x04", &mut out);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            header(b"PK\x01\x02", &mut central);
            central.extend_from_slice(&at.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(&central);
        out
    }

    fn cut_all(chunking: Chunking, d: &[u8], step: usize) -> Vec<Vec<u8>> {
        let mut c = Cutter::new(chunking, small());
        let mut out = Batch::new();
        for piece in d.chunks(step.max(1)) {
            c.push(piece, &mut out);
        }
        c.finish(&mut out);
        out.iter().map(<[u8]>::to_vec).collect()
    }

    proptest! {
        /// A zip archive is cut at each member's start however it arrives, and its chunks add
        /// up to it; anything else cut as `ContentDefined` cuts it.
        #[test]
        fn zip_members_are_cut_apart_whatever_the_push_sizes(
            sizes in proptest::collection::vec(0usize..9000, 0..6),
            step in 1usize..5000,
            cut_short in 0usize..200,
        ) {
            let contents: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| data(*n, i as u8)).collect();
            let names: Vec<String> = (0..sizes.len()).map(|i| format!("xl/sheet{i}.xml")).collect();
            let members: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(contents.iter().map(Vec::as_slice)).collect();
            let mut z = zip(&members);
            // An archive cut off anywhere is still cut consistently.
            z.truncate(z.len().saturating_sub(cut_short));
            let whole = cut_all(Chunking::Zip, &z, z.len());
            prop_assert_eq!(&cut_all(Chunking::Zip, &z, step), &whole);
            prop_assert_eq!(whole.concat(), z.clone());
            if cut_short == 0 {
                // Every member starts a chunk.
                let mut starts = vec![0usize];
                for ch in &whole { starts.push(starts.last().unwrap() + ch.len()); }
                let mut at = 0;
                for (name, data) in &members {
                    prop_assert!(starts.contains(&at), "member {name} at {at}: {starts:?}");
                    at += 30 + name.len();
                    prop_assert!(starts.contains(&at), "data of {name} at {at}: {starts:?}");
                    at += data.len();
                }
                prop_assert!(starts.contains(&at));
            }
            let other = data(z.len(), 9);
            prop_assert_eq!(cut_all(Chunking::Zip, &other, step), cut_all(Chunking::ContentDefined, &other, step));
        }
    }

    /// A workbook where one sheet changed shares every other member's chunks with yesterday's.
    #[test]
    fn a_changed_member_leaves_the_others_chunks_alike() {
        let (styles, sheet1, sheet2) = (data(3000, 1), data(2000, 2), data(2500, 3));
        let changed = data(2600, 4);
        let before = zip(&[
            ("xl/styles.xml", &styles),
            ("xl/worksheets/sheet1.xml", &sheet1),
            ("xl/worksheets/sheet2.xml", &sheet2),
        ]);
        let after = zip(&[
            ("xl/styles.xml", &styles),
            ("xl/worksheets/sheet1.xml", &changed),
            ("xl/worksheets/sheet2.xml", &sheet2),
        ]);
        let (a, b) = (
            cut_all(Chunking::Zip, &before, 777),
            cut_all(Chunking::Zip, &after, 777),
        );
        let new: usize = b.iter().filter(|c| !a.contains(c)).map(Vec::len).sum();
        // The changed sheet and the central directory are new; the rest is not.
        assert!(
            new < 2600 + 30 + 24 + 200,
            "{new} of {} bytes new",
            after.len()
        );
        let plain: usize = {
            let (a, b) = (
                cut_all(Chunking::ContentDefined, &before, 777),
                cut_all(Chunking::ContentDefined, &after, 777),
            );
            b.iter().filter(|c| !a.contains(c)).map(Vec::len).sum()
        };
        assert!(
            plain > new * 2,
            "content-defined alone: {plain} new, by member: {new}"
        );
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
