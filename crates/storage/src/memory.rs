//! An in-memory repository, for tests.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{Error, Kind, ObjectInfo, Result, Storage, validate_name};

type Objects = BTreeMap<(Kind, String), Arc<Vec<u8>>>;

/// A repository held in memory, with the same semantics as [`crate::LocalStorage`].
///
/// Objects are shared behind `Arc`s, so a reader copies out a consistent
/// object even while a writer replaces it. Besides the [`Storage`] methods it
/// offers hooks for tests that need to damage a repository on purpose.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    objects: RwLock<Objects>,
    /// Deletes answered with AccessDenied, as a bucket's key or lock rule would (see
    /// [`MemoryStorage::refuse_deletes`]).
    refused: RwLock<Refused>,
}

/// Which deletes a [`MemoryStorage`] refuses.
#[derive(Debug, Default)]
struct Refused {
    all: bool,
    objects: std::collections::BTreeSet<(Kind, String)>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    // Every mutation is a single map operation, so a panic while the lock was
    // held cannot leave the map half-updated; poisoning carries no meaning.
    fn objects(&self) -> RwLockReadGuard<'_, Objects> {
        self.objects.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn objects_mut(&self) -> RwLockWriteGuard<'_, Objects> {
        self.objects.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Arc<Vec<u8>>> {
        validate_name(name)?;
        self.objects()
            .get(&(kind, name.to_owned()))
            .cloned()
            .ok_or_else(|| self.not_found(kind, name))
    }

    fn not_found(&self, kind: Kind, name: &str) -> Error {
        Error::NotFound {
            kind,
            name: name.to_owned(),
            location: self.location(),
        }
    }

    /// Changes an object's bytes in place, bypassing the usual write path, to
    /// simulate damage such as bit rot or truncation.
    ///
    /// # Panics
    ///
    /// If the object does not exist: damaging nothing is a bug in the test.
    pub fn corrupt(&self, kind: Kind, name: &str, f: impl FnOnce(&mut Vec<u8>)) {
        let mut objects = self.objects_mut();
        let Some(data) = objects.get_mut(&(kind, name.to_owned())) else {
            panic!("MemoryStorage::corrupt: {kind} object {name} does not exist");
        };
        f(Arc::make_mut(data));
    }

    /// Refuses every delete from now on with [`Error::AccessDenied`], as an append-only key
    /// (write but not delete) does; `false` accepts deletes again, also of objects held by
    /// [`MemoryStorage::refuse_delete_of`].
    pub fn refuse_deletes(&self, refuse: bool) {
        let mut r = self.refused.write().unwrap_or_else(PoisonError::into_inner);
        r.all = refuse;
        if !refuse {
            r.objects.clear();
        }
    }

    /// Refuses deletes of this one object, as a lock rule that still holds it would.
    pub fn refuse_delete_of(&self, kind: Kind, name: &str) {
        let mut r = self.refused.write().unwrap_or_else(PoisonError::into_inner);
        r.objects.insert((kind, name.to_owned()));
    }

    /// The number of objects stored, of all kinds.
    pub fn object_count(&self) -> usize {
        self.objects().len()
    }

    /// The total size in bytes of all objects stored.
    pub fn total_size(&self) -> u64 {
        self.objects().values().map(|d| d.len() as u64).sum()
    }
}

impl Storage for MemoryStorage {
    fn location(&self) -> String {
        "memory".to_owned()
    }

    fn create(&self) -> Result<()> {
        if self
            .objects()
            .contains_key(&(Kind::Config, "config".to_owned()))
        {
            return Err(Error::AlreadyExists {
                location: self.location(),
            });
        }
        Ok(())
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .objects()
            .range((kind, String::new())..)
            .take_while(|((k, _), _)| *k == kind)
            .map(|((_, name), data)| ObjectInfo {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo> {
        let data = self.get(kind, name)?;
        Ok(ObjectInfo {
            name: name.to_owned(),
            size: data.len() as u64,
        })
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        Ok(self.get(kind, name)?.as_ref().clone())
    }

    fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let data = self.get(kind, name)?;
        let size = data.len() as u64;
        let end = offset.checked_add(len).filter(|&end| end <= size);
        let Some(end) = end else {
            let got = size.saturating_sub(offset);
            return Err(Error::short_read(kind, name, offset, len, got));
        };
        // Both bounds are within the in-memory vector, so they fit in usize.
        let range = usize::try_from(offset).expect("offset within a Vec")
            ..usize::try_from(end).expect("end within a Vec");
        Ok(data[range].to_vec())
    }

    fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        validate_name(name)?;
        // Copy before taking the lock so readers are not held up by the copy.
        let data = Arc::new(data.to_vec());
        self.objects_mut().insert((kind, name.to_owned()), data);
        Ok(())
    }

    fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        validate_name(name)?;
        let data = Arc::new(data.to_vec());
        // Checked and inserted under one write lock, so racing creators serialize.
        match self.objects_mut().entry((kind, name.to_owned())) {
            Entry::Occupied(_) => Err(Error::Exists {
                kind,
                name: name.to_owned(),
                location: self.location(),
            }),
            Entry::Vacant(slot) => {
                slot.insert(data);
                Ok(())
            }
        }
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        validate_name(name)?;
        let refused = {
            let r = self.refused.read().unwrap_or_else(PoisonError::into_inner);
            r.all || r.objects.contains(&(kind, name.to_owned()))
        };
        if refused {
            return Err(Error::AccessDenied {
                location: self.location(),
                detail: format!("AccessDenied: deleting {kind} {name} is not allowed"),
            });
        }
        match self.objects_mut().remove(&(kind, name.to_owned())) {
            Some(_) => Ok(()),
            None => Err(self.not_found(kind, name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_changes_only_that_object() {
        let s = MemoryStorage::new();
        s.write(Kind::Pack, "aa", b"hello").unwrap();
        s.write(Kind::Index, "aa", b"hello").unwrap();
        let before = s.read(Kind::Pack, "aa").unwrap();
        s.corrupt(Kind::Pack, "aa", |d| d[0] ^= 1);
        assert_eq!(before, b"hello");
        assert_eq!(s.read(Kind::Pack, "aa").unwrap(), b"iello");
        assert_eq!(s.read(Kind::Index, "aa").unwrap(), b"hello");
        s.corrupt(Kind::Pack, "aa", |d| d.truncate(2));
        assert_eq!(s.stat(Kind::Pack, "aa").unwrap().size, 2);
        assert_eq!(s.object_count(), 2);
        assert_eq!(s.total_size(), 7);
    }

    #[test]
    #[should_panic(expected = "does not exist")]
    fn corrupt_missing_panics() {
        MemoryStorage::new().corrupt(Kind::Pack, "aa", |_| {});
    }
}
