//! Building the description of an item's content as its chunks are stored: a full tree, or a
//! delta against the previous version's tree (see `backstop_format::tree::Delta`), and small
//! metadata streams (item lists, patch lists) stored like content.

use backstop_format::config::ChunkerParams;
use backstop_format::tree::{ChunkRef, Content, Delta};
use backstop_sources::Chunking;

use crate::error::Result;
use crate::repository::content::{Cursor, Loader};
use crate::repository::spill::SpillOptions;
use crate::store::chunker::{Batch, Cutter};
use crate::store::patches::{PatchReader, PatchSpool};
use crate::store::{ChunkStore, TreeBuilder};

/// A byte stream of metadata (an item list, a patch list), chunked with small content-defined
/// chunks (it changes in small places) and stored with the tree nodes.
pub struct MetaWriter {
    cutter: Cutter,
    hasher: blake3::Hasher,
    tree: TreeBuilder,
}

impl Default for MetaWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl MetaWriter {
    pub fn new() -> Self {
        Self {
            cutter: Cutter::new(
                Chunking::ContentDefined,
                ChunkerParams {
                    min: 2 * 1024,
                    avg: 8 * 1024,
                    max: 32 * 1024,
                },
            ),
            hasher: blake3::Hasher::new(),
            tree: TreeBuilder::new(),
        }
    }

    pub fn write(&mut self, store: &mut ChunkStore<'_>, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        let mut out = Batch::new();
        self.cutter.push(bytes, &mut out);
        self.store(store, out)
    }

    fn store(&mut self, store: &mut ChunkStore<'_>, chunks: Batch) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        for r in store.add_meta(&chunks)? {
            self.tree.push(store, r)?;
        }
        Ok(())
    }

    pub fn finish(mut self, store: &mut ChunkStore<'_>) -> Result<Content> {
        let mut out = Batch::new();
        self.cutter.finish(&mut out);
        self.store(store, out)?;
        let hash = self.hasher.finalize().to_hex().to_string();
        self.tree.finish(store, hash)
    }
}

/// The previous version of an item, as a base for a delta.
#[derive(Debug, Clone, Copy)]
pub struct DeltaBase {
    /// Root of a full tree.
    pub root: ChunkRef,
    pub chunk_size: u32,
}

/// Patch records beyond which a delta is abandoned for a full tree: past half the chunks, a
/// delta is no cheaper to store, and restore holds the records in memory (36 bytes each).
const MAX_PATCHES: u64 = 1 << 20;

// One builder per item: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Mode<'l> {
    Full(TreeBuilder),
    Delta {
        base: DeltaBase,
        loader: Loader<'l>,
        cursor: Cursor<'l>,
        index: u64,
        patches: PatchSpool,
        limit: u64,
    },
}

/// What to call when the content turns out to differ from its previous version.
pub type OnChange = Box<dyn FnOnce() + Send>;

/// The previous version of the item, when it is the base or a delta against it: its patches
/// against the base (none if it is the base), read as the backup goes, and its number of
/// chunks.
#[derive(Default)]
pub struct Previous<'l> {
    pub patches: Option<PatchReader<'l>>,
    pub count: u64,
    /// The record read ahead: the first at or past the current index.
    ahead: Option<(u64, ChunkRef)>,
}

impl<'l> Previous<'l> {
    pub fn new(patches: Option<PatchReader<'l>>, count: u64) -> Self {
        Self {
            patches,
            count,
            ahead: None,
        }
    }

    /// The previous version's patch at `index` (indexes are asked in order), if it has one;
    /// `Err` once its patches cannot be read (then nothing more is known of it).
    fn patch_at(&mut self, index: u64) -> std::result::Result<Option<ChunkRef>, ()> {
        loop {
            if let Some((i, r)) = self.ahead {
                if i == index {
                    self.ahead = None;
                    return Ok(Some(r));
                }
                if i > index {
                    return Ok(None);
                }
                self.ahead = None;
            }
            let Some(reader) = &mut self.patches else {
                return Ok(None);
            };
            match reader.next_record() {
                Ok(Some(rec)) => self.ahead = Some(rec),
                Ok(None) => {
                    self.patches = None;
                    return Ok(None);
                }
                Err(_) => {
                    self.patches = None;
                    return Err(());
                }
            }
        }
    }
}

/// Collects an item's chunk references, in order, into a content description.
pub struct ContentBuilder<'l> {
    mode: Mode<'l>,
    previous: Previous<'l>,
    on_change: Option<OnChange>,
}

impl<'l> ContentBuilder<'l> {
    /// A full tree; with nothing to compare with, the content counts as changed at once.
    pub fn full(on_change: Option<OnChange>) -> Self {
        if let Some(f) = on_change {
            f();
        }
        Self {
            mode: Mode::Full(TreeBuilder::new()),
            previous: Previous::default(),
            on_change: None,
        }
    }

    fn changed(&mut self) {
        if let Some(f) = self.on_change.take() {
            f();
        }
    }

    /// A delta against `base`, if every node of the base can be read (a damaged base must not
    /// make every later backup fail); otherwise a full tree. A long list of patches moves to
    /// a scratch file as `spill` says.
    pub fn against(
        loader: Loader<'l>,
        base: DeltaBase,
        previous: Previous<'l>,
        on_change: Option<OnChange>,
        spill: &SpillOptions,
    ) -> Self {
        let tree = Content {
            size: base.root.size,
            hash: String::new(),
            chunks: Vec::new(),
            tree: Some(base.root),
            delta: None,
        };
        let mut probe = loader.cursor(&tree);
        loop {
            match probe.next_step() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return Self::full(on_change),
            }
        }
        let count = base.root.size.div_ceil(u64::from(base.chunk_size.max(1)));
        Self {
            mode: Mode::Delta {
                base,
                loader,
                cursor: loader.cursor(&tree),
                index: 0,
                patches: PatchSpool::new(spill),
                limit: (count / 2).min(MAX_PATCHES),
            },
            previous,
            on_change,
        }
    }

    pub fn push(&mut self, store: &mut ChunkStore<'_>, r: ChunkRef) -> Result<()> {
        match &mut self.mode {
            Mode::Full(t) => t.push(store, r),
            Mode::Delta {
                cursor,
                index,
                patches,
                limit,
                ..
            } => {
                let from_base = cursor.next_chunk()?;
                // What the previous version had here: its patch, or the base's chunk (or
                // nothing known, once its patches cannot be read: then it counts as changed).
                let was = match self.previous.patch_at(*index) {
                    Ok(Some(p)) => Some(Some(p)),
                    Ok(None) => Some(from_base),
                    Err(()) => None,
                };
                if from_base != Some(r) {
                    patches.push(*index, r)?;
                }
                *index += 1;
                let over = patches.len() > *limit;
                if was != Some(Some(r)) {
                    self.changed();
                }
                if over {
                    self.changed();
                    self.switch_to_full(store)?;
                }
                Ok(())
            }
        }
    }

    /// Replays the chunks so far (base with patches) into a full tree.
    fn switch_to_full(&mut self, store: &mut ChunkStore<'_>) -> Result<()> {
        let Mode::Delta {
            base,
            loader,
            index,
            patches,
            ..
        } = &self.mode
        else {
            return Ok(());
        };
        let mut tree = TreeBuilder::new();
        let mut cursor = loader.tree_cursor(base.root);
        // The base's chunks up to each patch, the patch in place of the base's chunk there.
        let mut at = 0u64;
        patches.for_each(|pi, r| {
            for _ in at..pi {
                let from_base = cursor.next_chunk()?;
                tree.push(
                    store,
                    from_base.expect("chunks that matched the base exist in it"),
                )?;
            }
            cursor.next_chunk()?;
            tree.push(store, r)?;
            at = pi + 1;
            Ok(())
        })?;
        for _ in at..*index {
            let from_base = cursor.next_chunk()?;
            tree.push(
                store,
                from_base.expect("chunks that matched the base exist in it"),
            )?;
        }
        self.mode = Mode::Full(tree);
        Ok(())
    }

    /// Completes the description; `size` and `hash` are the whole content's.
    pub fn finish(
        mut self,
        store: &mut ChunkStore<'_>,
        size: u64,
        hash: String,
    ) -> Result<Content> {
        if let Mode::Delta { index, .. } = &self.mode
            && *index != self.previous.count
        {
            self.changed();
        }
        match self.mode {
            Mode::Full(t) => {
                let c = t.finish(store, hash)?;
                debug_assert_eq!(c.size, size);
                Ok(c)
            }
            Mode::Delta {
                base,
                mut cursor,
                index,
                patches,
                ..
            } => {
                let exhausted = cursor.next_chunk()?.is_none();
                debug_assert_eq!(index, size.div_ceil(u64::from(base.chunk_size)));
                delta_content(store, base, exhausted, size, hash, &patches)
            }
        }
    }
}

/// The description of a content that is `base` with `patches`; `exhausted` says whether the
/// content has at least as many chunks as the base. Shared by [`ContentBuilder`] and the reuse
/// of an unchanged content, which must describe the same bytes the same way.
pub(crate) fn delta_content(
    store: &mut ChunkStore<'_>,
    base: DeltaBase,
    exhausted: bool,
    size: u64,
    hash: String,
    patches: &PatchSpool,
) -> Result<Content> {
    // Nothing differs and nothing was cut off: the content is the base itself.
    if patches.is_empty() && exhausted && base.root.size == size {
        return Ok(Content {
            size,
            hash,
            chunks: Vec::new(),
            tree: Some(base.root),
            delta: None,
        });
    }
    // In pieces: the cutter then copies a piece at a time, not the whole list; the chunks it
    // cuts do not depend on where the pieces end.
    let mut w = MetaWriter::new();
    patches.for_each_piece(|bytes, _| {
        for piece in bytes.chunks(1 << 20) {
            w.write(store, piece)?;
        }
        Ok(())
    })?;
    let patch = w.finish(store)?;
    Ok(Content {
        size,
        hash,
        chunks: Vec::new(),
        tree: None,
        delta: Some(Delta {
            base: base.root,
            chunk_size: base.chunk_size,
            patches: patches.len(),
            patch: Box::new(patch),
        }),
    })
}
