//! Content trees: how a long list of chunk references is stored so that two versions of a
//! large item share most of their metadata.
//!
//! An item's content is a sequence of chunks. When there are few, the list is stored inline in
//! the item. Otherwise the list is split into nodes at *content-defined* boundaries: a node ends
//! after an entry whose id satisfies [`is_boundary`] (once it has at least [`MIN_FANOUT`]
//! entries), or when it reaches [`MAX_FANOUT`]. Nodes are stored as chunks of kind `Tree`, and
//! the ids of one level's nodes form the next level, until one root remains. Because boundaries
//! depend on the ids around them and not on positions, a change to one chunk changes one leaf
//! node and the nodes above it, not the whole list: an unchanged 1 GiB database costs no new
//! metadata, and one changed page costs a few KiB.

use serde::{Deserialize, Serialize};

use crate::FormatError;
use crate::id::{ChunkId, ID_LEN};
use crate::varint::{self, Reader};

/// A node never ends before it has this many entries (unless the list ends).
pub const MIN_FANOUT: usize = 16;
/// A node always ends at this many entries.
pub const MAX_FANOUT: usize = 1024;
/// Past the minimum, one entry in this many ends a node (so nodes average about 80 entries).
pub const BOUNDARY_ONE_IN: u32 = 64;
/// Lists with at most this many chunks are stored inline in the item.
pub const INLINE_MAX: usize = 8;

/// One child of a node: a data chunk (level 0) or a node of the level below, and how many
/// content bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub size: u64,
}

/// Whether a node that has just received an entry with `id`, and now holds `len` entries, ends.
pub fn is_boundary(id: &ChunkId, len: usize) -> bool {
    if len >= MAX_FANOUT {
        return true;
    }
    if len < MIN_FANOUT {
        return false;
    }
    let b = id.as_bytes();
    u32::from_le_bytes([b[28], b[29], b[30], b[31]]).is_multiple_of(BOUNDARY_ONE_IN)
}

/// A tree node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// 0 when the entries are data chunks.
    pub level: u8,
    pub entries: Vec<ChunkRef>,
}

const NODE_VERSION: u8 = 1;

impl TreeNode {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.entries.len() * (ID_LEN + 3));
        out.push(NODE_VERSION);
        out.push(self.level);
        varint::put(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            out.extend_from_slice(e.id.as_bytes());
            varint::put(&mut out, e.size);
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(b);
        if r.u8()? != NODE_VERSION {
            return Err(FormatError::Corrupt("unknown tree node version"));
        }
        let level = r.u8()?;
        let n = r.count(ID_LEN + 1)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let id = ChunkId::from_slice(r.bytes(ID_LEN)?)?;
            entries.push(ChunkRef {
                id,
                size: r.varint()?,
            });
        }
        if !r.is_empty() {
            return Err(FormatError::Corrupt("trailing bytes in tree node"));
        }
        Ok(Self { level, entries })
    }

    /// Content bytes below this node.
    pub fn size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Where an item's bytes are: inline chunk references, the root of a tree, or a delta against
/// an earlier tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Total bytes.
    pub size: u64,
    /// BLAKE3 of the whole content, hex (comparable with `b3sum`).
    pub hash: String,
    /// The chunks, when there are at most [`INLINE_MAX`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
    /// The root node, when the list is longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<ChunkRef>,
    /// The content as a delta against an earlier version's tree (fixed-size chunks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
}

/// Content stored as the chunks that differ from a base tree: for a database where a day of
/// changes touches pages scattered over the whole file, every leaf of a full tree changes, and
/// a delta costs the changed pages' ids only.
///
/// Chunk `i` of the content is the patch record for `i` if there is one, else chunk `i` of the
/// base; the content has `ceil(size / chunk_size)` chunks (so it may be shorter or longer than
/// the base).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Root of the base's tree: always a full tree, never itself a delta.
    pub base: ChunkRef,
    /// Size of every chunk but the last.
    pub chunk_size: u32,
    /// Number of patch records.
    pub patches: u64,
    /// The patch records (see [`encode_patches`]), stored as content of their own.
    pub patch: Box<Content>,
}

/// Encodes patch records, sorted by index: for each, the gap to the previous index (varint),
/// the chunk id (32 bytes) and the chunk size (varint).
pub fn encode_patches(patches: &[(u64, ChunkRef)]) -> Vec<u8> {
    let mut list = PatchList::default();
    for (i, r) in patches {
        list.push(*i, *r);
    }
    list.bytes
}

/// A patch list held in its encoding (that of [`encode_patches`]) while it is built: about 35
/// bytes a record, instead of a decoded list and then its encoding beside it. A backup of a
/// large database that changed in many places holds one of these per item until it is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchList {
    bytes: Vec<u8>,
    len: u64,
    /// The index after the last record's: the next record's gap is counted from here.
    next: u64,
}

impl PatchList {
    /// Appends a record; `index` is greater than the last record's (records are sorted).
    pub fn push(&mut self, index: u64, r: ChunkRef) {
        varint::put(&mut self.bytes, index - self.next);
        self.bytes.extend_from_slice(r.id.as_bytes());
        varint::put(&mut self.bytes, r.size);
        self.next = index + 1;
        self.len += 1;
    }

    /// The number of records.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded records, as [`decode_patches`] reads them (after [`PatchList::take_bytes`]:
    /// those pushed since).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The index the next record's gap is counted from: one past the last record's.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Takes the records encoded so far, leaving the list empty of bytes but not of records:
    /// later pushes continue the same encoding, so the taken bytes followed by the later ones
    /// are the whole list's encoding, and [`PatchList::len`] still counts every record. How a
    /// long list moves its head out of memory while it is built.
    pub fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// The records, in order, decoded one at a time.
    pub fn iter(&self) -> impl Iterator<Item = (u64, ChunkRef)> + '_ {
        patch_records(&self.bytes, 0).map(|r| r.expect("a patch list encoded by PatchList::push"))
    }
}

/// A patch record: the index of the chunk it replaces, and the chunk.
pub type Patch = (u64, ChunkRef);

/// The longest encoded patch record: two 10-byte varints and an id.
pub const MAX_PATCH_RECORD: usize = 2 * 10 + ID_LEN;

/// The first record in `bytes` (encoded as by [`PatchList::push`], its gap counted from
/// `next`) and the bytes it takes; `None` if `bytes` is empty. A record cut short is an error:
/// a reader of a list in pieces keeps at least [`MAX_PATCH_RECORD`] bytes ahead while more
/// follow.
pub fn next_patch(bytes: &[u8], next: u64) -> Result<Option<(Patch, usize)>, FormatError> {
    let mut r = Reader::new(bytes);
    if r.is_empty() {
        return Ok(None);
    }
    let i = next
        .checked_add(r.varint()?)
        .ok_or(FormatError::Corrupt("patch index overflow"))?;
    let id = ChunkId::from_slice(r.bytes(ID_LEN)?)?;
    let size = r.varint()?;
    Ok(Some(((i, ChunkRef { id, size }), r.position())))
}

/// The records in `bytes`, a piece of a patch list's encoding cut between records whose first
/// gap counts from `next` (0 at the start of a list, else the [`PatchList::next_index`] before
/// the piece's first record), decoded one at a time.
pub fn patch_records(
    bytes: &[u8],
    mut next: u64,
) -> impl Iterator<Item = Result<(u64, ChunkRef), FormatError>> + '_ {
    let mut at = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        match next_patch(&bytes[at..], next) {
            Ok(None) => None,
            Ok(Some(((i, c), len))) => {
                at += len;
                next = i + 1;
                Some(Ok((i, c)))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

impl FromIterator<(u64, ChunkRef)> for PatchList {
    fn from_iter<I: IntoIterator<Item = (u64, ChunkRef)>>(records: I) -> Self {
        let mut list = Self::default();
        for (i, r) in records {
            list.push(i, r);
        }
        list
    }
}

/// Decodes patch records written by [`encode_patches`].
pub fn decode_patches(b: &[u8]) -> Result<Vec<(u64, ChunkRef)>, FormatError> {
    let mut out = Vec::with_capacity(b.len() / (ID_LEN + 2));
    for r in patch_records(b, 0) {
        out.push(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn node_round_trip(level in 0u8..5, ents in proptest::collection::vec((proptest::array::uniform32(any::<u8>()), any::<u64>()), 0..50)) {
            let n = TreeNode { level, entries: ents.into_iter().map(|(b, s)| ChunkRef { id: ChunkId(b), size: s }).collect() };
            prop_assert_eq!(TreeNode::decode(&n.encode()).unwrap(), n);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = TreeNode::decode(&data);
        }
    }

    proptest! {
        #[test]
        fn patches_round_trip(gaps in proptest::collection::vec((0u64..1000, any::<[u8; 32]>(), 1u64..70000), 0..50)) {
            let mut next = 0;
            let patches: Vec<(u64, ChunkRef)> = gaps.into_iter().map(|(g, b, s)| {
                let i = next + g;
                next = i + 1;
                (i, ChunkRef { id: ChunkId(b), size: s })
            }).collect();
            prop_assert_eq!(decode_patches(&encode_patches(&patches)).unwrap(), patches.clone());
            let list: PatchList = patches.iter().copied().collect();
            prop_assert_eq!(list.len(), patches.len() as u64);
            prop_assert_eq!(decode_patches(list.as_bytes()).unwrap(), patches.clone());
            prop_assert_eq!(list.iter().collect::<Vec<_>>(), patches.clone());
        }

        #[test]
        fn taken_pieces_continue_the_encoding(gaps in proptest::collection::vec((0u64..1000, any::<[u8; 32]>(), 1u64..70000), 0..50), cuts in proptest::collection::vec(any::<bool>(), 50)) {
            let mut next = 0;
            let mut list = PatchList::default();
            let (mut whole, mut decoded) = (Vec::new(), Vec::new());
            let mut piece_next = 0;
            for ((g, b, s), cut) in gaps.iter().zip(&cuts) {
                let i = next + g;
                next = i + 1;
                list.push(i, ChunkRef { id: ChunkId(*b), size: *s });
                if *cut {
                    let piece = list.take_bytes();
                    decoded.extend(patch_records(&piece, piece_next).map(Result::unwrap));
                    whole.extend_from_slice(&piece);
                    piece_next = list.next_index();
                }
            }
            decoded.extend(patch_records(list.as_bytes(), piece_next).map(Result::unwrap));
            whole.extend_from_slice(list.as_bytes());
            prop_assert_eq!(list.len(), gaps.len() as u64);
            prop_assert_eq!(decode_patches(&whole).unwrap(), decoded.clone());
            let all: PatchList = decoded.iter().copied().collect();
            prop_assert_eq!(all.as_bytes(), &whole[..]);
        }

        #[test]
        fn damaged_patches_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_patches(&data);
        }
    }

    #[test]
    fn fanout_limits() {
        let zero = ChunkId([0; 32]);
        assert!(!is_boundary(&zero, MIN_FANOUT - 1));
        assert!(is_boundary(&zero, MIN_FANOUT));
        let one = ChunkId([1; 32]);
        assert!(!is_boundary(&one, MAX_FANOUT - 1));
        assert!(is_boundary(&one, MAX_FANOUT));
    }
}
