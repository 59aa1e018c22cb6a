//! PostgreSQL sources (`kind = "postgres"`) against the server on this machine
//! (127.0.0.1:5432, user postgres): pagila (../shared/testdata) dumped by `pg_dump` into the
//! repository and loaded into a new database, table for table the same; and the failures a
//! user meets (a database that does not exist, a `pg_dump` older than the server, a password in
//! the URL), each leaving no snapshot. Each test makes and drops databases of its own names.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// psql as the server's superuser on `db`, quiet, stopping at the first error.
fn psql_on(db: &str) -> Command {
    let mut c = Command::new("psql");
    c.args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"]).args([
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        db,
    ]);
    c
}

/// `sql` run by [`psql_on`] `db`; its output (unaligned, tuples only).
fn psql(db: &str, sql: &str) -> String {
    let o = psql_on(db)
        .args(["-A", "-t", "-c", sql])
        .output()
        .expect("running psql");
    assert!(
        o.status.success(),
        "psql {db} {sql:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Databases made by a test, dropped when it ends however it ends.
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
            let _ = psql_on("postgres")
                .args(["-c", &format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)")])
                .output();
        }
    }
}

/// A new database `name` with pagila's schema and data.
fn load_pagila(name: &str) {
    psql("postgres", &format!("CREATE DATABASE {name}"));
    for file in ["postgres/pagila-schema.sql", "postgres/pagila-data.sql"] {
        let o = psql_on(name)
            .arg("-f")
            .arg(testdata(file))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// Every base table of `db` with its row count and an MD5 of its rows in a fixed order.
fn tables(db: &str) -> Vec<String> {
    let names = psql(
        db,
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY 1",
    );
    names
        .lines()
        .map(|t| {
            let row = psql(
                db,
                &format!(
                    "SELECT count(*) || ' ' || coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '-') \
                     FROM {t} r"
                ),
            );
            format!("{t} {row}")
        })
        .collect()
}

/// `TABLE`'s rows in `db` as PostgreSQL writes them as CSV (with a header), lines ending in
/// CRLF as backstop writes them.
fn csv_of(db: &str, table: &str) -> String {
    psql(
        db,
        &format!("COPY (SELECT * FROM {table}) TO STDOUT WITH CSV HEADER"),
    )
    .replace('\n', "\r\n")
        + "\r\n"
}

/// `restore latest --source shop --table TABLE... --to DIR`: each table's CSV file.
fn restore_csv(sb: &Sandbox, cfg: &Path, tables: &[&str]) -> Vec<String> {
    let dir = sb.p("csv");
    let mut c = with_config(sb, cfg, &["restore", "latest", "--source", "shop"]);
    for t in tables {
        c.args(["--table", t]);
    }
    c.arg("--to").arg(&dir).arg("--overwrite");
    run(c).ok();
    tables
        .iter()
        .map(|t| fs::read_to_string(dir.join(format!("{t}.csv"))).unwrap())
        .collect()
}

/// backstop.toml with one PostgreSQL source `shop` on `db`, plus `extra` lines in its section.
fn config(sb: &Sandbox, db: &str, extra: &str) -> std::path::PathBuf {
    let p = sb.p("backstop.toml");
    fs::write(
        &p,
        format!(
            "repository = \"repo\"\n[sources.shop]\nkind = \"postgres\"\n\
             url = \"postgres://postgres@127.0.0.1:5432/{db}\"\n{extra}"
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

fn with_config(sb: &Sandbox, cfg: &Path, args: &[&str]) -> Command {
    let mut c = sb.bare();
    c.arg("--config").arg(cfg).args(args);
    c
}

/// pagila dumped into the repository and loaded into a new database: the snapshot records
/// what the dump was taken from (versions, size, each table's rows, the schema's
/// fingerprint); every table comes back with the same rows (counts and checksums); a dry run
/// creates nothing; a name that exists is refused and that database is left alone.
#[test]
fn pagila_comes_back_in_a_new_database_table_for_table() {
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("pagila");
    load_pagila(&source);
    let sb = Sandbox::plain();
    let cfg = config(&sb, &source, "");
    let made = run(with_config(
        &sb,
        &cfg,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    assert_eq!(made["source_kind"], "postgres", "{made:#}");
    let list = run(with_config(&sb, &cfg, &["--json", "snapshots"]))
        .ok()
        .json();
    assert_eq!(list[0]["source_kind"], "postgres", "{list:#}");
    // What the dump was taken from, with every table's rows as the dump has them.
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    let server = &shown["item_list"][0]["server"];
    assert_eq!(server["engine"], "postgres", "{shown:#}");
    assert_eq!(server["database"], source.as_str());
    assert!(
        server["tool"]
            .as_str()
            .unwrap()
            .starts_with("pg_dump (PostgreSQL)")
    );
    assert!(server["size_bytes"].as_u64().unwrap() > 1 << 20);
    assert_eq!(server["schema_fingerprint"].as_str().unwrap().len(), 32);
    let rental = server["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "public.rental")
        .unwrap();
    assert_eq!(
        rental["rows"].to_string(),
        psql(&source, "SELECT count(*) FROM public.rental")
    );
    let text = run(with_config(&sb, &cfg, &["show", "latest"])).ok().stdout;
    assert!(text.contains("public.rental"), "{text}");

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
    // Every table with rows of its own (not the partitioned parent, whose rows are in its
    // partitions), compared.
    let sums = record["checks"][3]["detail"].as_str().unwrap();
    let compared: usize = sums
        .strip_prefix("the rows of all ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{sums}"));
    assert_eq!(compared, tables(&source).len() - 1, "{sums}");
    assert_dropped(&scratch_database(record));
    let status = run(with_config(&sb, &cfg, &["--json", "status"]))
        .ok()
        .json();
    assert_eq!(status_source(&status, "shop")["state"], "ok", "{status:#}");

    let restored = dbs.name("restored");
    let dry = restore_into(&sb, &cfg, &restored, &["--dry-run"]).ok();
    assert!(dry.stdout.contains("would restore"), "{dry:#?}");
    let rentals = psql(&source, "SELECT count(*) FROM public.rental");
    assert!(
        dry.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["public.rental", &rentals, &rentals, "same"]),
        "the plan lists each table with its rows in the snapshot and now: {dry:#?}"
    );
    assert!(
        dry.stdout
            .contains(&format!("schema: the same as {source}'s now")),
        "{dry:#?}"
    );
    assert_eq!(
        psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{restored}'")
        ),
        "0",
        "a dry run creates nothing"
    );
    restore_into(&sb, &cfg, &restored, &[]).ok();
    let (before, after) = (tables(&source), tables(&restored));
    assert!(before.len() >= 15, "{before:?}");
    assert_eq!(after, before);

    // One table alone: its rows, and no other table.
    let one = dbs.name("one_table");
    restore_into(&sb, &cfg, &one, &["--table", "public.actor"]).ok();
    assert_eq!(
        tables(&one),
        [before
            .iter()
            .find(|t| t.starts_with("public.actor "))
            .unwrap()
            .clone()]
    );

    // Tables as CSV, from the dump alone (no server), as PostgreSQL itself writes them.
    let csv = restore_csv(&sb, &cfg, &["public.actor", "film"]);
    assert_eq!(csv[0], csv_of(&source, "public.actor"));
    assert_eq!(csv[1], csv_of(&source, "public.film"));
    // With nothing but the repository (a new machine): no source in backstop.toml needed.
    let bare = sb.p("bare.toml");
    fs::write(&bare, "repository = \"repo\"\n").unwrap();
    let out = sb.p("bare-csv");
    let mut c = with_config(
        &sb,
        &bare,
        &["restore", "latest:shop", "--table", "public.actor", "--to"],
    );
    c.arg(&out);
    run(c).ok();
    assert_eq!(
        fs::read_to_string(out.join("public.actor.csv")).unwrap(),
        csv[0]
    );

    // Into a database that exists: refused by the server, and that database stays as it was.
    let o = restore_into(&sb, &cfg, &source, &[]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("already exists"), "{o:#?}");
    assert_eq!(tables(&source), before);
}

/// pagila through the built-in export (no PostgreSQL tool used to make it): every table the
/// same, and the schema as `pg_dump` sees it the same as the source's (types, domains,
/// sequences, partitions, functions, the aggregate, views, the materialized view, indexes,
/// constraints and triggers); one table restores alone; a drill passes.
#[test]
fn pagila_from_the_builtin_export_has_the_schema_pg_dump_sees() {
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("builtin");
    load_pagila(&source);
    psql(
        &source,
        "COMMENT ON TABLE public.film IS 'films, one row each'; \
         CREATE SCHEMA \"Reports\"; \
         CREATE TABLE \"Reports\".\"Daily\" (id int GENERATED ALWAYS AS IDENTITY \
           (SEQUENCE NAME \"Reports\".day_ids START WITH 100 INCREMENT BY 10) PRIMARY KEY, \
           day date NOT NULL, total numeric(12, 2), tax numeric GENERATED ALWAYS AS \
           (total * 0.2) STORED, tags text[], doc jsonb); \
         INSERT INTO \"Reports\".\"Daily\" (day, total, tags, doc) VALUES \
           ('2026-12-01', 10.5, '{a,b}', '{\"k\": [1]}'), ('2026-12-02', NULL, NULL, NULL); \
         ALTER TABLE public.customer ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY active_only ON public.customer FOR SELECT USING (activebool)",
    );
    let sb = Sandbox::plain();
    let cfg = config(&sb, &source, "method = \"builtin\"\n");
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    let item = &shown["item_list"][0];
    assert_eq!(item["path"], format!("{source}.sql"), "{shown:#}");
    assert_eq!(item["server"]["method"], "builtin", "{shown:#}");
    assert!(
        item["server"]["tool"]
            .as_str()
            .unwrap()
            .contains("built-in export"),
        "{shown:#}"
    );
    let restored = dbs.name("builtin_restored");
    restore_into(&sb, &cfg, &restored, &[]).ok();
    let before = tables(&source);
    assert!(before.len() >= 16, "{before:?}");
    assert_eq!(tables(&restored), before);
    let schema = |db: &str| {
        let o = Command::new("pg_dump")
            .args(["-h", "127.0.0.1", "-U", "postgres", "--schema-only"])
            .args(["--no-owner", "--no-privileges", db])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Sorted lines, without comments and pg_dump's random \restrict keys.
        let mut lines: Vec<String> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("--") && !l.contains("restrict "))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let (want, got) = (schema(&source), schema(&restored));
    assert!(want.len() > 500, "{want:?}");
    let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
    let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    assert_eq!(got, want);

    let one = dbs.name("builtin_one");
    restore_into(&sb, &cfg, &one, &["--table", "public.rental"]).ok();
    assert_eq!(
        tables(&one),
        [before
            .iter()
            .find(|t| t.starts_with("public.rental "))
            .unwrap()
            .clone()]
    );
    let o = restore_into(&sb, &cfg, &dbs.name("builtin_none"), &["--table", "nope"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("no table public.nope"), "{o:#?}");
    // As CSV: rows in primary-key order (the export's), as PostgreSQL writes them.
    let csv = restore_csv(&sb, &cfg, &["Reports.Daily", "public.actor"]);
    // (A generated column is not in a dump: it is computed again on load.)
    assert_eq!(
        csv[0],
        csv_of(
            &source,
            "(SELECT id, day, total, tags, doc FROM \"Reports\".\"Daily\" ORDER BY id) d"
        )
    );
    assert_eq!(
        csv[1],
        csv_of(&source, "(SELECT * FROM public.actor ORDER BY actor_id) a")
    );

    let drilled = run(with_config(
        &sb,
        &cfg,
        &["--json", "verify", "--restore-test", "--latest"],
    ))
    .ok()
    .json();
    assert_eq!(drilled[0]["passed"], true, "{drilled:#}");
    let sums = drilled[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "checksums")
        .unwrap_or_else(|| panic!("no checksums check: {drilled:#}"));
    assert!(
        sums["detail"].as_str().unwrap().contains("byte for byte"),
        "{drilled:#}"
    );
}

/// A database that does not exist, a `pg_dump` older than the server, a password in the URL:
/// each is said plainly and leaves no snapshot.
#[test]
fn postgres_failures_say_why_and_leave_no_snapshot() {
    let sb = Sandbox::plain();
    let cfg = config(&sb, "bs_no_such_database", "");
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("bs_no_such_database"), "{o:#?}");

    let mut dbs = Databases(Vec::new());
    let db = dbs.name("old_tool");
    psql("postgres", &format!("CREATE DATABASE {db}"));
    let bin = sb.p("old-tools");
    fs::create_dir(&bin).unwrap();
    fs::write(
        bin.join("pg_dump"),
        "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(bin.join("pg_dump"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let cfg = config(&sb, &db, "method = \"dump\"\n");
    let mut c = with_config(&sb, &cfg, &["backup", "--source", "shop"]);
    c.env("PATH", &path);
    let o = run(c);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(
        o.stderr.contains("pg_dump 9 is older than the PostgreSQL")
            && o.stderr.contains("method = \"builtin\""),
        "{o:#?}"
    );
    assert!(sb.snapshots().is_empty());
    // With method = "auto" (the default), the built-in export instead, saying why.
    let cfg = config(&sb, &db, "");
    let mut c = with_config(&sb, &cfg, &["backup", "--source", "shop"]);
    c.env("PATH", &path);
    run(c).ok();
    let shown = run(with_config(&sb, &cfg, &["show", "latest"])).ok();
    assert!(
        shown.stdout.contains("pg_dump 9 is older")
            && shown.stdout.contains("used the built-in export"),
        "{shown:#?}"
    );
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    assert_eq!(shown["item_list"][0]["server"]["method"], "builtin");

    // What the built-in export cannot rebuild is refused by name, before anything is stored.
    let odd = dbs.name("operator");
    psql("postgres", &format!("CREATE DATABASE {odd}"));
    psql(
        &odd,
        "CREATE OPERATOR === (LEFTARG = integer, RIGHTARG = integer, FUNCTION = int4eq)",
    );
    let sb = Sandbox::plain();
    let cfg = config(&sb, &odd, "method = \"builtin\"\n");
    let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(
        o.stderr.contains("cannot rebuild operators")
            && o.stderr.contains("===")
            && o.stderr.contains("method = \"dump\""),
        "{o:#?}"
    );
    assert!(sb.snapshots().is_empty());

    fs::write(
        sb.p("backstop.toml"),
        "repository = \"repo\"\n[sources.shop]\nkind = \"postgres\"\n\
         url = \"postgres://postgres:hunter2@127.0.0.1/x\"\n",
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

/// Rows written while the backup runs: the row counts the snapshot records, the rules run at
/// capture and the dump are one snapshot of the database (pg_dump dumps the snapshot the
/// counting session exported, which the rules' transaction imports too), so the restored
/// database has exactly the recorded rows in every table, and the rule counted them.
#[test]
fn the_recorded_counts_and_the_dump_are_one_snapshot_under_writes() {
    counts_and_dump_under_writes("dump");
}

/// The same with the built-in export, which reads the counts and the rows in one transaction.
#[test]
fn the_builtin_export_is_one_snapshot_under_writes() {
    counts_and_dump_under_writes("builtin");
}

fn counts_and_dump_under_writes(method: &str) {
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("busy");
    load_pagila(&source);
    let sb = Sandbox::plain();
    // A rule that counts the actors: run at capture, it sees the dump's own snapshot.
    let cfg = config(
        &sb,
        &source,
        &format!(
            "method = \"{method}\"\n[[sources.shop.rules]]\nname = \"actors\"\n\
             sql = \"SELECT count(*) FROM public.actor\"\n"
        ),
    );
    let mut writer = psql_on(&source)
        .args([
            "-c",
            "DO $$ BEGIN FOR i IN 1..3000 LOOP \
             INSERT INTO public.actor (first_name, last_name) VALUES ('WRITER', 'NO ' || i); \
             COMMIT; END LOOP; END $$",
        ])
        .spawn()
        .unwrap();
    let before: u64 = psql(&source, "SELECT count(*) FROM public.actor")
        .parse()
        .unwrap();
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    assert!(writer.wait().unwrap().success());
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    assert_eq!(
        shown["item_list"][0]["server"]["method"], method,
        "{shown:#}"
    );
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
    let actors = recorded
        .iter()
        .find(|(n, _)| n == "public.actor")
        .unwrap()
        .1;
    assert!(actors >= before, "{actors} < {before}");
    assert_eq!(
        shown["item_list"][0]["server"]["validation"]["results"][0]["detail"],
        format!("returned {actors}, expected 0"),
        "{shown:#}"
    );
    let restored = dbs.name("busy_restored");
    restore_into(&sb, &cfg, &restored, &[]).ok();
    for (table, rows) in &recorded {
        let now: u64 = psql(&restored, &format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap();
        assert_eq!(now, *rows, "{table}");
    }
}

/// What pagila lacks of the types a restore must bring back as they were: `bytea`, a large
/// object, an enum, a domain, and text that is not UTF-8 (Latin-1 bytes in a `SQL_ASCII`
/// database, as old applications keep it). The restored database has the source's encoding
/// and locale, so the bytes are valid text there as they were in the source (loaded into a
/// `UTF8` database they would be invalid UTF-8, which later queries and dumps trip over).
#[test]
fn bytes_large_objects_and_non_utf8_text_come_back_as_they_were() {
    bytes_and_text_come_back("dump");
}

/// The same through the built-in export, which copies the rows in the database's own encoding.
#[test]
fn the_builtin_export_brings_back_bytes_large_objects_and_non_utf8_text() {
    bytes_and_text_come_back("builtin");
}

fn bytes_and_text_come_back(method: &str) {
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("ascii");
    psql(
        "postgres",
        &format!(
            "CREATE DATABASE {source} TEMPLATE template0 ENCODING 'SQL_ASCII' \
             LC_COLLATE 'C' LC_CTYPE 'C'"
        ),
    );
    psql(
        &source,
        "CREATE TYPE mood AS ENUM ('sad', 'ok'); \
         CREATE DOMAIN positive AS integer CHECK (VALUE > 0); \
         CREATE TABLE t (id serial PRIMARY KEY, b bytea, txt text, m mood, n positive, doc oid); \
         INSERT INTO t (b, txt, m, n, doc) VALUES \
           ('\\x00ff0a5c27'::bytea, E'caf\\xe9 cr\\xe8me', 'ok', 7, \
            lo_from_bytea(0, '\\x0102030405ff'::bytea)), \
           ('\\x'::bytea, E'\\xa4 \\xb5', 'sad', 1, lo_from_bytea(0, '\\x'::bytea))",
    );
    let contents = |db: &str| {
        psql(
            db,
            "SELECT string_agg(id || ':' || encode(b, 'hex') || ':' || encode(txt::bytea, 'hex') \
             || ':' || m || ':' || n || ':' || md5(lo_get(doc)), ',' ORDER BY id) FROM t",
        )
    };
    let before = contents(&source);
    assert!(before.contains("636166e9206372e86d65"), "{before}");
    let sb = Sandbox::plain();
    let cfg = config(&sb, &source, &format!("method = \"{method}\"\n"));
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    let shown = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
        .ok()
        .json();
    assert_eq!(
        shown["item_list"][0]["server"]["encoding"], "SQL_ASCII",
        "{shown:#}"
    );
    let restored = dbs.name("ascii_restored");
    restore_into(&sb, &cfg, &restored, &[]).ok();
    assert_eq!(contents(&restored), before);
    assert_eq!(
        psql(
            "postgres",
            &format!(
                "SELECT pg_encoding_to_char(encoding) || ' ' || datcollate FROM pg_database \
                 WHERE datname = '{restored}'"
            )
        ),
        "SQL_ASCII C"
    );
    let drilled = run(with_config(
        &sb,
        &cfg,
        &["--json", "verify", "--restore-test", "--latest"],
    ))
    .ok()
    .json();
    assert_eq!(drilled[0]["passed"], true, "{drilled:#}");
}

/// An in-place restore of a PostgreSQL source: the live database is replaced by the
/// snapshot's whole, under its own name, after a `pre-restore` safety snapshot of it; the
/// previous database is kept on the server; an application's open connection is ended, not
/// left on a database that changes under it. A dry run and an unconfirmed run change nothing;
/// a snapshot from before a migration is refused unless `--allow-schema-change`.
#[test]
fn an_in_place_restore_switches_the_whole_database_and_keeps_the_old_one() {
    // The application's role, which owns its database and tables (dropped after them).
    struct Role(String);
    impl Drop for Role {
        fn drop(&mut self) {
            let _ = psql_on("postgres")
                .args(["-c", &format!("DROP ROLE IF EXISTS {}", self.0)])
                .output();
        }
    }
    let app_role = Role(format!("bs_app_{}", std::process::id()));
    let mut dbs = Databases(Vec::new());
    let live = dbs.name("inplace");
    let role = &app_role.0;
    psql("postgres", &format!("CREATE DATABASE {live}"));
    psql(
        "postgres",
        &format!(
            "CREATE ROLE {role} LOGIN; ALTER DATABASE {live} OWNER TO {role}; \
             REVOKE ALL ON DATABASE {live} FROM PUBLIC; \
             GRANT CONNECT, TEMPORARY ON DATABASE {live} TO {role}; \
             ALTER DATABASE {live} SET statement_timeout TO '5min'; \
             ALTER DATABASE {live} SET search_path TO app, public"
        ),
    );
    // What belongs to the database itself, and who owns what is in it.
    let attributes = |db: &str| {
        psql(
            db,
            &format!(
                "SELECT pg_get_userbyid(datdba) || ' ' || datacl::text || ' ' || \
                 (SELECT setconfig::text FROM pg_db_role_setting WHERE setdatabase = d.oid \
                 AND setrole = 0) || ' ' || (SELECT string_agg(tablename || ':' || tableowner, \
                 ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public') \
                 FROM pg_database d WHERE datname = '{db}'"
            ),
        )
        .replace(db, "DB")
    };
    psql(
        &live,
        &"SET ROLE {role}; CREATE TABLE schema_migrations (version text PRIMARY KEY); \
         INSERT INTO schema_migrations VALUES ('20260101'); \
         CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers, \
           total numeric(10,2)); \
         INSERT INTO customers (name) SELECT 'customer ' || i FROM generate_series(1, 300) i; \
         INSERT INTO orders (customer, total) SELECT 1 + i % 300, i * 1.25 \
           FROM generate_series(1, 2000) i"
            .replace("{role}", role),
    );
    let attributes_before = attributes(&live);
    assert!(
        attributes_before.contains(&format!("orders:{role}"))
            && attributes_before.contains("statement_timeout=5min"),
        "{attributes_before}"
    );
    let contents = |db: &str| {
        psql(
            db,
            "SELECT (SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM customers) \
             || ' / ' || (SELECT string_agg(id || ':' || customer || ':' || total, ',' \
             ORDER BY id) FROM orders) || ' / ' || (SELECT last_value FROM orders_id_seq)",
        )
    };
    let sb = Sandbox::plain();
    let cfg = config(&sb, &live, "");
    let snap = run(with_config(
        &sb,
        &cfg,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    let snapshot = snap["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot id: {snap:#}"))
        .to_string();
    psql(
        &live,
        "DELETE FROM orders WHERE customer = 7; \
         UPDATE customers SET name = 'renamed' WHERE id = 8; \
         INSERT INTO orders (customer, total) VALUES (9, 99.99)",
    );
    let changed = contents(&live);

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
    let orders = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("public.orders "))
        .unwrap_or_else(|| panic!("no orders line: {plan:#?}"));
    // 7 orders of customer 7 deleted, one added.
    let cells: Vec<&str> = orders.split_whitespace().collect();
    assert_eq!(cells, ["public.orders", "2000", "1994", "+6"], "{plan:#?}");
    // Not on a terminal and without --yes: refused before anything is done.
    run(with_config(
        &sb,
        &cfg,
        &["restore", &snapshot, "--source", "shop", "--in-place"],
    ))
    .code(2);
    assert_eq!(contents(&live), changed);

    // An application with a connection open on the live database.
    let mut app = psql_on(&live)
        .args(["-c", "SELECT pg_sleep(600)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
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
    let kept = done["previous_kept_as"].as_str().expect("kept").to_string();
    dbs.0.push(kept.clone());
    assert_eq!(done["database"], live.as_str(), "{done:#}");
    let ended = app.wait().unwrap();
    assert!(!ended.success(), "the app's connection was not ended");
    assert_eq!(contents(&kept), changed, "the previous database is kept");
    assert_eq!(attributes(&live), attributes_before);
    assert_eq!(attributes(&kept), attributes_before);
    let restored = contents(&live);
    assert_ne!(restored, changed);
    assert!(restored.contains("8:customer 8,"), "{restored}");
    assert_eq!(
        psql(&live, "SELECT count(*) FROM orders WHERE customer = 7"),
        "7"
    );
    let safety = done["safety_snapshot"].as_str().expect("safety id");
    let listed = run(with_config(&sb, &cfg, &["--json", "snapshots"]))
        .ok()
        .json();
    let pre = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == safety)
        .unwrap_or_else(|| panic!("no safety snapshot {safety}: {listed:#}"));
    assert_eq!(pre["kind"], "pre-restore", "{pre:#}");
    // The safety snapshot holds the changed data: restoring it brings that back.
    let back_from_safety = dbs.name("from_safety");
    run(with_config(
        &sb,
        &cfg,
        &[
            "restore",
            safety,
            "--source",
            "shop",
            "--to-database",
            &back_from_safety,
        ],
    ))
    .ok();
    assert_eq!(contents(&back_from_safety), changed);

    // A snapshot of the built-in export carries no owners: in place over a database whose
    // tables belong to the application's role, it is refused, and nothing changes.
    let builtin = config(&sb, &live, "method = \"builtin\"\n");
    let made = run(with_config(
        &sb,
        &builtin,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    let refused = run(with_config(
        &sb,
        &builtin,
        &[
            "restore",
            made["id"].as_str().unwrap(),
            "--source",
            "shop",
            "--in-place",
            "--yes",
        ],
    ))
    .code(2);
    assert!(
        refused.stderr.contains("does not carry owners") && refused.stderr.contains(role),
        "{refused:#?}"
    );
    assert_eq!(contents(&live), restored);
    config(&sb, &live, "");

    // A migration since the snapshot: refused, nothing changed, nothing left beside it.
    psql(
        &live,
        "INSERT INTO schema_migrations VALUES ('20260201'); \
         ALTER TABLE customers ADD COLUMN email text",
    );
    let before_refusal = contents(&live);
    let refused = run(with_config(
        &sb,
        &cfg,
        &[
            "restore",
            &snapshot,
            "--source",
            "shop",
            "--in-place",
            "--yes",
        ],
    ))
    .code(2);
    assert!(
        refused.stderr.contains("--allow-schema-change")
            && refused.stderr.contains("20260101")
            && refused.stderr.contains("20260201"),
        "{refused:#?}"
    );
    assert_eq!(contents(&live), before_refusal);
    assert_eq!(
        psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname LIKE '{live}\\_%'")
        ),
        "1",
        "only the kept database is beside {live}"
    );
    let allowed = run(with_config(
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
            "--allow-schema-change",
        ],
    ))
    .ok()
    .json();
    dbs.0
        .push(allowed["previous_kept_as"].as_str().unwrap().to_string());
    assert_eq!(
        psql(
            &live,
            "SELECT string_agg(version, ',') FROM schema_migrations"
        ),
        "20260101"
    );
}

/// The server ends the dump's connections midway (as a restart or an administrator would):
/// the backup fails, says why, and leaves no snapshot, with either method.
#[test]
fn a_dump_cut_off_midway_leaves_no_snapshot() {
    let mut dbs = Databases(Vec::new());
    let source = dbs.name("cutoff");
    load_pagila(&source);
    for method in ["dump", "builtin"] {
        let sb = Sandbox::plain();
        let cfg = config(&sb, &source, &format!("method = \"{method}\"\n"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let killer = {
            let (stop, source) = (stop.clone(), source.clone());
            std::thread::spawn(move || {
                let mut ended = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let n = psql(
                        "postgres",
                        &format!(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                             WHERE datname = '{source}' AND pid <> pg_backend_pid()"
                        ),
                    );
                    ended += n.parse::<u32>().unwrap_or(0);
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                ended
            })
        };
        let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(killer.join().unwrap() > 0, "{method}: nothing was cut off");
        assert_ne!(o.code, 0, "{method}: {o:#?}");
        // (pg_dump's session and psql say the server's FATAL; the built-in client says so,
        // or, when the connection is gone before the FATAL is read, that it was closed or
        // lost.)
        assert!(
            o.stderr.contains("terminat")
                || o.stderr.contains("connection to the server was closed")
                || o.stderr.contains("connection to the server was lost"),
            "{method}: {o:#?}"
        );
        assert!(sb.snapshots().is_empty(), "{method}");
    }
}

/// The built-in export over TLS, as libpq's parameters ask (the server here offers TLS with
/// Debian's self-signed certificate): `sslmode=require` encrypts; `verify-ca` with the
/// server's own certificate as the root checks it and works, and the drill reads the rows back
/// over TLS too (`checksums`); with roots that did not sign it (`sslrootcert=system`) the backup
/// fails naming the certificate, and nothing is stored.
#[test]
fn the_builtin_export_speaks_tls_as_libpq_parameters_ask() {
    assert_eq!(
        psql("postgres", "SHOW ssl"),
        "on",
        "the test server offers TLS (Debian's default)"
    );
    let cert = psql("postgres", "SHOW ssl_cert_file");
    let mut dbs = Databases(Vec::new());
    let db = stock_database(&mut dbs, "tls");
    for (query, works) in [
        ("sslmode=require".to_owned(), true),
        (format!("sslmode=verify-ca&sslrootcert={cert}"), true),
        ("sslmode=verify-ca&sslrootcert=system".to_owned(), false),
    ] {
        let sb = Sandbox::plain();
        let cfg = sb.p("backstop.toml");
        fs::write(
            &cfg,
            format!(
                "repository = \"repo\"\n[sources.shop]\nkind = \"postgres\"\n\
                 url = \"postgres://postgres@127.0.0.1:5432/{db}?{query}\"\n\
                 method = \"builtin\"\n"
            ),
        )
        .unwrap();
        let o = run(with_config(&sb, &cfg, &["backup", "--source", "shop"]));
        if !works {
            assert_ne!(o.code, 0, "{query}: {o:#?}");
            assert!(o.stderr.contains("certificate"), "{query}: {o:#?}");
            assert!(sb.snapshots().is_empty(), "{query}");
            continue;
        }
        assert_eq!(o.code, 0, "{query}: {o:#?}");
        let drilled = run(with_config(
            &sb,
            &cfg,
            &["--json", "verify", "--restore-test", "--latest"],
        ))
        .ok()
        .json();
        assert_eq!(drilled[0]["passed"], true, "{query}: {drilled:#}");
        assert!(
            passed_check(&drilled[0], "checksums"),
            "{query}: {drilled:#}"
        );
    }
}

/// Asserts that the drill's scratch database `scratch` is gone from the server.
fn assert_dropped(scratch: &str) {
    assert_eq!(
        psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'")
        ),
        "0",
        "the scratch database is dropped"
    );
}

/// Roles made by a test, dropped when it ends however it ends.
struct Roles(Vec<String>);

impl Drop for Roles {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = psql_on("postgres")
                .args(["-c", &format!("DROP ROLE IF EXISTS {r}")])
                .output();
        }
    }
}

/// A drill server of the source's own (`drill_url`, `drill_password_file`): the source's user
/// may read the database but not create one, so a drill on the source's server fails and says
/// what it needs; with a drill URL whose user may, the drill loads the dump there, as that
/// user, says where, and passes. (And `export` of the dump's tables as CSV.)
#[test]
fn drills_run_on_the_configured_drill_server() {
    // Declared first, dropped last: a role is dropped once the database granting to it is.
    let mut roles = Roles(Vec::new());
    let mut dbs = Databases(Vec::new());
    let source = stock_database(&mut dbs, "drilled_elsewhere");
    let (reader, driller) = (dbs.name("reader"), dbs.name("driller"));
    roles.0.extend([reader.clone(), driller.clone()]);
    psql(
        "postgres",
        &format!(
            "CREATE ROLE {reader} LOGIN PASSWORD 'reads'; \
             CREATE ROLE {driller} LOGIN CREATEDB PASSWORD 'drills'"
        ),
    );
    psql(&source, &format!("GRANT SELECT ON stock TO {reader}"));
    let sb = Sandbox::plain();
    fs::write(sb.p("reader.pw"), "reads\n").unwrap();
    fs::write(sb.p("driller.pw"), "drills\n").unwrap();
    let url = |user: &str, db: &str| format!("postgres://{user}@127.0.0.1:5432/{db}");
    let cfg = sb.p("backstop.toml");
    let write = |drill: &str| {
        fs::write(
            &cfg,
            format!(
                "repository = \"repo\"\n[sources.shop]\nkind = \"postgres\"\n\
                 url = \"{}\"\npassword_file = \"reader.pw\"\n{drill}",
                url(&reader, &source)
            ),
        )
        .unwrap()
    };
    write("");
    run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
    // `export` writes a dump's tables as CSV (every table of the record when none is named),
    // from the dump alone, and in the other formats typed by their values.
    run(with_config(
        &sb,
        &cfg,
        &["export", "latest", "--to", "tables"],
    ))
    .ok();
    assert_eq!(
        fs::read_to_string(sb.p("tables/public.stock.csv")).unwrap(),
        "sku,qty\r\nA-1,4\r\nB-2,0\r\nC-3,17\r\n"
    );
    // Other formats: the columns typed by their values (qty numbers, sku text).
    run(with_config(
        &sb,
        &cfg,
        &["export", "latest", "--format", "json", "--to", "tables"],
    ))
    .ok();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(sb.p("tables/public.stock.json")).unwrap())
            .unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"sku": "A-1", "qty": 4}, {"sku": "B-2", "qty": 0}, {"sku": "C-3", "qty": 17}])
    );
    let drill = || {
        run(with_config(
            &sb,
            &cfg,
            &["--json", "verify", "--restore-test", "--latest"],
        ))
        .json()
    };
    let failed = drill();
    assert_eq!(failed[0]["passed"], false, "{failed:#}");
    assert!(
        failed[0]["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("CREATEDB"),
        "{failed:#}"
    );
    write(&format!(
        "drill_url = \"{}\"\ndrill_password_file = \"driller.pw\"\n",
        url(&driller, "postgres")
    ));
    let drilled = drill();
    assert_eq!(drilled[0]["passed"], true, "{drilled:#}");
    let loaded = drilled[0]["checks"][0]["detail"].as_str().unwrap();
    assert!(
        loaded.contains(&format!("postgres://{driller}@127.0.0.1:5432")),
        "{drilled:#}"
    );
    assert!(passed_check(&drilled[0], "checksums"), "{drilled:#}");
    assert_dropped(&scratch_database(&drilled[0]));
}

/// Data validation rules on a PostgreSQL source: `validate` runs them on the live database
/// (exit 4 naming the orphaned order and the negative stock by their keys), a restore drill
/// runs them on the scratch database the dump was loaded into (its check `rules`), and a rule
/// that is SQLite's own (`integrity`) is refused when the config loads.
#[test]
fn rules_run_on_a_postgres_source_and_in_its_drills() {
    let mut dbs = Databases(Vec::new());
    let source = stock_database(&mut dbs, "ruled");
    psql(
        &source,
        "CREATE TABLE orders (id int PRIMARY KEY, sku text, placed timestamptz); \
         INSERT INTO orders VALUES (1, 'A-1', now() - interval '1 day'), \
           (2, 'Z-9', now() - interval '1 day'), (3, 'C-3', now() + interval '30 days'); \
         UPDATE stock SET qty = -2 WHERE sku = 'B-2'",
    );
    let sb = Sandbox::plain();
    let rules = "[[sources.shop.rules]]\nkind = \"orphans\"\ntable = \"orders\"\ncolumn = \"sku\"\n\
                 references = \"stock(sku)\"\n\
                 [[sources.shop.rules]]\nkind = \"not_negative\"\ntable = \"public.stock\"\ncolumn = \"qty\"\n\
                 [[sources.shop.rules]]\nkind = \"unique\"\ntable = \"orders\"\ncolumn = \"sku\"\n\
                 [[sources.shop.rules]]\nkind = \"no_future_dates\"\ntable = \"orders\"\ncolumn = \"placed\"\n\
                 [[sources.shop.rules]]\nname = \"stock counted\"\nsql = \"SELECT sum(qty) FROM stock\"\nexpect = 19\n";
    let cfg = config(&sb, &source, rules);
    let o = run(with_config(&sb, &cfg, &["validate", "--source", "shop"])).code(4);
    for expected in [
        "3 of 5 rules failing",
        "FAIL orphans orders.sku: 1 rows whose sku names no stock.sku: id=2",
        "FAIL not_negative public.stock.qty: 1 rows with a negative qty: sku='B-2'",
        "ok   unique orders.sku",
        "FAIL no_future_dates orders.placed: 1 rows with a placed in the future: id=3",
        "ok   stock counted: returned 19, expected 19",
    ] {
        assert!(o.stdout.contains(expected), "{expected}: {o:#?}");
    }
    // pg_dump (`auto` here): the rules run in the snapshot pg_dump reads, at capture.
    let o = run(with_config(
        &sb,
        &cfg,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    assert_eq!(o["source_kind"], "postgres", "{o:#}");
    let failing = o["validation"]
        .as_array()
        .unwrap_or_else(|| panic!("{o:#}"))
        .iter()
        .filter(|r| r["passed"] == false)
        .count();
    assert_eq!(failing, 3, "{o:#}");
    let drill = run(with_config(
        &sb,
        &cfg,
        &["--json", "verify", "--restore-test", "--latest"],
    ))
    .json();
    let check = check_named(&drill[0], "rules");
    assert_eq!(check["passed"], false, "{check:#}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .starts_with("3 of 5 rules failing: orphans orders.sku (1 rows: id=2)"),
        "{check:#}"
    );
    // The built-in export runs them at capture, in its own snapshot transaction: stored with
    // the snapshot, and the source is `rules-failing`.
    let builtin = config(&sb, &source, &format!("method = \"builtin\"\n{rules}"));
    let o = run(with_config(
        &sb,
        &builtin,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    let failing: Vec<&str> = o["validation"]
        .as_array()
        .unwrap_or_else(|| panic!("{o:#}"))
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        failing,
        [
            "orphans orders.sku",
            "not_negative public.stock.qty",
            "no_future_dates orders.placed"
        ],
        "{o:#}"
    );
    let status = run(with_config(&sb, &builtin, &["--json", "status"]))
        .code(5)
        .json();
    let shop = status_source(&status, "shop");
    assert_eq!(
        shop["validation"]["failing"].as_array().unwrap().len(),
        3,
        "{shop:#}"
    );
    psql(
        &source,
        "DELETE FROM orders WHERE id IN (2, 3); UPDATE stock SET qty = 0 WHERE sku = 'B-2'; \
         UPDATE stock SET qty = 19 WHERE sku = 'C-3'",
    );
    let o = run(with_config(&sb, &cfg, &["validate", "--source", "shop"])).code(4);
    assert!(
        o.stdout
            .contains("FAIL stock counted: returned 23, expected 19"),
        "{o:#?}"
    );
    psql(&source, "UPDATE stock SET qty = 15 WHERE sku = 'C-3'");
    let o = run(with_config(&sb, &cfg, &["validate", "--source", "shop"])).ok();
    assert!(o.stdout.contains("all 5 rules hold"), "{o:#?}");
    let cfg = config(
        &sb,
        &source,
        "[[sources.shop.rules]]\nkind = \"integrity\"\n",
    );
    let o = run(with_config(&sb, &cfg, &["validate", "--source", "shop"])).code(2);
    assert!(
        o.stderr.contains("integrity is a check of SQLite's own"),
        "{o:#?}"
    );
}

/// `import` into a PostgreSQL source: a dry run reports every bad row with the server's own
/// verdict (a foreign key, a NOT NULL, a duplicate key, a value its type refuses), changes
/// nothing and takes no snapshot; the mended file goes in after a `pre-change` snapshot, in
/// one transaction, its exact decimals kept.
#[test]
fn a_supplier_file_imports_into_a_postgres_table() {
    let mut dbs = Databases(Vec::new());
    let source = stock_database(&mut dbs, "imported");
    psql(
        &source,
        "CREATE TABLE prices (sku text PRIMARY KEY REFERENCES stock(sku), \
         price numeric(12,4) NOT NULL CHECK (price >= 0), since date)",
    );
    let sb = Sandbox::plain();
    let cfg = config(&sb, &source, "");
    let bad = "SKU;Preis;Since\nA-1;1234,5678;07.12.2026\nZ-9;1,00;2026-12-01\n\
               B-2;;2026-12-01\nA-1;2,00;2026-12-01\nC-3;-1;2026-12-01\n";
    fs::write(sb.p("prices.csv"), bad).unwrap();
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
    let at = |line: u64| {
        problems
            .iter()
            .find(|p| p["line"] == line)
            .cloned()
            .unwrap_or_else(|| panic!("no problem at line {line}: {report:#}"))
    };
    assert!(
        at(3)["reason"].as_str().unwrap().contains("foreign key"),
        "{report:#}"
    );
    assert_eq!(at(4)["column"], "price", "{report:#}");
    assert!(
        at(5)["reason"].as_str().unwrap().contains("duplicate key"),
        "{report:#}"
    );
    assert!(
        at(6)["reason"]
            .as_str()
            .unwrap()
            .contains("check constraint"),
        "{report:#}"
    );
    assert_eq!(problems.len(), 4, "{report:#}");
    assert_eq!(psql(&source, "SELECT count(*) FROM prices"), "0");
    assert!(sb.snapshots().is_empty());
    fs::write(
        sb.p("prices.csv"),
        "SKU;Preis;Since\nA-1;1234,5678;07.12.2026\nB-2;0,5;2026-12-01\n",
    )
    .unwrap();
    let done = import(&[]).ok().json();
    assert_eq!(done["imported"], 2, "{done:#}");
    let snaps = sb.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["kind"], "pre-change");
    assert_eq!(done["pre_change_snapshot"], snaps[0]["id"]);
    assert_eq!(
        psql(&source, "SELECT sku, price, since FROM prices ORDER BY sku"),
        "A-1|1234.5678|2026-12-07\nB-2|0.5000|2026-12-01"
    );
}

/// `diff` of two PostgreSQL snapshots, taken by either method: the snapshot records each
/// table's primary key, so rows added, removed and changed are matched by it (a keyless table
/// by whole rows), a new table is named, and a dump read with no server at all (a new machine:
/// no backstop.toml) compares the same.
#[test]
fn diff_names_the_rows_that_changed_between_two_dumps() {
    let mut dbs = Databases(Vec::new());
    let source = stock_database(&mut dbs, "diffed");
    psql(
        &source,
        "CREATE TABLE log (line text); INSERT INTO log VALUES ('opened'), ('sold A-1')",
    );
    for method in ["dump", "builtin"] {
        let sb = Sandbox::plain();
        let cfg = config(&sb, &source, &format!("method = \"{method}\"\n"));
        run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
        let record = run(with_config(&sb, &cfg, &["--json", "show", "latest"]))
            .ok()
            .json();
        let stock = record["item_list"][0]["server"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "public.stock")
            .cloned()
            .unwrap_or_else(|| panic!("{record:#}"));
        assert_eq!(stock["key"], serde_json::json!(["sku"]), "{method}");
        psql(
            &source,
            "UPDATE stock SET qty = 5 WHERE sku = 'A-1'; DELETE FROM stock WHERE sku = 'B-2'; \
             INSERT INTO stock VALUES ('D-4', 1); INSERT INTO log VALUES ('sold D-4'); \
             CREATE TABLE returns (id int PRIMARY KEY)",
        );
        run(with_config(&sb, &cfg, &["backup", "--source", "shop"])).ok();
        let ids: Vec<String> = sb
            .snapshots()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        let d = run(with_config(
            &sb,
            &cfg,
            &["--json", "diff", &ids[0], &ids[1]],
        ))
        .ok()
        .json();
        assert_eq!(
            d["tables_added"],
            serde_json::json!(["public.returns"]),
            "{d:#}"
        );
        let table = |name: &str| {
            d["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{method}: {d:#}"))
        };
        let stock = table("public.stock");
        assert_eq!(
            (&stock["added"], &stock["removed"], &stock["changed"]),
            (
                &serde_json::json!(1),
                &serde_json::json!(1),
                &serde_json::json!(1)
            ),
            "{method}: {stock:#}"
        );
        assert_eq!(
            stock["first_added"],
            serde_json::json!(["sku='D-4'"]),
            "{stock:#}"
        );
        assert_eq!(
            stock["first_removed"],
            serde_json::json!(["sku='B-2'"]),
            "{stock:#}"
        );
        assert_eq!(stock["schema_changed"], false, "{stock:#}");
        let log = table("public.log");
        assert_eq!(
            (&log["added"], &log["removed"]),
            (&serde_json::json!(1), &serde_json::json!(0)),
            "{log:#}"
        );
        // Without backstop.toml (the dump alone), and in words.
        let o = run({
            let mut c = sb.bare();
            c.args(["diff", &ids[0], &ids[1], "--table", "public.stock"]);
            c
        })
        .ok();
        assert!(
            o.stdout
                .contains("public.stock: 3 -> 3 rows; 1 added, 1 removed, 1 changed (by sku)")
                && o.stdout.contains("~ sku='A-1': qty '4' -> '5'"),
            "{method}: {o:#?}"
        );
        psql(
            &source,
            "UPDATE stock SET qty = 4 WHERE sku = 'A-1'; INSERT INTO stock VALUES ('B-2', 0); \
             DELETE FROM stock WHERE sku = 'D-4'; DELETE FROM log WHERE line = 'sold D-4'; \
             DROP TABLE returns",
        );
    }
}

/// A new database with one small table, `stock` (sku A-1: 4, B-2: 0, C-3: 17).
fn stock_database(dbs: &mut Databases, what: &str) -> String {
    let db = dbs.name(what);
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(
        &db,
        "CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL); \
         INSERT INTO stock VALUES ('A-1', 4), ('B-2', 0), ('C-3', 17)",
    );
    db
}

/// The daemon of `cfg` on a free port, with an API token of `scope` and the web user `ada` of
/// `role` ([`add_user`]): the daemon (killed when dropped), where it listens, the token.
fn serve(sb: &Sandbox, cfg: &Path, scope: &str, role: &str) -> (Daemon, String, String) {
    let token = run(with_config(
        sb,
        cfg,
        &["token", "add", "t", "--scope", scope],
    ))
    .ok()
    .stdout
    .trim()
    .to_string();
    add_user(sb, cfg, role);
    let listen = format!("127.0.0.1:{}", free_port());
    let mut serve = with_config(sb, cfg, &["serve", "--listen", &listen]);
    serve
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    (Daemon(serve.spawn().unwrap()), listen, token)
}

/// The web user `ada` (password `correct horse battery`) with `role`.
fn add_user(sb: &Sandbox, cfg: &Path, role: &str) {
    add_web_user(with_config(
        sb,
        cfg,
        &["user", "add", "ada", "--role", role],
    ));
}

/// An HTTP client logged in to the daemon at `listen` as `ada` ([`add_user`]), with its session
/// cookie.
fn logged_in(listen: &str) -> (ureq::Agent, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let login = agent
        .post(&format!("http://{listen}/login"))
        .content_type("application/x-www-form-urlencoded")
        .send("username=ada&password=correct+horse+battery")
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (agent, cookie)
}

/// A POST with a bearer token and a JSON body: the status and the body parsed.
fn post_json(url: &str, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into();
    let mut r = agent
        .post(url)
        .header("Authorization", format!("Bearer {token}"))
        .content_type("application/json")
        .send(body.to_string())
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// The daemon's API restores a PostgreSQL source in place, as the CLI does: the plan first
/// (rows in the snapshot and now), then the job, which takes a safety snapshot, switches, and
/// keeps the previous database; the restore page does the same for an administrator.
#[test]
fn the_api_and_the_page_restore_a_postgres_source_in_place() {
    let mut dbs = Databases(Vec::new());
    let live = stock_database(&mut dbs, "api");
    let sb = Sandbox::plain();
    let cfg = config(
        &sb,
        &live,
        "[daemon]\nverify = \"off\"\nverify_data = \"off\"\nforget = \"off\"\nprune = \"off\"\n",
    );
    let made = run(with_config(
        &sb,
        &cfg,
        &["--json", "backup", "--source", "shop"],
    ))
    .ok()
    .json();
    let snapshot = made["id"].as_str().unwrap().to_string();
    psql(&live, "DELETE FROM stock WHERE sku = 'B-2'");
    let (_daemon, listen, token) = serve(&sb, &cfg, "admin", "admin");
    let url = format!("http://{listen}/api/v1/restores");
    let start = std::time::Instant::now();
    while get(&format!("http://{listen}/api/v1/status"), &token).is_none() {
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (status, plan) = post_json(
        &url,
        &token,
        &serde_json::json!({"snapshot": snapshot, "source": "shop", "dry_run": true}),
    );
    assert_eq!(status, 200, "{plan:#}");
    assert_eq!(plan["database"], live.as_str(), "{plan:#}");
    assert_eq!(plan["server"]["tables"][0]["rows"], 3, "{plan:#}");
    assert_eq!(plan["now"]["tables"][0]["rows"], 2, "{plan:#}");
    // Row by row: the one row deleted since comes back.
    assert_eq!(plan["comparison"]["rows"], true, "{plan:#}");
    assert_eq!(
        plan["tables"][0]["since"],
        serde_json::json!({"added": 0, "deleted": 1, "changed": 0}),
        "{plan:#}"
    );
    assert!(
        plan["summary"]
            .as_str()
            .unwrap()
            .starts_with("Restoring brings back 1 deleted row of public.stock"),
        "{plan:#}"
    );
    assert_eq!(
        psql(&live, "SELECT count(*) FROM stock"),
        "2",
        "a plan changes nothing"
    );

    let (status, job) = post_json(
        &url,
        &token,
        &serde_json::json!({"snapshot": snapshot, "source": "shop", "wait": true}),
    );
    assert_eq!(status, 201, "{job:#}");
    let kept = job["result"]["previous_kept_as"]
        .as_str()
        .unwrap_or_else(|| panic!("{job:#}"))
        .to_string();
    dbs.0.push(kept.clone());
    assert_eq!(
        psql(
            &live,
            "SELECT string_agg(sku || '=' || qty, ',' ORDER BY sku) FROM stock"
        ),
        "A-1=4,B-2=0,C-3=17"
    );
    assert_eq!(psql(&kept, "SELECT count(*) FROM stock"), "2");
    let safety = job["result"]["safety_snapshot"].as_str().unwrap();
    let listed = run(with_config(&sb, &cfg, &["--json", "snapshots"]))
        .ok()
        .json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == safety && s["kind"] == "pre-restore"),
        "{listed:#}"
    );

    // The restore page does the same for an administrator: the plan, then the confirmed form.
    psql(&live, "UPDATE stock SET qty = 99 WHERE sku = 'A-1'");
    let (agent, cookie) = logged_in(&listen);
    let page = agent
        .get(&format!(
            "http://{listen}/restore?source=shop&snapshot={snapshot}"
        ))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        page.contains(&format!(
            "Replace the live PostgreSQL database <strong class=\"mono\">{live}</strong>"
        )),
        "{page}"
    );
    assert!(page.contains("public.stock"), "{page}");
    assert!(page.contains("Same schema as now"), "{page}");
    // The row changed since, counted and in words.
    assert!(page.contains("Changed since"), "{page}");
    assert!(
        page.contains(
            "1 row of public.stock changed since the snapshot will go back to its old values"
        ),
        "{page}"
    );
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field: {page}"))
        .to_owned();
    let posted = agent
        .post(&format!("http://{listen}/restore"))
        .header("Cookie", &cookie)
        .content_type("application/x-www-form-urlencoded")
        .send(format!(
            "csrf={csrf}&source=shop&snapshot={snapshot}&confirm=shop"
        ))
        .unwrap();
    assert_eq!(posted.status().as_u16(), 303, "{:?}", posted.headers());
    // (During the switch the database is refused for a moment, as the application sees it.)
    let qty = || {
        psql_on(&live)
            .args(["-A", "-t", "-c", "SELECT qty FROM stock WHERE sku = 'A-1'"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let start = std::time::Instant::now();
    while qty() != "4" {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the page's restore did not happen"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // A table of the snapshot as CSV, from its page and the API (from the dump alone).
    let page = agent
        .get(&format!("http://{listen}/snapshots/{snapshot}"))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let link = format!("/api/v1/snapshots/{snapshot}/tables/public.stock/csv");
    assert!(page.contains(&link), "{page}");
    let (status, csv) = get(&format!("http://{listen}{link}"), &token).unwrap();
    assert_eq!(status, 200, "{csv}");
    assert_eq!(csv, "sku,qty\r\nA-1,4\r\nB-2,0\r\nC-3,17\r\n");
    let (status, body) = get(
        &format!("http://{listen}/api/v1/snapshots/{snapshot}/tables/public.nope/csv"),
        &token,
    )
    .unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("public.nope"), "{body}");

    // Both previous databases are kept: drop them with the test's.
    let kept_now = psql(
        "postgres",
        &format!(
            "SELECT string_agg(datname, ' ') FROM pg_database WHERE datname LIKE '{live}\\_before\\_%'"
        ),
    );
    for k in kept_now.split_whitespace() {
        if !dbs.0.iter().any(|d| d == k) {
            dbs.0.push(k.to_owned());
        }
    }
    assert_eq!(kept_now.split_whitespace().count(), 2, "{kept_now}");
}

/// The daemon backs up a PostgreSQL source on its schedule and drills it (with `checksums`),
/// and the status page shows the source proven by that snapshot.
#[test]
fn the_daemon_backs_up_and_drills_a_postgres_source() {
    let mut dbs = Databases(Vec::new());
    let live = stock_database(&mut dbs, "daemon");
    let sb = Sandbox::plain();
    let cfg = config(
        &sb,
        &live,
        "every = \"6h\"\n[daemon]\nverify = \"off\"\nverify_data = \"off\"\nforget = \"off\"\n\
         prune = \"off\"\n",
    );
    let (_daemon, listen, token) = serve(&sb, &cfg, "read", "viewer");
    let shop = drilled_status(&listen, &token, "shop");
    assert_eq!(shop["state"], "ok", "{shop:#}");
    assert_eq!(
        shop["verified"]["snapshot"], shop["last_snapshot"],
        "{shop:#}"
    );
    // The drill's record has the byte-for-byte check.
    let snapshot = shop["last_snapshot"].as_str().unwrap().to_string();
    let shown = run(with_config(&sb, &cfg, &["--json", "show", &snapshot]))
        .ok()
        .json();
    let checks = shown["verification"][0]["checks"].to_string();
    assert!(
        checks.contains("checksums") && checks.contains("byte for byte"),
        "{shown:#}"
    );
    let (agent, cookie) = logged_in(&listen);
    let page = agent
        .get(&format!("http://{listen}/"))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        page.contains("postgres") && page.contains(&snapshot[..8]),
        "the page names the source's kind and the proven snapshot: {page}"
    );
}

/// `restore SNAPSHOT --source shop --in-place --dry-run --json`: the plan.
fn in_place_plan(sb: &Sandbox, cfg: &Path, snapshot: &str) -> serde_json::Value {
    run(with_config(
        sb,
        cfg,
        &[
            "--json",
            "restore",
            snapshot,
            "--source",
            "shop",
            "--in-place",
            "--dry-run",
        ],
    ))
    .ok()
    .json()
}

/// The rows of a PostgreSQL table in a restore plan's JSON (`tables`), by name.
fn plan_table<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no table {name} in the plan: {plan:#}"))
}

/// Waits until no scratch database of a comparison is left on the server (another test's may be
/// in use for a moment).
fn assert_no_compare_database_left() {
    let start = std::time::Instant::now();
    loop {
        let left = psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'backstop\\_compare\\_%'",
        );
        if left == "0" {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "a scratch database of a comparison is left: {left}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// A restore plan of a PostgreSQL source counts the rows entered, deleted and changed since
/// the snapshot in each table, matched by primary key (composite keys, quoted names) or, in a
/// table without one, by content; a table whose columns changed is not compared. The values'
/// text does not depend on the live database's own settings (its time zone, date style). The
/// snapshot is loaded into a scratch database that is dropped again, and the live database is
/// only read. A user who may not create a database gets the row counts and the reason.
#[test]
fn a_postgres_plan_counts_the_rows_changed_since_the_snapshot() {
    let mut roles = Roles(Vec::new());
    let mut dbs = Databases(Vec::new());
    for method in ["dump", "builtin"] {
        let live = dbs.name("compare");
        psql("postgres", &format!("CREATE DATABASE {live}"));
        psql(
            "postgres",
            &format!(
                "ALTER DATABASE {live} SET timezone TO 'America/New_York'; \
                 ALTER DATABASE {live} SET DateStyle TO 'SQL, DMY'"
            ),
        );
        psql(
            &live,
            "CREATE TABLE customers (id int PRIMARY KEY, name text, seen timestamptz, \
               score float8); \
             INSERT INTO customers SELECT i, 'c' || i, \
               '2026-01-01 10:00+00'::timestamptz + i * interval '1 hour', i / 3.0 \
               FROM generate_series(1, 500) i; \
             CREATE TABLE stock (sku text, bin int, qty int, PRIMARY KEY (sku, bin)); \
             INSERT INTO stock VALUES ('A', 1, 4), ('A', 2, 0), ('B', 1, 7); \
             CREATE TABLE log (msg text, n int); \
             INSERT INTO log VALUES ('x', 1), ('x', 1), ('y', NULL); \
             CREATE TABLE prices (sku text PRIMARY KEY, price numeric); \
             INSERT INTO prices VALUES ('A', 1.5); \
             CREATE SCHEMA \"Odd Schema\"; \
             CREATE TABLE \"Odd Schema\".\"Mixed Case\" (id int PRIMARY KEY, note text); \
             INSERT INTO \"Odd Schema\".\"Mixed Case\" VALUES (1, NULL), (2, 'NULL'); \
             CREATE TABLE sales (id int, day date, PRIMARY KEY (id, day)) \
               PARTITION BY RANGE (day); \
             CREATE TABLE sales_2026 PARTITION OF sales \
               FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); \
             INSERT INTO sales VALUES (1, '2026-03-01'), (2, '2026-04-01')",
        );
        let sb = Sandbox::plain();
        let cfg = config(&sb, &live, &format!("method = \"{method}\"\n"));
        let snapshot = run(with_config(
            &sb,
            &cfg,
            &["--json", "backup", "--source", "shop"],
        ))
        .ok()
        .json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        psql(
            &live,
            "INSERT INTO customers VALUES (501, 'new', now(), 1), (502, 'new', now(), 2); \
             DELETE FROM customers WHERE id IN (10, 11, 12); \
             UPDATE customers SET score = score + 1e-9 WHERE id = 20; \
             UPDATE customers SET seen = seen WHERE id = 21; \
             UPDATE stock SET qty = 5 WHERE sku = 'A' AND bin = 2; \
             DELETE FROM stock WHERE sku = 'B'; \
             INSERT INTO stock VALUES ('C', 1, 1); \
             DELETE FROM log WHERE ctid = (SELECT min(ctid) FROM log WHERE msg = 'x'); \
             INSERT INTO log VALUES ('z', 2); \
             ALTER TABLE prices ADD COLUMN currency text; \
             UPDATE \"Odd Schema\".\"Mixed Case\" SET note = NULL WHERE id = 2; \
             INSERT INTO sales VALUES (3, '2026-05-01')",
        );
        let before = tables(&live);
        let plan = in_place_plan(&sb, &cfg, &snapshot);
        assert_eq!(plan["comparison"]["rows"], true, "{method}: {plan:#}");
        let since = |name: &str| {
            let t = plan_table(&plan, name);
            let s = &t["since"];
            (
                s["added"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{name}: {t:#}")),
                s["deleted"].as_u64().unwrap(),
                s["changed"].as_u64().unwrap(),
            )
        };
        assert_eq!(since("public.customers"), (2, 3, 1), "{method}");
        assert_eq!(since("public.stock"), (1, 1, 1), "{method}: composite key");
        assert_eq!(since("public.log"), (1, 1, 0), "{method}: by content");
        assert_eq!(plan_table(&plan, "public.log")["by_content"], true);
        assert_eq!(
            since("\"Odd Schema\".\"Mixed Case\""),
            (0, 0, 1),
            "{method}: NULL is not the text NULL"
        );
        let prices = plan_table(&plan, "public.prices");
        assert!(prices.get("since").is_none(), "{prices:#}");
        assert_eq!(prices["not_compared"], "schema differs, rows not compared");
        // A partitioned table's rows are counted once, in its partition.
        assert_eq!(since("public.sales_2026"), (1, 0, 0), "{method}");
        assert_eq!(
            plan_table(&plan, "public.sales")["not_compared"],
            "partitioned table, its rows are compared in its partitions"
        );
        let summary = plan["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(
                "Restoring loses 2 rows of public.customers, 1 row of public.log, 1 row of \
                 public.sales_2026 and 1 row of public.stock entered since"
            ),
            "{summary}"
        );
        assert!(
            summary.ends_with("The rows of public.prices were not compared (see below)."),
            "{summary}"
        );
        assert_eq!(tables(&live), before, "the live database is only read");
        assert_no_compare_database_left();

        // The same in words.
        let text = run(with_config(
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
        .ok()
        .stdout;
        assert!(
            text.contains("rows since the snapshot, matched by primary key"),
            "{text}"
        );
        assert!(
            text.contains("3 deleted since then will come back"),
            "{text}"
        );
        assert!(text.contains("matched by content"), "{text}");

        // A user who may read the database but not create one: row counts, and why.
        if method == "dump" {
            let reader = format!("bs_reader_{}", std::process::id());
            roles.0.push(reader.clone());
            psql(
                &live,
                &format!(
                    "CREATE ROLE {reader} LOGIN NOCREATEDB; \
                     GRANT USAGE ON SCHEMA public, \"Odd Schema\" TO {reader}; \
                     GRANT SELECT ON ALL TABLES IN SCHEMA public, \"Odd Schema\" TO {reader}"
                ),
            );
            let cfg = sb.p("reader.toml");
            fs::write(
                &cfg,
                format!(
                    "repository = \"repo\"\n[sources.shop]\nkind = \"postgres\"\n\
                     url = \"postgres://{reader}@127.0.0.1:5432/{live}\"\n"
                ),
            )
            .unwrap();
            let plan = in_place_plan(&sb, &cfg, &snapshot);
            assert_eq!(plan["comparison"]["rows"], false, "{plan:#}");
            let note = plan["comparison"]["note"].as_str().unwrap();
            assert!(note.contains("CREATEDB"), "{note}");
            assert!(
                plan["summary"]
                    .as_str()
                    .unwrap()
                    .starts_with("By row counts"),
                "{plan:#}"
            );
            assert!(plan_table(&plan, "public.customers").get("since").is_none());
        }
    }
}
