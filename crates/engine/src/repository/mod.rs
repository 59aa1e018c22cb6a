//! Repository mechanics: opening and creating repositories, and reading and writing the small
//! objects (config, keys, snapshots, records) through the repository's crypter (this file); the
//! index and its on-disk form for large backups, locks, key files, snapshot specs, failure
//! records, and reading content back (the submodules). Operations (`crate::ops`) and reports
//! (`crate::reports`) are built on these; nothing here calls them.

pub mod attempts;
pub mod content;
pub(crate) mod direct;
pub(crate) mod ids;
pub mod index;
pub mod indexed;
pub mod keys;
pub mod lock;
pub mod marks;
pub mod spec;
pub(crate) mod spill;

use std::collections::HashMap;
use std::sync::Arc;

use backstop_format::blob::{open_object, seal_object};
use backstop_format::config::{
    ChunkerParams, Encryption, LockMode, ObjectLock, REPO_VERSION, RepoConfig,
};
use backstop_format::crypto::{Crypter, KdfParams, KeyFile, MasterKey};
use backstop_format::manifest::Snapshot;
use backstop_format::record::Record;
use backstop_format::{FormatError, KeyId, RecordId, SnapshotId, Timestamp};
use backstop_storage::{Kind, Storage};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::repository::spec::{Spec, SpecClock};

pub use marks::Marks;

/// Every snapshot in a repository: the readable ones, oldest first, and the names of those that
/// cannot be read with their errors (one damaged manifest does not hide the others).
#[derive(Debug, Default)]
pub struct SnapshotList {
    pub readable: Vec<(SnapshotId, Snapshot)>,
    pub unreadable: Vec<(String, Error)>,
}

/// Readable objects with their names, and the names of unreadable ones with their errors.
pub type Named<T> = (Vec<(String, T)>, Vec<(String, Error)>);
/// Readable records with their object names (oldest first), and unreadable ones with errors.
pub type NamedRecords = Named<Record>;

/// Options for [`Repository::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// `Some` creates an encrypted repository.
    pub passphrase: Option<String>,
    /// zstd level for chunks (0 stores raw).
    pub compression: i32,
    pub pack_size: u32,
    pub chunker: ChunkerParams,
    pub kdf: KdfParams,
    pub now: Timestamp,
    pub host: String,
    /// S3 Object Lock: a retention written with every object (the storage must support it).
    pub object_lock: Option<ObjectLock>,
}

impl InitOptions {
    pub fn new(passphrase: Option<String>, now: Timestamp, host: String) -> Self {
        Self {
            passphrase,
            compression: 1,
            pack_size: 8 << 20,
            chunker: ChunkerParams::default(),
            kdf: KdfParams::default(),
            now,
            host,
            object_lock: None,
        }
    }
}

/// The storage's form of a repository's object lock.
pub(crate) fn retention(lock: ObjectLock) -> backstop_storage::Retention {
    backstop_storage::Retention {
        mode: match lock.mode {
            LockMode::Compliance => backstop_storage::RetentionMode::Compliance,
            LockMode::Governance => backstop_storage::RetentionMode::Governance,
        },
        days: lock.days,
    }
}

/// What [`Repository::object_totals`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectTotals {
    pub snapshots: usize,
    pub packs: usize,
    /// The bytes of every pack, index, snapshot, key and record object.
    pub stored_bytes: u64,
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    storage: Arc<dyn Storage>,
    config: RepoConfig,
    crypter: Crypter,
}

impl Repository {
    /// Creates a new repository. The config is written last: a location with a config is a
    /// repository, and an interrupted init leaves none.
    pub fn init(storage: Arc<dyn Storage>, opts: &InitOptions) -> Result<Self> {
        Self::init_with(storage, opts, None)
    }

    /// Creates a new repository that shares `like`'s keys and chunking (with an id of its
    /// own): chunk ids are the same in both, so snapshots copy between them chunk for chunk
    /// (`crate::ops::copy`). `like_passphrase` opens `like`'s key; `opts.passphrase` wraps it
    /// in the new repository's key file; both or neither must be given, as `like` is encrypted
    /// or not.
    pub fn init_like(
        storage: Arc<dyn Storage>,
        like: &Repository,
        like_passphrase: Option<&str>,
        opts: &InitOptions,
    ) -> Result<Self> {
        let key = match (like.is_encrypted(), like_passphrase, &opts.passphrase) {
            (true, Some(p), Some(_)) => Some(unwrap_key(like.storage.as_ref(), p)?),
            (false, _, None) => None,
            (true, _, _) => {
                return Err(Error::Invalid(
                    "a copy of an encrypted repository is encrypted too: give a passphrase".into(),
                ));
            }
            (false, _, Some(_)) => {
                return Err(Error::Invalid(
                    "a copy of an unencrypted repository is unencrypted: give no passphrase".into(),
                ));
            }
        };
        let opts = InitOptions {
            compression: like.config.compression,
            pack_size: like.config.pack_size,
            chunker: like.config.chunker,
            ..opts.clone()
        };
        Self::init_with(storage, &opts, key)
    }

    fn init_with(
        storage: Arc<dyn Storage>,
        opts: &InitOptions,
        key: Option<MasterKey>,
    ) -> Result<Self> {
        // Before anything is created: a storage without object locks refuses.
        if let Some(lock) = opts.object_lock {
            if lock.days == 0 {
                return Err(Error::Invalid(
                    "an object lock needs a retention of at least one day".into(),
                ));
            }
            storage.retain_writes(retention(lock))?;
        }
        storage.create()?;
        let (encryption, crypter) = match &opts.passphrase {
            Some(p) => {
                if p.is_empty() {
                    return Err(Error::Invalid("the passphrase is empty".into()));
                }
                let key = key.unwrap_or_else(MasterKey::generate);
                let file = KeyFile::wrap(&key, p.as_bytes(), opts.kdf, opts.now, &opts.host)
                    .map_err(|e| Error::format("wrapping the master key", e))?;
                let json = serde_json::to_vec_pretty(&file).expect("key file serializes");
                storage.write_new(Kind::Key, &KeyId::random().to_hex(), &json)?;
                (Encryption::Passphrase, Crypter::new(&key))
            }
            None => (Encryption::None, Crypter::None),
        };
        let config = RepoConfig {
            version: REPO_VERSION,
            id: backstop_format::id::to_hex(&backstop_format::id::random_bytes::<16>()),
            created: opts.now,
            encryption,
            chunker: opts.chunker,
            compression: opts.compression,
            pack_size: opts.pack_size,
            object_lock: opts.object_lock,
        };
        // Never over another repository's config, even one made in the meantime.
        storage.write_new(Kind::Config, "config", &config.encode())?;
        Ok(Self {
            storage,
            config,
            crypter,
        })
    }

    /// Opens an existing repository; `passphrase` is needed when it is encrypted.
    pub fn open(storage: Arc<dyn Storage>, passphrase: Option<&str>) -> Result<Self> {
        let raw = match storage.read(Kind::Config, "config") {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Err(Error::NoRepository(storage.location())),
            Err(e) => return Err(e.into()),
        };
        let config = RepoConfig::decode(&raw)
            .map_err(|e| Error::format("reading the repository config", e))?;
        // Everything written from here on carries the repository's retention.
        if let Some(lock) = config.object_lock {
            storage.retain_writes(retention(lock))?;
        }
        let crypter = match config.encryption {
            Encryption::None => {
                // A repository that has keys but claims to be unencrypted has been tampered
                // with; writing plaintext into it would leak data.
                if !storage.list(Kind::Key)?.is_empty() {
                    return Err(Error::Integrity(
                        "the config says the repository is unencrypted but it holds key files"
                            .into(),
                    ));
                }
                Crypter::None
            }
            Encryption::Passphrase => {
                let Some(p) = passphrase else {
                    return Err(Error::PassphraseRequired(storage.location()));
                };
                Crypter::new(&unwrap_key(storage.as_ref(), p)?)
            }
        };
        Ok(Self {
            storage,
            config,
            crypter,
        })
    }

    /// The storage, for the engine's own modules; front ends use the narrow methods below.
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Where the repository is, as its storage names it (a directory, later a URL).
    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// Free space where the repository is stored, when the storage can tell.
    pub fn free_space(&self) -> Option<u64> {
        self.storage.free_space()
    }

    /// Whether the repository can be read now: its snapshot list is listed (for health checks).
    pub fn check_readable(&self) -> Result<()> {
        self.storage.list(Kind::Snapshot)?;
        Ok(())
    }

    /// How many objects the repository holds and their stored bytes (`backstop info`).
    pub fn object_totals(&self) -> Result<ObjectTotals> {
        let mut t = ObjectTotals::default();
        for kind in [
            Kind::Pack,
            Kind::Index,
            Kind::Snapshot,
            Kind::Key,
            Kind::Record,
        ] {
            let objects = self.storage.list(kind)?;
            t.stored_bytes += objects.iter().map(|o| o.size).sum::<u64>();
            match kind {
                Kind::Pack => t.packs = objects.len(),
                Kind::Snapshot => t.snapshots = objects.len(),
                _ => {}
            }
        }
        Ok(t)
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The same repository through another handle to its storage: the storage behind a
    /// cache (`backstop_storage::CachedStorage`), say. The caller keeps it the same storage.
    pub fn with_storage(self, storage: Arc<dyn Storage>) -> Self {
        Self { storage, ..self }
    }

    pub fn crypter(&self) -> &Crypter {
        &self.crypter
    }

    pub fn is_encrypted(&self) -> bool {
        self.crypter.is_encrypted()
    }

    /// Reads every object of a kind in parallel: the readable ones with their names, and the
    /// names of the unreadable ones with their errors (one damaged object hides no other).
    fn read_all<T: Send>(
        &self,
        kind: Kind,
        read: impl Fn(&str) -> Result<T> + Sync,
    ) -> Result<Named<T>> {
        let names = self.storage.list(kind)?;
        let results: Vec<(String, Result<T>)> = names
            .par_iter()
            .map(|o| (o.name.clone(), read(&o.name)))
            .collect();
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for (name, r) in results {
            match r {
                Ok(v) => ok.push((name, v)),
                Err(e) => bad.push((name, e)),
            }
        }
        Ok((ok, bad))
    }

    /// Every pack file stored, by name, with its size.
    pub fn pack_sizes(&self) -> Result<HashMap<String, u64>> {
        Ok(self
            .storage
            .list(Kind::Pack)?
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect())
    }

    /// Seals and stores a small object.
    pub(crate) fn write_object(&self, kind: Kind, name: &str, plain: &[u8]) -> Result<()> {
        Ok(self
            .storage
            .write(kind, name, &seal_object(&self.crypter, plain))?)
    }

    /// Seals and stores a small object under a new name: one that is never replaced (a
    /// snapshot, a record), so an object already there under it is an error, never overwritten
    /// (`Storage::write_new`: `If-None-Match: *` on S3).
    pub(crate) fn write_new_object(&self, kind: Kind, name: &str, plain: &[u8]) -> Result<()> {
        Ok(self
            .storage
            .write_new(kind, name, &seal_object(&self.crypter, plain))?)
    }

    /// Reads and opens a small object.
    pub(crate) fn read_object(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let raw = self.storage.read(kind, name)?;
        open_object(&self.crypter, &raw)
            .map_err(|e| Error::format(format!("reading {kind} {name}"), e))
    }

    /// Stores `snap` under the id it has in another repository (a copy keeps its identity).
    /// A snapshot already stored under that id is left as it is: `Ok(false)`.
    pub(crate) fn write_snapshot_as(&self, id: &SnapshotId, snap: &Snapshot) -> Result<bool> {
        match self.write_new_object(Kind::Snapshot, &id.to_hex(), &snap.encode()) {
            Ok(()) => Ok(true),
            Err(Error::Storage(backstop_storage::Error::Exists { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn write_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        let id = SnapshotId::random();
        self.write_new_object(Kind::Snapshot, &id.to_hex(), &snap.encode())?;
        Ok(id)
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let plain = self.read_object(Kind::Snapshot, &id.to_hex())?;
        Snapshot::decode(&plain).map_err(|e| Error::format(format!("reading snapshot {id}"), e))
    }

    /// All snapshots, oldest first. Snapshots that cannot be read are returned separately so
    /// that one damaged manifest does not hide the others.
    pub fn snapshots(&self) -> Result<SnapshotList> {
        let (ok, bad) = self.read_all(Kind::Snapshot, |name| {
            let id = SnapshotId::from_hex(name).map_err(|e| Error::format("snapshot name", e))?;
            Ok((id, self.load_snapshot(&id)?))
        })?;
        let mut ok: Vec<(SnapshotId, Snapshot)> = ok.into_iter().map(|(_, s)| s).collect();
        ok.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(SnapshotList {
            readable: ok,
            unreadable: bad,
        })
    }

    /// Finds a snapshot by a spec without a time (see [`crate::repository::spec`]): an id, a unique id
    /// prefix, `latest[:SOURCE]` or `latest-verified[:SOURCE]`.
    pub fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        self.resolve_spec(&Spec::parse(spec, None)?)
    }

    /// Finds a snapshot by any spec (see [`crate::repository::spec`]), times read with `clock`.
    pub fn find_snapshot_at(
        &self,
        spec: &str,
        clock: &SpecClock,
    ) -> Result<(SnapshotId, Snapshot)> {
        self.resolve_spec(&Spec::parse(spec, Some(clock))?)
    }

    fn resolve_spec(&self, spec: &Spec) -> Result<(SnapshotId, Snapshot)> {
        let SnapshotList {
            readable: snaps,
            unreadable: damaged,
        } = self.snapshots()?;
        let drills = match spec {
            Spec::LatestVerified(_) => self.verification()?,
            _ => HashMap::new(),
        };
        crate::repository::spec::resolve(spec, &snaps, &damaged, &drills)
    }

    /// Stores a record (the result of a restore drill).
    pub fn write_record(&self, record: &Record) -> Result<RecordId> {
        let id = RecordId::random();
        self.write_new_object(Kind::Record, &id.to_hex(), &record.encode())?;
        Ok(id)
    }

    /// All readable records, oldest first.
    pub fn records(&self) -> Result<Vec<Record>> {
        Ok(self
            .records_checked()?
            .0
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// All records with their names, oldest first, and the names of unreadable ones with their
    /// errors (an operation that deletes must not miss a pin).
    pub fn records_checked(&self) -> Result<NamedRecords> {
        let (mut ok, bad) = self.read_all(Kind::Record, |name| {
            let b = self.read_object(Kind::Record, name)?;
            Record::decode(&b).map_err(|e| Error::format(format!("reading record {name}"), e))
        })?;
        ok.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((ok, bad))
    }

    /// Each snapshot's newest restore drill.
    pub fn verification(&self) -> Result<HashMap<SnapshotId, Record>> {
        Ok(self
            .marks()?
            .into_iter()
            .filter_map(|(id, m)| Some((id, m.drill?)))
            .collect())
    }

    /// Each snapshot's state from its records: newest drill, pinned, marked verified.
    pub fn marks(&self) -> Result<HashMap<SnapshotId, Marks>> {
        Ok(Marks::from_records(self.records()?))
    }
}

fn unwrap_key(storage: &dyn Storage, passphrase: &str) -> Result<MasterKey> {
    unwrap_key_named(storage, passphrase).map(|(_, key)| key)
}

/// The master key, and the name of the key file that `passphrase` opens.
pub(crate) fn unwrap_key_named(
    storage: &dyn Storage,
    passphrase: &str,
) -> Result<(String, MasterKey)> {
    let keys = storage.list(Kind::Key)?;
    if keys.is_empty() {
        return Err(Error::Integrity(
            "the repository is encrypted but has no key files".into(),
        ));
    }
    // A damaged key file is not a wrong passphrase: the passphrase may be right for it.
    let mut damaged = Vec::new();
    for k in keys {
        let raw = storage.read(Kind::Key, &k.name)?;
        match KeyFile::parse(&raw).and_then(|f| f.unwrap(passphrase.as_bytes())) {
            Ok(key) => return Ok((k.name, key)),
            Err(FormatError::WrongPassphrase) => continue,
            Err(e) => damaged.push(format!("keys/{} ({e})", k.name)),
        }
    }
    if damaged.is_empty() {
        return Err(Error::WrongPassphrase(storage.location()));
    }
    Err(Error::DamagedKey {
        location: storage.location(),
        damaged,
    })
}

/// A key file that cannot be used whatever the passphrase, and why.
#[derive(Debug, Clone)]
pub struct DamagedKey {
    /// The key file's name.
    pub file: String,
    pub error: String,
}

/// Key files that cannot be used whatever the passphrase (they do not parse, or fail their own
/// checksum).
pub fn damaged_key_files(repo: &Repository) -> Result<Vec<DamagedKey>> {
    let mut out = Vec::new();
    for k in repo.storage().list(Kind::Key)? {
        let raw = repo.storage().read(Kind::Key, &k.name)?;
        if let Err(e) = KeyFile::parse(&raw).and_then(|f| f.check_integrity()) {
            out.push(DamagedKey {
                file: k.name,
                error: e.to_string(),
            });
        }
    }
    Ok(out)
}
