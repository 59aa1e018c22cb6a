//! Logical violations: rows stored under one schema, then a `writable_schema` edit that checks
//! them against another; the cases and the helpers that build them.

use std::fs;
use std::path::Path;

use rusqlite::Connection;

/// Stores rows with `setup`, then runs `edit` with `writable_schema` on, so the schema says
/// something the rows were never checked against.
pub(crate) fn redeclared(path: &Path, setup: &str, edit: &str) {
    let _ = fs::remove_file(path);
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;")
        .unwrap();
    conn.execute_batch(setup).unwrap();
    conn.execute_batch("PRAGMA writable_schema = ON;").unwrap();
    conn.execute_batch(edit).unwrap();
}

/// The `writable_schema` edit that makes `sql` the definition of the table or index it names.
pub(crate) fn retype(sql: &str) -> String {
    let name = sql
        .split(['(', ' '])
        .find(|w| !matches!(*w, "" | "CREATE" | "UNIQUE" | "TABLE" | "INDEX"))
        .expect("a CREATE statement names its table or index");
    let sql = sql.replace('\'', "''");
    format!("UPDATE sqlite_schema SET sql = '{sql}' WHERE name = '{name}';")
}

/// Cases, one a paragraph: what it is; the SQL that stores the rows; then, after `=>`, either
/// what the schema says instead (one `CREATE` statement without `;`) or the statements that
/// change it.
pub(crate) fn cases(text: &str) -> Vec<(String, String, String)> {
    let paragraphs = text
        .split("\n\n")
        .map(|p| p.lines().map(str::trim).filter(|l| !l.is_empty()));
    paragraphs
        .map(|mut lines| {
            let what = lines.next().expect("what the case is").to_owned();
            let rest: Vec<&str> = lines.collect();
            let arrow = rest
                .iter()
                .position(|l| l.starts_with("=> "))
                .expect("=> edit");
            let edit = rest[arrow..].join(" ")[3..].to_owned();
            let edit = if !edit.contains(';') {
                retype(&edit)
            } else {
                edit
            };
            (what, rest[..arrow].join(" "), edit)
        })
        .collect()
}

const TEN: &str = "INSERT INTO t VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10);";

/// Violations SQLite's quick_check reports, which the native check must flag itself.
pub(crate) fn required_violations() -> Vec<(String, String, String)> {
    cases(&format!(
        "NULL in a column later declared NOT NULL
         CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (NULL, 'x'), (1, 'y');
         => CREATE TABLE t(a INTEGER NOT NULL, b TEXT)

         integer in a column later declared TEXT
         CREATE TABLE t(a, b TEXT); INSERT INTO t VALUES (5, 'x');
         => CREATE TABLE t(a TEXT, b TEXT)

         text '123' in a column later declared INTEGER
         CREATE TABLE t(a, b); INSERT INTO t VALUES ('123', 'x');
         => CREATE TABLE t(a INTEGER, b)

         a partial index (5 of 10 rows) redeclared as a full one
         CREATE TABLE t(a); CREATE INDEX t_a ON t(a) WHERE a > 5; {TEN}
         => CREATE INDEX t_a ON t(a)

         the indexes of two tables with 10 and 20 rows swap their root pages
         CREATE TABLE t(a); CREATE INDEX t_a ON t(a); {TEN}
         CREATE TABLE u(b); CREATE INDEX u_b ON u(b);
         INSERT INTO u SELECT a FROM t UNION ALL SELECT -a FROM t;
         => CREATE TEMP TABLE roots AS
            SELECT name, rootpage FROM sqlite_schema WHERE name IN ('t_a', 'u_b');
         UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM roots WHERE name = 'u_b')
            WHERE name = 't_a';
         UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM roots WHERE name = 't_a')
            WHERE name = 'u_b';"
    ))
}

/// Schema changes where quick_check's verdict is whatever SQLite decides: compared, not fixed.
pub(crate) const EDGE_EDITS: &str = "
    an added column without a default, later NOT NULL
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b TEXT;
    => CREATE TABLE t(a, b TEXT NOT NULL)

    an added column with a default, later NOT NULL
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x';
    => CREATE TABLE t(a, b TEXT NOT NULL DEFAULT 'x')

    an added column whose integer default sits in a TEXT column
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b DEFAULT 5;
    => CREATE TABLE t(a, b TEXT DEFAULT 5)

    an added column whose default text is numeric, in an INTEGER column
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b DEFAULT '12';
    => CREATE TABLE t(a, b INTEGER DEFAULT '12')

    duplicates under an index later declared UNIQUE
    CREATE TABLE t(a); CREATE INDEX t_a ON t(a); INSERT INTO t VALUES (1), (1);
    => CREATE UNIQUE INDEX t_a ON t(a)

    a full index redeclared partial (it has more entries than its WHERE admits)
    CREATE TABLE t(a); CREATE INDEX t_a ON t(a); INSERT INTO t VALUES (1), (7);
    => CREATE INDEX t_a ON t(a) WHERE a > 5

    an index given one more column than its entries hold
    CREATE TABLE t(a, b); CREATE INDEX t_a ON t(a); INSERT INTO t VALUES (1, 2);
    => CREATE INDEX t_a ON t(a, b)

    a stored value in a column later declared the rowid alias
    CREATE TABLE t(id INTEGER, v); INSERT INTO t VALUES (7, 'x');
    => CREATE TABLE t(id INTEGER PRIMARY KEY, v)

    a rowid alias declared NOT NULL
    CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (7, 'x');
    => CREATE TABLE t(id INTEGER PRIMARY KEY NOT NULL, v NOT NULL)

    rows with more fields than the table has columns
    CREATE TABLE t(a, b, c); INSERT INTO t VALUES (1, 'x', 3.5);
    => CREATE TABLE t(a INTEGER, b TEXT)

    an index whose root page is its table's
    CREATE TABLE t(a); CREATE INDEX t_a ON t(a); INSERT INTO t VALUES (1);
    => UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 't')
       WHERE name = 't_a';

    an added column without a default, later NOT NULL DEFAULT NULL
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b TEXT;
    => CREATE TABLE t(a, b TEXT NOT NULL DEFAULT NULL)

    an added column without a default, later NOT NULL DEFAULT (NULL)
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b TEXT;
    => CREATE TABLE t(a, b TEXT NOT NULL DEFAULT (NULL))

    an added column without a default, later NOT NULL DEFAULT (abs(1))
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b TEXT;
    => CREATE TABLE t(a, b TEXT NOT NULL DEFAULT (abs(1)))

    an added column without a default, later NOT NULL DEFAULT CURRENT_TIMESTAMP
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b TEXT;
    => CREATE TABLE t(a, b TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)

    an added column without a default, later INTEGER DEFAULT '12'
    CREATE TABLE t(a); INSERT INTO t VALUES (1); ALTER TABLE t ADD COLUMN b;
    => CREATE TABLE t(a, b INTEGER DEFAULT '12')

    NULL in an INTEGER PRIMARY KEY DESC (not a rowid alias), later NOT NULL
    CREATE TABLE t(x INTEGER PRIMARY KEY DESC, y); INSERT INTO t VALUES (NULL, 1);
    => CREATE TABLE t(x INTEGER PRIMARY KEY DESC NOT NULL, y)

    NULL in an INT PRIMARY KEY (not a rowid alias), later NOT NULL
    CREATE TABLE t(x INT PRIMARY KEY, y); INSERT INTO t VALUES (NULL, 1);
    => CREATE TABLE t(x INT PRIMARY KEY NOT NULL, y)

    text '123' in a primary key column later declared INT
    CREATE TABLE t(x PRIMARY KEY, y); INSERT INTO t VALUES ('123', 1);
    => CREATE TABLE t(x INT PRIMARY KEY, y)

    text '123' in an INTEGER column of a two-column primary key
    CREATE TABLE t(x, y, PRIMARY KEY(x, y)); INSERT INTO t VALUES ('123', 1);
    => CREATE TABLE t(x INTEGER, y, PRIMARY KEY(x, y))

    NULL in an INTEGER column named as the primary key in a table constraint, later NOT NULL
    CREATE TABLE t(x INTEGER, y, PRIMARY KEY(x, y)); INSERT INTO t VALUES (NULL, 1);
    => CREATE TABLE t(x INTEGER NOT NULL, y, PRIMARY KEY(x, y))

    a partial index redeclared full, on a table named in another case
    CREATE TABLE Foo(a); CREATE INDEX i ON foo(a) WHERE a > 5;
    INSERT INTO Foo VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10);
    => CREATE INDEX i ON foo(a)

    text '123' in a quoted column of a quoted table later declared INTEGER
    CREATE TABLE [my t]([my a], b); INSERT INTO [my t] VALUES ('123', 1);
    => UPDATE sqlite_schema SET sql = 'CREATE TABLE [my t]([my a] INTEGER, b)'
       WHERE name = 'my t';

    text '123' in a column whose type is quoted
    CREATE TABLE t(a, b); INSERT INTO t VALUES ('123', 1);
    => CREATE TABLE t(a [INTEGER], b)

    two tables sharing one root page
    CREATE TABLE t(a); CREATE TABLE u(b); INSERT INTO t VALUES (1);
    => UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 't')
       WHERE name = 'u';

    schema text that is not UTF-8 (an identifier SQLite takes as it is)
    CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 2);
    => UPDATE sqlite_schema SET sql = CAST(x'435245415445205441424c4520742861b72c206229' AS TEXT)
       WHERE name = 't';";

/// Declared column types, split at `; `.
pub(crate) const DECLARED: &str = "INTEGER; INT; TINYINT; BIGINT; REAL; DOUBLE; FLOAT; NUMERIC; DECIMAL(10,5); \
    BOOLEAN; DATETIME; TEXT; VARCHAR(10); CLOB; NCHAR(5); STRING; BLOB; ; FLOATING POINT; \
    CHARINT; ANY";

/// Values as SQL expressions, split at `; `.
pub(crate) const STORED: &str = "NULL; 5; -1; 0; 2.5; 1e300; 9e999; -9e999; x'3132'; x''; '123'; ' 123'; \
    '123 '; '12abc'; 'abc'; ''; ' '; '1.5'; '1e3'; '0x10'; '+5'; '-0'; '9223372036854775807'; \
    '9223372036854775808'; '1.0'; '00012'; '.5'; '5.'; 'inf'; 'NaN'; '1' || char(0) || '2'; \
    '12' || char(0); '5' || char(10); char(9) || '5'; '1e999'; '-0.0'; '0x'; '\u{661}\u{662}'; \
    CAST(x'ff' AS TEXT); CAST(x'3132ff' AS TEXT); '1e'; '1e+'; '1e-'; '-'; '+'; '.'; 'e5'; \
    '1.2.3'; '1e5x'; '1 2'; '1E5'; '-.5'; '.e1'; '0e0'; '1ee5'; '--1'";
