//! Tables of a SQLite database written as files another program opens (`backstop export`):
//! CSV, JSON, JSON lines or an SQL script, one file a table, read row by row so that a table
//! larger than memory streams through.
//!
//! - `csv`: RFC 4180, UTF-8, a header of the column names, CRLF line ends, `NULL` as an empty
//!   field and the empty string as `""` ([`crate::table_csv`]'s rules).
//! - `json`: one array of objects (column name to value, in the table's column order);
//!   `jsonl`: one such object a line.
//! - `sql`: a script the `sqlite3` shell loads (`sqlite3 new.db < TABLE.sql`): the table's
//!   `CREATE` statement, its rows as `INSERT`s and its indexes, in one transaction.
//! - `xlsx`: a workbook of one sheet (rust_xlsxwriter, row by row in constant memory); a
//!   table longer than a sheet's 1,048,576 rows goes on over more sheets (`NAME (2)`, ...), each
//!   with the header; integers beyond 2^53 (which Excel would round) and texts beyond a cell's
//!   32,767 characters are written as text and cut, and [`write_xlsx`] says so.
//!
//! Values keep their type: integers and reals as numbers (a real always with a decimal point
//! or an exponent, so that it stays a real; infinity as `Infinity` in JSON, `9e999` in SQL),
//! text as text (bytes that are not UTF-8 are replaced in JSON, kept in CSV and SQL), BLOBs
//! as hexadecimal (`X'...'` in SQL).

use std::io::Write;

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::Error;

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Json,
    Jsonl,
    Sql,
    Xlsx,
}

impl Format {
    /// `csv`, `json`, `jsonl` or `sql`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "jsonl" => Ok(Format::Jsonl),
            "sql" => Ok(Format::Sql),
            "xlsx" => Ok(Format::Xlsx),
            other => Err(Error::Invalid(format!(
                "format {other:?}: expected csv, json, jsonl, sql or xlsx"
            ))),
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Sql => "sql",
            Format::Xlsx => "xlsx",
        }
    }
}

/// The tables an export takes when none are named: the database's own tables (not SQLite's,
/// not virtual tables or the tables that hold their data), in name order.
pub fn sqlite_tables(db: &Connection) -> Result<Vec<String>, Error> {
    tables_in(db, "main")
}

/// The same tables of the attached database `schema`.
pub(crate) fn tables_in(db: &Connection, schema: &str) -> Result<Vec<String>, Error> {
    let mut stmt = db
        .prepare(
            "SELECT name FROM pragma_table_list WHERE schema = ?1 AND type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(sql_error)?;
    let names = stmt
        .query_map([schema], |r| r.get::<_, String>(0))
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    Ok(names)
}

fn sql_error(e: rusqlite::Error) -> Error {
    Error::Invalid(format!("reading the database: {e}"))
}

/// An identifier in double quotes.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn check_table(db: &Connection, table: &str) -> Result<(), Error> {
    let exists: bool = db
        .query_row(
            "SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_error)?
        > 0;
    match exists {
        true => Ok(()),
        false => Err(Error::Invalid(format!(
            "the database has no table {table:?}"
        ))),
    }
}

/// Writes `table` of `db` in `format` (not `xlsx`: [`write_xlsx`]) into `out`; the rows
/// written. A table the database does not have is an error that says so.
pub fn write_table(
    db: &Connection,
    table: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    if format == Format::Xlsx {
        return Err(Error::Invalid("a workbook is written by write_xlsx".into()));
    }
    check_table(db, table)?;
    let mut stmt = db
        .prepare(&format!("SELECT * FROM {}", quoted(table)))
        .map_err(sql_error)?;
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let io = |e| Error::io(format!("writing table {table}"), e);
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut n = 0u64;
    let mut line = Vec::with_capacity(1 << 12);
    match format {
        Format::Csv => {
            let header: Vec<Option<Vec<u8>>> = columns
                .iter()
                .map(|c| Some(c.clone().into_bytes()))
                .collect();
            crate::table_csv::write_csv_row(out, &header).map_err(io)?;
        }
        Format::Json => out.write_all(b"[").map_err(io)?,
        Format::Jsonl | Format::Xlsx => {}
        Format::Sql => {
            let create: Option<String> = db
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1 AND type = 'table'",
                    [table],
                    |r| r.get(0),
                )
                .map_err(sql_error)?;
            out.write_all(
                format!(
                    "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n{};\n",
                    create.unwrap_or_default()
                )
                .as_bytes(),
            )
            .map_err(io)?;
        }
    }
    let insert = format!("INSERT INTO {} VALUES(", quoted(table));
    while let Some(row) = rows.next().map_err(sql_error)? {
        line.clear();
        match format {
            Format::Csv => {
                let fields: Vec<Option<Vec<u8>>> = (0..columns.len())
                    .map(|i| row.get_ref(i).map(csv_field))
                    .collect::<Result<_, _>>()
                    .map_err(sql_error)?;
                crate::table_csv::write_csv_row(out, &fields).map_err(io)?;
            }
            Format::Xlsx => {}
            Format::Json | Format::Jsonl => {
                if format == Format::Json {
                    line.extend_from_slice(if n == 0 { b"\n" } else { b",\n" });
                }
                line.push(b'{');
                for (i, c) in columns.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    json_string(&mut line, c.as_bytes());
                    line.push(b':');
                    json_value(&mut line, row.get_ref(i).map_err(sql_error)?);
                }
                line.push(b'}');
                if format == Format::Jsonl {
                    line.push(b'\n');
                }
                out.write_all(&line).map_err(io)?;
            }
            Format::Sql => {
                line.extend_from_slice(insert.as_bytes());
                for i in 0..columns.len() {
                    if i > 0 {
                        line.push(b',');
                    }
                    sql_value(&mut line, row.get_ref(i).map_err(sql_error)?);
                }
                line.extend_from_slice(b");\n");
                out.write_all(&line).map_err(io)?;
            }
        }
        n += 1;
    }
    match format {
        Format::Json => out
            .write_all(if n == 0 { b"]\n" } else { b"\n]\n" })
            .map_err(io)?,
        Format::Sql => {
            let mut indexes = db
                .prepare(
                    "SELECT sql FROM sqlite_schema WHERE tbl_name = ?1 AND type IN ('index', \
                     'trigger') AND sql IS NOT NULL ORDER BY type, name",
                )
                .map_err(sql_error)?;
            let sqls = indexes
                .query_map([table], |r| r.get::<_, String>(0))
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            for s in sqls {
                out.write_all(format!("{s};\n").as_bytes()).map_err(io)?;
            }
            out.write_all(b"COMMIT;\n").map_err(io)?;
        }
        _ => {}
    }
    Ok(n)
}

/// Rows on one sheet, the header's included (Excel's limit).
const SHEET_ROWS: u32 = 1_048_576;
/// Characters in one cell (Excel's limit).
const CELL_CHARS: usize = 32_767;

/// A sheet's name for `table` (Excel's: at most 31 characters, none of `[]:*?/\`), with
/// ` (N)` for its N-th sheet.
fn sheet_name(table: &str, n: u32) -> String {
    let suffix = match n {
        1 => String::new(),
        n => format!(" ({n})"),
    };
    let clean: String = table
        .chars()
        .map(|c| match c {
            '[' | ']' | ':' | '*' | '?' | '/' | '\\' => '_',
            c => c,
        })
        .collect();
    let keep = 31 - suffix.chars().count();
    let mut name: String = clean.chars().take(keep).collect();
    if name.trim().is_empty() {
        name = "table".into();
    }
    format!("{name}{suffix}")
}

/// Writes `table` of `db` as a workbook at `path` (see the module's documentation); the rows
/// written, and what had to change to fit Excel (sheets split, numbers kept as text, cells cut).
pub fn write_xlsx(
    db: &Connection,
    table: &str,
    path: &std::path::Path,
) -> Result<(u64, Vec<String>), Error> {
    use rust_xlsxwriter::Workbook;
    check_table(db, table)?;
    let xlsx = |e: rust_xlsxwriter::XlsxError| {
        Error::Invalid(format!("writing table {table} as a workbook: {e}"))
    };
    let mut stmt = db
        .prepare(&format!("SELECT * FROM {}", quoted(table)))
        .map_err(sql_error)?;
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut book = Workbook::new();
    let (mut sheets, mut row, mut n) = (0u32, SHEET_ROWS, 0u64);
    let (mut as_text, mut cut) = (0u64, 0u64);
    let mut sheet = None;
    while let Some(r) = rows.next().map_err(sql_error)? {
        if row == SHEET_ROWS {
            sheets += 1;
            let s = book.add_worksheet_with_constant_memory().map_err(xlsx)?;
            s.set_name(sheet_name(table, sheets)).map_err(xlsx)?;
            for (c, name) in columns.iter().enumerate() {
                s.write_string(0, c as u16, name).map_err(xlsx)?;
            }
            sheet = Some(sheets);
            row = 1;
        }
        let s = book
            .worksheet_from_index(sheet.expect("a sheet is open") as usize - 1)
            .map_err(xlsx)?;
        for c in 0..columns.len() {
            let col = c as u16;
            let text = |t: &str, cut: &mut u64| -> String {
                match t.chars().count() > CELL_CHARS {
                    true => {
                        *cut += 1;
                        t.chars().take(CELL_CHARS).collect()
                    }
                    false => t.to_owned(),
                }
            };
            match r.get_ref(c).map_err(sql_error)? {
                ValueRef::Null => {}
                ValueRef::Integer(i) if i.unsigned_abs() <= 1 << 53 => {
                    s.write_number(row, col, i as f64).map_err(xlsx)?;
                }
                ValueRef::Integer(i) => {
                    as_text += 1;
                    s.write_string(row, col, i.to_string()).map_err(xlsx)?;
                }
                ValueRef::Real(f) if f.is_finite() => {
                    s.write_number(row, col, f).map_err(xlsx)?;
                }
                ValueRef::Real(f) => {
                    s.write_string(row, col, real(f)).map_err(xlsx)?;
                }
                ValueRef::Text(t) => {
                    let t = text(&String::from_utf8_lossy(t), &mut cut);
                    s.write_string(row, col, t).map_err(xlsx)?;
                }
                ValueRef::Blob(b) => {
                    let mut h = Vec::with_capacity(b.len() * 2);
                    hex(&mut h, b);
                    let t = text(&String::from_utf8_lossy(&h), &mut cut);
                    s.write_string(row, col, t).map_err(xlsx)?;
                }
            }
        }
        row += 1;
        n += 1;
    }
    if sheets == 0 {
        let s = book.add_worksheet_with_constant_memory().map_err(xlsx)?;
        s.set_name(sheet_name(table, 1)).map_err(xlsx)?;
        for (c, name) in columns.iter().enumerate() {
            s.write_string(0, c as u16, name).map_err(xlsx)?;
        }
    }
    book.save(path).map_err(xlsx)?;
    let mut notes = Vec::new();
    if sheets > 1 {
        notes.push(format!(
            "{table}: {n} rows, more than a sheet holds ({} with the header): written on {sheets} sheets",
            SHEET_ROWS
        ));
    }
    if as_text > 0 {
        notes.push(format!(
            "{table}: {as_text} integer(s) beyond 2^53 written as text (Excel would round them)"
        ));
    }
    if cut > 0 {
        notes.push(format!(
            "{table}: {cut} value(s) longer than a cell's {CELL_CHARS} characters cut to fit \
             (export as csv for the whole values)"
        ));
    }
    Ok((n, notes))
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// A real as text that reads back as the same real and stays a real (`3.0`, `1e300`).
fn real(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    format!("{f:?}")
}

fn csv_field(v: ValueRef<'_>) -> Option<Vec<u8>> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string().into_bytes()),
        ValueRef::Real(f) => Some(real(f).into_bytes()),
        ValueRef::Text(t) => Some(t.to_vec()),
        ValueRef::Blob(b) => {
            let mut out = Vec::with_capacity(b.len() * 2);
            hex(&mut out, b);
            Some(out)
        }
    }
}

fn json_string(out: &mut Vec<u8>, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    out.extend_from_slice(
        serde_json::to_string(text.as_ref())
            .expect("a string always serializes")
            .as_bytes(),
    );
}

fn json_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.extend_from_slice(b"null"),
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) if f.is_infinite() => out.extend_from_slice(if f > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        }),
        ValueRef::Real(f) => out.extend_from_slice(real(f).as_bytes()),
        ValueRef::Text(t) => json_string(out, t),
        ValueRef::Blob(b) => {
            out.push(b'"');
            hex(out, b);
            out.push(b'"');
        }
    }
}

fn sql_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.extend_from_slice(b"NULL"),
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) if f.is_infinite() => {
            out.extend_from_slice(if f > 0.0 { b"9e999" } else { b"-9e999" })
        }
        ValueRef::Real(f) => out.extend_from_slice(real(f).as_bytes()),
        ValueRef::Text(t) => sql_text(out, t),
        ValueRef::Blob(b) => {
            out.extend_from_slice(b"X'");
            hex(out, b);
            out.push(b'\'');
        }
    }
}

/// A text literal. The `sqlite3` shell reads its input a line at a time and drops a carriage
/// return before a line feed, so line breaks are written as its own `.dump` writes them: as a
/// marker the text does not hold, put back by `replace(..., char(10))`.
fn sql_text(out: &mut Vec<u8>, t: &[u8]) {
    let contains = |needle: &[u8]| t.windows(needle.len()).any(|w| w == needle);
    let marker = |c: u8| {
        let mut m = vec![b'\\', c];
        while contains(&m) {
            m.insert(0, b'\\');
        }
        m
    };
    let (cr, lf) = (t.contains(&b'\r'), t.contains(&b'\n'));
    let (mr, mn) = (marker(b'r'), marker(b'n'));
    if cr {
        out.extend_from_slice(b"replace(");
    }
    if lf {
        out.extend_from_slice(b"replace(");
    }
    out.push(b'\'');
    for &b in t {
        match b {
            b'\'' => out.extend_from_slice(b"''"),
            b'\r' => out.extend_from_slice(&mr),
            b'\n' => out.extend_from_slice(&mn),
            b => out.push(b),
        }
    }
    out.push(b'\'');
    if lf {
        out.extend_from_slice(b",'");
        out.extend_from_slice(&mn);
        out.extend_from_slice(b"',char(10))");
    }
    if cr {
        out.extend_from_slice(b",'");
        out.extend_from_slice(&mr);
        out.extend_from_slice(b"',char(13))");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, price REAL, raw BLOB); \
             CREATE INDEX t_name ON t(name); \
             INSERT INTO t VALUES (1, 'plain', 3.0, x'00ff'), (2, 'a \"q\", b''s\nline', 0.1, NULL), \
               (3, '', 1e300, x''), (4, NULL, 9e999, NULL); \
             CREATE VIRTUAL TABLE docs USING fts5(body);",
        )
        .unwrap();
        db
    }

    fn written(db: &Connection, format: Format) -> String {
        let mut out = Vec::new();
        let n = write_table(db, "t", format, &mut out).unwrap();
        assert_eq!(n, 4);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sheet_names_fit_excel() {
        assert_eq!(sheet_name("orders", 1), "orders");
        assert_eq!(sheet_name("orders", 2), "orders (2)");
        assert_eq!(sheet_name("a/b:c[d]", 1), "a_b_c_d_");
        let long = "x".repeat(40);
        assert_eq!(sheet_name(&long, 1).chars().count(), 31);
        assert_eq!(sheet_name(&long, 12), format!("{} (12)", "x".repeat(26)));
    }

    #[test]
    fn the_tables_taken_are_the_databases_own() {
        let db = sample();
        assert_eq!(sqlite_tables(&db).unwrap(), ["t"]);
        let e = write_table(&db, "nope", Format::Csv, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no table \"nope\""), "{e}");
    }

    #[test]
    fn each_format_keeps_types_and_quotes() {
        let db = sample();
        assert_eq!(
            written(&db, Format::Csv),
            "id,name,price,raw\r\n1,plain,3.0,00ff\r\n2,\"a \"\"q\"\", b's\nline\",0.1,\r\n\
             3,\"\",1e300,\"\"\r\n4,,inf,\r\n"
        );
        let json: serde_json::Value = serde_json::from_str(&written(&db, Format::Json)).unwrap();
        assert_eq!(json[0]["price"], serde_json::json!(3.0));
        assert!(json[0]["price"].is_f64());
        assert_eq!(json[1]["name"], "a \"q\", b's\nline");
        assert_eq!(json[0]["raw"], "00ff");
        assert_eq!(json[3]["name"], serde_json::Value::Null);
        assert_eq!(json[3]["price"], "Infinity");
        let lines = written(&db, Format::Jsonl);
        assert_eq!(lines.lines().count(), 4);
        assert!(
            lines.starts_with("{\"id\":1,\"name\":\"plain\",\"price\":3.0,\"raw\":\"00ff\"}\n")
        );
        // The script loads into a new database as the same table, index and rows.
        let sql = written(&db, Format::Sql);
        let copy = Connection::open_in_memory().unwrap();
        copy.execute_batch(&sql).unwrap();
        let rows = |c: &Connection| -> Vec<String> {
            c.prepare("SELECT quote(id), quote(name), quote(price), typeof(price), quote(raw) FROM t ORDER BY id")
                .unwrap()
                .query_map([], |r| {
                    Ok((0..5)
                        .map(|i| r.get::<_, String>(i).unwrap())
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(rows(&copy), rows(&db));
        let mut text = Vec::new();
        sql_text(&mut text, b"a\\nb\r\nc");
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "replace(replace('a\\nb\\r\\\\nc','\\\\n',char(10)),'\\r',char(13))"
        );
        let index: i64 = copy
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 't_name'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
    }
}
