//! Snapshot manifests and the items they list.
//!
//! A snapshot object is small JSON (sealed like every object): metadata plus the [`Content`] of
//! its item list. The item list is a JSON-lines stream of [`Item`]s sorted by path, stored like
//! any other content (chunked, deduplicated, tree-indexed), so a snapshot that shares most items
//! with its parent also shares most of its manifest.
//!
//! Unknown fields are ignored when reading, so newer writers can add metadata; a higher
//! `version` than this build knows is refused.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::FormatError;
use crate::id::SnapshotId;
use crate::tree::Content;

/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    #[default]
    Manual,
    Scheduled,
    Startup,
    PreChange,
    PreRestore,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Manual => "manual",
            BackupKind::Scheduled => "scheduled",
            BackupKind::Startup => "startup",
            BackupKind::PreChange => "pre-change",
            BackupKind::PreRestore => "pre-restore",
        }
    }
}

impl std::str::FromStr for BackupKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "manual" => Ok(Self::Manual),
            "scheduled" => Ok(Self::Scheduled),
            "startup" => Ok(Self::Startup),
            "pre-change" => Ok(Self::PreChange),
            "pre-restore" => Ok(Self::PreRestore),
            _ => Err(format!(
                "unknown backup kind {s:?} (expected manual, scheduled, startup, pre-change or pre-restore)"
            )),
        }
    }
}

/// What kind of source a snapshot captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Files and directories.
    Files,
    /// The standard output of a command.
    Command,
    /// A SQLite database.
    Sqlite,
    /// Standard input.
    Stdin,
    /// A PostgreSQL database, dumped by `pg_dump` (custom format, uncompressed).
    Postgres,
    /// A MariaDB or MySQL database, dumped by `mariadb-dump` (or `mysqldump`) as SQL text.
    Mariadb,
    /// Written by a newer version.
    #[serde(other)]
    Unknown,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Files => "files",
            SourceKind::Command => "command",
            SourceKind::Sqlite => "sqlite",
            SourceKind::Stdin => "stdin",
            SourceKind::Postgres => "postgres",
            SourceKind::Mariadb => "mariadb",
            SourceKind::Unknown => "unknown",
        }
    }
}

/// The source a snapshot belongs to; snapshots are grouped by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub name: String,
    pub kind: SourceKind,
}

/// Counts about a snapshot, filled in by the backup that made it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    pub items: u64,
    pub files: u64,
    pub dirs: u64,
    /// Content bytes captured.
    pub bytes: u64,
    /// Stored bytes this backup added to the repository.
    pub bytes_added: u64,
    pub chunks: u64,
    pub chunks_new: u64,
}

/// A snapshot manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub time: Timestamp,
    pub host: String,
    pub source: SourceRef,
    pub kind: BackupKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// The paths or command given to the backup, as the user wrote them.
    #[serde(default)]
    pub paths: Vec<String>,
    /// The item list (JSON lines of [`Item`]).
    pub items: Content,
    pub stats: SnapshotStats,
    /// Problems that did not stop the backup (unreadable files, skipped special files).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The program that wrote it, e.g. `backstop 0.1.0`.
    pub program: String,
    /// Set on a snapshot written by `repair snapshots`: what it was made from and what was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired: Option<Repaired>,
    /// The exclusion rules a files source was backed up with (absent when there were none).
    #[serde(default, skip_serializing_if = "Excludes::is_empty")]
    pub excludes: Excludes,
}

/// What a files source leaves out: gitignore-style `patterns` (one per rule, `!` re-includes),
/// directories holding an entry named in `if_present`, and with `caches` directories holding
/// a valid `CACHEDIR.TAG`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excludes {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub if_present: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub caches: bool,
}

impl Excludes {
    /// No rule at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.if_present.is_empty() && !self.caches
    }
}

/// How a repaired snapshot came about: a copy of a damaged snapshot holding what could still
/// be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repaired {
    /// The damaged snapshot (kept until someone forgets it).
    pub from: SnapshotId,
    /// When the repair ran.
    pub time: Timestamp,
    /// What could not be read, item by item.
    pub losses: Vec<Loss>,
}

/// What one item (or the item list itself, as `(item list)`) lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    pub path: String,
    /// The item's size.
    pub size: u64,
    /// Lost byte ranges, `[start, end)`; in the repaired item they read as zeros.
    pub ranges: Vec<[u64; 2]>,
    /// Nothing of the item could be read: it is left out of the repaired snapshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
    /// More about the loss (for the item list: between which items it lies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Loss {
    /// Bytes lost.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|[a, b]| b - a).sum()
    }
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshot serializes")
    }

    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_slice(b).map_err(|e| FormatError::Json(e.to_string()))?;
        if v.version > SNAPSHOT_VERSION {
            return Err(FormatError::Unsupported(format!(
                "snapshot version {} (this build reads up to {SNAPSHOT_VERSION}); upgrade backstop",
                v.version
            )));
        }
        serde_json::from_slice(b).map_err(|e| FormatError::Json(e.to_string()))
    }
}

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    File,
    Dir,
    Symlink,
    /// A byte stream that is not a file (a command's output).
    Stream,
    /// A SQLite database captured page by page inside one read transaction; `database` holds
    /// its metadata.
    Sqlite,
    #[serde(other)]
    Unknown,
}

/// Row count of one table at capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    pub name: String,
    /// `None` when the table cannot be read by this build (a virtual table whose module is
    /// not available); capture is page level and does not need it.
    pub rows: Option<u64>,
    /// A database server's table: the columns of its primary key, in order (absent when it
    /// has none, for SQLite, whose file says, and in snapshots written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
}

/// A table the integrity check could not read, and why: a limit of the check, not damage.
/// Typically a virtual table whose module or tokenizer only the application registers (FTS5
/// with a custom tokenizer, an unknown module), or a table with an index on a collation only
/// the application defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCheckable {
    pub table: String,
    /// SQLite's words, e.g. `no such tokenizer: stoken`.
    pub reason: String,
}

/// What was known about a database when it was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseMeta {
    pub page_size: u32,
    pub page_count: u64,
    /// `wal`, `delete`, `truncate`, `persist`, `memory` or `off`.
    pub journal_mode: String,
    pub user_version: i64,
    /// BLAKE3 over the type, name, table name and SQL of every `sqlite_schema` row.
    pub schema_fingerprint: String,
    pub tables: Vec<TableRows>,
    /// Result of `PRAGMA quick_check` on the captured state: `ok`, or the first problems.
    /// With tables in `not_checkable`, the result of the checks that could run.
    pub quick_check: String,
    /// Tables the check could not read (absent in snapshots written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_checkable: Vec<NotCheckable>,
    /// Where the database was, absolute, for `restore --in-place`.
    pub source_path: String,
    /// The source's data validation rules, run on the captured state (absent when the source
    /// has none, and in snapshots written before they existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
}

/// The outcome of a source's validation rules on one captured database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// BLAKE3 of the rules as configured (their JSON), so that an unchanged database keeps
    /// these results only while the rules stay the same.
    pub rules: String,
    pub results: Vec<RuleOutcome>,
}

impl Validation {
    /// The rules that failed.
    pub fn failing(&self) -> impl Iterator<Item = &RuleOutcome> {
        self.results.iter().filter(|r| !r.passed)
    }
}

/// The outcome of one data validation rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    pub name: String,
    /// `integrity`, `foreign_keys`, `orphans`, `unique`, `not_negative`, `no_future_dates`
    /// or `sql`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub passed: bool,
    /// Offending rows (or problems, for `integrity`; the query's number for `sql`).
    pub count: u64,
    pub detail: String,
    /// The first offending rows, by key (`id=17`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first: Vec<String>,
}

impl DatabaseMeta {
    pub fn is_healthy(&self) -> bool {
        self.quick_check == "ok"
    }
}

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Relative, `/`-separated, without `.` or `..` components (see [`check_item_path`]).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: ItemKind,
    #[serde(default)]
    pub size: u64,
    /// Unix permission bits, where the platform has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<Timestamp>,
    /// Read-only attribute (Windows; also set on Unix when no write bit is set).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseMeta>,
    /// A server database's dump (PostgreSQL, MariaDB): what it was taken from, read in the dump's own
    /// snapshot of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerDatabase>,
    /// A workbook's sheets and Excel tables as tables (absent for other files, for workbooks
    /// that could not be read, and in snapshots written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workbook: Option<WorkbookMeta>,
}

/// A workbook read as tables when it was backed up: each worksheet (its used range, the first
/// row taken as the header) and each Excel table (a ListObject, with its own header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkbookMeta {
    pub tables: Vec<SheetTable>,
}

/// One worksheet or Excel table of a workbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetTable {
    /// The sheet's or the table's name.
    pub name: String,
    /// `sheet` or `table`.
    pub kind: String,
    /// The sheet an Excel table is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// Rows below the header.
    pub rows: u64,
    pub columns: Vec<SheetColumn>,
}

/// A column of a sheet or table: its header, and what its cells below the header hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetColumn {
    pub name: String,
    /// `number`, `text`, `date`, `duration`, `bool`, `error`, `empty`, or `mixed`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// What a dump of a server database was taken from, as it was when the dump started (the
/// counts are read in the same snapshot of the database as the dump).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDatabase {
    /// `postgres` or `mariadb`.
    pub engine: String,
    /// `dump` (the server's own dump tool).
    pub method: String,
    /// The server's version, as it says it (`15.20 (Debian 15.20-0+deb12u1)`).
    pub server_version: String,
    /// The dump tool and its version (`pg_dump (PostgreSQL) 15.20`).
    pub tool: String,
    pub database: String,
    /// `pg_database_size` (MariaDB: its tables' data and index lengths) when the dump started.
    pub size_bytes: u64,
    /// Every table (PostgreSQL: schema-qualified) with its row count.
    pub tables: Vec<TableRows>,
    /// A hash of every table's columns, types and nullability: changes with the schema.
    pub schema_fingerprint: String,
    /// The application's schema version, from a migrations table it keeps
    /// (`schema_migrations`, `alembic_version`, `flyway_schema_history`, ...), with the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    /// The database's encoding (PostgreSQL: `UTF8`, `LATIN1`, `SQL_ASCII`, ...), which a
    /// database restored from the dump is created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// The database's default collation (PostgreSQL: `LC_COLLATE`, such as `en_US.UTF-8`;
    /// MariaDB: `utf8mb4_general_ci`), which a database restored from the dump is created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    /// PostgreSQL: the database's `LC_CTYPE`, which a restored database is created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctype: Option<String>,
    /// The source's data validation rules, run in the export's own snapshot transaction
    /// (the built-in exports; absent without rules, for the dump tools' snapshots, and in
    /// snapshots written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
}

impl Item {
    /// An item with no metadata or content yet.
    pub fn new(path: impl Into<String>, kind: ItemKind) -> Self {
        Self {
            path: path.into(),
            kind,
            size: 0,
            mode: None,
            mtime: None,
            readonly: false,
            target: None,
            content: None,
            database: None,
            server: None,
            workbook: None,
        }
    }
}

/// Checks that a path from a manifest stays inside the directory it is restored into: relative,
/// `/`-separated, no empty, `.` or `..` component, no NUL. Characters that are legal in Unix
/// names but special on Windows (`\\`, `:`) are allowed here; a restore on Windows refuses
/// them (see `backstop_sources::restore`).
pub fn check_item_path(path: &str) -> Result<(), FormatError> {
    let bad = |why: &str| Err(FormatError::UnsafePath(path.to_string(), why.to_string()));
    if path.is_empty() {
        return bad("empty path");
    }
    if path.starts_with('/') || path.contains('\0') {
        return bad("absolute path or NUL");
    }
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return bad("empty, '.' or '..' component");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_rejected() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
        ] {
            assert!(check_item_path(p).is_err(), "{p:?} accepted");
        }
        // Legal Unix names; a restore on Windows refuses them separately.
        for p in ["a", "a/b", "shop.db", ".hidden/x", "a..b", "c:data", "a\\b"] {
            assert!(check_item_path(p).is_ok(), "{p:?} rejected");
        }
    }

    #[test]
    fn newer_version_is_refused() {
        let json = br#"{"version": 99}"#;
        assert!(matches!(
            Snapshot::decode(json),
            Err(FormatError::Unsupported(_))
        ));
    }

    #[test]
    fn database_meta_without_not_checkable_still_reads() {
        // Written before `not_checkable` existed.
        let old = r#"{"page_size":4096,"page_count":2,"journal_mode":"wal","user_version":0,"schema_fingerprint":"f","tables":[{"name":"t","rows":null}],"quick_check":"quick_check stopped: SQL logic error","source_path":"/x"}"#;
        let m: DatabaseMeta = serde_json::from_str(old).unwrap();
        assert!(m.not_checkable.is_empty());
        assert!(!m.is_healthy());
        let mut new = m.clone();
        new.not_checkable.push(NotCheckable {
            table: "search".into(),
            reason: "no such tokenizer: stoken".into(),
        });
        let json = serde_json::to_string(&new).unwrap();
        assert!(
            json.contains(r#""not_checkable":[{"table":"search""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<DatabaseMeta>(&json).unwrap(), new);
        assert!(!serde_json::to_string(&m).unwrap().contains("not_checkable"));
    }

    #[test]
    fn backup_kind_names_round_trip() {
        for k in [
            BackupKind::Manual,
            BackupKind::Scheduled,
            BackupKind::Startup,
            BackupKind::PreChange,
            BackupKind::PreRestore,
        ] {
            assert_eq!(k.as_str().parse::<BackupKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::id::ChunkId;
    use crate::tree::ChunkRef;
    use proptest::prelude::*;

    fn content() -> impl Strategy<Value = Content> {
        (
            any::<u64>(),
            proptest::collection::vec((any::<[u8; 32]>(), any::<u64>()), 0..4),
            any::<bool>(),
        )
            .prop_map(|(size, chunks, tree)| {
                let refs: Vec<ChunkRef> = chunks
                    .into_iter()
                    .map(|(b, s)| ChunkRef {
                        id: ChunkId(b),
                        size: s,
                    })
                    .collect();
                Content {
                    size,
                    hash: "ab".repeat(32),
                    tree: tree.then(|| refs.first().copied()).flatten(),
                    chunks: if tree { Vec::new() } else { refs },
                    delta: None,
                }
            })
    }

    #[test]
    fn excludes_are_optional_in_a_snapshot() {
        let mut s = Snapshot {
            version: SNAPSHOT_VERSION,
            time: Timestamp::from_second(0).unwrap(),
            host: "h".into(),
            source: SourceRef {
                name: "app".into(),
                kind: SourceKind::Files,
            },
            kind: BackupKind::Manual,
            description: None,
            tags: vec![],
            ticket: None,
            parent: None,
            paths: vec!["app".into()],
            items: Content {
                size: 0,
                hash: "ab".repeat(32),
                tree: None,
                chunks: vec![],
                delta: None,
            },
            stats: SnapshotStats::default(),
            warnings: vec![],
            program: "p".into(),
            repaired: None,
            excludes: Excludes::default(),
        };
        // Written before exclusions existed, or with none: no field, and it decodes.
        let old = s.encode();
        assert!(!String::from_utf8_lossy(&old).contains("excludes"));
        assert_eq!(
            Snapshot::decode(&old).unwrap().excludes,
            Excludes::default()
        );
        s.excludes.patterns = vec!["*.log".into(), "!keep.log".into()];
        s.excludes.caches = true;
        let json: serde_json::Value = serde_json::from_slice(&s.encode()).unwrap();
        assert_eq!(
            json["excludes"],
            serde_json::json!({"patterns": ["*.log", "!keep.log"], "caches": true})
        );
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
    }

    proptest! {
        #[test]
        fn item_round_trip(path in "[a-z]{1,8}(/[a-z.]{1,8}){0,3}", size in any::<u64>(), mode in proptest::option::of(0u32..0o7777),
                           secs in 0i64..4_000_000_000, target in proptest::option::of(".{0,20}"), c in proptest::option::of(content())) {
            let item = Item {
                path, kind: ItemKind::File, size, mode,
                mtime: Some(Timestamp::from_second(secs).unwrap()),
                readonly: mode == Some(0o444), target, content: c, database: None, server: None, workbook: None,
            };
            let json = serde_json::to_string(&item).unwrap();
            prop_assert_eq!(serde_json::from_str::<Item>(&json).unwrap(), item);
        }

        #[test]
        fn snapshot_round_trip(desc in proptest::option::of(".{0,40}"), tags in proptest::collection::vec("[a-z]{1,6}", 0..3), c in content(), secs in 0i64..4_000_000_000,
                             patterns in proptest::collection::vec("!?[a-z*/]{1,8}", 0..3), caches in any::<bool>()) {
            let s = Snapshot {
                version: SNAPSHOT_VERSION, time: Timestamp::from_second(secs).unwrap(), host: "h".into(),
                source: SourceRef { name: "shop".into(), kind: SourceKind::Files }, kind: BackupKind::PreChange,
                description: desc, tags, ticket: Some("T-1".into()), parent: None, paths: vec!["a".into()],
                items: c, stats: SnapshotStats::default(), warnings: vec![], program: "p".into(), repaired: None,
                excludes: Excludes { patterns, if_present: vec![".nobackup".into()], caches },
            };
            prop_assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
        }

        #[test]
        fn garbage_snapshot_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Snapshot::decode(&data);
        }
    }
}
