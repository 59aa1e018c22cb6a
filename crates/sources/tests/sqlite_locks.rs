//! Looking at a live database (the restore plan's preview) must not drop the locks this
//! process already holds on it: closing any file handle on a file releases every POSIX lock
//! the process holds on that file, SQLite's included. In the daemon, a capture's read
//! transaction and a restore preview of the same database run in one process.

#![cfg(unix)]

use std::path::Path;
use std::process::Command;

use backstop_sources::sqlite::{LiveState, inspect_live, open_read_only};

fn sqlite3(db: &Path, sql: &str) -> std::process::Output {
    Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell (scripts/test installs it)")
}

#[test]
fn inspecting_a_live_database_keeps_the_read_lock_of_a_transaction_in_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    // A rollback-journal database: a reader's SHARED lock on the file itself is what keeps
    // writers from changing pages under it.
    let o = sqlite3(
        &db,
        "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    );
    assert!(o.status.success(), "{o:?}");

    let reader = open_read_only(&db).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM t;")
        .unwrap();
    // Another process cannot commit while the read transaction is open.
    let write = || sqlite3(&db, "PRAGMA busy_timeout=0; INSERT INTO t VALUES (2);");
    let o = write();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("locked"),
        "the reader's lock holds before the preview: {o:?}"
    );

    match inspect_live(&db).unwrap() {
        LiveState::Database(_) => {}
        other => panic!("the live database reads as a database: {other:?}"),
    }
    let o = write();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("locked"),
        "after the preview, a writer still cannot commit under the open read transaction: {o:?}"
    );
    reader.execute_batch("COMMIT;").unwrap();
    drop(reader);
    assert!(write().status.success());
}
