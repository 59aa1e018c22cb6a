//! `backstop export`: the tables of a snapshot's database as CSV, JSON, JSON lines and SQL,
//! each read back by an independent reader (Python's `csv`, `json` and `sqlite3`, and the
//! `sqlite3` shell) and compared value for value with the database the snapshot was taken
//! of: Chinook (../shared/testdata) and a table of awkward values.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// Chinook with a table of the values an export can get wrong.
fn shop(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("shop.db");
    fs::copy(testdata("sqlite/chinook.sqlite"), &db).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE odd (id INTEGER PRIMARY KEY, t TEXT, r REAL, b BLOB, n); \
         INSERT INTO odd VALUES \
           (1, 'comma, \"quote\" and ''apostrophe''', 3.0, x'00ff0a', NULL), \
           (2, 'line\nbreak and CR\r\nend', 0.1, x'', 42), \
           (3, '', 1e300, NULL, 'mixed'), \
           (4, NULL, -2.5e-300, x'deadbeef', 7.25), \
           (5, ' café 日本 ', 9e999, NULL, x'01'); \
         CREATE INDEX odd_t ON odd(t);",
    )
    .unwrap();
    db
}

/// Compares every exported file in `dir` (format `format`, one file a table, the file of
/// table T at `path_of(T)`) with the tables of `db`, in Python; the number of tables checked.
fn check_with_python(db: &Path, dir: &Path, format: &str) -> usize {
    let script = r#"
import csv, json, math, os, sqlite3, subprocess, sys
db, out, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
src = sqlite3.connect(db)
src.text_factory = bytes
tables = [r[0].decode() for r in src.execute(
    "SELECT name FROM pragma_table_list WHERE schema='main' AND type='table' "
    "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
def same_real(a, b):
    return a == b or (math.isinf(a) and math.isinf(b) and (a > 0) == (b > 0))
for t in tables:
    # In rowid order, as the export reads them (a query of one column may read an index).
    rows = list(src.execute(f'SELECT * FROM "{t}" ORDER BY rowid'))
    path = os.path.join(out, f"{t}.{fmt}")
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as f:
            got = list(csv.reader(f))
        cols = [d[0] for d in src.execute(f'SELECT * FROM "{t}" LIMIT 0').description]
        assert got[0] == cols, (t, got[0], cols)
        assert len(got) - 1 == len(rows), (t, len(got) - 1, len(rows))
        for i, c in enumerate(cols):
            kinds = [k[0] for k in src.execute(f'SELECT typeof("{c}") FROM "{t}" ORDER BY rowid')]
            for g, r, k in zip(got[1:], rows, kinds):
                v = g[i]
                if k == b"null": assert v == "", (t, c, v)
                elif k == b"integer": assert v == str(r[i]), (t, c, v, r[i])
                elif k == b"real":
                    assert same_real(float(v.replace("inf", "Infinity")), r[i]), (t, c, v, r[i])
                elif k == b"text": assert v == r[i].decode(), (t, c, v, r[i])
                elif k == b"blob": assert v == r[i].hex(), (t, c, v, r[i])
    elif fmt in ("json", "jsonl"):
        with open(path, encoding="utf-8") as f:
            got = json.load(f) if fmt == "json" else [json.loads(l) for l in f]
        assert len(got) == len(rows), (t, len(got), len(rows))
        cols = [d[0] for d in src.execute(f'SELECT * FROM "{t}" LIMIT 0').description]
        for i, c in enumerate(cols):
            kinds = [k[0] for k in src.execute(f'SELECT typeof("{c}") FROM "{t}" ORDER BY rowid')]
            for g, r, k in zip(got, rows, kinds):
                assert list(g.keys()) == cols, (t, list(g.keys()), cols)
                v = g[c]
                if k == b"null": assert v is None
                elif k == b"integer": assert v == r[i] and isinstance(v, int), (t, c, v)
                elif k == b"real":
                    if math.isinf(r[i]): assert v == ("Infinity" if r[i] > 0 else "-Infinity")
                    else: assert isinstance(v, float) and v == r[i], (t, c, v, r[i])
                elif k == b"text": assert v == r[i].decode(), (t, c, v, r[i])
                elif k == b"blob": assert v == r[i].hex(), (t, c, v, r[i])
    elif fmt == "sql":
        new = os.path.join(out, f"{t}.loaded.db")
        with open(path, "rb") as f:
            subprocess.run(["sqlite3", new], stdin=f, check=True)
        dst = sqlite3.connect(new)
        dst.text_factory = bytes
        q = f'SELECT * FROM "{t}" ORDER BY rowid'
        typed = lambda c: [tuple((type(v).__name__, v) for v in r) for r in c.execute(q)]
        assert typed(dst) == typed(src), t
        idx = lambda c: sorted(r[0] for r in c.execute(
            "SELECT name FROM sqlite_schema WHERE type='index' AND sql IS NOT NULL AND tbl_name=?", (t,)))
        assert idx(dst) == idx(src), (t, idx(dst), idx(src))
        dst.close()
        os.remove(new)
print(len(tables))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .arg(dir)
        .arg(format)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{format}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Every table of a SQLite snapshot in each format, read back by Python and compared value
/// for value: types kept (a real stays a real, a blob is hex, NULL is not the empty string),
/// text with commas, quotes and line breaks intact, the SQL script loaded by the `sqlite3`
/// shell into the same table and indexes.
#[test]
fn every_table_in_every_format_reads_back_as_the_database_has_it() {
    let sb = Sandbox::plain();
    let db = shop(&sb.p(""));
    sb.run(&["backup", db.to_str().unwrap()]).ok();
    for format in ["csv", "json", "jsonl", "sql"] {
        let dir = sb.p(format);
        let listed = sb.json(&[
            "export",
            "latest",
            "--format",
            format,
            "--to",
            dir.to_str().unwrap(),
        ]);
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 12, "{format}: {listed:?}");
        assert_eq!(check_with_python(&db, &dir, format), 12, "{format}");
        // Nothing but the tables' files is left there (no scratch copy of the database).
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 12, "{format}");
    }
}

/// One table, in the dated layout; a file that exists is refused unless --overwrite; a table
/// the database lacks is refused and nothing is written; a snapshot of a folder with two
/// databases needs the one named.
#[test]
fn tables_are_named_placed_by_date_and_never_overwritten_unasked() {
    let sb = Sandbox::plain();
    let db = shop(&sb.p(""));
    let made = sb.json(&["backup", db.to_str().unwrap()]);
    let id = made["id"].as_str().unwrap().to_owned();
    let out = sb.p("daily");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", id.as_str(), "--to", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        sb.run(&args)
    };
    export(&["--table", "Genre", "--layout", "dated"]).ok();
    let days: Vec<_> = fs::read_dir(out.join("shop.db")).unwrap().collect();
    assert_eq!(days.len(), 1);
    let day = days[0].as_ref().unwrap().path();
    let name = day.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(name.len(), 10, "YYYY-MM-DD: {name}");
    let files: Vec<String> = fs::read_dir(&day)
        .unwrap()
        .map(|f| f.unwrap().file_name().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(
        files[0].starts_with(&format!("Genre_{name}_")) && files[0].ends_with(".csv"),
        "{files:?}"
    );
    let csv = fs::read_to_string(day.join(&files[0])).unwrap();
    assert_eq!(csv.lines().count(), 26, "a header and 25 genres");

    export(&["--table", "Genre"]).ok();
    let o = export(&["--table", "Genre"]).code(2);
    assert!(o.stderr.contains("--overwrite"), "{o:#?}");
    export(&["--table", "Genre", "--overwrite", "--format", "csv"]).ok();

    let o = export(&["--table", "Album", "--table", "Nope"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("no table \"Nope\""), "{o:#?}");
    assert!(!out.join("Album.csv").exists(), "nothing is written");
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|f| f.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "no scratch left behind: {left:?}");

    // A folder with two databases.
    let folder = sb.p("app");
    fs::create_dir(&folder).unwrap();
    fs::copy(&db, folder.join("a.db")).unwrap();
    fs::copy(&db, folder.join("b.db")).unwrap();
    let made = sb.json(&["backup", folder.to_str().unwrap()]);
    let id = made["id"].as_str().unwrap().to_owned();
    let o = sb.run(&["export", &id, "--to", "x"]).code(2);
    assert!(
        o.stderr.contains("several databases") && o.stderr.contains("a.db"),
        "{o:#?}"
    );
    let listed = sb.json(&[
        "export",
        &format!("{id}:app/b.db"),
        "--table",
        "Artist",
        "--to",
        "x",
    ]);
    assert_eq!(listed[0]["rows"], 275, "{listed:#}");
}

/// The python that has openpyxl (scripts/test installs it into a venv of its own).
fn workbook_python() -> String {
    std::env::var("BACKSTOP_TEST_PYTHON")
        .ok()
        .or_else(|| {
            let p = "/var/tmp/backstop-test-tools/readers/bin/python";
            Path::new(p).exists().then(|| p.to_owned())
        })
        .expect("no python with openpyxl: run the tests with scripts/test, which installs it")
}

/// Workbooks, read back by openpyxl: a sheet a table with the header, every value as the
/// database has it (numbers as numbers, text with its line breaks, BLOBs in hex; a cell cannot
/// tell the empty string from no value, so both read as empty); a table longer than a sheet
/// goes on over a second sheet, and the export says so.
#[test]
fn tables_as_workbooks_read_back_with_openpyxl() {
    let sb = Sandbox::plain();
    let db = shop(&sb.p(""));
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE long (n INTEGER PRIMARY KEY); \
             INSERT INTO long WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s \
             WHERE n < 1048580) SELECT n FROM s;",
        )
        .unwrap();
    }
    sb.run(&["backup", db.to_str().unwrap()]).ok();
    let dir = sb.p("books");
    let o = sb.run(&[
        "export",
        "latest",
        "--format",
        "xlsx",
        "--to",
        dir.to_str().unwrap(),
    ]);
    let o = o.ok();
    assert!(
        o.stderr.contains("long: 1048580 rows") && o.stderr.contains("2 sheets"),
        "{o:#?}"
    );
    let script = r#"
import math, os, sqlite3, sys
import openpyxl
from openpyxl.utils.escape import unescape
db, out = sys.argv[1], sys.argv[2]
src = sqlite3.connect(db)
src.text_factory = bytes
tables = [r[0].decode() for r in src.execute(
    "SELECT name FROM pragma_table_list WHERE schema='main' AND type='table' "
    "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
for t in tables:
    wb = openpyxl.load_workbook(os.path.join(out, f"{t}.xlsx"), read_only=True)
    if t == "long":
        assert wb.sheetnames == ["long", "long (2)"], wb.sheetnames
        dims = [ws.max_row for ws in wb]
        assert dims == [1048576, 1048580 - 1048575 + 1], dims
        continue
    assert wb.sheetnames == [t], (t, wb.sheetnames)
    got = list(wb[t].iter_rows(values_only=True))
    cols = [d[0] for d in src.execute(f'SELECT * FROM "{t}" LIMIT 0').description]
    assert list(got[0]) == cols, (t, got[0], cols)
    rows = list(src.execute(f'SELECT * FROM "{t}" ORDER BY rowid'))
    assert len(got) - 1 == len(rows), (t, len(got), len(rows))
    for i, c in enumerate(cols):
        kinds = [k[0] for k in src.execute(f'SELECT typeof("{c}") FROM "{t}" ORDER BY rowid')]
        for g, r, k in zip(got[1:], rows, kinds):
            v = g[i] if i < len(g) else None
            if k == b"null": assert v is None, (t, c, v)
            elif k in (b"integer", b"real"):
                if isinstance(r[i], float) and math.isinf(r[i]): assert v == "inf", (t, c, v)
                # (a cell holds a double; openpyxl reads one written without a point as an
                # int, so compare as doubles)
                else: assert float(v) == r[i], (t, c, v, r[i])
            elif k == b"text":
                want = r[i].decode()
                assert (unescape(v) if v is not None else "") == want, (t, c, v, want)
            elif k == b"blob":
                assert (v or "") == r[i].hex(), (t, c, v, r[i])
print(len(tables))
"#;
    let o = Command::new(workbook_python())
        .arg("-c")
        .arg(script)
        .arg(&db)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "13");
}

/// `diff` between two days of a database: tables added and removed, a column added, and rows
/// added, removed and changed, matched by primary key, each named with what changed.
#[test]
fn diff_names_what_changed_between_two_snapshots() {
    let sb = Sandbox::plain();
    let db = shop(&sb.p(""));
    let path = db.to_str().unwrap();
    let before = sb.json(&["backup", path])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "UPDATE Track SET UnitPrice = 1.29 WHERE TrackId = 1; \
             DELETE FROM InvoiceLine WHERE InvoiceLineId = 5; \
             INSERT INTO Genre VALUES (26, 'Polka'); \
             CREATE TABLE coupons (code TEXT PRIMARY KEY); DROP TABLE odd; \
             ALTER TABLE Customer ADD COLUMN loyalty INT;",
        )
        .unwrap();
    let after = sb.json(&["backup", path])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = sb.json(&["diff", &before, &after]);
    assert_eq!(d["tables_added"], serde_json::json!(["coupons"]), "{d:#}");
    assert_eq!(d["tables_removed"], serde_json::json!(["odd"]), "{d:#}");
    let table = |name: &str| {
        d["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("no {name}: {d:#}"))
            .clone()
    };
    let track = table("Track");
    assert_eq!(
        (&track["added"], &track["removed"], &track["changed"]),
        (
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::json!(1)
        )
    );
    assert_eq!(track["first_changed"][0]["key"], "TrackId=1");
    assert_eq!(
        track["first_changed"][0]["columns"],
        serde_json::json!([{"column": "UnitPrice", "before": "0.99", "after": "1.29"}])
    );
    assert_eq!(
        table("InvoiceLine")["first_removed"],
        serde_json::json!(["InvoiceLineId=5"])
    );
    assert_eq!(
        table("Genre")["first_added"],
        serde_json::json!(["GenreId=26"])
    );
    let customer = table("Customer");
    assert_eq!(customer["schema_changed"], true);
    assert_eq!(customer["columns_added"], serde_json::json!(["loyalty"]));
    assert_eq!(
        customer["changed"], 0,
        "a column added changes no row: {customer:#}"
    );
    assert_eq!(table("Album")["changed"], 0);

    let text = sb.run(&["diff", &before, &after]).ok().stdout;
    assert!(
        text.contains("Track: 3503 -> 3503 rows; 1 changed (by TrackId)")
            && text.contains("  ~ TrackId=1: UnitPrice 0.99 -> 1.29")
            && text.contains("tables added: coupons")
            && text.contains("unchanged: Album"),
        "{text}"
    );
    let only = sb.json(&["diff", &before, &after, "--table", "Genre"]);
    assert_eq!(only["tables"].as_array().unwrap().len(), 1, "{only:#}");
    let o = sb.run(&["diff", &before, &after, "--table", "Nope"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("Nope"), "{o:#?}");
}

/// Workbooks backed up in a folder are read as tables: the manifest lists each worksheet and
/// each Excel table (its sheet, header, rows and column types), as openpyxl reads the tables'
/// ranges; `export` writes the tables too, cell for cell as openpyxl reads them; a file that is
/// not a readable workbook is kept as bytes (restored byte for byte) with a warning.
#[test]
fn workbook_sheets_and_tables_are_in_the_manifest_and_export() {
    let sb = Sandbox::plain();
    let books = sb.p("books");
    fs::create_dir(&books).unwrap();
    for n in ["table-multiple.xlsx", "temperature-table.xlsx"] {
        fs::copy(testdata(&format!("xlsx/calamine/{n}")), books.join(n)).unwrap();
    }
    fs::write(
        books.join("locked.xlsx"),
        b"PK\x03\x04 not a workbook at all",
    )
    .unwrap();
    // Stored whole, with a warning: exit 3, as for a database whose check fails.
    let snap = run({
        let mut c = sb.cmd();
        c.args(["--json", "backup"]).arg(&books);
        c
    })
    .code(3)
    .json();
    let id = snap["id"].as_str().unwrap().to_owned();
    let shown = sb.json(&["show", &id]);
    let warnings = shown["warnings"].to_string();
    assert!(
        warnings.contains("books/locked.xlsx") && warnings.contains("kept as bytes only"),
        "{shown:#}"
    );
    let item = |name: &str| {
        shown["item_list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == format!("books/{name}"))
            .cloned()
            .unwrap()
    };
    assert!(item("locked.xlsx")["workbook"].is_null());
    let tables = item("table-multiple.xlsx")["workbook"]["tables"].clone();
    let described: Vec<String> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let cols: Vec<String> = t["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    format!(
                        "{}:{}",
                        c["name"].as_str().unwrap(),
                        c["type"].as_str().unwrap()
                    )
                })
                .collect();
            format!(
                "{} {} {} {} {}",
                t["kind"].as_str().unwrap(),
                t["name"].as_str().unwrap(),
                t["sheet"].as_str().unwrap_or("-"),
                t["rows"],
                cols.join(",")
            )
        })
        .collect();
    // As openpyxl shows the workbook: Sheet3 holds two tables with an empty row between
    // them, so its columns mix numbers and text; the tables' own columns do not.
    assert_eq!(
        described,
        [
            "sheet Sheet1 - 4 Item:number,Type:text,Quantity:number",
            "sheet Sheet2 - 4 Item:number,Price:number",
            "sheet Sheet3 - 10 Item:mixed,Units:mixed",
            "table Inventory Sheet1 4 Item:number,Type:text,Quantity:number",
            "table Pricing Sheet2 4 Item:number,Price:number",
            "table Sales_Bob Sheet3 4 Item:number,Units:number",
            "table Sales_Alice Sheet3 4 Item:number,Units:number",
        ]
    );
    let out = sb.p("out");
    sb.run(&[
        "export",
        &format!("{id}:books/table-multiple.xlsx"),
        "--to",
        out.to_str().unwrap(),
    ])
    .ok();
    // Each table as openpyxl reads its range: names, rows and cells.
    let script = r#"
import csv, os, sys
import openpyxl
book, out = sys.argv[1], sys.argv[2]
wb = openpyxl.load_workbook(book, data_only=True)
checked = 0
for ws in wb.worksheets:
    for t in ws.tables.values():
        def shown(v):
            if v is None: return ""
            if isinstance(v, float) and v.is_integer(): return str(int(v))
            return str(v)
        want = [[shown(c.value) for c in row] for row in ws[t.ref]]
        with open(os.path.join(out, f"{t.name}.csv"), newline="", encoding="utf-8") as f:
            got = list(csv.reader(f))
        assert got == want, (t.name, got, want)
        checked += 1
print(checked)
"#;
    let o = Command::new(workbook_python())
        .arg("-c")
        .arg(script)
        .arg(books.join("table-multiple.xlsx"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "4");
    assert!(out.join("Sheet3.csv").exists());
    let restored = sb.p("restored");
    sb.restore(&id, &restored);
    assert_eq!(
        fs::read(restored.join("books/locked.xlsx")).unwrap(),
        fs::read(books.join("locked.xlsx")).unwrap()
    );
}

/// A workbook saved again with one cell of one sheet changed (by openpyxl, which also stamps
/// the time of saving into every member's header) shares its other members with yesterday's:
/// the second backup stores about the changed sheet, not the workbook; both days restore byte
/// for byte.
#[test]
fn a_workbook_where_one_sheet_changed_shares_the_others() {
    let sb = Sandbox::plain();
    fs::create_dir(sb.p("docs")).unwrap();
    let book = sb.p("docs/book.xlsx");
    let python = |code: &str| {
        let o = Command::new(workbook_python())
            .args(["-c", code, book.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    python(
        "import openpyxl, random, sys\n\
         random.seed(7)\n\
         wb = openpyxl.Workbook(); ws = wb.active; ws.title = 'Prices'\n\
         for i in range(3000): ws.append([f'SKU-{i:05}', random.random() * 100, random.randint(0, 500)])\n\
         ws = wb.create_sheet('Suppliers')\n\
         for i in range(800): ws.append([i, f'Supplier {i}', random.choice(['Oslo', 'Lyon', 'Porto'])])\n\
         wb.save(sys.argv[1])",
    );
    let first = sb.backup(&[&sb.p("docs")], &[]);
    let day1 = blake3_file(&book);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    python(
        "import openpyxl, sys\n\
         wb = openpyxl.load_workbook(sys.argv[1]); wb['Suppliers']['C5'] = 'Trondheim'; wb.save(sys.argv[1])",
    );
    let second = sb.backup(&[&sb.p("docs")], &[]);
    let size = fs::metadata(&book).unwrap().len();
    let added = second["bytes_added"].as_u64().unwrap();
    // The Suppliers sheet is about a fifth of the workbook.
    assert!(
        added * 3 < size,
        "{added} bytes added for a workbook of {size}: {first:#} {second:#}"
    );
    // `diff` of the two days: the changed row of the sheet, by whole rows (the sheet has no
    // header row: its first row names the columns).
    let d = sb.run(&[
        "diff",
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    ]);
    let o = d.ok();
    assert!(
        o.stdout
            .contains("Suppliers: 799 -> 799 rows; 1 added, 1 removed (by whole rows)")
            && o.stdout.contains("Trondheim")
            && o.stdout.contains("unchanged: Prices"),
        "{o:#?}"
    );
    for (id, sum) in [(&first["id"], day1), (&second["id"], blake3_file(&book))] {
        let to = sb.p(&format!("restored-{}", &id.as_str().unwrap()[..8]));
        sb.restore(id.as_str().unwrap(), &to);
        assert_eq!(blake3_file(&to.join("docs/book.xlsx")), sum);
    }
}

/// `validate`: a database with an orphaned row and a negative stock fails (exit 4), naming
/// both rows; the rules that hold say so; a restore drill runs them on the snapshot's image
/// (its check `rules`); a rule written wrong is refused when the config loads; once the data
/// is mended, every rule holds (exit 0) and the drill passes.
#[test]
fn validate_names_the_orphan_and_the_negative_stock() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF; \
             CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT); \
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INT, placed TEXT); \
             CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INT NOT NULL); \
             INSERT INTO customers VALUES (1, 'ann@example.com'), (2, 'bo@example.com'); \
             INSERT INTO orders VALUES (100, 1, '2026-11-30'), (101, 7, '2026-12-01'); \
             INSERT INTO stock VALUES ('A-1', 4), ('B-2', -3), ('C-3', 0);",
        )
        .unwrap();
    let rules = "[[sources.shop.rules]]\nkind = \"integrity\"\n\
         [[sources.shop.rules]]\nkind = \"orphans\"\ntable = \"orders\"\ncolumn = \"customer\"\nreferences = \"customers(id)\"\n\
         [[sources.shop.rules]]\nkind = \"unique\"\ntable = \"customers\"\ncolumn = \"email\"\n\
         [[sources.shop.rules]]\nname = \"no negative stock\"\nsql = \"SELECT count(*) FROM stock WHERE qty < 0\"\n\
         [[sources.shop.rules]]\nkind = \"not_negative\"\ntable = \"stock\"\ncolumn = \"qty\"\n";
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        format!("repository = \"repo\"\n[sources.shop]\npath = \"shop.db\"\n{rules}"),
    )
    .unwrap();
    let validate = |json: bool| {
        let mut c = sb.bare();
        c.arg("--config").arg(&cfg);
        if json {
            c.arg("--json");
        }
        c.args(["validate", "--source", "shop"]);
        run(c)
    };
    let o = validate(false).code(4);
    assert!(o.stdout.contains("3 of 5 rules failing"), "{o:#?}");
    assert!(
        o.stdout.contains(
            "FAIL orphans orders.customer: 1 rows whose customer names no customers.id: id=101"
        ),
        "{o:#?}"
    );
    assert!(
        o.stdout
            .contains("FAIL not_negative stock.qty: 1 rows with a negative qty: sku='B-2'"),
        "{o:#?}"
    );
    assert!(
        o.stdout
            .contains("FAIL no negative stock: returned 1, expected 0"),
        "{o:#?}"
    );
    assert!(o.stdout.contains("ok   integrity"), "{o:#?}");
    let report: serde_json::Value = serde_json::from_str(&validate(true).code(4).stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["rules"][1]["first"], serde_json::json!(["id=101"]));
    assert_eq!(report["rules"][1]["table"], "orders");

    // A restore drill runs the rules on the snapshot's image: the check `rules` fails, naming
    // the rows.
    let drill = || {
        let mut c = sb.bare();
        c.arg("--config").arg(&cfg);
        c.args(["backup", "--source", "shop"]);
        run(c).ok();
        let mut c = sb.bare();
        c.arg("--config")
            .arg(&cfg)
            .args(["--json", "verify", "--restore-test", "--latest"]);
        let out: serde_json::Value = serde_json::from_str(&run(c).stdout).unwrap();
        let rules = check_named(&out[0], "rules");
        (out[0]["passed"].clone(), rules)
    };
    let (passed, rules) = drill();
    assert_eq!(passed, false);
    assert_eq!(rules["passed"], false);
    let detail = rules["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("3 of 5 rules failing")
            && detail.contains("orphans orders.customer (1 rows: id=101)")
            && detail.contains("sku='B-2'"),
        "{detail}"
    );

    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "UPDATE stock SET qty = 0 WHERE sku = 'B-2'; DELETE FROM orders WHERE id = 101;",
        )
        .unwrap();
    let o = validate(false).ok();
    assert!(o.stdout.contains("all 5 rules hold"), "{o:#?}");
    let (passed, rules) = drill();
    assert_eq!(passed, true, "{rules:#}");
    assert_eq!(rules["detail"], "all 5 rules hold");

    fs::write(
        &cfg,
        "repository = \"repo\"\n[sources.shop]\npath = \"shop.db\"\n\
         [[sources.shop.rules]]\nkind = \"orphans\"\ntable = \"orders\"\ncolumn = \"customer\"\n",
    )
    .unwrap();
    let o = validate(false).code(2);
    assert!(
        o.stderr.contains("rule 1") && o.stderr.contains("references"),
        "{o:#?}"
    );
}

/// Rules at capture: each backup of a source with rules runs them in the capture's own read
/// transaction and stores the results with the database item; the backup says which fail,
/// `show` lists them, `status` turns the source `rules-failing` (exit 5). An unchanged database
/// keeps its results only while the rules stay the same: new rules run on the next backup.
#[test]
fn rules_run_at_capture_and_are_stored_with_the_snapshot() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA journal_mode = WAL; \
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INT); \
             CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INT NOT NULL); \
             INSERT INTO orders VALUES (100, 1), (101, 7); \
             INSERT INTO stock VALUES ('A-1', 4), ('B-2', -3);",
        )
        .unwrap();
    let cfg = sb.p("backstop.toml");
    let write_cfg = |rules: &str| {
        fs::write(
            &cfg,
            format!("repository = \"repo\"\n[sources.shop]\npath = \"shop.db\"\n{rules}"),
        )
        .unwrap()
    };
    write_cfg(
        "[[sources.shop.rules]]\nkind = \"integrity\"\n\
         [[sources.shop.rules]]\nkind = \"not_negative\"\ntable = \"stock\"\ncolumn = \"qty\"\n",
    );
    let cli = |args: &[&str]| {
        let mut c = sb.bare();
        c.arg("--config").arg(&cfg).args(args);
        run(c)
    };
    let o = cli(&["backup", "--source", "shop"]).ok();
    assert!(
        o.stdout
            .contains("validation at capture: 1 of 2 rules failing")
            && o.stdout
                .contains("FAIL not_negative stock.qty: 1 rows with a negative qty: sku='B-2'")
            && !o.stdout.contains("ok   integrity"),
        "{o:#?}"
    );
    let show = cli(&["show", "latest"]).ok();
    assert!(
        show.stdout
            .contains("validation rules at capture: 1 of 2 rules failing")
            && show.stdout.contains("ok   integrity"),
        "{show:#?}"
    );
    let status = cli(&["--json", "status"]).code(5).json();
    let shop = status_source(&status, "shop");
    assert_eq!(shop["state"], "rules-failing", "{shop:#}");
    assert_eq!(shop["validation"]["rules"], 2, "{shop:#}");
    assert_eq!(
        shop["validation"]["failing"][0]["first"],
        serde_json::json!(["sku='B-2'"])
    );

    // The results are those of the captured state: a change after the backup is not in them.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("UPDATE stock SET qty = 0 WHERE sku = 'B-2'")
        .unwrap();
    let shown = cli(&["--json", "show", "latest"]).ok().json();
    let items = shown["item_list"]
        .as_array()
        .unwrap_or_else(|| panic!("{shown:#}"));
    let v = &items[0]["database"]["validation"];
    assert_eq!(v["results"][1]["passed"], false, "{v:#}");
    assert_eq!(v["rules"].as_str().map(str::len), Some(64), "{v:#}");

    // Mended and backed up: every rule holds.
    let o = cli(&["--json", "backup", "--source", "shop"]).ok().json();
    assert_eq!(o["validation"][1]["passed"], true, "{o:#}");
    let status = cli(&["--json", "status"]).json();
    assert_ne!(status_source(&status, "shop")["state"], "rules-failing");

    // The same database under other rules: the new rules run, the old results are not kept.
    write_cfg(
        "[[sources.shop.rules]]\nkind = \"orphans\"\ntable = \"orders\"\ncolumn = \"customer\"\n\
         references = \"orders(id)\"\n",
    );
    let o = cli(&["--json", "backup", "--source", "shop"]).ok().json();
    let results = o["validation"]
        .as_array()
        .unwrap_or_else(|| panic!("{o:#}"));
    assert_eq!(results.len(), 1, "{o:#}");
    assert_eq!(results[0]["count"], 2, "{o:#}");
    assert_eq!(
        results[0]["first"],
        serde_json::json!(["id=100", "id=101"]),
        "{o:#}"
    );
}

/// A source's `export`: every backup that saves a snapshot also writes its tables as dated
/// CSV files; days older than `keep_days` are removed (only folders named as a date); a backup
/// that records nothing new writes nothing.
#[test]
fn every_backup_writes_its_plain_copy_and_old_days_go() {
    let sb = Sandbox::plain();
    shop(&sb.p(""));
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        "repository = \"repo\"\n[sources.shop]\npath = \"shop.db\"\nskip_unchanged = true\n\
         export = { to = \"plain\", keep_days = 3, tables = [\"Genre\", \"odd\"] }\n",
    )
    .unwrap();
    let folder = sb.p("plain/shop");
    fs::create_dir_all(folder.join("2020-01-01")).unwrap();
    fs::write(folder.join("2020-01-01/Genre_old.csv"), "x").unwrap();
    fs::create_dir_all(folder.join("notes")).unwrap();
    let backup = || {
        let mut c = sb.bare();
        c.arg("--config")
            .arg(&cfg)
            .args(["backup", "--source", "shop"]);
        run(c).ok()
    };
    let o = backup();
    assert!(o.stderr.contains("exported 2 table(s) of shop"), "{o:#?}");
    assert!(!folder.join("2020-01-01").exists(), "an old day is removed");
    assert!(
        folder.join("notes").exists(),
        "a folder not named as a date stays"
    );
    let days: Vec<_> = fs::read_dir(&folder)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|d| d != "notes")
        .collect();
    assert_eq!(days.len(), 1, "{days:?}");
    let files: Vec<String> = fs::read_dir(folder.join(&days[0]))
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("Genre_") && f.ends_with(".csv"))
    );
    // Nothing changed: no new snapshot, no new files.
    let o = backup();
    assert!(!o.stderr.contains("exported"), "{o:#?}");
    assert_eq!(fs::read_dir(folder.join(&days[0])).unwrap().count(), 2);
}

/// Workbooks as tables: each worksheet of a workbook in a snapshot as CSV (hidden sheets too,
/// chart sheets not), compared cell for cell with what openpyxl reads of the same file (its
/// cached values: numbers, dates, durations, errors, text with line breaks); and a workbook
/// source's `export` writes every sheet as dated CSV after each backup.
#[test]
fn every_sheet_of_a_workbook_exports_as_csv() {
    let sb = Sandbox::plain();
    let books = sb.p("books");
    fs::create_dir(&books).unwrap();
    let names = [
        "any_sheets.xlsx",
        "date.xlsx",
        "has_x000D_.xlsx",
        "errors.xlsx",
    ];
    for n in names {
        fs::copy(testdata(&format!("xlsx/calamine/{n}")), books.join(n)).unwrap();
    }
    let id = sb.json(&["backup", books.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in names {
        let out = sb.p(&format!("out/{n}"));
        sb.run(&[
            "export",
            &format!("{id}:books/{n}"),
            "--to",
            out.to_str().unwrap(),
        ])
        .ok();
    }
    let script = r#"
import csv, datetime, os, sys
import openpyxl
from openpyxl.utils.escape import unescape
books, out = sys.argv[1], sys.argv[2]
def shown(v):
    if v is None: return ""
    if isinstance(v, bool): return "TRUE" if v else "FALSE"
    if isinstance(v, datetime.datetime):
        return v.date().isoformat() if v.time() == datetime.time() else v.isoformat()
    if isinstance(v, datetime.timedelta): return f"PT{int(v.total_seconds())}S"
    if isinstance(v, float) and v.is_integer(): return str(int(v))
    if isinstance(v, str): return unescape(v)
    return str(v)
def trim(rows):
    rows = [list(r) for r in rows]
    for r in rows:
        while r and r[-1] == "": r.pop()
    while rows and not rows[-1]: rows.pop()
    return rows
checked = 0
for name in sorted(os.listdir(books)):
    wb = openpyxl.load_workbook(os.path.join(books, name), data_only=True)
    sheets = [ws for ws in wb.worksheets if type(ws).__name__ == "Worksheet"]
    files = sorted(os.listdir(os.path.join(out, name)))
    assert files == sorted(f"{ws.title}.csv" for ws in sheets), (name, files)
    for ws in sheets:
        want = trim([shown(v) for v in r] for r in ws.iter_rows(values_only=True))
        with open(os.path.join(out, name, f"{ws.title}.csv"), newline="", encoding="utf-8") as f:
            got = trim(csv.reader(f))
        assert got == want, (name, ws.title, got, want)
        checked += 1
print(checked)
"#;
    let o = Command::new(workbook_python())
        .arg("-c")
        .arg(script)
        .arg(&books)
        .arg(sb.p("out"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // any_sheets: Visible, Hidden, VeryHidden (not its chart sheet); date; has_x000D_; errors: 3.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "8",
        "sheets compared"
    );

    // A workbook source: every sheet as dated CSV after each backup.
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        "repository = \"repo\"\n[sources.prices]\npath = \"books/date.xlsx\"\n\
         export = { to = \"plain\" }\n",
    )
    .unwrap();
    let mut c = sb.bare();
    c.arg("--config")
        .arg(&cfg)
        .args(["backup", "--source", "prices"]);
    let o = run(c).ok();
    assert!(o.stderr.contains("exported 1 table(s) of prices"), "{o:#?}");
    let day = fs::read_dir(sb.p("plain/prices"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = fs::read_dir(&day).unwrap().next().unwrap().unwrap().path();
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("Sheet1_") && name.ends_with(".csv"),
        "{name}"
    );
    assert!(
        fs::read_to_string(&file)
            .unwrap()
            .starts_with("2021-01-01,15\r\n"),
        "{}",
        fs::read_to_string(&file).unwrap()
    );
}

/// `import`: a messy supplier file (Windows-1252, semicolons, decimal commas, classic Mac line
/// ends, a quoted line break, so rows are named by the line they start on) gets a dry-run
/// report of every bad row (a short row, a price that
/// is no number, a duplicate SKU, a supplier that does not exist, a date that is none) and
/// changes nothing; mended, it imports in one transaction after a pre-change snapshot, which
/// holds the table as it was.
#[test]
fn a_messy_supplier_file_is_reported_then_imported_after_a_pre_change_snapshot() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE suppliers (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
             INSERT INTO suppliers VALUES (1, 'Acme'), (2, 'Brot & Co'); \
             CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, \
               price REAL NOT NULL CHECK (price >= 0), supplier INT REFERENCES suppliers(id), \
               since DATE); \
             INSERT INTO products VALUES ('OLD-1', 'Kept', 1.0, 1, '2020-01-01');",
        )
        .unwrap();
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        "repository = \"repo\"\n[sources.shop]\npath = \"shop.db\"\n",
    )
    .unwrap();
    let rows = |bad: bool| -> Vec<u8> {
        let mut lines = vec![
            "SKU;Name;Price;Supplier;Since;Remark".to_owned(),
            "A-1;Caf\u{e9} cr\u{e8}me;2,50;1;07.12.2026;".to_owned(),
            "A-2;\"Two\nlines\";3;2;2026-12-01;note".to_owned(),
        ];
        if bad {
            lines.extend([
                "A-3;Short;1".to_owned(),
                "A-4;Pricey;abc;1;2026-12-01;".to_owned(),
                "A-1;Again;1,00;1;2026-12-01;".to_owned(),
                "A-5;Orphan;1,00;9;2026-12-01;".to_owned(),
                "A-6;Datum;1,00;1;31.02.2026;".to_owned(),
            ]);
        }
        let text = lines.join("\r");
        // Windows-1252, as a spreadsheet on an old Mac would save it.
        text.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect()
    };
    fs::write(sb.p("supplier.csv"), rows(true)).unwrap();
    let import = |dry: bool, json: bool| {
        let mut c = sb.bare();
        c.arg("--config").arg(&cfg);
        if json {
            c.arg("--json");
        }
        c.args([
            "import",
            "supplier.csv",
            "--into",
            "shop",
            "--table",
            "products",
        ]);
        if dry {
            c.arg("--dry-run");
        }
        run(c)
    };
    let count = || -> i64 {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM products", [], |r| r.get(0))
            .unwrap()
    };
    let o = import(true, false).code(4);
    for expected in [
        "Windows-1252, delimiter ';'",
        "(left out: Remark)",
        "line 5: 3 fields where the header has 6",
        "line 6, column price, value \"abc\": not a number",
        "line 7, column sku, value \"A-1\": UNIQUE constraint failed: products.sku",
        "line 8: FOREIGN KEY constraint failed",
        "line 9, column since, value \"31.02.2026\"",
        "dry run: 5 problem(s); nothing changed",
    ] {
        assert!(o.stdout.contains(expected), "{expected:?} in {o:#?}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&import(true, true).code(4).stdout).unwrap();
    assert_eq!(
        report["problems"].as_array().unwrap().len(),
        5,
        "{report:#}"
    );
    assert_eq!(report["rows"], 7);
    // A real import of the same file: refused, nothing changed, no snapshot taken.
    let o = import(false, false).code(4);
    assert!(o.stdout.contains("nothing was imported"), "{o:#?}");
    assert_eq!(count(), 1);
    assert!(sb.snapshots().is_empty());

    fs::write(sb.p("supplier.csv"), rows(false)).unwrap();
    let o = import(false, false).ok();
    assert!(
        o.stdout.contains("imported 2 row(s) into products"),
        "{o:#?}"
    );
    assert_eq!(count(), 3);
    let c = rusqlite::Connection::open(&db).unwrap();
    let (name, price, since): (String, f64, String) = c
        .query_row(
            "SELECT name, price, since FROM products WHERE sku = 'A-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (name.as_str(), price, since.as_str()),
        ("Café crème", 2.5, "2026-12-07")
    );
    let two: String = c
        .query_row("SELECT name FROM products WHERE sku = 'A-2'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(two, "Two\nlines");
    let snaps = sb.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["kind"], "pre-change", "{snaps:#?}");
    // The pre-change snapshot holds the table as it was: one product.
    let before = sb.p("before.db");
    let mut c = sb.bare();
    c.arg("--config").arg(&cfg).args([
        "restore",
        snaps[0]["id"].as_str().unwrap(),
        "--to",
        before.to_str().unwrap(),
    ]);
    run(c).ok();
    let n: i64 = rusqlite::Connection::open(&before)
        .unwrap()
        .query_row("SELECT count(*) FROM products", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

/// The daemon's backups write a source's plain copy too (its startup backup here).
/// A supplier's file without a header, thousands grouped and dates day first, imports through
/// a mapping file that names the file's columns by their place and says how values are
/// written; a file whose header uses other words for the table's columns (`Art.-Nr.`, `Menge`,
/// and a name the mapping file's `[synonyms]` gives) imports by synonym.
#[test]
fn files_without_a_header_and_with_other_words_import_by_mapping_and_synonym() {
    let sb = Sandbox::plain();
    let db = sb.p("shop.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, \
             price REAL, counted DATE, note TEXT)",
        )
        .unwrap();
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        "repository = \"repo\"\n[sources.shop]\npath = \"shop.db\"\n",
    )
    .unwrap();
    fs::write(
        sb.p("map.toml"),
        "[columns]\n\"1\" = \"sku\"\n\"2\" = \"qty\"\n\"3\" = \"price\"\n\"4\" = \"counted\"\n\
         [formats]\nqty = \"1.234\"\nprice = \"1.234,56\"\ncounted = \"%d/%m/%Y\"\n",
    )
    .unwrap();
    fs::write(
        sb.p("counted.csv"),
        "A-1;1.200;1.234,50;07/12/2026\nB-2;3;0,99;30/11/2026\n",
    )
    .unwrap();
    let import = |file: &str, extra: &[&str]| {
        let mut c = sb.bare();
        c.arg("--config").arg(&cfg).args([
            "--json", "import", file, "--into", "shop", "--table", "stock",
        ]);
        c.args(extra);
        run(c)
    };
    let rows = || {
        sql(
            &db,
            "SELECT sku, qty, price, counted, note FROM stock ORDER BY sku",
        )
    };
    // Without --no-header its first row would be the header: nothing matches.
    let o = import("counted.csv", &[]).code(4);
    assert!(o.stdout.contains("no column of the header"), "{o:#?}");
    let o = import("counted.csv", &["--no-header", "--map", "map.toml"]).ok();
    assert_eq!(o.json()["imported"], 2, "{o:#?}");
    assert_eq!(
        rows(),
        "A-1|1200|1234.5|2026-12-07|\nB-2|3|0.99|2026-11-30|"
    );
    // A value not written as its format says is reported with its line and column.
    fs::write(sb.p("bad.csv"), "C-3;7;1.5;2026-12-07\n").unwrap();
    let o = import("bad.csv", &["--no-header", "--map", "map.toml"]).code(4);
    let report = o.json();
    assert_eq!(report["problems"][0]["line"], 1, "{report:#}");
    assert_eq!(report["problems"][0]["column"], "counted", "{report:#}");

    fs::write(sb.p("syn.toml"), "[synonyms]\nnote = [\"Bemerkung\"]\n").unwrap();
    fs::write(sb.p("other.csv"), "Art.-Nr.,Menge,Bemerkung\nD-4,5,neu\n").unwrap();
    let o = import("other.csv", &["--map", "syn.toml"]).ok();
    let report = o.json();
    assert_eq!(
        report["mapping"],
        serde_json::json!([["Art.-Nr.", "sku"], ["Menge", "qty"], ["Bemerkung", "note"]]),
        "{report:#}"
    );
    assert!(rows().ends_with("D-4|5|||neu"), "{}", rows());
}

#[test]
fn the_daemons_backup_writes_the_plain_copy() {
    let sb = Sandbox::plain();
    shop(&sb.p(""));
    let cfg = sb.p("backstop.toml");
    fs::write(
        &cfg,
        "repository = \"repo\"\n[sources.shop]\npath = \"shop.db\"\nevery = \"6h\"\n\
         export = { to = \"plain\", tables = [\"Genre\"] }\n\
         [daemon]\nverify = \"off\"\nverify_data = \"off\"\nforget = \"off\"\nprune = \"off\"\n",
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut serve = sb.bare();
    serve
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--listen", &listen])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _daemon = Daemon(serve.spawn().unwrap());
    let folder = sb.p("plain/shop");
    let start = std::time::Instant::now();
    let file = loop {
        let found = fs::read_dir(&folder)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|day| fs::read_dir(day.path()).into_iter().flatten().flatten())
            .map(|f| f.path())
            .find(|p| p.extension().is_some_and(|e| e == "csv"));
        if let Some(f) = found {
            break f;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "no plain copy within 90 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("Genre_"), "{name}");
    assert_eq!(
        fs::read_to_string(&file).unwrap().lines().count(),
        26,
        "a header and 25 genres"
    );
}
