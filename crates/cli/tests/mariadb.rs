//! MariaDB sources (`kind = "mariadb"`) against the server on this machine (127.0.0.1:3306,
//! user root): Chinook (../shared/testdata) with a view, a trigger, a procedure and a table of
//! awkward types, dumped by `mariadb-dump` into the repository and loaded into a new database,
//! table for table the same; one table alone; a drill; writes during the backup; and the
//! failures a user meets (a database that does not exist, a wrong password, a dump tool that
//! fails half way, a password in the URL), each leaving no snapshot. Each test makes and drops
//! databases of its own names.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// The mariadb client as root on the server, batch output without column names.
fn client() -> Command {
    let mut c = Command::new("mariadb");
    c.args([
        "--host=127.0.0.1",
        "--port=3306",
        "--user=root",
        "--batch",
        "--skip-column-names",
    ]);
    c
}

/// `sql` run in `db` (`""`: on the server); its output.
fn sql(db: &str, sql: &str) -> String {
    let mut c = client();
    if !db.is_empty() {
        c.arg(format!("--database={db}"));
    }
    let o = c.args(["-e", sql]).output().expect("running mariadb");
    assert!(
        o.status.success(),
        "mariadb {db} {sql:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A hold on the MariaDB server on 127.0.0.1:3306, machine-wide (tests run as threads under
/// `cargo test` and as processes under nextest): shared by the tests that use it, exclusive for
/// the in-place restore, whose switch makes the whole server read-only for a moment. Held until
/// dropped; declared first in a test, it is dropped last.
fn server_hold(exclusive: bool) -> std::fs::File {
    let path = std::env::temp_dir().join("backstop-test-mariadb-server.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    match exclusive {
        true => file.lock(),
        false => file.lock_shared(),
    }
    .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    file
}

/// Databases (and users) made by a test, dropped when it ends however it ends.
struct Databases(Vec<String>);

impl Databases {
    /// A name no other test of this run uses (`cargo test` runs them as threads of one
    /// process).
    fn name(&mut self, what: &str) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = format!(
            "bs_{what}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.0.push(n.clone());
        n
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = client()
                .args([
                    "-e",
                    &format!("DROP DATABASE IF EXISTS `{n}`; DROP USER IF EXISTS '{n}'@'%'"),
                ])
                .output();
        }
    }
}

/// A new database `name` with Chinook's schema and data, and what a real application adds: a
/// view, a trigger, a procedure, a function, a partitioned table, and a table of the types a
/// dump can get wrong.
fn load_chinook(name: &str) {
    let script = fs::read_to_string(testdata("mariadb/chinook_mysql.sql"))
        .unwrap()
        .replace("`Chinook`", &format!("`{name}`"));
    let mut c = client();
    c.stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    sql(
        name,
        "CREATE VIEW album_artist AS SELECT a.Title, r.Name FROM Album a \
           JOIN Artist r ON r.ArtistId = a.ArtistId; \
         CREATE TRIGGER genre_trim BEFORE INSERT ON Genre FOR EACH ROW SET NEW.Name = TRIM(NEW.Name); \
         CREATE PROCEDURE albums() SELECT COUNT(*) FROM Album; \
         CREATE FUNCTION album_count(artist INT) RETURNS INT READS SQL DATA \
           RETURN (SELECT COUNT(*) FROM Album WHERE ArtistId = artist); \
         CREATE TABLE sales_by_year (y INT NOT NULL, id INT NOT NULL, amount DECIMAL(8, 2), \
           PRIMARY KEY (y, id)) PARTITION BY RANGE (y) (PARTITION p2024 VALUES LESS THAN (2025), \
           PARTITION p2025 VALUES LESS THAN (2026), PARTITION later VALUES LESS THAN MAXVALUE); \
         INSERT INTO sales_by_year VALUES (2024, 1, 9.5), (2025, 2, 3), (2030, 3, 1); \
         CREATE TABLE odd (id INT PRIMARY KEY AUTO_INCREMENT, b BLOB, l TEXT CHARACTER SET latin1, \
           j JSON, e ENUM('small', 'large'), s SET('x', 'y'), d DECIMAL(12, 4), \
           ts TIMESTAMP(6) NULL, bits BIT(5), g POINT NULL) ENGINE=InnoDB; \
         INSERT INTO odd (b, l, j, e, s, d, ts, bits, g) VALUES \
           (0x00FF0A0D275C3B28, CONCAT('caf', CHAR(0xE9), ' ''quoted'' (paren); \\\\ back'), \
            '{\"a\": [1, \"two\"]}', 'large', 'x,y', -12.3456, '2026-12-07 10:00:00.123456', \
            b'10101', POINT(1.5, -2)), \
           (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
           ('', '', '[]', 'small', '', 0, '1970-01-01 00:00:01', b'0', NULL)",
    );
}

/// Every table of `db` (base and system-versioned) with its row count and checksum (`CHECKSUM
/// TABLE ... EXTENDED`, which reads every row).
fn tables(db: &str) -> Vec<String> {
    let names = sql(
        db,
        "SELECT table_name, table_type FROM information_schema.tables \
         WHERE table_schema = DATABASE() \
         AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY table_name",
    );
    names
        .lines()
        .map(|line| {
            let (t, kind) = line.split_once('\t').unwrap();
            let rows = sql(db, &format!("SELECT COUNT(*) FROM `{t}`"));
            // A system-versioned table's checksum covers its row times, which a restore sets
            // anew: its current rows are compared as they read.
            let sum = match kind {
                "SYSTEM VERSIONED" => sql(db, &format!("SELECT * FROM `{t}` ORDER BY 1")),
                _ => sql(db, &format!("CHECKSUM TABLE `{t}` EXTENDED"))
                    .rsplit('\t')
                    .next()
                    .unwrap()
                    .to_owned(),
            };
            format!("{t} {rows} {sum}")
        })
        .collect()
}

/// backstop.toml with one MariaDB source `shop` on `db`, plus `extra` lines in its section.
fn config(sb: &Sandbox, db: &str, extra: &str) -> std::path::PathBuf {
    config_as(sb, db, "root", extra)
}

fn config_as(sb: &Sandbox, db: &str, user: &str, extra: &str) -> std::path::PathBuf {
    let p = sb.p("backstop.toml");
    fs::write(
        &p,
        format!(
            "repository = \"repo\"\n[sources.shop]\nkind = \"mariadb\"\n\
             url = \"mysql://{user}@127.0.0.1:3306/{db}\"\n{extra}"
        ),
    )
    .unwrap();
    p
}

/// `restore latest --source shop --to-database DB ARGS`.
fn restore_into(sb: &Sandbox, cfg: &Path, db: &str, args: &[&str]) -> Out {
    let mut c = with_config(
        sb,
        cfg,
        &["restore", "latest", "--source", "shop", "--to-database", db],
    );
    c.args(args);
    run(c)
}

/// Waits until no scratch database `backstop_WHAT_*` is left on the server: the test's own is
/// dropped, and another test's (tests run at once) is for a moment only.
fn assert_no_scratch_left(what: &str) {
    let start = std::time::Instant::now();
    let query = format!(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME LIKE 'backstop\\_{what}\\_%'"
    );
    while sql("", &query) != "0" {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "a scratch database backstop_{what}_* is left"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `backup --source shop`: the new snapshot's id.
fn backed_up(sb: &Sandbox, cfg: &Path) -> String {
    run(with_config(
        sb,
        cfg,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json()["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot id"))
        .to_owned()
}

fn with_config(sb: &Sandbox, cfg: &Path, args: &[&str]) -> Command {
    let mut c = sb.bare();
    c.arg("--config").arg(cfg).args(args);
    c
}

/// Chinook dumped into the repository and loaded into a new database: the snapshot records
/// what the dump was taken from (versions, size, each table's rows, the schema's fingerprint,
/// the collation); every table comes back with the same rows (counts and checksums), with the
/// view, trigger and procedure; a drill passes and leaves no scratch database; one table
/// restores alone; a dry run creates nothing; a name that exists is refused and that database
/// is left alone.
#[test]
fn chinook_comes_back_in_a_new_database_table_for_table() {
    chinook_comes_back("dump");
}

/// The same with the built-in export (no MariaDB tool used to take it), and more objects: a
/// sequence, generated and invisible columns, a view over a view, a system-versioned table (its
/// current rows). What it writes loads into a
/// database that `mariadb-dump` sees exactly as it sees the source; with `method = "auto"` and
/// no dump tool installed, the built-in export is what a backup uses, and it says so.
#[test]
fn chinook_from_the_builtin_export_is_what_mariadb_dump_sees() {
    chinook_comes_back("builtin");
}

fn chinook_comes_back(method: &str) {
    let _server = server_hold(false);
    let mut dbs = Databases(Vec::new());
    let source = dbs.name(&format!("chinook_{method}"));
    load_chinook(&source);
    if method == "builtin" {
        sql(
            &source,
            "CREATE SEQUENCE invoice_no START WITH 5000; SELECT NEXTVAL(invoice_no); \
             CREATE TABLE priced (id INT PRIMARY KEY, net DECIMAL(10, 2), \
               gross DECIMAL(10, 2) AS (net * 1.2) VIRTUAL, \
               taxed DECIMAL(10, 2) AS (net * 0.2) PERSISTENT, \
               note VARCHAR(20) INVISIBLE DEFAULT 'n'); \
             INSERT INTO priced (id, net, note) VALUES (1, 10, 'first'), (2, 2.5, DEFAULT); \
             CREATE VIEW rock_albums AS SELECT * FROM album_artist WHERE Name LIKE 'A%'; \
             CREATE TABLE price_history (id INT PRIMARY KEY, price DECIMAL(8, 2)) \
               WITH SYSTEM VERSIONING; \
             INSERT INTO price_history VALUES (1, 9.99), (2, 0.99); \
             UPDATE price_history SET price = 1.29 WHERE id = 2",
        );
    }
    let sb = Sandbox::plain();
    let cfg = config(&sb, &source, &format!("method = \"{method}\"\n"));
    let made = run(with_config(
        &sb,
        &cfg,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    assert_eq!(made["source_kind"], "mariadb", "{made:#}");
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    let item = &shown["item_list"][0];
    assert_eq!(item["path"], format!("{source}.sql"), "{shown:#}");
    let server = &item["server"];
    assert_eq!(server["engine"], "mariadb", "{shown:#}");
    assert_eq!(server["database"], source.as_str());
    assert_eq!(server["method"], method, "{shown:#}");
    let tool = server["tool"].as_str().unwrap();
    match method {
        "dump" => assert!(tool.contains("MariaDB"), "{tool}"),
        _ => assert!(tool.contains("built-in export"), "{tool}"),
    }
    assert!(
        server["server_version"]
            .as_str()
            .unwrap()
            .contains("MariaDB")
    );
    assert!(server["size_bytes"].as_u64().unwrap() > 100 << 10);
    assert_eq!(server["schema_fingerprint"].as_str().unwrap().len(), 32);
    assert!(server["collation"].as_str().unwrap().starts_with("utf8mb4"));
    let recorded: Vec<(String, u64)> = server["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    let before = tables(&source);
    assert_eq!(recorded.len(), before.len(), "{recorded:?}");
    assert!(recorded.len() >= 12, "{recorded:?}");
    for (name, rows) in &recorded {
        assert!(
            before
                .iter()
                .any(|t| t.starts_with(&format!("{name} {rows} "))),
            "{name} {rows} in {before:?}"
        );
    }

    // A restore drill loads it into a scratch database on the server, compares every table's
    // rows and the schema with the record, and drops it again.
    let drilled = run(with_config(
        &sb,
        &cfg,
        &["--json", "verify", "--restore-test", "--latest"],
    ))
    .ok()
    .json();
    let record = &drilled[0];
    assert_eq!(record["passed"], true, "{drilled:#}");
    let checks: Vec<&str> = record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        ["restore", "rows", "schema", "checksums"],
        "{drilled:#}"
    );
    // Every table's rows read back from the scratch database, written as the dump writes rows,
    // are the dump's.
    let sums = &record["checks"][3]["detail"];
    assert!(
        sums.as_str()
            .unwrap()
            .contains(&format!("the rows of all {} tables", recorded.len())),
        "{drilled:#}"
    );
    let scratch = scratch_database(record);
    assert_eq!(
        sql(
            "",
            &format!(
                "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{scratch}'"
            )
        ),
        "0",
        "the scratch database is dropped"
    );
    let status = run(with_config(&sb, &cfg, &["--json", "status"]))
        .ok()
        .json();
    assert_eq!(status_source(&status, "shop")["state"], "ok", "{status:#}");

    let restored = dbs.name("restored");
    let dry = restore_into(&sb, &cfg, &restored, &["--dry-run"]).ok();
    assert!(dry.stdout.contains("would restore"), "{dry:#?}");
    assert!(
        dry.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["InvoiceLine", "2240", "2240", "same"]),
        "the plan lists each table with its rows in the snapshot and now: {dry:#?}"
    );
    assert!(
        dry.stdout
            .contains(&format!("schema: the same as {source}'s now")),
        "{dry:#?}"
    );
    assert_eq!(
        sql(
            "",
            &format!(
                "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{restored}'"
            )
        ),
        "0",
        "a dry run creates nothing"
    );
    restore_into(&sb, &cfg, &restored, &[]).ok();
    assert_eq!(tables(&restored), before);
    if method == "builtin" {
        // Every object, every row, as mariadb-dump sees them (the database's name aside).
        assert_eq!(
            reference_dump(&restored).replace(&restored, &source),
            reference_dump(&source)
        );
        assert_eq!(sql(&restored, "SELECT NEXTVAL(invoice_no)"), "6000");
        assert_eq!(
            sql(
                &restored,
                "SELECT id, gross, taxed, note FROM priced ORDER BY id"
            ),
            "1\t12.00\t2.00\tfirst\n2\t3.00\t0.50\tn"
        );
    }
    assert_eq!(
        sql(
            &restored,
            "SELECT HEX(b), HEX(l), j, e, s, d, ts, bits + 0, ST_AsText(g) FROM odd ORDER BY id"
        ),
        sql(
            &source,
            "SELECT HEX(b), HEX(l), j, e, s, d, ts, bits + 0, ST_AsText(g) FROM odd ORDER BY id"
        ),
    );
    assert_eq!(
        sql(&restored, "SELECT COUNT(*) FROM album_artist"),
        sql(&source, "SELECT COUNT(*) FROM Album")
    );
    sql(
        &restored,
        "INSERT INTO Genre (GenreId, Name) VALUES (99, '  Polka  ')",
    );
    assert_eq!(
        sql(&restored, "SELECT Name FROM Genre WHERE GenreId = 99"),
        "Polka"
    );
    assert_eq!(sql(&restored, "CALL albums()"), "347");
    assert_eq!(
        sql(&restored, "SELECT album_count(90)"),
        sql(&source, "SELECT album_count(90)")
    );
    assert_eq!(
        sql(
            "",
            &format!(
                "SELECT GROUP_CONCAT(PARTITION_NAME ORDER BY PARTITION_ORDINAL_POSITION) FROM \
                 information_schema.PARTITIONS WHERE TABLE_SCHEMA = '{restored}' AND \
                 TABLE_NAME = 'sales_by_year'"
            )
        ),
        "p2024,p2025,later"
    );
    assert_eq!(
        sql(
            "",
            &format!(
                "SELECT DEFAULT_COLLATION_NAME FROM information_schema.schemata WHERE schema_name = '{restored}'"
            )
        ),
        server["collation"].as_str().unwrap()
    );

    // One table alone: its rows, without the foreign key to a table not restored, and no
    // other table.
    let one = dbs.name("one_table");
    restore_into(&sb, &cfg, &one, &["--table", "Album"]).ok();
    assert_eq!(
        tables(&one),
        [before
            .iter()
            .find(|t| t.starts_with("Album "))
            .unwrap()
            .clone()]
    );
    let o = restore_into(&sb, &cfg, &dbs.name("none"), &["--table", "Nope"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("no table Nope"), "{o:#?}");
    assert!(o.stderr.contains("dropped again"), "{o:#?}");

    // Into a database that exists: refused by the server, and that database stays as it was.
    let o = restore_into(&sb, &cfg, &source, &[]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("database exists"), "{o:#?}");
    assert_eq!(tables(&source), before);
    // One table as CSV (from a scratch database that is dropped again): a header, then every
    // row, values in quotes (a title with a comma stays one field), NULL as nothing.
    sql(
        &source,
        "INSERT INTO Album (AlbumId, Title, ArtistId) VALUES (9001, 'Live, \"Loud\"', 1); \
         INSERT INTO Customer (CustomerId, FirstName, LastName, Email) VALUES \
         (9001, 'Ann', '', 'ann@example.com')",
    );
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    let dir = sb.p("csv");
    let mut c = with_config(
        &sb,
        &cfg,
        &["restore", "latest", "--source", "shop", "--table", "Album"],
    );
    c.args(["--table", "Customer", "--to"]).arg(&dir);
    run(c).ok();
    let album = fs::read_to_string(dir.join("Album.csv")).unwrap();
    let lines: Vec<&str> = album.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "AlbumId,Title,ArtistId");
    assert_eq!(
        lines.len() as u64 - 1,
        sql(&source, "SELECT COUNT(*) FROM Album")
            .parse::<u64>()
            .unwrap()
    );
    assert!(
        lines.contains(&"\"9001\",\"Live, \"\"Loud\"\"\",\"1\""),
        "{album}"
    );
    let customer = fs::read_to_string(dir.join("Customer.csv")).unwrap();
    // Company and the others are NULL (nothing), LastName the empty string ("").
    assert!(
        customer.contains("\"9001\",\"Ann\",\"\",,,,,,,,,\"ann@example.com\","),
        "{customer}"
    );
    assert_no_scratch_left("csv");
    // A file that exists is kept unless --overwrite.
    let mut c = with_config(
        &sb,
        &cfg,
        &[
            "restore", "latest", "--source", "shop", "--table", "Album", "--to",
        ],
    );
    c.arg(&dir);
    let o = run(c).code(2);
    assert!(o.stderr.contains("--overwrite"), "{o:#?}");

    if method == "builtin" {
        // No dump tool on the PATH (only the client, which restores): `auto` exports it
        // itself, and the snapshot says why.
        let bin = sb.p("client-only");
        fs::create_dir(&bin).unwrap();
        let client = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join("mariadb"))
            .find(|p| p.is_file())
            .unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(client, bin.join("mariadb")).unwrap();
        let auto = config(&sb, &source, "");
        let mut c = with_config(&sb, &auto, &["--json", "backup", "--source", "shop"]);
        c.env("PATH", &bin);
        let made = run(c).ok().json();
        let snapshot = made["id"].as_str().unwrap().to_owned();
        let shown = run(with_config(&sb, &auto, &["--json", "show", &snapshot]))
            .ok()
            .json();
        assert_eq!(
            shown["item_list"][0]["server"]["method"], "builtin",
            "{shown:#}"
        );
        let paths = shown["paths"].to_string();
        assert!(
            paths.contains("built-in export") && paths.contains("mariadb-dump"),
            "{shown:#}"
        );
        let again = dbs.name("auto_restored");
        let mut c = with_config(
            &sb,
            &auto,
            &[
                "restore",
                &snapshot,
                "--source",
                "shop",
                "--to-database",
                &again,
            ],
        );
        c.env("PATH", &bin);
        run(c).ok();
        assert_eq!(tables(&again), tables(&source));
    }
}

/// `mariadb-dump` of `db`: every object and row, without the lines that name the database.
fn reference_dump(db: &str) -> String {
    let o = Command::new("mariadb-dump")
        .args([
            "--host=127.0.0.1",
            "--port=3306",
            "--user=root",
            "--single-transaction",
            "--routines",
            "--triggers",
            "--hex-blob",
            "--skip-dump-date",
            db,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("Database: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A database that does not exist, a wrong password, a dump tool that fails half way, a
/// password in the URL: each is said plainly and leaves no snapshot; the right password in
/// `password_file` works.
#[test]
fn mariadb_failures_say_why_and_leave_no_snapshot() {
    let _server = server_hold(false);
    let sb = Sandbox::plain();
    let cfg = config(&sb, "bs_no_such_database", "");
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("bs_no_such_database"), "{o:#?}");

    let mut dbs = Databases(Vec::new());
    let db = dbs.name("pw");
    sql(
        "",
        &format!(
            "CREATE DATABASE `{db}`; CREATE USER '{db}'@'%' IDENTIFIED BY 'right horse'; \
             GRANT ALL ON `{db}%`.* TO '{db}'@'%'; \
             CREATE TABLE `{db}`.t (id INT PRIMARY KEY); INSERT INTO `{db}`.t VALUES (1), (2); \
             CREATE VIEW `{db}`.v AS SELECT id FROM `{db}`.t"
        ),
    );
    sql(
        &db,
        "CREATE TRIGGER doubled BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id * 2",
    );
    fs::write(sb.p("pw"), "wrong staple\n").unwrap();
    let cfg = config_as(&sb, &db, &db, "password_file = \"pw\"\n");
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("Access denied"), "{o:#?}");
    assert!(!o.stderr.contains("wrong staple"), "{o:#?}");
    assert!(sb.snapshots().is_empty());
    fs::write(sb.p("pw"), "right horse\n").unwrap();
    let made = run(with_config(
        &sb,
        &cfg,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    assert_eq!(made["source_kind"], "mariadb", "{made:#}");
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    assert_eq!(
        shown["item_list"][0]["server"]["tables"][0]["rows"], 2,
        "{shown:#}"
    );
    // The view and the trigger were made by root: restored by the database's own user, who may
    // not name another definer, they become that user's.
    let copy = format!("{db}_copy");
    dbs.0.push(copy.clone());
    restore_into(&sb, &cfg, &copy, &[]).ok();
    sql(&copy, "INSERT INTO t VALUES (5)");
    assert_eq!(
        sql(&copy, "SELECT GROUP_CONCAT(id ORDER BY id) FROM v"),
        "1,2,10"
    );
    assert_eq!(
        sql(
            "",
            &format!(
                "SELECT DEFINER FROM information_schema.triggers WHERE trigger_schema = '{copy}'"
            )
        ),
        format!("{db}@%")
    );

    // A dump tool that writes part of a dump and fails: no snapshot.
    let bin = sb.p("broken-tools");
    fs::create_dir(&bin).unwrap();
    fs::write(
        bin.join("mariadb-dump"),
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB'; exit 0; fi\n\
         echo 'CREATE TABLE `t` ('\necho 'INSERT INTO `t` VALUES (1);'\n\
         echo 'mariadb-dump: Error 2013: Lost connection to server during query' >&2\nexit 2\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(bin.join("mariadb-dump"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = sb.snapshots().len();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut c = with_config(&sb, &cfg, &["backup", "--source", "shop"]);
    c.env("PATH", path);
    let o = run(c);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("Lost connection"), "{o:#?}");
    assert_eq!(sb.snapshots().len(), before);

    // The built-in export's own client: the same refusals, in the server's words.
    let cfg = config(&sb, "bs_no_such_database", "method = \"builtin\"\n");
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(
        o.stderr.contains("Unknown database") && o.stderr.contains("bs_no_such_database"),
        "{o:#?}"
    );
    fs::write(sb.p("pw"), "wrong staple\n").unwrap();
    let cfg = config_as(
        &sb,
        &db,
        &db,
        "password_file = \"pw\"\nmethod = \"builtin\"\n",
    );
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("Access denied"), "{o:#?}");
    assert!(!o.stderr.contains("wrong staple"), "{o:#?}");
    fs::write(sb.p("pw"), "right horse\n").unwrap();
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    assert_eq!(shown["item_list"][0]["server"]["method"], "builtin");
    assert_eq!(
        shown["item_list"][0]["server"]["tables"][0]["rows"], 2,
        "{shown:#}"
    );
    // A server that is not there.
    let down = sb.p("down.toml");
    fs::write(
        &down,
        "repository = \"repo\"\n[sources.shop]\nkind = \"mariadb\"\n\
         url = \"mysql://root@127.0.0.1:1/x\"\nmethod = \"builtin\"\n",
    )
    .unwrap();
    let o = run(with_config(&sb, &down, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("127.0.0.1:1"), "{o:#?}");

    fs::write(
        sb.p("backstop.toml"),
        "repository = \"repo\"\n[sources.shop]\nkind = \"mysql\"\n\
         url = \"mysql://root:hunter2@127.0.0.1/x\"\n",
    )
    .unwrap();
    let o = run(with_config(
        &sb,
        &sb.p("backstop.toml"),
        &["backup", "--source", "shop"],
    ))
    .code(2);
    assert!(o.stderr.contains("password_file"), "{o:#?}");
    assert!(!o.stderr.contains("hunter2"), "{o:#?}");
}

/// Invoices written while the backup runs, each with its line in one transaction: the dump is
/// one snapshot of the database (no invoice without its line), and the rows the snapshot
/// records are the dump's, so the restored database has exactly them in every table.
#[test]
fn the_dump_is_one_snapshot_under_writes() {
    one_snapshot_under_writes("dump");
}

#[test]
fn the_builtin_export_is_one_snapshot_under_writes() {
    one_snapshot_under_writes("builtin");
}

fn one_snapshot_under_writes(method: &str) {
    let _server = server_hold(false);
    let mut dbs = Databases(Vec::new());
    let source = dbs.name(&format!("busy_{method}"));
    load_chinook(&source);
    let sb = Sandbox::plain();
    let cfg = config(&sb, &source, &format!("method = \"{method}\"\n"));
    let writes: String = (0..4000)
        .map(|i| {
            let id = 100_000 + i;
            format!(
                "START TRANSACTION; \
                 INSERT INTO Invoice (InvoiceId, CustomerId, InvoiceDate, Total) VALUES ({id}, 1, NOW(), 0.99); \
                 INSERT INTO InvoiceLine (InvoiceLineId, InvoiceId, TrackId, UnitPrice, Quantity) VALUES ({id}, {id}, 1, 0.99, 1); \
                 COMMIT;\n"
            )
        })
        .collect();
    let mut c = client();
    c.arg(format!("--database={source}"))
        .stdin(std::process::Stdio::piped());
    let mut writer = c.spawn().unwrap();
    let mut input = writer.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        input.write_all(writes.as_bytes()).unwrap();
    });
    let before: u64 = sql(&source, "SELECT COUNT(*) FROM Invoice")
        .parse()
        .unwrap();
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    feeder.join().unwrap();
    assert!(writer.wait().unwrap().success());
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    let recorded: Vec<(String, u64)> = shown["item_list"][0]["server"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    let invoices = recorded.iter().find(|(n, _)| n == "Invoice").unwrap().1;
    assert!(invoices >= before, "{invoices} < {before}");
    // The plan compares the snapshot with the database as it is now: the invoices written
    // after the dump are the difference.
    let plan = restore_into(&sb, &cfg, "bs_never_made", &["--dry-run"]).ok();
    let now: u64 = sql(&source, "SELECT COUNT(*) FROM Invoice")
        .parse()
        .unwrap();
    let line: Vec<&str> = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("Invoice "))
        .unwrap()
        .split_whitespace()
        .collect();
    let difference = match invoices == now {
        true => "same".to_string(),
        false => format!("-{}", now - invoices),
    };
    assert_eq!(
        line,
        [
            "Invoice",
            &invoices.to_string(),
            &now.to_string(),
            &difference
        ],
        "{plan:#?}"
    );
    let restored = dbs.name(&format!("busy_{method}_restored"));
    restore_into(&sb, &cfg, &restored, &[]).ok();
    for (table, rows) in &recorded {
        let now: u64 = sql(&restored, &format!("SELECT COUNT(*) FROM `{table}`"))
            .parse()
            .unwrap();
        assert_eq!(now, *rows, "{table}");
    }
    assert_eq!(
        sql(
            &restored,
            "SELECT COUNT(*) FROM Invoice i WHERE i.InvoiceId >= 100000 AND NOT EXISTS \
             (SELECT 1 FROM InvoiceLine l WHERE l.InvoiceId = i.InvoiceId)"
        ),
        "0",
        "every invoice in the dump has its line"
    );
}

/// An in-place restore of a MariaDB source: after a `pre-restore` safety snapshot and a load
/// beside it (checked row for row), the restored tables move into the live database in one
/// `RENAME TABLE`, and the live ones out to a database kept beside it, each side with its
/// view, trigger and procedure made again; the application's open session is ended; its user
/// (with database-level grants) keeps working on the restored tables; the server is writable
/// again afterwards.
#[test]
fn an_in_place_restore_moves_the_restored_tables_in_and_keeps_the_old_ones() {
    let _server = server_hold(true);
    let mut dbs = Databases(Vec::new());
    let live = dbs.name("inplace");
    load_chinook(&live);
    let app = dbs.name("app");
    sql(
        "",
        &format!(
            "CREATE USER '{app}'@'%' IDENTIFIED BY 'app pass'; \
             GRANT ALL ON `{live}`.* TO '{app}'@'%'"
        ),
    );
    let sb = Sandbox::plain();
    let cfg = config(&sb, &live, "");
    let snapshot = backed_up(&sb, &cfg);
    let before = tables(&live);
    sql(
        &live,
        "DELETE FROM PlaylistTrack WHERE PlaylistId = 1; \
         UPDATE Artist SET Name = 'renamed' WHERE ArtistId = 8; \
         INSERT INTO Genre (GenreId, Name) VALUES (90, '  Zydeco ')",
    );
    let changed = tables(&live);
    assert_ne!(changed, before);

    let plan = run(with_config(
        &sb,
        &cfg,
        &[
            "restore",
            &snapshot,
            "--source",
            "shop",
            "--in-place",
            "--dry-run",
        ],
    ))
    .ok();
    assert!(plan.stdout.contains("would replace the live"), "{plan:#?}");

    // The application, logged in as its own user, with a session open on the database.
    let mut session = Command::new("mariadb")
        .args([
            "--host=127.0.0.1",
            "--port=3306",
            &format!("--user={app}"),
            &format!("--database={live}"),
            "-e",
            "SELECT SLEEP(600)",
        ])
        .env("MYSQL_PWD", "app pass")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let open = format!(
        "SELECT COUNT(*) FROM information_schema.processlist WHERE USER = '{app}' \
         AND STATE = 'User sleep'"
    );
    while sql("", &open) == "0" {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let done = run(with_config(
        &sb,
        &cfg,
        &[
            "--json",
            "restore",
            &snapshot,
            "--source",
            "shop",
            "--in-place",
            "--yes",
        ],
    ))
    .ok()
    .json();
    let kept = done["previous_kept_as"].as_str().unwrap().to_owned();
    dbs.0.push(kept.clone());
    assert!(
        !session.wait().unwrap().success(),
        "the application's session was not ended"
    );
    assert_eq!(sql("", "SELECT @@GLOBAL.read_only"), "0");
    assert_eq!(
        tables(&live),
        before,
        "the live database has the snapshot's rows"
    );
    assert_eq!(tables(&kept), changed, "the previous tables are kept");
    assert_eq!(
        sql(
            "",
            &format!(
                "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE \
                 '{live}\\_restoring\\_%'"
            )
        ),
        "0",
        "the restored copy's database is gone"
    );
    // Each side has its view, trigger and procedure, on its own tables.
    for db in [&live, &kept] {
        assert_eq!(
            sql(db, "SELECT COUNT(*) FROM album_artist"),
            sql(db, "SELECT COUNT(*) FROM Album")
        );
        sql(
            db,
            "INSERT INTO Genre (GenreId, Name) VALUES (99, '  Polka  ')",
        );
        assert_eq!(
            sql(db, "SELECT Name FROM Genre WHERE GenreId = 99"),
            "Polka"
        );
        assert_eq!(sql(db, "CALL albums()"), "347");
        assert_eq!(sql(db, "SELECT album_count(90)"), "21");
    }
    // The application's user works on the restored tables.
    let o = Command::new("mariadb")
        .args([
            "--host=127.0.0.1",
            "--port=3306",
            &format!("--user={app}"),
            &format!("--database={live}"),
            "--batch",
            "--skip-column-names",
            "-e",
            "INSERT INTO Genre (GenreId, Name) VALUES (98, 'Ska'); \
             SELECT Name FROM Artist WHERE ArtistId = 8",
        ])
        .env("MYSQL_PWD", "app pass")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(String::from_utf8_lossy(&o.stdout).trim(), "renamed");
    // The safety snapshot holds the changed data.
    let safety = done["safety_snapshot"].as_str().unwrap();
    let from_safety = dbs.name("from_safety");
    run(with_config(
        &sb,
        &cfg,
        &[
            "restore",
            safety,
            "--source",
            "shop",
            "--to-database",
            &from_safety,
        ],
    ))
    .ok();
    assert_eq!(tables(&from_safety), changed);

    // A user who may not make the server read-only: refused before anything is done.
    fs::write(sb.p("app.pw"), "app pass\n").unwrap();
    let as_app = config_as(&sb, &live, &app, "password_file = \"app.pw\"\n");
    let snapshots = sb.snapshots().len();
    let now = tables(&live);
    let o = run(with_config(
        &sb,
        &as_app,
        &[
            "restore",
            &snapshot,
            "--source",
            "shop",
            "--in-place",
            "--yes",
        ],
    ));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(
        o.stderr.contains("READ ONLY ADMIN") && o.stderr.contains("nothing was changed"),
        "{o:#?}"
    );
    assert_eq!(tables(&live), now);
    assert_eq!(
        sb.snapshots().len(),
        snapshots,
        "no safety snapshot was taken"
    );
}

/// A MariaDB server of the test's own, on a free port of 127.0.0.1, that takes TCP sessions in
/// TLS only (`require_secure_transport`), with a certificate made for it; a user `bs_tls`
/// (password `tls pass`) may do anything. Stopped and removed when dropped.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        self_signed(d, "server");
        let installed = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ])
            .arg(format!("--datadir={}", d.join("data").display()))
            .output()
            .unwrap();
        assert!(
            installed.status.success(),
            "{}",
            String::from_utf8_lossy(&installed.stderr)
        );
        let port = free_port();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--ssl-cert={}", d.join("server.pem").display()))
            .arg(format!("--ssl-key={}", d.join("server.key").display()))
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                &format!("--port={port}"),
                "--require-secure-transport=ON",
                "--innodb-buffer-pool-size=16M",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = TlsServer { child, port, dir };
        let start = std::time::Instant::now();
        while server
            .socket(
                // The anonymous users mariadb-install-db makes would match 127.0.0.1 first.
                "DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES; \
                 CREATE USER 'bs_tls'@'%' IDENTIFIED BY 'tls pass'; \
                 GRANT ALL ON *.* TO 'bs_tls'@'%' WITH GRANT OPTION",
            )
            .is_err()
        {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "the TLS server did not start: {}",
                fs::read_to_string(server.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        server
    }

    /// `sql` as root through the server's socket (not held to TLS).
    fn socket(&self, sql: &str) -> Result<String, String> {
        let o = Command::new("mariadb")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args(["--user=root", "--batch", "--skip-column-names", "-e", sql])
            .output()
            .unwrap();
        match o.status.success() {
            true => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
            false => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
        }
    }
}

/// A self-signed certificate `NAME.pem` (for 127.0.0.1) and its key `NAME.key` in `dir`.
fn self_signed(dir: &Path, name: &str) {
    let o = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.pem")))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The built-in export to a server that takes TLS sessions only: with the server's
/// certificate as `ssl-ca` and `ssl-verify-server-cert`, backup, drill (the rows read back
/// over TLS: `checksums`) and restore work; with a certificate that did not sign it, the
/// backup fails naming the certificate, and nothing is stored; without TLS options the server
/// refuses the same user's session.
#[test]
fn the_builtin_export_speaks_tls_as_the_client_options_ask() {
    let server = TlsServer::start();
    server
        .socket(
            "CREATE DATABASE shop; CREATE TABLE shop.stock (sku VARCHAR(20) PRIMARY KEY, \
             qty INT NOT NULL); INSERT INTO shop.stock VALUES ('A-1', 4), ('B-2', 0)",
        )
        .unwrap();
    let sb = Sandbox::plain();
    fs::write(sb.p("pw"), "tls pass\n").unwrap();
    self_signed(&sb.p(""), "other");
    let cfg = sb.p("backstop.toml");
    let write = |options: &str| {
        fs::write(
            &cfg,
            format!(
                "repository = \"repo\"\n[sources.shop]\nkind = \"mariadb\"\n\
                 url = \"mysql://bs_tls@127.0.0.1:{}/shop{options}\"\n\
                 password_file = \"pw\"\nmethod = \"builtin\"\n",
                server.port
            ),
        )
        .unwrap()
    };
    write("");
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    // (MariaDB refuses a session without TLS there as it refuses a wrong password.)
    assert!(
        o.stderr.contains("insecure transport") || o.stderr.contains("Access denied"),
        "{o:#?}"
    );
    write(&format!(
        "?ssl-ca={}&ssl-verify-server-cert",
        sb.p("other.pem").display()
    ));
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("certificate"), "{o:#?}");
    assert!(sb.snapshots().is_empty());

    write(&format!(
        "?ssl-ca={}&ssl-verify-server-cert",
        server.dir.path().join("server.pem").display()
    ));
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    let drilled = run(with_config(
        &sb,
        &cfg,
        &["--json", "verify", "--restore-test", "--latest"],
    ))
    .ok()
    .json();
    assert_eq!(drilled[0]["passed"], true, "{drilled:#}");
    assert!(passed_check(&drilled[0], "checksums"), "{drilled:#}");
    run(with_config(
        &sb,
        &cfg,
        &[
            "restore",
            "latest",
            "--source",
            "shop",
            "--to-database",
            "shop_restored",
        ],
    ))
    .ok();
    assert_eq!(
        server
            .socket("SELECT GROUP_CONCAT(sku, ':', qty ORDER BY sku) FROM shop_restored.stock")
            .unwrap(),
        "A-1:4,B-2:0"
    );
}

/// The server ends the dump's session midway (as a restart or an administrator would): the
/// backup fails, says why, and leaves no snapshot, with either method. The session is caught
/// waiting: another one holds `LOCK TABLES Track WRITE`, so the dump has written the tables
/// before Track and waits for it when it is ended.
#[test]
fn a_dump_cut_off_midway_leaves_no_snapshot() {
    let _server = server_hold(false);
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("cutoff");
    load_chinook(&source);
    for method in ["dump", "builtin"] {
        let sb = Sandbox::plain();
        let cfg = config(&sb, &source, &format!("method = \"{method}\"\n"));
        let mut holder = client()
            .arg(format!("--database={source}"))
            .args(["-e", "LOCK TABLES Track WRITE; SELECT SLEEP(60)"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let waiting = |state: &str| {
            format!(
                "SELECT ID FROM information_schema.processlist WHERE DB = '{source}' \
                 AND STATE = '{state}' AND INFO NOT LIKE 'LOCK TABLES%'"
            )
        };
        let sleeping = waiting("User sleep");
        while sql("", &sleeping).is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let killer = {
            let query = waiting("Waiting for table metadata lock");
            std::thread::spawn(move || {
                for _ in 0..1500 {
                    let id = sql("", &query);
                    if !id.is_empty() {
                        sql("", &format!("KILL {id}"));
                        return true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                false
            })
        };
        let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
        // The server keeps sleeping for a client that is gone: its session is ended too.
        let _ = holder.kill();
        let _ = holder.wait();
        for id in sql("", &sleeping).lines() {
            sql("", &format!("KILL {id}"));
        }
        assert!(
            killer.join().unwrap(),
            "{method}: nothing was cut off: {o:#?}"
        );
        assert_ne!(o.code, 0, "{method}: {o:#?}");
        assert!(
            o.stderr.contains("Lost connection")
                || o.stderr.contains("killed")
                || o.stderr.contains("closed the connection"),
            "{method}: {o:#?}"
        );
        assert!(sb.snapshots().is_empty(), "{method}");
    }
}

/// A MariaDB source's tables in other formats than CSV: its `export` after each backup
/// writes JSON in the dated layout, and `export --format sql` a script the `sqlite3` shell
/// loads; each column typed by its values (a DECIMAL a number, a code with a leading zero text,
/// a BIGINT beyond 2^53 exact), NULL apart from the empty string, awkward text intact.
#[test]
fn a_mariadb_sources_tables_export_typed_after_each_backup() {
    let _server = server_hold(false);
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("typed");
    sql("", &format!("CREATE DATABASE `{source}`"));
    sql(
        &source,
        "CREATE TABLE price (id INT PRIMARY KEY, code VARCHAR(8), price DECIMAL(10,2), \
         note TEXT, big BIGINT); \
         INSERT INTO price VALUES (1, '007', 12.50, 'a, \"b\"\\nc', 9007199254740993), \
         (2, '12', NULL, '', NULL)",
    );
    let sb = Sandbox::plain();
    let cfg = config(
        &sb,
        &source,
        "export = { to = \"plain\", format = \"json\", layout = \"dated\" }\n",
    );
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    assert!(o.stderr.contains("exported 1 table(s) of shop"), "{o:#?}");
    let files: Vec<_> = files_under(&sb.p("plain"));
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("price_") && name.ends_with(".json"),
        "{name}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"id": 1, "code": "007", "price": 12.5, "note": "a, \"b\"\nc", "big": 9007199254740993u64},
            {"id": 2, "code": "12", "price": null, "note": "", "big": null}
        ])
    );
    run(with_config(
        &sb,
        &cfg,
        &["export", "latest", "--format", "sql", "--to", "script"],
    ))
    .ok();
    let db = sb.p("loaded.db");
    let mut shell = Command::new("sqlite3");
    shell
        .arg(&db)
        .stdin(fs::File::open(sb.p("script/price.sql")).unwrap());
    assert!(shell.status().unwrap().success());
    assert_eq!(
        sqlite3(
            &db,
            &[
                "SELECT id, typeof(code), code, typeof(price), price, note IS NULL, big FROM price ORDER BY id"
            ]
        ),
        "1|text|007|real|12.5|0|9007199254740993\n2|text|12|null||0|"
    );
    // `diff` by the primary key the snapshot recorded.
    sql(
        &source,
        "UPDATE price SET price = 13.00 WHERE id = 1; INSERT INTO price VALUES (3, 'x', 1, 'n', 1)",
    );
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    let ids: Vec<String> = sb
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let o = run(with_config(&sb, &cfg, &["diff", &ids[0], &ids[1]])).ok();
    assert!(
        o.stdout
            .contains("price: 2 -> 3 rows; 1 added, 1 changed (by id)")
            && o.stdout.contains("  + id='3'")
            && o.stdout.contains("~ id='1': price '12.50' -> '13.00'"),
        "{o:#?}"
    );
}

/// Data validation rules on a MariaDB source: `validate` on the live database and the drill's
/// check `rules` on the scratch database name the orphaned order and the negative stock.
#[test]
fn rules_run_on_a_mariadb_source_and_in_its_drills() {
    let _server = server_hold(false);
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("ruled");
    sql("", &format!("CREATE DATABASE `{source}`"));
    sql(
        &source,
        "CREATE TABLE stock (sku VARCHAR(8) PRIMARY KEY, qty INT); \
         INSERT INTO stock VALUES ('A-1', 4), ('B-2', -2); \
         CREATE TABLE orders (id INT PRIMARY KEY, sku VARCHAR(8)); \
         INSERT INTO orders VALUES (1, 'A-1'), (2, 'Z-9')",
    );
    let sb = Sandbox::plain();
    let rules = "[[sources.shop.rules]]\nkind = \"orphans\"\ntable = \"orders\"\ncolumn = \"sku\"\n\
         references = \"stock(sku)\"\n\
         [[sources.shop.rules]]\nkind = \"not_negative\"\ntable = \"stock\"\ncolumn = \"qty\"\n\
         [[sources.shop.rules]]\nname = \"two orders\"\nsql = \"SELECT COUNT(*) FROM orders\"\nexpect = 2\n";
    let cfg = config(&sb, &source, rules);
    let o = run(with_config(&sb, &cfg, &["validate", "--source", "shop"])).code(4);
    for expected in [
        "2 of 3 rules failing",
        "FAIL orphans orders.sku: 1 rows whose sku names no stock.sku: id=2",
        "FAIL not_negative stock.qty: 1 rows with a negative qty: sku='B-2'",
        "ok   two orders: returned 2, expected 2",
    ] {
        assert!(o.stdout.contains(expected), "{expected}: {o:#?}");
    }
    // `auto` with rules: the built-in export, whose snapshot the rules run in, saying why.
    let o = run(with_config(
        &sb,
        &cfg,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    assert_eq!(o["validation"].as_array().map(Vec::len), Some(3), "{o:#}");
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    assert_eq!(
        shown["item_list"][0]["server"]["method"], "builtin",
        "{shown:#}"
    );
    assert!(
        shown["paths"].to_string().contains("rules run"),
        "{shown:#}"
    );
    let drill = run(with_config(
        &sb,
        &cfg,
        &["--json", "verify", "--restore-test", "--latest"],
    ))
    .json();
    let check = check_named(&drill[0], "rules");
    assert_eq!(check["passed"], false, "{check:#}");
    assert!(
        check["detail"].as_str().unwrap().contains("sku='B-2'"),
        "{check:#}"
    );
    // The built-in export runs them at capture, in its consistent snapshot.
    let cfg = config(&sb, &source, &format!("method = \"builtin\"\n{rules}"));
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    assert!(
        o.stdout
            .contains("validation at capture: 2 of 3 rules failing")
            && o.stdout
                .contains("FAIL orphans orders.sku: 1 rows whose sku names no stock.sku: id=2"),
        "{o:#?}"
    );
}

/// `import` into a MariaDB source: the server's verdict on each row in a dry run (a duplicate
/// key, a value its DECIMAL refuses), then all rows after a `pre-change` snapshot, exact.
#[test]
fn a_supplier_file_imports_into_a_mariadb_table() {
    let _server = server_hold(false);
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("imported");
    sql("", &format!("CREATE DATABASE `{source}`"));
    sql(
        &source,
        "CREATE TABLE prices (sku VARCHAR(8) PRIMARY KEY, price DECIMAL(12,4) NOT NULL, \
         note TEXT)",
    );
    let sb = Sandbox::plain();
    let cfg = config(&sb, &source, "");
    fs::write(
        sb.p("prices.csv"),
        "sku,price,note\nA-1,1234.5678,\"it's, \"\"quoted\"\"\"\nA-1,2,dup\nB-2,1e99,big\n",
    )
    .unwrap();
    let import = |extra: &[&str]| {
        let mut c = with_config(
            &sb,
            &cfg,
            &[
                "--json",
                "import",
                "prices.csv",
                "--into",
                "shop",
                "--table",
                "prices",
            ],
        );
        c.args(extra);
        run(c)
    };
    let report = import(&["--dry-run"]).code(4).json();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report:#}");
    assert_eq!(problems[0]["line"], 3, "{report:#}");
    assert!(
        problems[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Duplicate entry"),
        "{report:#}"
    );
    assert_eq!(problems[1]["line"], 4, "{report:#}");
    assert_eq!(sql(&source, "SELECT COUNT(*) FROM prices"), "0");
    fs::write(
        sb.p("prices.csv"),
        "sku,price,note\nA-1,1234.5678,\"it's, \"\"quoted\"\"\"\nB-2,0.5,\n",
    )
    .unwrap();
    assert_eq!(import(&[]).ok().json()["imported"], 2);
    assert_eq!(sb.snapshots()[0]["kind"], "pre-change");
    assert_eq!(
        sql(
            &source,
            "SELECT sku, price, IFNULL(note, 'NULL') FROM prices ORDER BY sku"
        ),
        "A-1\t1234.5678\tit's, \"quoted\"\nB-2\t0.5000\tNULL"
    );
}

/// The daemon backs up a MariaDB source on its own (the startup backup), drills it in a scratch
/// database on the server, and the status and the page show the source proven.
#[test]
fn the_daemon_backs_up_and_drills_a_mariadb_source() {
    let _server = server_hold(false);
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("daemon");
    sql(
        "",
        &format!(
            "CREATE DATABASE `{source}`; \
             CREATE TABLE `{source}`.stock (sku VARCHAR(20) PRIMARY KEY, qty INT NOT NULL); \
             INSERT INTO `{source}`.stock VALUES ('A-1', 4), ('B-2', 0), ('C-3', 17)"
        ),
    );
    let sb = Sandbox::plain();
    let cfg = config(
        &sb,
        &source,
        "every = \"6h\"\n[daemon]\nverify = \"off\"\nverify_data = \"off\"\nforget = \"off\"\n\
         prune = \"off\"\n",
    );
    add_web_user(with_config(
        &sb,
        &cfg,
        &["user", "add", "ada", "--role", "viewer"],
    ));
    let token = run(with_config(
        &sb,
        &cfg,
        &["token", "add", "mon", "--scope", "read"],
    ))
    .ok()
    .stdout
    .trim()
    .to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut serve = with_config(&sb, &cfg, &["serve", "--listen", &listen]);
    serve
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _daemon = Daemon(serve.spawn().unwrap());
    let shop = drilled_status(&listen, &token, "shop");
    assert_eq!(shop["state"], "ok", "{shop:#}");
    assert_eq!(
        shop["verified"]["snapshot"], shop["last_snapshot"],
        "{shop:#}"
    );
    let page = status_page(&listen);
    assert!(page.contains("shop"), "{page}");
    assert!(
        page.contains("mariadb"),
        "the page names the source's kind: {page}"
    );
    let short = &shop["last_snapshot"].as_str().unwrap()[..8];
    assert!(
        page.contains(short),
        "the page names the proven snapshot: {page}"
    );
}

/// The status page as the viewer `ada` (password `correct horse battery`) sees it after logging in.
fn status_page(listen: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let r = agent
        .post(&format!("http://{listen}/login"))
        .content_type("application/x-www-form-urlencoded")
        .send("username=ada&password=correct+horse+battery")
        .unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut page = agent
        .get(&format!("http://{listen}/"))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    page.body_mut().read_to_string().unwrap()
}

/// A restore plan of a MariaDB source counts the rows entered, deleted and changed since the
/// snapshot in each table, matched by primary key (composite keys too) or, in a table without
/// one, by content: a change of case under a case-insensitive collation is a change, NULL is
/// not the text `NULL`, a table whose columns changed is not compared. The snapshot is loaded
/// into a scratch database that is dropped again; the live database is only read.
#[test]
fn a_mariadb_plan_counts_the_rows_changed_since_the_snapshot() {
    let _server = server_hold(false);
    let mut dbs = Databases(Vec::new());
    for method in ["dump", "builtin"] {
        let live = dbs.name("compare");
        sql(
            "",
            &format!("CREATE DATABASE `{live}` COLLATE utf8mb4_general_ci"),
        );
        sql(
            &live,
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40), seen TIMESTAMP NULL, \
               score DOUBLE, note TEXT); \
             INSERT INTO customers SELECT seq, CONCAT('c', seq), \
               '2026-01-01 10:00:00' + INTERVAL seq HOUR, seq / 3, IF(seq = 30, 'NULL', NULL) \
               FROM seq_1_to_500; \
             CREATE TABLE stock (sku VARCHAR(10), bin INT, qty INT, PRIMARY KEY (sku, bin)); \
             INSERT INTO stock VALUES ('A', 1, 4), ('A', 2, 0), ('B', 1, 7); \
             CREATE TABLE log (msg VARCHAR(10), n INT); \
             INSERT INTO log VALUES ('x', 1), ('x', 1), ('y', NULL); \
             CREATE TABLE prices (sku VARCHAR(10) PRIMARY KEY, price DECIMAL(10,2)); \
             INSERT INTO prices VALUES ('A', 1.5)",
        );
        let sb = Sandbox::plain();
        let cfg = config(&sb, &live, &format!("method = \"{method}\"\n"));
        let snapshot = backed_up(&sb, &cfg);
        sql(
            &live,
            "INSERT INTO customers (id, name) VALUES (501, 'new'), (502, 'new'); \
             DELETE FROM customers WHERE id IN (10, 11, 12); \
             UPDATE customers SET name = 'C20' WHERE id = 20; \
             UPDATE customers SET note = NULL WHERE id = 30; \
             UPDATE customers SET seen = seen WHERE id = 21; \
             UPDATE stock SET qty = 5 WHERE sku = 'A' AND bin = 2; \
             DELETE FROM stock WHERE sku = 'B'; \
             INSERT INTO stock VALUES ('C', 1, 1); \
             DELETE FROM log WHERE msg = 'x' LIMIT 1; \
             INSERT INTO log VALUES ('z', 2); \
             ALTER TABLE prices ADD COLUMN currency CHAR(3)",
        );
        let before = tables(&live);
        let plan = run(with_config(
            &sb,
            &cfg,
            &[
                "--json",
                "restore",
                &snapshot,
                "--source",
                "shop",
                "--in-place",
                "--dry-run",
            ],
        ))
        .ok()
        .json();
        assert_eq!(plan["comparison"]["rows"], true, "{method}: {plan:#}");
        let table = |name: &str| {
            plan["tables"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["name"] == name))
                .unwrap_or_else(|| panic!("no table {name} in the plan: {plan:#}"))
        };
        let since = |name: &str| {
            let s = &table(name)["since"];
            (
                s["added"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{name}: {plan:#}")),
                s["deleted"].as_u64().unwrap(),
                s["changed"].as_u64().unwrap(),
            )
        };
        assert_eq!(
            since("customers"),
            (2, 3, 2),
            "{method}: a case and a NULL changed"
        );
        assert_eq!(since("stock"), (1, 1, 1), "{method}: composite key");
        assert_eq!(since("log"), (1, 1, 0), "{method}: by content");
        assert_eq!(table("log")["by_content"], true);
        assert_eq!(
            table("prices")["not_compared"],
            "schema differs, rows not compared"
        );
        assert!(
            plan["summary"]
                .as_str()
                .unwrap()
                .contains("reverts 3 changed rows in 2 tables"),
            "{plan:#}"
        );
        assert_eq!(tables(&live), before, "the live database is only read");
        assert_no_scratch_left("compare");
    }
}
