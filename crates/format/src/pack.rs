//! Pack files and index files.
//!
//! A pack is `"BKSTPACK" | version (1 byte) | chunk bodies... | trailer | trailer length (u32 LE)
//! | "BKSTPEND"`. The trailer is a sealed object (see [`crate::blob::seal_object`]) listing every
//! chunk in the pack with its offset, so a pack can be checked, and an index rebuilt, from the
//! pack alone. A pack's id is the BLAKE3 hash of all its bytes, so any damage to a pack is seen
//! by hashing it.
//!
//! An index file lists packs with their size and their chunk entries; the repository's index is
//! the union of all index files.

use crate::FormatError;
use crate::blob::{open_object, seal_object};
use crate::crypto::Crypter;
use crate::id::{ChunkId, ID_LEN, IndexId, PackId};
use crate::varint::{self, Reader};

pub const PACK_MAGIC: &[u8; 8] = b"BKSTPACK";
pub const PACK_END: &[u8; 8] = b"BKSTPEND";
pub const PACK_VERSION: u8 = 1;
/// Bytes before the first chunk body.
pub const PACK_HEADER_LEN: usize = 9;
/// Bytes after the trailer: its length and the end magic.
pub const PACK_FOOTER_LEN: usize = 12;

const INDEX_MAGIC: &[u8; 8] = b"BKSTIDX1";

/// What a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// Bytes of captured content.
    Data,
    /// A node of a content tree or an item list.
    Tree,
}

/// Where one chunk sits in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    pub id: ChunkId,
    pub kind: BlobKind,
    pub offset: u32,
    /// Stored length (after compression and encryption).
    pub length: u32,
    /// Plaintext length of this chunk.
    pub raw_length: u32,
    /// Where this chunk starts in its frame's plaintext.
    pub raw_offset: u32,
    /// Plaintext length of the whole frame (equal to `raw_length` for a chunk alone).
    pub frame_length: u32,
    pub compressed: bool,
}

fn put_entry(out: &mut Vec<u8>, e: &BlobEntry) {
    out.extend_from_slice(e.id.as_bytes());
    out.push(match e.kind {
        BlobKind::Data => 0,
        BlobKind::Tree => 1,
    });
    out.push(u8::from(e.compressed));
    varint::put(out, e.offset.into());
    varint::put(out, e.length.into());
    varint::put(out, e.raw_length.into());
    varint::put(out, e.raw_offset.into());
    varint::put(out, e.frame_length.into());
}

const MIN_ENTRY_LEN: usize = ID_LEN + 7;

fn get_entry(r: &mut Reader<'_>) -> Result<BlobEntry, FormatError> {
    let id = ChunkId::from_slice(r.bytes(ID_LEN)?)?;
    let kind = match r.u8()? {
        0 => BlobKind::Data,
        1 => BlobKind::Tree,
        _ => return Err(FormatError::Corrupt("unknown chunk kind")),
    };
    let compressed = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(FormatError::Corrupt("unknown chunk flags")),
    };
    let e = BlobEntry {
        id,
        kind,
        compressed,
        offset: r.varint_u32()?,
        length: r.varint_u32()?,
        raw_length: r.varint_u32()?,
        raw_offset: r.varint_u32()?,
        frame_length: r.varint_u32()?,
    };
    if u64::from(e.raw_offset) + u64::from(e.raw_length) > u64::from(e.frame_length) {
        return Err(FormatError::Corrupt("chunk lies outside its frame"));
    }
    Ok(e)
}

/// Builds one pack in memory.
#[derive(Debug)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> Self {
        Self::with_buffer(Vec::new())
    }

    /// Appends one chunk sealed as a frame of its own.
    pub fn add(&mut self, id: ChunkId, kind: BlobKind, sealed: &crate::blob::SealedChunk) {
        self.add_frame(&[(id, kind, sealed.raw_len)], sealed);
    }

    /// Appends a frame holding `members` (id, kind, plaintext length), in frame order.
    pub fn add_frame(
        &mut self,
        members: &[(ChunkId, BlobKind, u32)],
        sealed: &crate::blob::SealedChunk,
    ) {
        let offset = u32::try_from(self.buf.len()).expect("packs stay far below 4 GiB");
        let length = u32::try_from(sealed.bytes.len()).expect("frames are far below 4 GiB");
        self.buf.extend_from_slice(&sealed.bytes);
        let mut raw_offset = 0u32;
        for &(id, kind, raw_length) in members {
            self.entries.push(BlobEntry {
                id,
                kind,
                offset,
                length,
                raw_length,
                raw_offset,
                frame_length: sealed.raw_len,
                compressed: sealed.compressed,
            });
            raw_offset += raw_length;
        }
        debug_assert_eq!(
            raw_offset, sealed.raw_len,
            "frame members add up to the frame"
        );
    }

    /// A builder that fills `buf` (the buffer of a pack already stored) again.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(PACK_MAGIC);
        buf.push(PACK_VERSION);
        Self {
            buf,
            entries: Vec::new(),
        }
    }

    /// A builder whose buffer will not need to grow below `size` bytes.
    pub fn with_capacity(size: usize) -> Self {
        let mut b = Self::new();
        b.buf.reserve(size);
        b
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the trailer and returns the pack's id, bytes and entries.
    pub fn finish(mut self, crypter: &Crypter) -> (PackId, Vec<u8>, Vec<BlobEntry>) {
        let mut table = Vec::with_capacity(self.entries.len() * 44 + 8);
        varint::put(&mut table, self.entries.len() as u64);
        for e in &self.entries {
            put_entry(&mut table, e);
        }
        let trailer = seal_object(crypter, &table);
        // Exactly, not by doubling: a 16 MiB pack must not briefly become a 32 MiB buffer.
        self.buf.reserve_exact(trailer.len() + PACK_FOOTER_LEN);
        self.buf.extend_from_slice(&trailer);
        let tlen = u32::try_from(trailer.len()).expect("trailer far below 4 GiB");
        self.buf.extend_from_slice(&tlen.to_le_bytes());
        self.buf.extend_from_slice(PACK_END);
        let id = PackId(*blake3::hash(&self.buf).as_bytes());
        (id, self.buf, self.entries)
    }
}

/// Length of the trailer, read from the last [`PACK_FOOTER_LEN`] bytes of a pack.
pub fn trailer_len(footer: &[u8]) -> Result<usize, FormatError> {
    if footer.len() != PACK_FOOTER_LEN || &footer[4..] != PACK_END {
        return Err(FormatError::Corrupt(
            "pack footer missing (truncated pack?)",
        ));
    }
    let n = u32::from_le_bytes(footer[..4].try_into().expect("4 bytes"));
    Ok(n as usize)
}

/// Reads the chunk table of a whole pack and checks that every entry lies inside it.
pub fn read_pack_entries(crypter: &Crypter, pack: &[u8]) -> Result<Vec<BlobEntry>, FormatError> {
    if pack.len() < PACK_HEADER_LEN + PACK_FOOTER_LEN || &pack[..8] != PACK_MAGIC {
        return Err(FormatError::Corrupt("not a pack file (bad magic)"));
    }
    if pack[8] != PACK_VERSION {
        return Err(FormatError::Unsupported(format!(
            "pack version {}",
            pack[8]
        )));
    }
    let tlen = trailer_len(&pack[pack.len() - PACK_FOOTER_LEN..])?;
    let start = trailer_start(pack.len() as u64, tlen)?;
    decode_trailer(
        crypter,
        &pack[start as usize..pack.len() - PACK_FOOTER_LEN],
        start,
    )
}

/// Where the trailer of a pack of `pack_len` bytes starts, given its length from the footer.
pub fn trailer_start(pack_len: u64, trailer_len: usize) -> Result<u64, FormatError> {
    pack_len
        .checked_sub((PACK_FOOTER_LEN + trailer_len) as u64)
        .filter(|&e| e >= PACK_HEADER_LEN as u64)
        .ok_or(FormatError::Corrupt("pack trailer length out of range"))
}

/// Decodes a pack's chunk table from its sealed trailer alone (read with a range read: a pack
/// can be indexed without reading its chunks), checking that every entry lies in the pack body,
/// which ends where the trailer starts (`body_end`).
pub fn decode_trailer(
    crypter: &Crypter,
    trailer: &[u8],
    body_end: u64,
) -> Result<Vec<BlobEntry>, FormatError> {
    let body_end = usize::try_from(body_end).unwrap_or(usize::MAX);
    let table = open_object(crypter, trailer)?;
    let mut r = Reader::new(&table);
    let n = r.count(MIN_ENTRY_LEN)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let e = get_entry(&mut r)?;
        let end = e.offset as usize + e.length as usize;
        if (e.offset as usize) < PACK_HEADER_LEN || end > body_end {
            return Err(FormatError::Corrupt("pack entry outside the pack body"));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// One pack as listed in an index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPack {
    pub id: PackId,
    /// Size of the pack file in bytes.
    pub size: u64,
    pub blobs: Vec<BlobEntry>,
}

/// An index file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
    /// Index files this one replaces (written by prune; empty for backups).
    pub supersedes: Vec<IndexId>,
}

impl IndexFile {
    pub fn encode(&self, crypter: &Crypter) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(INDEX_MAGIC);
        varint::put(&mut out, self.supersedes.len() as u64);
        for s in &self.supersedes {
            out.extend_from_slice(s.as_bytes());
        }
        varint::put(&mut out, self.packs.len() as u64);
        for p in &self.packs {
            out.extend_from_slice(p.id.as_bytes());
            varint::put(&mut out, p.size);
            varint::put(&mut out, p.blobs.len() as u64);
            for b in &p.blobs {
                put_entry(&mut out, b);
            }
        }
        seal_object(crypter, &out)
    }

    pub fn decode(crypter: &Crypter, stored: &[u8]) -> Result<Self, FormatError> {
        let plain = open_object(crypter, stored)?;
        let mut r = Reader::new(&plain);
        if r.bytes(8)? != INDEX_MAGIC {
            return Err(FormatError::Corrupt("not an index file (bad magic)"));
        }
        let ns = r.count(ID_LEN)?;
        let mut supersedes = Vec::with_capacity(ns);
        for _ in 0..ns {
            supersedes.push(IndexId::from_slice(r.bytes(ID_LEN)?)?);
        }
        let np = r.count(ID_LEN + 2)?;
        let mut packs = Vec::with_capacity(np);
        for _ in 0..np {
            let id = PackId::from_slice(r.bytes(ID_LEN)?)?;
            let size = r.varint()?;
            let nb = r.count(MIN_ENTRY_LEN)?;
            let mut blobs = Vec::with_capacity(nb);
            for _ in 0..nb {
                blobs.push(get_entry(&mut r)?);
            }
            packs.push(IndexPack { id, size, blobs });
        }
        if !r.is_empty() {
            return Err(FormatError::Corrupt("trailing bytes in index file"));
        }
        Ok(Self { packs, supersedes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::seal_chunk;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn crypter(enc: bool) -> Crypter {
        if enc {
            Crypter::new(&MasterKey::generate())
        } else {
            Crypter::None
        }
    }

    proptest! {
        #[test]
        fn pack_round_trip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20), enc in any::<bool>()) {
            let c = crypter(enc);
            let mut b = PackBuilder::new();
            // Half the chunks alone, the rest in one frame.
            let (alone, framed) = chunks.split_at(chunks.len() / 2);
            for ch in alone {
                b.add(c.chunk_id(ch), BlobKind::Data, &seal_chunk(&c, ch, 3));
            }
            if !framed.is_empty() {
                let parts: Vec<&[u8]> = framed.iter().map(Vec::as_slice).collect();
                let members: Vec<_> = framed.iter().map(|ch| (c.chunk_id(ch), BlobKind::Data, ch.len() as u32)).collect();
                b.add_frame(&members, &crate::blob::seal_frame(&c, &parts, 3));
            }
            let (id, bytes, entries) = b.finish(&c);
            prop_assert_eq!(id, PackId(*blake3::hash(&bytes).as_bytes()));
            let back = read_pack_entries(&c, &bytes).unwrap();
            prop_assert_eq!(&back, &entries);
            for (e, ch) in back.iter().zip(&chunks) {
                let s = &bytes[e.offset as usize..(e.offset + e.length) as usize];
                let frame = crate::blob::open_chunk(&c, s, e.compressed, e.frame_length).unwrap();
                let plain = &frame[e.raw_offset as usize..(e.raw_offset + e.raw_length) as usize];
                prop_assert_eq!(plain, ch.as_slice());
            }
            let idx = IndexFile { packs: vec![IndexPack { id, size: bytes.len() as u64, blobs: entries }], supersedes: vec![IndexId::random()] };
            prop_assert_eq!(IndexFile::decode(&c, &idx.encode(&c)).unwrap(), idx);
        }

        #[test]
        fn damaged_pack_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = read_pack_entries(&Crypter::None, &data);
            let _ = IndexFile::decode(&Crypter::None, &data);
        }
    }

    #[test]
    fn truncated_pack_is_an_error() {
        let c = Crypter::None;
        let mut b = PackBuilder::new();
        b.add(
            c.chunk_id(b"abc"),
            BlobKind::Data,
            &seal_chunk(&c, b"abc", 3),
        );
        let (_, bytes, _) = b.finish(&c);
        for cut in 0..bytes.len() {
            assert!(
                read_pack_entries(&c, &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
