//! Database servers (PostgreSQL, MariaDB/MySQL) as one thing to the layers above: a database
//! named by a URL, dumped by the server's own tool into one item, restored into a new database,
//! and drilled in a scratch database on its server. What differs per engine lives in
//! [`crate::postgres`] and [`crate::mariadb`]; the drill and its checks are the same for both.

use std::io::Write;
use std::process::ChildStdin;

use backstop_format::manifest::{ServerDatabase, SourceKind, TableRows};
use backstop_format::record::Check;

use crate::mariadb::Mariadb;
use crate::postgres::{Postgres, TableSum};
use crate::{Error, Source};

/// What writes a dump into a restore tool's input (the engine restoring the dump's content).
pub type Feed<'a> = dyn FnMut(&mut dyn Write) -> Result<(), Error> + 'a;

/// A built-in export's one item: `write` (run by a thread of its own, through a 1 MiB buffer,
/// as clients hand over a row at a time) writes the script into a pipe the engine reads as the
/// item `path` with `record`. The thread's outcome is [`finish_export`]'s.
pub(crate) fn export_entry(
    path: String,
    record: Option<ServerDatabase>,
    write: impl FnOnce(&mut dyn Write) -> Result<(), Error> + Send + 'static,
) -> Result<(crate::Entry, std::thread::JoinHandle<Result<(), Error>>), Error> {
    let (reader, writer) =
        std::io::pipe().map_err(|e| Error::io("making a pipe for the export", e))?;
    let handle = std::thread::spawn(move || {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, writer);
        write(&mut out)?;
        out.flush().map_err(|e| Error::io("writing the export", e))
    });
    let mut item =
        backstop_format::manifest::Item::new(path, backstop_format::manifest::ItemKind::Stream);
    item.server = record;
    Ok((
        crate::Entry {
            item,
            content: Some(crate::EntryContent::Stream {
                reader: Box::new(reader),
                chunking: crate::Chunking::ContentDefined,
            }),
            required: true,
            reuse_unchanged: false,
        },
        handle,
    ))
}

/// The outcome of an export's writer thread ([`export_entry`]), once: a failed write (the
/// connection lost midway) fails the source, so no snapshot is made.
pub(crate) fn finish_export(
    writer: &mut Option<std::thread::JoinHandle<Result<(), Error>>>,
) -> Result<(), Error> {
    match writer.take() {
        Some(w) => w
            .join()
            .map_err(|_| Error::Invalid("the export's writer stopped".into()))?,
        None => Ok(()),
    }
}

/// A database as it is now, in the terms of a dump's record ([`ServerDatabase`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Observed {
    pub tables: Vec<TableRows>,
    pub schema_fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
}

/// How a database server's source is captured (`method` in backstop.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// The server's dump tool where it is installed (and, for PostgreSQL, not older than the
    /// server), else the built-in export.
    #[default]
    Auto,
    /// The server's dump tool (`pg_dump`, `mariadb-dump`), or an error.
    Dump,
    /// backstop's own export, no tool needed ([`crate::pg_export`], [`crate::maria_export`]).
    Builtin,
}

impl Method {
    /// `auto`, `dump` or `builtin`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "auto" => Ok(Method::Auto),
            "dump" => Ok(Method::Dump),
            "builtin" => Ok(Method::Builtin),
            other => Err(Error::Invalid(format!(
                "method {other:?}: expected auto, dump or builtin"
            ))),
        }
    }

    /// As the snapshot's record names the method used (`dump` or `builtin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::Dump => "dump",
            Method::Builtin => "builtin",
        }
    }
}

/// A database on a PostgreSQL or a MariaDB/MySQL server.
#[derive(Debug, Clone)]
pub enum Server {
    Postgres(Postgres),
    Mariadb(Mariadb),
}

impl Server {
    /// The database at `url` for a source of `kind` (`postgres`, `mariadb` or its alias
    /// `mysql`); a URL with a password in it is refused (give `password` instead).
    pub fn new(kind: &str, url: &str, password: Option<String>) -> Result<Self, Error> {
        match kind {
            "postgres" => Ok(Server::Postgres(Postgres::new(url, password)?)),
            "mariadb" | "mysql" => Ok(Server::Mariadb(Mariadb::new(url, password)?)),
            other => Err(Error::Invalid(format!(
                "{other:?} is not a database server kind: expected postgres, mariadb or mysql"
            ))),
        }
    }

    /// The server's product name, for messages: `PostgreSQL` or `MariaDB`.
    pub fn product(&self) -> &'static str {
        match self {
            Server::Postgres(_) => "PostgreSQL",
            Server::Mariadb(_) => "MariaDB",
        }
    }

    /// The kind of the snapshots this database's dumps make.
    pub fn source_kind(&self) -> SourceKind {
        match self {
            Server::Postgres(_) => SourceKind::Postgres,
            Server::Mariadb(_) => SourceKind::Mariadb,
        }
    }

    /// The server, as its URL without the database (for messages).
    pub fn server(&self) -> String {
        match self {
            Server::Postgres(p) => p.server(),
            Server::Mariadb(m) => m.server(),
        }
    }

    /// The database's name.
    pub fn database(&self) -> String {
        match self {
            Server::Postgres(p) => p.database(),
            Server::Mariadb(m) => m.database(),
        }
    }

    /// The same server with another database.
    pub fn with_database(&self, name: &str) -> Self {
        match self {
            Server::Postgres(p) => Server::Postgres(p.with_database(name)),
            Server::Mariadb(m) => Server::Mariadb(m.with_database(name)),
        }
    }

    /// A source that dumps the database by `method` (see [`Postgres::dump_source`],
    /// [`Mariadb::dump_source`]).
    pub fn dump_source(&self, method: Method) -> Result<Box<dyn Source>, Error> {
        Ok(match self {
            Server::Postgres(p) => p.dump_source(method)?,
            Server::Mariadb(m) => match (method, m.dump_tool()) {
                (Method::Builtin, _) => Box::new(m.export_source(None)?),
                (Method::Auto, Err(e)) => Box::new(m.export_source(Some(format!(
                    "{e}: method = \"auto\" used the built-in export"
                )))?),
                _ => Box::new(m.dump_source()?),
            },
        })
    }

    /// [`Server::dump_source`] for a source with data validation `rules`, which run in the
    /// dump's own snapshot where it can be shared: for MariaDB with `auto` that is the built-in
    /// export's (mariadb-dump's transaction cannot be joined), which is then used, saying why.
    pub fn dump_source_with_rules(
        &self,
        method: Method,
        rules: &[crate::rules::Rule],
    ) -> Result<Box<dyn Source>, Error> {
        let mut source: Box<dyn Source> = match (self, method) {
            (Server::Mariadb(m), Method::Auto) if !rules.is_empty() => Box::new(
                m.export_source(Some(
                    "method = \"auto\" used the built-in export, in whose snapshot the \
                     source's rules run (mariadb-dump's cannot be shared)"
                        .into(),
                ))?,
            ),
            _ => self.dump_source(method)?,
        };
        source.use_rules(rules);
        Ok(source)
    }

    /// This database, to load a dump of the kind `record` describes into (PostgreSQL: the
    /// built-in export's plain SQL is loaded by `psql`, a `pg_dump` archive by `pg_restore`).
    pub fn for_dump(self, record: Option<&ServerDatabase>) -> Self {
        match self {
            Server::Postgres(p) => Server::Postgres(
                p.plain_sql(record.is_some_and(|r| r.method == Method::Builtin.as_str())),
            ),
            m @ Server::Mariadb(_) => m,
        }
    }

    /// Creates this (new) database on its server, like the one `like` describes (PostgreSQL:
    /// its encoding and locale; MariaDB: its default collation); an existing one is refused by
    /// the server.
    pub fn create(&self, like: Option<&ServerDatabase>) -> Result<(), Error> {
        match self {
            Server::Postgres(p) => p.create(like),
            Server::Mariadb(m) => m.create(like.and_then(|l| l.collation.as_deref())),
        }
    }

    /// Drops this database (after a restore into it failed, or a drill).
    pub fn drop_database(&self) -> Result<(), Error> {
        match self {
            Server::Postgres(p) => p.drop_database(),
            Server::Mariadb(m) => m.drop_database(),
        }
    }

    /// Loads a dump of this engine into this database: all of it, or only `tables` when some
    /// are named (their definitions and rows, without foreign keys or triggers). `feed` writes
    /// the dump; it may run more than once.
    pub fn restore_tables(&self, tables: &[String], feed: &mut Feed<'_>) -> Result<(), Error> {
        match self {
            Server::Postgres(p) => p.restore_tables(tables, feed),
            Server::Mariadb(m) => m.restore_tables(tables, feed),
        }
    }

    /// The database as it is now: every table's rows, the schema's fingerprint and version,
    /// to compare with a dump's record (a drill's scratch database, a restore's plan).
    pub fn observe(&self) -> Result<Observed, Error> {
        match self {
            Server::Postgres(p) => p.observe(),
            Server::Mariadb(m) => m.observe(),
        }
    }

    /// Puts the database `new` in this one's place, keeping this one as `keep_as`
    /// ([`Postgres::replace_with`]: by renaming the databases; [`Mariadb::replace_with`]: by
    /// moving the tables, which MariaDB can rename across databases). What could not be done
    /// after the switch is returned as warnings; an error means nothing was changed.
    pub fn replace_with(&self, new: &str, keep_as: &str) -> Result<Vec<String>, Error> {
        match self {
            Server::Postgres(p) => p.replace_with(new, keep_as).map(|()| Vec::new()),
            Server::Mariadb(m) => m.replace_with(new, keep_as),
        }
    }

    /// What an in-place restore needs of the server, checked before anything is done
    /// (MariaDB: the privilege to make the server read-only for the switch).
    pub fn check_replace(&self) -> Result<(), Error> {
        match self {
            Server::Postgres(_) => Ok(()),
            Server::Mariadb(m) => m.can_switch(),
        }
    }

    /// This database, with a restore into it giving the dump's objects the owners they had
    /// ([`Postgres::keeping_owners`]; MariaDB's restores leave definers out either way).
    pub fn keeping_owners(self) -> Self {
        match self {
            Server::Postgres(p) => Server::Postgres(p.keeping_owners()),
            m @ Server::Mariadb(_) => m,
        }
    }

    /// Imports the rows of `parsed` into `table` of this database, checked as
    /// [`crate::import::import_sqlite`] checks them; with `commit` all go in when every one
    /// does, otherwise nothing changes ([`crate::import_server`]).
    pub fn import(
        &self,
        table: &str,
        parsed: &crate::import::Parsed,
        mapping: &[(String, String)],
        options: &crate::import::Options,
        commit: bool,
    ) -> Result<crate::import::ImportReport, Error> {
        match self {
            Server::Postgres(p) => p.import(table, parsed, mapping, options, commit),
            Server::Mariadb(m) => m.import(table, parsed, mapping, options, commit),
        }
    }

    /// Runs the data validation `rules` on this database now, in one read-only transaction
    /// ([`crate::server_rules`]).
    pub fn run_rules(
        &self,
        rules: &[crate::rules::Rule],
    ) -> Result<Vec<crate::rules::RuleResult>, Error> {
        match self {
            Server::Postgres(p) => p.run_rules(rules),
            Server::Mariadb(m) => m.run_rules(rules),
        }
    }

    /// Writes the rows of `table` in the dump `feed` writes into `out` as CSV (see
    /// [`Postgres::table_csv`], [`Mariadb::table_csv`]); the rows written.
    pub fn table_csv(
        &self,
        table: &str,
        feed: &mut Feed<'_>,
        out: std::fs::File,
    ) -> Result<u64, Error> {
        match self {
            Server::Postgres(p) => p.table_csv(table, feed, out),
            Server::Mariadb(m) => m.table_csv(table, feed, out),
        }
    }

    /// The check `checksums` of this database, just loaded from the dump `feed` writes and
    /// not changed since: every table's rows byte for byte the dump's (PostgreSQL: as `COPY`
    /// text, in load order; MariaDB: as the dump's `INSERT` rows, in any order). `None` where
    /// it cannot be made: MariaDB through a socket, client certificates or other options
    /// backstop's own client, which reads the rows back, cannot follow yet.
    pub fn checksums(&self, expected: &ServerDatabase, feed: &mut Feed<'_>) -> Option<Check> {
        let compared = match self {
            Server::Postgres(p) => p.dump_sums(feed).and_then(|dumped| {
                let loaded = p.table_sums(&dumped, expected.encoding.as_deref())?;
                Ok((dumped, loaded))
            }),
            Server::Mariadb(m) if !m.needs_tools() => m.dump_sums(feed).and_then(|dumped| {
                let loaded = m.table_sums(&dumped)?;
                Ok((dumped, loaded))
            }),
            _ => return None,
        };
        Some(checksums(compared))
    }

    /// The roles other than the connecting user that own objects of this database
    /// ([`Postgres::other_owners`]; none for MariaDB, whose restores leave definers out).
    pub fn other_owners(&self) -> Result<Vec<String>, Error> {
        match self {
            Server::Postgres(p) => p.other_owners(),
            Server::Mariadb(_) => Ok(Vec::new()),
        }
    }

    /// Whether [`Server::replace_with`] is built for this database (without asking its
    /// server: see [`Server::check_replace`]): an error that says what to do instead where it
    /// is not (MariaDB through a socket, client certificates or other options backstop's own
    /// client cannot follow yet).
    pub fn can_replace(&self) -> Result<(), Error> {
        match self {
            Server::Mariadb(m) if m.needs_tools() => Err(Error::Invalid(
                "an in-place restore of a MariaDB database reached through a socket, client \
                 certificates or other options backstop's own client cannot follow is not built \
                 yet: restore into a new database with --to-database NAME, check it, and point \
                 the application at it"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// A dump's record against a database as it is now: the checks `rows` (every table's row
    /// count) and `schema` (the fingerprint).
    pub fn compare(expected: &ServerDatabase, now: &Observed) -> Vec<Check> {
        compare(expected, &now.tables, &now.schema_fingerprint)
    }

    /// A restore drill of a dump on this database's server: loads it (`feed` writes the dump)
    /// into a scratch database of a new name, counts every table's rows and fingerprints the
    /// schema there, compares both with `expected` (what the dump was taken from), and drops
    /// the scratch database again. Each step is a check; the drill passed when all did.
    pub fn drill(
        &self,
        expected: &ServerDatabase,
        rules: &[crate::rules::Rule],
        feed: &mut Feed<'_>,
    ) -> Vec<Check> {
        let name = format!(
            "backstop_drill_{}",
            backstop_format::id::to_hex(&backstop_format::id::random_bytes::<6>())
        );
        let scratch = self.with_database(&name).for_dump(Some(expected));
        if let Err(e) = scratch.create(Some(expected)) {
            let grant = match self {
                Server::Postgres(_) => "the CREATEDB attribute (ALTER ROLE ... CREATEDB)",
                Server::Mariadb(_) => {
                    "GRANT ALL ON `backstop\\_drill\\_%`.* TO the user backstop connects as"
                }
            };
            return vec![check(
                "scratch database",
                false,
                format!(
                    "{e} (a drill loads the dump into a scratch database {name} and drops it \
                     again: the user needs {grant})"
                ),
            )];
        }
        let mut checks = Vec::new();
        match scratch.restore_tables(&[], feed) {
            Err(e) => checks.push(check("restore", false, e.to_string())),
            Ok(()) => {
                checks.push(check(
                    "restore",
                    true,
                    format!(
                        "loaded into {name} on the {} server {}",
                        self.product(),
                        self.server()
                    ),
                ));
                checks.extend(match scratch.observe() {
                    Ok(now) => compare(expected, &now.tables, &now.schema_fingerprint),
                    Err(e) => vec![check("rows", false, e.to_string())],
                });
                checks.extend(scratch.checksums(expected, feed));
                // The source's data validation rules, on the snapshot's data.
                if !rules.is_empty() {
                    let (passed, detail) = crate::rules::verdict(scratch.run_rules(rules));
                    checks.push(check("rules", passed, detail));
                }
            }
        }
        if let Err(e) = scratch.drop_database() {
            checks.push(check(
                "scratch database",
                false,
                format!("{name} could not be dropped: {e}"),
            ));
        }
        checks
    }
}

/// The check `checksums`: every table's rows in the dump against the same table's in a
/// database loaded from it ([`Postgres::dump_sums`], [`Postgres::table_sums`] and MariaDB's).
fn checksums(compared: Result<(Vec<TableSum>, Vec<TableSum>), Error>) -> Check {
    match compared {
        Err(e) => check("checksums", false, format!("not compared: {e}")),
        Ok((dumped, loaded)) => {
            let differ: Vec<String> = dumped
                .iter()
                .zip(&loaded)
                .filter(|(d, l)| d != l)
                .map(|(d, l)| {
                    format!(
                        "{} ({} rows in the dump, {} loaded)",
                        d.table, d.rows, l.rows
                    )
                })
                .collect();
            let rows: u64 = dumped.iter().map(|d| d.rows).sum();
            match differ.is_empty() {
                true => check(
                    "checksums",
                    true,
                    format!(
                        "the rows of all {} tables ({rows} rows) are byte for byte the dump's",
                        dumped.len()
                    ),
                ),
                false => check(
                    "checksums",
                    false,
                    format!("rows that differ from the dump's: {}", differ.join(", ")),
                ),
            }
        }
    }
}

fn check(name: &str, passed: bool, detail: String) -> Check {
    Check {
        name: name.into(),
        passed,
        detail,
    }
}

/// A restored database's row counts and schema fingerprint against `expected`'s: the checks
/// `rows` and `schema`.
fn compare(expected: &ServerDatabase, rows: &[TableRows], fingerprint: &str) -> Vec<Check> {
    let differ: Vec<String> = expected
        .tables
        .iter()
        .filter_map(|t| {
            let now = rows.iter().find(|r| r.name == t.name).and_then(|r| r.rows);
            (now != t.rows).then(|| {
                format!(
                    "{}: {} in the snapshot, {} restored",
                    t.name,
                    t.rows.map_or("?".into(), |n| n.to_string()),
                    now.map_or("none".into(), |n| n.to_string())
                )
            })
        })
        .collect();
    vec![
        check(
            "rows",
            differ.is_empty(),
            match differ.is_empty() {
                true => format!("{} tables as recorded", expected.tables.len()),
                false => differ.join("; "),
            },
        ),
        check(
            "schema",
            fingerprint == expected.schema_fingerprint,
            format!("fingerprint {}", &fingerprint[..fingerprint.len().min(16)]),
        ),
    ]
}

/// Migrations tables that applications keep, the column that proves it is one, and the query
/// of the newest version applied, in the order they are tried. The queries are standard SQL
/// (MariaDB runs them with `sql_mode = 'ANSI'`: double-quoted names, `||` joins strings).
pub(crate) const MIGRATIONS: [(&str, &str, &str); 6] = [
    (
        "schema_migrations",
        "version",
        "SELECT max(version) FROM schema_migrations",
    ),
    (
        "alembic_version",
        "version_num",
        "SELECT max(version_num) FROM alembic_version",
    ),
    (
        "flyway_schema_history",
        "version",
        "SELECT version FROM flyway_schema_history WHERE success ORDER BY installed_rank DESC LIMIT 1",
    ),
    (
        "__EFMigrationsHistory",
        "MigrationId",
        "SELECT max(\"MigrationId\") FROM \"__EFMigrationsHistory\"",
    ),
    (
        "django_migrations",
        "applied",
        "SELECT app || '.' || name FROM django_migrations ORDER BY applied DESC, id DESC LIMIT 1",
    ),
    (
        "migrations",
        "batch",
        "SELECT migration FROM migrations ORDER BY batch DESC, id DESC LIMIT 1",
    ),
];

/// The query that lists which of [`MIGRATIONS`] exist in the schema `schema` names (an SQL
/// expression: `current_schema()`, `DATABASE()`), one table name a line.
pub(crate) fn migrations_present(schema: &str) -> String {
    let pairs: Vec<String> = MIGRATIONS
        .iter()
        .map(|(t, c, _)| format!("('{t}', '{c}')"))
        .collect();
    format!(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = {schema} \
         AND (table_name, column_name) IN ({})",
        pairs.join(", ")
    )
}

/// A restore tool's input: once it has read what it needs (the table of contents for
/// `pg_restore --list`, the entries of a `--use-list`) or stopped at an error, it may close its
/// input; the rest of the dump is then discarded instead of failing the writer, and the tool's
/// exit status says how it went.
/// A writer that takes what is written into it a line at a time (a script, `COPY` text):
/// [`write_lines`] hands it each whole line, [`LineSink::rest`] what is left at the end.
pub(crate) trait LineSink {
    /// The bytes written after the last line break, not yet a whole line.
    fn pending(&mut self) -> &mut Vec<u8>;
    /// One whole line, with its `\n` (or the last bytes, without one).
    fn line(&mut self, line: Vec<u8>) -> std::io::Result<()>;
    /// Hands over the last bytes when they do not end with a line break.
    fn rest(&mut self) -> std::io::Result<()> {
        match std::mem::take(self.pending()) {
            rest if rest.is_empty() => Ok(()),
            rest => self.line(rest),
        }
    }
}

/// `Write::write` for a [`LineSink`]: every line `buf` completes goes to [`LineSink::line`].
pub(crate) fn write_lines(sink: &mut impl LineSink, buf: &[u8]) -> std::io::Result<usize> {
    let mut rest = buf;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        let mut line = std::mem::take(sink.pending());
        line.extend_from_slice(&rest[..=i]);
        sink.line(line)?;
        rest = &rest[i + 1..];
    }
    sink.pending().extend_from_slice(rest);
    Ok(buf.len())
}

pub(crate) struct UntilClosed(pub ChildStdin);

impl Write for UntilClosed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            r => r,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(tables: &[(&str, u64)]) -> ServerDatabase {
        ServerDatabase {
            engine: "mariadb".into(),
            method: "dump".into(),
            server_version: "10.11".into(),
            tool: "mariadb-dump".into(),
            database: "shop".into(),
            size_bytes: 0,
            tables: tables
                .iter()
                .map(|(n, r)| TableRows {
                    name: (*n).into(),
                    rows: Some(*r),
                    key: Vec::new(),
                })
                .collect(),
            schema_fingerprint: "abc".into(),
            schema_version: None,
            encoding: None,
            collation: None,
            ctype: None,
            validation: None,
        }
    }

    #[test]
    fn a_restored_database_is_compared_table_by_table() {
        let want = expected(&[("orders", 3), ("lines", 5)]);
        let same = compare(&want, &want.tables, "abc");
        assert!(same.iter().all(|c| c.passed), "{same:?}");
        let fewer = compare(&want, &want.tables[..1], "abd");
        assert!(!fewer[0].passed);
        assert!(
            fewer[0]
                .detail
                .contains("lines: 5 in the snapshot, none restored")
        );
        assert!(!fewer[1].passed);
    }

    #[test]
    fn kinds_are_checked() {
        assert!(matches!(
            Server::new("mysql", "mysql://app@db/shop", None),
            Ok(Server::Mariadb(_))
        ));
        assert!(Server::new("oracle", "x", None).is_err());
        assert_eq!(
            Server::new("postgres", "postgres://a@h/db", None)
                .unwrap()
                .source_kind(),
            SourceKind::Postgres
        );
    }
}
