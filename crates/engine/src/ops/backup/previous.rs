//! The previous snapshot's items, looked up by path as the backup goes, without holding the
//! list: a tree of a million files has an item list of hundreds of megabytes once parsed.
//!
//! Sources hand their entries over in path order (a directory's entries sorted by name, each
//! directory's subtree right after it: the order of [`path_order`]), and the previous snapshot
//! of the same source lists its items in that order too, so the list is read alongside the walk:
//! each lookup reads on until it reaches the path asked for or passes it. A list of up to
//! [`SHORT_LIST`] items (a database source's) is read whole into a map at once, whatever its
//! order. For a longer one, at the first lookup out of path order (a source that names its
//! entries otherwise: none of ours with many entries) or the first item of the list out of it (a
//! list written by such a source), a list of up to [`MAP_ITEMS`] items is read again whole into a
//! map; past that, the lookups find nothing. A list out of path order read for lookups in path
//! order can also pass over items before that is seen. That only costs the shortcuts (the entry is read
//! and stored in full), never correctness: an item is only ever reused for its own path.

use std::cmp::Ordering;
use std::collections::HashMap;

use backstop_format::Timestamp;
use backstop_format::manifest::{Item, ItemKind, Snapshot};
use backstop_format::tree::Content;

use crate::progress::Progress;
use crate::repository::content::{ItemReader, Loader};

/// Files modified less than this many seconds before the previous snapshot are read again.
const RACY_MARGIN_SECS: i64 = 2;

/// The longest list read whole into a map for lookups out of path order (about 25 MiB of items).
const MAP_ITEMS: u64 = 50_000;
/// Lists up to this long are read whole into a map at the first lookup.
const SHORT_LIST: u64 = 1_000;

/// The order in which sources hand over their entries: by path component, so that a directory's
/// whole subtree comes before the next name in it (`a/b`, `a/b/c`, `a/b-x`).
pub(crate) fn path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The previous snapshot's items, for reuse of unchanged files and of results about unchanged
/// content, and the signature of its content.
pub(super) struct PreviousItems<'a> {
    inner: Option<Reading<'a>>,
    progress: &'a dyn Progress,
}

struct Reading<'a> {
    loader: Loader<'a>,
    list: Content,
    /// The time of the previous snapshot (see [`racy`]).
    time: Timestamp,
    reader: ItemReader<'a>,
    /// The item read past the last lookup.
    ahead: Option<Item>,
    /// The last path looked up.
    last: Option<String>,
    /// The path of the last item read.
    read: String,
    /// The signature of the items read so far, while the list is read once from its start.
    signature: Option<blake3::Hasher>,
    /// Items in the list, as the snapshot counts them.
    items: u64,
    /// The items with content by path, once a lookup came out of order.
    map: Option<HashMap<String, Item>>,
}

impl<'a> PreviousItems<'a> {
    /// No previous snapshot (or `--force`): nothing is reused.
    pub fn none(progress: &'a dyn Progress) -> Self {
        Self {
            inner: None,
            progress,
        }
    }

    pub fn of(loader: Loader<'a>, snap: &Snapshot, progress: &'a dyn Progress) -> Self {
        Self {
            inner: Some(Reading {
                loader,
                list: snap.items.clone(),
                time: snap.time,
                reader: loader.item_reader(&snap.items),
                ahead: None,
                last: None,
                read: String::new(),
                signature: Some(blake3::Hasher::new()),
                items: snap.stats.items,
                map: None,
            }),
            progress,
        }
    }

    /// The previous item at `path`, if it had content.
    pub fn take(&mut self, path: &str) -> Option<Item> {
        let r = self.inner.as_mut()?;
        match r.take(path) {
            Ok(item) => item,
            Err(e) => {
                self.fail(&e);
                None
            }
        }
    }

    /// The signature of the previous snapshot's content (see `super::sign`), reading what is
    /// left of its list; `None` if it could not be read.
    pub fn signature(mut self) -> Option<blake3::Hash> {
        let r = self.inner.as_mut()?;
        match r.signature() {
            Ok(sig) => Some(sig),
            Err(e) => {
                self.fail(&e);
                None
            }
        }
    }

    fn fail(&mut self, e: &crate::error::Error) {
        self.inner = None;
        self.progress.warning(&format!(
            "the previous snapshot's item list cannot be read ({e}); reading every file"
        ));
    }
}

impl Reading<'_> {
    fn take(&mut self, path: &str) -> crate::error::Result<Option<Item>> {
        if let Some(map) = &mut self.map {
            return Ok(map.remove(path));
        }
        if self.items <= SHORT_LIST {
            return self.out_of_order(path);
        }
        if self
            .last
            .as_deref()
            .is_some_and(|last| path_order(path, last) != Ordering::Greater)
        {
            return self.out_of_order(path);
        }
        self.last = Some(path.to_owned());
        loop {
            let item = match self.ahead.take() {
                Some(item) => item,
                None => match self.reader.next().transpose()? {
                    Some(item) => {
                        if let Some(h) = &mut self.signature {
                            super::sign(h, &item);
                        }
                        let before = std::mem::replace(&mut self.read, item.path.clone());
                        if !before.is_empty()
                            && path_order(&item.path, &before) != Ordering::Greater
                        {
                            return self.out_of_order(path);
                        }
                        item
                    }
                    None => return Ok(None),
                },
            };
            match path_order(&item.path, path) {
                Ordering::Less => {}
                Ordering::Equal if item.content.is_some() => {
                    return Ok(Some(racy(item, self.time)));
                }
                Ordering::Equal => return Ok(None),
                Ordering::Greater => {
                    self.ahead = Some(item);
                    return Ok(None);
                }
            }
        }
    }

    /// A lookup from a map of the whole list, if it is not too long: for a short list, and when
    /// the lookups or the list are out of path order.
    fn out_of_order(&mut self, path: &str) -> crate::error::Result<Option<Item>> {
        if self.items > MAP_ITEMS {
            return Ok(None);
        }
        let mut map = HashMap::new();
        for item in self.loader.item_reader(&self.list) {
            let item = item?;
            if item.content.is_some() {
                map.insert(item.path.clone(), racy(item, self.time));
            }
        }
        // The signature is then read anew at the end.
        self.signature = None;
        self.ahead = None;
        Ok(self.map.insert(map).remove(path))
    }

    fn signature(&mut self) -> crate::error::Result<blake3::Hash> {
        let h = match self.signature.take() {
            Some(mut h) => {
                // The item read ahead is signed already.
                self.ahead = None;
                for item in &mut self.reader {
                    super::sign(&mut h, &item?);
                }
                h
            }
            None => {
                let mut h = blake3::Hasher::new();
                for item in self.loader.item_reader(&self.list) {
                    super::sign(&mut h, &item?);
                }
                h
            }
        };
        Ok(h.finalize())
    }
}

/// A file modified just before or during the previous backup may have changed again within the
/// file system's timestamp resolution after it was read ("racy" files, as git calls them): its
/// modification time is not trusted for reuse. A database's time is only a guess that its image
/// hash then confirms or refutes (`Capture::probably_unchanged`), so it is kept: a database
/// backed up right after a write would otherwise never take the shortcut next time.
fn racy(mut item: Item, snapshot_time: Timestamp) -> Item {
    if item.kind != ItemKind::Sqlite
        && item
            .mtime
            .is_some_and(|m| m.as_second() + RACY_MARGIN_SECS >= snapshot_time.as_second())
    {
        item.mtime = None;
    }
    item
}

#[cfg(test)]
mod tests {
    use super::path_order;
    use std::cmp::Ordering;

    /// The order of a walk that sorts each directory's names and visits a subtree right after
    /// its directory: not the order of the paths as strings ('-' sorts before '/').
    #[test]
    fn path_order_is_the_order_of_a_sorted_walk() {
        let walk = ["a", "a/b", "a/b/c", "a/b/c/d", "a/b-x", "a/bb", "a0", "b"];
        for w in walk.windows(2) {
            assert_eq!(path_order(w[0], w[1]), Ordering::Less, "{w:?}");
        }
        assert_eq!(path_order("a/b", "a/b"), Ordering::Equal);
        assert_eq!("a/b-x".cmp("a/b/c"), Ordering::Less);
    }
}
