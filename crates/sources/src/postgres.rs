//! A PostgreSQL database, captured with the server's own dump tool: `pg_dump` in the custom
//! format, uncompressed (`-Fc -Z0`), streamed into the engine with nothing written to local
//! disk. Compressed dumps would not deduplicate day against day; the plain and the custom
//! format deduplicate the same (measured: docs/plans/issue-16.md), and the custom one lets
//! `pg_restore` pick single tables.
//!
//! The database is named by a URL (`postgres://USER@HOST:PORT/DBNAME`, query parameters such
//! as `sslmode` as libpq takes them) that must not hold a password: the password is given to
//! the tools in `PGPASSWORD`, never on their command line. Before a dump, `pg_dump`'s major
//! version is compared with the server's: an older `pg_dump` refuses such a server, and the
//! message says both versions instead of its own "server version mismatch".

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use backstop_format::manifest::{ServerDatabase, SourceKind, TableRows};

use crate::command::CommandSource;
use crate::pg_export::{PartFilter, PgExport};
use crate::server::{
    Feed, LineSink, MIGRATIONS, Method, Observed, UntilClosed, migrations_present, write_lines,
};
use crate::table_csv::CopyCsv;
use crate::{Entry, Error, Source};

/// A PostgreSQL database to back up or restore into: its URL (without a password) and the
/// password, if one is needed.
#[derive(Clone)]
pub struct Postgres {
    url: String,
    password: Option<String>,
    /// A restore gives the dump's objects their owners ([`Postgres::keeping_owners`]).
    keep_owners: bool,
    /// A restore loads plain SQL (the built-in export's) with `psql`, not an archive of
    /// `pg_dump` with `pg_restore` ([`Postgres::plain_sql`]).
    plain: bool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// The database at `url`; a URL with a password in it is refused (it would show in the
    /// process list and in messages): give it as `password` instead.
    pub fn new(url: &str, password: Option<String>) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{url:?} is not a PostgreSQL URL: write postgres://USER@HOST:PORT/DBNAME"
                ))
            })?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && userinfo.contains(':')
        {
            return Err(Error::Invalid(
                "the PostgreSQL URL holds a password: take it out of the URL and give it in \
                 password_file (or PGPASSWORD, or a .pgpass file)"
                    .into(),
            ));
        }
        if database_of(url).is_none() {
            return Err(Error::Invalid(format!(
                "{url:?} names no database: write postgres://USER@HOST:PORT/DBNAME"
            )));
        }
        Ok(Self {
            url: url.to_owned(),
            password,
            keep_owners: false,
            plain: false,
        })
    }

    /// The database's name.
    pub fn database(&self) -> String {
        database_of(&self.url).expect("checked when made")
    }

    /// The server, as `postgres://USER@HOST:PORT` (for messages).
    pub fn server(&self) -> String {
        let base = self
            .url
            .split_once('?')
            .map_or(self.url.as_str(), |(b, _)| b);
        base.rsplit_once('/').map_or(base, |(s, _)| s).to_owned()
    }

    /// The same server with another database.
    pub fn with_database(&self, name: &str) -> Self {
        let (base, query) = match self.url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (self.url.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        Self {
            url: format!("{server}/{name}{query}"),
            password: self.password.clone(),
            keep_owners: self.keep_owners,
            plain: self.plain,
        }
    }

    /// This database, with a restore into it loading plain SQL (`plain`: the built-in
    /// export's) with `psql`, or a `pg_dump` archive with `pg_restore`.
    pub fn plain_sql(mut self, plain: bool) -> Self {
        self.plain = plain;
        self
    }

    /// This database, with a restore into it giving every object the owner it had in the
    /// dump (instead of the connecting user, as `pg_restore --no-owner` does): what an
    /// application that logs in as another role needs from a database that replaces its own.
    /// Needs a superuser, or a user that is a member of those roles.
    pub fn keeping_owners(mut self) -> Self {
        self.keep_owners = true;
        self
    }

    /// A command for one of the client tools, with the password in its environment.
    fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.stdin(Stdio::null());
        if let Some(p) = &self.password {
            c.env("PGPASSWORD", p);
        }
        c
    }

    /// `psql` on this database: no startup file, unaligned tuples only, quiet, no password
    /// prompt, stopping at the first error.
    fn psql(&self) -> Command {
        let mut c = self.tool("psql");
        c.args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &self.url,
        ]);
        c
    }

    /// Runs `psql` with `sql` on this database; its output, or an error with its message.
    fn query(&self, sql: &str) -> Result<String, Error> {
        let out = self
            .psql()
            .args(["-c", sql])
            .output()
            .map_err(|e| Error::io("starting psql (install PostgreSQL's client tools)", e))?;
        if !out.status.success() {
            return Err(Error::Invalid(format!(
                "PostgreSQL at {}: {}",
                self.url,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// A source that dumps the database with `pg_dump`, after checking that `pg_dump` is not
    /// older than the server. The item is `DBNAME.pgdump` (restore it with `pg_restore`), with
    /// what it was taken from ([`ServerDatabase`]): a session of our own opens a read-only
    /// transaction, exports its snapshot, reads the versions, sizes, row counts, schema
    /// fingerprint and migrations version in it, and `pg_dump` dumps that same snapshot
    /// (`--snapshot`), so the counts are the dump's whatever is written meanwhile. The session
    /// stays open until the dump is done.
    ///
    /// With [`Method::Builtin`], or [`Method::Auto`] where `pg_dump` or `psql` is not installed
    /// or `pg_dump` is older than the server, the built-in export instead
    /// ([`crate::pg_export`]); why, when it was not asked for, is in what the snapshot records
    /// of the source.
    pub fn dump_source(&self, method: Method) -> Result<Box<dyn Source>, Error> {
        let builtin = |why: Option<String>| -> Result<Box<dyn Source>, Error> {
            let export = PgExport::open(&self.url, self.password.as_deref(), &self.database())?;
            Ok(Box::new(match why {
                Some(w) => export.because(w),
                None => export,
            }))
        };
        if method == Method::Builtin {
            return builtin(None);
        }
        let (tool, tool_major) = match (tool_version("pg_dump"), tool_version("psql"), method) {
            (Ok(t), Ok(_), _) => t,
            (Err(e), _, Method::Dump) | (_, Err(e), Method::Dump) => return Err(e),
            (Err(e), _, _) | (_, Err(e), _) => {
                return builtin(Some(format!(
                    "{e}: method = \"auto\" used the built-in export"
                )));
            }
        };
        let mut session = Session::open(self)?;
        let server_major: u32 = session
            .one("SHOW server_version_num")?
            .parse::<u32>()
            .map(|n| n / 10_000)
            .map_err(|_| Error::Invalid("unexpected server_version_num".into()))?;
        if tool_major < server_major {
            let why = format!(
                "pg_dump {tool_major} is older than the PostgreSQL {server_major} server at {}, \
                 and cannot dump it",
                self.url
            );
            if method == Method::Auto {
                drop(session);
                return builtin(Some(format!(
                    "{why}: method = \"auto\" used the built-in export (install the \
                     PostgreSQL {server_major} client tools to use pg_dump)"
                )));
            }
            return Err(Error::Invalid(format!(
                "{why}: install the PostgreSQL {server_major} client tools on this machine, or \
                 use method = \"builtin\""
            )));
        }
        session.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let snapshot = session.one("SELECT pg_export_snapshot()")?;
        let locale = session.one(
            "SELECT pg_encoding_to_char(encoding) || chr(9) || datcollate || chr(9) || datctype \
             FROM pg_database WHERE datname = current_database()",
        )?;
        let mut locale = locale.split('\t').map(|s| Some(s.to_owned()));
        let (encoding, collation, ctype) = (
            locale.next().flatten(),
            locale.next().flatten(),
            locale.next().flatten(),
        );
        let meta = ServerDatabase {
            engine: "postgres".into(),
            method: "dump".into(),
            server_version: session.one("SHOW server_version")?,
            tool,
            database: self.database(),
            size_bytes: session
                .one("SELECT pg_database_size(current_database())")?
                .parse()
                .unwrap_or(0),
            tables: session.table_rows()?,
            schema_fingerprint: session.one(FINGERPRINT)?,
            schema_version: session.schema_version()?,
            encoding,
            collation,
            ctype,
            validation: None,
        };
        let argv = [
            "pg_dump",
            "--format=custom",
            "--compress=0",
            "--no-password",
            &format!("--snapshot={snapshot}"),
            "--dbname",
            &self.url,
        ];
        let mut dump = CommandSource::new(
            argv.iter().map(|s| s.to_string()).collect(),
            format!("{}.pgdump", self.database()),
        )?
        .of_kind(SourceKind::Postgres);
        if let Some(p) = &self.password {
            dump = dump.env("PGPASSWORD", p);
        }
        Ok(Box::new(PgDump {
            dump,
            session: Some(session),
            meta: Some(meta),
            snapshot,
            db: self.clone(),
            rules: Vec::new(),
        }))
    }

    /// The roles other than the connecting user that own tables, views or sequences of this
    /// database's own schemas.
    pub fn other_owners(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .query(
                "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname !~ '^pg_(toast|temp)' AND c.relowner <> \
                 (SELECT oid FROM pg_roles WHERE rolname = current_user) ORDER BY 1",
            )?
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// A connection of backstop's own client to this database ([`crate::pg_export::connect`]).
    pub(crate) fn client(&self) -> Result<postgres::Client, Error> {
        crate::pg_export::connect(&self.url, self.password.as_deref())
    }

    /// Every table's rows, the schema fingerprint and the schema version, now (in one
    /// transaction of a session of their own).
    pub(crate) fn observe(&self) -> Result<Observed, Error> {
        let mut s = Session::open(self)?;
        s.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let observed = Observed {
            tables: s.table_rows()?,
            schema_fingerprint: s.one(FINGERPRINT)?,
            schema_version: s.schema_version()?,
        };
        s.close()?;
        Ok(observed)
    }

    /// Creates this (new) database on its server; an existing one is refused by the server.
    /// With `like` (a dump's record), with the dump's database's encoding and locale, from
    /// `template0`: a dump of a `LATIN1` or `SQL_ASCII` database may hold bytes that are not
    /// valid text in a `UTF8` database, and its sort order is its locale's.
    pub fn create(&self, like: Option<&ServerDatabase>) -> Result<(), Error> {
        let name = self.database();
        let mut sql = format!("CREATE DATABASE {}", quote_ident(&name));
        if let Some(like) = like
            && let Some(encoding) = &like.encoding
        {
            sql.push_str(&format!(
                " TEMPLATE template0 ENCODING {}",
                quote_literal(encoding)
            ));
            if let Some(c) = &like.collation {
                sql.push_str(&format!(" LC_COLLATE {}", quote_literal(c)));
            }
            if let Some(c) = &like.ctype {
                sql.push_str(&format!(" LC_CTYPE {}", quote_literal(c)));
            }
        }
        self.with_database("postgres").query(&sql).map(|_| ())
    }

    /// Puts the database `new` (on the same server) in this one's place, keeping this one as
    /// `keep_as`: connections to this database are refused (`ALLOW_CONNECTIONS false`) and
    /// ended, it is renamed to `keep_as`, and `new` is renamed to this database's name. An
    /// application that reconnects meanwhile is refused for that moment, then meets the new
    /// database whole; it never sees a half-loaded one. A step that fails puts back what the
    /// steps before it changed. Needs the rights of the databases' owner (or a superuser).
    pub fn replace_with(&self, new: &str, keep_as: &str) -> Result<(), Error> {
        let admin = self.with_database("postgres");
        let name = self.database();
        let live = quote_ident(&name);
        let kept = quote_ident(keep_as);
        self.give_database_attributes(new)?;
        admin.query(&format!("ALTER DATABASE {live} ALLOW_CONNECTIONS false"))?;
        let allow_again = || {
            let _ = admin.query(&format!("ALTER DATABASE {live} ALLOW_CONNECTIONS true"));
        };
        let mut renamed = Err(Error::Invalid("not tried".into()));
        // A connection that was being made as the others were ended may still hold it: end
        // them again, a few times.
        for _ in 0..20 {
            if let Err(e) = admin.query(&format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = {} AND pid <> pg_backend_pid()",
                quote_literal(&name)
            )) {
                allow_again();
                return Err(e);
            }
            renamed = admin.query(&format!("ALTER DATABASE {live} RENAME TO {kept}"));
            if renamed.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if let Err(e) = renamed {
            allow_again();
            return Err(e);
        }
        if let Err(e) = admin.query(&format!(
            "ALTER DATABASE {} RENAME TO {live}",
            quote_ident(new)
        )) {
            let back = admin.query(&format!("ALTER DATABASE {kept} RENAME TO {live}"));
            allow_again();
            return Err(match back {
                Ok(_) => e,
                Err(b) => Error::Invalid(format!(
                    "{e}; and {name} could not be given its name back ({b}): it is {keep_as} now"
                )),
            });
        }
        // The previous database stays, for looking at and for going back.
        let _ = admin.query(&format!("ALTER DATABASE {kept} ALLOW_CONNECTIONS true"));
        Ok(())
    }

    /// Gives the database `new` what belongs to this database rather than to what is in it,
    /// which a dump of it does not carry: its owner, its privileges (`GRANT ... ON DATABASE`)
    /// and its settings (`ALTER DATABASE ... SET`).
    fn give_database_attributes(&self, new: &str) -> Result<(), Error> {
        let admin = self.with_database("postgres");
        let (live, new) = (quote_literal(&self.database()), quote_literal(new));
        // Settings whose value is a list are written unquoted (as pg_dumpall does).
        let sql = admin.query(&format!(
            "WITH d AS (SELECT oid, datdba, datacl FROM pg_database WHERE datname = {live}) \
             SELECT s FROM ( \
               SELECT 1 AS o, format('ALTER DATABASE %I OWNER TO %I;', {new}, \
                 pg_get_userbyid(datdba)) AS s FROM d \
               UNION ALL SELECT 2, format('REVOKE ALL ON DATABASE %I FROM PUBLIC;', {new}) \
                 FROM d WHERE datacl IS NOT NULL \
               UNION ALL SELECT 3, format('GRANT %s ON DATABASE %I TO %s%s;', \
                 a.privilege_type, {new}, CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                 ELSE quote_ident(pg_get_userbyid(a.grantee)) END, \
                 CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) \
                 FROM d, aclexplode(d.datacl) a \
               UNION ALL SELECT 4, format('ALTER DATABASE %I SET %s TO %s;', {new}, \
                 split_part(c, '=', 1), CASE WHEN split_part(c, '=', 1) IN ('search_path', \
                 'temp_tablespaces', 'session_preload_libraries', 'shared_preload_libraries', \
                 'local_preload_libraries') THEN substr(c, strpos(c, '=') + 1) \
                 ELSE quote_literal(substr(c, strpos(c, '=') + 1)) END) \
                 FROM d JOIN pg_db_role_setting r ON r.setdatabase = d.oid AND r.setrole = 0, \
                 unnest(r.setconfig) c \
             ) x ORDER BY o"
        ))?;
        if sql.is_empty() {
            return Ok(());
        }
        admin.query(&sql).map(|_| ()).map_err(|e| {
            Error::Invalid(format!(
                "giving the restored database {}'s owner, privileges and settings: {e}",
                self.database()
            ))
        })
    }

    /// Loads the built-in export's plain SQL (`feed` writes it) into this database with `psql`,
    /// in one transaction, stopping at the first error; only the parts that make the `wanted`
    /// tables when some are named ([`PartFilter`]).
    fn load_plain(&self, wanted: &[(String, String)], feed: &mut Feed<'_>) -> Result<(), Error> {
        let mut child = self
            .tool("psql")
            .args([
                "-X",
                "-q",
                "-w",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-d",
                &self.url,
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting psql (install PostgreSQL's client tools)", e))?;
        let stdin = UntilClosed(child.stdin.take().expect("stdin is piped"));
        let fed = match wanted.is_empty() {
            true => {
                let mut stdin = stdin;
                feed(&mut stdin)
            }
            false => {
                let mut filter = PartFilter::new(stdin, wanted);
                feed(&mut filter).and(filter.finish())
            }
        };
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("waiting for psql", e))?;
        if !out.status.success() {
            return Err(Error::Invalid(format!(
                "psql loading the export into {} failed: {}",
                self.url,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        fed
    }

    /// The rows of `parsed` into `table` ([`crate::import_server`]).
    pub(crate) fn import(
        &self,
        table: &str,
        parsed: &crate::import::Parsed,
        mapping: &[(String, String)],
        options: &crate::import::Options,
        commit: bool,
    ) -> Result<crate::import::ImportReport, Error> {
        let mut c = crate::pg_export::connect(&self.url, self.password.as_deref())?;
        let mut target = crate::import_server::ServerTarget {
            dialect: crate::server_rules::Dialect::Postgres,
            query: Box::new(move |sql: &str| crate::pg_export::rows(&mut c, sql)),
        };
        crate::import::import_rows(&mut target, table, parsed, mapping, options, commit)
    }

    /// Runs `rules` on this database in one read-only transaction (REPEATABLE READ: one
    /// snapshot), each in a savepoint so that one that fails does not stop the others.
    pub(crate) fn run_rules(
        &self,
        rules: &[crate::rules::Rule],
    ) -> Result<Vec<crate::rules::RuleResult>, Error> {
        let mut c = crate::pg_export::connect(&self.url, self.password.as_deref())?;
        let text = |e: postgres::Error| {
            Error::Invalid(format!(
                "PostgreSQL at {}: {}",
                self.url,
                crate::pg_export::error_text(&e)
            ))
        };
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(text)?;
        let results = rules_in_transaction(&mut c, rules);
        c.batch_execute("COMMIT").map_err(text)?;
        Ok(results)
    }

    /// Writes the rows of `table` (`TABLE` or `SCHEMA.TABLE`) in the dump `feed` writes into
    /// `out` as CSV ([`crate::table_csv`]), without a server: the built-in export's `COPY`
    /// part, or what `pg_restore --data-only` makes of a `pg_dump` archive. The rows written.
    pub fn table_csv(
        &self,
        table: &str,
        feed: &mut Feed<'_>,
        out: std::fs::File,
    ) -> Result<u64, Error> {
        let (schema, name) = schema_and_name(table);
        let out = std::io::BufWriter::new(out);
        if self.plain {
            let mut csv = CopyCsv::new(out, Some((schema, name)));
            feed(&mut csv)?;
            return csv.finish();
        }
        let written = pg_restore_script(
            &[
                "--data-only",
                "--file=-",
                "--schema",
                &schema,
                "--table",
                &name,
            ],
            feed,
            move |mut stdout| {
                let mut csv = CopyCsv::new(out, None);
                std::io::copy(&mut stdout, &mut csv)
                    .map_err(|e| Error::io("writing the CSV file", e))?;
                csv.finish()
            },
        );
        written.map_err(|e| match e {
            Error::Invalid(m) if m.contains("no rows") => Error::Invalid(format!(
                "the dump has no rows of a table {schema}.{name} (a partitioned table's rows \
                 are in its partitions: name those)"
            )),
            e => e,
        })
    }

    /// Every table's rows in the dump `feed` writes, hashed as `COPY` text: the built-in
    /// export's own blocks, or what `pg_restore --data-only` makes of a `pg_dump` archive.
    pub(crate) fn dump_sums(&self, feed: &mut Feed<'_>) -> Result<Vec<TableSum>, Error> {
        if self.plain {
            let mut sums = CopySums::default();
            feed(&mut sums)?;
            return Ok(sums.tables);
        }
        pg_restore_script(&["--data-only", "--file=-"], feed, |mut stdout| {
            let mut sums = CopySums::default();
            std::io::copy(&mut stdout, &mut sums)
                .map_err(|e| Error::io("reading pg_restore's script", e))?;
            Ok(sums.tables)
        })
    }

    /// The same hash of each of `tables`' rows as they are in this database now, read by
    /// `COPY (SELECT COLUMNS FROM ONLY TABLE) TO STDOUT` in the dump's `encoding` and with the
    /// settings `pg_dump` uses: a table loaded from a dump and not changed since gives its rows
    /// back in the order they were loaded, byte for byte as the dump has them.
    pub(crate) fn table_sums(
        &self,
        tables: &[TableSum],
        encoding: Option<&str>,
    ) -> Result<Vec<TableSum>, Error> {
        let mut c = crate::pg_export::connect(&self.url, self.password.as_deref())?;
        let session = format!(
            "SET client_encoding = {}; SET DateStyle = ISO; SET IntervalStyle = postgres; \
             SET extra_float_digits = 3; SET search_path = ''",
            quote_literal(encoding.unwrap_or("UTF8"))
        );
        c.batch_execute(&session).map_err(|e| {
            Error::Invalid(format!(
                "PostgreSQL at {}: {}",
                self.url,
                crate::pg_export::error_text(&e)
            ))
        })?;
        let mut out = Vec::new();
        for t in tables {
            let mut sums = CopySums::default();
            sums.start(&t.table, &t.columns);
            // In the order the rows were loaded (as they are stored).
            crate::pg_export::copy_rows(&mut c, &t.columns, &t.table, "", &mut sums)?;
            out.push(sums.end());
        }
        Ok(out)
    }

    /// Drops this database (after a restore into it failed).
    pub fn drop_database(&self) -> Result<(), Error> {
        let name = self.database();
        self.with_database("postgres")
            .query(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&name)))
            .map(|_| ())
    }

    /// Loads a custom-format dump into this database with `pg_restore` (objects owned by the
    /// connecting user; it stops at the first error, and loads in one transaction): `feed`
    /// writes the dump into its input. A dump cut short by `pg_restore` failing is its error;
    /// otherwise `feed`'s own error. Only `tables` (each `TABLE` or `SCHEMA.TABLE`) when some are
    /// named: their definitions, defaults, rows and own constraints (not foreign keys, indexes
    /// or triggers), with every schema, type and sequence of the dump, which they may need; every table when none are. The dump's table of contents is read first (`feed`
    /// runs twice), and `pg_restore` restores the entries chosen from it.
    pub fn restore_tables(&self, tables: &[String], feed: &mut Feed<'_>) -> Result<(), Error> {
        let wanted: Vec<(String, String)> = tables.iter().map(|t| schema_and_name(t)).collect();
        if self.plain {
            return self.load_plain(&wanted, feed);
        }
        let mut selection = Vec::new();
        let _list;
        if !tables.is_empty() {
            let toc = self.table_of_contents(feed)?;
            let chosen = choose_entries(&toc, &wanted)?;
            let mut file = tempfile::NamedTempFile::new()
                .map_err(|e| Error::io("writing pg_restore's list of entries", e))?;
            file.write_all(chosen.as_bytes())
                .map_err(|e| Error::io("writing pg_restore's list of entries", e))?;
            selection.push(format!("--use-list={}", file.path().display()));
            _list = file;
        }
        if !self.keep_owners {
            selection.push("--no-owner".to_owned());
        }
        let mut child = self
            .tool("pg_restore")
            .args([
                "--no-password",
                "--exit-on-error",
                "--single-transaction",
                "--dbname",
                &self.url,
            ])
            .args(&selection)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting pg_restore (install PostgreSQL's client tools)", e))?;
        let mut stdin = UntilClosed(child.stdin.take().expect("stdin is piped"));
        let fed = feed(&mut stdin);
        drop(stdin);
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("waiting for pg_restore", e))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let hint = match self.keep_owners && stderr.contains("must be") {
                true => {
                    " (the restored objects are given the owners they had, which needs a \
                     superuser or a member of those roles: connect as one)"
                }
                false => "",
            };
            return Err(Error::Invalid(format!(
                "pg_restore into {} failed: {}{hint}",
                self.url,
                stderr.trim()
            )));
        }
        fed
    }
}

/// The columns of every table, with their types and nullability, hashed: changes with the
/// schema, not with the data.
pub(crate) const FINGERPRINT: &str = "SELECT md5(coalesce(string_agg(format('%s.%s.%s %s %s', \
     table_schema, table_name, column_name, data_type, is_nullable), ',' \
     ORDER BY table_schema, table_name, ordinal_position), '')) FROM information_schema.columns \
     WHERE table_schema NOT IN ('pg_catalog', 'information_schema')";

/// Every table (ordinary and partitioned) with its row count and its primary key's columns,
/// in one query, tab-separated ([`table_rows`]).
pub(crate) const TABLE_ROWS: &str = "SELECT format('%I.%I', n.nspname, c.relname) || chr(9) || \
     (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', \
     n.nspname, c.relname), false, true, '')))[1]::text || chr(9) || \
     coalesce((SELECT json_agg(a.attname ORDER BY k.ord) FROM pg_index i \
     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
     WHERE i.indrelid = c.oid AND i.indisprimary)::text, '[]') FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1";

/// Runs `rules` in the transaction open on `c`, each in a savepoint so that one that fails
/// does not stop the others ([`crate::server_rules`]).
pub(crate) fn rules_in_transaction(
    c: &mut postgres::Client,
    rules: &[crate::rules::Rule],
) -> Vec<crate::rules::RuleResult> {
    let mut query = |sql: &str| {
        let step = |c: &mut postgres::Client, s: &str| {
            c.batch_execute(s).map_err(|e| {
                Error::Invalid(format!("PostgreSQL: {}", crate::pg_export::error_text(&e)))
            })
        };
        step(c, "SAVEPOINT rule")?;
        let rows = crate::pg_export::rows(c, sql);
        match rows.is_ok() {
            true => step(c, "RELEASE SAVEPOINT rule")?,
            false => step(c, "ROLLBACK TO SAVEPOINT rule")?,
        }
        rows
    };
    crate::server_rules::run(&mut query, crate::server_rules::Dialect::Postgres, rules)
}

/// One line of [`TABLE_ROWS`]: `SCHEMA.TABLE`, its rows and its primary key's columns (a JSON
/// array), separated by tabs.
pub(crate) fn table_rows(line: &str) -> Option<TableRows> {
    let mut parts = line.rsplitn(3, '\t');
    let key = parts.next()?;
    let rows = parts.next()?;
    let name = parts.next()?;
    Some(TableRows {
        name: name.to_owned(),
        rows: rows.parse().ok(),
        key: serde_json::from_str(key).unwrap_or_default(),
    })
}

/// A `psql` session of our own, asked one statement at a time: each answer ends at a marker
/// line. It stops at the first error (`ON_ERROR_STOP`), which its standard error then says.
struct Session {
    child: Child,
    /// `None` once closed.
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
    url: String,
}

/// The line after each answer.
const END: &str = "__backstop_end__";

impl Session {
    fn open(db: &Postgres) -> Result<Self, Error> {
        let mut child = db
            .psql()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting psql (install PostgreSQL's client tools)", e))?;
        let input = child.stdin.take().expect("stdin is piped");
        let output = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Self {
            child,
            input: Some(input),
            output,
            url: db.url.clone(),
        })
    }

    /// Runs `sql`; the lines it printed.
    fn lines(&mut self, sql: &str) -> Result<Vec<String>, Error> {
        let input = self.input.as_mut().expect("an open session");
        let sent = writeln!(input, "{sql};\n\\echo {END}").and_then(|()| input.flush());
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = match sent {
                Ok(()) => self.output.read_line(&mut line).unwrap_or(0),
                Err(_) => 0,
            };
            if n == 0 {
                return Err(self.failed());
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line == END {
                return Ok(lines);
            }
            lines.push(line.to_owned());
        }
    }

    fn run(&mut self, sql: &str) -> Result<(), Error> {
        self.lines(sql).map(|_| ())
    }

    /// The one value `sql` gives.
    fn one(&mut self, sql: &str) -> Result<String, Error> {
        Ok(self.lines(sql)?.into_iter().next().unwrap_or_default())
    }

    fn table_rows(&mut self) -> Result<Vec<TableRows>, Error> {
        Ok(self
            .lines(TABLE_ROWS)?
            .iter()
            .filter_map(|l| table_rows(l))
            .collect())
    }

    /// The newest migration applied, as `TABLE VERSION`, from the first migrations table found
    /// in the current schema.
    fn schema_version(&mut self) -> Result<Option<String>, Error> {
        let found = self.lines(&migrations_present("current_schema()"))?;
        for (table, _, query) in MIGRATIONS {
            if found.iter().any(|f| f == table) {
                let v = self.one(query)?;
                return Ok((!v.is_empty()).then(|| format!("{table} {v}")));
            }
        }
        Ok(None)
    }

    /// The error of a session that stopped: what psql said.
    fn failed(&mut self) -> Error {
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        Error::Invalid(format!("PostgreSQL at {}: {}", self.url, text.trim()))
    }

    /// Ends the transaction (if one is open) and the session.
    fn close(mut self) -> Result<(), Error> {
        if let Some(mut input) = self.input.take() {
            let _ = writeln!(input, "COMMIT;\n\\q");
        }
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io("waiting for psql", e))?;
        if status.success() {
            return Ok(());
        }
        let mut said = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut said);
        }
        Err(Error::Invalid(format!(
            "PostgreSQL at {}: the session that held the dump's snapshot ended ({})",
            self.url,
            match said.trim() {
                "" => status.to_string(),
                said => said.to_owned(),
            }
        )))
    }
}

impl Drop for Session {
    /// A session dropped without [`Session::close`] (a failed check, a failed backup) is ended
    /// at once: no psql is left running, nor unwaited for.
    fn drop(&mut self) {
        if self.input.take().is_some() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A PostgreSQL database being dumped: `pg_dump`'s output as one item, with what it was taken
/// from, while the session that exported the dump's snapshot stays open.
pub struct PgDump {
    dump: CommandSource,
    session: Option<Session>,
    meta: Option<ServerDatabase>,
    /// The session's exported snapshot, which `pg_dump` reads in.
    snapshot: String,
    db: Postgres,
    /// The source's data validation rules, run in the same snapshot.
    rules: Vec<crate::rules::Rule>,
}

impl PgDump {
    /// The rules run in a transaction of backstop's own client that imports the session's
    /// snapshot: what `pg_dump` is about to read. A connection that fails fails every rule,
    /// saying why.
    fn validate(&self) -> backstop_format::manifest::Validation {
        let run = || -> Result<Vec<crate::rules::RuleResult>, Error> {
            let mut c = crate::pg_export::connect(&self.db.url, self.db.password.as_deref())?;
            crate::pg_export::rows(
                &mut c,
                &format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                    quote_literal(&self.snapshot)
                ),
            )?;
            let results = rules_in_transaction(&mut c, &self.rules);
            crate::pg_export::rows(&mut c, "COMMIT")?;
            Ok(results)
        };
        let results = run().unwrap_or_else(|e| {
            self.rules
                .iter()
                .map(|r| crate::rules::RuleResult {
                    name: r.title(),
                    kind: r.kind_name().to_owned(),
                    table: r.table.clone(),
                    passed: false,
                    count: 0,
                    detail: format!("could not run: {e}"),
                    first: Vec::new(),
                })
                .collect()
        });
        backstop_format::manifest::Validation {
            rules: crate::rules::fingerprint(&self.rules),
            results,
        }
    }
}

impl Source for PgDump {
    fn kind(&self) -> SourceKind {
        SourceKind::Postgres
    }

    fn describe(&self) -> Vec<String> {
        self.dump.describe()
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        // Before pg_dump starts, while the session holds the snapshot open.
        let validation = match (self.rules.is_empty(), self.meta.is_some()) {
            (false, true) => Some(self.validate()),
            _ => None,
        };
        let mut entry = self.dump.next_entry()?;
        if let Some(e) = entry.as_mut() {
            e.item.server = self.meta.take().map(|mut m| {
                m.validation = validation;
                m
            });
        }
        Ok(entry)
    }

    fn use_rules(&mut self, rules: &[crate::rules::Rule]) {
        self.rules = rules.to_vec();
    }

    fn take_warnings(&mut self) -> Vec<String> {
        self.dump.take_warnings()
    }

    fn finish(&mut self) -> Result<(), Error> {
        let dumped = self.dump.finish();
        let closed = self.session.take().map_or(Ok(()), Session::close);
        match (dumped, closed) {
            // The session's end is the cause of pg_dump's failure ("invalid snapshot").
            (Err(d), Err(c)) => Err(Error::Invalid(format!("{c}; so {d}"))),
            (dumped, closed) => dumped.and(closed),
        }
    }
}

impl Postgres {
    /// `pg_restore --list` of the dump `feed` writes.
    fn table_of_contents(&self, feed: &mut Feed<'_>) -> Result<String, Error> {
        pg_restore_script(&["--list"], feed, |mut stdout| {
            let mut text = String::new();
            stdout
                .read_to_string(&mut text)
                .map_err(|e| Error::io("reading pg_restore's list", e))?;
            Ok(text)
        })
    }
}

/// Runs `pg_restore ARGS` without a server (`--list`, or `--file=-`: it writes to its standard
/// output) on the dump `feed` writes, `consume` reading that output on a thread of its own;
/// what `consume` gives. pg_restore's failure comes first, then `feed`'s, then `consume`'s.
fn pg_restore_script<T: Send + 'static>(
    args: &[&str],
    feed: &mut Feed<'_>,
    consume: impl FnOnce(ChildStdout) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let mut child = Command::new("pg_restore")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("starting pg_restore (install PostgreSQL's client tools)", e))?;
    let mut stdin = UntilClosed(child.stdin.take().expect("stdin is piped"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || consume(stdout));
    let fed = feed(&mut stdin);
    drop(stdin);
    let consumed = reader
        .join()
        .map_err(|_| Error::Invalid("reading pg_restore's output failed".into()))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("waiting for pg_restore", e))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "pg_restore {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    fed?;
    consumed
}

/// The entries of a dump's table of contents that restore `wanted` tables (schema, name):
/// every schema, extension, type, domain, collation and sequence (small, and what a table's
/// columns and defaults may need; not functions, which may return other tables' rows), and each
/// wanted table's definition, defaults, rows and constraints other than foreign keys. A wanted
/// table the dump lacks is an error.
fn choose_entries(toc: &str, wanted: &[(String, String)]) -> Result<String, Error> {
    const SHARED: [&str; 6] = [
        "SCHEMA ",
        "EXTENSION ",
        "TYPE ",
        "DOMAIN ",
        "COLLATION ",
        "SEQUENCE ",
    ];
    const OF_TABLE: [&str; 4] = ["TABLE DATA ", "TABLE ", "DEFAULT ", "CONSTRAINT "];
    let mut out = String::new();
    let mut found = vec![false; wanted.len()];
    for line in toc.lines() {
        // `ID; OID OID KIND SCHEMA NAME OWNER`: the part after the two numbers.
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        let entry = rest.splitn(3, ' ').nth(2).unwrap_or("");
        if SHARED.iter().any(|k| entry.starts_with(k)) && !entry.starts_with("SEQUENCE OWNED BY ") {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let Some(kind) = OF_TABLE.iter().find(|k| entry.starts_with(**k)) else {
            continue;
        };
        let mut words = entry[kind.len()..].split(' ');
        let (schema, table) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        if let Some(i) = wanted.iter().position(|(s, t)| s == schema && t == table) {
            found[i] = true;
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(i) = found.iter().position(|f| !f) {
        return Err(Error::Invalid(format!(
            "the dump has no table {}.{}",
            wanted[i].0, wanted[i].1
        )));
    }
    Ok(out)
}

/// A table as a user names it, `SCHEMA.TABLE` or `TABLE` (in `public`): its schema and name.
fn schema_and_name(table: &str) -> (String, String) {
    match table.split_once('.') {
        Some((schema, name)) => (schema.to_owned(), name.to_owned()),
        None => ("public".to_owned(), table.to_owned()),
    }
}

/// The database a PostgreSQL URL names: its path, without the query.
fn database_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let name = path.split('?').next().unwrap_or("");
    (!name.is_empty()).then(|| name.to_owned())
}

/// An SQL string literal.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// An SQL identifier in double quotes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A client tool's `--version` line and its major version (`pg_dump (PostgreSQL) 15.4`: 15).
fn tool_version(program: &str) -> Result<(String, u32), Error> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::io(
                format!("starting {program} (install PostgreSQL's client tools)"),
                e,
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = parse_major(&text).ok_or_else(|| {
        Error::Invalid(format!(
            "cannot tell the version of {program} from {text:?}"
        ))
    })?;
    Ok((text, major))
}

/// The major version in a tool's `--version` line.
fn parse_major(text: &str) -> Option<u32> {
    let version = text
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    version.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dumps_copy_blocks_and_a_tables_rows_hash_alike() {
        let script = b"SET x = 1;\nCOPY public.a (id, name) FROM stdin;\n1\tx\n2\t\\N\n\\.\n\
            COPY \"S\".\"B\" (v) FROM stdin;\n\\.\n";
        let mut dumped = CopySums::default();
        for piece in script.chunks(3) {
            dumped.write_all(piece).unwrap();
        }
        let t = &dumped.tables;
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].table.as_str(), t[0].columns.as_str(), t[0].rows),
            ("public.a", "id, name", 2)
        );
        assert_eq!((t[1].table.as_str(), t[1].rows), ("\"S\".\"B\"", 0));
        let bare = |rows: &[u8]| {
            let mut s = CopySums::default();
            s.start("public.a", "id, name");
            s.write_all(rows).unwrap();
            s.end()
        };
        assert_eq!(bare(b"1\tx\n2\t\\N\n"), t[0]);
        // Another order, another value, a row missing: another hash.
        for other in [&b"2\t\\N\n1\tx\n"[..], b"1\tx\n2\t\n", b"1\tx\n"] {
            assert_ne!(bare(other), t[0]);
        }
    }

    #[test]
    fn urls_name_their_database_and_never_hold_a_password() {
        let pg = Postgres::new(
            "postgres://shop@127.0.0.1:5432/billing?sslmode=require",
            None,
        )
        .unwrap();
        assert_eq!(pg.database(), "billing");
        assert_eq!(
            pg.with_database("postgres").url,
            "postgres://shop@127.0.0.1:5432/postgres?sslmode=require"
        );
        let e = Postgres::new("postgres://shop:hunter2@db/billing", None).unwrap_err();
        assert!(e.to_string().contains("password_file"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(Postgres::new("postgres://db:5432/", None).is_err());
        assert!(Postgres::new("mysql://db/shop", None).is_err());
        let debug = format!(
            "{:?}",
            Postgres::new("postgres://db/x", Some("pw".into())).unwrap()
        );
        assert!(!debug.contains("pw\""), "{debug}");
    }

    #[test]
    fn a_tables_entries_are_chosen_with_what_its_columns_need() {
        let toc = "\
;\n\
; Archive created at 2026-12-07\n\
215; 1259 16400 TYPE public mpaa_rating postgres\n\
216; 1259 16401 DOMAIN public year postgres\n\
217; 1255 16402 FUNCTION public rewards_report(integer) postgres\n\
218; 1259 16403 SEQUENCE public actor_actor_id_seq postgres\n\
219; 1259 16404 TABLE public actor postgres\n\
220; 1259 16405 TABLE public film_actor postgres\n\
221; 0 0 SEQUENCE OWNED BY public actor_actor_id_seq postgres\n\
222; 2604 16406 DEFAULT public actor actor_id postgres\n\
3400; 0 16404 TABLE DATA public actor postgres\n\
3401; 0 16405 TABLE DATA public film_actor postgres\n\
3402; 0 0 SEQUENCE SET public actor_actor_id_seq postgres\n\
3500; 2606 16410 CONSTRAINT public actor actor_pkey postgres\n\
3501; 2606 16411 FK CONSTRAINT public film_actor film_actor_actor_id_fkey postgres\n\
3502; 1259 16412 INDEX public idx_actor_last_name postgres\n";
        let wanted = [("public".to_owned(), "actor".to_owned())];
        let chosen = choose_entries(toc, &wanted).unwrap();
        let ids: Vec<&str> = chosen
            .lines()
            .map(|l| l.split(';').next().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["215", "216", "218", "219", "222", "3400", "3402", "3500"]
        );
        let e = choose_entries(toc, &[("public".into(), "nope".into())]).unwrap_err();
        assert!(e.to_string().contains("public.nope"), "{e}");
    }

    #[test]
    fn versions_and_identifiers() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24\n"), Some(9));
        assert_eq!(parse_major("nothing"), None);
        assert_eq!(quote_ident("my \"db\""), "\"my \"\"db\"\"\"");
    }
}

/// One table's rows as a dump's `COPY` text has them: how many, and a BLAKE3 of their lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableSum {
    /// As the `COPY` line names it (`public.actor`, `"Reports"."Daily"`).
    pub(crate) table: String,
    /// The column list of the `COPY` line, as written there.
    pub(crate) columns: String,
    pub(crate) rows: u64,
    pub(crate) hash: [u8; 32],
}

/// A writer that hashes each `COPY ... FROM stdin;` block of a script it is given (or, after
/// [`CopySums::start`], the bare `COPY ... TO STDOUT` rows of one table).
#[derive(Default)]
pub(crate) struct CopySums {
    pub(crate) tables: Vec<TableSum>,
    line: Vec<u8>,
    current: Option<(TableSum, blake3::Hasher)>,
    /// Rows of one table with no `COPY` line or `\.` around them.
    bare: bool,
}

impl CopySums {
    fn start(&mut self, table: &str, columns: &str) {
        self.bare = true;
        self.current = Some((
            TableSum {
                table: table.to_owned(),
                columns: columns.to_owned(),
                rows: 0,
                hash: [0; 32],
            },
            blake3::Hasher::new(),
        ));
    }

    fn end(mut self) -> TableSum {
        let rest = std::mem::take(&mut self.line);
        if !rest.is_empty() {
            self.sum_line(&rest);
        }
        let (mut t, h) = self.current.take().expect("started");
        t.hash = *h.finalize().as_bytes();
        t
    }

    fn sum_line(&mut self, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        match &mut self.current {
            Some((t, h)) if self.bare || text != b"\\." => {
                h.update(line);
                t.rows += 1;
            }
            Some(_) => {
                let (mut t, h) = self.current.take().expect("a block");
                t.hash = *h.finalize().as_bytes();
                self.tables.push(t);
            }
            None => {
                let text = String::from_utf8_lossy(text);
                if let Some(rest) = text.strip_prefix("COPY ")
                    && let Some(rest) = rest.strip_suffix(" FROM stdin;")
                    && let Some((table, columns)) = rest.split_once(" (")
                {
                    self.current = Some((
                        TableSum {
                            table: table.to_owned(),
                            columns: columns.strip_suffix(')').unwrap_or(columns).to_owned(),
                            rows: 0,
                            hash: [0; 32],
                        },
                        blake3::Hasher::new(),
                    ));
                }
            }
        }
    }
}

impl LineSink for CopySums {
    fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.line
    }

    fn line(&mut self, line: Vec<u8>) -> std::io::Result<()> {
        self.sum_line(&line);
        Ok(())
    }
}

impl Write for CopySums {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_lines(self, buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
