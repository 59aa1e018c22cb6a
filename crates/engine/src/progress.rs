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

/// Reports an operation run inside another (the safety snapshot a restore takes) as one phase
/// of it: every phase the inner operation starts is reported under `name`.
pub struct Within<'a> {
    pub inner: &'a dyn Progress,
    pub name: &'a str,
}

impl Progress for Within<'_> {
    fn phase(&self, _name: &str, total: Option<u64>) {
        self.inner.phase(self.name, total);
    }
    fn estimate(&self, bytes: u64, items: Option<u64>) {
        self.inner.estimate(bytes, items);
    }
    fn bytes(&self, n: u64) {
        self.inner.bytes(n);
    }
    fn item(&self, path: &str) {
        self.inner.item(path);
    }
    fn warning(&self, message: &str) {
        self.inner.warning(message);
    }
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
