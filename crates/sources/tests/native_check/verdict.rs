//! Verdicts: what SQLite's `PRAGMA quick_check` and the native check each say about a file.

use std::path::Path;

use backstop_sources::ScratchOptions;
use backstop_sources::sqlite::native_check_with;
use rusqlite::{Connection, OpenFlags};

#[derive(Debug, PartialEq)]
pub(crate) enum Sqlite {
    /// SQLite cannot open the file or read its schema: a capture would fail as well.
    Unreadable(String),
    Ok,
    NotOk(String),
}

pub(crate) fn sqlite_verdict(path: &Path) -> Sqlite {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(c) => c,
        Err(e) => return Sqlite::Unreadable(e.to_string()),
    };
    let schema = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    });
    if let Err(e) = schema {
        return Sqlite::Unreadable(e.to_string());
    }
    let lines: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    match lines {
        Ok(lines) if lines == ["ok"] => Sqlite::Ok,
        Ok(lines) => Sqlite::NotOk(lines.join("; ")),
        Err(e) => Sqlite::NotOk(format!("quick_check stopped: {e}")),
    }
}

#[derive(Debug)]
pub(crate) enum Native {
    Passed,
    Flagged(Vec<String>),
    LeftToSqlite,
    Failed(String),
    Panicked,
}

/// The native check's verdict, with its page summaries in memory; the same check with them in
/// a scratch file (what a database past `check_pages_in_memory` pages gets) must say exactly
/// the same.
pub(crate) fn native_verdict(path: &Path) -> Native {
    let in_memory = native_verdict_with(path, &ScratchOptions::default());
    let on_disk = ScratchOptions {
        dir: None,
        check_pages_in_memory: 0,
    };
    let in_file = native_verdict_with(path, &on_disk);
    assert_eq!(
        format!("{in_file:?}"),
        format!("{in_memory:?}"),
        "{}: the check with its summaries in a scratch file disagrees",
        path.display()
    );
    in_memory
}

fn native_verdict_with(path: &Path, scratch: &ScratchOptions) -> Native {
    match std::panic::catch_unwind(|| native_check_with(path, scratch)) {
        Ok(Ok(Some(problems))) if problems.is_empty() => Native::Passed,
        Ok(Ok(Some(problems))) => Native::Flagged(problems),
        Ok(Ok(None)) => Native::LeftToSqlite,
        Ok(Err(e)) => Native::Failed(e.to_string()),
        Err(_) => Native::Panicked,
    }
}

pub(crate) fn short(s: &str) -> String {
    match s.char_indices().nth(240) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}
