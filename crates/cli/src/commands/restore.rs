//! `backstop restore`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use std::io::{BufRead, IsTerminal, Write};

use backstop_app::restore::{DatabaseRequest, database_target};
use backstop_engine::database::{DatabasePlan, database_item, plan_database, restore_database};
use backstop_engine::{Indexed, RestoreOptions, plan_restore};
use backstop_format::manifest::{Item, Snapshot, SourceKind};
use backstop_format::{SnapshotId, Timestamp};

use crate::context::{Ctx, GlobalArgs, host, load_index, spill_options, warner};
use crate::output::{Bar, UsageError, bytes, print_json, time};
use jiff::tz::TimeZone;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, unique id prefix, latest[:SOURCE], latest-verified[:SOURCE], or SOURCE@TIME
    /// (the newest at or before a time in `time_zone`: 2026-12-04T18:00, "yesterday 18:00")
    pub snapshot: String,
    /// Where to restore: a directory for files; for a database snapshot, the new database file (or a directory to put it in); with --table and a PostgreSQL or MariaDB snapshot, the directory for TABLE.csv
    #[arg(
        long,
        required_unless_present_any = ["in_place", "to_database"],
        conflicts_with_all = ["in_place", "to_database"]
    )]
    pub to: Option<PathBuf>,
    /// For a PostgreSQL or MariaDB snapshot: create this database on the source's server and
    /// load the snapshot into it (a database of that name must not exist)
    #[arg(long, value_name = "NAME", conflicts_with = "in_place")]
    pub to_database: Option<String>,
    /// With --to-database: only this table (TABLE, or SCHEMA.TABLE for PostgreSQL: its
    /// definition and rows, without foreign keys or triggers); with --to DIR: its rows as
    /// DIR/TABLE.csv; repeatable
    #[arg(long = "table", value_name = "TABLE", conflicts_with = "in_place")]
    pub tables: Vec<String>,
    /// Restore a database snapshot into the live database it came from (a safety snapshot is taken first)
    #[arg(long)]
    pub in_place: bool,
    /// The source to restore (picks `latest` of it, and the live database path from backstop.toml)
    #[arg(long)]
    pub source: Option<String>,
    /// Print what would be restored (for a database: row counts now and in the snapshot; in place, also the rows entered, deleted and changed since, for databases up to 2 GiB); write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Replace existing files
    #[arg(long)]
    pub overwrite: bool,
    /// Do not ask for confirmation of an in-place restore
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Restore a database even though its schema differs from the live one's
    #[arg(long)]
    pub allow_schema_change: bool,
    /// Also run PRAGMA integrity_check on the restored database (slow on large databases)
    #[arg(long)]
    pub full_check: bool,
    /// Restore a database even though the restored image failed its checks (recorded in the repository as a forced-restore record)
    #[arg(long)]
    pub force: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let (id, snap) = ctx.find_snapshot_of(&repo, &a.snapshot, a.source.as_deref())?;
    // A database snapshot is one item, and the restores of tables and into servers read their
    // few items; a tree's items are read as the restore goes (a million files' item list is
    // hundreds of megabytes once parsed), and the index of a large repository is kept in a
    // scratch file as a backup keeps it.
    let whole_list =
        a.to_database.is_some() || a.in_place || !a.tables.is_empty() || snap.stats.items <= 1;
    let ix = match whole_list {
        true => load_index(&repo, g.quiet)?,
        false => {
            backstop_app::repository::load_backup_index(&repo, &spill_options()?, &warner(g.quiet))?
        }
    };
    let items = match whole_list {
        true => ix.loader().read_items(&snap.items)?,
        false => Vec::new(),
    };
    if let Some(name) = &a.to_database {
        return restore_to_database(&ctx, &ix, id, &snap, &items, name, &a);
    }
    if let (Some(_), true) = (server_product(snap.source.kind), a.in_place) {
        return restore_server_in_place(&ctx, &repo, &ix, id, &snap, &items, &a);
    }
    if let (Some(dir), false) = (&a.to, a.tables.is_empty()) {
        let request = CsvRequest {
            tables: &a.tables,
            source: a.source.as_deref(),
            overwrite: a.overwrite,
            dry_run: a.dry_run,
        };
        return restore_tables_as_csv(&ctx, &ix, id, &snap, &items, dir, &request);
    }
    if let Some(item) = database_item(&items) {
        return restore_db(&ctx, &ix, id, &snap, item, &a);
    }
    if a.in_place {
        return Err(UsageError(format!(
            "snapshot {} is not a database snapshot: restore files with --to DIR",
            id.short()
        ))
        .into());
    }
    let to = a.to.clone().expect("clap requires --to without --in-place");
    let opts = RestoreOptions {
        target: to.clone(),
        overwrite: a.overwrite,
        host: host(),
    };
    let (plan, items) = plan_restore(&ix, id, &snap, &opts)?;
    if a.dry_run {
        if g.json {
            print_json(&plan)?;
        } else {
            outln!(
                "would restore snapshot {} of {} ({}) into {}: {} file(s), {} dir(s), {} link(s), {}",
                id.short(),
                plan.source,
                time(plan.time, &ctx.config.time_zone()?),
                to.display(),
                plan.files.files,
                plan.files.dirs,
                plan.files.symlinks,
                bytes(plan.files.bytes)
            )?;
            if !plan.files.existing.is_empty() {
                outln!(
                    "{} path(s) exist already and {}:",
                    plan.files.existing.len(),
                    if a.overwrite {
                        "would be replaced"
                    } else {
                        "block the restore unless --overwrite is given"
                    }
                )?;
                for p in plan.files.existing.iter().take(20) {
                    outln!("  {p}")?;
                }
            }
        }
        return Ok(crate::exit::OK);
    }
    let bar = Bar::new(g.quiet || g.json);
    let started = Instant::now();
    let r = backstop_engine::restore(&ix, plan, &items, &opts, &bar);
    bar.done();
    let summary =
        r.with_context(|| format!("restoring snapshot {} into {}", id.short(), to.display()))?;
    crate::commands::serve::record_cli_restore(
        &ctx.config,
        &format!("{}@{}", summary.plan.source, id.short()),
        &format!("into {}", to.display()),
    );
    if g.json {
        print_json(&summary)?;
    } else if !g.quiet {
        outln!(
            "restored snapshot {} of {} into {}: {} file(s), {} in {:.1} s; every chunk checked against its id",
            id.short(),
            summary.plan.source,
            to.display(),
            summary.plan.files.files,
            bytes(summary.bytes_written),
            started.elapsed().as_secs_f64()
        )?;
    }
    Ok(crate::exit::OK)
}

/// Restores a database snapshot: to a file, or in place.
/// The product name of a database server's snapshots (`PostgreSQL`, `MariaDB`); `None` for
/// other kinds.
pub(crate) fn server_product(kind: SourceKind) -> Option<&'static str> {
    match kind {
        SourceKind::Postgres => Some("PostgreSQL"),
        SourceKind::Mariadb => Some("MariaDB"),
        _ => None,
    }
}

/// `--to-database NAME`: a PostgreSQL or MariaDB snapshot loaded into a new database on the
/// server of its source (its `url` in backstop.toml). A load that fails drops the new database again, so
/// nothing is left half loaded; nothing else on the server is touched.
fn restore_to_database(
    ctx: &Ctx<'_>,
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    items: &[Item],
    name: &str,
    a: &Args,
) -> anyhow::Result<u8> {
    let g = ctx.args;
    let ServerDump {
        product,
        source,
        server,
        item,
        content,
    } = server_dump(ctx, id, snap, items, a.source.as_deref())?;
    let target = server.with_database(name);
    #[derive(serde::Serialize)]
    struct Out<'a> {
        snapshot: String,
        source: &'a str,
        database: &'a str,
        dump: &'a str,
        bytes: u64,
        /// The tables restored; empty: all of them.
        tables: &'a [String],
        dry_run: bool,
        /// What the dump was taken from: versions, each table's rows, the schema version.
        server: Option<&'a backstop_format::manifest::ServerDatabase>,
        /// A dry run's look at the source's database as it is now (its rows, schema and
        /// schema version), or why it could not be read.
        #[serde(skip_serializing_if = "Option::is_none")]
        now: Option<backstop_app::restore::Observed>,
        #[serde(skip_serializing_if = "Option::is_none")]
        now_error: Option<String>,
    }
    let (now, now_error) = match a.dry_run {
        true => match server.observe() {
            Ok(o) => (Some(o), None),
            Err(e) => (None, Some(e.to_string())),
        },
        false => (None, None),
    };
    let out = Out {
        snapshot: id.to_hex(),
        source,
        database: name,
        dump: &item.path,
        bytes: content.size,
        tables: &a.tables,
        dry_run: a.dry_run,
        server: item.server.as_ref(),
        now,
        now_error,
    };
    if !a.dry_run {
        backstop_app::restore::into_new_database(
            ix,
            content,
            item.server.as_ref(),
            &target,
            &a.tables,
            &host(),
        )
        .with_context(|| format!("restoring snapshot {} into database {name}", id.short()))?;
    }
    if g.json {
        print_json(&out)?;
    } else if !g.quiet {
        outln!(
            "{} snapshot {} of {source} ({}, {}) into the new database {name}",
            if a.dry_run {
                "would restore"
            } else {
                "restored"
            },
            id.short(),
            item.path,
            bytes(content.size)
        )?;
        if let (true, Some(db)) = (a.dry_run, &item.server) {
            outln!(
                "taken from {} on {product} {}{}",
                db.database,
                db.server_version,
                db.schema_version
                    .as_ref()
                    .map(|v| format!(", migrations at {v}"))
                    .unwrap_or_default()
            )?;
            let wanted = |name: &str| {
                a.tables.is_empty()
                    || a.tables
                        .iter()
                        .any(|t| name == t || (!t.contains('.') && name == format!("public.{t}")))
            };
            let live = server.database();
            print_plan_tables(db, out.now.as_ref(), &live, &wanted)?;
            outln!("({live} itself is not changed)")?;
            print_schema_difference(db, out.now.as_ref(), out.now_error.as_deref(), &live, false)?;
        }
    }
    Ok(crate::exit::OK)
}

/// A database server's snapshot and the live database of its source.
pub(crate) struct ServerDump<'a> {
    /// `PostgreSQL` or `MariaDB`.
    product: &'static str,
    /// The configured source (`--source`, or the snapshot's).
    pub(crate) source: &'a str,
    /// The source's database, from its `url` in backstop.toml.
    pub(crate) server: backstop_app::restore::Server,
    /// The dump.
    item: &'a Item,
    content: &'a backstop_format::tree::Content,
}

/// Finds the dump in a PostgreSQL or MariaDB snapshot and the server it goes back to (the
/// configured source's `url`).
fn server_dump<'a>(
    ctx: &'a Ctx<'_>,
    id: SnapshotId,
    snap: &'a Snapshot,
    items: &'a [Item],
    source: Option<&'a str>,
) -> anyhow::Result<ServerDump<'a>> {
    let Some(product) = server_product(snap.source.kind) else {
        return Err(UsageError(format!(
            "snapshot {} is of a {} source, not a database server's: --to-database is for \
             PostgreSQL and MariaDB snapshots; restore it with --to",
            id.short(),
            snap.source.kind.as_str()
        ))
        .into());
    };
    let source = source.unwrap_or(&snap.source.name);
    let config = ctx.config.sources.get(source).ok_or_else(|| {
        UsageError(format!(
            "source {source:?} is not in backstop.toml: its url says which server to restore to"
        ))
    })?;
    let server = backstop_app::sources::server_of(&ctx.config, config)?
        .filter(|s| s.source_kind() == snap.source.kind)
        .ok_or_else(|| {
            UsageError(format!(
                "source {source:?} in backstop.toml is not a {product} database \
                 (kind = \"{}\" with its url)",
                snap.source.kind.as_str()
            ))
        })?;
    let (item, content) = dump_of(id, items)?;
    Ok(ServerDump {
        product,
        source,
        server,
        item,
        content,
    })
}

/// Which tables of a server's dump to write as CSV, and how.
pub(crate) struct CsvRequest<'a> {
    pub tables: &'a [String],
    /// The configured source the snapshot is of, when not its own name.
    pub source: Option<&'a str>,
    pub overwrite: bool,
    pub dry_run: bool,
}

/// `--table T --to DIR` for a PostgreSQL or MariaDB snapshot (and `export --format csv` of
/// one): each table's rows as DIR/T.csv ([`backstop_app::restore::tables_as_csv`]).
pub(crate) fn restore_tables_as_csv(
    ctx: &Ctx<'_>,
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    items: &[Item],
    dir: &std::path::Path,
    a: &CsvRequest<'_>,
) -> anyhow::Result<u8> {
    let g = ctx.args;
    if server_product(snap.source.kind).is_none() {
        return Err(UsageError(format!(
            "snapshot {} is of a {} source: --table is for PostgreSQL and MariaDB snapshots",
            id.short(),
            snap.source.kind.as_str()
        ))
        .into());
    }
    let source = a.source.unwrap_or(&snap.source.name);
    let ServerDump {
        server,
        item,
        content,
        ..
    } = dump_for_tables(ctx, id, snap, items, a.source)?;
    if a.dry_run {
        outln!(
            "would write {} of snapshot {} of {source} as CSV into {}",
            a.tables.join(", "),
            id.short(),
            dir.display()
        )?;
        return Ok(crate::exit::OK);
    }
    let written = backstop_app::restore::tables_as_csv(
        ix,
        content,
        item.server.as_ref(),
        &server,
        a.tables,
        dir,
        a.overwrite,
        &host(),
    )
    .with_context(|| format!("restoring tables of snapshot {} as CSV", id.short()))?;
    crate::commands::serve::record_cli_restore(
        &ctx.config,
        &format!("{source}@{}", id.short()),
        &format!("tables as CSV into {}", dir.display()),
    );
    if g.json {
        print_json(&written)?;
    } else if !g.quiet {
        for t in &written {
            outln!("{}: {} row(s) into {}", t.table, t.rows, t.path.display())?;
        }
    }
    Ok(crate::exit::OK)
}

/// The dump of a database server's snapshot whose tables are read, with the server that
/// reads them: PostgreSQL's rows come from the dump alone, so no server and no source in
/// backstop.toml is needed (a new machine after a disaster); MariaDB's are read through a
/// scratch database on the source's server.
pub(crate) fn dump_for_tables<'a>(
    ctx: &'a Ctx<'_>,
    id: SnapshotId,
    snap: &'a Snapshot,
    items: &'a [Item],
    source: Option<&'a str>,
) -> anyhow::Result<ServerDump<'a>> {
    let name = source.unwrap_or(&snap.source.name);
    if snap.source.kind == SourceKind::Postgres && !ctx.config.sources.contains_key(name) {
        let (item, content) = dump_of(id, items)?;
        return Ok(ServerDump {
            product: "PostgreSQL",
            source: name,
            server: backstop_app::restore::Server::new(
                "postgres",
                "postgres://localhost/unused",
                None,
            )?,
            item,
            content,
        });
    }
    server_dump(ctx, id, snap, items, source)
}

/// The dump in a database server's snapshot, and its content.
fn dump_of(
    id: SnapshotId,
    items: &[Item],
) -> anyhow::Result<(&Item, &backstop_format::tree::Content)> {
    items
        .iter()
        .find_map(|i| i.content.as_ref().map(|c| (i, c)))
        .ok_or_else(|| anyhow::anyhow!("snapshot {} holds no dump", id.short()))
}

/// `--in-place` for a PostgreSQL or MariaDB snapshot: the live database of the source replaced by the
/// snapshot's dump ([`backstop_app::restore::server_in_place`]: safety snapshot, load beside
/// it, rows checked, switch by rename; the previous database is kept on the server).
fn restore_server_in_place(
    ctx: &Ctx<'_>,
    repo: &backstop_engine::Repository,
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    items: &[Item],
    a: &Args,
) -> anyhow::Result<u8> {
    let g = ctx.args;
    let ServerDump {
        product,
        source,
        server,
        item,
        content,
    } = server_dump(ctx, id, snap, items, a.source.as_deref())?;
    let Some(record) = item.server.as_ref() else {
        return Err(anyhow::anyhow!(
            "snapshot {} holds no record of the database its dump was taken from: restore it \
             with --to-database NAME",
            id.short()
        ));
    };
    let live = server.database();
    if a.dry_run {
        let (now, now_error) = match server.observe() {
            Ok(o) => (Some(o), None),
            Err(e) => (None, Some(e.to_string())),
        };
        // The rows one by one, as the restore page and the API's dry run show them.
        let backstop_app::restore::ServerRows {
            tables,
            comparison,
            summary,
        } = backstop_app::restore::server_plan_rows(
            ix,
            content,
            record,
            &server,
            now.as_ref(),
            snap.time,
            &ctx.config.time_zone()?,
            &host(),
        );
        if g.json {
            #[derive(serde::Serialize)]
            struct Plan<'a> {
                snapshot: String,
                source: &'a str,
                database: &'a str,
                in_place: bool,
                dry_run: bool,
                server: &'a backstop_format::manifest::ServerDatabase,
                #[serde(skip_serializing_if = "Option::is_none")]
                now: Option<backstop_app::restore::Observed>,
                #[serde(skip_serializing_if = "Option::is_none")]
                now_error: Option<String>,
                /// Each table's rows now and in the snapshot, and (compared one by one) since.
                tables: Vec<backstop_engine::database::TableChange>,
                #[serde(skip_serializing_if = "Option::is_none")]
                comparison: Option<backstop_app::restore::RowComparison>,
                summary: String,
            }
            print_json(&Plan {
                snapshot: id.to_hex(),
                source,
                database: &live,
                in_place: true,
                dry_run: true,
                server: record,
                now,
                now_error,
                tables,
                comparison,
                summary,
            })?;
        } else {
            print_in_place_plan(id, product, &live, record, now.as_ref(), now_error)?;
            print_plan_rows(comparison.as_ref(), &tables, Some(&summary))?;
        }
        return Ok(crate::exit::OK);
    }
    if !a.yes {
        let now = server.observe().ok();
        ask_for_name(&live, &|| {
            print_in_place_plan(id, product, &live, record, now.as_ref(), None)
        })?;
    }
    let bar = Bar::new(g.quiet || g.json);
    let started = Instant::now();
    let done = backstop_app::restore::server_in_place(
        repo,
        ix,
        &backstop_app::restore::ServerInPlace {
            source,
            reader: &|| {
                let s = ctx
                    .config
                    .sources
                    .get(source)
                    .expect("found by server_dump");
                backstop_app::sources::source_from_config(&ctx.config, source, s, &[], false)
            },
            tags: ctx
                .config
                .sources
                .get(source)
                .map(|s| s.tags.clone())
                .unwrap_or_default(),
            snapshot: id,
            content,
            record,
            live: &server,
            allow_schema_change: a.allow_schema_change,
            rt: &crate::context::runtime(),
            spill: &crate::context::spill_options()?,
        },
        &crate::context::warner(g.quiet),
        &bar,
    );
    bar.done();
    let done = done.with_context(|| {
        format!(
            "restoring snapshot {} into the live database {live}",
            id.short()
        )
    })?;
    crate::commands::serve::record_cli_restore(
        &ctx.config,
        &format!("{source}@{}", id.short()),
        &format!("into the live database {live}"),
    );
    if g.json {
        print_json(&done)?;
    } else if !g.quiet {
        outln!(
            "safety snapshot {} of {live} as it was",
            done.safety_snapshot.short()
        )?;
        outln!(
            "restored snapshot {} of {source} into the live database {live} in {:.1} s; every \
             table's rows checked against the snapshot before the switch",
            id.short(),
            started.elapsed().as_secs_f64()
        )?;
        outln!(
            "the previous {live} is kept on the server as {} (drop it when you no longer need \
             it: DROP DATABASE {})",
            done.previous_kept_as,
            done.previous_kept_as
        )?;
    }
    Ok(crate::exit::OK)
}

/// The plan of an in-place restore of a server database, as `--dry-run` and the confirmation
/// prompt show it.
fn print_in_place_plan(
    id: SnapshotId,
    product: &str,
    live: &str,
    db: &backstop_format::manifest::ServerDatabase,
    now: Option<&backstop_app::restore::Observed>,
    now_error: Option<String>,
) -> anyhow::Result<()> {
    outln!(
        "would replace the live {product} database {live} with snapshot {} (taken from {} on \
         {product} {}{})",
        id.short(),
        db.database,
        db.server_version,
        db.schema_version
            .as_ref()
            .map(|v| format!(", migrations at {v}"))
            .unwrap_or_default()
    )?;
    print_plan_tables(db, now, live, &|_| true)?;
    print_schema_difference(db, now, now_error.as_deref(), live, true)?;
    outln!(
        "a safety snapshot of {live} is taken first; the snapshot is loaded beside it and \
         checked, then takes its name (connections to {live} are ended at that moment); the \
         previous {live} is kept on the server"
    )?;
    Ok(())
}

/// Whether the live database's schema and its version differ from the snapshot's.
fn print_schema_difference(
    db: &backstop_format::manifest::ServerDatabase,
    now: Option<&backstop_app::restore::Observed>,
    now_error: Option<&str>,
    live: &str,
    in_place: bool,
) -> anyhow::Result<()> {
    match (now, now_error) {
        (Some(now), _) => {
            let version_differs = now.schema_version != db.schema_version;
            if now.schema_fingerprint == db.schema_fingerprint {
                outln!("schema: the same as {live}'s now")?;
            } else {
                outln!(
                    "schema: differs from {live}'s now (columns, their types or nullability \
                     changed since the snapshot){}",
                    match in_place {
                        true => ": needs --allow-schema-change",
                        false => "",
                    }
                )?;
            }
            if version_differs {
                let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
                outln!(
                    "schema version: {} in the snapshot, {} now{}",
                    v(&db.schema_version),
                    v(&now.schema_version),
                    match in_place {
                        true => ": needs --allow-schema-change",
                        false => "",
                    }
                )?;
            }
        }
        (None, Some(e)) => outln!("{live} could not be read now: {e}")?,
        (None, None) => {}
    }
    Ok(())
}

/// A dump's tables with their rows in the snapshot and, when the live database could be read,
/// now, with the difference signed (rows in the snapshot minus rows now) and in words.
fn print_plan_tables(
    db: &backstop_format::manifest::ServerDatabase,
    now: Option<&backstop_app::restore::Observed>,
    live: &str,
    wanted: &dyn Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let show = |r: Option<u64>| r.map_or("?".to_string(), |r| r.to_string());
    let Some(now) = now else {
        outln!("{:<40} {:>12}", "TABLE", "ROWS")?;
        for t in db.tables.iter().filter(|t| wanted(&t.name)) {
            outln!("{:<40} {:>12}", t.name, show(t.rows))?;
        }
        return Ok(());
    };
    outln!(
        "{:<40} {:>12} {:>12} {:>10}",
        "TABLE",
        "SNAPSHOT",
        "NOW",
        "DIFFERENCE"
    )?;
    let rows_now = |name: &str| now.tables.iter().find(|t| t.name == name).map(|t| t.rows);
    for t in db.tables.iter().filter(|t| wanted(&t.name)) {
        let (current, diff) = match rows_now(&t.name) {
            None => ("no table".to_string(), "new".to_string()),
            Some(n) => (
                show(n),
                match (t.rows, n) {
                    (Some(s), Some(n)) if s == n => "same".to_string(),
                    (Some(s), Some(n)) => format!("{:+}", s as i64 - n as i64),
                    _ => "?".to_string(),
                },
            ),
        };
        outln!(
            "{:<40} {:>12} {:>12} {:>10}",
            t.name,
            show(t.rows),
            current,
            diff
        )?;
    }
    for t in now
        .tables
        .iter()
        .filter(|t| wanted(&t.name) && !db.tables.iter().any(|d| d.name == t.name))
    {
        outln!(
            "{:<40} {:>12} {:>12} {:>10}",
            t.name,
            "no table",
            show(t.rows),
            "not in it"
        )?;
    }
    outln!("(DIFFERENCE: rows in the snapshot minus rows in {live} now)")?;
    Ok(())
}

fn restore_db(
    ctx: &Ctx<'_>,
    ix: &Indexed<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    item: &Item,
    a: &Args,
) -> anyhow::Result<u8> {
    let g = ctx.args;
    let target = database_target(
        &ctx.config,
        a.source.as_deref(),
        item,
        a.to.as_deref(),
        a.in_place,
    )?;
    let mut plan = plan_database(id, snap, item, &target, a.in_place)?;
    let tz = ctx.config.time_zone()?;
    if a.dry_run {
        // The live database's rows compared one by one with the snapshot's, as the restore
        // page and the API's dry run show them.
        if a.in_place {
            let opts = backstop_app::restore::CompareOptions {
                scratch: std::env::var_os("BACKSTOP_SCRATCH_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(std::env::temp_dir),
                limit_bytes: backstop_app::restore::COMPARE_LIMIT_BYTES,
                host: host(),
            };
            backstop_app::restore::compare_rows(ix, item, &mut plan, &opts, &tz);
        }
        if g.json {
            print_json(&plan)?;
        } else {
            print_db_plan(&plan, &tz)?;
        }
        return Ok(crate::exit::OK);
    }
    if a.in_place && !a.yes {
        // By row counts: comparing rows would write the whole image once more.
        backstop_app::restore::describe(&mut plan, &tz);
        confirm(&plan, &tz)?;
    }
    let request = DatabaseRequest {
        in_place: a.in_place,
        overwrite: a.overwrite,
        allow_schema_change: a.allow_schema_change,
        full_check: a.full_check,
        force: a.force,
    };
    let opts = request.options(target.clone(), &crate::context::runtime(), Timestamp::now());
    let bar = Bar::new(g.quiet || g.json);
    let started = Instant::now();
    let r = restore_database(ix, plan, item, &opts, &bar);
    bar.done();
    let summary =
        r.with_context(|| format!("restoring snapshot {} to {}", id.short(), target.display()));
    let summary = match summary {
        Err(e)
            if matches!(
                e.downcast_ref::<backstop_engine::Error>(),
                Some(backstop_engine::Error::FailedChecks(_))
            ) =>
        {
            return Err(e.context(format!(
                "snapshot {} failed its checks: to restore it anyway, pass --force (the forced restore is recorded in the repository; `backstop show {}` lists it)",
                id.short(),
                id.short()
            )));
        }
        r => r?,
    };
    crate::commands::serve::record_cli_restore(
        &ctx.config,
        &format!("{}@{}", summary.plan.source, id.short()),
        &format!("into {}", target.display()),
    );
    if g.json {
        print_json(&summary)?;
    } else if !g.quiet {
        print_db_outcome(&summary, &target)?;
        crate::output::print_checks(&summary.checks)?;
        outln!(
            "restored snapshot {} of {} ({}) {} {} in {:.1} s",
            id.short(),
            summary.plan.source,
            time(summary.plan.time, &tz),
            if a.in_place {
                "into the live database"
            } else {
                "to"
            },
            target.display(),
            started.elapsed().as_secs_f64()
        )?;
    }
    Ok(crate::exit::OK)
}

/// What happened to the database at the target besides the copy: a safety snapshot, an
/// unreadable file kept as files and replaced, stale files removed, a forced restore.
fn print_db_outcome(
    s: &backstop_engine::database::DatabaseRestoreSummary,
    target: &std::path::Path,
) -> anyhow::Result<()> {
    match (&s.plan.target_unreadable, s.safety_snapshot) {
        (Some(why), Some(id)) => {
            outln!(
                "{} could not be opened as a database ({why}): its bytes (and any -wal, -shm, -journal beside it) are kept as files in safety snapshot {} (get them back with `backstop restore {} --to DIR`)",
                target.display(),
                id.short(),
                id.short()
            )?;
            outln!(
                "it was replaced by the restored database (a new file: applications that had it open must open it again)"
            )?;
        }
        (None, Some(id)) => outln!("safety snapshot {} of the database as it was", id.short())?,
        _ => {}
    }
    for r in &s.removed {
        outln!("removed stale {r}")?;
    }
    if s.forced {
        outln!(
            "FORCED: the restored database failed its checks and was put in place anyway; a forced-restore record of snapshot {} is in the repository",
            s.plan.snapshot.short()
        )?;
    }
    Ok(())
}

fn print_db_plan(p: &DatabasePlan, tz: &TimeZone) -> anyhow::Result<()> {
    outln!(
        "would restore {} from snapshot {} of {} taken {} ({})",
        p.item,
        p.snapshot.short(),
        p.source,
        time(p.time, tz),
        bytes(p.bytes)
    )?;
    outln!(
        "{} {}{}",
        if p.in_place {
            "into the live database"
        } else {
            "to"
        },
        p.target,
        if p.target_exists && !p.in_place {
            " (exists: needs --overwrite)"
        } else {
            ""
        }
    )?;
    outln!("quick_check at capture: {}", p.quick_check_at_capture)?;
    if let Some(why) = &p.target_unreadable {
        outln!(
            "{} cannot be opened as a database ({why}): it would be kept as files in a safety snapshot, then replaced",
            p.target
        )?;
    }
    match p.schema_matches {
        Some(true) => outln!(
            "schema: same as now (user_version {})",
            p.user_version_snapshot
        )?,
        Some(false) => outln!(
            "SCHEMA DIFFERS from the database now (user_version now {:?}, in the snapshot {}): needs --allow-schema-change",
            p.user_version_now,
            p.user_version_snapshot
        )?,
        None => outln!("schema: no database at the target to compare with")?,
    }
    outln!(
        "{:<32} {:>12} {:>12} {:>10}",
        "TABLE",
        "ROWS NOW",
        "IN SNAPSHOT",
        "CHANGE"
    )?;
    let show = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    for t in &p.tables {
        let change = match (t.rows_now, t.rows_snapshot) {
            (Some(a), Some(b)) => format!("{:+}", b as i64 - a as i64),
            _ => String::new(),
        };
        outln!(
            "{:<32} {:>12} {:>12} {:>10}",
            t.name,
            show(t.rows_now),
            show(t.rows_snapshot),
            change
        )?;
    }
    print_plan_rows(p.comparison.as_ref(), &p.tables, p.summary.as_deref())
}

/// The rows entered, deleted and changed since the snapshot (when compared one by one), and
/// what the restore does in words (`summary`, and each table's `words`).
fn print_plan_rows(
    comparison: Option<&backstop_app::restore::RowComparison>,
    tables: &[backstop_engine::database::TableChange],
    summary: Option<&str>,
) -> anyhow::Result<()> {
    match comparison {
        Some(c) if c.rows => {
            outln!("rows since the snapshot, matched by primary key (or rowid, or content):")?;
            outln!(
                "{:<32} {:>14} {:>14} {:>14}",
                "TABLE",
                "ENTERED SINCE",
                "DELETED SINCE",
                "CHANGED SINCE"
            )?;
            for t in tables {
                match (&t.since, &t.not_compared) {
                    (Some(s), _) => outln!(
                        "{:<32} {:>14} {:>14} {:>14}",
                        t.name,
                        s.added,
                        s.deleted,
                        s.changed
                    )?,
                    (None, Some(why)) => outln!("{:<32} {why}", t.name)?,
                    (None, None) => {}
                }
            }
        }
        Some(c) => outln!(
            "rows: counts only ({}): rows changed since the snapshot are not counted",
            c.note.as_deref().unwrap_or("not compared")
        )?,
        None => {}
    }
    if let Some(summary) = summary {
        outln!("{summary}")?;
        for words in tables.iter().filter_map(|t| t.words.as_ref()) {
            outln!("  - {words}")?;
        }
    }
    if let Some(note) = comparison.filter(|c| c.rows).and_then(|c| c.note.as_ref()) {
        outln!("note: {note}")?;
    }
    Ok(())
}

/// Asks for the database name on a terminal; refuses to go on without one.
fn confirm(p: &DatabasePlan, tz: &TimeZone) -> anyhow::Result<()> {
    ask_for_name(&p.item, &|| print_db_plan(p, tz))
}

/// Shows the plan of an in-place restore and asks for the name of the database it replaces
/// on a terminal; refuses to go on without it.
fn ask_for_name(name: &str, plan: &dyn Fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "an in-place restore replaces the live database: confirm on a terminal, or pass --yes in scripts".into(),
        )
        .into());
    }
    plan()?;
    print!("A safety snapshot is taken first. Type the database name ({name}) to replace it: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if !confirms(&line, name) {
        return Err(UsageError(format!(
            "not confirmed (the answer must be the database name, {name}): nothing was changed"
        ))
        .into());
    }
    Ok(())
}

/// Whether an answer to the prompt is the database name it asks for, and nothing else (not the
/// source's name: a prompt that accepts what it did not ask for confirms nothing).
fn confirms(answer: &str, database: &str) -> bool {
    answer.trim() == database
}

#[cfg(test)]
mod tests {
    use super::confirms;

    #[test]
    fn only_the_database_name_confirms_an_in_place_restore() {
        assert!(confirms("shop.db\n", "shop.db"));
        assert!(confirms("  shop.db \r\n", "shop.db"));
        for other in ["shop\n", "", "y\n", "yes\n", "SHOP.DB\n", "shop.db.bak\n"] {
            assert!(!confirms(other, "shop.db"), "{other:?}");
        }
    }
}
