//! A repository together with the index loaded from it: what every operation that reads or
//! deduplicates against content takes, instead of a `(repo, index)` pair whose two halves could
//! come from different repositories or moments.

use crate::error::Result;
use crate::repository::Repository;
use crate::repository::content::Loader;
use crate::repository::index::{Index, IndexProblem, LoadedIndex};
use crate::repository::spill::SpillOptions;

/// An opened repository and its index, loaded once per operation.
///
/// The index describes the index files present when it was loaded; an operation that takes a
/// lock checks, under the lock, that they are all still there ([`Indexed::check_current`]),
/// since a prune may have run in between. A backup does not add what it stores to this index:
/// the next backup loads the index again.
#[derive(Debug)]
pub struct Indexed<'r> {
    repo: &'r Repository,
    index: Index,
    unreadable: Vec<IndexProblem>,
}

impl<'r> Indexed<'r> {
    /// Loads the whole index of `repo` (index files that cannot be read are listed in
    /// [`Indexed::unreadable`]).
    pub fn load(repo: &'r Repository) -> Result<Self> {
        Ok(Self::from_loaded(repo, Index::load(repo)?))
    }

    /// Loads the index for a backup: in memory, or past a size in scratch files (see
    /// [`SpillOptions`]); only lookups are available then.
    pub fn load_for_backup(repo: &'r Repository, spill: &SpillOptions) -> Result<Self> {
        Ok(Self::from_loaded(
            repo,
            Index::load_for_backup(repo, spill)?,
        ))
    }

    /// `repo` with an empty index: nothing is known to be stored (tests, a new repository).
    pub fn empty(repo: &'r Repository) -> Self {
        Self {
            repo,
            index: Index::default(),
            unreadable: Vec::new(),
        }
    }

    fn from_loaded(repo: &'r Repository, loaded: LoadedIndex) -> Self {
        Self {
            repo,
            index: loaded.index,
            unreadable: loaded.unreadable,
        }
    }

    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The index files that could not be read when this index was loaded.
    pub fn unreadable(&self) -> &[IndexProblem] {
        &self.unreadable
    }

    /// Reads content and item lists through this index.
    pub fn loader(&self) -> Loader<'_> {
        Loader::new(self.repo, &self.index)
    }

    /// Fails with `Error::IndexChanged` unless every index file this index was loaded from is
    /// still there (see `Index::check_current`): called under a lock.
    pub(crate) fn check_current(&self) -> Result<()> {
        self.index.check_current(self.repo)
    }
}
