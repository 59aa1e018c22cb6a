//! `backstop import` into a table of a PostgreSQL or MariaDB database: the same checks as for
//! SQLite ([`crate::import`]), the rows sent in one transaction, a savepoint a row, so that the
//! server's own constraints (NOT NULL, CHECK, UNIQUE, foreign keys, its types) give their
//! verdict on each row; all rows or none.
//!
//! Each column is checked as its server type says: integers (`smallint` ... `bigint`,
//! `tinyint` ...), numbers (`numeric`, `decimal`, `real`, `double`, `float`), dates and times
//! of day (`date`, `timestamp`, `datetime`), everything else as text the server reads itself.
//! Numbers go to the server as the text they were written in (a decimal comma made a point), so
//! an exact `numeric` keeps every digit.

use rusqlite::types::Value;

use crate::Error;
use crate::import::{Column, Target};
use crate::server_rules::Dialect;

/// What a server type is checked as: `INTEGER`, `REAL`, `DATE` or `TEXT`.
fn affinity(server_type: &str) -> &'static str {
    let t = server_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match base {
        "smallint" | "integer" | "int" | "bigint" | "tinyint" | "mediumint" | "int2" | "int4"
        | "int8" | "smallserial" | "serial" | "bigserial" => "INTEGER",
        "numeric" | "decimal" | "real" | "double" | "float" | "float4" | "float8" => "REAL",
        "date" | "timestamp" | "datetime" => "DATE",
        _ => "TEXT",
    }
}

/// A value as an SQL literal for the server (the server casts the text to the column's type).
fn literal(d: Dialect, v: &Value) -> String {
    let text = |t: &str| match d {
        Dialect::Postgres => format!("'{}'", t.replace('\'', "''")),
        Dialect::Mariadb => format!("'{}'", t.replace('\\', "\\\\").replace('\'', "''")),
    };
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f}"),
        Value::Text(t) => text(t),
        Value::Blob(b) => text(&String::from_utf8_lossy(b)),
    }
}

/// A server database as an import's target, through `query` (one statement, its rows).
pub(crate) struct ServerTarget<'a> {
    pub(crate) dialect: Dialect,
    pub(crate) query: Box<crate::server_rules::Query<'a>>,
}

impl ServerTarget<'_> {
    fn run(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, Error> {
        (self.query)(sql)
    }

    fn table(&self, table: &str) -> String {
        self.dialect.table(table)
    }
}

impl Target for ServerTarget<'_> {
    fn columns(&mut self, table: &str) -> Result<Vec<Column>, Error> {
        let sql = match self.dialect {
            Dialect::Postgres => format!(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text, \
                 (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '')::text \
                 FROM pg_attribute a WHERE a.attrelid = to_regclass({}) AND a.attnum > 0 \
                 AND NOT a.attisdropped ORDER BY a.attnum",
                self.dialect.literal(&self.table(table))
            ),
            Dialect::Mariadb => format!(
                "SELECT COLUMN_NAME, COLUMN_TYPE, IF(IS_NULLABLE = 'NO', 'true', 'false'), \
                 IF(COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%' OR \
                 EXTRA LIKE '%GENERATED%', 'true', 'false') FROM information_schema.columns \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                self.dialect.literal(table)
            ),
        };
        Ok(self
            .run(&sql)?
            .into_iter()
            .map(|r| {
                let field = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                let declared = field(1);
                Column {
                    name: field(0),
                    affinity: affinity(&declared).into(),
                    declared,
                    not_null: field(2) == "true",
                    has_default: field(3) == "true",
                    rowid_alias: false,
                }
            })
            .collect())
    }

    fn begin(&mut self) -> Result<(), Error> {
        match self.dialect {
            Dialect::Postgres => self.run("BEGIN"),
            Dialect::Mariadb => self.run("START TRANSACTION"),
        }
        .map(drop)
    }

    fn insert(
        &mut self,
        table: &str,
        columns: &[&str],
        values: &[Value],
    ) -> Result<Result<(), String>, Error> {
        let d = self.dialect;
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table(table),
            columns
                .iter()
                .map(|c| d.ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            values
                .iter()
                .map(|v| literal(d, v))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.run("SAVEPOINT import_row")?;
        match self.run(&sql) {
            Ok(_) => {
                self.run("RELEASE SAVEPOINT import_row")?;
                Ok(Ok(()))
            }
            Err(e) => {
                self.run("ROLLBACK TO SAVEPOINT import_row")?;
                // The server's words, without the statement (which names every column).
                let reason = e.to_string();
                let reason = reason.split(" (in INSERT").next().unwrap_or_default();
                Ok(Err(reason.to_owned()))
            }
        }
    }

    fn finish(&mut self, commit: bool) -> Result<(), Error> {
        self.run(if commit { "COMMIT" } else { "ROLLBACK" })
            .map(drop)
    }

    fn exact_numbers(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_types_are_checked_as_what_they_hold() {
        for (t, a) in [
            ("integer", "INTEGER"),
            ("bigint", "INTEGER"),
            ("int(11)", "INTEGER"),
            ("tinyint(1) unsigned", "INTEGER"),
            ("numeric(10,2)", "REAL"),
            ("double precision", "REAL"),
            ("decimal(12,4)", "REAL"),
            ("timestamp with time zone", "DATE"),
            ("datetime(6)", "DATE"),
            ("date", "DATE"),
            ("interval", "TEXT"),
            ("time without time zone", "TEXT"),
            ("point", "TEXT"),
            ("character varying(20)", "TEXT"),
            ("boolean", "TEXT"),
        ] {
            assert_eq!(affinity(t), a, "{t}");
        }
        assert_eq!(
            literal(Dialect::Mariadb, &Value::Text("a\\'b".into())),
            "'a\\\\''b'"
        );
        assert_eq!(
            literal(Dialect::Postgres, &Value::Text("a\\'b".into())),
            "'a\\''b'"
        );
        assert_eq!(literal(Dialect::Postgres, &Value::Null), "NULL");
    }
}
