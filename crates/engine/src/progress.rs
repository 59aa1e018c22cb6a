//! How the engine reports progress: it never prints, it calls a [`Progress`].

/// Receives progress events. All methods have empty defaults.
pub trait Progress: Send + Sync {
    /// A new phase starts; `total` bytes are expected when known.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// The current phase is now expected to process about `bytes` in all, over `items` items
    /// when that is known: an estimate (the previous snapshot's size, a database's size as the
    /// capture starts) that later calls may raise, never a promise.
    fn estimate(&self, _bytes: u64, _items: Option<u64>) {}
    /// `n` more bytes were processed in the current phase.
    fn bytes(&self, _n: u64) {}
    /// An item is being processed.
    fn item(&self, _path: &str) {}
    /// Something went wrong that does not stop the operation.
    fn warning(&self, _message: &str) {}
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
