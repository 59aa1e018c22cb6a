//! What the schema says the pages must hold.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::MAX_PAGES;
use crate::Error;
use crate::sqlite::sql_err;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Affinity {
    Text,
    Numeric,
    Blob,
}

/// The affinity SQLite gives a declared column type.
pub(super) fn affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Numeric
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.is_empty() {
        Affinity::Blob
    } else {
        // REAL, FLOA, DOUB and everything else: REAL or NUMERIC affinity.
        Affinity::Numeric
    }
}

#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) not_null: bool,
    /// NOT NULL with no default: a row written before the column was added has no value.
    pub(super) null_default: bool,
    pub(super) affinity: Affinity,
    /// The rowid alias (INTEGER PRIMARY KEY), stored as NULL in the record.
    pub(super) rowid: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Table {
    pub(super) name: String,
    pub(super) columns: Vec<Column>,
}

#[derive(Debug, Clone)]
pub(super) struct Tree {
    pub(super) root: u32,
    /// Index into `Plan::tables` of the table, or of the table an index belongs to.
    pub(super) table: usize,
    pub(super) index: bool,
    pub(super) partial: bool,
}

/// What the schema says the pages must hold, read in the capture's transaction.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(super) tables: Vec<Table>,
    pub(super) trees: Vec<Tree>,
}

impl Plan {
    /// `None` if the database uses something this check leaves to SQLite.
    /// `None` also if the schema cannot be read the way this check needs (SQLite reads it more
    /// leniently, e.g. SQL text that is not UTF-8): `quick_check` decides then.
    pub(crate) fn read(conn: &Connection, path: &Path) -> Option<Plan> {
        Self::read_schema(conn, path).ok().flatten()
    }

    fn read_schema(conn: &Connection, path: &Path) -> Result<Option<Plan>, Error> {
        let q = |e| sql_err(path, "reading the schema for the check", e);
        let page_count: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(q)?;
        let page_count = page_count as u64;
        let encoding: String = conn
            .query_row("PRAGMA encoding", [], |r| r.get(0))
            .map_err(q)?;
        if encoding != "UTF-8" || page_count > MAX_PAGES {
            return Ok(None);
        }
        let mut ordinary = HashMap::new();
        {
            let mut st = conn
                .prepare(
                    "SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main'",
                )
                .map_err(q)?;
            let mut rows = st.query([]).map_err(q)?;
            while let Some(r) = rows.next().map_err(q)? {
                let name: String = r.get(0).map_err(q)?;
                let kind: String = r.get(1).map_err(q)?;
                let (wr, strict): (i64, i64) = (r.get(2).map_err(q)?, r.get(3).map_err(q)?);
                ordinary.insert(name, kind == "table" && wr == 0 && strict == 0);
            }
        }
        let mut schema = Vec::new();
        {
            let mut st = conn
                .prepare(
                    "SELECT type, name, tbl_name, rootpage, coalesce(sql, '') FROM sqlite_schema",
                )
                .map_err(q)?;
            let mut rows = st.query([]).map_err(q)?;
            while let Some(r) = rows.next().map_err(q)? {
                let row: (String, String, String, i64, String) = (
                    r.get(0).map_err(q)?,
                    r.get(1).map_err(q)?,
                    r.get(2).map_err(q)?,
                    r.get(3).map_err(q)?,
                    r.get(4).map_err(q)?,
                );
                schema.push(row);
            }
        }
        let mut plan = Plan {
            tables: vec![Table {
                name: "sqlite_schema".into(),
                columns: ["type", "name", "tbl_name", "rootpage", "sql"]
                    .iter()
                    .map(|c| Column {
                        name: (*c).into(),
                        not_null: false,
                        null_default: true,
                        affinity: if *c == "rootpage" {
                            Affinity::Numeric
                        } else {
                            Affinity::Text
                        },
                        rowid: false,
                    })
                    .collect(),
            }],
            trees: vec![Tree {
                root: 1,
                table: 0,
                index: false,
                partial: false,
            }],
        };
        let mut by_name = HashMap::new();
        for (kind, name, _, root, sql) in &schema {
            if kind != "table" {
                continue;
            }
            let upper = sql.to_ascii_uppercase();
            if ordinary.get(name) != Some(&true) || has_word(&upper, "CHECK") || *root < 1 {
                return Ok(None);
            }
            let Some(columns) = table_columns(conn, path, name, &upper)? else {
                return Ok(None);
            };
            by_name.insert(name.clone(), plan.tables.len());
            plan.trees.push(Tree {
                root: u32::try_from(*root).unwrap_or(u32::MAX),
                table: plan.tables.len(),
                index: false,
                partial: false,
            });
            plan.tables.push(Table {
                name: name.clone(),
                columns,
            });
        }
        for (kind, name, table, root, _) in &schema {
            if kind != "index" {
                continue;
            }
            // An index without a root page is damage; SQLite counts it as empty.
            let Some(&t) = by_name.get(table).filter(|_| *root >= 1) else {
                return Ok(None);
            };
            let partial: Option<i64> = conn
                .query_row(
                    "SELECT partial FROM pragma_index_list(?1) WHERE name = ?2",
                    [table, name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(q)?;
            plan.trees.push(Tree {
                root: u32::try_from(*root).unwrap_or(u32::MAX),
                table: t,
                index: true,
                partial: partial != Some(0),
            });
        }
        Ok(Some(plan))
    }
}

/// The columns of an ordinary table in record order, or `None` for generated columns or a
/// primary key this check cannot classify.
pub(super) fn table_columns(
    conn: &Connection,
    path: &Path,
    table: &str,
    upper_sql: &str,
) -> Result<Option<Vec<Column>>, Error> {
    let q = |e| sql_err(path, "reading the schema for the check", e);
    let mut st = conn
        .prepare(
            "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1)",
        )
        .map_err(q)?;
    let mut rows = st.query([table]).map_err(q)?;
    let mut columns = Vec::new();
    let mut pk = Vec::new();
    while let Some(r) = rows.next().map_err(q)? {
        let (name, declared): (String, String) = (r.get(0).map_err(q)?, r.get(1).map_err(q)?);
        let not_null: bool = r.get(2).map_err(q)?;
        let default: Option<String> = r.get(3).map_err(q)?;
        let (key, hidden): (i64, i64) = (r.get(4).map_err(q)?, r.get(5).map_err(q)?);
        if hidden != 0 {
            return Ok(None);
        }
        if key > 0 {
            pk.push((columns.len(), declared.eq_ignore_ascii_case("INTEGER")));
        }
        columns.push(Column {
            name,
            not_null,
            null_default: !non_null_literal(default.as_deref()),
            affinity: affinity(&declared),
            rowid: false,
        });
    }
    if let [(i, true)] = pk[..] {
        // "INTEGER PRIMARY KEY DESC" is not a rowid alias; rather than parse the statement,
        // leave any table that says DESC to SQLite.
        if has_word(upper_sql, "DESC") {
            return Ok(None);
        }
        columns[i].rowid = true;
    }
    Ok(Some(columns))
}

/// Is a column default (as `table_xinfo` gives it) a literal that is not NULL? A row written
/// before the column was added reads as its default; anything else (NULL, an expression,
/// CURRENT_TIMESTAMP) counts as possibly NULL.
fn non_null_literal(default: Option<&str>) -> bool {
    default.is_some_and(|d| non_null_value(d.trim()))
}

/// The expressions SQLite's `sqlite3ValueFromExpr` evaluates for a default: literals, signed
/// numbers, parentheses and CAST.
fn non_null_value(d: &str) -> bool {
    let quoted = |d: &str| d.len() >= 2 && d.starts_with('\'') && d.ends_with('\'');
    if let Some(inner) = d.strip_prefix('(').and_then(|d| d.strip_suffix(')')) {
        return non_null_value(inner.trim());
    }
    let upper = d.to_ascii_uppercase();
    if upper.starts_with("CAST") && d.ends_with(')') {
        let inner = d[4..d.len() - 1].trim_start();
        let Some(inner) = inner.strip_prefix('(') else {
            return false;
        };
        return inner
            .to_ascii_uppercase()
            .rfind(" AS ")
            .is_some_and(|at| non_null_value(inner[..at].trim()));
    }
    super::page::maybe_numeric(d.as_bytes())
        || quoted(d)
        || ((d.starts_with('x') || d.starts_with('X')) && quoted(&d[1..]))
        || d.eq_ignore_ascii_case("TRUE")
        || d.eq_ignore_ascii_case("FALSE")
}

/// Does `sql` hold `word` on its own (not inside a longer name)? Generous: a quoted name that
/// is the word counts too, which only leaves the database to SQLite.
pub(super) fn has_word(sql: &str, word: &str) -> bool {
    let ident =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    sql.match_indices(word).any(|(at, _)| {
        !ident(sql[..at].chars().next_back()) && !ident(sql[at + word.len()..].chars().next())
    })
}
