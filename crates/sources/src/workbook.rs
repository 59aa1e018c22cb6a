//! Workbooks (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) read as tables: each sheet's used
//! range as rows, for `backstop export` (calamine reads them; nothing of Excel is needed).
//!
//! Values are written as a spreadsheet shows them when it saves CSV: numbers without a
//! trailing `.0` when whole, booleans `TRUE`/`FALSE`, dates and times in ISO 8601
//! (`2026-12-07`, `2026-12-07T18:30:00`, durations as `PT..`), errors as Excel writes them
//! (`#DIV/0!`), empty cells as empty fields.

use std::io::{BufReader, Write};
use std::path::Path;

use calamine::{Data, Reader, Sheets};

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
pub struct Workbook(Sheets<BufReader<std::fs::File>>);

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

    /// Writes `sheet`'s used range into `out` as CSV (`crate::table_csv`'s rules); the rows
    /// written (its first row, usually its header, included).
    pub fn write_csv(&mut self, sheet: &str, out: &mut dyn Write) -> Result<u64, Error> {
        if !self.sheets().iter().any(|s| s == sheet) {
            return Err(Error::Invalid(format!(
                "the workbook has no sheet {sheet:?}"
            )));
        }
        let range = self
            .0
            .worksheet_range(sheet)
            .map_err(|e| Error::Invalid(format!("reading sheet {sheet}: {e}")))?;
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
