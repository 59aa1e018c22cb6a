//! The built-in MariaDB/MySQL export (`method = "builtin"`, and `auto` where no dump tool is
//! installed): a client of backstop's own ([`crate::mysql_wire`]), no MariaDB tool on the
//! machine.
//!
//! One session sets `NAMES utf8mb4` and the time zone `+00:00`, opens `START TRANSACTION WITH
//! CONSISTENT SNAPSHOT, READ ONLY` (REPEATABLE READ), and reads in it what the snapshot records
//! (the same queries as the dump method's) and every object's definition as the server gives it
//! (`SHOW CREATE TABLE`, `SEQUENCE`, `VIEW`, `TRIGGER`, `PROCEDURE`, `FUNCTION`). It then writes
//! the script `mariadb-dump --single-transaction --routines --triggers --hex-blob` writes, in
//! its layout: sequences; each table's definition, its rows (`SELECT` ordered by primary key,
//! one row a line in multi-row `INSERT`s, binary values in hex) and its triggers; each view as
//! a stand-in of its columns; routines; then the views themselves (so views that read views
//! load in any order). The `mariadb` client loads it, and everything backstop does with a dump
//! (rows counted as it streams, one table restored alone, definers left out) works on it
//! unchanged.
//!
//! Like the dump tool it leaves out events, and DDL run on the database during the export
//! fails the export (the server's "table definition has changed"). Generated columns are left
//! out of the rows (the server computes them again); invisible ones are written.

use std::io::Write;
use std::thread::JoinHandle;

use backstop_format::manifest::{ServerDatabase, SourceKind};

use crate::mariadb::{Mariadb, record};
use crate::mysql_wire::{Column, Conn, Row};
use crate::server::Method;
use crate::{Entry, Error, Source};

/// A new `INSERT` starts past this many bytes, as the dump tool keeps its statements under the
/// server's packet limit.
const STATEMENT: usize = 1 << 20;

/// A piece of the script: text as it is, or a table's rows, read when the script is written.
enum Part {
    Text(String),
    Rows(TableRows),
}

/// What a table's rows are read with and written as.
struct TableRows {
    /// The `SELECT` that reads them, ordered by the primary key where there is one.
    select: String,
    /// `INSERT INTO `t` VALUES` (with a column list when some columns are left out or
    /// invisible).
    insert: String,
}

/// The export of one database: the session with its open transaction, and the script's plan.
pub struct MariaExport {
    conn: Option<Conn>,
    parts: Option<Vec<Part>>,
    meta: Option<ServerDatabase>,
    warnings: Vec<String>,
    item_path: String,
    describe: String,
    writer: Option<JoinHandle<Result<(), Error>>>,
    /// The source's data validation rules, run in the export's transaction, and where their
    /// results go (the dump's record, completed by [`crate::mariadb::MariadbDump`]).
    rules: Vec<crate::rules::Rule>,
    pub(crate) validation: crate::mariadb::ValidationSlot,
}

impl MariaExport {
    /// Opens the transaction, reads the record and every definition; nothing is written yet.
    pub(crate) fn open(db: &Mariadb) -> Result<MariaExport, Error> {
        let mut c = db.wire()?;
        let database = db.database();
        c.run(
            "SET NAMES utf8mb4; SET SESSION time_zone = '+00:00'; \
             SET SESSION net_write_timeout = 3600; \
             SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        )?;
        c.run("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")?;
        let tool = format!("backstop {} built-in export", env!("CARGO_PKG_VERSION"));
        let (meta, outside) = record(
            &mut |sql| c.lines(sql),
            database.clone(),
            tool,
            Method::Builtin,
        )?;
        // Definitions as the dump tool reads them: names in backquotes, no SQL mode of the
        // record's queries in the way.
        c.run("SET SESSION sql_mode = '', SQL_QUOTE_SHOW_CREATE = 1")?;
        let parts = plan(&mut c, &database)?;
        let warnings = crate::mariadb::not_transactional_warning(&database, &outside);
        Ok(MariaExport {
            conn: Some(c),
            parts: Some(parts),
            meta: Some(meta),
            warnings,
            item_path: format!("{database}.sql"),
            describe: format!("built-in export of MariaDB database {database}"),
            writer: None,
            rules: Vec::new(),
            validation: Default::default(),
        })
    }

    /// The export, with why it was used in what the snapshot records of the source.
    pub(crate) fn because(mut self, why: String) -> Self {
        self.describe = format!("{} ({why})", self.describe);
        self
    }

    /// What the dump was taken from, for the dump's item (its rows are counted as it streams).
    pub(crate) fn take_record(&mut self) -> Option<ServerDatabase> {
        self.meta.take()
    }
}

/// A name in backquotes.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal for a query.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The value of `field` in a `SHOW CREATE ...` answer's first row; a NULL (the user may not
/// read the definition) is an error naming what.
fn definition(c: &mut Conn, what: &str, sql: &str, field: usize) -> Result<Vec<String>, Error> {
    let row = c.rows(sql)?.into_iter().next().unwrap_or_default();
    match row.get(field) {
        Some(Some(_)) => Ok(row.into_iter().map(Option::unwrap_or_default).collect()),
        _ => Err(Error::Invalid(format!(
            "the definition of {what} cannot be read by this user (it needs the SHOW VIEW, \
             TRIGGER or SELECT privilege on mysql.proc, as mariadb-dump does)"
        ))),
    }
}

/// The script's parts, in the dump tool's order.
fn plan(c: &mut Conn, database: &str) -> Result<Vec<Part>, Error> {
    let objects = c.rows(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY BINARY TABLE_NAME",
    )?;
    let objects: Vec<(String, String)> = objects
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter().map(Option::unwrap_or_default);
            (r.next().unwrap_or_default(), r.next().unwrap_or_default())
        })
        .collect();
    if let Some((name, kind)) = objects.iter().find(|(_, k)| {
        !matches!(
            k.as_str(),
            "BASE TABLE" | "SYSTEM VERSIONED" | "VIEW" | "SEQUENCE"
        )
    }) {
        return Err(Error::Invalid(format!(
            "{name} in {database} is a {kind}, which the built-in export does not know: use \
             method = \"dump\""
        )));
    }
    let mut parts = vec![Part::Text(HEADER.to_owned())];
    for (name, _) in objects.iter().filter(|(_, k)| k == "SEQUENCE") {
        let create = definition(
            c,
            &format!("sequence {name}"),
            &format!("SHOW CREATE SEQUENCE {}", ident(name)),
            1,
        )?;
        let next = c.one(&format!(
            "SELECT next_not_cached_value FROM {}",
            ident(name)
        ))?;
        parts.push(Part::Text(format!(
            "\n--\n-- Sequence structure for {n}\n--\n\nDROP SEQUENCE IF EXISTS {n};\n{};\n\
             DO SETVAL({n}, {next}, 0);\n",
            create[1],
            n = ident(name)
        )));
    }
    let triggers = c.rows(
        "SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS \
         WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
    )?;
    let mut views = Vec::new();
    for (name, kind) in &objects {
        match kind.as_str() {
            "VIEW" => {
                let columns = c.column(&format!(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = \
                     DATABASE() AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                    literal(name)
                ))?;
                let stand_in: Vec<String> = columns
                    .iter()
                    .map(|col| format!(" 1 AS {}", ident(col)))
                    .collect();
                parts.push(Part::Text(format!(
                    "\n--\n-- Temporary table structure for view {n}\n--\n\n\
                     DROP TABLE IF EXISTS {n};\n/*!50001 DROP VIEW IF EXISTS {n}*/;\n\
                     SET @saved_cs_client     = @@character_set_client;\n\
                     SET character_set_client = utf8mb4;\n\
                     /*!50001 CREATE VIEW {n} AS SELECT\n{} */;\n\
                     SET character_set_client = @saved_cs_client;\n",
                    stand_in.join(",\n"),
                    n = ident(name)
                )));
                views.push(view(c, name)?);
            }
            "SEQUENCE" => {}
            _ => {
                table(c, name, &mut parts)?;
                for t in triggers
                    .iter()
                    .filter(|t| t.first().cloned().flatten().as_deref() == Some(name))
                {
                    let trigger = t.get(1).cloned().flatten().unwrap_or_default();
                    parts.push(Part::Text(self::trigger(c, &trigger)?));
                }
            }
        }
    }
    let routines = c.rows(
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES \
         WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_TYPE, BINARY ROUTINE_NAME",
    )?;
    if !routines.is_empty() {
        parts.push(Part::Text(format!(
            "\n--\n-- Dumping routines for database {}\n--\n",
            literal(database)
        )));
    }
    for r in routines {
        let mut r = r.into_iter().map(Option::unwrap_or_default);
        let (kind, name) = (r.next().unwrap_or_default(), r.next().unwrap_or_default());
        if !matches!(kind.as_str(), "FUNCTION" | "PROCEDURE") {
            return Err(Error::Invalid(format!(
                "{name} in {database} is a {kind}, which the built-in export does not know: \
                 use method = \"dump\""
            )));
        }
        let d = definition(
            c,
            &format!("{} {name}", kind.to_lowercase()),
            &format!("SHOW CREATE {kind} {}", ident(&name)),
            2,
        )?;
        parts.push(Part::Text(format!(
            "/*!50003 DROP {kind} IF EXISTS {} */;\n{}",
            ident(&name),
            delimited(&d[1], &d[3], &d[4], &d[2])
        )));
    }
    for v in views {
        parts.push(Part::Text(v));
    }
    parts.push(Part::Text(FOOTER.to_owned()));
    Ok(parts)
}

/// A table's definition and its rows' part.
fn table(c: &mut Conn, name: &str, parts: &mut Vec<Part>) -> Result<(), Error> {
    let create = definition(
        c,
        &format!("table {name}"),
        &format!("SHOW CREATE TABLE {}", ident(name)),
        1,
    )?;
    let n = ident(name);
    parts.push(Part::Text(format!(
        "\n--\n-- Table structure for table {n}\n--\n\nDROP TABLE IF EXISTS {n};\n\
         /*!40101 SET @saved_cs_client     = @@character_set_client */;\n\
         /*!40101 SET character_set_client = utf8mb4 */;\n{};\n\
         /*!40101 SET character_set_client = @saved_cs_client */;\n",
        create[1]
    )));
    // Stored columns (generated ones are computed again on load), invisible ones included.
    let columns = c.rows(&format!(
        "SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = \
         DATABASE() AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
        literal(name)
    ))?;
    let mut stored = Vec::new();
    let mut listed = false;
    for col in columns {
        let mut col = col.into_iter().map(Option::unwrap_or_default);
        let (column, extra) = (
            col.next().unwrap_or_default(),
            col.next().unwrap_or_default(),
        );
        let extra = extra.to_ascii_uppercase();
        let generated = ["VIRTUAL", "PERSISTENT", "STORED GENERATED"]
            .iter()
            .any(|g| extra.contains(g));
        listed |= generated || extra.contains("INVISIBLE");
        if !generated {
            stored.push(ident(&column));
        }
    }
    let key = c.column(&format!(
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = \
         DATABASE() AND TABLE_NAME = {} AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
        literal(name)
    ))?;
    let order = match key.is_empty() {
        true => String::new(),
        false => format!(
            " ORDER BY {}",
            key.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
        ),
    };
    let list = match listed {
        true => format!(" ({})", stored.join(", ")),
        false => String::new(),
    };
    parts.push(Part::Text(format!(
        "\n--\n-- Dumping data for table {n}\n--\n\nLOCK TABLES {n} WRITE;\n\
         /*!40000 ALTER TABLE {n} DISABLE KEYS */;\n"
    )));
    parts.push(Part::Rows(TableRows {
        select: format!("SELECT {} FROM {n}{order}", stored.join(", ")),
        insert: format!("INSERT INTO {n}{list} VALUES\n"),
    }));
    parts.push(Part::Text(format!(
        "/*!40000 ALTER TABLE {n} ENABLE KEYS */;\nUNLOCK TABLES;\n"
    )));
    Ok(())
}

/// A trigger, as the dump tool writes it after its table's rows.
fn trigger(c: &mut Conn, name: &str) -> Result<String, Error> {
    let d = definition(
        c,
        &format!("trigger {name}"),
        &format!("SHOW CREATE TRIGGER {}", ident(name)),
        2,
    )?;
    Ok(delimited(&d[1], &d[3], &d[4], &d[2]))
}

/// A statement with a body of its own (a trigger or routine) between `DELIMITER ;;` and
/// `DELIMITER ;`, under the SQL mode and character set it was created with.
fn delimited(sql_mode: &str, charset: &str, collation: &str, statement: &str) -> String {
    format!(
        "/*!50003 SET @saved_cs_client      = @@character_set_client */ ;\n\
         /*!50003 SET @saved_cs_results     = @@character_set_results */ ;\n\
         /*!50003 SET @saved_col_connection = @@collation_connection */ ;\n\
         /*!50003 SET character_set_client  = {charset} */ ;\n\
         /*!50003 SET character_set_results = {charset} */ ;\n\
         /*!50003 SET collation_connection  = {collation} */ ;\n\
         /*!50003 SET @saved_sql_mode       = @@sql_mode */ ;\n\
         /*!50003 SET sql_mode              = {} */ ;\n\
         DELIMITER ;;\n{statement} ;;\nDELIMITER ;\n\
         /*!50003 SET sql_mode              = @saved_sql_mode */ ;\n\
         /*!50003 SET character_set_client  = @saved_cs_client */ ;\n\
         /*!50003 SET character_set_results = @saved_cs_results */ ;\n\
         /*!50003 SET collation_connection  = @saved_col_connection */ ;\n",
        literal(sql_mode)
    )
}

/// A view's final definition, in the dump tool's versioned comments (`CREATE ALGORITHM=...`,
/// `DEFINER=... SQL SECURITY ...`, `VIEW ... AS ...`), so that a restore leaves its definer
/// out as it does for the dump tool's.
fn view(c: &mut Conn, name: &str) -> Result<String, Error> {
    let d = definition(
        c,
        &format!("view {name}"),
        &format!("SHOW CREATE VIEW {}", ident(name)),
        1,
    )?;
    let create = &d[1];
    let n = ident(name);
    let head = format!(
        "\n--\n-- Final view structure for view {n}\n--\n\n\
         /*!50001 DROP VIEW IF EXISTS {n}*/;\n\
         /*!50001 SET @saved_cs_client          = @@character_set_client */;\n\
         /*!50001 SET @saved_cs_results         = @@character_set_results */;\n\
         /*!50001 SET @saved_col_connection     = @@collation_connection */;\n\
         /*!50001 SET character_set_client      = {cs} */;\n\
         /*!50001 SET character_set_results     = {cs} */;\n\
         /*!50001 SET collation_connection      = {co} */;\n",
        cs = d[2],
        co = d[3]
    );
    let tail = "/*!50001 SET character_set_client      = @saved_cs_client */;\n\
                /*!50001 SET character_set_results     = @saved_cs_results */;\n\
                /*!50001 SET collation_connection      = @saved_col_connection */;\n";
    // CREATE ALGORITHM=A DEFINER=`u`@`h` SQL SECURITY S VIEW `v` AS body
    let split = create.strip_prefix("CREATE ").and_then(|rest| {
        let definer = rest.find("DEFINER=")?;
        let view = rest.find(&format!(" VIEW {n}"))?;
        (definer < view && !rest.contains("*/")).then(|| {
            (
                rest[..definer].trim_end(),
                &rest[definer..view],
                &rest[view + 1..],
            )
        })
    });
    let body = match split {
        Some((algorithm, definer, view)) => {
            format!("/*!50001 CREATE {algorithm} */\n/*!50013 {definer} */\n/*!50001 {view} */;\n")
        }
        None => format!("{create};\n"),
    };
    Ok(format!("{head}{body}{tail}"))
}

const HEADER: &str = "-- MariaDB database export by backstop (method = builtin); load it with the \
    mariadb client\n\n\
    /*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n\
    /*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;\n\
    /*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;\n\
    /*!40101 SET NAMES utf8mb4 */;\n\
    /*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n\
    /*!40103 SET TIME_ZONE='+00:00' */;\n\
    /*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\
    /*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n\
    /*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n\
    /*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;\n";

const FOOTER: &str = "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n\
    /*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n\
    /*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n\
    /*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n\
    /*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n\
    /*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;\n\
    /*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;\n\
    /*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed\n";

/// How a column's values are written.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Value {
    /// As the server gave them (numbers).
    Bare,
    /// `0x...` (binary strings, bits, geometry; the empty one as `''`).
    Hex,
    /// In single quotes, escaped as the client library escapes.
    Quoted,
}

/// How the dump tool writes values of this column (with `--hex-blob`).
pub(crate) fn value_kind(c: &Column) -> Value {
    const BINARY: u16 = 63;
    match c.kind {
        // DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, LONGLONG, INT24, YEAR, NEWDECIMAL
        0..=6 | 8 | 9 | 13 | 246 => Value::Bare,
        // BIT, GEOMETRY
        16 | 255 => Value::Hex,
        // VARCHAR, the BLOBs, VAR_STRING, STRING
        15 | 249..=254 if c.charset == BINARY => Value::Hex,
        _ => Value::Quoted,
    }
}

/// Appends `v` as an SQL value of kind `kind`.
fn push_value(out: &mut Vec<u8>, kind: Value, v: Option<&[u8]>) {
    let Some(v) = v else {
        out.extend_from_slice(b"NULL");
        return;
    };
    match kind {
        Value::Bare => out.extend_from_slice(v),
        Value::Hex if v.is_empty() => out.extend_from_slice(b"''"),
        Value::Hex => {
            const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(b"0x");
            for b in v {
                out.push(DIGITS[usize::from(b >> 4)]);
                out.push(DIGITS[usize::from(b & 15)]);
            }
        }
        Value::Quoted => {
            out.push(b'\'');
            for &b in v {
                match b {
                    0 => out.extend_from_slice(b"\\0"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\'' => out.extend_from_slice(b"\\'"),
                    b'"' => out.extend_from_slice(b"\\\""),
                    0x1A => out.extend_from_slice(b"\\Z"),
                    b => out.push(b),
                }
            }
            out.push(b'\'');
        }
    }
}

/// Appends `row` as the dump tool writes a row: `(1,'a',NULL)`, each value by its column's
/// kind.
pub(crate) fn push_row(out: &mut Vec<u8>, kinds: &[Value], row: &Row<'_>) {
    out.push(b'(');
    for (i, (v, kind)) in row.iter().zip(kinds).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_value(out, *kind, *v);
    }
    out.push(b')');
}

/// Writes the script: the parts in order, each table's rows read in the transaction.
fn write_script(c: &mut Conn, parts: &[Part], out: &mut dyn Write) -> Result<(), Error> {
    let io = |e| Error::io("writing the export", e);
    for part in parts {
        match part {
            Part::Text(t) => out.write_all(t.as_bytes()).map_err(io)?,
            Part::Rows(t) => {
                let mut kinds: Vec<Value> = Vec::new();
                let mut line = Vec::with_capacity(1 << 12);
                // Bytes of the current INSERT; 0 before its first row.
                let mut statement = 0usize;
                c.query_with(&t.select, &mut |columns, row| {
                    if kinds.is_empty() {
                        kinds = columns.iter().map(value_kind).collect();
                    }
                    line.clear();
                    match statement {
                        0 => line.extend_from_slice(t.insert.as_bytes()),
                        _ => line.extend_from_slice(b",\n"),
                    }
                    push_row(&mut line, &kinds, row);
                    statement += line.len();
                    if statement >= STATEMENT {
                        line.extend_from_slice(b";\n");
                        statement = 0;
                    }
                    out.write_all(&line).map_err(io)
                })?;
                if statement > 0 {
                    out.write_all(b";\n").map_err(io)?;
                }
            }
        }
    }
    c.run("COMMIT")
}

impl Source for MariaExport {
    fn kind(&self) -> SourceKind {
        SourceKind::Mariadb
    }

    fn describe(&self) -> Vec<String> {
        vec![self.describe.clone()]
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        let (Some(mut conn), Some(parts)) = (self.conn.take(), self.parts.take()) else {
            return Ok(None);
        };
        // The rules see what the export reads: its transaction's consistent snapshot.
        if !self.rules.is_empty() {
            let results = crate::server_rules::run(
                &mut |sql: &str| conn.rows(sql),
                crate::server_rules::Dialect::Mariadb,
                &self.rules,
            );
            *self.validation.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(backstop_format::manifest::Validation {
                    rules: crate::rules::fingerprint(&self.rules),
                    results,
                });
        }
        let (entry, writer) =
            crate::server::export_entry(self.item_path.clone(), self.meta.take(), move |out| {
                write_script(&mut conn, &parts, out)
            })?;
        self.writer = Some(writer);
        Ok(Some(entry))
    }

    fn use_rules(&mut self, rules: &[crate::rules::Rule]) {
        self.rules = rules.to_vec();
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn finish(&mut self) -> Result<(), Error> {
        crate::server::finish_export(&mut self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: u8, charset: u16) -> Column {
        Column { kind, charset }
    }

    fn written(kind: Value, v: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        push_value(&mut out, kind, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_written_as_the_dump_tool_writes_them() {
        // Numbers bare, binary strings, bits and geometry in hex, text quoted; by type, and
        // for strings by character set (63 is binary).
        assert_eq!(value_kind(&column(3, 63)), Value::Bare);
        assert_eq!(value_kind(&column(246, 63)), Value::Bare);
        assert_eq!(value_kind(&column(16, 63)), Value::Hex);
        assert_eq!(value_kind(&column(252, 63)), Value::Hex);
        assert_eq!(value_kind(&column(253, 63)), Value::Hex);
        assert_eq!(value_kind(&column(252, 45)), Value::Quoted);
        assert_eq!(value_kind(&column(12, 63)), Value::Quoted, "a DATETIME");
        assert_eq!(value_kind(&column(245, 63)), Value::Quoted, "MySQL's JSON");
        assert_eq!(written(Value::Bare, Some(b"-12.3456")), "-12.3456");
        assert_eq!(written(Value::Hex, Some(&[0, 0xFF, 0x0A])), "0x00FF0A");
        assert_eq!(written(Value::Hex, Some(b"")), "''");
        assert_eq!(written(Value::Quoted, None), "NULL");
        // Every byte the client library escapes, and a byte that is not UTF-8 kept as it is.
        let mut out = Vec::new();
        push_value(&mut out, Value::Quoted, Some(b"a'b\\c\"d\0\n\r\x1a\xe9"));
        assert_eq!(out, b"'a\\'b\\\\c\\\"d\\0\\n\\r\\Z\xe9'");
    }
}
