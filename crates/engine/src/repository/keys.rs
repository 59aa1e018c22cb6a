//! Key files: more than one passphrase for one repository.
//!
//! The master key of an encrypted repository is stored wrapped once per passphrase, one key
//! file each (`keys/<id>`, docs/design.md "Keys"). Any one of them opens the repository, so a
//! second key is what keeps the repository open when one key file is damaged or one
//! passphrase is lost. Adding a key writes a new file (the storage writes it whole or not at
//! all) and then reads it back and opens it with the new passphrase before reporting success;
//! removing one never removes the key file the given passphrase opens, so a repository always
//! keeps a key its user can open.

use backstop_format::crypto::{Crypter, KdfParams, KeyFile, MasterKey};
use backstop_format::{KeyId, Timestamp};
use backstop_storage::Kind;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::repository::{Repository, unwrap_key_named};

/// One key file as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// The key file's name under `keys/`.
    pub id: String,
    /// When and where it was made (absent when the file cannot be read).
    pub created: Option<Timestamp>,
    pub host: Option<String>,
    /// The key file the passphrase given opens.
    pub current: bool,
    /// Why the key file cannot be used whatever the passphrase, if it is damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

fn require_encrypted(repo: &Repository) -> Result<()> {
    if repo.is_encrypted() {
        Ok(())
    } else {
        Err(Error::Invalid(
            "the repository is not encrypted: it has no keys".into(),
        ))
    }
}

/// Every key file, oldest first, with the one `passphrase` opens marked current.
pub fn list_keys(repo: &Repository, passphrase: &str) -> Result<Vec<KeyInfo>> {
    require_encrypted(repo)?;
    let storage = repo.storage().as_ref();
    let (current, _) = unwrap_key_named(storage, passphrase)?;
    let mut out = Vec::new();
    for k in storage.list(Kind::Key)? {
        let parsed = storage
            .read(Kind::Key, &k.name)
            .map_err(|e| e.to_string())
            .and_then(|raw| KeyFile::parse(&raw).map_err(|e| e.to_string()));
        let info = match parsed {
            Ok(f) => KeyInfo {
                current: k.name == current,
                damaged: f.check_integrity().err().map(|e| e.to_string()),
                id: k.name,
                created: Some(f.created),
                host: Some(f.host),
            },
            Err(e) => KeyInfo {
                current: false,
                damaged: Some(e),
                id: k.name,
                created: None,
                host: None,
            },
        };
        out.push(info);
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Adds a key file that opens the repository with `new_passphrase`. `passphrase` must open
/// it today. The new file is read back and opened before this returns.
pub fn add_key(
    repo: &Repository,
    passphrase: &str,
    new_passphrase: &str,
    kdf: KdfParams,
    now: Timestamp,
    host: &str,
) -> Result<KeyInfo> {
    require_encrypted(repo)?;
    if new_passphrase.is_empty() {
        return Err(Error::Invalid("the new passphrase is empty".into()));
    }
    let storage = repo.storage().as_ref();
    let (_, key) = unwrap_key_named(storage, passphrase)?;
    let file = KeyFile::wrap(&key, new_passphrase.as_bytes(), kdf, now, host)
        .map_err(|e| Error::format("wrapping the master key", e))?;
    let json = serde_json::to_vec_pretty(&file).expect("key file serializes");
    let id = KeyId::random().to_hex();
    storage.write_new(Kind::Key, &id, &json)?;
    // Read it back: a key file that cannot be opened is worse than none, because the user
    // would rely on it.
    let back = storage
        .read(Kind::Key, &id)
        .map_err(Error::from)
        .and_then(|raw| {
            KeyFile::parse(&raw)
                .and_then(|f| f.unwrap(new_passphrase.as_bytes()))
                .map_err(|e| Error::format("reading back the new key file", e))
        });
    match back {
        Ok(k) if same_key(&k, &key) => Ok(KeyInfo {
            id,
            created: Some(now),
            host: Some(host.to_string()),
            current: false,
            damaged: None,
        }),
        other => {
            let _ = storage.delete(Kind::Key, &id);
            Err(match other {
                Err(e) => e,
                Ok(_) => {
                    Error::Internal("the new key file opened to a different master key".into())
                }
            })
        }
    }
}

/// Whether two master keys are the same key (compared through the ids they give, since the
/// key bytes do not leave the format crate).
fn same_key(a: &MasterKey, b: &MasterKey) -> bool {
    let probe = b"backstop: is this the same master key?";
    let (a, b) = (Crypter::new(a), Crypter::new(b));
    a.chunk_id(probe) == b.chunk_id(probe)
        && b.open(&a.seal(probe.to_vec())).ok().as_deref() == Some(&probe[..])
}

/// Removes the key file whose name starts with `prefix`. The key file that `passphrase`
/// opens is never removed (open the repository with another passphrase to remove it).
pub fn remove_key(repo: &Repository, passphrase: &str, prefix: &str) -> Result<KeyInfo> {
    let keys = list_keys(repo, passphrase)?;
    let matches: Vec<&KeyInfo> = keys.iter().filter(|k| k.id.starts_with(prefix)).collect();
    let k = match matches.as_slice() {
        [] => {
            return Err(Error::NotFound(format!(
                "no key file whose id starts with {prefix:?}"
            )));
        }
        [k] => *k,
        many => {
            return Err(Error::Invalid(format!(
                "{} key files start with {prefix:?}: give more of the id",
                many.len()
            )));
        }
    };
    if k.current {
        return Err(Error::Invalid(format!(
            "key file {} is the one this passphrase opens: it is not removed, so the repository \
             keeps a key you can open",
            k.id
        )));
    }
    repo.storage().delete(Kind::Key, &k.id)?;
    Ok(k.clone())
}
