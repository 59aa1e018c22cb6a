//! Identifiers: 32-byte values shown as 64 lowercase hex digits, one newtype per kind so that a
//! pack id can never be passed where a chunk id is meant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FormatError;

/// Length of every id in bytes.
pub const ID_LEN: usize = 32;

/// Encodes bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Decodes lowercase or uppercase hex into `out`, which must be exactly half as long as `s`.
pub fn from_hex(s: &str, out: &mut [u8]) -> Result<(), FormatError> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() != out.len() * 2 {
        return Err(FormatError::BadId(s.to_string()));
    }
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => out[i] = (h << 4) | l,
            _ => return Err(FormatError::BadId(s.to_string())),
        }
    }
    Ok(())
}

/// Fills a buffer from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system random source is available");
    b
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
            /// 64 lowercase hex digits, the object's name in storage.
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }
            /// The first `n` hex digits, for display.
            pub fn short(&self) -> String {
                to_hex(&self.0[..4])
            }
            /// A new random id (for objects that are not content-addressed).
            pub fn random() -> Self {
                Self(random_bytes())
            }
            /// Parses 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self, FormatError> {
                let mut b = [0u8; ID_LEN];
                from_hex(s, &mut b)?;
                Ok(Self(b))
            }
            /// Reads an id from the first 32 bytes of `b`.
            pub fn from_slice(b: &[u8]) -> Result<Self, FormatError> {
                let arr: [u8; ID_LEN] = b
                    .get(..ID_LEN)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(FormatError::Corrupt("truncated id"))?;
                Ok(Self(arr))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = FormatError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A chunk (data or tree node): hash of its plaintext, keyed in encrypted repositories.
    ChunkId
);
id_type!(
    /// A pack file: BLAKE3 of the stored pack bytes.
    PackId
);
id_type!(
    /// A snapshot manifest (random).
    SnapshotId
);
id_type!(
    /// An index file (random).
    IndexId
);
id_type!(
    /// A key file (random).
    KeyId
);
id_type!(
    /// A lock object (random).
    LockId
);
id_type!(
    /// A record attached to a snapshot, such as a restore drill (random).
    RecordId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trip(b in proptest::array::uniform32(any::<u8>())) {
            let id = ChunkId(b);
            prop_assert_eq!(ChunkId::from_hex(&id.to_hex()).unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        }
    }

    #[test]
    fn rejects_bad_hex() {
        assert!(ChunkId::from_hex("zz").is_err());
        assert!(ChunkId::from_hex(&"g".repeat(64)).is_err());
        assert!(ChunkId::from_hex(&"a".repeat(63)).is_err());
    }
}
