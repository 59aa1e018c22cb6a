//! Reusing the previous description of a database image that did not change.
//!
//! A database is read in full at every backup: its bytes are what proves the capture. When the
//! source guesses from metadata that the image is unchanged (`Capture::probably_unchanged`), the
//! engine first only hashes it, which costs one BLAKE3 pass instead of a BLAKE3 pass, a hash
//! per page, an index lookup per page and a walk of the previous tree. Why this cannot miss a
//! change: the image counts as unchanged only if its BLAKE3 hash and size equal those the
//! previous snapshot recorded for its content, and BLAKE3 is collision resistant, so the bytes
//! are the previous bytes, page for page; equal pages have equal chunk ids, so the chunks the
//! full path would cut are exactly the previous content's chunks. The description is then
//! built by the same rules as the full path ([`crate::store::builder::delta_content`]), from the same
//! base and the same patches, so it is the description the full path would have computed; and
//! like the full path it is only used when every chunk it names is in the index and every node
//! of its base can be read (otherwise the full path re-stores what is missing, which needs the
//! bytes: the source reads them again).

use backstop_format::manifest::Item;
use backstop_format::tree::Content;
use backstop_sources::Chunking;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repository::content::{Loader, Step};
use crate::store::ChunkStore;

use super::read::Stream;
use crate::store::builder::{DeltaBase, delta_content};
use crate::store::patches::{PatchReader, PatchSpool};

/// Chunk ids looked up in the index at a time, in parallel.
const LOOKUP_BATCH: usize = 8192;

/// What the previous content of an item is made of, when it can be reused for an identical
/// image: the base of the description the full path would build, and the previous patches.
pub(crate) struct Reusable<'a> {
    content: &'a Content,
    base: DeltaBase,
}

/// Whether `prev`'s content could describe this entry's image if the image turns out the
/// same (checked before reading anything): a page-chunked content of the same size whose
/// base the full path would use (`base`, from `backup::delta_base`).
pub(crate) fn reusable<'a>(
    item: &Item,
    chunking: Chunking,
    prev: &'a Item,
    base: Option<DeltaBase>,
) -> Option<Reusable<'a>> {
    let Chunking::Fixed(size) = chunking else {
        return None;
    };
    let content = prev.content.as_ref()?;
    let base = base.filter(|b| b.chunk_size == size && size > 0)?;
    let same_base = match (&content.delta, content.tree) {
        (Some(d), _) => d.base == base.root && d.chunk_size == size,
        (None, Some(root)) => root == base.root,
        (None, None) => false,
    };
    (same_base && content.size == item.size).then_some(Reusable { content, base })
}

/// Hashes `stream` to its end and, if it is the previous content byte for byte, returns that
/// content's description as the full path would build it; `None` if the image differs or the
/// previous description cannot be reused (see the module documentation). An error is a
/// failure of the repository.
pub(crate) fn reuse(
    store: &mut ChunkStore<'_>,
    loader: Loader<'_>,
    reusable: Reusable<'_>,
    mut stream: Stream,
    progress: &dyn Progress,
) -> Result<Option<Content>> {
    let Reusable { content, base } = reusable;
    let (hashed, usable) = std::thread::scope(|s| {
        // The previous description is checked while the image is hashed.
        let check = std::thread::Builder::new()
            .name("reuse-check".into())
            .spawn_scoped(s, move || usable(loader, content, base))
            .expect("spawning a thread");
        let hashed = hash_stream(&mut stream, progress);
        (hashed, check.join())
    });
    // The stream must have been read to its end before the source may read it again.
    let (size, hash) = hashed.map_err(|e| {
        Error::Source(backstop_sources::Error::Io {
            context: "reading the content".into(),
            cause: e,
        })
    })?;
    let Some((patches, base_chunks)) = usable.ok().flatten() else {
        return Ok(None);
    };
    if size != content.size || hash != content.hash {
        return Ok(None);
    }
    let count = size.div_ceil(u64::from(base.chunk_size));
    store.count_known(count);
    let exhausted = base_chunks <= count;
    delta_content(store, base, exhausted, size, hash, &patches).map(Some)
}

/// Reads the stream to its end, hashing it on all cores: its size and hex BLAKE3 hash.
fn hash_stream(stream: &mut Stream, progress: &dyn Progress) -> std::io::Result<(u64, String)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = Vec::new();
    let mut size = 0u64;
    loop {
        let n = stream.next_piece(&mut buf, super::read::READ_BATCH)?;
        if n == 0 {
            break;
        }
        hasher.update_rayon(&buf[..n]);
        size += n as u64;
        progress.bytes(n as u64);
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// The previous patches against `base` and the number of chunks of the base, if every node of
/// the base can be read and every chunk the previous content consists of (the base's chunks
/// it does not patch, and its patches) is in the index.
fn usable(loader: Loader<'_>, content: &Content, base: DeltaBase) -> Option<(PatchSpool, u64)> {
    // The patches are read as the base is walked, and kept (past a few thousand, in a scratch
    // file) for the description.
    let mut reader = match &content.delta {
        Some(d) => Some(PatchReader::new(loader, d).ok()?),
        None => None,
    };
    let mut next_record = || match &mut reader {
        Some(r) => r.next_record().ok(),
        None => Some(None),
    };
    let mut patches = PatchSpool::new(loader.index.spill_options());
    let index = loader.index;
    let all_indexed =
        |ids: &[backstop_format::ChunkId]| ids.par_iter().all(|id| index.contains(id));
    let mut pending = Vec::with_capacity(LOOKUP_BATCH);
    let flush = |pending: &mut Vec<_>| {
        let ok = all_indexed(pending);
        pending.clear();
        ok
    };
    let mut ahead = next_record()?;
    let mut cursor = loader.tree_cursor(base.root);
    let mut position = 0u64;
    loop {
        match cursor.next_step() {
            Ok(Some(Step::Chunk(r))) => {
                // A patched chunk of the base need not exist any more (prune may drop it):
                // the patch's must.
                match ahead {
                    Some((i, p)) if i == position => {
                        pending.push(p.id);
                        patches.push(i, p).ok()?;
                        ahead = next_record()?;
                    }
                    _ => pending.push(r.id),
                }
                position += 1;
                if pending.len() == LOOKUP_BATCH && !flush(&mut pending) {
                    return None;
                }
            }
            Ok(Some(Step::Node(_))) => {}
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    // Patches past the base's end (the content grew); every record is read, so that the
    // reader checks the list's length and count.
    while let Some((i, p)) = ahead {
        if i < position {
            return None; // not in order: damaged
        }
        pending.push(p.id);
        patches.push(i, p).ok()?;
        ahead = next_record()?;
        if pending.len() == LOOKUP_BATCH && !flush(&mut pending) {
            return None;
        }
    }
    flush(&mut pending).then_some((patches, position))
}

#[cfg(test)]
mod tests;
