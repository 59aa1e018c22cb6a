//! Which rows a restore would change: the live database against a snapshot's image of it,
//! table by table, rows matched by primary key (or rowid) and counted by SQLite itself.
//!
//! The live database is opened read-only (with the captures' busy timeout) and the image is
//! attached to it as immutable: no locks, nothing written beside it. Each table is compared in
//! a read transaction of its own, so its three counts see one state of the live database and a
//! writer in rollback-journal mode waits for one table's comparison at most, not the whole
//! database's. A table whose shape differs between the two (its columns, their declared types,
//! its key, `WITHOUT ROWID`) is not compared: matching rows of two shapes would be a guess.
//! Rows of a table without a primary key are matched by rowid, which `VACUUM` may renumber.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::BUSY_TIMEOUT;
use super::inspect::{immutable_uri, sql_err};
use crate::Error;

/// What a table whose shape changed is said to be.
pub const SCHEMA_DIFFERS: &str = "schema differs, rows not compared";

/// One table's rows since the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RowsSince {
    /// Rows whose key only the live database has: entered since the snapshot.
    pub added: u64,
    /// Rows whose key only the snapshot has: deleted since.
    pub deleted: u64,
    /// Rows whose key both have, with different values: changed since.
    pub changed: u64,
}

/// A table both databases have, compared or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableComparison {
    pub table: String,
    /// The counts, or why the rows were not compared ([`SCHEMA_DIFFERS`], ...).
    pub rows: Result<RowsSince, String>,
    /// The rows were matched by their whole content, the table having no key to match them
    /// by (a server database's table without a primary key): a changed row counts as one
    /// entered and one deleted. SQLite's rows always have a key (or a rowid).
    pub by_content: bool,
}

/// The name the image is attached under.
const SNAPSHOT: &str = "snapshot_image";

/// Compares every ordinary table that both the live database at `live` and the image at
/// `image` have. Tables only one of them has are left out (their row counts say enough).
/// A table SQLite cannot read is reported as not compared; a live database that stays busy
/// past the timeout, or that cannot be opened, is an error.
pub fn compare_with_image(live: &Path, image: &Path) -> Result<Vec<TableComparison>, Error> {
    // Absolute, so that the URI flag (needed to attach the image as immutable) never reads
    // the live path as a URI.
    let live_abs = std::path::absolute(live).unwrap_or_else(|_| live.to_path_buf());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(&live_abs, flags)
        .map_err(|e| sql_err(live, "cannot open", e))?;
    c.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_err(live, "setting the busy timeout", e))?;
    c.execute(
        &format!("ATTACH DATABASE ?1 AS {SNAPSHOT}"),
        [immutable_uri(image)],
    )
    .map_err(|e| sql_err(image, "attaching the snapshot's image", e))?;
    let now = tables(&c, "main").map_err(|e| sql_err(live, "listing the tables", e))?;
    let then = tables(&c, SNAPSHOT).map_err(|e| sql_err(image, "listing the tables", e))?;
    let mut out = Vec::new();
    for (table, without_rowid) in &now {
        let Some((_, then_without_rowid)) = then.iter().find(|(t, _)| t == table) else {
            continue;
        };
        let rows = match compare_table(&c, table, (*without_rowid, *then_without_rowid)) {
            Ok(rows) => rows,
            Err(e) if busy(&e) => return Err(sql_err(live, "comparing the rows", e)),
            Err(e) => Err(format!("rows not compared: {e}")),
        };
        out.push(TableComparison {
            table: table.clone(),
            rows,
            by_content: false,
        });
    }
    Ok(out)
}

fn busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// The ordinary tables of `schema` (not SQLite's own, not virtual tables or their shadow
/// tables), each with whether it is `WITHOUT ROWID`.
fn tables(c: &Connection, schema: &str) -> rusqlite::Result<Vec<(String, bool)>> {
    let mut st = c.prepare(
        "SELECT name, wr FROM pragma_table_list WHERE schema = ?1 AND type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    st.query_map([schema], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))?
        .collect()
}

/// A column's name, declared type (upper case) and place in the primary key (0: none).
type Column = (String, String, i64);

fn columns(c: &Connection, schema: &str, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut st =
        c.prepare("SELECT name, upper(type), pk FROM pragma_table_info(?1, ?2) ORDER BY cid")?;
    st.query_map([table, schema], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The counts of one table, or why its rows are not compared.
fn compare_table(
    c: &Connection,
    table: &str,
    without_rowid: (bool, bool),
) -> rusqlite::Result<Result<RowsSince, String>> {
    let cols = columns(c, "main", table)?;
    if without_rowid.0 != without_rowid.1 || cols != columns(c, SNAPSHOT, table)? {
        return Ok(Err(SCHEMA_DIFFERS.to_owned()));
    }
    let mut key: Vec<&Column> = cols.iter().filter(|col| col.2 > 0).collect();
    key.sort_by_key(|col| col.2);
    let mut key: Vec<String> = key.iter().map(|col| quoted(&col.0)).collect();
    if key.is_empty() {
        // The rowid, under a name no column has taken.
        match ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|alias| !cols.iter().any(|col| col.0.eq_ignore_ascii_case(alias)))
        {
            Some(alias) => key.push(alias.to_owned()),
            None => return Ok(Err("no key to match its rows by, rows not compared".into())),
        }
    }
    let values: Vec<String> = cols
        .iter()
        .map(|col| quoted(&col.0))
        .filter(|col| !key.contains(col))
        .collect();
    let q = quoted(table);
    let keys = key.join(", ");
    let count = |sql: &str| {
        c.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
    };
    // One state of the live database for the three counts.
    let tx = c.unchecked_transaction()?;
    let only = |a: &str, b: &str| {
        count(&format!(
            "SELECT count(*) FROM (SELECT {keys} FROM {a}.{q} EXCEPT SELECT {keys} FROM {b}.{q})"
        ))
    };
    let added = only("main", SNAPSHOT)?;
    let deleted = only(SNAPSHOT, "main")?;
    let changed = match values.is_empty() {
        true => 0,
        false => {
            // `IS`, not `=`: a key column of a rowid table may hold NULL, which `EXCEPT`
            // counts as equal too.
            let on = key
                .iter()
                .map(|k| format!("n.{k} IS o.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let side = |s: &str| {
                values
                    .iter()
                    .map(|v| format!("{s}.{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            count(&format!(
                "SELECT count(*) FROM main.{q} AS n JOIN {SNAPSHOT}.{q} AS o ON {on} \
                 WHERE ({}) IS NOT ({})",
                side("n"),
                side("o")
            ))?
        }
    };
    tx.commit()?;
    Ok(Ok(RowsSince {
        added,
        deleted,
        changed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(path: &Path, sql: &str) {
        Connection::open(path).unwrap().execute_batch(sql).unwrap();
    }

    fn rows(found: &[TableComparison], table: &str) -> Result<RowsSince, String> {
        found
            .iter()
            .find(|t| t.table == table)
            .unwrap_or_else(|| panic!("no {table} in {found:?}"))
            .rows
            .clone()
    }

    #[test]
    fn rows_are_matched_by_key_or_rowid_and_changed_shapes_are_not_compared() {
        let dir = tempfile::tempdir().unwrap();
        let (live, image) = (dir.path().join("live.db"), dir.path().join("image.db"));
        let base = "PRAGMA journal_mode=WAL;
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
            INSERT INTO customers VALUES (1, 'Ada', 'Oslo'), (2, 'Bo', 'Rome'), (3, 'Cy', NULL);
            CREATE TABLE stock (sku TEXT, bin INT, qty INT, PRIMARY KEY (sku, bin)) WITHOUT ROWID;
            INSERT INTO stock VALUES ('A', 1, 4), ('A', 2, 0), ('B', 1, 7);
            CREATE TABLE log (msg TEXT);
            INSERT INTO log VALUES ('x'), ('y');
            CREATE TABLE prices (sku TEXT PRIMARY KEY, price REAL);
            INSERT INTO prices VALUES ('A', 1.5);
            CREATE TABLE odd (rowid TEXT, _rowid_ TEXT, oid TEXT);
            CREATE TABLE only_then (id INTEGER PRIMARY KEY);";
        exec(&image, base);
        exec(&live, base);
        exec(
            &live,
            "INSERT INTO customers VALUES (4, 'Di', 'Kyiv'), (5, 'Ed', 'Lima');
             DELETE FROM customers WHERE id = 2;
             UPDATE customers SET city = 'Bern' WHERE id = 3;
             UPDATE stock SET qty = 5 WHERE sku = 'A' AND bin = 2;
             DELETE FROM stock WHERE sku = 'B';
             INSERT INTO stock VALUES ('C', 1, 1);
             INSERT INTO log VALUES ('z');
             ALTER TABLE prices ADD COLUMN currency TEXT;
             DROP TABLE only_then;
             CREATE TABLE only_now (id INTEGER PRIMARY KEY);",
        );
        let live_before = std::fs::read(&live).unwrap();
        let found = compare_with_image(&live, &image).unwrap();
        let since = |added, deleted, changed| {
            Ok(RowsSince {
                added,
                deleted,
                changed,
            })
        };
        assert_eq!(rows(&found, "customers"), since(2, 1, 1));
        assert_eq!(rows(&found, "stock"), since(1, 1, 1), "WITHOUT ROWID");
        assert_eq!(rows(&found, "log"), since(1, 0, 0), "by rowid");
        assert_eq!(rows(&found, "prices"), Err(SCHEMA_DIFFERS.to_owned()));
        assert!(rows(&found, "odd").unwrap_err().contains("no key"));
        // Tables only one side has are left to the row counts.
        assert!(found.iter().all(|t| t.table != "only_now"));
        assert!(found.iter().all(|t| t.table != "only_then"));
        // Nothing was written to either database, and nothing beside the image.
        assert_eq!(std::fs::read(&live).unwrap(), live_before);
        assert!(!dir.path().join("image.db-wal").exists());
        assert!(!dir.path().join("image.db-shm").exists());
        // A database compared with itself: nothing changed.
        let same = compare_with_image(&image, &image).unwrap();
        assert!(
            same.iter()
                .filter_map(|t| t.rows.clone().ok())
                .all(|r| r == RowsSince::default())
        );
    }
}
