//! Data validation rules on a SQLite database (`backstop validate`, `[[sources.S.rules]]`):
//! what must hold of the data, beyond what the database itself enforces. (The same rules on a
//! database server: [`crate::server_rules`].)
//!
//! Built-in kinds: `integrity` (`PRAGMA integrity_check`), `foreign_keys` (the declared ones:
//! `PRAGMA foreign_key_check`, which finds violations even where enforcement was off),
//! `orphans` (a configured relation: rows of `table` whose `column` names no row of
//! `references = "parent(column)"`), `unique` (a column or columns with no two rows alike),
//! `not_negative` and `no_future_dates` (a column); and SQL assertions (`sql` returning one
//! number, `expect` it, 0 by default). Each result names its table, count and the first
//! offending rows by primary key (or rowid), read in one read transaction.

use rusqlite::Connection;
use rusqlite::types::Value;

use crate::Error;

/// One rule, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `integrity`, `foreign_keys`, `orphans`, `unique`, `not_negative`, `no_future_dates`,
    /// or none with `sql`.
    pub kind: Option<String>,
    /// What the report calls it (default: the kind and its table and column).
    pub name: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    /// `unique` over several columns.
    #[serde(default)]
    pub columns: Vec<String>,
    /// `orphans`: the parent, `table(column)`.
    pub references: Option<String>,
    /// An SQL assertion: a query returning one number.
    pub sql: Option<String>,
    /// What `sql` must return (0 by default).
    pub expect: Option<i64>,
}

/// The outcome of one rule (stored with a snapshot when the rules run at capture).
pub use backstop_format::manifest::RuleOutcome as RuleResult;

/// How many offending rows each result names.
pub(crate) const FIRST: usize = 5;

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Rule {
    /// The rule's kind: its `kind`, or `sql` for an assertion.
    pub fn kind_name(&self) -> &str {
        match (&self.kind, &self.sql) {
            (Some(k), _) => k,
            (None, Some(_)) => "sql",
            (None, None) => "",
        }
    }

    /// What is wrong with the rule as written, if anything (checked when the config loads).
    pub fn check(&self) -> Result<(), String> {
        let need = |what: &str, v: &Option<String>| match v {
            Some(_) => Ok(()),
            None => Err(format!("a {} rule needs {what}", self.kind_name())),
        };
        match self.kind_name() {
            "integrity" | "foreign_keys" => Ok(()),
            "orphans" => {
                need("table", &self.table)?;
                need("column", &self.column)?;
                need("references = \"parent(column)\"", &self.references)?;
                parent(self.references.as_deref().unwrap_or_default()).map(drop)
            }
            "unique" => {
                need("table", &self.table)?;
                match self.column.is_some() || !self.columns.is_empty() {
                    true => Ok(()),
                    false => Err("a unique rule needs column or columns".into()),
                }
            }
            "not_negative" | "no_future_dates" => {
                need("table", &self.table)?;
                need("column", &self.column)
            }
            "sql" if self.kind.is_none() => need("sql", &self.sql),
            "" => Err(
                "a rule needs kind (integrity, foreign_keys, orphans, unique, \
                       not_negative, no_future_dates) or sql"
                    .into(),
            ),
            other => Err(format!(
                "kind {other:?}: expected integrity, foreign_keys, orphans, unique, \
                 not_negative or no_future_dates (or sql = \"SELECT ...\" for an assertion)"
            )),
        }
    }

    /// What is wrong with the rule for a PostgreSQL or MariaDB source, if anything (checked
    /// when the config loads, after [`Rule::check`]): `integrity` and `foreign_keys` are
    /// SQLite's own checks.
    pub fn check_for_server(&self) -> Result<(), String> {
        match self.kind_name() {
            k @ ("integrity" | "foreign_keys") => Err(format!(
                "{k} is a check of SQLite's own: a database server keeps its storage and its \
                 declared foreign keys itself (use orphans for a relation it does not declare)"
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn title(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let mut t = self.kind_name().to_owned();
        if let Some(table) = &self.table {
            t.push_str(&format!(" {table}"));
            let cols = match (&self.column, self.columns.is_empty()) {
                (Some(c), _) => Some(c.clone()),
                (None, false) => Some(self.columns.join(", ")),
                _ => None,
            };
            if let Some(c) = cols {
                t.push_str(&format!(".{c}"));
            }
        }
        t
    }
}

/// The outcome of an SQL assertion that returned `n` where `expect` was expected: the count
/// of a failing one is what it returned (at least 1).
pub(crate) fn assertion(n: i64, expect: i64) -> (u64, Vec<String>, String) {
    (
        match n == expect {
            true => 0,
            false => n.unsigned_abs().max(1),
        },
        Vec::new(),
        format!("returned {n}, expected {expect}"),
    )
}

/// `parent(column)` split.
pub(crate) fn parent(text: &str) -> Result<(String, String), String> {
    text.trim()
        .strip_suffix(')')
        .and_then(|t| t.split_once('('))
        .map(|(t, c)| (t.trim().to_owned(), c.trim().to_owned()))
        .filter(|(t, c)| !t.is_empty() && !c.is_empty())
        .ok_or_else(|| format!("references {text:?}: write it as \"table(column)\""))
}

fn sql_error(e: rusqlite::Error) -> Error {
    Error::Invalid(format!("running the rules: {e}"))
}

/// The key a table's rows are named by: its primary key's columns, else `rowid`.
fn key_of(c: &Connection, table: &str) -> Result<Vec<String>, Error> {
    let mut stmt = c
        .prepare("SELECT name, pk FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
        .map_err(sql_error)?;
    let key: Vec<String> = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)?;
    Ok(match key.is_empty() {
        true => vec!["rowid".into()],
        false => key,
    })
}

/// The rows of `table` (as `t`) matching `condition`: how many, and the first few by key.
fn offending(c: &Connection, table: &str, condition: &str) -> Result<(u64, Vec<String>), Error> {
    let key = key_of(c, table)?;
    let q = quoted(table);
    let count: i64 = c
        .query_row(
            &format!("SELECT count(*) FROM {q} AS t WHERE {condition}"),
            [],
            |r| r.get(0),
        )
        .map_err(sql_error)?;
    let cols = key
        .iter()
        .map(|k| format!("t.{}", quoted(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = c
        .prepare(&format!(
            "SELECT {cols} FROM {q} AS t WHERE {condition} ORDER BY {cols} LIMIT {FIRST}"
        ))
        .map_err(sql_error)?;
    let first = stmt
        .query_map([], |r| crate::diff::key_text(r, &key))
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    Ok((count as u64, first))
}

/// Runs `rules` on the database file at `path`, opened read-only (see [`run`]).
pub fn run_on_file(path: &std::path::Path, rules: &[Rule]) -> Result<Vec<RuleResult>, Error> {
    let c = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error)?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sql_error)?;
    run(&c, rules)
}

/// Runs `rules` on the database `c`, in one read transaction; a rule that cannot run (a table
/// or column that does not exist) fails with the database's words.
pub fn run(c: &Connection, rules: &[Rule]) -> Result<Vec<RuleResult>, Error> {
    c.execute_batch("BEGIN").map_err(sql_error)?;
    let results = run_in_transaction(c, rules);
    c.execute_batch("COMMIT").map_err(sql_error)?;
    Ok(results)
}

/// Runs `rules` inside the transaction the caller holds on `c` (a capture's, so the results
/// are those of the captured state).
pub fn run_in_transaction(c: &Connection, rules: &[Rule]) -> Vec<RuleResult> {
    rules.iter().map(|r| one(c, r)).collect()
}

/// The check `rules` of a restore drill: whether every rule held, and in words (each failing
/// rule with its first rows, or why the rules could not run).
pub fn verdict(results: Result<Vec<RuleResult>, Error>) -> (bool, String) {
    let results = match results {
        Ok(r) => r,
        Err(e) => return (false, e.to_string()),
    };
    let failing: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| match r.first.is_empty() {
            true => format!("{} ({})", r.name, r.detail),
            false => format!("{} ({} rows: {})", r.name, r.count, r.first.join("; ")),
        })
        .collect();
    match failing.is_empty() {
        true => (true, format!("all {} rules hold", results.len())),
        false => (
            false,
            format!(
                "{} of {} rules failing: {}",
                failing.len(),
                results.len(),
                failing.join("; ")
            ),
        ),
    }
}

/// What identifies a set of rules: BLAKE3 of their JSON. Results stored with a snapshot hold
/// for the next capture of the same image only under the same rules.
pub fn fingerprint(rules: &[Rule]) -> String {
    let json = serde_json::to_vec(rules).expect("rules serialize");
    blake3::hash(&json).to_hex().to_string()
}

fn one(c: &Connection, rule: &Rule) -> RuleResult {
    let kind = rule.kind_name().to_owned();
    let mut result = RuleResult {
        name: rule.title(),
        kind: kind.clone(),
        table: rule.table.clone(),
        passed: true,
        count: 0,
        detail: String::new(),
        first: Vec::new(),
    };
    let table = rule.table.clone().unwrap_or_default();
    let column = rule.column.clone().unwrap_or_default();
    let outcome: Result<(u64, Vec<String>, String), Error> = (|| match kind.as_str() {
        "integrity" => {
            let mut stmt = c.prepare("PRAGMA integrity_check").map_err(sql_error)?;
            let lines: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .map_err(sql_error)?
                .collect::<Result<_, _>>()
                .map_err(sql_error)?;
            match lines.as_slice() {
                [ok] if ok == "ok" => Ok((0, Vec::new(), "the database is intact".into())),
                _ => Ok((
                    lines.len() as u64,
                    lines.iter().take(FIRST).cloned().collect(),
                    "PRAGMA integrity_check found problems".into(),
                )),
            }
        }
        "foreign_keys" => {
            let mut stmt = c.prepare("PRAGMA foreign_key_check").map_err(sql_error)?;
            let rows: Vec<(String, Option<i64>, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(sql_error)?
                .collect::<Result<_, _>>()
                .map_err(sql_error)?;
            let first = rows
                .iter()
                .take(FIRST)
                .map(|(t, id, parent)| match id {
                    Some(id) => format!("{t} rowid={id} (no row in {parent})"),
                    None => format!("{t} (no row in {parent})"),
                })
                .collect();
            Ok((
                rows.len() as u64,
                first,
                "rows whose declared foreign key names no row".into(),
            ))
        }
        "orphans" => {
            let (ptable, pcol) =
                parent(rule.references.as_deref().unwrap_or_default()).map_err(Error::Invalid)?;
            let (n, first) = offending(
                c,
                &table,
                &format!(
                    "t.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {pt} AS p WHERE p.{pc} = t.{col})",
                    col = quoted(&column),
                    pt = quoted(&ptable),
                    pc = quoted(&pcol)
                ),
            )?;
            Ok((
                n,
                first,
                format!("rows whose {column} names no {ptable}.{pcol}"),
            ))
        }
        "unique" => {
            let cols: Vec<String> = match &rule.column {
                Some(col) => vec![col.clone()],
                None => rule.columns.clone(),
            };
            let same = cols
                .iter()
                .map(|col| format!("d.{q} IS t.{q}", q = quoted(col)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let (n, first) = offending(
                c,
                &table,
                &format!(
                    "EXISTS (SELECT 1 FROM {tb} AS d WHERE {same} AND d.rowid <> t.rowid)",
                    tb = quoted(&table)
                ),
            )?;
            Ok((
                n,
                first,
                format!("rows sharing their {} with another", cols.join(", ")),
            ))
        }
        "not_negative" => {
            let (n, first) = offending(c, &table, &format!("t.{} < 0", quoted(&column)))?;
            Ok((n, first, format!("rows with a negative {column}")))
        }
        "no_future_dates" => {
            // Text dates (ISO 8601) and Unix times alike, against the clock now.
            let col = format!("t.{}", quoted(&column));
            let (n, first) = offending(
                c,
                &table,
                &format!(
                    "(typeof({col}) = 'text' AND julianday({col}) > julianday('now')) OR \
                     (typeof({col}) IN ('integer', 'real') AND {col} > unixepoch('now'))"
                ),
            )?;
            Ok((n, first, format!("rows with a {column} in the future")))
        }
        _ => {
            let sql = rule.sql.clone().unwrap_or_default();
            let expect = rule.expect.unwrap_or(0);
            let got: Value = c.query_row(&sql, [], |r| r.get(0)).map_err(sql_error)?;
            let n = match got {
                Value::Integer(i) => i,
                Value::Real(f) => f as i64,
                other => {
                    return Err(Error::Invalid(format!(
                        "the query returned {}, not a number",
                        crate::diff::shown(&other)
                    )));
                }
            };
            Ok(assertion(n, expect))
        }
    })();
    match outcome {
        Ok((count, first, detail)) => {
            result.passed = count == 0;
            result.count = count;
            result.first = first;
            result.detail = detail;
        }
        Err(e) => {
            result.passed = false;
            result.detail = format!("could not run: {e}");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: &str, table: &str, column: &str) -> Rule {
        Rule {
            kind: Some(kind.into()),
            table: Some(table.into()),
            column: Some(column.into()),
            ..Rule::default()
        }
    }

    #[test]
    fn each_kind_finds_its_rows_and_names_them() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            // An application that did not enforce its foreign keys.
            "PRAGMA foreign_keys = OFF; \
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INT, placed TEXT); \
             CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT); \
             CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INT); \
             CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INT REFERENCES orders(id)); \
             INSERT INTO customers VALUES (1, 'a@x'), (2, 'b@x'), (3, 'a@x'); \
             INSERT INTO orders VALUES (10, 1, '2026-01-01'), (11, 9, '2026-01-02'), \
               (12, NULL, '2999-01-01'); \
             INSERT INTO stock VALUES ('A', 4), ('B', -2), ('C', 0); \
             INSERT INTO lines VALUES (1, 10), (2, 77);",
        )
        .unwrap();
        let mut orphans = rule("orphans", "orders", "customer");
        orphans.references = Some("customers(id)".into());
        let sql = Rule {
            name: Some("no negative stock".into()),
            sql: Some("SELECT count(*) FROM stock WHERE qty < 0".into()),
            ..Rule::default()
        };
        let rules = vec![
            Rule {
                kind: Some("integrity".into()),
                ..Rule::default()
            },
            Rule {
                kind: Some("foreign_keys".into()),
                ..Rule::default()
            },
            orphans,
            rule("unique", "customers", "email"),
            rule("not_negative", "stock", "qty"),
            rule("no_future_dates", "orders", "placed"),
            sql,
            rule("not_negative", "stock", "nope"),
        ];
        for r in &rules[..7] {
            r.check().unwrap();
        }
        let results = run(&c, &rules).unwrap();
        let by = |i: usize| &results[i];
        assert!(by(0).passed, "{:?}", by(0));
        assert!(!by(1).passed);
        assert_eq!(by(1).first, ["lines rowid=2 (no row in orders)"]);
        assert_eq!(
            (by(2).count, by(2).first.clone()),
            (1, vec!["id=11".to_owned()])
        );
        assert_eq!(by(3).first, ["id=1", "id=3"]);
        assert_eq!(by(4).first, ["sku='B'"]);
        assert_eq!(by(4).name, "not_negative stock.qty");
        assert_eq!(by(5).first, ["id=12"]);
        assert!(!by(6).passed);
        assert_eq!(by(6).name, "no negative stock");
        assert_eq!(by(6).detail, "returned 1, expected 0");
        assert!(!by(7).passed);
        assert!(by(7).detail.contains("could not run"), "{:?}", by(7));
        // Rules written wrong are refused when the config loads, saying what they need.
        assert!(
            rule("orphans", "orders", "customer")
                .check()
                .unwrap_err()
                .contains("references")
        );
        assert!(Rule::default().check().is_err());
        let mut bad = rule("orphans", "o", "c");
        bad.references = Some("customers".into());
        assert!(bad.check().unwrap_err().contains("table(column)"));
    }
}
