//! Checking a database with parts only its application defines.
//!
//! An application can register SQLite modules, FTS tokenizers, collations and functions on
//! its own connections and use them in its schema: an FTS5 table with `tokenize='stoken'`, an
//! index `COLLATE mycoll`. backstop's connections do not have them, and SQLite then refuses
//! the whole `PRAGMA quick_check` (for FTS5 with a missing tokenizer it says only "SQL logic
//! error"). That is a limit of the check, not damage: the pages are captured and restored byte
//! for byte whatever the tables hold.
//!
//! So a check that stops is retried table by table (`PRAGMA quick_check(TABLE)`, which checks
//! the table's b-tree, its indexes and rows, and with `sqlite_schema` the freelist). A table
//! that cannot be read for lack of such a part is recorded as not checkable, with SQLite's
//! words; every other table is checked. The one check a table-by-table run leaves out is
//! SQLite's "every page is used" accounting (a leaked page loses nothing). A check that stops
//! for any other reason (damage, most likely) stays a failed check.

use std::path::Path;

use backstop_format::manifest::NotCheckable;
use rusqlite::Connection;

use crate::Error;

/// The result of a check pragma with its limits: `ok` or the problems of the tables that could
/// be checked, and the tables that could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub result: String,
    pub not_checkable: Vec<NotCheckable>,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.result == "ok"
    }
}

/// Whether SQLite's error says a part only the application defines is missing.
pub(crate) fn missing_part(message: &str) -> bool {
    [
        "no such module",
        "no such tokenizer",
        "unknown tokenizer",
        "no such collation sequence",
        "no such function",
    ]
    .iter()
    .any(|m| message.contains(m))
}

fn message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        e => e.to_string(),
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs `PRAGMA {pragma}` (optionally on one table) and returns its lines, or the error that
/// stopped it.
fn pragma_lines(
    conn: &Connection,
    pragma: &str,
    table: Option<&str>,
) -> Result<Vec<String>, String> {
    let sql = match table {
        Some(t) => format!("PRAGMA {pragma}('{}')", t.replace('\'', "''")),
        None => format!("PRAGMA {pragma}"),
    };
    conn.prepare(&sql)
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(|e| message(&e))
}

/// The tables of the schema: name, and the module of a virtual table (lowercase).
fn tables(conn: &Connection) -> rusqlite::Result<Vec<(String, Option<String>)>> {
    let mut st = conn.prepare(
        "SELECT name, coalesce(sql, '') FROM sqlite_schema WHERE type = 'table' ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        let (name, sql): (String, String) = (r.get(0)?, r.get(1)?);
        Ok((name, module_of(&sql)))
    })?;
    rows.collect()
}

/// The module of a `CREATE VIRTUAL TABLE ... USING module(...)` statement, lowercase.
fn module_of(sql: &str) -> Option<String> {
    let upper = sql.trim_start().to_ascii_uppercase();
    if !upper.starts_with("CREATE VIRTUAL") {
        return None;
    }
    let at = upper.find(" USING ")? + " USING ".len();
    let module: String = sql[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Some(module.to_ascii_lowercase())
}

/// Why a virtual table cannot be read for lack of a part, if it cannot.
fn missing_for(conn: &Connection, name: &str, module: &str) -> Option<String> {
    // Preparing connects the table (xConnect), where SQLite looks its module up (and FTS3/4
    // its tokenizer); nothing is read.
    if let Err(e) = conn.prepare(&format!("SELECT * FROM {} LIMIT 0", quote(name))) {
        return Some(message(&e)).filter(|m| missing_part(m));
    }
    // FTS5 loads its tokenizer on first use: a full-text query is that use.
    if module.starts_with("fts") {
        let sql = format!(
            "SELECT 1 FROM {t} WHERE {t} MATCH 'backstop' LIMIT 1",
            t = quote(name)
        );
        let probe = conn
            .prepare(&sql)
            .and_then(|mut st| st.query([])?.next().map(|_| ()));
        if let Err(e) = probe {
            return Some(message(&e)).filter(|m| missing_part(m));
        }
    }
    None
}

/// Virtual tables that cannot be read for lack of their module or tokenizer. SQLite's check
/// skips a table whose module is unknown without a word, so these are listed even when the
/// whole check runs.
fn unreadable_virtual(conn: &Connection, tables: &[(String, Option<String>)]) -> Vec<NotCheckable> {
    tables
        .iter()
        .filter_map(|(name, module)| {
            let reason = missing_for(conn, name, module.as_deref()?)?;
            Some(NotCheckable {
                table: name.clone(),
                reason,
            })
        })
        .collect()
}

/// Runs `PRAGMA {pragma}` (`quick_check` or `integrity_check`) inside the caller's transaction,
/// checking around what this connection cannot read (see the module documentation). A
/// database so damaged that the check stops is a result too, not an error.
pub fn check_with_limits(conn: &Connection, _path: &Path, pragma: &str) -> Result<Verdict, Error> {
    let all = tables(conn);
    let mut not_checkable = match &all {
        Ok(t) => unreadable_virtual(conn, t),
        Err(_) => Vec::new(),
    };
    let stopped = match pragma_lines(conn, pragma, None) {
        Ok(lines) => {
            return Ok(Verdict {
                result: lines.join("; "),
                not_checkable,
            });
        }
        Err(e) => format!("{pragma} stopped: {e}"),
    };
    // Without a readable schema there is nothing to check table by table.
    let Ok(all) = all else {
        return Ok(Verdict {
            result: stopped,
            not_checkable: Vec::new(),
        });
    };
    let mut problems = Vec::new();
    let names = std::iter::once("sqlite_schema".to_string()).chain(all.into_iter().map(|t| t.0));
    for name in names {
        if not_checkable.iter().any(|n| n.table == name) {
            continue;
        }
        match pragma_lines(conn, pragma, Some(&name)) {
            Ok(lines) => problems.extend(lines.into_iter().filter(|l| l != "ok")),
            Err(reason) if missing_part(&reason) => not_checkable.push(NotCheckable {
                table: name,
                reason,
            }),
            Err(e) => problems.push(format!("{pragma}({name}) stopped: {e}")),
        }
    }
    if not_checkable.is_empty() {
        // Nothing this connection lacks explains the stop: it is the verdict.
        return Ok(Verdict {
            result: stopped,
            not_checkable,
        });
    }
    Ok(Verdict {
        result: if problems.is_empty() {
            "ok".into()
        } else {
            problems.join("; ")
        },
        not_checkable,
    })
}

/// The tables in `not_checkable`, with their reasons, as one line.
pub fn describe_not_checkable(not_checkable: &[NotCheckable]) -> String {
    not_checkable
        .iter()
        .map(|n| format!("{} ({})", n.table, n.reason))
        .collect::<Vec<_>>()
        .join(", ")
}
