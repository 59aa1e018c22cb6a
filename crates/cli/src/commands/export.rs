//! `backstop export`

use std::path::PathBuf;

use backstop_app::export::{ExportRequest, Format, Layout, database_of, export_item};

use crate::commands::restore::{dump_for_tables, server_product};
use crate::context::{Ctx, GlobalArgs, load_index, runtime};
use crate::output::{UsageError, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The snapshot (an id, latest[:SOURCE], latest-verified[:SOURCE], SOURCE@TIME, as for
    /// restore), and `:PATH` after an id to name one database of a snapshot that holds several
    pub snapshot: String,
    /// The source whose snapshot is meant (picks `latest` of it)
    #[arg(long)]
    pub source: Option<String>,
    /// Only this table (repeatable; default: every table of the database)
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// csv, json (an array a table), jsonl (an object a line), sql (a script for the sqlite3 shell) or xlsx (a workbook a table)
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// The folder to write into (made if need be)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// flat: DIR/TABLE.EXT; dated: DIR/SOURCE/YYYY-MM-DD/TABLE_YYYY-MM-DD_HHMMSS.EXT (the snapshot's time)
    #[arg(long, default_value = "flat")]
    pub layout: String,
    /// Replace files that exist
    #[arg(long)]
    pub overwrite: bool,
}

/// `SPEC` and the database path after it: `ID:PATH`, `latest:SOURCE:PATH`.
pub(crate) fn split_item(text: &str) -> (String, Option<String>) {
    let is_id = |s: &str| s.len() >= 4 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some((head, path)) = text.split_once(':')
        && is_id(head)
        && !path.is_empty()
    {
        return (head.to_owned(), Some(path.to_owned()));
    }
    for prefix in ["latest-verified:", "latest:"] {
        if let Some(rest) = text.strip_prefix(prefix)
            && let Some((source, path)) = rest.split_once(':')
            && !path.is_empty()
        {
            return (format!("{prefix}{source}"), Some(path.to_owned()));
        }
    }
    (text.to_owned(), None)
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let format = Format::parse(&a.format).map_err(|e| UsageError(e.to_string()))?;
    let layout = Layout::parse(&a.layout)?;
    let repo = ctx.open()?;
    let (spec, path) = split_item(&a.snapshot);
    let (id, snap) = ctx.find_snapshot_of(&repo, &spec, a.source.as_deref())?;
    let ix = load_index(&repo, g.quiet)?;
    let items = ix.loader().read_items(&snap.items)?;
    let item = database_of(id, &items, path.as_deref())?;
    let tz = ctx.config.time_zone()?;
    let rt = runtime();
    let req = ExportRequest {
        tables: &a.tables,
        format,
        layout,
        dir: &a.to,
        overwrite: a.overwrite,
        time_zone: &tz,
        rt: &rt,
    };
    let written = match &item.server {
        // A server's dump: its tables read as `restore --table T` reads them.
        Some(_) => {
            if server_product(snap.source.kind).is_none() {
                return Err(UsageError(format!(
                    "snapshot {} holds a server's dump but is of a {} source",
                    id.short(),
                    snap.source.kind.as_str()
                ))
                .into());
            }
            let dump = dump_for_tables(&ctx, id, &snap, &items, a.source.as_deref())?;
            let written =
                backstop_app::export::export_server(&ix, id, &snap, item, &dump.server, &req)?;
            crate::commands::serve::record_cli_restore(
                &ctx.config,
                &format!("{}@{}", dump.source, id.short()),
                &format!("tables exported into {}", a.to.display()),
            );
            written
        }
        None => export_item(&ix, id, &snap, item, &req)?,
    };
    if g.json {
        print_json(&written)?;
    } else if !g.quiet {
        outln!(
            "exported {} table(s) of {} in snapshot {} of {} as {}:",
            written.len(),
            item.path,
            id.short(),
            snap.source.name,
            format.extension()
        )?;
        for e in &written {
            outln!("  {}: {} row(s) into {}", e.table, e.rows, e.path.display())?;
        }
    }
    if !g.quiet {
        for note in written.iter().flat_map(|e| &e.notes) {
            eprintln!("note: {note}");
        }
    }
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::split_item;

    #[test]
    fn a_database_path_follows_an_id_or_a_source() {
        let s = |t: &str| split_item(t);
        assert_eq!(
            s("3fa2c1:data/shop.db"),
            ("3fa2c1".into(), Some("data/shop.db".into()))
        );
        assert_eq!(
            s("latest:files:a/b.db"),
            ("latest:files".into(), Some("a/b.db".into()))
        );
        assert_eq!(s("latest:shop"), ("latest:shop".into(), None));
        assert_eq!(
            s("shop@yesterday 18:00"),
            ("shop@yesterday 18:00".into(), None)
        );
        assert_eq!(s("latest"), ("latest".into(), None));
    }
}
