//! The engine's one error type, with a kind for exit codes and retry decisions.

use backstop_format::FormatError;

/// What went wrong, broadly: the CLI maps kinds to exit codes, the daemon to retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    Storage,
    Source,
    Format,
    Integrity,
    Auth,
    Config,
    Locked,
    NotFound,
    NoRepository,
    Cancelled,
    /// A failure inside backstop itself (a worker thread that panicked): a bug, not the
    /// caller's input.
    Internal,
    /// The repository's storage cannot be reached (a remote server that is down, a name that
    /// does not resolve): trying later may succeed.
    Unreachable,
    /// The repository's storage refused access (a wrong key or secret, a bucket policy) or
    /// its bucket does not exist: trying again will not help until that is fixed.
    Denied,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] backstop_storage::Error),
    #[error(transparent)]
    Source(#[from] backstop_sources::Error),
    /// The message ends with the cause, so it is not also the error's `source()`.
    #[error("{what}: {cause}")]
    Format { what: String, cause: FormatError },
    #[error("no backstop repository at {0}")]
    NoRepository(String),
    #[error("the repository at {0} is encrypted and no passphrase was given")]
    PassphraseRequired(String),
    #[error("wrong passphrase for the repository at {0}")]
    WrongPassphrase(String),
    /// Key files that cannot be used whatever the passphrase, when no other key file opened.
    #[error(
        "the repository at {location} cannot be opened: key file {} is damaged, and no other key file accepts this passphrase",
        damaged.join(", key file ")
    )]
    DamagedKey {
        location: String,
        damaged: Vec<String>,
    },
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A snapshot asked for (by id, or possibly by recency) cannot be read.
    #[error("{0}")]
    DamagedSnapshot(String),
    /// A restored database image failed a check; nothing was replaced (the caller may force it).
    #[error("the restored database failed its checks ({0}); nothing was replaced")]
    FailedChecks(String),
    /// An in-place restore found no database at the live path (the caller may restore to a new
    /// file instead).
    #[error("there is no database at {0} to restore in place")]
    NoLiveDatabase(String),
    /// The live database's schema or `user_version` differs from the snapshot's: restoring would
    /// undo a migration (the caller may allow it).
    #[error(
        "the schema or user_version of {0} differs from the snapshot's (a migration ran since?)"
    )]
    SchemaChanged(String),
    #[error("the repository is locked: {0}")]
    Locked(String),
    /// The lock itself could not be written (read-only media, a full disk, no permission).
    #[error("cannot write a lock into the repository: {cause}")]
    CannotLock { cause: backstop_storage::Error },
    /// The storage refused a delete that the operation needs (credentials that may write but
    /// not delete: an append-only key); checked before the operation changes anything.
    #[error(
        "{operation} deletes objects, and these credentials may not delete ({cause}): run \
         {operation} with a key that may delete (an append-only key can only add); nothing was \
         changed"
    )]
    CannotDelete {
        operation: String,
        cause: backstop_storage::Error,
    },
    #[error("the repository's index changed after it was loaded (a prune ran meanwhile)")]
    IndexChanged,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
    /// A scratch file (where a backup of a large repository keeps what it looks up) could not
    /// be written or read back; the message names its folder.
    #[error("a backup scratch file failed: {0}")]
    Scratch(String),
    /// A failure inside backstop itself, not of the input (see [`ErrorKind::Internal`]).
    #[error("internal error: {0}")]
    Internal(String),
    /// A backup failed after storing data that no snapshot uses (prune reclaims it).
    #[error(
        "{cause}; the failed backup left {packs} pack(s) ({size}) and {index_files} index file(s) that no snapshot uses"
    )]
    BackupLeftovers {
        cause: Box<Error>,
        packs: u64,
        /// Bytes of those packs, in words ("96.0 MiB").
        size: String,
        index_files: u64,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BackupLeftovers { cause, .. } => cause.kind(),
            Error::CannotDelete { .. } => ErrorKind::Denied,
            Error::Storage(e) | Error::CannotLock { cause: e } => match e {
                backstop_storage::Error::Unreachable { .. } => ErrorKind::Unreachable,
                backstop_storage::Error::AccessDenied { .. }
                | backstop_storage::Error::BucketNotFound { .. } => ErrorKind::Denied,
                backstop_storage::Error::Config(_) => ErrorKind::Config,
                _ => ErrorKind::Storage,
            },
            Error::Scratch(_) => ErrorKind::Storage,
            Error::Source(_) => ErrorKind::Source,
            Error::Format { .. } => ErrorKind::Format,
            Error::NoRepository(_) => ErrorKind::NoRepository,
            Error::PassphraseRequired(_) | Error::WrongPassphrase(_) => ErrorKind::Auth,
            Error::Integrity(_)
            | Error::DamagedSnapshot(_)
            | Error::FailedChecks(_)
            | Error::DamagedKey { .. } => ErrorKind::Integrity,
            Error::Locked(_) | Error::IndexChanged => ErrorKind::Locked,
            Error::NotFound(_) | Error::NoLiveDatabase(_) => ErrorKind::NotFound,
            Error::Invalid(_) | Error::SchemaChanged(_) => ErrorKind::Config,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::BackupLeftovers { cause, .. } => cause.is_transient(),
            Error::Storage(e) | Error::CannotLock { cause: e } => e.is_transient(),
            Error::Locked(_) | Error::IndexChanged => true,
            _ => false,
        }
    }

    pub(crate) fn scratch(e: std::io::Error) -> Self {
        Error::Scratch(e.to_string())
    }

    pub(crate) fn format(what: impl Into<String>, source: FormatError) -> Self {
        match source {
            FormatError::Authentication => Error::Integrity(format!("{}: {source}", what.into())),
            _ => Error::Format {
                what: what.into(),
                cause: source,
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
