//! `backstop import`: a CSV file into a table of a SQLite, PostgreSQL or MariaDB source's live
//! database, checked row by row first ([`backstop_sources::import`]); a real import takes a
//! `pre-change` snapshot of the source and then puts every row in, in one transaction, or none.

use std::path::Path;

use anyhow::Context as _;
use backstop_format::SnapshotId;
pub use backstop_sources::import::{ImportReport, Problem};

use crate::config::Config;
use crate::error::UsageError;
use crate::sources::{ConfiguredKind, configured_kind};

/// What to import.
pub struct ImportRequest<'a> {
    pub file: &'a Path,
    pub source: &'a str,
    pub table: &'a str,
    /// A mapping file (TOML: `[columns]` "File column" = "table_column"; `[synonyms]`
    /// table_column = ["Other name", ...]; `[formats]` table_column = "%d/%m/%Y" or "1.234,56").
    pub map: Option<&'a Path>,
    /// The file's first row is data, not a header.
    pub no_header: bool,
    pub dry_run: bool,
}

/// What an import did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportDone {
    #[serde(flatten)]
    pub report: ImportReport,
    pub dry_run: bool,
    /// The `pre-change` snapshot taken before the rows went in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_change_snapshot: Option<SnapshotId>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MapFile {
    #[serde(default)]
    columns: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    synonyms: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    formats: std::collections::BTreeMap<String, String>,
}

/// The live database of a source an import writes into.
enum Live {
    Sqlite(std::path::PathBuf),
    Server(backstop_sources::server::Server),
}

impl Live {
    fn import(
        &self,
        table: &str,
        parsed: &backstop_sources::import::Parsed,
        mapping: &[(String, String)],
        options: &backstop_sources::import::Options,
        commit: bool,
    ) -> anyhow::Result<ImportReport> {
        Ok(match self {
            Live::Sqlite(db) => backstop_sources::import::import_sqlite(
                db, table, parsed, mapping, options, commit,
            )?,
            Live::Server(s) => s.import(table, parsed, mapping, options, commit)?,
        })
    }
}

/// The live database of a SQLite, PostgreSQL or MariaDB source.
fn live_database(config: &Config, source: &str) -> anyhow::Result<Live> {
    let s = config
        .sources
        .get(source)
        .ok_or_else(|| UsageError(format!("source {source:?} is not in backstop.toml")))?;
    match configured_kind(config, s) {
        ConfiguredKind::Sqlite { live_path: Some(p) } => Ok(Live::Sqlite(p)),
        ConfiguredKind::Postgres | ConfiguredKind::Mariadb => {
            let server = crate::sources::server_of(config, s)?
                .ok_or_else(|| anyhow::anyhow!("source {source:?} names no server"))?;
            Ok(Live::Server(server))
        }
        other => Err(UsageError(format!(
            "source {source:?} is a {} source: import writes into SQLite, PostgreSQL and \
             MariaDB sources",
            other.name()
        ))
        .into()),
    }
}

/// Imports as `req` says. `snapshot` takes the `pre-change` snapshot (given the description)
/// when the rows are about to go in; a dry run, or a file with problems, takes none and changes
/// nothing.
pub fn import(
    config: &Config,
    req: &ImportRequest<'_>,
    snapshot: &mut dyn FnMut(String) -> anyhow::Result<SnapshotId>,
) -> anyhow::Result<ImportDone> {
    let db = live_database(config, req.source)?;
    let bytes =
        std::fs::read(req.file).with_context(|| format!("reading {}", req.file.display()))?;
    let map: MapFile = match req.map {
        Some(m) => {
            let text =
                std::fs::read_to_string(m).with_context(|| format!("reading {}", m.display()))?;
            toml::from_str(&text).map_err(|e| {
                UsageError(format!(
                    "{}: {e} (write [columns] then \"File column\" = \"table_column\" lines; \
                     [synonyms] table_column = [\"Other name\"]; [formats] table_column = \
                     \"%d/%m/%Y\" or \"1.234,56\")",
                    m.display()
                ))
            })?
        }
        None => MapFile::default(),
    };
    let mapping: Vec<(String, String)> = map.columns.into_iter().collect();
    let options = backstop_sources::import::Options {
        no_header: req.no_header,
        synonyms: map.synonyms.into_iter().collect(),
        formats: map.formats.into_iter().collect(),
    };
    let parsed = match backstop_sources::import::parse_with(&bytes, !req.no_header) {
        Ok(p) => p,
        Err(problem) => {
            return Ok(ImportDone {
                report: ImportReport {
                    table: req.table.to_owned(),
                    encoding: String::new(),
                    delimiter: String::new(),
                    mapping: Vec::new(),
                    ignored: Vec::new(),
                    rows: 0,
                    imported: 0,
                    problems: vec![problem],
                },
                dry_run: req.dry_run,
                pre_change_snapshot: None,
            });
        }
    };
    // Every row checked (and inserted, then rolled back) before anything is changed.
    let checked = db.import(req.table, &parsed, &mapping, &options, false)?;
    if req.dry_run || !checked.problems.is_empty() || checked.rows == 0 {
        return Ok(ImportDone {
            report: checked,
            dry_run: req.dry_run,
            pre_change_snapshot: None,
        });
    }
    let id = snapshot(format!(
        "before importing {} into {}",
        req.file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        req.table
    ))
    .context("taking the pre-change snapshot; nothing was imported")?;
    let report = db.import(req.table, &parsed, &mapping, &options, true)?;
    Ok(ImportDone {
        report,
        dry_run: false,
        pre_change_snapshot: Some(id),
    })
}
