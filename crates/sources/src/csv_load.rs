//! A table as [`crate::table_csv`] writes it (a database server's dump's rows, `NULL` as an
//! empty field, the empty string as `""`) loaded into a SQLite database, so that `export`
//! writes a server's tables as JSON, SQL or a workbook the way it writes SQLite's.
//!
//! The CSV holds text only, so each column's type is decided from all of its values, read in a
//! first pass: `INTEGER` when every value is an integer written plainly (`-12`, not `+12` or
//! `012`) that fits 64 bits, `REAL` when every value is a plain decimal number (`12.50`,
//! `-1e-3`) of at most 15 significant digits, which a double holds as written, else `TEXT`
//! (so a column of codes like `007` stays text, and so do exact decimals longer than a double).
//! A column with no value but `NULL` is `TEXT`. The rows are read again in a second pass and
//! inserted in one transaction; memory holds one row at a time.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::Value;

use crate::Error;

/// What a column's values allow it to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An integer a double holds too (at most 15 significant digits).
    Integer,
    /// An integer of 64 bits that a double would round: never mixed with reals.
    WideInteger,
    Real,
    Text,
}

impl Kind {
    /// The kind of a column holding values of kinds `self` and `other`.
    fn and(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (Text, _) | (_, Text) => Text,
            (WideInteger, Real) | (Real, WideInteger) => Text,
            (Real, _) | (_, Real) => Real,
            (WideInteger, _) | (_, WideInteger) => WideInteger,
            (Integer, Integer) => Integer,
        }
    }
}

/// Significant digits a double holds exactly as written.
const DOUBLE_DIGITS: usize = 15;

/// `-?(0|[1-9][0-9]*)`, and the digits after the sign.
fn plain_integer(s: &str) -> Option<&str> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    ok.then_some(digits)
}

/// The kind of one value: a plain integer of 64 bits, a plain decimal number a double holds
/// as written, or text.
fn kind_of(s: &str) -> Kind {
    if let Some(digits) = plain_integer(s)
        && s.parse::<i64>().is_ok()
    {
        return match digits.len() <= DOUBLE_DIGITS {
            true => Kind::Integer,
            false => Kind::WideInteger,
        };
    }
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let Some(whole_digits) = plain_integer(whole) else {
        return Kind::Text;
    };
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return Kind::Text;
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) || e.len() > 3 {
            return Kind::Text;
        }
    }
    let significant = format!("{whole_digits}{}", fraction.unwrap_or(""));
    let significant = significant.trim_start_matches('0').trim_end_matches('0');
    match significant.len() <= DOUBLE_DIGITS && s.parse::<f64>().is_ok_and(f64::is_finite) {
        true => Kind::Real,
        false => Kind::Text,
    }
}

/// Records of a CSV file in [`crate::table_csv`]'s form: fields with a comma, quote or line
/// break in quotes (quotes doubled), lines ending in CRLF or LF; an unquoted empty field is
/// `None` (NULL).
struct Records<R> {
    input: BufReader<R>,
    line: usize,
}

impl<R: Read> Records<R> {
    fn new(input: R) -> Self {
        Self {
            input: BufReader::with_capacity(1 << 16, input),
            line: 0,
        }
    }

    fn byte(&mut self) -> std::io::Result<Option<u8>> {
        let buf = self.input.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.input.consume(1);
        Ok(Some(b))
    }

    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    /// The next record, or `None` at the end of the file.
    fn next(&mut self) -> Result<Option<Vec<Option<String>>>, Error> {
        let bad = |line: usize, what: &str| {
            Error::Invalid(format!("the table's CSV, line {line}: {what}"))
        };
        let io = |e| Error::io("reading the table's CSV", e);
        self.line += 1;
        if self.peek().map_err(io)?.is_none() {
            return Ok(None);
        }
        let mut fields = Vec::new();
        loop {
            let mut field = Vec::new();
            let quoted = self.peek().map_err(io)? == Some(b'"');
            if quoted {
                self.byte().map_err(io)?;
                loop {
                    match self.byte().map_err(io)? {
                        None => return Err(bad(self.line, "a quoted field is not closed")),
                        Some(b'"') if self.peek().map_err(io)? == Some(b'"') => {
                            self.byte().map_err(io)?;
                            field.push(b'"');
                        }
                        Some(b'"') => break,
                        Some(b) => field.push(b),
                    }
                }
            }
            let end = loop {
                match self.byte().map_err(io)? {
                    None => break None,
                    Some(b @ (b',' | b'\n')) => break Some(b),
                    Some(b'\r') if self.peek().map_err(io)? == Some(b'\n') => {}
                    Some(_) if quoted => {
                        return Err(bad(self.line, "text after a quoted field"));
                    }
                    Some(b) => field.push(b),
                }
            };
            fields.push(match (quoted, field.is_empty()) {
                (false, true) => None,
                _ => Some(String::from_utf8_lossy(&field).into_owned()),
            });
            if end != Some(b',') {
                return Ok(Some(fields));
            }
        }
    }
}

/// Column names from a header row: an empty one is `column N` (its place), and a name met
/// before gets ` (2)`, ` (3)`, ... (a sheet's first row is not always a proper header).
fn unique_names(header: Vec<Option<String>>) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    for (i, h) in header.into_iter().enumerate() {
        let base = h
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("column {}", i + 1));
        let mut name = base.clone();
        let mut n = 1;
        while names.iter().any(|x| x.eq_ignore_ascii_case(&name)) {
            n += 1;
            name = format!("{base} ({n})");
        }
        names.push(name);
    }
    names
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_error(e: rusqlite::Error) -> Error {
    Error::Invalid(format!("loading the table's rows: {e}"))
}

/// Loads the CSV file at `csv` (a header of column names, then the rows) into a new table
/// `table` of `db`, with `key` as its primary key (when every one of its columns is in the
/// header); with `typed` each column typed from its values (see the module's documentation),
/// else every value kept as the text it is (for comparing two loads exactly). The rows loaded.
pub fn load_csv(
    db: &Connection,
    table: &str,
    csv: &Path,
    key: &[String],
    typed: bool,
) -> Result<u64, Error> {
    let open = || {
        std::fs::File::open(csv)
            .map(Records::new)
            .map_err(|e| Error::io(format!("reading {}", csv.display()), e))
    };
    let mut records = open()?;
    // An empty file (an empty sheet) is a table of one column and no rows.
    let header = unique_names(records.next()?.unwrap_or_else(|| vec![None]));
    let mut kinds: Vec<Option<Kind>> = vec![None; header.len()];
    if !typed {
        kinds.fill(Some(Kind::Text));
    }
    while let Some(row) = records.next()? {
        if row.len() != header.len() {
            return Err(Error::Invalid(format!(
                "{}, line {}: {} fields where the header has {}",
                csv.display(),
                records.line,
                row.len(),
                header.len()
            )));
        }
        for (k, v) in kinds.iter_mut().zip(&row) {
            let Some(v) = v.as_ref().filter(|_| typed) else {
                continue;
            };
            let new = kind_of(v);
            *k = Some(k.map_or(new, |k| k.and(new)));
        }
    }
    let kinds: Vec<Kind> = kinds.into_iter().map(|k| k.unwrap_or(Kind::Text)).collect();
    let mut columns: Vec<String> = header
        .iter()
        .zip(&kinds)
        .map(|(name, kind)| {
            let ty = match kind {
                Kind::Integer | Kind::WideInteger => "INTEGER",
                Kind::Real => "REAL",
                Kind::Text => "TEXT",
            };
            format!("{} {ty}", quoted(name))
        })
        .collect();
    if !key.is_empty() && key.iter().all(|k| header.contains(k)) {
        let key: Vec<String> = key.iter().map(|k| quoted(k)).collect();
        columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    db.execute_batch(&format!(
        "CREATE TABLE {} ({})",
        quoted(table),
        columns.join(", ")
    ))
    .map_err(sql_error)?;
    let tx = db.unchecked_transaction().map_err(sql_error)?;
    let mut insert = tx
        .prepare(&format!(
            "INSERT INTO {} VALUES ({})",
            quoted(table),
            vec!["?"; header.len()].join(", ")
        ))
        .map_err(sql_error)?;
    let mut records = open()?;
    records.next()?;
    let mut rows = 0u64;
    while let Some(row) = records.next()? {
        let values = row
            .into_iter()
            .zip(&kinds)
            .map(|(v, kind)| match (v, kind) {
                (None, _) => Value::Null,
                (Some(v), Kind::Integer | Kind::WideInteger) => {
                    v.parse().map(Value::Integer).unwrap_or(Value::Text(v))
                }
                (Some(v), Kind::Real) => v.parse().map(Value::Real).unwrap_or(Value::Text(v)),
                (Some(v), Kind::Text) => Value::Text(v),
            });
        insert
            .execute(rusqlite::params_from_iter(values))
            .map_err(sql_error)?;
        rows += 1;
    }
    drop(insert);
    tx.commit().map_err(sql_error)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbers_only_when_written_plainly() {
        for (v, k) in [
            ("0", Kind::Integer),
            ("-12", Kind::Integer),
            ("9223372036854775807", Kind::WideInteger),
            ("123456789012345", Kind::Integer),
            ("9223372036854775808", Kind::Text),
            ("007", Kind::Text),
            ("+1", Kind::Text),
            ("12.50", Kind::Real),
            ("-0.001", Kind::Real),
            ("1e-3", Kind::Real),
            ("6.02E+23", Kind::Real),
            ("1.", Kind::Text),
            (".5", Kind::Text),
            ("123456789012.3456", Kind::Text),
            ("12345678901.2345", Kind::Real),
            ("NaN", Kind::Text),
            ("Infinity", Kind::Text),
            ("1e999", Kind::Text),
            ("", Kind::Text),
            (" 1", Kind::Text),
            ("t", Kind::Text),
            ("2026-12-07", Kind::Text),
        ] {
            assert_eq!(kind_of(v), k, "{v:?}");
        }
    }

    #[test]
    fn a_csv_loads_with_its_types_nulls_and_awkward_text() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        std::fs::write(
            &csv,
            "id,price,code,note,empty\r\n\
             \"1\",\"12.50\",\"007\",\"a, \"\"b\"\"\r\nc\",\r\n\
             \"2\",,\"12\",\"\",\r\n\
             \"-3\",\"1e3\",\"x\",d,\r\n",
        )
        .unwrap();
        let db = Connection::open_in_memory().unwrap();
        assert_eq!(
            load_csv(&db, "a \"t\"", &csv, &["id".into()], true).unwrap(),
            3
        );
        assert_eq!(Kind::WideInteger.and(Kind::Real), Kind::Text);
        assert_eq!(Kind::Integer.and(Kind::Real), Kind::Real);
        assert_eq!(Kind::Integer.and(Kind::WideInteger), Kind::WideInteger);
        let types: Vec<String> = db
            .prepare("SELECT type FROM pragma_table_info('a \"t\"')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(types, ["INTEGER", "REAL", "TEXT", "TEXT", "TEXT"]);
        let pk: i64 = db
            .query_row(
                "SELECT pk FROM pragma_table_info('a \"t\"') WHERE name = 'id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(pk, 1);
        // As text: every value as written, the same header.
        load_csv(&db, "as text", &csv, &[], false).unwrap();
        let texts: Vec<(String, Option<String>)> = db
            .prepare("SELECT typeof(id) || typeof(price), price FROM \"as text\" ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            texts,
            [
                ("texttext".into(), Some("12.50".into())),
                ("textnull".into(), None),
                ("texttext".into(), Some("1e3".into()))
            ]
        );
        type Row = (i64, Option<f64>, String, Option<String>, Option<String>);
        let rows: Vec<Row> = db
            .prepare("SELECT * FROM \"a \"\"t\"\"\" ORDER BY id")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (-3, Some(1000.0), "x".into(), Some("d".into()), None),
                (
                    1,
                    Some(12.5),
                    "007".into(),
                    Some("a, \"b\"\r\nc".into()),
                    None
                ),
                (2, None, "12".into(), Some(String::new()), None),
            ]
        );
        assert_eq!(
            unique_names(vec![
                Some("a".into()),
                None,
                Some("A".into()),
                Some(String::new())
            ]),
            ["a", "column 2", "A (2)", "column 4"]
        );
        std::fs::write(&csv, "").unwrap();
        assert_eq!(load_csv(&db, "empty", &csv, &[], true).unwrap(), 0);
        std::fs::write(&csv, "a,b\r\n\"1\"\r\n").unwrap();
        let e = load_csv(&db, "short", &csv, &[], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("1 fields"), "{e}");
    }
}
