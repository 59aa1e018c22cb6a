//! Encryption of stored objects and the passphrase-wrapped master key.
//!
//! Every object of an encrypted repository is `nonce (24 bytes) || XChaCha20-Poly1305
//! ciphertext || tag (16 bytes)` under the repository's data key, with a fresh random nonce per
//! object; 192-bit random nonces make a collision negligible for any number of objects a
//! repository will ever hold. Chunk ids are BLAKE3 keyed with a second, independent key, so an
//! id says nothing about content to someone without the passphrase.
//!
//! The master key (data key + id key) is stored only wrapped: a key file holds the Argon2id
//! parameters and salt, and the master key encrypted under the key derived from the passphrase.

use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::FormatError;
use crate::id::{ChunkId, from_hex, random_bytes, to_hex};

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes an encrypted object has more than its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The secret of an encrypted repository.
#[derive(Clone)]
pub struct MasterKey {
    data: [u8; 32],
    id: [u8; 32],
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Self {
        Self {
            data: random_bytes(),
            id: random_bytes(),
        }
    }

    fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(&self.data);
        b[32..].copy_from_slice(&self.id);
        b
    }

    fn from_bytes(b: &[u8]) -> Result<Self, FormatError> {
        if b.len() != 64 {
            return Err(FormatError::Corrupt("master key has the wrong length"));
        }
        let mut k = Self {
            data: [0; 32],
            id: [0; 32],
        };
        k.data.copy_from_slice(&b[..32]);
        k.id.copy_from_slice(&b[32..]);
        Ok(k)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Seals and opens objects, and computes chunk ids: the one place that knows whether a
/// repository is encrypted.
#[derive(Clone)]
pub enum Crypter {
    /// An unencrypted repository: objects are stored as they are, ids are plain BLAKE3.
    None,
    /// An encrypted repository.
    Encrypted {
        cipher: Box<XChaCha20Poly1305>,
        id_key: [u8; 32],
    },
}

impl std::fmt::Debug for Crypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_encrypted() {
            "Crypter::Encrypted"
        } else {
            "Crypter::None"
        })
    }
}

impl Crypter {
    /// A crypter for an encrypted repository with this master key.
    pub fn new(key: &MasterKey) -> Self {
        let cipher = XChaCha20Poly1305::new_from_slice(&key.data).expect("data key is 32 bytes");
        Crypter::Encrypted {
            cipher: Box::new(cipher),
            id_key: key.id,
        }
    }

    pub fn is_encrypted(&self) -> bool {
        matches!(self, Crypter::Encrypted { .. })
    }

    /// The id of a chunk with this plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        match self {
            Crypter::None => ChunkId(*blake3::hash(plaintext).as_bytes()),
            Crypter::Encrypted { id_key, .. } => {
                ChunkId(*blake3::keyed_hash(id_key, plaintext).as_bytes())
            }
        }
    }

    /// Encrypts (or passes through) one object.
    pub fn seal(&self, plaintext: Vec<u8>) -> Vec<u8> {
        match self {
            Crypter::None => plaintext,
            Crypter::Encrypted { cipher, .. } => seal_with(cipher, plaintext),
        }
    }

    /// Decrypts (or passes through) one object; an object that fails authentication is an
    /// integrity error.
    pub fn open(&self, stored: &[u8]) -> Result<Vec<u8>, FormatError> {
        match self {
            Crypter::None => Ok(stored.to_vec()),
            Crypter::Encrypted { cipher, .. } => {
                open_with(cipher, stored).ok_or(FormatError::Authentication)
            }
        }
    }

    /// Bytes a sealed object has more than its plaintext.
    pub fn overhead(&self) -> usize {
        if self.is_encrypted() { OVERHEAD } else { 0 }
    }
}

/// `nonce || ciphertext || tag`, made in `plaintext`'s own buffer: a pack's frames are sealed
/// without allocating and copying each one twice (as [`Aead::encrypt`] and a prefixed nonce
/// would).
fn seal_with(cipher: &XChaCha20Poly1305, mut plaintext: Vec<u8>) -> Vec<u8> {
    let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
    let nonce = XNonce::from(nonce_bytes);
    plaintext.reserve_exact(OVERHEAD);
    plaintext.splice(0..0, nonce_bytes);
    let tag = cipher
        .encrypt_inout_detached(&nonce, b"", (&mut plaintext[NONCE_LEN..]).into())
        .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
    plaintext.extend_from_slice(&tag);
    plaintext
}

fn open_with(cipher: &XChaCha20Poly1305, stored: &[u8]) -> Option<Vec<u8>> {
    if stored.len() < OVERHEAD {
        return None;
    }
    let (nonce, ct) = stored.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    cipher.decrypt(&nonce, ct).ok()
}

/// Argon2id cost parameters, stored in each key file so they can be raised later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for KdfParams {
    /// OWASP's Argon2id recommendation (46 MiB, one pass): about a quarter of a second here,
    /// and small enough for the 100 MiB memory budget.
    fn default() -> Self {
        Self {
            m_kib: 46 * 1024,
            t: 1,
            p: 1,
        }
    }
}

/// A key file: the master key wrapped under a passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub kdf: String,
    pub params: KdfParams,
    /// Hex salt.
    pub salt: String,
    /// Hex of nonce || ciphertext || tag of the 64-byte master key.
    pub wrapped: String,
    pub created: jiff::Timestamp,
    pub host: String,
    /// Hex of the first 16 bytes of the BLAKE3 of what unwrapping uses (see
    /// [`KeyFile::checksum`]): a damaged key file is told from a wrong passphrase. Key files
    /// written before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// Bytes of a key file's salt.
const SALT_LEN: usize = 16;
/// Bytes of a wrapped master key: nonce, the 64-byte key, tag.
const WRAPPED_LEN: usize = NONCE_LEN + 64 + TAG_LEN;

fn derive(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<XChaCha20Poly1305, FormatError> {
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|_| FormatError::Corrupt("invalid key derivation parameters"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut k = [0u8; 32];
    argon
        .hash_password_into(passphrase, salt, &mut k)
        .map_err(|_| FormatError::Corrupt("key derivation failed"))?;
    Ok(XChaCha20Poly1305::new_from_slice(&k).expect("derived key is 32 bytes"))
}

impl KeyFile {
    /// Wraps `key` under `passphrase`.
    pub fn wrap(
        key: &MasterKey,
        passphrase: &[u8],
        params: KdfParams,
        created: jiff::Timestamp,
        host: &str,
    ) -> Result<Self, FormatError> {
        let salt: [u8; SALT_LEN] = random_bytes();
        let cipher = derive(passphrase, &salt, params)?;
        let mut file = Self {
            version: 1,
            kdf: "argon2id".into(),
            params,
            salt: to_hex(&salt),
            wrapped: to_hex(&seal_with(&cipher, key.to_bytes().to_vec())),
            created,
            host: host.to_string(),
            check: None,
        };
        file.check = Some(file.checksum());
        Ok(file)
    }

    /// Parses a stored key file; JSON that does not parse is damage.
    pub fn parse(raw: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(raw).map_err(|e| FormatError::Json(e.to_string()))
    }

    /// The checksum of the fields unwrapping uses: first 16 bytes of the BLAKE3 of
    /// `version|kdf|m_kib|t|p|salt|wrapped`, as hex.
    pub fn checksum(&self) -> String {
        let KdfParams { m_kib, t, p } = self.params;
        let text = format!(
            "{}|{}|{m_kib}|{t}|{p}|{}|{}",
            self.version, self.kdf, self.salt, self.wrapped
        );
        to_hex(&blake3::hash(text.as_bytes()).as_bytes()[..16])
    }

    /// Checks what can be checked without the passphrase: the checksum (when the file has
    /// one), hex fields of the right lengths, usable parameters. A key file that fails this is
    /// damaged; one that passes and does not unwrap was given the wrong passphrase (or is an
    /// old key file, without checksum, damaged where only the passphrase check can tell).
    pub fn check_integrity(&self) -> Result<(), FormatError> {
        if let Some(c) = &self.check
            && *c != self.checksum()
        {
            return Err(FormatError::Corrupt(
                "key file checksum does not match its content",
            ));
        }
        if self.kdf != "argon2id" {
            return Err(FormatError::Unsupported(format!(
                "key derivation {}",
                self.kdf
            )));
        }
        let hex_of = |s: &str, n: usize| {
            let mut b = vec![0u8; n];
            s.len() == 2 * n && from_hex(s, &mut b).is_ok()
        };
        if !hex_of(&self.salt, SALT_LEN) {
            return Err(FormatError::Corrupt("key file salt is not 16 bytes of hex"));
        }
        if !hex_of(&self.wrapped, WRAPPED_LEN) {
            return Err(FormatError::Corrupt(
                "key file wrapped key is not 104 bytes of hex",
            ));
        }
        argon2::Params::new(self.params.m_kib, self.params.t, self.params.p, Some(32))
            .map_err(|_| FormatError::Corrupt("invalid key derivation parameters"))?;
        Ok(())
    }

    /// Unwraps the master key; a wrong passphrase is [`FormatError::WrongPassphrase`].
    /// Damage that [`KeyFile::check_integrity`] finds is reported as such, before the
    /// passphrase is tried.
    pub fn unwrap(&self, passphrase: &[u8]) -> Result<MasterKey, FormatError> {
        self.check_integrity()?;
        let mut salt = vec![0u8; self.salt.len() / 2];
        from_hex(&self.salt, &mut salt)?;
        let mut wrapped = vec![0u8; self.wrapped.len() / 2];
        from_hex(&self.wrapped, &mut wrapped)?;
        let cipher = derive(passphrase, &salt, self.params)?;
        let plain = open_with(&cipher, &wrapped).ok_or(FormatError::WrongPassphrase)?;
        MasterKey::from_bytes(&plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cheap() -> KdfParams {
        KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    /// Sealing in the plaintext's own buffer writes what the AEAD's own `encrypt` does after
    /// the nonce: the stored format is the same as before it was made in place.
    #[test]
    fn sealing_in_place_is_the_aeads_own_encryption() {
        let cipher = XChaCha20Poly1305::new_from_slice(&[7u8; 32]).unwrap();
        for len in [0usize, 1, 63, 64, 65, 1000, 70_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal_with(&cipher, plain.clone());
            assert_eq!(sealed.len(), len + OVERHEAD);
            let nonce = XNonce::try_from(&sealed[..NONCE_LEN]).unwrap();
            assert_eq!(
                &sealed[NONCE_LEN..],
                cipher.encrypt(&nonce, plain.as_slice()).unwrap().as_slice(),
                "{len} bytes"
            );
            assert_eq!(open_with(&cipher, &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn key_wrap_round_trip_and_wrong_passphrase() {
        let k = MasterKey::generate();
        let f = KeyFile::wrap(&k, b"secret", cheap(), jiff::Timestamp::UNIX_EPOCH, "h").unwrap();
        let back = f.unwrap(b"secret").unwrap();
        assert_eq!(back.to_bytes(), k.to_bytes());
        assert!(matches!(
            f.unwrap(b"Secret"),
            Err(FormatError::WrongPassphrase)
        ));
    }

    #[test]
    fn any_changed_digit_of_a_key_file_is_damage_not_a_wrong_passphrase() {
        let k = MasterKey::generate();
        let f = KeyFile::wrap(&k, b"secret", cheap(), jiff::Timestamp::UNIX_EPOCH, "h").unwrap();
        f.check_integrity().unwrap();
        let json = serde_json::to_string(&f).unwrap();
        // One hex digit replaced by another (still valid hex, still parses) in each field.
        for field in [&f.salt, &f.wrapped] {
            for pos in [0, field.len() / 2, field.len() - 1] {
                let mut bad = field.clone().into_bytes();
                bad[pos] = if bad[pos] == b'0' { b'1' } else { b'0' };
                let changed = json.replace(field.as_str(), std::str::from_utf8(&bad).unwrap());
                let g = KeyFile::parse(changed.as_bytes()).unwrap();
                assert!(
                    matches!(g.unwrap(b"secret"), Err(FormatError::Corrupt(_))),
                    "change at {pos} not seen"
                );
            }
        }
        // An old key file (no checksum) still opens.
        let mut old = f.clone();
        old.check = None;
        let old = KeyFile::parse(serde_json::to_string(&old).unwrap().as_bytes()).unwrap();
        assert_eq!(old.unwrap(b"secret").unwrap().to_bytes(), k.to_bytes());
    }

    #[test]
    fn keyed_ids_differ_from_plain_ids() {
        let c = Crypter::new(&MasterKey::generate());
        assert_ne!(c.chunk_id(b"x"), Crypter::None.chunk_id(b"x"));
        assert_eq!(c.chunk_id(b"x"), c.chunk_id(b"x"));
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000), flip in any::<usize>()) {
            let c = Crypter::new(&MasterKey::generate());
            let sealed = c.seal(data.clone());
            prop_assert_eq!(sealed.len(), data.len() + OVERHEAD);
            prop_assert_eq!(c.open(&sealed).unwrap(), data);
            let mut bad = sealed.clone();
            let i = flip % bad.len();
            bad[i] ^= 1;
            prop_assert!(c.open(&bad).is_err());
            prop_assert_eq!(Crypter::None.open(&Crypter::None.seal(vec![1,2])).unwrap(), vec![1,2]);
        }
    }
}
