//! `backstop diff`

use backstop_app::export::{DatabaseDiff, database_of, restore_image};
use backstop_format::manifest::ItemKind;

use crate::commands::export::split_item;
use crate::commands::restore::dump_for_tables;
use crate::context::{Ctx, GlobalArgs, host, load_index, runtime};
use crate::output::{UsageError, print_json, time};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The older snapshot (as for restore; `ID:PATH` for one database of a folder's snapshot)
    pub before: String,
    /// The newer snapshot
    pub after: String,
    /// The source both snapshots are of (picks `latest` of it, ...)
    #[arg(long)]
    pub source: Option<String>,
    /// Only this table (repeatable; default: every table)
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Rows of each kind (added, removed, changed) to show per table
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let ix = load_index(&repo, g.quiet)?;
    let rt = runtime();
    let scratch = tempfile::Builder::new()
        .prefix("backstop-diff-")
        .tempdir()
        .map_err(|e| anyhow::anyhow!("making a scratch folder: {e}"))?;
    let mut sides = Vec::new();
    let mut servers = 0;
    // Sides whose rows have no rowid of their own (a dump's, a sheet's).
    let mut whole_rows = 0;
    for text in [&a.before, &a.after] {
        let (spec, path) = split_item(text);
        let (id, snap) = ctx.find_snapshot_of(&repo, &spec, a.source.as_deref())?;
        let items = ix.loader().read_items(&snap.items)?;
        let item = database_of(id, &items, path.as_deref())?;
        let image = match (&item.server, item.kind) {
            // A server's dump: its tables loaded as the text they are, with their keys.
            (Some(record), _) => {
                servers += 1;
                whole_rows += 1;
                let dump = dump_for_tables(&ctx, id, &snap, &items, a.source.as_deref())?;
                let tables: Vec<String> = record
                    .tables
                    .iter()
                    .map(|t| t.name.clone())
                    .filter(|t| a.tables.is_empty() || a.tables.contains(t))
                    .collect();
                backstop_app::export::load_server_tables(
                    &ix,
                    id,
                    item,
                    &dump.server,
                    &tables,
                    scratch.path(),
                    false,
                    &host(),
                )?
            }
            (None, ItemKind::Sqlite) => restore_image(&ix, id, &snap, item, scratch.path(), &rt)?,
            // A workbook: its sheets and Excel tables as the text their cells show.
            (None, ItemKind::File) if backstop_app::export::is_workbook(&item.path) => {
                whole_rows += 1;
                backstop_app::export::load_workbook(&ix, id, item, scratch.path(), &host())?
            }
            _ => {
                return Err(UsageError(format!(
                    "{} of snapshot {} is not a database: diff compares SQLite databases, \
                     PostgreSQL or MariaDB dumps and workbooks",
                    item.path,
                    id.short()
                ))
                .into());
            }
        };
        sides.push((id, snap.time, item.path.clone(), image));
    }
    if servers == 1 || whole_rows == 1 {
        return Err(UsageError(
            "the two items are not of one kind (a SQLite database, a server's dump, a \
             workbook): diff compares two of a kind"
                .into(),
        )
        .into());
    }
    let (before, after) = (&sides[0], &sides[1]);
    let d: DatabaseDiff = backstop_app::export::diff_databases(
        &before.3,
        &after.3,
        &a.tables,
        a.limit,
        whole_rows > 0,
    )?;
    if g.json {
        print_json(&serde_json::json!({
            "before": { "snapshot": before.0.to_string(), "time": before.1, "path": before.2 },
            "after": { "snapshot": after.0.to_string(), "time": after.1, "path": after.2 },
            "tables_added": d.tables_added,
            "tables_removed": d.tables_removed,
            "tables": d.tables,
        }))?;
        return Ok(crate::exit::OK);
    }
    let tz = ctx.config.time_zone()?;
    outln!(
        "{}: snapshot {} ({}) -> {} ({})",
        after.2,
        before.0.short(),
        time(before.1, &tz),
        after.0.short(),
        time(after.1, &tz)
    )?;
    if !d.tables_added.is_empty() {
        outln!("tables added: {}", d.tables_added.join(", "))?;
    }
    if !d.tables_removed.is_empty() {
        outln!("tables removed: {}", d.tables_removed.join(", "))?;
    }
    let mut same = Vec::new();
    for t in &d.tables {
        if !t.changed() {
            same.push(t.table.as_str());
            continue;
        }
        let mut what = Vec::new();
        for (n, word) in [
            (t.added, "added"),
            (t.removed, "removed"),
            (t.changed, "changed"),
        ] {
            if n > 0 {
                what.push(format!("{n} {word}"));
            }
        }
        let mut line = format!("{}: {} -> {} rows", t.table, t.rows_before, t.rows_after);
        if !what.is_empty() {
            let by = match t.whole_rows {
                true => "whole rows".to_owned(),
                false => t.key.join(", "),
            };
            line.push_str(&format!("; {} (by {by})", what.join(", ")));
        }
        if t.schema_changed {
            let mut schema = Vec::new();
            if !t.columns_added.is_empty() {
                schema.push(format!("columns added {}", t.columns_added.join(", ")));
            }
            if !t.columns_removed.is_empty() {
                schema.push(format!("columns removed {}", t.columns_removed.join(", ")));
            }
            if schema.is_empty() {
                schema.push("its definition".into());
            }
            line.push_str(&format!("; schema changed: {}", schema.join(", ")));
        }
        outln!("{line}")?;
        for k in &t.first_added {
            outln!("  + {k}")?;
        }
        for k in &t.first_removed {
            outln!("  - {k}")?;
        }
        for c in &t.first_changed {
            let cols: Vec<String> = c
                .columns
                .iter()
                .map(|c| format!("{} {} -> {}", c.column, c.before, c.after))
                .collect();
            outln!("  ~ {}: {}", c.key, cols.join(", "))?;
        }
        let shown = (t.first_added.len() + t.first_removed.len() + t.first_changed.len()) as u64;
        if shown < t.added + t.removed + t.changed {
            outln!(
                "  ... {} more (--limit N shows more of each kind)",
                t.added + t.removed + t.changed - shown
            )?;
        }
    }
    if !same.is_empty() {
        outln!("unchanged: {}", same.join(", "))?;
    }
    Ok(crate::exit::OK)
}
