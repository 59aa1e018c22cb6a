//! The built-in PostgreSQL export (`method = "builtin"`, and `auto` where `pg_dump` is missing
//! or older than the server): a client of backstop's own, no PostgreSQL tool on the machine.
//!
//! One session opens a `REPEATABLE READ READ ONLY` transaction and reads, in it, what the
//! snapshot records (versions, size, every table's rows, the schema's fingerprint and version:
//! the same queries as the `pg_dump` method's) and the schema from the catalogs, rebuilt as SQL
//! with the server's own `pg_get_*def` functions (with `search_path` empty, so every name comes
//! out schema-qualified). It then writes a plain SQL script that `psql` loads:
//!
//! 1. pre-data: schemas, extensions, types (enums, composites, ranges, domains), sequences,
//!    tables (columns, `NOT NULL`, generated and identity columns; partitions attached and
//!    inheritance declared), functions, aggregates, column defaults, check constraints, views
//!    and materialized views (in the order they depend on each other, without data);
//! 2. data: each table's rows with `COPY ... FROM stdin`, read by `COPY (SELECT ... ORDER BY
//!    primary key) TO STDOUT` in the transaction's snapshot, in the database's own encoding
//!    (the bytes as they are stored); then large objects;
//! 3. post-data: sequence values, primary keys, unique and exclusion constraints, indexes,
//!    foreign keys, triggers, rules, row-level security and its policies, comments, and the
//!    refresh of materialized views that had data.
//!
//! Each part starts with a line `-- backstop: KIND; SCHEMA; NAME` (as `pg_restore --list` names
//! its entries), by which a restore of single tables picks what it needs. Owners and privileges
//! are not written: objects belong to whoever restores (as with `pg_restore --no-owner`).
//! What the export cannot rebuild (foreign tables, base types, operators, collations or text
//! search configurations of the database's own, ordered-set and moving aggregates, event
//! triggers) is refused before anything is written, naming it: `method = "dump"` handles
//! those.

use std::io::Write;
use std::thread::JoinHandle;

use backstop_format::manifest::{ServerDatabase, SourceKind};
use postgres::{Client, SimpleQueryMessage};

use crate::postgres::{FINGERPRINT, TABLE_ROWS, quote_ident, quote_literal};
use crate::server::{LineSink, MIGRATIONS, migrations_present, write_lines};
use crate::{Entry, Error, Source};

/// A connection of backstop's own client to the database at `url` (a `postgres://` URL
/// without a password; TLS as libpq's `sslmode` and `sslrootcert` ask: [`crate::tls`]),
/// with `password` (else `PGPASSWORD`, else a matching line of the `.pgpass` file).
pub(crate) fn connect(url: &str, password: Option<&str>) -> Result<Client, Error> {
    let (plain, tls) = crate::tls::split(url).map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let mut config: postgres::Config = plain
        .parse()
        .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    config.ssl_mode(tls.mode);
    config.application_name("backstop");
    let env = std::env::var("PGPASSWORD").ok();
    if let Some(p) = password
        .map(str::to_owned)
        .or(env)
        .or_else(|| pgpass(&config))
    {
        config.password(p);
    }
    let connector = crate::tls::connector(&tls)?;
    config
        .connect(connector)
        .map_err(|e| Error::Invalid(format!("PostgreSQL at {url}: {}", error_text(&e))))
}

/// Writes the rows of `table` (quoted and qualified) into `out` as `COPY` text: `columns`
/// (quoted, comma-separated) of its own rows (`ONLY`), ordered by `order` when it names
/// columns, else as they are stored.
pub(crate) fn copy_rows(
    c: &mut Client,
    columns: &str,
    table: &str,
    order: &str,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let order = match order.is_empty() {
        true => String::new(),
        false => format!(" ORDER BY {order}"),
    };
    let query = format!("COPY (SELECT {columns} FROM ONLY {table}{order}) TO STDOUT");
    let what = format!("reading the rows of {table}");
    let mut reader = c
        .copy_out(query.as_str())
        .map_err(|e| Error::Invalid(format!("PostgreSQL: {what}: {}", error_text(&e))))?;
    std::io::copy(&mut reader, out).map_err(|e| copy_error(&what, e))?;
    Ok(())
}

/// An error of a `COPY ... TO STDOUT` read: the client's own error inside the I/O error says
/// what the server said ("db error" alone says nothing).
pub(crate) fn copy_error(what: &str, e: std::io::Error) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<postgres::Error>())
    {
        Some(pg) => Error::Invalid(format!("PostgreSQL: {what}: {}", error_text(pg))),
        None => {
            // Whatever it wraps, with its causes.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            Error::Invalid(format!("{what}: {text}"))
        }
    }
}

/// A client error with the server's own message where there is one.
pub(crate) fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None if e.is_closed() => "the connection to the server was closed (the server ended \
             it or restarted, or the network failed)"
            .to_owned(),
        None => {
            let mut text = e.to_string();
            let mut lost = false;
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                lost |= c.is::<std::io::Error>();
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            match lost {
                true => format!(
                    "the connection to the server was lost ({text}: the server ended it or \
                     restarted, or the network failed)"
                ),
                false => text,
            }
        }
    }
}

/// The password of the first line of the `.pgpass` file (`PGPASSFILE`, else `~/.pgpass`, on
/// Windows `%APPDATA%\postgresql\pgpass.conf`) that matches the connection, as libpq finds it.
fn pgpass(config: &postgres::Config) -> Option<String> {
    let file = match std::env::var_os("PGPASSFILE") {
        Some(f) => std::path::PathBuf::from(f),
        None if cfg!(windows) => std::path::PathBuf::from(std::env::var_os("APPDATA")?)
            .join("postgresql")
            .join("pgpass.conf"),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
    };
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config.get_dbname().unwrap_or("").to_owned();
    let user = config.get_user().unwrap_or("").to_owned();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(pgpass_fields)
        .find(|f| {
            f.len() == 5
                && [&host, &port, &db, &user]
                    .iter()
                    .zip(f)
                    .all(|(want, have)| have == "*" || have == *want)
        })
        .map(|f| f[4].clone())
}

/// The five fields of a `.pgpass` line (`:` and `\` escaped by `\`).
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("one field").extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// Rows of a query in the simple protocol: every value as text (`None` for NULL).
pub(crate) fn rows(c: &mut Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, Error> {
    let messages = c
        .simple_query(sql)
        .map_err(|e| Error::Invalid(format!("PostgreSQL: {} (in {sql:.120})", error_text(&e))))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).map(str::to_owned))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .collect())
}

/// The first column of every row of `sql`.
fn column(c: &mut Client, sql: &str) -> Result<Vec<String>, Error> {
    Ok(rows(c, sql)?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// The one value of `sql` (empty if none).
fn one(c: &mut Client, sql: &str) -> Result<String, Error> {
    Ok(column(c, sql)?.into_iter().next().unwrap_or_default())
}

/// Schemas of the database's own: not the system's.
const USER_NS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname !~ '^pg_(toast|temp)'";

/// The schema-qualified name of the collation `oid` (an SQL expression), as SQL (`regcollation`
/// is PostgreSQL 13's).
fn collation_name(oid: &str) -> String {
    format!(
        "(SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co \
         JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = {oid})"
    )
}

/// Not a member of an extension (which `CREATE EXTENSION` makes again).
fn not_in_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = '{catalog}'::regclass \
         AND x.objid = {oid} AND x.deptype = 'e')"
    )
}

/// A part of the script: its `-- backstop:` line and its SQL.
struct Part {
    kind: &'static str,
    schema: String,
    name: String,
    sql: String,
}

impl Part {
    fn new(kind: &'static str, schema: &str, name: &str, sql: String) -> Self {
        Self {
            kind,
            schema: schema.to_owned(),
            name: name.to_owned(),
            sql,
        }
    }

    fn write(&self, out: &mut String) {
        out.push_str(&format!(
            "\n-- backstop: {}; {}; {}\n{}\n",
            self.kind,
            self.schema,
            self.name,
            self.sql.trim_end()
        ));
    }
}

/// A table whose rows the export copies.
struct TableData {
    schema: String,
    name: String,
    /// `schema.table`, quoted.
    qualified: String,
    /// Its stored columns (not generated ones), quoted and comma-separated.
    columns: String,
    /// The primary key's columns, quoted and comma-separated (empty: none).
    order: String,
}

/// The script's parts before and after the data, and what the data part reads.
struct Plan {
    pre: String,
    tables: Vec<TableData>,
    large_objects: Vec<String>,
    post: String,
}

/// The export of one database: the session with its open transaction, and the plan.
pub struct PgExport {
    client: Option<Client>,
    plan: Option<Plan>,
    meta: Option<ServerDatabase>,
    item_path: String,
    encoding: String,
    describe: String,
    writer: Option<JoinHandle<Result<(), Error>>>,
    /// The source's data validation rules, run in the export's transaction.
    rules: Vec<crate::rules::Rule>,
}

impl PgExport {
    /// Opens the transaction, reads the record and the schema; nothing is written yet.
    pub(crate) fn open(
        url: &str,
        password: Option<&str>,
        database: &str,
    ) -> Result<PgExport, Error> {
        let mut c = connect(url, password)?;
        rows(&mut c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let server_num: u32 = one(&mut c, "SHOW server_version_num")?
            .parse()
            .map_err(|_| Error::Invalid("unexpected server_version_num".into()))?;
        let locale = rows(
            &mut c,
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database \
             WHERE datname = current_database()",
        )?
        .into_iter()
        .next()
        .unwrap_or_default();
        let field = |i: usize| locale.get(i).cloned().flatten();
        let encoding = field(0).unwrap_or_else(|| "UTF8".into());
        let tables = column(&mut c, TABLE_ROWS)?
            .iter()
            .filter_map(|l| crate::postgres::table_rows(l))
            .collect();
        let meta = ServerDatabase {
            engine: "postgres".into(),
            method: crate::server::Method::Builtin.as_str().into(),
            server_version: one(&mut c, "SHOW server_version")?,
            tool: format!("backstop {} built-in export", env!("CARGO_PKG_VERSION")),
            database: database.to_owned(),
            size_bytes: one(&mut c, "SELECT pg_database_size(current_database())")?
                .parse()
                .unwrap_or(0),
            tables,
            schema_fingerprint: one(&mut c, FINGERPRINT)?,
            schema_version: schema_version(&mut c)?,
            encoding: Some(encoding.clone()),
            collation: field(1),
            ctype: field(2),
            validation: None,
        };
        // From here on every name the catalog functions give is schema-qualified.
        rows(
            &mut c,
            "SET search_path = ''; SET bytea_output = hex; SET extra_float_digits = 3; \
             SET DateStyle = ISO; SET IntervalStyle = postgres",
        )?;
        if server_num < 120000 {
            return Err(Error::Invalid(format!(
                "the built-in export needs PostgreSQL 12 or newer (the server is {}): use \
                 method = \"dump\"",
                meta.server_version
            )));
        }
        refuse_unsupported(&mut c)?;
        let plan = plan(&mut c, server_num)?;
        Ok(PgExport {
            client: Some(c),
            plan: Some(plan),
            meta: Some(meta),
            item_path: format!("{database}.sql"),
            encoding,
            describe: format!("built-in export of PostgreSQL database {database}"),
            writer: None,
            rules: Vec::new(),
        })
    }

    /// The export, with why it was used in what the snapshot records of the source (not a
    /// warning: the snapshot is whole, and its record says `builtin`).
    pub(crate) fn because(mut self, why: String) -> Self {
        self.describe = format!("{} ({why})", self.describe);
        self
    }
}

/// The newest migration applied, as `TABLE VERSION`, from the first migrations table found in
/// the current schema (read before `search_path` is emptied).
fn schema_version(c: &mut Client) -> Result<Option<String>, Error> {
    let found = column(c, &migrations_present("current_schema()"))?;
    for (table, _, query) in MIGRATIONS {
        if found.iter().any(|f| f == table) {
            let v = one(c, query)?;
            return Ok((!v.is_empty()).then(|| format!("{table} {v}")));
        }
    }
    Ok(None)
}

/// Refuses, naming them, the objects the export cannot rebuild.
fn refuse_unsupported(c: &mut Client) -> Result<(), Error> {
    let checks = [
        (
            "foreign tables",
            format!(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n \
                 ON n.oid = c.relnamespace WHERE c.relkind = 'f' AND {USER_NS} AND {}",
                not_in_extension("pg_class", "c.oid")
            ),
        ),
        (
            "base types",
            format!(
                "SELECT t.oid::regtype::text FROM pg_type t JOIN pg_namespace n \
                 ON n.oid = t.typnamespace WHERE t.typtype = 'b' AND t.typelem = 0 \
                 AND {USER_NS} AND {}",
                not_in_extension("pg_type", "t.oid")
            ),
        ),
        (
            "operators",
            format!(
                "SELECT o.oid::regoperator::text FROM pg_operator o JOIN pg_namespace n \
                 ON n.oid = o.oprnamespace WHERE {USER_NS} AND {}",
                not_in_extension("pg_operator", "o.oid")
            ),
        ),
        (
            "collations",
            format!(
                "SELECT o.collname FROM pg_collation o JOIN pg_namespace n \
                 ON n.oid = o.collnamespace WHERE {USER_NS} AND {}",
                not_in_extension("pg_collation", "o.oid")
            ),
        ),
        (
            "text search configurations",
            format!(
                "SELECT o.cfgname FROM pg_ts_config o JOIN pg_namespace n \
                 ON n.oid = o.cfgnamespace WHERE {USER_NS} AND {}",
                not_in_extension("pg_ts_config", "o.oid")
            ),
        ),
        (
            "ordered-set aggregates",
            format!(
                "SELECT p.oid::regprocedure::text FROM pg_aggregate a JOIN pg_proc p \
                 ON p.oid = a.aggfnoid JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE a.aggkind <> 'n' AND {USER_NS} AND {}",
                not_in_extension("pg_proc", "p.oid")
            ),
        ),
        (
            "moving-aggregate definitions",
            format!(
                "SELECT p.oid::regprocedure::text FROM pg_aggregate a JOIN pg_proc p \
                 ON p.oid = a.aggfnoid JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE a.aggmtransfn <> 0 AND {USER_NS} AND {}",
                not_in_extension("pg_proc", "p.oid")
            ),
        ),
        (
            "event triggers",
            "SELECT evtname FROM pg_event_trigger".to_owned(),
        ),
    ];
    for (what, sql) in checks {
        let found = column(c, &sql)?;
        if !found.is_empty() {
            return Err(Error::Invalid(format!(
                "the built-in export cannot rebuild {what} of the database's own ({}): use \
                 method = \"dump\" with PostgreSQL's client tools",
                found.join(", ")
            )));
        }
    }
    Ok(())
}

/// The script's parts, read from the catalogs.
fn plan(c: &mut Client, server_num: u32) -> Result<Plan, Error> {
    let mut pre = Vec::new();
    // Schemas (public is made by CREATE DATABASE).
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname FROM pg_namespace n WHERE {USER_NS} AND n.nspname <> 'public' \
             AND {} ORDER BY 1",
            not_in_extension("pg_namespace", "n.oid")
        ),
    )? {
        let name = r[0].clone().unwrap_or_default();
        pre.push(Part::new(
            "SCHEMA",
            "-",
            &name,
            format!("CREATE SCHEMA {};", quote_ident(&name)),
        ));
    }
    for r in rows(
        c,
        "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n \
         ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY e.oid",
    )? {
        let (name, schema) = (text(&r, 0), text(&r, 1));
        pre.push(Part::new(
            "EXTENSION",
            "-",
            &name,
            format!(
                "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {};",
                quote_ident(&name),
                quote_ident(&schema)
            ),
        ));
    }
    // Types: enums, composites, ranges and domains, in the order they were made.
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, t.typname, t.typtype, t.oid::regtype::text, \
               CASE t.typtype \
                 WHEN 'e' THEN (SELECT string_agg(quote_literal(enumlabel), ', ' \
                   ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid) \
                 WHEN 'c' THEN (SELECT string_agg(format('%I %s%s', a.attname, \
                   format_type(a.atttypid, a.atttypmod), CASE WHEN a.attcollation <> 0 \
                   AND a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid) \
                   THEN ' COLLATE ' || {coll_a} ELSE '' END), ', ' \
                   ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid \
                   AND a.attnum > 0 AND NOT a.attisdropped) \
                 WHEN 'r' THEN (SELECT format('SUBTYPE = %s', format_type(rngsubtype, NULL)) \
                   FROM pg_range WHERE rngtypid = t.oid) \
                 WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) \
                   || CASE WHEN t.typcollation <> 0 AND t.typcollation <> (SELECT typcollation \
                   FROM pg_type WHERE oid = t.typbasetype) THEN ' COLLATE ' \
                   || {coll_t} ELSE '' END \
                   || coalesce(' DEFAULT ' || t.typdefault, '') \
                   || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END \
                   || coalesce((SELECT string_agg(format(' CONSTRAINT %I %s', conname, \
                   pg_get_constraintdef(oid)), '' ORDER BY conname) FROM pg_constraint \
                   WHERE contypid = t.oid AND contype = 'c'), '') \
               END \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE (t.typtype IN ('e', 'r', 'd') OR (t.typtype = 'c' AND (SELECT relkind \
               FROM pg_class WHERE oid = t.typrelid) = 'c')) \
             AND {USER_NS} AND {} ORDER BY t.oid",
            not_in_extension("pg_type", "t.oid"),
            coll_a = collation_name("a.attcollation"),
            coll_t = collation_name("t.typcollation"),
        ),
    )? {
        let (schema, name, kind, qualified, body) = (
            text(&r, 0),
            text(&r, 1),
            text(&r, 2),
            text(&r, 3),
            text(&r, 4),
        );
        let (entry, sql) = match kind.as_str() {
            "e" => ("TYPE", format!("CREATE TYPE {qualified} AS ENUM ({body});")),
            "c" => ("TYPE", format!("CREATE TYPE {qualified} AS ({body});")),
            "r" => (
                "TYPE",
                format!("CREATE TYPE {qualified} AS RANGE ({body});"),
            ),
            _ => ("DOMAIN", format!("CREATE DOMAIN {qualified} AS {body};")),
        };
        pre.push(Part::new(entry, &schema, &name, sql));
    }
    // Sequences other than identity columns' (which their tables make).
    let mut post = Vec::new();
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, c.relname, c.oid::regclass::text, format('CREATE SEQUENCE %s \
               AS %s START WITH %s INCREMENT BY %s MINVALUE %s MAXVALUE %s CACHE %s%s;', \
               c.oid::regclass, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, \
               s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END), \
               (SELECT t.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid \
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                 AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'i') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_sequence s ON s.seqrelid = c.oid WHERE {USER_NS} AND {} ORDER BY c.oid",
            not_in_extension("pg_class", "c.oid")
        ),
    )? {
        let (schema, name, qualified, create) =
            (text(&r, 0), text(&r, 1), text(&r, 2), text(&r, 3));
        // An identity column's sequence is made by its table, and set with its table's rows.
        let (kind, of) = match &r[4] {
            Some(table) => ("IDENTITY SET", table.clone()),
            None => {
                pre.push(Part::new("SEQUENCE", &schema, &name, create));
                ("SEQUENCE SET", name.clone())
            }
        };
        // Its value now (sequences are outside transactions: at least every value the
        // snapshot's rows hold).
        let value = rows(c, &format!("SELECT last_value, is_called FROM {qualified}"))?
            .into_iter()
            .next()
            .unwrap_or_default();
        post.push(Part::new(
            kind,
            &schema,
            &of,
            format!(
                "SELECT pg_catalog.setval({}, {}, {});",
                quote_literal(&qualified),
                text(&value, 0),
                if text(&value, 1) == "t" {
                    "true"
                } else {
                    "false"
                }
            ),
        ));
    }
    // Tables.
    let table_rows = rows(
        c,
        &format!(
            "SELECT c.oid, n.nspname, c.relname, c.oid::regclass::text, c.relkind, \
               c.relpersistence, coalesce(pg_get_partkeydef(c.oid), ''), \
               coalesce(array_to_string(c.reloptions, ', '), ''), \
               CASE WHEN c.relispartition THEN (SELECT i.inhparent::regclass::text \
                 FROM pg_inherits i WHERE i.inhrelid = c.oid) END, \
               CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
               (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno) \
                 FROM pg_inherits i WHERE i.inhrelid = c.oid AND NOT c.relispartition) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND {USER_NS} AND {} ORDER BY c.oid",
            not_in_extension("pg_class", "c.oid")
        ),
    )?;
    let mut tables = Vec::new();
    let mut defaults = Vec::new();
    let mut attach = Vec::new();
    for r in &table_rows {
        let (oid, schema, name, qualified, kind) =
            (text(r, 0), text(r, 1), text(r, 2), text(r, 3), text(r, 4));
        let columns = rows(
            c,
            &format!(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                   a.attgenerated, a.attidentity, pg_get_expr(d.adbin, d.adrelid), \
                   CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT typcollation \
                     FROM pg_type WHERE oid = a.atttypid) \
                     THEN {coll_a} END, a.attislocal, \
                   (SELECT format(' (SEQUENCE NAME %s START WITH %s INCREMENT BY %s \
                     MINVALUE %s MAXVALUE %s CACHE %s%s)', s.seqrelid::regclass, s.seqstart, \
                     s.seqincrement, s.seqmin, s.seqmax, s.seqcache, \
                     CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END) \
                     FROM pg_depend p JOIN pg_sequence s ON s.seqrelid = p.objid \
                     WHERE p.classid = 'pg_class'::regclass AND p.refobjid = a.attrelid \
                     AND p.refobjsubid = a.attnum AND p.deptype = 'i' AND a.attidentity <> '') \
                 FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid \
                   AND d.adnum = a.attnum \
                 WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                coll_a = collation_name("a.attcollation"),
            ),
        )?;
        let mut defs = Vec::new();
        let mut stored = Vec::new();
        // A child's columns that come from its parents only are not declared again.
        let inherits_from_parents = r[10].is_some();
        for col in &columns {
            let inherited_only = inherits_from_parents && text(col, 7) == "f";
            let (cname, ctype, notnull, generated, identity, default) = (
                text(col, 0),
                text(col, 1),
                text(col, 2) == "t",
                text(col, 3),
                text(col, 4),
                col[5].clone(),
            );
            let mut def = format!("    {} {ctype}", quote_ident(&cname));
            if let Some(collation) = &col[6] {
                def.push_str(&format!(" COLLATE {collation}"));
            }
            if generated == "s" {
                def.push_str(&format!(
                    " GENERATED ALWAYS AS ({}) STORED",
                    default.clone().unwrap_or_default()
                ));
            } else {
                stored.push(quote_ident(&cname));
                if let Some(d) = default {
                    defaults.push(Part::new(
                        "DEFAULT",
                        &schema,
                        &name,
                        format!(
                            "ALTER TABLE ONLY {qualified} ALTER COLUMN {} SET DEFAULT {d};",
                            quote_ident(&cname)
                        ),
                    ));
                }
            }
            // With its sequence's name and options (the setval after the rows names it).
            let options = text(col, 8);
            match identity.as_str() {
                "a" => def.push_str(&format!(" GENERATED ALWAYS AS IDENTITY{options}")),
                "d" => def.push_str(&format!(" GENERATED BY DEFAULT AS IDENTITY{options}")),
                _ => {}
            }
            if notnull {
                def.push_str(" NOT NULL");
            }
            if !inherited_only {
                defs.push(def);
            }
        }
        let inherits = r[10]
            .as_ref()
            .map(|p| format!(" INHERITS ({p})"))
            .unwrap_or_default();
        let partition_by = match text(r, 6) {
            k if k.is_empty() => String::new(),
            k => format!(" PARTITION BY {k}"),
        };
        let with = match text(r, 7) {
            o if o.is_empty() => String::new(),
            o => format!(" WITH ({o})"),
        };
        let unlogged = if text(r, 5) == "u" { "UNLOGGED " } else { "" };
        pre.push(Part::new(
            "TABLE",
            &schema,
            &name,
            format!(
                "CREATE {unlogged}TABLE {qualified} (\n{}\n){inherits}{partition_by}{with};",
                defs.join(",\n")
            ),
        ));
        if let (Some(parent), Some(bound)) = (&r[8], &r[9]) {
            attach.push(Part::new(
                "TABLE ATTACH",
                &schema,
                &name,
                format!("ALTER TABLE ONLY {parent} ATTACH PARTITION {qualified} {bound};"),
            ));
        }
        if kind == "r" {
            let order = column(
                c,
                &format!(
                    "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.i) \
                     FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(n, i) \
                     JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n \
                     WHERE x.indrelid = {oid} AND x.indisprimary"
                ),
            )?
            .into_iter()
            .next()
            .unwrap_or_default();
            tables.push(TableData {
                schema: schema.clone(),
                name: name.clone(),
                qualified: qualified.clone(),
                columns: stored.join(", "),
                order,
            });
        }
    }
    pre.extend(attach);
    // Serial columns' sequences belong to their column.
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, s.relname, format('ALTER SEQUENCE %s OWNED BY %s.%I;', \
               s.oid::regclass, t.oid::regclass, a.attname) \
             FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = s.relnamespace \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
             AND d.deptype = 'a' AND {USER_NS} ORDER BY s.oid"
        ),
    )? {
        pre.push(Part::new(
            "SEQUENCE OWNED BY",
            &text(&r, 0),
            &text(&r, 1),
            text(&r, 2),
        ));
    }
    // Functions and procedures, then aggregates.
    let prokind = if server_num >= 110000 {
        "p.prokind IN ('f', 'p', 'w')"
    } else {
        "NOT p.proisagg"
    };
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, p.proname, pg_get_functiondef(p.oid) FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE {prokind} AND {USER_NS} AND {} \
             AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass \
               AND x.objid = p.oid AND x.deptype = 'i') ORDER BY p.oid",
            not_in_extension("pg_proc", "p.oid")
        ),
    )? {
        pre.push(Part::new(
            "FUNCTION",
            &text(&r, 0),
            &text(&r, 1),
            format!("{};", text(&r, 2).trim_end()),
        ));
    }
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, p.proname, format('CREATE AGGREGATE %s(%s) (SFUNC = %s, \
               STYPE = %s%s%s%s%s%s%s%s%s);', p.oid::regproc, \
               pg_get_function_identity_arguments(p.oid), a.aggtransfn::regproc, \
               format_type(a.aggtranstype, NULL), \
               CASE WHEN a.aggtransspace <> 0 THEN ', SSPACE = ' || a.aggtransspace END, \
               CASE WHEN a.aggfinalfn <> 0 THEN ', FINALFUNC = ' || a.aggfinalfn::regproc END, \
               CASE WHEN a.aggfinalextra THEN ', FINALFUNC_EXTRA' END, \
               CASE WHEN a.aggcombinefn <> 0 THEN ', COMBINEFUNC = ' || a.aggcombinefn::regproc END, \
               CASE WHEN a.aggserialfn <> 0 THEN ', SERIALFUNC = ' || a.aggserialfn::regproc \
                 || ', DESERIALFUNC = ' || a.aggdeserialfn::regproc END, \
               CASE WHEN a.agginitval IS NOT NULL THEN ', INITCOND = ' \
                 || quote_literal(a.agginitval) END, \
               CASE WHEN a.aggsortop <> 0 THEN ', SORTOP = OPERATOR(' \
                 || a.aggsortop::regoper::text || ')' END, \
               CASE p.proparallel WHEN 's' THEN ', PARALLEL = SAFE' \
                 WHEN 'r' THEN ', PARALLEL = RESTRICTED' END) \
             FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE {USER_NS} AND {} ORDER BY p.oid",
            not_in_extension("pg_proc", "p.oid")
        ),
    )? {
        pre.push(Part::new(
            "AGGREGATE",
            &text(&r, 0),
            &text(&r, 1),
            text(&r, 2),
        ));
    }
    pre.extend(defaults);
    // Check constraints (added with their tables' children where the table has some).
    let ispartitioned = "(SELECT relkind FROM pg_class WHERE oid = o.conrelid) = 'p'";
    for r in constraints(c, "o.contype = 'c'", ispartitioned)? {
        pre.push(r);
    }
    // Views and materialized views, each after those it reads.
    let views = rows(
        c,
        &format!(
            "SELECT c.oid, n.nspname, c.relname, c.relkind, c.oid::regclass::text, \
               pg_get_viewdef(c.oid), coalesce(array_to_string(c.reloptions, ', '), ''), \
               c.relispopulated, \
               (SELECT string_agg(DISTINCT d.refobjid::text, ' ') FROM pg_rewrite w \
                 JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid \
                 WHERE w.ev_class = c.oid AND d.refclassid = 'pg_class'::regclass \
                 AND d.refobjid <> c.oid) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') AND {USER_NS} AND {} ORDER BY c.oid",
            not_in_extension("pg_class", "c.oid")
        ),
    )?;
    let mut refresh = Vec::new();
    for i in dependency_order(&views) {
        let r = &views[i];
        let (schema, name, kind, qualified, def, options) = (
            text(r, 1),
            text(r, 2),
            text(r, 3),
            text(r, 4),
            text(r, 5),
            text(r, 6),
        );
        let with = match options.is_empty() {
            true => String::new(),
            false => format!(" WITH ({options})"),
        };
        let def = def.trim_end().trim_end_matches(';');
        if kind == "m" {
            pre.push(Part::new(
                "MATERIALIZED VIEW",
                &schema,
                &name,
                format!("CREATE MATERIALIZED VIEW {qualified}{with} AS\n{def}\nWITH NO DATA;"),
            ));
            if text(r, 7) == "t" {
                refresh.push(Part::new(
                    "MATERIALIZED VIEW DATA",
                    &schema,
                    &name,
                    format!("REFRESH MATERIALIZED VIEW {qualified};"),
                ));
            }
        } else {
            pre.push(Part::new(
                "VIEW",
                &schema,
                &name,
                format!("CREATE VIEW {qualified}{with} AS\n{def};"),
            ));
        }
    }
    // Primary keys, unique and exclusion constraints; indexes; foreign keys.
    post.extend(constraints(
        c,
        "o.contype IN ('p', 'u', 'x')",
        ispartitioned,
    )?);
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, i.relname, pg_get_indexdef(x.indexrelid), t.relkind \
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = i.relnamespace \
             WHERE t.relkind IN ('r', 'p', 'm') AND {USER_NS} \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint o WHERE o.conindid = x.indexrelid \
               AND o.contype IN ('p', 'u', 'x')) \
             AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = x.indexrelid) \
             AND {} ORDER BY i.oid",
            not_in_extension("pg_class", "t.oid")
        ),
    )? {
        // A partitioned table's index is made on its partitions too.
        let def = match text(&r, 3).as_str() {
            "p" => text(&r, 2).replacen(" ON ONLY ", " ON ", 1),
            _ => text(&r, 2),
        };
        post.push(Part::new(
            "INDEX",
            &text(&r, 0),
            &text(&r, 1),
            format!("{def};"),
        ));
    }
    post.extend(constraints(c, "o.contype = 'f'", ispartitioned)?);
    let cloned = if server_num >= 130000 {
        "AND g.tgparentid = 0"
    } else {
        ""
    };
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, g.tgname, pg_get_triggerdef(g.oid) FROM pg_trigger g \
             JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE NOT g.tgisinternal {cloned} AND {USER_NS} AND {} ORDER BY g.oid",
            not_in_extension("pg_class", "t.oid")
        ),
    )? {
        post.push(Part::new(
            "TRIGGER",
            &text(&r, 0),
            &text(&r, 1),
            format!("{};", text(&r, 2)),
        ));
    }
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, w.rulename, pg_get_ruledef(w.oid) FROM pg_rewrite w \
             JOIN pg_class t ON t.oid = w.ev_class JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE w.rulename <> '_RETURN' AND {USER_NS} AND {} ORDER BY w.oid",
            not_in_extension("pg_class", "t.oid")
        ),
    )? {
        post.push(Part::new("RULE", &text(&r, 0), &text(&r, 1), text(&r, 2)));
    }
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, t.relname, format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY;%s', \
               t.oid::regclass, CASE WHEN t.relforcerowsecurity THEN format(\
               E'\\nALTER TABLE %s FORCE ROW LEVEL SECURITY;', t.oid::regclass) ELSE '' END) \
             FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE t.relrowsecurity AND {USER_NS} ORDER BY t.oid"
        ),
    )? {
        post.push(Part::new(
            "ROW SECURITY",
            &text(&r, 0),
            &text(&r, 1),
            text(&r, 2),
        ));
    }
    for r in rows(
        c,
        "SELECT schemaname, policyname, format('CREATE POLICY %I ON %I.%I AS %s FOR %s TO %s%s%s;', \
           policyname, schemaname, tablename, permissive, cmd, \
           (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ') \
             FROM unnest(roles) r), \
           CASE WHEN qual IS NOT NULL THEN ' USING (' || qual || ')' END, \
           CASE WHEN with_check IS NOT NULL THEN ' WITH CHECK (' || with_check || ')' END) \
         FROM pg_policies ORDER BY 1, 2",
    )? {
        post.push(Part::new("POLICY", &text(&r, 0), &text(&r, 1), text(&r, 2)));
    }
    // Comments on relations, columns, functions, types and schemas.
    for r in rows(
        c,
        &format!(
            "SELECT n.nspname, c.relname, format('COMMENT ON %s %s IS %L;', CASE c.relkind \
               WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' \
               WHEN 'i' THEN 'INDEX' WHEN 'I' THEN 'INDEX' ELSE 'TABLE' END, c.oid::regclass, \
               d.description) \
             FROM pg_description d JOIN pg_class c ON d.classoid = 'pg_class'::regclass \
               AND d.objoid = c.oid AND d.objsubid = 0 \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_NS} AND {ext_class} \
             UNION ALL \
             SELECT n.nspname, c.relname, format('COMMENT ON COLUMN %s.%I IS %L;', \
               c.oid::regclass, a.attname, d.description) \
             FROM pg_description d JOIN pg_class c ON d.classoid = 'pg_class'::regclass \
               AND d.objoid = c.oid JOIN pg_attribute a ON a.attrelid = c.oid \
               AND a.attnum = d.objsubid AND d.objsubid > 0 \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_NS} AND {ext_class} \
             UNION ALL \
             SELECT n.nspname, p.proname, format('COMMENT ON %s %s IS %L;', \
               CASE WHEN EXISTS (SELECT 1 FROM pg_aggregate WHERE aggfnoid = p.oid) \
               THEN 'AGGREGATE' ELSE 'FUNCTION' END, p.oid::regprocedure, d.description) \
             FROM pg_description d JOIN pg_proc p ON d.classoid = 'pg_proc'::regclass \
               AND d.objoid = p.oid JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE {USER_NS} AND {ext_proc} \
             UNION ALL \
             SELECT n.nspname, t.typname, format('COMMENT ON %s %s IS %L;', CASE t.typtype \
               WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype, d.description) \
             FROM pg_description d JOIN pg_type t ON d.classoid = 'pg_type'::regclass \
               AND d.objoid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE {USER_NS} AND {ext_type} \
             UNION ALL \
             SELECT '-', n.nspname, format('COMMENT ON SCHEMA %I IS %L;', n.nspname, \
               d.description) \
             FROM pg_description d JOIN pg_namespace n ON d.classoid = 'pg_namespace'::regclass \
               AND d.objoid = n.oid WHERE {USER_NS} AND n.nspname <> 'public'",
            ext_class = not_in_extension("pg_class", "c.oid"),
            ext_proc = not_in_extension("pg_proc", "p.oid"),
            ext_type = not_in_extension("pg_type", "t.oid"),
        ),
    )? {
        post.push(Part::new(
            "COMMENT",
            &text(&r, 0),
            &text(&r, 1),
            text(&r, 2),
        ));
    }
    post.extend(refresh);
    let large_objects = column(
        c,
        "SELECT oid::text FROM pg_largeobject_metadata ORDER BY oid",
    )?;
    let mut pre_text = String::new();
    for p in &pre {
        p.write(&mut pre_text);
    }
    let mut post_text = String::new();
    for p in &post {
        p.write(&mut post_text);
    }
    Ok(Plan {
        pre: pre_text,
        tables,
        large_objects,
        post: post_text,
    })
}

/// Constraints of user tables of the kinds `filter` picks, other than those a parent table's
/// constraint makes on its children (inherited, or cloned onto partitions): `ALTER TABLE
/// [ONLY] ... ADD CONSTRAINT`, without `ONLY` on tables of which `cascading` holds.
fn constraints(c: &mut Client, filter: &str, cascading: &str) -> Result<Vec<Part>, Error> {
    Ok(rows(
        c,
        &format!(
            "SELECT n.nspname, t.relname, format('ALTER TABLE %s%s ADD CONSTRAINT %I %s;', \
               CASE WHEN {cascading} THEN '' ELSE 'ONLY ' END, o.conrelid::regclass, \
               o.conname, pg_get_constraintdef(o.oid)), \
               CASE o.contype WHEN 'f' THEN 'FK CONSTRAINT' ELSE 'CONSTRAINT' END \
             FROM pg_constraint o JOIN pg_class t ON t.oid = o.conrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE {filter} AND o.conislocal AND o.conparentid = 0 AND {USER_NS} AND {} \
             ORDER BY o.oid",
            not_in_extension("pg_class", "t.oid")
        ),
    )?
    .into_iter()
    .map(|r| {
        let kind = if text(&r, 3) == "FK CONSTRAINT" {
            "FK CONSTRAINT"
        } else {
            "CONSTRAINT"
        };
        Part::new(kind, &text(&r, 0), &text(&r, 1), text(&r, 2))
    })
    .collect())
}

/// The order to create views in: each after the views it reads (column 0: oid, column 8: the
/// oids of the relations it reads, space-separated). A cycle (which PostgreSQL does not allow)
/// would keep the catalog's order.
fn dependency_order(views: &[Vec<Option<String>>]) -> Vec<usize> {
    let oids: Vec<String> = views.iter().map(|r| text(r, 0)).collect();
    let reads: Vec<Vec<usize>> = views
        .iter()
        .map(|r| {
            text(r, 8)
                .split_whitespace()
                .filter_map(|o| oids.iter().position(|v| v == o))
                .collect()
        })
        .collect();
    let mut done = vec![false; views.len()];
    let mut order = Vec::new();
    while order.len() < views.len() {
        let before = order.len();
        for i in 0..views.len() {
            if !done[i] && reads[i].iter().all(|&d| done[d] || d == i) {
                done[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            order.extend((0..views.len()).filter(|&i| !done[i]));
            break;
        }
    }
    order
}

/// Column `i` of a row, empty for NULL.
fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// Writes the whole script into `out`: the parts read at the start, each table's rows and the
/// large objects read in the open transaction.
fn write_script(
    c: &mut Client,
    plan: &Plan,
    encoding: &str,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let w = |out: &mut dyn Write, s: &str| {
        out.write_all(s.as_bytes())
            .map_err(|e| Error::io("writing the export", e))
    };
    w(
        out,
        "-- PostgreSQL database export by backstop (method = builtin); load it with\n\
         -- psql -v ON_ERROR_STOP=1 --single-transaction -f FILE\n\
         SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = 'UTF8';\n\
         SET standard_conforming_strings = on;\nSET check_function_bodies = false;\n\
         SET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;\n\
         SELECT pg_catalog.set_config('search_path', '', false);\n",
    )?;
    w(out, &plan.pre)?;
    // The rows go as they are stored, in the database's own encoding.
    rows(
        c,
        &format!("SET client_encoding = {}", quote_literal(encoding)),
    )?;
    w(
        out,
        &format!(
            "\n-- backstop: ENCODING; -; -\nSET client_encoding = {};\n",
            quote_literal(encoding)
        ),
    )?;
    for t in &plan.tables {
        w(
            out,
            &format!(
                "\n-- backstop: TABLE DATA; {}; {}\nCOPY {} ({}) FROM stdin;\n",
                t.schema, t.name, t.qualified, t.columns
            ),
        )?;
        copy_rows(c, &t.columns, &t.qualified, &t.order, out)?;
        w(out, "\\.\n")?;
    }
    rows(c, "SET client_encoding = 'UTF8'")?;
    w(
        out,
        "\n-- backstop: ENCODING; -; -\nSET client_encoding = 'UTF8';\n",
    )?;
    for oid in &plan.large_objects {
        w(
            out,
            &format!("\n-- backstop: BLOB; -; {oid}\nSELECT pg_catalog.lo_create({oid});\n"),
        )?;
        let mut offset: u64 = 0;
        const PIECE: u64 = 1 << 20;
        loop {
            let hex = one(c, &format!("SELECT lo_get({oid}, {offset}, {PIECE})"))?;
            let bytes = (hex.len().saturating_sub(2) / 2) as u64;
            if bytes == 0 {
                break;
            }
            w(
                out,
                &format!("SELECT pg_catalog.lo_put({oid}, {offset}, '{hex}');\n"),
            )?;
            offset += bytes;
            if bytes < PIECE {
                break;
            }
        }
    }
    w(out, &plan.post)?;
    rows(c, "COMMIT")?;
    Ok(())
}

impl Source for PgExport {
    fn kind(&self) -> SourceKind {
        SourceKind::Postgres
    }

    fn describe(&self) -> Vec<String> {
        vec![self.describe.clone()]
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        let (Some(mut client), Some(plan)) = (self.client.take(), self.plan.take()) else {
            return Ok(None);
        };
        // The rules see what the export reads: its transaction's snapshot, taken when it
        // opened (with the database's own search path, as `validate` has it).
        if !self.rules.is_empty()
            && let Some(meta) = self.meta.as_mut()
        {
            rows(&mut client, "SET search_path TO DEFAULT")?;
            meta.validation = Some(backstop_format::manifest::Validation {
                rules: crate::rules::fingerprint(&self.rules),
                results: crate::postgres::rules_in_transaction(&mut client, &self.rules),
            });
            rows(&mut client, "SET search_path = ''")?;
        }
        let encoding = self.encoding.clone();
        let (entry, writer) =
            crate::server::export_entry(self.item_path.clone(), self.meta.take(), move |out| {
                write_script(&mut client, &plan, &encoding, out)
            })?;
        self.writer = Some(writer);
        Ok(Some(entry))
    }

    fn use_rules(&mut self, rules: &[crate::rules::Rule]) {
        self.rules = rules.to_vec();
    }

    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn finish(&mut self) -> Result<(), Error> {
        crate::server::finish_export(&mut self.writer)
    }
}

/// What a restore of single tables takes from the script (as [`crate::postgres`] chooses
/// from a `pg_restore` list): the header, every schema, extension, type, domain and sequence
/// (what a table's columns and defaults may need) with the sequences' values, and each wanted
/// table's definition, defaults, rows and constraints other than foreign keys. It passes the
/// lines of the parts it takes and drops the others; rows are never read as markers.
pub(crate) struct PartFilter<'a, W: Write> {
    out: W,
    wanted: &'a [(String, String)],
    /// Which wanted tables the script defined.
    found: Vec<bool>,
    line: Vec<u8>,
    pass: bool,
    in_copy: bool,
}

impl<'a, W: Write> PartFilter<'a, W> {
    pub(crate) fn new(out: W, wanted: &'a [(String, String)]) -> Self {
        Self {
            out,
            wanted,
            found: vec![false; wanted.len()],
            line: Vec::new(),
            pass: true,
            in_copy: false,
        }
    }

    fn takes(&mut self, kind: &str, schema: &str, name: &str) -> bool {
        const SHARED: [&str; 8] = [
            "ENCODING",
            "SCHEMA",
            "EXTENSION",
            "TYPE",
            "DOMAIN",
            "SEQUENCE",
            "SEQUENCE SET",
            "COLLATION",
        ];
        const OF_TABLE: [&str; 5] = [
            "TABLE",
            "TABLE DATA",
            "DEFAULT",
            "CONSTRAINT",
            "IDENTITY SET",
        ];
        if SHARED.contains(&kind) {
            return true;
        }
        let Some(i) = self
            .wanted
            .iter()
            .position(|(s, t)| s == schema && t == name)
        else {
            return false;
        };
        if kind == "TABLE" {
            self.found[i] = true;
        }
        OF_TABLE.contains(&kind)
    }

    fn part_line(&mut self, line: Vec<u8>) -> std::io::Result<()> {
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if self.in_copy {
            self.in_copy = text != b"\\.";
        } else if let Some(marker) = text.strip_prefix(b"-- backstop: ") {
            let marker = String::from_utf8_lossy(marker);
            let mut fields = marker.splitn(3, "; ");
            let (kind, schema, name) = (
                fields.next().unwrap_or(""),
                fields.next().unwrap_or(""),
                fields.next().unwrap_or(""),
            );
            self.pass = self.takes(kind, schema, name);
        } else if text.starts_with(b"COPY ") && text.ends_with(b" FROM stdin;") {
            self.in_copy = true;
        }
        if self.pass {
            self.out.write_all(&line)?;
        }
        Ok(())
    }

    /// Passes what is left and says which wanted table the script did not have.
    pub(crate) fn finish(mut self) -> Result<(), Error> {
        self.rest()
            .map_err(|e| Error::io("loading the export", e))?;
        self.out
            .flush()
            .map_err(|e| Error::io("loading the export", e))?;
        match self.found.iter().position(|f| !f) {
            Some(i) => Err(Error::Invalid(format!(
                "the dump has no table {}.{}",
                self.wanted[i].0, self.wanted[i].1
            ))),
            None => Ok(()),
        }
    }
}

impl<W: Write> LineSink for PartFilter<'_, W> {
    fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.line
    }

    fn line(&mut self, line: Vec<u8>) -> std::io::Result<()> {
        self.part_line(line)
    }
}

impl<W: Write> Write for PartFilter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_lines(self, buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_split_at_unescaped_colons() {
        assert_eq!(
            pgpass_fields(r"db.example:5432:*:shop:pa\:ss\\word"),
            ["db.example", "5432", "*", "shop", r"pa:ss\word"]
        );
        assert_eq!(pgpass_fields("a:b:c:d:e:f"), ["a", "b", "c", "d", "e:f"]);
    }

    #[test]
    fn a_table_restore_takes_its_parts_and_what_they_need() {
        let script = "SET x = 1;\n\
            \n-- backstop: TYPE; public; mood\nCREATE TYPE public.mood AS ENUM ('a');\n\
            \n-- backstop: TABLE; public; a\nCREATE TABLE public.a (\n    id integer\n);\n\
            \n-- backstop: TABLE; public; b\nCREATE TABLE public.b (\n    id integer\n);\n\
            \n-- backstop: FUNCTION; public; f\nCREATE FUNCTION public.f() ...;\n\
            \n-- backstop: TABLE DATA; public; a\nCOPY public.a (id) FROM stdin;\n\
            -- backstop: TABLE DATA; public; b\n1\n\\.\n\
            \n-- backstop: TABLE DATA; public; b\nCOPY public.b (id) FROM stdin;\n2\n\\.\n\
            \n-- backstop: FK CONSTRAINT; public; a\nALTER TABLE ONLY public.a ADD ...;\n\
            \n-- backstop: CONSTRAINT; public; a\nALTER TABLE ONLY public.a ADD PRIMARY KEY;";
        let wanted = [("public".to_owned(), "a".to_owned())];
        let mut out = Vec::new();
        let mut f = PartFilter::new(&mut out, &wanted);
        // Written in pieces that cut lines.
        for piece in script.as_bytes().chunks(7) {
            f.write_all(piece).unwrap();
        }
        f.finish().unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("SET x = 1;\n"), "{out}");
        assert!(out.contains("CREATE TYPE public.mood"), "{out}");
        assert!(out.contains("CREATE TABLE public.a"), "{out}");
        // A row that looks like a marker is a row.
        assert!(
            out.contains("-- backstop: TABLE DATA; public; b\n1\n\\.\n"),
            "{out}"
        );
        assert!(out.ends_with("ADD PRIMARY KEY;"), "{out}");
        for absent in ["public.b (", "FUNCTION", "FK CONSTRAINT", "\n2\n"] {
            assert!(!out.contains(absent), "{absent}: {out}");
        }
        let wanted = [("public".to_owned(), "nope".to_owned())];
        let mut f = PartFilter::new(Vec::new(), &wanted);
        f.write_all(script.as_bytes()).unwrap();
        let e = f.finish().unwrap_err().to_string();
        assert!(e.contains("no table public.nope"), "{e}");
    }

    #[test]
    fn views_come_after_the_views_they_read() {
        let view = |oid: &str, reads: &str| {
            vec![
                Some(oid.to_owned()),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Some(reads.to_owned()),
            ]
        };
        // 3 reads 5, which reads 4; 4 reads a table (9).
        let views = [view("3", "5 9"), view("4", "9"), view("5", "4")];
        assert_eq!(dependency_order(&views), [1, 2, 0]);
    }
}
