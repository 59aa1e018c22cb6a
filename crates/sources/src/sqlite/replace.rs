//! Putting a database back into a live database through SQLite's backup API.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::BUSY_TIMEOUT;
use super::inspect::{open_image, sql_err};
use crate::Error;

/// Copies the database at `image` into the live database at `live` through SQLite's backup
/// API, in a single step: SQLite writes it as one transaction, so connections that have the
/// database open see the old content or the new, never a mix, and the live database's WAL and
/// shared-memory files are handled by SQLite (stale WAL content cannot leak in).
pub fn replace_live(live: &Path, image: &Path) -> Result<(), Error> {
    // Opened as immutable: only the image file itself is read, never a -wal beside it.
    let src = open_image(image)?;
    let mut dst = Connection::open_with_flags(live, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| sql_err(live, "cannot open the live database", e))?;
    dst.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_err(live, "busy timeout", e))?;
    // The backup API cannot change the page size of a database in WAL mode. When no other
    // connection has it open, leave WAL mode for the copy and return to it afterwards.
    let page_size = |c: &Connection| c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0));
    let mode: String = dst
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| sql_err(live, "reading the journal mode", e))?;
    let resize = mode == "wal"
        && page_size(&src).map_err(|e| sql_err(image, "page size", e))?
            != page_size(&dst).map_err(|e| sql_err(live, "page size", e))?;
    if resize {
        dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get::<_, String>(0))
            .ok()
            .filter(|m| m == "delete")
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "the live database {} is in WAL mode with another page size than the snapshot's, and SQLite can change that only while no other connection has it open: stop the application and restore again, or restore with --to into a new file",
                    live.display()
                ))
            })?;
    }
    let copied = copy_all(&src, &mut dst, live);
    if resize {
        let _ = dst.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0));
    }
    copied
}

/// Copies every page of `src` into `dst` in one step, waiting while other connections hold
/// locks.
fn copy_all(src: &Connection, dst: &mut Connection, live: &Path) -> Result<(), Error> {
    let backup = rusqlite::backup::Backup::new(src, dst)
        .map_err(|e| sql_err(live, "starting the copy", e))?;
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match backup
            .step(-1)
            .map_err(|e| sql_err(live, "copying pages", e))?
        {
            rusqlite::backup::StepResult::Done => return Ok(()),
            rusqlite::backup::StepResult::More => continue,
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "the live database {} stayed locked by other connections for {} s; nothing was changed",
                    live.display(),
                    BUSY_TIMEOUT.as_secs()
                )));
            }
        }
    }
}
