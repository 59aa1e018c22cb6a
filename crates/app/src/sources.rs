//! From the config (or a front end's paths) to the reader that captures a source: which kind
//! a configured source is, the exclusion rules it applies, and the readers for a stream or a
//! command's output.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use backstop_format::manifest::Excludes;
use backstop_sources::Source;
use backstop_sources::command::{CommandSource, StreamSource};
use backstop_sources::files::FilesSource;
use backstop_sources::sqlite::{SqliteSource, is_sqlite_file};

use crate::config::{Config, SourceConfig};
use crate::error::UsageError;

/// What captures one source, built afresh for each backup. Opaque to front ends: they hand it
/// to a backup and never read it themselves.
pub struct SourceReader(Box<dyn Source>);

impl SourceReader {
    /// The source, for the engine's backup.
    pub fn as_source(&mut self) -> &mut dyn Source {
        self.0.as_mut()
    }

    /// The source's data validation rules, run on the captured state of a SQLite database
    /// and stored with its item (other sources ignore them).
    pub fn with_rules(mut self, rules: &[backstop_sources::rules::Rule]) -> Self {
        self.0.use_rules(rules);
        self
    }
}

impl std::fmt::Debug for SourceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SourceReader")
            .field(&self.0.describe())
            .finish()
    }
}

/// The bytes read from standard input, stored as `filename`.
pub fn stdin(filename: String, allow_empty: bool) -> anyhow::Result<SourceReader> {
    Ok(SourceReader(Box::new(
        StreamSource::new(Box::new(std::io::stdin()), filename)?.allow_empty(allow_empty),
    )))
}

/// A command's output (`argv`, run without a shell), stored as `filename`.
pub fn command(
    argv: Vec<String>,
    filename: String,
    allow_empty: bool,
) -> anyhow::Result<SourceReader> {
    Ok(SourceReader(Box::new(
        CommandSource::new(argv, filename)?.allow_empty(allow_empty),
    )))
}

/// One SQLite database, captured consistently and stored as the item `item`.
pub fn sqlite(path: PathBuf, item: String) -> anyhow::Result<SourceReader> {
    Ok(SourceReader(Box::new(SqliteSource::new(path, item)?)))
}

/// Files and folders (databases inside captured as databases), leaving out `exclude` (the
/// repository itself, say).
pub fn files(paths: Vec<PathBuf>, exclude: Vec<PathBuf>) -> anyhow::Result<SourceReader> {
    Ok(SourceReader(Box::new(FilesSource::new(paths, exclude)?)))
}

/// The configured source whose paths are exactly `given` (compared as resolved paths).
pub fn configured_with_paths<'c>(
    config: &'c Config,
    given: &[PathBuf],
) -> Option<(&'c String, &'c SourceConfig)> {
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    let mut wanted: Vec<PathBuf> = given.iter().map(|p| canon(p)).collect::<Option<_>>()?;
    wanted.sort();
    config.sources.iter().find(|(_, s)| {
        if !s.command.is_empty() {
            return false;
        }
        let mut paths: Option<Vec<PathBuf>> = s
            .all_paths()
            .into_iter()
            .map(|p| canon(&config.resolve(p)))
            .collect();
        if let Some(p) = paths.as_mut() {
            p.sort();
        }
        paths.is_some_and(|p| p == wanted)
    })
}

/// The reader of a source configured in backstop.toml.
pub fn source_from_config(
    config: &Config,
    name: &str,
    s: &SourceConfig,
    exclude: &[PathBuf],
    allow_empty: bool,
) -> anyhow::Result<SourceReader> {
    source_with_flags(config, name, s, exclude, allow_empty, Excludes::default())
}

/// The reader of a configured source, with exclusion rules from the command line after its own.
pub fn source_with_flags(
    config: &Config,
    name: &str,
    s: &SourceConfig,
    exclude: &[PathBuf],
    allow_empty: bool,
    flags: Excludes,
) -> anyhow::Result<SourceReader> {
    if !s.command.is_empty() {
        if !flags.is_empty() {
            return Err(UsageError(format!(
                "source {name:?} backs up a command's output: --exclude and the other exclusion flags apply to files and folders only"
            ))
            .into());
        }
        return command(
            s.command.clone(),
            s.filename.clone().unwrap_or_else(|| name.to_string()),
            allow_empty,
        );
    }
    if let Some(server) = server_of(config, s)? {
        if !flags.is_empty() {
            return Err(UsageError(format!(
                "source {name:?} is a {} database: --exclude and the other exclusion flags apply to files and folders only",
                server.product()
            ))
            .into());
        }
        let method =
            backstop_sources::server::Method::parse(s.method.as_deref().unwrap_or("auto"))?;
        return Ok(SourceReader(
            server.dump_source_with_rules(method, &s.rules)?,
        ));
    }
    let paths: Vec<PathBuf> = s
        .all_paths()
        .into_iter()
        .map(|p| config.resolve(p))
        .collect();
    let rules = crate::exclude::merge(config.excludes(s)?, flags);
    Ok(path_source(&paths, s.kind.as_deref(), exclude, rules)?.with_rules(&s.rules))
}

/// The database of a database server's source (`kind = "postgres"` or `"mariadb"`), with the
/// password from its `password_file` (relative to backstop.toml); `None` for other sources.
pub fn server_of(
    config: &Config,
    s: &SourceConfig,
) -> anyhow::Result<Option<backstop_sources::server::Server>> {
    let (Some(url), Some(kind)) = (s.url.as_deref(), s.server_kind()) else {
        return Ok(None);
    };
    server_at(config, kind, url, s.password_file.as_deref()).map(Some)
}

/// The database at `url` on a server of `kind`, with the password in `password_file` (a path
/// relative to the config file's folder) when one is named.
pub fn server_at(
    config: &Config,
    kind: &str,
    url: &str,
    password_file: Option<&str>,
) -> anyhow::Result<backstop_sources::server::Server> {
    let password = match password_file {
        Some(f) => Some(crate::repository::read_password_file(&config.resolve(f))?),
        None => None,
    };
    Ok(backstop_sources::server::Server::new(kind, url, password)?)
}

/// What a configured source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfiguredKind {
    /// A command's output (`command = [...]`).
    Command,
    /// One SQLite database file (recognised by its header, or `kind = "sqlite"`), with its
    /// path (none when `kind = "sqlite"` names no path).
    Sqlite { live_path: Option<PathBuf> },
    /// Files and folders (databases met inside are captured as databases).
    Files,
    /// A PostgreSQL database (`kind = "postgres"`, `url`).
    Postgres,
    /// A MariaDB or MySQL database (`kind = "mariadb"` or `"mysql"`, `url`).
    Mariadb,
}

impl ConfiguredKind {
    /// `command`, `sqlite` or `files`, as shown on the page and in the API.
    pub fn name(&self) -> &'static str {
        match self {
            ConfiguredKind::Command => "command",
            ConfiguredKind::Sqlite { .. } => "sqlite",
            ConfiguredKind::Files => "files",
            ConfiguredKind::Postgres => "postgres",
            ConfiguredKind::Mariadb => "mariadb",
        }
    }

    /// The live database an in-place restore writes to (SQLite sources).
    pub fn live_path(&self) -> Option<&Path> {
        match self {
            ConfiguredKind::Sqlite { live_path } => live_path.as_deref(),
            _ => None,
        }
    }
}

/// What a configured source is: `command`, `sqlite` (one SQLite file, or `kind = "sqlite"`)
/// or `files`.
pub fn configured_kind(config: &Config, s: &SourceConfig) -> ConfiguredKind {
    if !s.command.is_empty() {
        return ConfiguredKind::Command;
    }
    match s.server_kind() {
        Some("postgres") => return ConfiguredKind::Postgres,
        Some(_) => return ConfiguredKind::Mariadb,
        None => {}
    }
    let paths: Vec<PathBuf> = s
        .all_paths()
        .into_iter()
        .map(|p| config.resolve(p))
        .collect();
    let single_db = paths.len() == 1 && paths[0].is_file() && is_sqlite_file(&paths[0]);
    match s.kind.as_deref() {
        Some("files") => ConfiguredKind::Files,
        Some("sqlite") => ConfiguredKind::Sqlite {
            live_path: paths.into_iter().next(),
        },
        _ if single_db => ConfiguredKind::Sqlite {
            live_path: paths.into_iter().next(),
        },
        _ => ConfiguredKind::Files,
    }
}

/// A SQLite source for a single SQLite file (recognised by its header, or `kind = "sqlite"`),
/// otherwise files, whose databases are captured as databases unless the kind is `files`
/// (`--as-file`). `rules` (exclusions) apply to files only.
pub fn path_source(
    paths: &[PathBuf],
    kind: Option<&str>,
    exclude: &[PathBuf],
    rules: Excludes,
) -> anyhow::Result<SourceReader> {
    let single_db = paths.len() == 1 && paths[0].is_file() && is_sqlite_file(&paths[0]);
    let as_database = single_db && kind != Some("files");
    if as_database && !rules.is_empty() {
        return Err(UsageError(format!(
            "{} is one SQLite database, backed up whole: exclusions apply to files and folders only; drop the --exclude flags (or exclude keys), or back up the folder that holds it",
            paths[0].display()
        ))
        .into());
    }
    let files = |databases: bool| -> anyhow::Result<SourceReader> {
        let mut f = FilesSource::new(paths.to_vec(), exclude.to_vec())?.with_databases(databases);
        if !rules.is_empty() {
            f = f.with_exclusions(crate::exclude::compile(rules.clone())?);
        }
        Ok(SourceReader(Box::new(f)))
    };
    match kind {
        Some("sqlite") if !single_db => Err(UsageError(format!(
            "source kind is sqlite but {} is not one SQLite database file",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
        Some("files") => files(false),
        _ if single_db => {
            let name = default_name(&paths[0])?;
            sqlite(paths[0].clone(), name)
        }
        _ => files(true),
    }
}

pub fn default_name(p: &std::path::Path) -> anyhow::Result<String> {
    let abs =
        std::fs::canonicalize(p).with_context(|| format!("cannot back up {}", p.display()))?;
    Ok(abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into()))
}
