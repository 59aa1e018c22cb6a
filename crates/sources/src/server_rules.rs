//! Data validation rules on a PostgreSQL or MariaDB database (`backstop validate`, and restore
//! drills on the scratch database a dump was loaded into): the rules of [`crate::rules`] that
//! are about the data, in SQL both servers speak, read in one read-only transaction on a
//! snapshot of the database (PostgreSQL: `REPEATABLE READ`; MariaDB: a consistent snapshot).
//!
//! `orphans`, `unique`, `not_negative`, `no_future_dates` (a date or timestamp column, against
//! the server's clock) and SQL assertions (`sql`, in the server's own dialect) run as on SQLite,
//! each failure with its count and first rows by primary key. `integrity` and `foreign_keys`
//! are SQLite's own checks: a server keeps its storage and its declared foreign keys itself,
//! so they are refused for server sources when the configuration is read
//! ([`crate::rules::Rule::check_for_server`]).

use crate::Error;
use crate::rules::{FIRST, Rule, RuleResult};

/// How a server is asked: one statement, its rows as text (`None` for NULL).
pub(crate) type Query<'a> = dyn FnMut(&str) -> Result<Vec<Vec<Option<String>>>, Error> + 'a;

/// The server's way with names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Mariadb,
}

impl Dialect {
    pub(crate) fn ident(self, name: &str) -> String {
        match self {
            Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
            Dialect::Mariadb => format!("`{}`", name.replace('`', "``")),
        }
    }

    pub(crate) fn literal(self, text: &str) -> String {
        match self {
            Dialect::Postgres => format!("'{}'", text.replace('\'', "''")),
            Dialect::Mariadb => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''")),
        }
    }

    /// A table as rules name it (PostgreSQL: `TABLE` in the search path or `SCHEMA.TABLE`).
    pub(crate) fn table(self, name: &str) -> String {
        match (self, name.split_once('.')) {
            (Dialect::Postgres, Some((schema, table))) => {
                format!("{}.{}", self.ident(schema), self.ident(table))
            }
            _ => self.ident(name),
        }
    }

    /// The columns of `table`'s primary key, in order.
    fn key_query(self, table: &str) -> String {
        match self {
            Dialect::Postgres => format!(
                "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH \
                 ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid \
                 AND a.attnum = k.attnum WHERE i.indrelid = {}::regclass AND i.indisprimary \
                 ORDER BY k.ord",
                self.literal(&self.table(table))
            ),
            Dialect::Mariadb => format!(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE \
                 TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {} AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY ORDINAL_POSITION",
                self.literal(table)
            ),
        }
    }
}

/// Runs `rules` through `query`, which holds a read-only transaction on the database.
pub(crate) fn run(query: &mut Query<'_>, dialect: Dialect, rules: &[Rule]) -> Vec<RuleResult> {
    rules.iter().map(|r| one(query, dialect, r)).collect()
}

fn one(query: &mut Query<'_>, d: Dialect, rule: &Rule) -> RuleResult {
    let kind = rule.kind_name().to_owned();
    let table = rule.table.clone().unwrap_or_default();
    let column = rule.column.clone().unwrap_or_default();
    let outcome: Result<(u64, Vec<String>, String), Error> = (|| match kind.as_str() {
        "orphans" => {
            let (pt, pc) = crate::rules::parent(rule.references.as_deref().unwrap_or_default())
                .map_err(Error::Invalid)?;
            let (n, first) = offending(
                query,
                d,
                &table,
                &format!(
                    "t.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} p WHERE p.{pc} = t.{col})",
                    col = d.ident(&column),
                    p = d.table(&pt),
                    pc = d.ident(&pc)
                ),
            )?;
            Ok((n, first, format!("rows whose {column} names no {pt}.{pc}")))
        }
        "unique" => {
            let cols: Vec<String> = match &rule.column {
                Some(c) => vec![c.clone()],
                None => rule.columns.clone(),
            };
            let list = cols
                .iter()
                .map(|c| d.ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            let tuple = |side: &str| {
                cols.iter()
                    .map(|c| format!("{side}.{}", d.ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (n, first) = offending(
                query,
                d,
                &table,
                &format!(
                    "({}) IN (SELECT {list} FROM {tb} GROUP BY {list} HAVING count(*) > 1)",
                    tuple("t"),
                    tb = d.table(&table)
                ),
            )?;
            Ok((
                n,
                first,
                format!("rows sharing their {} with another", cols.join(", ")),
            ))
        }
        "not_negative" => {
            let (n, first) = offending(query, d, &table, &format!("t.{} < 0", d.ident(&column)))?;
            Ok((n, first, format!("rows with a negative {column}")))
        }
        "no_future_dates" => {
            let (n, first) = offending(
                query,
                d,
                &table,
                &format!("t.{} > CURRENT_TIMESTAMP", d.ident(&column)),
            )?;
            Ok((n, first, format!("rows with a {column} in the future")))
        }
        "sql" => {
            let sql = rule.sql.clone().unwrap_or_default();
            let expect = rule.expect.unwrap_or(0);
            let rows = query(&sql)?;
            let value = rows.first().and_then(|r| r.first().cloned().flatten());
            let n = value
                .as_deref()
                .and_then(|v| v.parse::<f64>().ok())
                .map(|f| f as i64)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "the query returned {}, not a number",
                        value.as_deref().unwrap_or("no value")
                    ))
                })?;
            Ok(crate::rules::assertion(n, expect))
        }
        other => Err(Error::Invalid(format!(
            "{other} is a check of SQLite's own; the server keeps its storage and declared \
             foreign keys itself"
        ))),
    })();
    let (passed, count, first, detail) = match outcome {
        Ok((count, first, detail)) => (count == 0, count, first, detail),
        Err(e) => (false, 0, Vec::new(), format!("could not run: {e}")),
    };
    RuleResult {
        name: rule.title(),
        kind,
        table: rule.table.clone(),
        passed,
        count,
        detail,
        first,
    }
}

/// The rows of `table` (as `t`) matching `condition`: how many, and the first few by primary
/// key (by all their columns' text where it has none).
fn offending(
    query: &mut Query<'_>,
    d: Dialect,
    table: &str,
    condition: &str,
) -> Result<(u64, Vec<String>), Error> {
    let from = format!("FROM {} t WHERE {condition}", d.table(table));
    let count: u64 = query(&format!("SELECT count(*) {from}"))?
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if count == 0 {
        return Ok((0, Vec::new()));
    }
    let key: Vec<String> = query(&d.key_query(table))?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let first = match key.is_empty() {
        true => query(&format!("SELECT t.* {from} LIMIT {FIRST}"))?
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect(),
        false => {
            let cols = key
                .iter()
                .map(|k| format!("t.{}", d.ident(k)))
                .collect::<Vec<_>>()
                .join(", ");
            query(&format!(
                "SELECT {cols} {from} ORDER BY {cols} LIMIT {FIRST}"
            ))?
            .into_iter()
            .map(|r| {
                key.iter()
                    .zip(r)
                    .map(|(k, v)| match v {
                        Some(v) if v.parse::<f64>().is_ok() => format!("{k}={v}"),
                        Some(v) => format!("{k}='{}'", v.replace('\'', "''")),
                        None => format!("{k}=NULL"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect()
        }
    };
    Ok((count, first))
}
