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

use std::process::{Command, Stdio};

use backstop_format::manifest::SourceKind;

use crate::Error;
use crate::command::CommandSource;

/// A PostgreSQL database to back up or restore into: its URL (without a password) and the
/// password, if one is needed.
#[derive(Clone)]
pub struct Postgres {
    url: String,
    password: Option<String>,
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
        })
    }

    /// The database's name.
    pub fn database(&self) -> String {
        database_of(&self.url).expect("checked when made")
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
        }
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

    /// Runs `psql` with `sql` on this database; its output, or an error with its message.
    fn query(&self, sql: &str) -> Result<String, Error> {
        let out = self
            .tool("psql")
            .args(["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", &self.url, "-c", sql])
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

    /// The server's major version (15 for 15.4).
    pub fn server_major(&self) -> Result<u32, Error> {
        let num = self.query("SHOW server_version_num")?;
        num.parse::<u32>()
            .map(|n| n / 10_000)
            .map_err(|_| Error::Invalid(format!("unexpected server_version_num {num:?}")))
    }

    /// A source that dumps the database with `pg_dump`, after checking that `pg_dump` is not
    /// older than the server. The item is `DBNAME.pgdump` (restore it with `pg_restore`).
    pub fn dump_source(&self) -> Result<CommandSource, Error> {
        let tool = tool_major("pg_dump")?;
        let server = self.server_major()?;
        if tool < server {
            return Err(Error::Invalid(format!(
                "pg_dump {tool} is older than the PostgreSQL {server} server at {}, and cannot \
                 dump it: install the PostgreSQL {server} client tools on this machine",
                self.url
            )));
        }
        let argv = [
            "pg_dump",
            "--format=custom",
            "--compress=0",
            "--no-password",
            "--dbname",
            &self.url,
        ];
        let mut source = CommandSource::new(
            argv.iter().map(|s| s.to_string()).collect(),
            format!("{}.pgdump", self.database()),
        )?
        .of_kind(SourceKind::Postgres);
        if let Some(p) = &self.password {
            source = source.env("PGPASSWORD", p);
        }
        Ok(source)
    }

    /// Creates this (new) database on its server; an existing one is refused by the server.
    pub fn create(&self) -> Result<(), Error> {
        let name = self.database();
        self.with_database("postgres")
            .query(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .map(|_| ())
    }

    /// Drops this database (after a restore into it failed).
    pub fn drop_database(&self) -> Result<(), Error> {
        let name = self.database();
        self.with_database("postgres")
            .query(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&name)))
            .map(|_| ())
    }

    /// Loads a custom-format dump into this database with `pg_restore` (objects owned by the
    /// connecting user; it stops at the first error): `feed` writes the dump into its input.
    /// `feed`'s own error comes first; a dump cut short by `pg_restore` failing is its error.
    pub fn restore(
        &self,
        feed: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut child = self
            .tool("pg_restore")
            .args([
                "--no-owner",
                "--no-password",
                "--exit-on-error",
                "--dbname",
                &self.url,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting pg_restore (install PostgreSQL's client tools)", e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let fed = feed(&mut stdin);
        drop(stdin);
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("waiting for pg_restore", e))?;
        if !out.status.success() {
            return Err(Error::Invalid(format!(
                "pg_restore into {} failed: {}",
                self.url,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        fed
    }
}

/// The database a PostgreSQL URL names: its path, without the query.
fn database_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let name = path.split('?').next().unwrap_or("");
    (!name.is_empty()).then(|| name.to_owned())
}

/// An SQL identifier in double quotes.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The major version a client tool reports (`pg_dump (PostgreSQL) 15.4` is 15).
fn tool_major(program: &str) -> Result<u32, Error> {
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
    let text = String::from_utf8_lossy(&out.stdout);
    parse_major(&text).ok_or_else(|| {
        Error::Invalid(format!(
            "cannot tell the version of {program} from {:?}",
            text.trim()
        ))
    })
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
