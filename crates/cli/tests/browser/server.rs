//! The restore plan of a PostgreSQL source in the browser: a daemon of its own over a database
//! on the server on this machine (127.0.0.1:5432, user postgres); after rows were entered,
//! deleted and changed, the plan counts them per table (matched by primary key, or by content
//! in a table without one), in words, on a phone and on a desktop without scrolling sideways.

use super::*;

/// A database on the local PostgreSQL server, dropped when the step ends however it ends.
struct Database(String);

impl Database {
    fn create() -> Self {
        let db = Database(format!("bs_browser_{}", std::process::id()));
        psql("postgres", &format!("DROP DATABASE IF EXISTS {}", db.0));
        psql("postgres", &format!("CREATE DATABASE {}", db.0));
        db
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-X", "-q", "-w", "-h", "127.0.0.1", "-U", "postgres", "-d"])
            .arg("postgres")
            .arg("-c")
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0))
            .output();
    }
}

/// `sql` run by psql as the server's superuser on `db`.
fn psql(db: &str, sql: &str) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .output()
        .expect("running psql (install Debian's `postgresql-client`)");
    assert!(
        out.status.success(),
        "psql {db} {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(super) fn admin_sees_what_a_postgres_restore_would_change(driver: &Driver) {
    let db = Database::create();
    psql(
        &db.0,
        "CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL); \
         INSERT INTO stock SELECT 'SKU-' || i, i FROM generate_series(1, 40) i; \
         CREATE TABLE notes (body text); \
         INSERT INTO notes VALUES ('count the shelf'), ('call the supplier')",
    );
    let shop = Shop::set_up_with(&format!(
        "[sources.shop]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n\
         every = \"6h\"\n",
        db.0
    ));
    let daemon = shop.serve();
    let startup = daemon.snapshots("kind=startup");
    let snapshot = startup[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot id: {startup:?}"))
        .to_owned();
    psql(
        &db.0,
        "INSERT INTO stock VALUES ('NEW-1', 1), ('NEW-2', 2); \
         DELETE FROM stock WHERE sku IN ('SKU-1', 'SKU-2', 'SKU-3'); \
         UPDATE stock SET qty = 0 WHERE sku = 'SKU-9'; \
         INSERT INTO notes VALUES ('stock taken')",
    );
    let b = Browser::open(
        driver,
        &shop.dir.path().join("chrome-profile"),
        &daemon.base,
    );
    b.log_in("admin");
    for (width, height) in [(390, 844), (1280, 900)] {
        b.resize(width, height);
        b.goto(&format!("/restore?source=shop&snapshot={snapshot}"));
        b.find("#plan");
        let note = b.text(&b.find("#compare-note"));
        assert!(
            note.contains("matched by their primary key in a copy of the snapshot"),
            "{width} px: {note:?}"
        );
        let summary = b.text(&b.find("#plan-summary"));
        for part in [
            "Restoring loses 1 row of public.notes and 2 rows of public.stock entered since ",
            "brings back 3 deleted rows of public.stock",
            "and reverts 1 changed row of public.stock.",
        ] {
            assert!(
                summary.contains(part),
                "{width} px: {part:?} not in {summary:?}"
            );
        }
        let words: Vec<String> = b
            .find_all("#plan-words li")
            .iter()
            .map(|li| b.text(li))
            .collect();
        assert!(
            words.iter().any(|w| w.contains("matched by content")),
            "{width} px: {words:#?}"
        );
        for (table, want) in [
            ("public.stock", ["39", "40", "+1", "2", "3", "1"]),
            ("public.notes", ["3", "2", "\u{2212}1", "1", "0", "0"]),
        ] {
            plan::assert_plan_row(&b, width, table, &want);
        }
        assert_eq!(
            b.js(plan::OVERFLOW, json!([])),
            json!([]),
            "the plan scrolls sideways at {width} px"
        );
    }
    drop(b);
    let status = daemon.stop();
    assert!(
        status.success(),
        "the PostgreSQL daemon exited with {status}"
    );
}
