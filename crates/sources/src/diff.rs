//! What changed between two SQLite databases (`backstop diff`): tables added and removed,
//! schema changes, row counts, and rows added, removed and changed, matched by primary key (or
//! rowid where a table has none), with the first few of each named.
//!
//! The newer database is attached to the older one's connection (`ATTACH ... AS new`), and
//! each table is compared by SQL: keys in one and not the other (`EXCEPT`), and rows with the
//! same key whose columns differ (a row-value `IS NOT` over the columns both have). SQLite
//! does the work in its own temporary b-trees, so a table larger than memory compares.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::Value;

use crate::Error;

/// What changed in one table that both databases have.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableDiff {
    pub table: String,
    pub rows_before: u64,
    pub rows_after: u64,
    /// The columns the rows are matched by (`rowid` where the table has no primary key).
    pub key: Vec<String>,
    /// Rows matched whole (by all their columns: `key`), for tables without a key of their
    /// own whose rowids mean nothing (a dump's, a sheet's).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub whole_rows: bool,
    /// The schema's `CREATE` statement changed (columns added, removed or retyped ...).
    pub schema_changed: bool,
    pub columns_added: Vec<String>,
    pub columns_removed: Vec<String>,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// The first rows of each kind, by key.
    pub first_added: Vec<RowKey>,
    pub first_removed: Vec<RowKey>,
    pub first_changed: Vec<RowChange>,
}

impl TableDiff {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.schema_changed || self.added > 0 || self.removed > 0 || self.changed > 0
    }
}

/// A row's key, as text (`id=17`, `order=3, line=2`).
pub type RowKey = String;

/// A changed row: its key and each column that changed, before and after.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RowChange {
    pub key: RowKey,
    pub columns: Vec<ColumnChange>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColumnChange {
    pub column: String,
    pub before: String,
    pub after: String,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatabaseDiff {
    pub tables_added: Vec<String>,
    pub tables_removed: Vec<String>,
    /// Every table both have (changed or not), in name order.
    pub tables: Vec<TableDiff>,
}

fn sql_error(e: rusqlite::Error) -> Error {
    Error::Invalid(format!("comparing the databases: {e}"))
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A value as the diff and the rules show it: SQL literal style (`'text'`, `12`, `NULL`,
/// `X'00ff'`), long ones cut.
pub(crate) fn shown(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f:?}"),
        Value::Text(t) => {
            let t: String = t.chars().take(200).collect();
            format!("'{}'", t.replace('\'', "''"))
        }
        Value::Blob(b) => {
            let hex: String = b.iter().take(100).map(|b| format!("{b:02x}")).collect();
            format!("X'{hex}'")
        }
    }
}

/// The ordinary tables of schema `db` (`main` or `new`), in name order.
fn tables(c: &Connection, db: &str) -> Result<Vec<String>, Error> {
    crate::export::tables_in(c, db)
}

/// The first `key.len()` values of `row` as a row's key: `id=17`, `order=3, line=2`.
pub(crate) fn key_text(row: &rusqlite::Row<'_>, key: &[String]) -> rusqlite::Result<String> {
    Ok((0..key.len())
        .map(|i| {
            row.get::<_, Value>(i)
                .map(|v| format!("{}={}", key[i], shown(&v)))
        })
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

/// A table's columns and its primary key's columns (in key order), in schema `db`.
fn columns(c: &Connection, db: &str, table: &str) -> Result<(Vec<String>, Vec<String>), Error> {
    let mut stmt = c
        .prepare("SELECT name, pk FROM pragma_table_info(?1, ?2) ORDER BY cid")
        .map_err(sql_error)?;
    let cols: Vec<(String, i64)> = stmt
        .query_map([table, db], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)?;
    let mut key: Vec<(i64, String)> = cols
        .iter()
        .filter(|(_, pk)| *pk > 0)
        .map(|(n, pk)| (*pk, n.clone()))
        .collect();
    key.sort();
    Ok((
        cols.into_iter().map(|(n, _)| n).collect(),
        key.into_iter().map(|(_, n)| n).collect(),
    ))
}

fn create_sql(c: &Connection, db: &str, table: &str) -> Result<String, Error> {
    c.query_row(
        &format!("SELECT sql FROM {db}.sqlite_schema WHERE type = 'table' AND name = ?1"),
        [table],
        |r| r.get::<_, Option<String>>(0),
    )
    .map(Option::unwrap_or_default)
    .map_err(sql_error)
}

fn count(c: &Connection, sql: &str) -> Result<u64, Error> {
    c.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(sql_error)
}

/// Compares the database at `before` with the one at `after` (both opened read-only): every
/// table both have unless `only` names some; at most `limit` rows of each kind named per table.
/// Rows are matched by primary key; in a table without one by rowid, or, with `whole_rows`
/// (tables loaded from a server's dump, whose rowids are only the load's order), by all their
/// columns: a changed row is then one removed and one added, and rows alike count once.
pub fn diff(
    before: &Path,
    after: &Path,
    only: &[String],
    limit: usize,
    whole_rows: bool,
) -> Result<DatabaseDiff, Error> {
    // Read-only; the attached database is opened so too.
    let c = Connection::open_with_flags(before, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sql_error)?;
    c.execute("ATTACH DATABASE ?1 AS new", [after.to_string_lossy()])
        .map_err(sql_error)?;
    let (old_tables, new_tables) = (tables(&c, "main")?, tables(&c, "new")?);
    for t in only {
        if !old_tables.contains(t) && !new_tables.contains(t) {
            return Err(Error::Invalid(format!(
                "neither database has a table {t:?}"
            )));
        }
    }
    let wanted = |t: &String| only.is_empty() || only.contains(t);
    let mut out = DatabaseDiff {
        tables_added: new_tables
            .iter()
            .filter(|t| !old_tables.contains(t) && wanted(t))
            .cloned()
            .collect(),
        tables_removed: old_tables
            .iter()
            .filter(|t| !new_tables.contains(t) && wanted(t))
            .cloned()
            .collect(),
        tables: Vec::new(),
    };
    for t in old_tables
        .iter()
        .filter(|t| new_tables.contains(t) && wanted(t))
    {
        out.tables.push(table_diff(&c, t, limit, whole_rows)?);
    }
    Ok(out)
}

fn table_diff(
    c: &Connection,
    table: &str,
    limit: usize,
    whole_rows: bool,
) -> Result<TableDiff, Error> {
    let (old_cols, old_key) = columns(c, "main", table)?;
    let (new_cols, new_key) = columns(c, "new", table)?;
    let q = quoted(table);
    // The key both sides share; the rowid where the table has no primary key (or its key
    // changed), which a table without rowid cannot give: then rows are not matched. With
    // `whole_rows`, the columns both sides have.
    let by_rows = whole_rows && (old_key != new_key || old_key.is_empty());
    let key: Vec<String> = match (old_key == new_key, old_key.is_empty()) {
        (true, false) => old_key,
        _ if whole_rows => old_cols
            .iter()
            .filter(|c| new_cols.contains(c))
            .cloned()
            .collect(),
        _ => vec!["rowid".into()],
    };
    let common: Vec<String> = old_cols
        .iter()
        .filter(|c| new_cols.contains(c) && !key.contains(c))
        .cloned()
        .collect();
    let key_list = key.iter().map(|k| quoted(k)).collect::<Vec<_>>().join(", ");
    let mut d = TableDiff {
        table: table.to_owned(),
        rows_before: count(c, &format!("SELECT count(*) FROM main.{q}"))?,
        rows_after: count(c, &format!("SELECT count(*) FROM new.{q}"))?,
        key: key.clone(),
        whole_rows: by_rows,
        schema_changed: create_sql(c, "main", table)? != create_sql(c, "new", table)?,
        columns_added: new_cols
            .iter()
            .filter(|n| !old_cols.contains(n))
            .cloned()
            .collect(),
        columns_removed: old_cols
            .iter()
            .filter(|n| !new_cols.contains(n))
            .cloned()
            .collect(),
        added: 0,
        removed: 0,
        changed: 0,
        first_added: Vec::new(),
        first_removed: Vec::new(),
        first_changed: Vec::new(),
    };
    let keys_of = |sql: &str| -> Result<Vec<RowKey>, Error> {
        let mut stmt = c.prepare(sql).map_err(sql_error)?;
        let rows = stmt
            .query_map([], |r| key_text(r, &key))
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
        Ok(rows)
    };
    let added = format!("SELECT {key_list} FROM new.{q} EXCEPT SELECT {key_list} FROM main.{q}");
    let removed = format!("SELECT {key_list} FROM main.{q} EXCEPT SELECT {key_list} FROM new.{q}");
    let probe = c.prepare(&format!("SELECT {key_list} FROM main.{q} LIMIT 0"));
    if probe.is_err() {
        // A table without rowid whose key changed: its rows cannot be matched.
        return Ok(d);
    }
    d.added = count(c, &format!("SELECT count(*) FROM ({added})"))?;
    d.removed = count(c, &format!("SELECT count(*) FROM ({removed})"))?;
    d.first_added = keys_of(&format!("{added} ORDER BY {key_list} LIMIT {limit}"))?;
    d.first_removed = keys_of(&format!("{removed} ORDER BY {key_list} LIMIT {limit}"))?;
    if !common.is_empty() {
        let on = key
            .iter()
            .map(|k| format!("o.{k} = n.{k}", k = quoted(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let row = |side: &str| {
            format!(
                "({})",
                common
                    .iter()
                    .map(|c| format!("{side}.{}", quoted(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        // One column alone is a scalar, not a row value.
        let (old_row, new_row) = match common.len() {
            1 => (
                format!("o.{}", quoted(&common[0])),
                format!("n.{}", quoted(&common[0])),
            ),
            _ => (row("o"), row("n")),
        };
        let from =
            format!("FROM main.{q} o JOIN new.{q} n ON {on} WHERE {old_row} IS NOT {new_row}");
        d.changed = count(c, &format!("SELECT count(*) {from}"))?;
        let pick = |side: &str| {
            key.iter()
                .map(|k| format!("{side}.{}", quoted(k)))
                .chain(common.iter().map(|col| format!("o.{}", quoted(col))))
                .chain(common.iter().map(|col| format!("n.{}", quoted(col))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let order = key
            .iter()
            .map(|k| format!("o.{}", quoted(k)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = c
            .prepare(&format!(
                "SELECT {} {from} ORDER BY {order} LIMIT {limit}",
                pick("o")
            ))
            .map_err(sql_error)?;
        let n = common.len();
        d.first_changed = stmt
            .query_map([], |r| {
                let keys = key_text(r, &key)?;
                let mut columns = Vec::new();
                for (j, col) in common.iter().enumerate() {
                    let (a, b): (Value, Value) = (r.get(key.len() + j)?, r.get(key.len() + n + j)?);
                    if a != b {
                        columns.push(ColumnChange {
                            column: col.clone(),
                            before: shown(&a),
                            after: shown(&b),
                        });
                    }
                }
                Ok(RowChange { key: keys, columns })
            })
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(path: &Path, sql: &str) {
        Connection::open(path).unwrap().execute_batch(sql).unwrap();
    }

    #[test]
    fn rows_are_matched_by_key_and_every_kind_of_change_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let base = "CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INT, price REAL); \
                    INSERT INTO stock VALUES ('A', 4, 1.5), ('B', 0, 2.0), ('C', 7, NULL); \
                    CREATE TABLE log (msg TEXT); INSERT INTO log VALUES ('x'), ('y'); \
                    CREATE TABLE gone (id INTEGER PRIMARY KEY);";
        make(&a, base);
        make(&b, base);
        make(
            &b,
            "UPDATE stock SET qty = -1 WHERE sku = 'B'; UPDATE stock SET price = 3.0 WHERE sku = 'C'; \
             DELETE FROM stock WHERE sku = 'A'; INSERT INTO stock VALUES ('D', 1, 1.0); \
             INSERT INTO log VALUES ('z'); DROP TABLE gone; CREATE TABLE fresh (id INTEGER); \
             ALTER TABLE stock ADD COLUMN note TEXT;",
        );
        let d = diff(&a, &b, &[], 10, false).unwrap();
        assert_eq!(d.tables_added, ["fresh"]);
        assert_eq!(d.tables_removed, ["gone"]);
        let stock = d.tables.iter().find(|t| t.table == "stock").unwrap();
        assert_eq!((stock.rows_before, stock.rows_after), (3, 3));
        assert_eq!(stock.key, ["sku"]);
        assert!(stock.schema_changed);
        assert_eq!(stock.columns_added, ["note"]);
        assert_eq!((stock.added, stock.removed, stock.changed), (1, 1, 2));
        assert_eq!(stock.first_added, ["sku='D'"]);
        assert_eq!(stock.first_removed, ["sku='A'"]);
        assert_eq!(stock.first_changed[0].key, "sku='B'");
        assert_eq!(
            stock.first_changed[0].columns,
            [ColumnChange {
                column: "qty".into(),
                before: "0".into(),
                after: "-1".into()
            }]
        );
        assert_eq!(stock.first_changed[1].columns[0].before, "NULL");
        let log = d.tables.iter().find(|t| t.table == "log").unwrap();
        assert_eq!(log.key, ["rowid"]);
        assert_eq!((log.added, log.removed, log.changed), (1, 0, 0));
        assert!(!log.schema_changed);
        // One table alone; a table neither has is an error.
        let only = diff(&a, &b, &["log".to_owned()], 1, false).unwrap();
        assert_eq!(only.tables.len(), 1);
        assert!(only.tables_added.is_empty());
        assert!(diff(&a, &b, &["nope".to_owned()], 1, false).is_err());
        // Nothing changed: nothing to say.
        let same = diff(&a, &a, &[], 10, false).unwrap();
        assert!(same.tables.iter().all(|t| !t.changed()));
    }
}
