//! Runs the conformance suite against every backend in this crate.

use backstop_storage::{
    Kind, LocalStorage, MemoryStorage, ObjectInfo, Result, Storage, conformance,
};
use tempfile::TempDir;

/// A local storage that owns its temporary directory, so the directory lives
/// exactly as long as the storage handed to a check.
#[derive(Debug)]
struct TempLocal {
    inner: LocalStorage,
    _dir: TempDir,
}

impl TempLocal {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        // A root that does not exist yet, so create() has to make it.
        let inner = LocalStorage::new(dir.path().join("repo"));
        Self { inner, _dir: dir }
    }
}

impl Storage for TempLocal {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        self.inner.list(kind)
    }
    fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo> {
        self.inner.stat(kind, name)
    }
    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.inner.read(kind, name)
    }
    fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.read_range(kind, name, offset, len)
    }
    fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(kind, name, data)
    }
    fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write_new(kind, name, data)
    }
    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.inner.delete(kind, name)
    }
}

#[test]
fn local_storage_conforms() {
    conformance::run_all(&|| Box::new(TempLocal::new()));
}

#[test]
fn memory_storage_conforms() {
    conformance::run_all(&|| Box::new(MemoryStorage::new()));
}

#[test]
fn shared_memory_storage_conforms() {
    // The forwarding impl for Arc must not change behaviour.
    conformance::run_all(&|| Box::new(std::sync::Arc::new(MemoryStorage::new())));
}
