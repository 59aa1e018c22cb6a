//! The backstop repository format: what is stored, and how it is encoded. No I/O.
//!
//! A repository holds a `config`, key files, pack files of chunks, index files, snapshot
//! manifests, lock objects and records. `docs/design.md` is the written specification; this
//! crate is its one implementation.
//!
//! ```
//! use backstop_format::{blob, crypto::Crypter, pack::{BlobKind, PackBuilder, read_pack_entries}};
//!
//! let crypter = Crypter::None;
//! let data = b"hello hello hello hello hello hello hello hello hello hello hello";
//! let mut pack = PackBuilder::new();
//! pack.add(crypter.chunk_id(data), BlobKind::Data, &blob::seal_chunk(&crypter, data, 3));
//! let (_pack_id, bytes, entries) = pack.finish(&crypter);
//! assert_eq!(read_pack_entries(&crypter, &bytes).unwrap(), entries);
//! ```

pub mod blob;
pub mod config;
pub mod crypto;
pub mod id;
pub mod limits;
pub mod manifest;
pub mod pack;
pub mod record;
pub mod tree;
mod varint;

pub use id::{ChunkId, IndexId, KeyId, LockId, PackId, RecordId, SnapshotId};
pub use jiff::Timestamp;

/// Errors decoding stored bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("damaged data: {0}")]
    Corrupt(&'static str),
    #[error("data failed authentication (damaged, or written with another key)")]
    Authentication,
    #[error("wrong passphrase")]
    WrongPassphrase,
    #[error("not supported by this version of backstop: {0}")]
    Unsupported(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("invalid id {0:?}: expected 64 hex digits")]
    BadId(String),
    #[error("unsafe path {0:?} in snapshot: {1}")]
    UnsafePath(String, String),
}
