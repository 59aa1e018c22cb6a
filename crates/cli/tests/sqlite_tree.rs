//! End-to-end tests of SQLite databases met inside backed-up folders: each is captured as a
//! database (one read transaction, whatever its name) while an application writes to it, its
//! `-wal`, `-shm` and `-journal` files are not stored, and every restored copy is a consistent
//! database holding at least every commit made before its backup started.
//!
//! The writer is a thread of the test process committing through its own SQLite connection, with
//! two invariants a torn copy breaks: the ledger's row count and sum equal the counter row.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// Captures taken while a writer commits, per journal mode.
const CAPTURES: usize = 20;

/// A thread committing to a ledger database until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    /// Commits made so far (each one is durable to readers once counted here).
    committed: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Creates `db` in `journal_mode` with a ledger of some pages and starts committing to it:
    /// each commit inserts one to five rows (and every seventh deletes one) and updates the
    /// counter row to match. `autocheckpoint` 0 leaves every commit in the `-wal`.
    fn start(db: &Path, journal_mode: &str, autocheckpoint: u32) -> Self {
        let c = Connection::open(db).unwrap();
        c.busy_timeout(Duration::from_secs(30)).unwrap();
        c.pragma_update(None, "journal_mode", journal_mode).unwrap();
        c.execute_batch(&format!(
            "PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint={autocheckpoint};
             CREATE TABLE ledger(id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, note TEXT NOT NULL);
             CREATE INDEX ledger_amount ON ledger(amount);
             CREATE TABLE counter(n INTEGER NOT NULL, total INTEGER NOT NULL);
             INSERT INTO counter VALUES (0, 0);"
        ))
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let (s, k) = (stop.clone(), committed.clone());
        let handle = std::thread::spawn(move || write_until(c, &s, &k));
        // Some commits before the first capture.
        while committed.load(Ordering::SeqCst) < 50 {
            std::thread::sleep(Duration::from_millis(5));
        }
        Self {
            stop,
            committed,
            handle: Some(handle),
        }
    }

    fn committed(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("the writer thread panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn write_until(mut c: Connection, stop: &AtomicBool, committed: &AtomicU64) {
    let mut rng = Rng::new(7);
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        let k = 1 + rng.below(5);
        let mut sum = 0i64;
        for _ in 0..k {
            let amount = rng.below(10_000) as i64;
            sum += amount;
            let note = format!("commit {i} {}", "x".repeat(rng.below(200) as usize));
            tx.execute(
                "INSERT INTO ledger(amount, note) VALUES (?1, ?2)",
                rusqlite::params![amount, note],
            )
            .unwrap();
        }
        let mut n = k as i64;
        if i.is_multiple_of(7) {
            let gone: Option<i64> = tx
                .query_row(
                    "DELETE FROM ledger WHERE id = (SELECT min(id) FROM ledger) RETURNING amount",
                    [],
                    |r| r.get(0),
                )
                .ok();
            if let Some(a) = gone {
                n -= 1;
                sum -= a;
            }
        }
        tx.execute(
            "UPDATE counter SET n = n + ?1, total = total + ?2",
            rusqlite::params![n, sum],
        )
        .unwrap();
        tx.commit().unwrap();
        committed.store(i, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Opens a restored database without creating anything beside it.
fn open_restored(db: &Path) -> Connection {
    let uri = format!("file:{}?immutable=1", db.display());
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap()
}

/// Asserts that a restored database passes `integrity_check` and the writer's invariants, and
/// returns its commit count (the `commit N` of its newest row, 0 for none).
#[track_caller]
fn assert_consistent(db: &Path) -> u64 {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        assert!(
            !PathBuf::from(p).exists(),
            "{suffix} restored beside {}",
            db.display()
        );
    }
    let c = open_restored(db);
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", db.display());
    let (rows, sum): (i64, i64) = c
        .query_row(
            "SELECT count(*), coalesce(sum(amount), 0) FROM ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (n, total): (i64, i64) = c
        .query_row("SELECT n, total FROM counter", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (rows, sum),
        (n, total),
        "ledger against counter in {}",
        db.display()
    );
    let newest: Option<String> = c
        .query_row(
            "SELECT note FROM ledger ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok();
    newest
        .and_then(|n| n.split(' ').nth(1).and_then(|i| i.parse().ok()))
        .unwrap_or(0)
}

/// The items of a snapshot, by path: (type, the item).
fn items(sb: &Sandbox, id: &str) -> Vec<Value> {
    sb.json(&["show", id])["item_list"]
        .as_array()
        .expect("item_list")
        .clone()
}

#[track_caller]
fn item_type(items: &[Value], path: &str) -> String {
    items
        .iter()
        .find(|i| i["path"] == path)
        .unwrap_or_else(|| panic!("no item {path} in {items:#?}"))["type"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A folder `app/` with the writer's database `db_name` and a config folder.
fn app_folder(sb: &Sandbox, db_name: &str, journal_mode: &str) -> (PathBuf, Writer) {
    let app = sb.p("app");
    fs::create_dir_all(app.join("config")).unwrap();
    fs::write(app.join("config/settings.toml"), "currency = \"EUR\"\n").unwrap();
    fs::write(app.join("readme.txt"), "the shop's data\n").unwrap();
    let writer = Writer::start(&app.join(db_name), journal_mode, 1000);
    (app, writer)
}

/// Backs `paths` up `CAPTURES` times while the writer commits, then restores every snapshot and
/// checks its database at `db_item`: consistent, and holding every commit made before its
/// backup started.
fn captures_while_writing(sb: &Sandbox, paths: &[&Path], writer: &mut Writer, db_item: &str) {
    let mut taken = Vec::new();
    for _ in 0..CAPTURES {
        let before = writer.committed();
        let s = sb.backup(paths, &[]);
        assert_eq!(s["warnings"].as_array().map(Vec::len), Some(0), "{s:#}");
        taken.push((s["id"].as_str().unwrap().to_string(), before));
    }
    let total = writer.committed();
    writer.stop();
    assert!(
        total >= taken[0].1 + CAPTURES as u64,
        "the writer kept committing during the captures"
    );
    let mut seen = Vec::new();
    for (i, (id, before)) in taken.iter().enumerate() {
        let list = items(sb, id);
        assert_eq!(item_type(&list, db_item), "sqlite");
        for suffix in ["-wal", "-shm", "-journal"] {
            let companion = format!("{db_item}{suffix}");
            assert!(
                !list.iter().any(|i| i["path"] == companion.as_str()),
                "{companion} was stored"
            );
        }
        let out = sb.p(&format!("out-{i}"));
        sb.restore(id, &out);
        let commits = assert_consistent(&out.join(db_item));
        assert!(
            commits >= *before,
            "snapshot {i} holds {commits} commits, {before} were made before its backup began"
        );
        seen.push(commits);
    }
    seen.dedup();
    assert!(
        seen.len() >= CAPTURES / 2,
        "captures saw few states: {seen:?}"
    );
}

#[test]
fn wal_database_in_a_folder_is_captured_consistently_while_written() {
    let sb = Sandbox::plain();
    let (app, mut writer) = app_folder(&sb, "app.db", "wal");
    captures_while_writing(&sb, &[&app], &mut writer, "app/app.db");

    // The other files come back as they are.
    let out = sb.p("out-files");
    sb.restore("latest", &out);
    assert_same_tree(&app.join("config"), &out.join("app/config"));
    assert_eq!(
        fs::read(out.join("app/readme.txt")).unwrap(),
        fs::read(app.join("readme.txt")).unwrap()
    );

    // The restore drill checks the database inside the tree like a database snapshot.
    let drill = sb.json(&["verify", "--restore-test", "--latest"]);
    let rec = &drill[0];
    assert_eq!(rec["passed"], true, "{rec:#}");
    let checks = rec["checks"].as_array().unwrap();
    let db = checks
        .iter()
        .find(|c| c["name"] == "database app/app.db")
        .unwrap_or_else(|| panic!("no database check in {rec:#}"));
    for part in ["integrity_check: ok", "foreign_key_check", "row counts"] {
        assert!(
            db["detail"].as_str().unwrap().contains(part),
            "{part} in {db:#}"
        );
    }
}

#[test]
fn rollback_journal_database_with_an_unusual_name_is_captured_consistently_while_written() {
    let sb = Sandbox::plain();
    // No extension: only the header says it is a database.
    let (app, mut writer) = app_folder(&sb, "stock", "delete");
    captures_while_writing(&sb, &[&app], &mut writer, "app/stock");
}

#[test]
fn a_database_and_a_folder_given_together_keep_the_commits_in_the_wal() {
    let sb = Sandbox::plain();
    let db = sb.p("app.db");
    let config = sb.p("config");
    fs::create_dir(&config).unwrap();
    fs::write(config.join("printer.ini"), "[till]\nport=9100\n").unwrap();
    // No checkpoints: every commit stays in app.db-wal, which a byte copy of app.db misses.
    let mut writer = Writer::start(&db, "wal", 0);
    assert!(fs::metadata(sb.p("app.db-wal")).unwrap().len() > 0);
    let mut taken = Vec::new();
    for _ in 0..5 {
        let before = writer.committed();
        let s = sb.backup(&[&db, &config], &[]);
        taken.push((s["id"].as_str().unwrap().to_string(), before));
    }
    writer.stop();
    for (i, (id, before)) in taken.iter().enumerate() {
        assert_eq!(item_type(&items(&sb, id), "app.db"), "sqlite");
        let out = sb.p(&format!("out-{i}"));
        sb.restore(id, &out);
        let commits = assert_consistent(&out.join("app.db"));
        assert!(
            commits >= *before,
            "{commits} commits, {before} made before"
        );
        assert_same_tree(&config, &out.join("config"));
    }
}

#[test]
fn a_file_that_only_looks_like_sqlite_is_stored_byte_for_byte_with_a_warning() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir(&data).unwrap();
    let mut fake = b"SQLite format 3\0".to_vec();
    fake.extend(random_bytes(5, 20_000));
    fs::write(data.join("fake.db"), &fake).unwrap();
    fs::write(data.join("fake.db-wal"), random_bytes(6, 3000)).unwrap();
    fs::write(data.join("other.txt"), "other\n").unwrap();

    let mut c = sb.cmd();
    c.args(["--json", "backup"]).arg(&data);
    let o = run(c).code(3);
    let s = o.json();
    let warnings = s["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{s:#}");
    let w = warnings[0].as_str().unwrap();
    assert!(w.contains("fake.db") && w.contains("byte for byte"), "{w}");
    let list = items(&sb, s["id"].as_str().unwrap());
    assert_eq!(item_type(&list, "data/fake.db"), "file");
    assert_eq!(item_type(&list, "data/fake.db-wal"), "file");

    let out = sb.p("out");
    sb.restore("latest", &out);
    assert_same_tree(&data, &out.join("data"));
}

#[test]
fn restoring_over_a_database_replaces_its_stale_wal_only_with_overwrite() {
    let sb = Sandbox::plain();
    let app = sb.p("app");
    fs::create_dir(&app).unwrap();
    let mut writer = Writer::start(&app.join("app.db"), "wal", 1000);
    writer.stop();
    let s = sb.backup(&[&app], &[]);
    let out = sb.p("out");
    sb.restore(s["id"].as_str().unwrap(), &out);
    let commits = assert_consistent(&out.join("app/app.db"));
    // A WAL left at the destination (by a database deleted since) would be replayed into the
    // restored database: it counts as a file the restore replaces.
    fs::remove_file(out.join("app/app.db")).unwrap();
    let stale = out.join("app/app.db-wal");
    fs::write(&stale, random_bytes(9, 8192)).unwrap();

    let mut c = sb.cmd();
    c.args(["restore", "latest", "--to"]).arg(&out);
    let refused = run(c);
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(
        refused.stderr.contains("--overwrite") && refused.stderr.contains("app.db-wal"),
        "{refused:#?}"
    );
    assert!(stale.exists(), "nothing is removed without --overwrite");
    assert!(!out.join("app/app.db").exists());

    let mut c = sb.cmd();
    c.args(["restore", "latest", "--overwrite", "--to"])
        .arg(&out);
    run(c).ok();
    assert_eq!(assert_consistent(&out.join("app/app.db")), commits);
}

#[test]
fn as_file_keeps_a_database_in_a_folder_byte_for_byte() {
    let sb = Sandbox::plain();
    let app = sb.p("app");
    fs::create_dir(&app).unwrap();
    let mut writer = Writer::start(&app.join("app.db"), "delete", 1000);
    writer.stop();
    let s = sb.backup(&[&app], &["--as-file"]);
    assert_eq!(
        item_type(&items(&sb, s["id"].as_str().unwrap()), "app/app.db"),
        "file"
    );
}

#[test]
fn a_damaged_database_in_a_folder_is_kept_as_it_is_and_fails_its_drill() {
    let sb = Sandbox::plain();
    let data = sb.p("data");
    fs::create_dir(&data).unwrap();
    let db = data.join("shop.db");
    // Three pages in the middle of chinook overwritten with noise: SQLite still opens it.
    let mut bytes = fs::read(testdata("sqlite/chinook.sqlite")).unwrap();
    bytes[100 * 4096..103 * 4096].copy_from_slice(&random_bytes(3, 3 * 4096));
    fs::write(&db, &bytes).unwrap();

    let mut c = sb.cmd();
    c.args(["--json", "backup"]).arg(&data);
    let o = run(c).code(3);
    let s = o.json();
    let w = s["warnings"][0].as_str().unwrap();
    assert!(
        w.contains("data/shop.db") && w.contains("integrity check"),
        "{s:#}"
    );
    let list = items(&sb, s["id"].as_str().unwrap());
    let item = list.iter().find(|i| i["path"] == "data/shop.db").unwrap();
    assert_eq!(item["type"], "sqlite");
    assert_ne!(item["database"]["quick_check"], "ok", "{item:#}");

    // Restored as captured: the data there was, byte for byte.
    let out = sb.p("out");
    sb.restore("latest", &out);
    assert!(fs::read(out.join("data/shop.db")).unwrap() == bytes);

    // The drill says what is wrong with it.
    let mut c = sb.cmd();
    c.args(["--json", "verify", "--restore-test", "--latest"]);
    let o = run(c).code(4);
    let rec = &o.json()[0];
    assert_eq!(rec["passed"], false, "{rec:#}");
    let check = rec["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "database data/shop.db")
        .unwrap_or_else(|| panic!("{rec:#}"));
    assert_eq!(check["passed"], false, "{check:#}");
}
