//! One table of a database server's dump as CSV (`restore --table T --to DIR`), for a
//! spreadsheet or another program: a header line of the column names, then one line a row
//! (RFC 4180: fields with a comma, a quote or a line break in quotes, quotes doubled), `NULL` as
//! an empty field and the empty string as `""`, so the two stay apart.
//!
//! PostgreSQL's rows are in its dumps as `COPY ... FROM stdin` text (the built-in export's own,
//! or what `pg_restore --data-only` writes from a `pg_dump` archive, without a server):
//! [`CopyCsv`] turns that block into CSV as it streams by.

use std::io::Write;

use crate::Error;
use crate::server::{LineSink, write_lines};

/// A writer that takes a PostgreSQL script and writes the rows of one `COPY ... FROM stdin`
/// block of it as CSV into `out`: the block after the built-in export's marker of `part`
/// (`TABLE DATA` of a schema and table) when given, else the first block.
pub(crate) struct CopyCsv<W: Write> {
    out: W,
    part: Option<(String, String)>,
    /// The marker was met (or none is needed).
    armed: bool,
    state: State,
    line: Vec<u8>,
    rows: u64,
}

#[derive(PartialEq, Eq)]
enum State {
    Before,
    Rows,
    Done,
}

impl<W: Write> CopyCsv<W> {
    pub(crate) fn new(out: W, part: Option<(String, String)>) -> Self {
        Self {
            armed: part.is_none(),
            out,
            part,
            state: State::Before,
            line: Vec::new(),
            rows: 0,
        }
    }

    fn copy_line(&mut self, line: Vec<u8>) -> std::io::Result<()> {
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        match self.state {
            State::Done => {}
            State::Before => {
                if let (Some(marker), Some((schema, table))) =
                    (text.strip_prefix(b"-- backstop: "), &self.part)
                {
                    self.armed = marker == format!("TABLE DATA; {schema}; {table}").as_bytes();
                } else if self.armed
                    && text.starts_with(b"COPY ")
                    && text.ends_with(b" FROM stdin;")
                {
                    let header = copy_columns(&String::from_utf8_lossy(text));
                    let fields: Vec<Option<Vec<u8>>> =
                        header.into_iter().map(|c| Some(c.into_bytes())).collect();
                    write_csv_row(&mut self.out, &fields)?;
                    self.state = State::Rows;
                }
            }
            State::Rows => {
                if text == b"\\." {
                    self.state = State::Done;
                } else {
                    write_csv_row(&mut self.out, &copy_fields(text))?;
                    self.rows += 1;
                }
            }
        }
        Ok(())
    }

    /// The rows written; an error if the script had no such block.
    pub(crate) fn finish(mut self) -> Result<u64, Error> {
        self.rest()
            .map_err(|e| Error::io("writing the CSV file", e))?;
        self.out
            .flush()
            .map_err(|e| Error::io("writing the CSV file", e))?;
        match self.state {
            State::Done => Ok(self.rows),
            State::Rows => Err(Error::Invalid(
                "the table's rows end early in the dump".into(),
            )),
            State::Before => Err(Error::Invalid(match &self.part {
                Some((s, t)) => format!("the dump has no rows of a table {s}.{t}"),
                None => "the dump has no rows of that table".into(),
            })),
        }
    }
}

impl<W: Write> LineSink for CopyCsv<W> {
    fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.line
    }

    fn line(&mut self, line: Vec<u8>) -> std::io::Result<()> {
        self.copy_line(line)
    }
}

impl<W: Write> Write for CopyCsv<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.state == State::Done {
            return Ok(buf.len());
        }
        write_lines(self, buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The column names of a `COPY name (a, "B c") FROM stdin;` line, unquoted.
fn copy_columns(line: &str) -> Vec<String> {
    let Some(open) = line.find(" (") else {
        return Vec::new();
    };
    let list = line[open + 2..]
        .strip_suffix(") FROM stdin;")
        .unwrap_or(&line[open + 2..]);
    let mut names = Vec::new();
    let mut name = String::new();
    let mut quoted = false;
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                name.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => {
                names.push(std::mem::take(&mut name));
                if chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            c => name.push(c),
        }
    }
    names.push(name);
    names
}

/// The fields of one row of `COPY` text: tab-separated, `\N` for NULL, backslash escapes.
fn copy_fields(line: &[u8]) -> Vec<Option<Vec<u8>>> {
    line.split(|&b| b == b'\t')
        .map(|field| {
            if field == b"\\N" {
                return None;
            }
            let mut out = Vec::with_capacity(field.len());
            let mut i = 0;
            while i < field.len() {
                let b = field[i];
                i += 1;
                if b != b'\\' || i == field.len() {
                    out.push(b);
                    continue;
                }
                let e = field[i];
                i += 1;
                match e {
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match field.get(i) {
                                Some(d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(v as u8);
                    }
                    b'x' => {
                        let hex = |b: u8| (b as char).to_digit(16);
                        let mut v = 0u32;
                        let mut n = 0;
                        while n < 2 {
                            match field.get(i).and_then(|&b| hex(b)) {
                                Some(d) => {
                                    v = v * 16 + d;
                                    i += 1;
                                    n += 1;
                                }
                                None => break,
                            }
                        }
                        match n {
                            0 => out.push(b'x'),
                            _ => out.push(v as u8),
                        }
                    }
                    other => out.push(other),
                }
            }
            Some(out)
        })
        .collect()
}

/// One CSV line: `None` as an empty field, the empty string as `""`, fields with a comma, a
/// quote, a line break or leading/trailing space quoted.
pub(crate) fn write_csv_row(
    out: &mut dyn Write,
    fields: &[Option<Vec<u8>>],
) -> std::io::Result<()> {
    let mut line = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        let Some(f) = f else { continue };
        let quote = f.is_empty()
            || f.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
            || f.first() == Some(&b' ')
            || f.last() == Some(&b' ');
        if quote {
            line.push(b'"');
            for &b in f {
                if b == b'"' {
                    line.push(b'"');
                }
                line.push(b);
            }
            line.push(b'"');
        } else {
            line.extend_from_slice(f);
        }
    }
    line.extend_from_slice(b"\r\n");
    out.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_becomes_csv_with_null_and_empty_apart() {
        let script = "SET x = 1;\n\
            -- backstop: TABLE DATA; public; other\nCOPY public.other (id) FROM stdin;\n9\n\\.\n\
            -- backstop: TABLE DATA; public; t\n\
            COPY public.t (id, \"Na,me\", \"say \"\"hi\"\"\", note) FROM stdin;\n\
            1\tplain\t\\N\t\n\
            2\ta, b\tshe said \"x\"\tline\\none\\ttab\\\\back\\x41\\101\n\
            \\.\nSELECT 1;\n";
        let mut out = Vec::new();
        let mut c = CopyCsv::new(&mut out, Some(("public".into(), "t".into())));
        for piece in script.as_bytes().chunks(5) {
            c.write_all(piece).unwrap();
        }
        assert_eq!(c.finish().unwrap(), 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,\"Na,me\",\"say \"\"hi\"\"\",note\r\n\
             1,plain,,\"\"\r\n\
             2,\"a, b\",\"she said \"\"x\"\"\",\"line\none\ttab\\backAA\"\r\n"
        );
        let c = CopyCsv::new(Vec::new(), Some(("public".into(), "nope".into())));
        let e = c.finish().unwrap_err().to_string();
        assert!(e.contains("public.nope"), "{e}");
    }

    #[test]
    fn without_a_marker_the_first_copy_block_is_taken() {
        let mut out = Vec::new();
        let mut c = CopyCsv::new(&mut out, None);
        c.write_all(b"COPY s.t (a) FROM stdin;\nx\n\\.\nCOPY s.u (b) FROM stdin;\ny\n\\.\n")
            .unwrap();
        assert_eq!(c.finish().unwrap(), 1);
        assert_eq!(out, b"a\r\nx\r\n");
    }
}
