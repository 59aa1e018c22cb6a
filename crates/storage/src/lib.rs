//! Storage backends for a backstop repository.
//!
//! A repository is a flat collection of immutable-ish objects, each addressed
//! by a [`Kind`] and a name. The [`Storage`] trait is deliberately small —
//! whole-object writes, reads (whole or ranged), listing, and deletion, with no
//! rename and no append — so that an object store such as S3 can implement it
//! with the same guarantees as a local directory.
//!
//! Backends in this crate:
//!
//! - [`LocalStorage`]: a directory on a local or mounted file system, with
//!   atomic, durable writes (temp file, fsync, rename, fsync directory).
//! - [`MemoryStorage`]: an in-memory map, for tests, with hooks to damage
//!   objects on purpose.
//! - [`S3Storage`]: a bucket (and key prefix) of Amazon S3 or an S3-compatible
//!   server, configured by [`S3Options`]; `docs/s3.md` describes it.
//!
//! [`CachedStorage`] keeps index files, snapshot manifests and the packs of tree nodes of a
//! remote repository in a local folder.
//!
//! Every backend must pass the [`conformance`] suite. [`Retrying`] wraps any
//! backend and retries its transient failures (see [`RetryOptions`]); a remote
//! backend such as [`S3Storage`] is meant to be used inside it. With the
//! `test-server` feature, [`testing`] starts a local S3 server for tests.
//!
//! ```
//! use backstop_storage::{Kind, MemoryStorage, Storage};
//!
//! let storage = MemoryStorage::new();
//! storage.create()?;
//! storage.write(Kind::Snapshot, "0123abcd", b"manifest")?;
//! assert_eq!(storage.read(Kind::Snapshot, "0123abcd")?, b"manifest");
//! assert_eq!(storage.read_range(Kind::Snapshot, "0123abcd", 3, 2)?, b"if");
//! assert!(storage.read(Kind::Pack, "0123abcd").unwrap_err().is_not_found());
//! # Ok::<(), backstop_storage::Error>(())
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;

mod cache;
pub mod conformance;
pub mod direct;
mod local;
mod memory;
mod retry;
mod s3;
#[cfg(feature = "test-server")]
pub mod testing;

pub use cache::{CACHEDIR_TAG, CachedStorage};
pub use local::LocalStorage;
pub use memory::MemoryStorage;
pub use retry::{RetryOptions, Retrying};
pub use s3::{Addressing, S3Location, S3Options, S3Storage};

/// The kinds of object a repository stores. Each kind lives in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The repository config; the only name used is `config`.
    Config,
    /// Wrapped master keys of an encrypted repository.
    Key,
    /// Pack files holding chunks.
    Pack,
    /// Index files mapping chunk ids to packs.
    Index,
    /// Snapshot manifests.
    Snapshot,
    /// Lock objects (shared for backups, exclusive for deletes).
    Lock,
    /// Records attached to snapshots (restore drills, verification marks).
    Record,
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 7] = [
        Kind::Config,
        Kind::Key,
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
        Kind::Lock,
        Kind::Record,
    ];

    /// The directory (or key prefix) holding objects of this kind.
    ///
    /// [`Kind::Config`] objects live at the repository root as `<root>/<name>`
    /// rather than in a directory; for them this returns `"config"`, the one
    /// name that kind uses.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Key => "keys",
            Kind::Pack => "data",
            Kind::Index => "index",
            Kind::Snapshot => "snapshots",
            Kind::Lock => "locks",
            Kind::Record => "records",
        }
    }

    /// The singular lowercase name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Key => "key",
            Kind::Pack => "pack",
            Kind::Index => "index",
            Kind::Snapshot => "snapshot",
            Kind::Lock => "lock",
            Kind::Record => "record",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name and size of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name, valid per [`is_valid_name`].
    pub name: String,
    /// The object's size in bytes.
    pub size: u64,
}

/// An S3 Object Lock retention written with every object a repository stores (but its locks):
/// until `days` after it is written, no one can delete or replace the object's version
/// ([`RetentionMode::Compliance`]), or only someone with the permission to bypass it
/// ([`RetentionMode::Governance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: RetentionMode,
    pub days: u32,
}

/// How strictly a [`Retention`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionMode {
    Compliance,
    Governance,
}

impl RetentionMode {
    /// The value of the `x-amz-object-lock-mode` header.
    pub fn header(self) -> &'static str {
        match self {
            RetentionMode::Compliance => "COMPLIANCE",
            RetentionMode::Governance => "GOVERNANCE",
        }
    }
}

/// The longest valid object name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Whether `name` is a valid object name: 1..=[`MAX_NAME_LEN`] characters of
/// `[0-9a-z]`, `-` and `_`.
///
/// The alphabet is this narrow so that a name is safe as a path component and
/// an object key everywhere: no separators, no dot files, and no names that
/// differ only in case (which collide on case-insensitive file systems).
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-' || b == b'_')
}

/// Checks a name with [`is_valid_name`], returning [`Error::InvalidName`] if it fails.
pub fn validate_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_owned()))
    }
}

/// The result type of every storage operation.
pub type Result<T> = std::result::Result<T, Error>;

/// Errors returned by storage backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist.
    #[error("{kind} object {name} not found in {location}")]
    NotFound {
        kind: Kind,
        name: String,
        location: String,
    },
    /// The name is not a valid object name (see [`is_valid_name`]).
    #[error("invalid object name {0:?}: expected 1 to 128 characters of 0-9, a-z, '-' and '_'")]
    InvalidName(String),
    /// A ranged read extended past the end of the object.
    #[error(
        "{kind} object {name} is too short: wanted {wanted} bytes at offset {offset}, got {got}"
    )]
    ShortRead {
        kind: Kind,
        name: String,
        offset: u64,
        wanted: u64,
        got: u64,
    },
    /// An I/O operation failed; `context` says what was being done and where.
    ///
    /// The message already ends with the cause, so `cause` is not also reported as the
    /// error's `source()` (a chain printer would repeat it: "X: X").
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
    /// [`Storage::create`] found a repository config already in place.
    #[error("a repository already exists at {location}")]
    AlreadyExists { location: String },
    /// [`Storage::write_new`] found an object of that name already in place.
    #[error("{kind} object {name} already exists in {location}")]
    Exists {
        kind: Kind,
        name: String,
        location: String,
    },
    /// The storage refused the credentials, or they do not allow the operation
    /// (S3: HTTP 403, e.g. a wrong access key or secret, or a bucket policy).
    #[error("access denied to {location}: {detail}")]
    AccessDenied { location: String, detail: String },
    /// The storage's server could not be reached: the connection was refused,
    /// its name did not resolve, or connecting timed out.
    #[error("cannot reach {endpoint}: {cause}")]
    Unreachable { endpoint: String, cause: String },
    /// The bucket named in the configuration does not exist. Backends never
    /// create buckets implicitly.
    #[error("bucket {bucket} does not exist at {endpoint}: create it first")]
    BucketNotFound { bucket: String, endpoint: String },
    /// The storage's server answered a request with an error status that no
    /// other variant describes, such as 500 or 503.
    #[error("{context}: the server answered {status}{}", detail_suffix(.code, .message))]
    Remote {
        /// What was being done and where, e.g. `"writing pack ab12 to s3://b/p"`.
        context: String,
        /// The HTTP status.
        status: u16,
        /// The service's error code (S3: `SlowDown`, `InternalError`...), or empty.
        code: String,
        /// The service's error message, or empty.
        message: String,
    },
    /// The storage's configuration is unusable (a malformed location or
    /// endpoint, a missing credential); nothing was attempted.
    #[error("{0}")]
    Config(String),
    /// Anything else, described in words.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Wraps an I/O error with a description of what was being done and where,
    /// such as `"writing /repo/index/ab12"`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause: source,
        }
    }

    /// A [`Error::ShortRead`] of `len` bytes at `offset` of the object, of which `got` were there.
    pub fn short_read(kind: Kind, name: &str, offset: u64, len: u64, got: u64) -> Self {
        Error::ShortRead {
            kind,
            name: name.to_owned(),
            offset,
            wanted: len,
            got,
        }
    }

    /// Whether the error means the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether retrying the same operation might succeed: interrupted or timed
    /// out I/O, a lost connection, an unreachable server, and server-side
    /// failures (HTTP 5xx, 429, 408). Refusals (4xx: access denied, a missing
    /// bucket) are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Remote { status, code, .. } => {
                *status >= 500
                    || matches!(status, 408 | 429)
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "RequestTimeout" | "ConditionalRequestConflict"
                    )
            }
            Error::Io { cause, .. } => matches!(
                cause.kind(),
                io::ErrorKind::Interrupted
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

/// `" CODE: message"` after the status of an [`Error::Remote`], leaving out the empty parts.
fn detail_suffix(code: &str, message: &str) -> String {
    match (code.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" {code}"),
        (true, false) => format!(": {message}"),
        (false, false) => format!(" {code}: {message}"),
    }
}

/// A place that stores whole objects by kind and name.
///
/// Every method that takes a name rejects an invalid one (see
/// [`is_valid_name`]) with [`Error::InvalidName`] before touching storage.
/// Objects of different kinds are separate namespaces: the same name under two
/// kinds is two objects.
///
/// Implementations must be usable from many threads at once, and must pass
/// [`conformance::run_all`].
pub trait Storage: Send + Sync + fmt::Debug {
    /// A human-readable description of where objects are stored (a path or a
    /// URL), for messages.
    fn location(&self) -> String;

    /// Prepares the location for a new repository.
    ///
    /// The location may be missing, empty, or hold unrelated files; what it
    /// must not hold is a repository config (a [`Kind::Config`] object named
    /// `config`), in which case this returns [`Error::AlreadyExists`].
    /// Calling it again before a config is written is harmless.
    fn create(&self) -> Result<()>;

    /// Lists every object of `kind` with its size, in no particular order.
    ///
    /// A kind with no objects (even one whose directory is missing) gives an
    /// empty list. Entries whose names are not valid object names, such as
    /// temporary files, are not objects and are skipped.
    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>>;

    /// Returns the object's name and size, or [`Error::NotFound`].
    fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo>;

    /// Reads the whole object, or returns [`Error::NotFound`].
    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;

    /// Reads exactly `len` bytes starting at `offset`.
    ///
    /// Returns [`Error::ShortRead`] if the object ends before `offset + len`
    /// and [`Error::NotFound`] if it does not exist. A zero-length range within
    /// the object (including at its very end) gives an empty vector.
    fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// Stores `data` as the object, replacing any object of the same name.
    ///
    /// The write is atomic and durable: once it returns `Ok` the whole object
    /// is stored and survives a crash, and no reader — nor a crash at any
    /// instant — ever observes a partial object under the name. A replaced
    /// object is seen either whole as before or whole as after.
    fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()>;

    /// Stores `data` as a new object, or returns [`Error::Exists`] and changes
    /// nothing if an object of that name is already there.
    ///
    /// For objects that must never be replaced (locks taken by racing
    /// processes, a repository's first config): of any number of concurrent
    /// callers for one name, exactly one succeeds and the object holds its
    /// bytes. The write is atomic and durable like [`Storage::write`].
    ///
    /// The default checks [`Storage::exists`] and then writes, which is **not**
    /// atomic: two racing callers can both succeed, the later write winning.
    /// Every backend in this crate overrides it with an atomic one, and
    /// wrappers must forward it.
    fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        if self.exists(kind, name)? {
            return Err(Error::Exists {
                kind,
                name: name.to_owned(),
                location: self.location(),
            });
        }
        self.write(kind, name, data)
    }

    /// Like [`Storage::read_range`], for an object that later runs will read again in other
    /// places (a pack of tree nodes): a storage with a local cache ([`CachedStorage`]) keeps
    /// the whole object and serves this and later reads from it. The default reads the range.
    fn read_range_cached(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.read_range(kind, name, offset, len)
    }

    /// Like [`Storage::write`], for an object that later runs will read with
    /// [`Storage::read_range_cached`]: a storage with a local cache keeps a copy. The default
    /// writes.
    fn write_cached(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.write(kind, name, data)
    }

    /// Removes the object, or returns [`Error::NotFound`] if it does not exist.
    fn delete(&self, kind: Kind, name: &str) -> Result<()>;

    /// Whether the object exists.
    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        match self.stat(kind, name) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes every object stored from now on, except locks, with `retention` (S3 Object
    /// Lock). Storages without object locks refuse, saying so.
    fn retain_writes(&self, retention: Retention) -> Result<()> {
        let _ = retention;
        Err(Error::Config(format!(
            "{}: a retention period (object lock) needs a repository in an S3 bucket with \
             Object Lock enabled",
            self.location()
        )))
    }

    /// Lengthens the Object Lock retention of the object's current version to `until` in
    /// `mode` (S3 PutObjectRetention). A retention can be lengthened, never shortened: an
    /// `until` before the object's own is refused by the storage. Storages without object
    /// locks refuse, saying so.
    fn extend_retention(
        &self,
        kind: Kind,
        name: &str,
        mode: RetentionMode,
        until: jiff::Timestamp,
    ) -> Result<()> {
        let _ = (kind, name, mode, until);
        Err(Error::Config(format!(
            "{}: a retention period (object lock) needs a repository in an S3 bucket with \
             Object Lock enabled",
            self.location()
        )))
    }

    /// Until when the object's current version is retained (S3 Object Lock), if it is; `None`
    /// (the default) on storages without object locks.
    fn retained_until(&self, kind: Kind, name: &str) -> Result<Option<jiff::Timestamp>> {
        let _ = (kind, name);
        Ok(None)
    }

    /// Requests worth having in flight at once: 1 for a local disk (the default), more for a
    /// remote store, where each request waits mostly on the network. The engine stores packs
    /// and reads ranges this many at a time (bounded by its own limits).
    fn parallelism(&self) -> usize {
        1
    }

    /// Bytes still free for the repository to grow into, where the backend can tell (a local
    /// disk); `None` where it cannot (memory, object stores without quotas).
    fn free_space(&self) -> Option<u64> {
        None
    }

    /// Removes the backend's temporary files (writes in progress, which a crash or a kill
    /// leaves behind) not modified for `older_than`, and returns how many and their bytes.
    /// Objects are never touched. The caller picks an age no running command's write can
    /// reach; a write whose temporary file was removed anyway fails, it never completes
    /// wrongly. Backends without temporary files (memory, object stores) remove nothing.
    fn remove_stale_temporary(&self, older_than: std::time::Duration) -> Result<Removed> {
        let _ = older_than;
        Ok(Removed::default())
    }
}

/// What [`Storage::remove_stale_temporary`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub files: u64,
    pub bytes: u64,
}

// Forwarding impls so that shared (`Arc`) and boxed storages can be passed
// wherever a `Storage` is expected, e.g. a test keeping an `Arc<MemoryStorage>`
// to damage objects while the engine owns another handle.
macro_rules! forward_storage {
    ($($ptr:ident),*) => {$(
        impl<T: Storage + ?Sized> Storage for $ptr<T> {
            fn location(&self) -> String {
                (**self).location()
            }
            fn create(&self) -> Result<()> {
                (**self).create()
            }
            fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
                (**self).list(kind)
            }
            fn stat(&self, kind: Kind, name: &str) -> Result<ObjectInfo> {
                (**self).stat(kind, name)
            }
            fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
                (**self).read(kind, name)
            }
            fn read_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
                (**self).read_range(kind, name, offset, len)
            }
            fn write(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
                (**self).write(kind, name, data)
            }
            fn write_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
                (**self).write_new(kind, name, data)
            }
            fn read_range_cached(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
                (**self).read_range_cached(kind, name, offset, len)
            }
            fn write_cached(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
                (**self).write_cached(kind, name, data)
            }
            fn delete(&self, kind: Kind, name: &str) -> Result<()> {
                (**self).delete(kind, name)
            }
            fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
                (**self).exists(kind, name)
            }
            fn free_space(&self) -> Option<u64> {
                (**self).free_space()
            }
            fn parallelism(&self) -> usize {
                (**self).parallelism()
            }
            fn retain_writes(&self, retention: Retention) -> Result<()> {
                (**self).retain_writes(retention)
            }
            fn extend_retention(
                &self,
                kind: Kind,
                name: &str,
                mode: RetentionMode,
                until: jiff::Timestamp,
            ) -> Result<()> {
                (**self).extend_retention(kind, name, mode, until)
            }
            fn retained_until(&self, kind: Kind, name: &str) -> Result<Option<jiff::Timestamp>> {
                (**self).retained_until(kind, name)
            }
            fn remove_stale_temporary(&self, older_than: std::time::Duration) -> Result<Removed> {
                (**self).remove_stale_temporary(older_than)
            }
        }
    )*};
}

forward_storage!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("a"));
        assert!(is_valid_name("config"));
        assert!(is_valid_name("0a-b_c"));
        assert!(is_valid_name(&"f".repeat(128)));
        for bad in ["", "A", "a.b", ".hidden", "a/b", "../x", "a b", "é", "a\\b"] {
            assert!(!is_valid_name(bad), "{bad:?} accepted");
        }
        assert!(!is_valid_name(&"f".repeat(129)));
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::ALL.len(), 7);
        assert_eq!(Kind::Pack.to_string(), "pack");
        assert_eq!(Kind::Snapshot.dir(), "snapshots");
        let dirs: std::collections::BTreeSet<_> = Kind::ALL.iter().map(|k| k.dir()).collect();
        assert_eq!(dirs.len(), Kind::ALL.len());
    }

    #[test]
    fn transient() {
        let e = Error::io("reading x", io::Error::from(io::ErrorKind::TimedOut));
        assert!(e.is_transient());
        assert_eq!(e.to_string(), "reading x: timed out");
        let e = Error::io(
            "reading x",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(!e.is_transient());
        assert!(!Error::Other("x".into()).is_transient());
    }

    #[test]
    fn remote_errors() {
        let remote = |status, code: &str, message: &str| Error::Remote {
            context: "writing pack ab to s3://b/p".into(),
            status,
            code: code.into(),
            message: message.into(),
        };
        let e = remote(503, "SlowDown", "Please reduce your request rate.");
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "writing pack ab to s3://b/p: the server answered 503 SlowDown: \
             Please reduce your request rate."
        );
        assert_eq!(
            remote(500, "", "").to_string(),
            "writing pack ab to s3://b/p: the server answered 500"
        );
        assert!(remote(429, "", "").is_transient());
        assert!(remote(409, "ConditionalRequestConflict", "").is_transient());
        assert!(!remote(400, "InvalidArgument", "").is_transient());
        assert!(!remote(409, "BucketAlreadyExists", "").is_transient());
        let unreachable = Error::Unreachable {
            endpoint: "http://127.0.0.1:9".into(),
            cause: "connection refused".into(),
        };
        assert!(unreachable.is_transient());
        let denied = Error::AccessDenied {
            location: "s3://b/p".into(),
            detail: "SignatureDoesNotMatch".into(),
        };
        assert!(!denied.is_transient());
        let missing = Error::BucketNotFound {
            bucket: "b".into(),
            endpoint: "http://127.0.0.1:9".into(),
        };
        assert_eq!(
            missing.to_string(),
            "bucket b does not exist at http://127.0.0.1:9: create it first"
        );
        assert!(!missing.is_transient());
    }
}
