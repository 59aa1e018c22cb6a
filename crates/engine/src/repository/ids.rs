//! Maps and sets keyed by chunk id, hashed by the ids' own bytes (they are already uniform).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use backstop_format::ChunkId;

/// Uses the first eight bytes of an id as its hash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // ChunkId hashes as its [u8; 32], which arrives as a length prefix then the bytes.
        if bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        }
    }
}

/// A map keyed by chunk id, hashed by the id's own bytes.
pub type IdMap<V> = HashMap<ChunkId, V, BuildHasherDefault<IdHasher>>;
/// A set of chunk ids, hashed by the ids' own bytes.
pub type IdSet = std::collections::HashSet<ChunkId, BuildHasherDefault<IdHasher>>;
