//! Looking at a database: its header, metadata, checks, and opening a restored image.

use std::io::Read;
use std::path::Path;

use backstop_format::manifest::{DatabaseMeta, TableRows};
use rusqlite::{Connection, OpenFlags};

use super::BUSY_TIMEOUT;
use super::limits::{Verdict, check_with_limits, describe_not_checkable, missing_part};
use crate::Error;
use backstop_format::manifest::NotCheckable;
use backstop_format::record::NOT_CHECKABLE;

/// Whether `path` starts with the SQLite header.
pub fn is_sqlite_file(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

pub(crate) fn sql_err(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    Error::Invalid(format!("SQLite database {}: {what}: {e}", path.display()))
}

/// Opens a connection that never writes. Read-only connections never checkpoint a WAL on close,
/// so a backup never changes the database (for a WAL database that nothing has open, SQLite
/// may leave an empty `-wal` and a `-shm` file behind, as any reader does).
pub fn open_read_only(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c =
        Connection::open_with_flags(path, flags).map_err(|e| sql_err(path, "cannot open", e))?;
    c.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_err(path, "setting the busy timeout", e))?;
    Ok(c)
}

/// What is at the target of a database restore.
#[derive(Debug, Clone)]
pub enum LiveState {
    /// No file there.
    Absent,
    Database(Inspection),
    /// A file SQLite cannot open as a database, and why (no SQLite header, truncated, a
    /// damaged header or schema).
    Unreadable(String),
}

/// Looks at the file at `path` as a database. A file that cannot be opened as a database is a
/// state, not an error; anything else that stops the look (a writer holding its lock too long,
/// no permission) stays an error, so that a database that is only busy is never taken for a
/// damaged one.
pub fn inspect_live(path: &Path) -> Result<LiveState, Error> {
    if !path.is_file() {
        return Ok(LiveState::Absent);
    }
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Ok(LiveState::Unreadable("the file is empty".into()));
    }
    // The header is not read through a file handle of our own: closing it would drop every
    // POSIX lock this process holds on the database (the read transaction of a capture that
    // the daemon runs beside this preview). SQLite's own connections share their locks.
    let damaged = |e: &rusqlite::Error| {
        matches!(e, rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
    };
    let why = |e: rusqlite::Error| match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            format!("the file ({len} bytes) is not a SQLite database: {e}")
        }
        _ => e.to_string(),
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(c) => c,
        Err(e) if damaged(&e) => return Ok(LiveState::Unreadable(why(e))),
        Err(e) => return Err(sql_err(path, "cannot open", e)),
    };
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_err(path, "setting the busy timeout", e))?;
    // The first read checks the header against the file (a truncated database fails here);
    // reading every schema row checks the schema's pages.
    let probe = conn.query_row(
        "SELECT count(*), sum(length(coalesce(sql, ''))) FROM sqlite_schema",
        [],
        |_| Ok(()),
    );
    match probe {
        Ok(()) => Ok(LiveState::Database(inspect(&conn, path)?)),
        Err(e) if damaged(&e) => Ok(LiveState::Unreadable(why(e))),
        Err(e) => Err(sql_err(path, "reading the schema", e)),
    }
}

/// What a database looks like now (inside the caller's transaction, if any).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inspection {
    pub page_size: u32,
    pub page_count: u64,
    pub journal_mode: String,
    pub user_version: i64,
    pub schema_fingerprint: String,
    pub tables: Vec<TableRows>,
    /// Tables this build may not be able to read (their rows stay `None`).
    pub virtual_tables: Vec<String>,
}

/// Reads page size and count, journal mode, user_version, the schema fingerprint and each
/// table's row count.
pub fn inspect(conn: &Connection, path: &Path) -> Result<Inspection, Error> {
    let mut i = inspect_shape(conn, path)?;
    count_rows(conn, &mut i.tables, &i.virtual_tables);
    Ok(i)
}

/// Fills in each table's row count (left `None` for a table this build cannot read, such as a
/// virtual table whose module is missing). Counting reads every table's smallest index, so a
/// capture does it only once the content is known to have changed.
pub fn count_rows(conn: &Connection, tables: &mut [TableRows], skip: &[String]) {
    for t in tables {
        if !skip.contains(&t.name) {
            let sql = format!("SELECT count(*) FROM \"{}\"", t.name.replace('"', "\"\""));
            t.rows = conn
                .query_row(&sql, [], |r| r.get::<_, i64>(0))
                .ok()
                .map(|n| n as u64);
        }
    }
}

/// Like [`inspect`], without the row counts (every `rows` is `None`).
pub fn inspect_shape(conn: &Connection, path: &Path) -> Result<Inspection, Error> {
    let q = |sql: &str| -> Result<i64, Error> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(|e| sql_err(path, sql, e))
    };
    let page_size = q("PRAGMA page_size")?;
    let page_count = q("PRAGMA page_count")?;
    let user_version = q("PRAGMA user_version")?;
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| sql_err(path, "PRAGMA journal_mode", e))?;
    let mut hasher = blake3::Hasher::new();
    let mut tables = Vec::new();
    {
        let mut st = conn
            .prepare("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
            .map_err(|e| sql_err(path, "reading the schema", e))?;
        let mut rows = st
            .query([])
            .map_err(|e| sql_err(path, "reading the schema", e))?;
        while let Some(r) = rows
            .next()
            .map_err(|e| sql_err(path, "reading the schema", e))?
        {
            let fields: [String; 4] = [
                r.get(0).unwrap_or_default(),
                r.get(1).unwrap_or_default(),
                r.get(2).unwrap_or_default(),
                r.get(3).unwrap_or_default(),
            ];
            for f in &fields {
                hasher.update(&(f.len() as u64).to_le_bytes());
                hasher.update(f.as_bytes());
            }
            if fields[0] == "table" {
                let is_virtual = fields[3]
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("CREATE VIRTUAL");
                tables.push((fields[1].clone(), is_virtual));
            }
        }
    }
    let virtual_tables = tables
        .iter()
        .filter(|(_, v)| *v)
        .map(|(n, _)| n.clone())
        .collect();
    let tables = tables
        .into_iter()
        .map(|(name, _)| TableRows {
            name,
            rows: None,
            key: Vec::new(),
        })
        .collect();
    Ok(Inspection {
        page_size: u32::try_from(page_size).map_err(|_| Error::Invalid("bad page size".into()))?,
        page_count: page_count as u64,
        journal_mode,
        user_version,
        schema_fingerprint: hasher.finalize().to_hex().to_string(),
        tables,
        virtual_tables,
    })
}

/// Runs a check pragma (`quick_check`, `integrity_check`) and returns `ok` or the problems.
/// A database so damaged that the check itself stops is a result too (the problem, not an
/// error): a damaged database must still be backed up, and a safety snapshot of it taken
/// before it is repaired by a restore.
pub fn run_check(conn: &Connection, _path: &Path, pragma: &str) -> Result<String, Error> {
    let lines: rusqlite::Result<Vec<String>> = conn
        .prepare(&format!("PRAGMA {pragma}"))
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    Ok(match lines {
        Ok(lines) => lines.join("; "),
        Err(e) => format!("{pragma} stopped: {e}"),
    })
}

/// Violations reported by `PRAGMA foreign_key_check` (empty when none).
pub fn foreign_key_violations(conn: &Connection, path: &Path) -> Result<u64, Error> {
    let mut st = conn
        .prepare("PRAGMA foreign_key_check")
        .map_err(|e| sql_err(path, "foreign_key_check", e))?;
    let n = st
        .query_map([], |_| Ok(()))
        .map_err(|e| sql_err(path, "foreign_key_check", e))?
        .count();
    Ok(n as u64)
}

pub use backstop_format::record::Check;

/// A URI that opens `path` as an immutable file: no locks, no `-wal` or `-shm` created, the
/// image is read exactly as it is.
pub(crate) fn immutable_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let s = abs.to_string_lossy().replace('\\', "/");
    let mut out = String::from("file:");
    if !s.starts_with('/') {
        out.push('/');
    }
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("?immutable=1");
    out
}

/// Opens a database file read-only as immutable (for checking a restored image).
pub fn open_image(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(immutable_uri(path), flags)
        .map_err(|e| sql_err(path, "cannot open", e))
}

/// The name of the check in [`check_image`] that repeats the capture's own verdict.
pub const QUICK_CHECK_AT_CAPTURE: &str = "quick_check at capture";

/// The name of the check in [`check_image`] that checks the image again when the capture's own
/// check failed or stopped.
pub const QUICK_CHECK_AGAIN: &str = "quick_check";

/// Checks a database file against the metadata captured with it.
pub fn check_image(
    path: &Path,
    meta: &DatabaseMeta,
    full: bool,
    foreign_keys: bool,
) -> Result<Vec<Check>, Error> {
    let conn = open_image(path)?;
    // Counting rows reads every table; a plain restore, whose image hash already proved the
    // bytes are those captured (and counted), skips it. Drills and --full-check count.
    let thorough = full || foreign_keys;
    let now = if thorough {
        inspect(&conn, path)?
    } else {
        inspect_shape(&conn, path)?
    };
    let mut checks = Vec::new();
    let mut add = |name: &str, passed: bool, detail: String| {
        checks.push(Check {
            name: name.into(),
            passed,
            detail,
        })
    };
    add(
        "pages",
        now.page_size == meta.page_size && now.page_count == meta.page_count,
        format!("{} pages of {} bytes", now.page_count, now.page_size),
    );
    add(
        "schema",
        now.schema_fingerprint == meta.schema_fingerprint && now.user_version == meta.user_version,
        format!(
            "fingerprint {}, user_version {}",
            &now.schema_fingerprint[..16],
            now.user_version
        ),
    );
    if thorough {
        let mismatched: Vec<String> = meta
            .tables
            .iter()
            .filter(|t| {
                now.tables.iter().find(|n| n.name == t.name).map(|n| n.rows) != Some(t.rows)
            })
            .map(|t| t.name.clone())
            .collect();
        add(
            "row counts",
            mismatched.is_empty(),
            if mismatched.is_empty() {
                format!("{} tables as captured", meta.tables.len())
            } else {
                format!("differ in {}", mismatched.join(", "))
            },
        );
    }
    let mut not_checkable = meta.not_checkable.clone();
    let mut limits = |v: Verdict| {
        for n in v.not_checkable {
            if !not_checkable.iter().any(|m| m.table == n.table) {
                not_checkable.push(n);
            }
        }
        v.result
    };
    if full {
        let v = check_with_limits(&conn, path, "integrity_check")?;
        let ok = v.is_ok();
        add("integrity_check", ok, limits(v));
    } else if meta.is_healthy() {
        add(QUICK_CHECK_AT_CAPTURE, true, meta.quick_check.clone());
    } else {
        // The capture's check failed or stopped. A snapshot taken before backstop knew the
        // limits of its check says "quick_check stopped: SQL logic error" for a database with
        // an FTS5 table whose tokenizer only the application has: check the restored image
        // itself (the same bytes, as its hash proved), around what cannot be read.
        let v = check_with_limits(&conn, path, "quick_check")?;
        let ok = v.is_ok();
        let result = limits(v);
        add(
            QUICK_CHECK_AGAIN,
            ok,
            format!("{result} (at capture: {})", meta.quick_check),
        );
    }
    if foreign_keys {
        match conn.prepare("PRAGMA foreign_key_check").and_then(|mut st| {
            st.query_map([], |_| Ok(()))?
                .collect::<rusqlite::Result<Vec<()>>>()
                .map(|v| v.len())
        }) {
            Ok(n) => add("foreign_key_check", n == 0, format!("{n} violation(s)")),
            // A key on a collation only the application defines.
            Err(e) if missing_part(&e.to_string()) => {
                not_checkable.push(NotCheckable {
                    table: "(foreign keys)".into(),
                    reason: e.to_string(),
                });
            }
            Err(e) => add("foreign_key_check", false, format!("stopped: {e}")),
        }
    }
    if !not_checkable.is_empty() {
        add(
            NOT_CHECKABLE,
            true,
            format!(
                "{}: only the application defines what these need; every other table was checked",
                describe_not_checkable(&not_checkable)
            ),
        );
    }
    Ok(checks)
}
