//! `backstop export`: tables of a snapshot's SQLite database, database server's dump
//! ([`export_server`]) or workbook written as files anything opens
//! ([`backstop_sources::export`]: CSV, JSON, JSON lines, SQL, xlsx), without restoring the
//! database anywhere a user sees it.
//!
//! The database's image is restored into a scratch folder inside the destination (checked as
//! every restore checks it), read from there, and removed. Each table is written beside its
//! place and renamed into it once every table is written, so an export that fails leaves
//! nothing half written; a file that exists is refused unless `overwrite`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use backstop_engine::Indexed;
use backstop_format::manifest::{Item, ItemKind, Snapshot};
use backstop_format::{SnapshotId, Timestamp};
pub use backstop_sources::diff::DatabaseDiff;
pub use backstop_sources::export::Format;
pub use backstop_sources::workbook::is_workbook;

use crate::backup::Runtime;
use crate::error::UsageError;
use crate::restore::DatabaseRequest;

/// Where each table's file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `DIR/TABLE.EXT`.
    Flat,
    /// `DIR/SOURCE/YYYY-MM-DD/TABLE_YYYY-MM-DD_HHMMSS.EXT`, in the snapshot's time (in the
    /// configured time zone): every day's files side by side, openable without backstop.
    Dated,
}

impl Layout {
    /// `flat` or `dated`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        match text {
            "flat" => Ok(Layout::Flat),
            "dated" => Ok(Layout::Dated),
            other => Err(UsageError(format!("layout {other:?}: expected flat or dated")).into()),
        }
    }
}

/// What to export, and where.
pub struct ExportRequest<'a> {
    /// The tables; none: every table of the database.
    pub tables: &'a [String],
    pub format: Format,
    pub layout: Layout,
    pub dir: &'a Path,
    pub overwrite: bool,
    pub time_zone: &'a jiff::tz::TimeZone,
    pub rt: &'a Runtime,
}

/// One table written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub table: String,
    pub path: PathBuf,
    pub rows: u64,
    /// What changed to fit the format (a workbook's limits), for the user to know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The item of a snapshot whose tables an export reads: the one at `path` when given, else
/// the snapshot's one database (a SQLite item, or a server's dump) or workbook; several or
/// none is an error that names them.
pub fn database_of<'i>(
    id: SnapshotId,
    items: &'i [Item],
    path: Option<&str>,
) -> anyhow::Result<&'i Item> {
    let databases: Vec<&Item> = items
        .iter()
        .filter(|i| {
            (i.kind == ItemKind::Sqlite && i.database.is_some())
                || (i.server.is_some() && i.content.is_some())
                || (i.kind == ItemKind::File
                    && i.content.is_some()
                    && backstop_sources::workbook::is_workbook(&i.path))
        })
        .collect();
    if let Some(path) = path {
        return databases
            .iter()
            .find(|i| i.path == path)
            .copied()
            .ok_or_else(|| {
                UsageError(format!(
                    "snapshot {} has no database {path:?}{}",
                    id.short(),
                    listed(&databases)
                ))
                .into()
            });
    }
    match databases.as_slice() {
        [one] => Ok(one),
        [] => Err(UsageError(format!(
            "snapshot {} holds no database or workbook: export writes the tables of SQLite \
             databases, of PostgreSQL and MariaDB dumps and the sheets of workbooks",
            id.short()
        ))
        .into()),
        _ => Err(UsageError(format!(
            "snapshot {} holds several databases or workbooks: name one as SNAPSHOT:PATH{}",
            id.short(),
            listed(&databases)
        ))
        .into()),
    }
}

fn listed(items: &[&Item]) -> String {
    match items.is_empty() {
        true => String::new(),
        false => format!(
            " (it has {})",
            items
                .iter()
                .map(|i| i.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A table's name as a file name: the characters no file system takes replaced by `_`.
pub fn file_name(table: &str) -> String {
    table
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// Where `table`'s file goes.
fn place(req: &ExportRequest<'_>, source: &str, time: Timestamp, table: &str) -> PathBuf {
    let ext = req.format.extension();
    match req.layout {
        Layout::Flat => req.dir.join(format!("{}.{ext}", file_name(table))),
        Layout::Dated => {
            let z = time.to_zoned(req.time_zone.clone());
            let day = z.strftime("%Y-%m-%d").to_string();
            req.dir.join(file_name(source)).join(&day).join(format!(
                "{}_{day}_{}.{ext}",
                file_name(table),
                z.strftime("%H%M%S")
            ))
        }
    }
}

/// A file that exists, refused unless `overwrite`.
fn refuse_existing(req: &ExportRequest<'_>, path: &Path) -> anyhow::Result<()> {
    match path.exists() && !req.overwrite {
        true => Err(UsageError(format!(
            "{} exists: pass --overwrite to replace it, or choose another --to",
            path.display()
        ))
        .into()),
        false => Ok(()),
    }
}

/// What writes one table into a file: its rows and notes.
type WriteTable<'a> = dyn FnMut(&str, &Path) -> anyhow::Result<(u64, Vec<String>)> + 'a;

/// Writes each of `tables` of snapshot `snap` with `write` (given the table and a file to
/// write, its rows and notes) into its place by `req`: each beside its place first, then all
/// renamed in, so that an export that fails leaves nothing half written.
fn write_files(
    req: &ExportRequest<'_>,
    snap: &Snapshot,
    tables: &[String],
    write: &mut WriteTable<'_>,
) -> anyhow::Result<Vec<Exported>> {
    let mut written = Vec::new();
    for t in tables {
        let path = place(req, &snap.source.name, snap.time, t);
        refuse_existing(req, &path)?;
        let dir = path.parent().unwrap_or(req.dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let temp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing into {}", dir.display()))?;
        let (rows, notes) = write(t, temp.path()).with_context(|| format!("exporting {t}"))?;
        written.push((
            temp,
            Exported {
                table: t.clone(),
                path,
                rows,
                notes,
            },
        ));
    }
    let mut done = Vec::new();
    for (temp, e) in written {
        temp.persist(&e.path)
            .with_context(|| format!("putting {} in place", e.path.display()))?;
        done.push(e);
    }
    Ok(done)
}

/// A scratch folder in the destination (made if need be) for what an export reads, once the
/// tables named are known not to be in the way.
fn scratch_in(req: &ExportRequest<'_>, snap: &Snapshot) -> anyhow::Result<tempfile::TempDir> {
    std::fs::create_dir_all(req.dir).with_context(|| format!("creating {}", req.dir.display()))?;
    for t in req.tables {
        refuse_existing(req, &place(req, &snap.source.name, snap.time, t))?;
    }
    tempfile::Builder::new()
        .prefix(".backstop-export-")
        .tempdir_in(req.dir)
        .with_context(|| format!("making a scratch folder in {}", req.dir.display()))
}

/// A file at `path` written through a buffer by `write`.
fn buffered(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<u64, backstop_sources::Error>,
) -> anyhow::Result<(u64, Vec<String>)> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let rows = write(&mut out)?;
    std::io::Write::flush(&mut out).with_context(|| format!("writing {}", path.display()))?;
    Ok((rows, Vec::new()))
}

/// Restores the image of the SQLite database `item` of snapshot `id` into `dir` (as every
/// restore does: checked against the snapshot); its path.
pub fn restore_image(
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    item: &Item,
    dir: &Path,
    rt: &Runtime,
) -> anyhow::Result<PathBuf> {
    let image = dir.join(format!("{}.sqlite", id.short()));
    let plan = backstop_engine::database::plan_database(id, snap, item, &image, false)?;
    let opts = DatabaseRequest::download().options(image.clone(), rt, Timestamp::now());
    backstop_engine::database::restore_database(
        ix,
        plan,
        item,
        &opts,
        &backstop_engine::NoProgress,
    )
    .with_context(|| format!("reading {} of snapshot {}", item.path, id.short()))?;
    Ok(image)
}

/// What changed between the SQLite databases at `before` and `after` (restored images):
/// [`backstop_sources::diff`].
pub fn diff_databases(
    before: &Path,
    after: &Path,
    tables: &[String],
    limit: usize,
    whole_rows: bool,
) -> anyhow::Result<DatabaseDiff> {
    Ok(backstop_sources::diff::diff(
        before, after, tables, limit, whole_rows,
    )?)
}

/// Writes the tables `req` names of the SQLite database `item` of snapshot `id` (`snap`).
pub fn export_sqlite(
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    item: &Item,
    req: &ExportRequest<'_>,
) -> anyhow::Result<Vec<Exported>> {
    let scratch = scratch_in(req, snap)?;
    let image = restore_image(ix, id, snap, item, scratch.path(), req.rt)?;
    let db = rusqlite::Connection::open_with_flags(
        &image,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening the restored image of {}", item.path))?;
    let tables = match req.tables.is_empty() {
        true => backstop_sources::export::sqlite_tables(&db)?,
        false => req.tables.to_vec(),
    };
    write_tables(&db, req, snap, &tables)
}

/// Writes the sheets `req` names (its `tables`; every sheet when none) of the workbook `item`
/// of snapshot `id` as CSV, one file a sheet, as [`export_sqlite`] writes tables.
pub fn export_workbook(
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    item: &Item,
    req: &ExportRequest<'_>,
) -> anyhow::Result<Vec<Exported>> {
    if req.format != Format::Csv {
        return Err(UsageError(format!(
            "{} is a workbook: its sheets are exported as CSV (--format csv) for now",
            item.path
        ))
        .into());
    }
    let scratch = scratch_in(req, snap)?;
    let copy = workbook_copy(ix, id, item, scratch.path(), &req.rt.host)?;
    let mut book = backstop_sources::workbook::Workbook::open(&copy)?;
    let sheets = match req.tables.is_empty() {
        true => book.sheets_and_tables(),
        false => req.tables.to_vec(),
    };
    write_files(req, snap, &sheets, &mut |sheet, path| {
        buffered(path, |out| book.write_csv(sheet, out))
    })
}

/// Writes the tables `req` names (every table the dump recorded when none) of the database
/// server's dump `item` of snapshot `id`: each table's rows as CSV first
/// ([`crate::restore::tables_as_csv`]: PostgreSQL's from the dump alone, MariaDB's through a
/// scratch database on `server`), into a scratch folder; in another format loaded from there
/// into a scratch SQLite database, each column typed by its values
/// ([`backstop_sources::csv_load`]), and written as SQLite's tables are.
pub fn export_server(
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    item: &Item,
    server: &backstop_sources::server::Server,
    req: &ExportRequest<'_>,
) -> anyhow::Result<Vec<Exported>> {
    let (record, content) = dump_parts(item)?;
    let tables: Vec<String> = match req.tables.is_empty() {
        true => record.tables.iter().map(|t| t.name.clone()).collect(),
        false => req.tables.to_vec(),
    };
    let scratch = scratch_in(req, snap)?;
    if req.format == Format::Csv {
        let csvs = crate::restore::tables_as_csv(
            ix,
            content,
            Some(record),
            server,
            &tables,
            scratch.path(),
            true,
            &req.rt.host,
        )
        .with_context(|| format!("reading the tables of snapshot {}", id.short()))?;
        return write_files(req, snap, &tables, &mut |t, path| {
            let c = csvs
                .iter()
                .find(|c| c.table == t)
                .ok_or_else(|| anyhow::anyhow!("table {t} was not read"))?;
            std::fs::rename(&c.path, path)
                .with_context(|| format!("moving {} into place", c.path.display()))?;
            Ok((c.rows, Vec::new()))
        });
    }
    let db = load_server_tables(
        ix,
        id,
        item,
        server,
        &tables,
        scratch.path(),
        true,
        &req.rt.host,
    )?;
    let db = rusqlite::Connection::open(db).context("opening the scratch database")?;
    write_tables(&db, req, snap, &tables)
}

/// Loads `tables` of the database server's dump `item` of snapshot `id` into a new SQLite
/// database in `dir` (its path): each table's rows read as CSV as `restore --table` reads them
/// ([`crate::restore::tables_as_csv`]), then loaded with the primary key the snapshot recorded,
/// typed by their values or (without `typed`) as the text they are
/// ([`backstop_sources::csv_load`]).
#[allow(clippy::too_many_arguments)]
pub fn load_server_tables(
    ix: &Indexed<'_>,
    id: SnapshotId,
    item: &Item,
    server: &backstop_sources::server::Server,
    tables: &[String],
    dir: &Path,
    typed: bool,
    host: &str,
) -> anyhow::Result<PathBuf> {
    let (record, content) = dump_parts(item)?;
    let csv_dir = tempfile::Builder::new()
        .prefix(".backstop-tables-")
        .tempdir_in(dir)
        .with_context(|| format!("making a scratch folder in {}", dir.display()))?;
    let csvs = crate::restore::tables_as_csv(
        ix,
        content,
        Some(record),
        server,
        tables,
        csv_dir.path(),
        true,
        host,
    )
    .with_context(|| format!("reading the tables of snapshot {}", id.short()))?;
    // A name of its own: the same snapshot may be loaded twice (a diff of it with itself).
    let (_, path) = tempfile::Builder::new()
        .prefix(&format!("{}-", id.short()))
        .suffix(".sqlite")
        .tempfile_in(dir)
        .and_then(|f| f.keep().map_err(|e| e.error))
        .with_context(|| format!("making a scratch database in {}", dir.display()))?;
    let db = rusqlite::Connection::open(&path).context("making a scratch database")?;
    for c in &csvs {
        let key = record
            .tables
            .iter()
            .find(|t| t.name == c.table)
            .map(|t| t.key.as_slice())
            .unwrap_or_default();
        backstop_sources::csv_load::load_csv(&db, &c.table, &c.path, key, typed)
            .with_context(|| format!("reading table {}", c.table))?;
        std::fs::remove_file(&c.path).ok();
    }
    Ok(path)
}

/// A database server's dump item: what it was taken from, and its content.
fn dump_parts(
    item: &Item,
) -> anyhow::Result<(
    &backstop_format::manifest::ServerDatabase,
    &backstop_format::tree::Content,
)> {
    let record = item
        .server
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{} is not a database server's dump", item.path))?;
    let content = item
        .content
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{} has no content", item.path))?;
    Ok((record, content))
}

/// Writes `tables` of `db` in `req`'s format (see [`write_files`]).
fn write_tables(
    db: &rusqlite::Connection,
    req: &ExportRequest<'_>,
    snap: &Snapshot,
    tables: &[String],
) -> anyhow::Result<Vec<Exported>> {
    write_files(req, snap, tables, &mut |t, path| match req.format {
        Format::Xlsx => Ok(backstop_sources::export::write_xlsx(db, t, path)?),
        format => buffered(path, |out| {
            backstop_sources::export::write_table(db, t, format, out)
        }),
    })
}

/// The workbook `item` of snapshot `id` written into `dir` under its own name (whose extension
/// says what kind of workbook it is); its path.
fn workbook_copy(
    ix: &Indexed<'_>,
    id: SnapshotId,
    item: &Item,
    dir: &Path,
    host: &str,
) -> anyhow::Result<PathBuf> {
    let content = item
        .content
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{} has no content", item.path))?;
    let name = Path::new(&item.path)
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_else(|| "workbook.xlsx".into());
    let sub = tempfile::Builder::new()
        .prefix(".backstop-book-")
        .tempdir_in(dir)
        .with_context(|| format!("making a scratch folder in {}", dir.display()))?
        .keep();
    let copy = sub.join(name);
    let mut out =
        std::fs::File::create(&copy).with_context(|| format!("writing {}", copy.display()))?;
    let _lock =
        backstop_engine::lock::Lock::for_reading(ix, "export", host, &backstop_engine::NoProgress)?;
    ix.loader()
        .write_content(content, &mut out, &backstop_engine::NoProgress)
        .with_context(|| format!("reading {} of snapshot {}", item.path, id.short()))?;
    Ok(copy)
}

/// Loads every worksheet and Excel table of the workbook `item` of snapshot `id` into a new
/// SQLite database in `dir` (its path), each as the text its cells show, the first row (a
/// table's header) naming the columns, for [`diff_databases`] by whole rows.
pub fn load_workbook(
    ix: &Indexed<'_>,
    id: SnapshotId,
    item: &Item,
    dir: &Path,
    host: &str,
) -> anyhow::Result<PathBuf> {
    let copy = workbook_copy(ix, id, item, dir, host)?;
    let mut book = backstop_sources::workbook::Workbook::open(&copy)?;
    let names = book.sheets_and_tables();
    let path = copy.with_extension("sqlite");
    let db = rusqlite::Connection::open(&path).context("making a scratch database")?;
    let csv = copy.with_extension("csv");
    for name in &names {
        buffered(&csv, |out| book.write_csv(name, out))?;
        backstop_sources::csv_load::load_csv(&db, name, &csv, &[], false)
            .with_context(|| format!("reading {name} of {}", item.path))?;
    }
    Ok(path)
}

/// The tables (or sheets) of `item`, whichever it is: [`export_sqlite`] or
/// [`export_workbook`].
pub fn export_item(
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    item: &Item,
    req: &ExportRequest<'_>,
) -> anyhow::Result<Vec<Exported>> {
    match item.kind {
        ItemKind::Sqlite => export_sqlite(ix, id, snap, item, req),
        _ => export_workbook(ix, id, snap, item, req),
    }
}

/// A source's `export` setting, resolved: what `after_backup` writes where.
#[derive(Debug, Clone)]
pub struct AutoExport {
    pub to: PathBuf,
    pub format: Format,
    pub layout: Layout,
    pub keep_days: Option<u32>,
    pub tables: Vec<String>,
    /// A database server source's server (MariaDB's tables are read through a scratch
    /// database on it; PostgreSQL's from the dump alone).
    pub server: Option<backstop_sources::server::Server>,
}

impl AutoExport {
    /// The `export` of source `s` in `config` (paths relative to backstop.toml's folder).
    pub fn of(
        config: &crate::config::Config,
        s: &crate::config::SourceConfig,
    ) -> anyhow::Result<Option<Self>> {
        let Some(e) = &s.export else {
            return Ok(None);
        };
        Ok(Some(AutoExport {
            to: config.resolve(&e.to),
            format: Format::parse(e.format.as_deref().unwrap_or("csv"))
                .map_err(|e| UsageError(e.to_string()))?,
            layout: Layout::parse(e.layout.as_deref().unwrap_or("dated"))?,
            keep_days: e.keep_days,
            tables: e.tables.clone(),
            server: crate::sources::server_of(config, s)?,
        }))
    }
}

/// After a backup of `source` saved snapshot `id`: its tables written as `auto` says, and, in
/// the dated layout with `keep_days`, the days older than that removed (only folders named as a
/// date, in the source's folder). What was written.
pub fn after_backup(
    repo: &backstop_engine::Repository,
    auto: &AutoExport,
    source: &str,
    id: SnapshotId,
    time_zone: &jiff::tz::TimeZone,
    rt: &Runtime,
    warn: &dyn Fn(&str),
) -> anyhow::Result<Vec<Exported>> {
    let ix = crate::repository::load_index(repo, warn)?;
    let snap = repo.load_snapshot(&id)?;
    let items = ix.loader().read_items(&snap.items)?;
    let item = database_of(id, &items, None)?;
    let req = ExportRequest {
        tables: &auto.tables,
        format: auto.format,
        layout: auto.layout,
        dir: &auto.to,
        overwrite: true,
        time_zone,
        rt,
    };
    let written = match (&item.server, &auto.server) {
        (None, _) => export_item(&ix, id, &snap, item, &req)?,
        (Some(_), Some(server)) => export_server(&ix, id, &snap, item, server, &req)?,
        (Some(_), None) => {
            return Err(anyhow::anyhow!(
                "source {source:?}: its snapshot is a database server's dump, but the source \
                 names no server (kind and url) to read its tables with"
            ));
        }
    };
    if let (Layout::Dated, Some(days)) = (auto.layout, auto.keep_days) {
        let today = Timestamp::now().to_zoned(time_zone.clone()).date();
        let oldest = today
            .checked_sub(jiff::Span::new().days(i64::from(days)))
            .unwrap_or(today);
        let folder = auto.to.join(file_name(&snap.source.name));
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|n| n.parse::<jiff::civil::Date>().ok())
            else {
                continue;
            };
            if day < oldest && entry.path().is_dir() {
                std::fs::remove_dir_all(entry.path()).with_context(|| {
                    format!("removing {} (older than keep_days)", entry.path().display())
                })?;
            }
        }
    }
    Ok(written)
}
