//! Workbooks (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) read as tables: each sheet's used
//! range as rows, for `backstop export` (calamine reads them; nothing of Excel is needed).
//!
//! Values are written as a spreadsheet shows them when it saves CSV: numbers without a
//! trailing `.0` when whole, booleans `TRUE`/`FALSE`, dates and times in ISO 8601
//! (`2026-12-07`, `2026-12-07T18:30:00`, durations as `PT..`), errors as Excel writes them
//! (`#DIV/0!`), empty cells as empty fields.

use std::io::{BufReader, Cursor, Read, Seek, Write};
use std::path::Path;

use backstop_format::manifest::{SheetColumn, SheetTable, WorkbookMeta};
use calamine::{Data, Range, Reader, Sheets};

use crate::Error;

/// The file name extensions of workbooks.
pub const EXTENSIONS: [&str; 5] = ["xlsx", "xlsm", "xlsb", "xls", "ods"];

/// Whether `path` names a workbook (by its extension).
pub fn is_workbook(path: &str) -> bool {
    Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// An open workbook.
pub struct Workbook<R = BufReader<std::fs::File>>(Sheets<R>);

impl Workbook {
    /// Opens the workbook at `path` (its extension says its kind); one that is not a readable
    /// workbook, or is protected by a password, is an error that says so.
    pub fn open(path: &Path) -> Result<Self, Error> {
        calamine::open_workbook_auto(path)
            .map(Workbook)
            .map_err(|e| {
                Error::Invalid(format!(
                    "{} cannot be read as a workbook ({e}); a workbook protected by a password \
                     is kept as bytes only",
                    path.display()
                ))
            })
    }
}

impl Workbook<Cursor<Vec<u8>>> {
    /// The workbook in `bytes` (its kind read from them).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        calamine::open_workbook_auto_from_rs(Cursor::new(bytes))
            .map(Workbook)
            .map_err(|e| Error::Invalid(format!("it cannot be read as a workbook ({e})")))
    }
}

impl<R: Read + Seek> Workbook<R> {
    /// Its Excel tables (ListObjects; `.xlsx` and `.xlsm` only), with the sheet each is on.
    pub fn tables(&mut self) -> Vec<(String, String)> {
        let Sheets::Xlsx(x) = &mut self.0 else {
            return Vec::new();
        };
        if x.load_tables().is_err() {
            return Vec::new();
        }
        let names: Vec<String> = x.table_names().into_iter().cloned().collect();
        names
            .into_iter()
            .filter_map(|n| {
                let sheet = x.table_by_name(&n).ok()?.sheet_name().to_owned();
                Some((n, sheet))
            })
            .collect()
    }

    /// What export and diff read of it: every worksheet, then every Excel table whose name is
    /// not a sheet's.
    pub fn sheets_and_tables(&mut self) -> Vec<String> {
        let mut all = self.sheets();
        let tables: Vec<String> = self
            .tables()
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| !all.contains(t))
            .collect();
        all.extend(tables);
        all
    }

    /// Every worksheet and Excel table as a table: its header, rows and column types.
    pub fn describe(&mut self) -> Result<WorkbookMeta, Error> {
        let mut tables = Vec::new();
        for sheet in self.sheets() {
            let range = self.range(&sheet)?;
            let mut rows = range.rows();
            let header: Vec<String> = rows
                .next()
                .map(|r| r.iter().map(|c| text(c).unwrap_or_default()).collect())
                .unwrap_or_default();
            tables.push(SheetTable {
                name: sheet,
                kind: "sheet".into(),
                sheet: None,
                rows: rows.len() as u64,
                columns: columns(&header, range.rows().skip(1)),
            });
        }
        for (name, sheet) in self.tables() {
            let Sheets::Xlsx(x) = &mut self.0 else { break };
            let table = x
                .table_by_name(&name)
                .map_err(|e| Error::Invalid(format!("reading table {name}: {e}")))?;
            let data = table.data();
            tables.push(SheetTable {
                name,
                kind: "table".into(),
                sheet: Some(sheet),
                rows: data.height() as u64,
                columns: columns(table.columns(), data.rows()),
            });
        }
        Ok(WorkbookMeta { tables })
    }

    fn range(&mut self, sheet: &str) -> Result<Range<Data>, Error> {
        self.0
            .worksheet_range(sheet)
            .map_err(|e| Error::Invalid(format!("reading sheet {sheet}: {e}")))
    }

    /// Its worksheets' names (hidden ones too; not chart or macro sheets), in the workbook's
    /// order.
    pub fn sheets(&self) -> Vec<String> {
        self.0
            .sheets_metadata()
            .iter()
            .filter(|m| m.typ == calamine::SheetType::WorkSheet)
            .map(|m| m.name.clone())
            .collect()
    }

    /// Writes `sheet`'s used range into `out` as CSV (`crate::table_csv`'s rules), or an Excel
    /// table of that name with its header; the rows written (the header included).
    pub fn write_csv(&mut self, sheet: &str, out: &mut dyn Write) -> Result<u64, Error> {
        let io = |e| Error::io(format!("writing {sheet}"), e);
        if !self.sheets().iter().any(|s| s == sheet) {
            if !self.tables().iter().any(|(t, _)| t == sheet) {
                return Err(Error::Invalid(format!(
                    "the workbook has no sheet or table {sheet:?}"
                )));
            }
            let Sheets::Xlsx(x) = &mut self.0 else {
                unreachable!("only xlsx workbooks have tables")
            };
            let table = x
                .table_by_name(sheet)
                .map_err(|e| Error::Invalid(format!("reading table {sheet}: {e}")))?;
            let header: Vec<Option<Vec<u8>>> = table
                .columns()
                .iter()
                .map(|c| Some(c.clone().into_bytes()))
                .collect();
            crate::table_csv::write_csv_row(out, &header).map_err(io)?;
            let mut n = 1;
            for row in table.data().rows() {
                let fields: Vec<Option<Vec<u8>>> = row.iter().map(cell).collect();
                crate::table_csv::write_csv_row(out, &fields).map_err(io)?;
                n += 1;
            }
            return Ok(n);
        }
        let range = self.range(sheet)?;
        let mut n = 0;
        for row in range.rows() {
            let fields: Vec<Option<Vec<u8>>> = row.iter().map(cell).collect();
            crate::table_csv::write_csv_row(out, &fields)
                .map_err(|e| Error::io(format!("writing sheet {sheet}"), e))?;
            n += 1;
        }
        Ok(n)
    }
}

/// A number as a spreadsheet writes it: whole ones without a fraction.
fn number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The columns of a table whose header is `header` and whose rows below it are `rows`: each
/// named by its header cell (`column N` where that is empty), typed by its cells.
fn columns<'a>(header: &[String], rows: impl Iterator<Item = &'a [Data]>) -> Vec<SheetColumn> {
    let mut kinds: Vec<Option<&'static str>> = vec![None; header.len()];
    for row in rows {
        for (k, c) in kinds.iter_mut().zip(row) {
            let this = match c {
                Data::Empty => continue,
                Data::String(_) => "text",
                Data::Int(_) | Data::Float(_) => "number",
                Data::Bool(_) => "bool",
                Data::DateTime(d) if d.is_datetime() => "date",
                Data::DateTimeIso(_) => "date",
                Data::DateTime(_) | Data::DurationIso(_) => "duration",
                Data::Error(_) => "error",
            };
            *k = match *k {
                None => Some(this),
                Some(k) if k == this => Some(k),
                Some(_) => Some("mixed"),
            };
        }
    }
    header
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (name, kind))| SheetColumn {
            name: match name.is_empty() {
                true => format!("column {}", i + 1),
                false => name.clone(),
            },
            kind: kind.unwrap_or("empty").into(),
        })
        .collect()
}

/// A cell as text, as [`cell`] writes it.
fn text(d: &Data) -> Option<String> {
    cell(d).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn cell(d: &Data) -> Option<Vec<u8>> {
    let text = match d {
        Data::Empty => return None,
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Data::DateTime(dt) if dt.is_datetime() => {
            let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
            match (h, mi, s, ms) {
                (0, 0, 0, 0) => format!("{y:04}-{mo:02}-{d:02}"),
                (_, _, _, 0) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}"),
                _ => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}"),
            }
        }
        Data::DateTime(dt) => {
            // A duration, in days: as ISO 8601 seconds.
            let secs = dt.as_f64() * 86_400.0;
            format!("PT{}S", number((secs * 1000.0).round() / 1000.0))
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => e.to_string(),
    };
    Some(text.into_bytes())
}

/// Workbooks up to this size are read as tables when they are backed up; a larger one is kept
/// as bytes without its sheets in the manifest (reading one holds its cells in memory).
pub const DESCRIBE_LIMIT: usize = 16 << 20;

/// The capture of a workbook file: its bytes stream to the engine as any file's do, and a copy
/// of them (up to [`DESCRIBE_LIMIT`]) is read as tables once the item is stored, so that what
/// the manifest says of its sheets is of exactly the bytes stored. A workbook that cannot be
/// read (damaged, or protected by a password) is kept as bytes, with a warning.
pub struct WorkbookCapture {
    copy: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    chunking: crate::Chunking,
    warn: Box<dyn Fn(String) + Send>,
}

/// The file's bytes, in the buffers the engine hands back, copied as they pass.
struct Teed {
    file: std::fs::File,
    copy: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl crate::Buffers for Teed {
    fn next_buffer(&mut self, recycled: Option<Vec<u8>>) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = recycled.unwrap_or_default();
        buf.resize(1 << 20, 0);
        let n = loop {
            match self.file.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        let mut copy = self.copy.lock().unwrap_or_else(|e| e.into_inner());
        if copy.as_ref().is_some_and(|c| c.len() + n > DESCRIBE_LIMIT) {
            *copy = None;
        }
        if let Some(c) = copy.as_mut() {
            c.extend_from_slice(&buf);
        }
        Ok(Some(buf))
    }
}

impl WorkbookCapture {
    /// The entry content of the workbook file `file` (named `name`); `warn` says what could not
    /// be read.
    pub fn content(
        file: std::fs::File,
        name: &str,
        warn: Box<dyn Fn(String) + Send>,
    ) -> crate::EntryContent {
        let copy = std::sync::Arc::new(std::sync::Mutex::new(Some(Vec::new())));
        crate::EntryContent::Captured {
            buffers: Box::new(Teed {
                file,
                copy: copy.clone(),
            }),
            capture: Box::new(WorkbookCapture {
                copy,
                chunking: crate::chunking_for(name),
                warn,
            }),
        }
    }
}

impl crate::Capture for WorkbookCapture {
    fn chunking(&self) -> crate::Chunking {
        self.chunking
    }

    fn complete(
        self: Box<Self>,
        item: &mut backstop_format::manifest::Item,
        _previous: Option<&backstop_format::manifest::Item>,
    ) -> Result<(), Error> {
        let bytes = self.copy.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(bytes) = bytes.filter(|_| item.content.is_some()) else {
            return Ok(());
        };
        match Workbook::from_bytes(bytes).and_then(|mut w| w.describe()) {
            Ok(meta) => item.workbook = Some(meta),
            Err(e) => (self.warn)(format!(
                "{}: {e}; kept as bytes only (a workbook protected by a password cannot be \
                 read as tables)",
                item.path
            )),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workbooks_are_known_by_their_extension_and_cells_read_as_a_spreadsheet_shows_them() {
        assert!(is_workbook("a/Prices.XLSX") && is_workbook("b.ods") && !is_workbook("c.csv"));
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(cell(&Data::Bool(true)), Some(b"TRUE".to_vec()));
        assert_eq!(cell(&Data::Empty), None);
        let day =
            calamine::ExcelDateTime::new(45998.0, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(cell(&Data::DateTime(day)), Some(b"2025-12-07".to_vec()));
        let noon =
            calamine::ExcelDateTime::new(45998.5, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(
            cell(&Data::DateTime(noon)),
            Some(b"2025-12-07T12:00:00".to_vec())
        );
    }
}
