//! The repository config object (stored unencrypted: it says how to read everything else) and
//! lock objects.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::FormatError;

/// The repository format version this build writes and reads.
pub const REPO_VERSION: u32 = 1;

/// How content is cut into chunks when the source does not ask for fixed-size pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 16 KiB / 64 KiB / 256 KiB: small enough that a database dump or a workbook that changes
    /// in a few places shares most chunks with its previous version, large enough that a 1 GiB
    /// file is only ~16,000 index entries.
    fn default() -> Self {
        Self {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
        }
    }
}

/// Whether and how objects are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    None,
    /// XChaCha20-Poly1305 with a master key wrapped by an Argon2id passphrase key.
    Passphrase,
}

/// The `config` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub version: u32,
    /// Random, hex; names the repository in locks and caches.
    pub id: String,
    pub created: Timestamp,
    pub encryption: Encryption,
    pub chunker: ChunkerParams,
    /// zstd level for chunks (0 = store raw).
    pub compression: i32,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// S3 Object Lock: every object but locks is written with this retention. Absent (and
    /// not written) without one; a build that does not know the field writes without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

/// A retention written with every object (S3 Object Lock): it cannot be deleted or replaced
/// for `days` after it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    pub mode: LockMode,
    pub days: u32,
}

/// `compliance`: no one can shorten or remove the retention; `governance`: a user with the
/// permission to bypass it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    Compliance,
    Governance,
}

impl RepoConfig {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("config serializes");
        v.push(b'\n');
        v
    }

    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        let c: Self = serde_json::from_slice(b).map_err(|e| FormatError::Json(e.to_string()))?;
        if c.version > REPO_VERSION {
            return Err(FormatError::Unsupported(format!(
                "repository version {} (this build reads up to {REPO_VERSION}); upgrade backstop",
                c.version
            )));
        }
        Ok(c)
    }
}

/// A lock object. Backups hold shared locks; operations that delete hold an exclusive one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub operation: String,
    pub host: String,
    pub pid: u32,
    pub created: Timestamp,
    /// Refreshed while the holder runs; a lock not refreshed for the stale period is ignored.
    pub refreshed: Timestamp,
    /// Set when its holder finished but could not delete it (credentials that may not
    /// delete): it protects nothing. Absent from older locks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trip_and_newer_version() {
        let c = RepoConfig {
            version: REPO_VERSION,
            id: "ab".into(),
            created: Timestamp::UNIX_EPOCH,
            encryption: Encryption::Passphrase,
            chunker: ChunkerParams::default(),
            compression: 3,
            pack_size: 16 << 20,
            object_lock: None,
        };
        assert_eq!(RepoConfig::decode(&c.encode()).unwrap(), c);
        // Written only when set, so configs without it read as before.
        assert!(
            !String::from_utf8(c.encode())
                .unwrap()
                .contains("object_lock")
        );
        let locked = RepoConfig {
            object_lock: Some(ObjectLock {
                mode: LockMode::Compliance,
                days: 30,
            }),
            ..c.clone()
        };
        let text = String::from_utf8(locked.encode()).unwrap();
        assert!(text.contains("\"mode\": \"compliance\""), "{text}");
        assert_eq!(RepoConfig::decode(&locked.encode()).unwrap(), locked);
        let mut newer = c.clone();
        newer.version = 7;
        assert!(matches!(
            RepoConfig::decode(&newer.encode()),
            Err(FormatError::Unsupported(_))
        ));
    }
}
