//! `backstop show SNAPSHOT`

use backstop_format::SnapshotId;
use backstop_format::manifest::{Item, Snapshot};
use backstop_format::record::{FORCED_RESTORE, RESTORE_DRILL, Record};
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, load_index};
use crate::output::{bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, unique id prefix, latest[:SOURCE], latest-verified[:SOURCE], or SOURCE@TIME
    pub snapshot: String,
    /// The source whose snapshot to show, with latest, latest-verified or @TIME (a source's
    /// name, never an item's)
    #[arg(long)]
    pub source: Option<String>,
}

#[derive(Serialize)]
struct Out<'a> {
    id: SnapshotId,
    #[serde(flatten)]
    snapshot: &'a Snapshot,
    item_list: Vec<Item>,
    /// Every restore drill of this snapshot, oldest first.
    verification: Vec<Record>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let (id, snap) = ctx.find_snapshot_of(&repo, &a.snapshot, a.source.as_deref())?;
    let items = load_index(&repo, g.quiet)?
        .loader()
        .read_items(&snap.items)?;
    let records: Vec<Record> = repo
        .records()?
        .into_iter()
        .filter(|r| r.snapshot == id)
        .collect();
    let drills: Vec<&Record> = records.iter().filter(|r| r.kind == RESTORE_DRILL).collect();
    if g.json {
        print_json(&Out {
            id,
            snapshot: &snap,
            item_list: items,
            verification: records.clone(),
        })?;
        return Ok(crate::exit::OK);
    }
    let tz = ctx.config.time_zone()?;
    let time = |t| crate::output::time(t, &tz);
    outln!("snapshot    {id}")?;
    outln!("time        {}", time(snap.time))?;
    outln!(
        "source      {} ({})",
        snap.source.name,
        snap.source.kind.as_str()
    )?;
    outln!("kind        {}", snap.kind.as_str())?;
    outln!("host        {}", snap.host)?;
    outln!("paths       {}", snap.paths.join(" "))?;
    for p in &snap.excludes.patterns {
        outln!("exclude     {p}")?;
    }
    for n in &snap.excludes.if_present {
        outln!("exclude     directories holding {n}")?;
    }
    if snap.excludes.caches {
        outln!("exclude     cache directories (CACHEDIR.TAG)")?;
    }
    if let Some(d) = &snap.description {
        outln!("description {d}")?;
    }
    if !snap.tags.is_empty() {
        outln!("tags        {}", snap.tags.join(", "))?;
    }
    if let Some(t) = &snap.ticket {
        outln!("ticket      {t}")?;
    }
    if let Some(p) = &snap.parent {
        outln!("parent      {p}")?;
    }
    outln!(
        "size        {} in {} item(s); this backup added {}",
        bytes(snap.stats.bytes),
        snap.stats.items,
        bytes(snap.stats.bytes_added)
    )?;
    match drills.last() {
        None => outln!(
            "verified    no restore drill yet (backstop verify --restore-test {})",
            id.short()
        )?,
        Some(r) => outln!(
            "verified    restore drill {} at {} in {:.1} s ({} drill(s) in all)",
            crate::output::drill_verdict(r.passed, &r.checks).to_lowercase(),
            time(r.time),
            r.duration_ms as f64 / 1000.0,
            drills.len()
        )?,
    }
    for r in records.iter().filter(|r| r.kind == FORCED_RESTORE) {
        outln!(
            "forced      restore at {} on {} despite failed checks: {}",
            time(r.time),
            r.host,
            r.note.as_deref().unwrap_or("")
        )?;
    }
    if let Some(r) = &snap.repaired {
        outln!(
            "repaired    copy of damaged snapshot {} made at {}: what could not be read is listed below",
            r.from,
            time(r.time)
        )?;
        for l in &r.losses {
            if l.dropped {
                outln!("  lost      {} (nothing could be read; left out)", l.path)?;
            } else {
                outln!(
                    "  lost      {} of {} of {} in {} range(s) (zeros in this copy)",
                    bytes(l.bytes()),
                    bytes(l.size),
                    l.path,
                    l.ranges.len()
                )?;
            }
            if let Some(d) = &l.detail {
                outln!("            {d}")?;
            }
        }
    }
    for w in &snap.warnings {
        outln!("warning     {w}")?;
    }
    outln!()?;
    outln!("{:<8} {:>12}  {:<16} PATH", "TYPE", "SIZE", "BLAKE3")?;
    for i in &items {
        let hash = i
            .content
            .as_ref()
            .map(|c| c.hash[..16].to_string())
            .unwrap_or_default();
        let kind = serde_json::to_value(i.kind)?
            .as_str()
            .unwrap_or("?")
            .to_string();
        let path = match &i.target {
            Some(t) => format!("{} -> {t}", i.path),
            None => i.path.clone(),
        };
        outln!("{:<8} {:>12}  {:<16} {}", kind, i.size, hash, path)?;
    }
    for i in &items {
        let Some(db) = &i.database else { continue };
        outln!()?;
        outln!(
            "database {}: {} pages of {} bytes, journal mode {}, user_version {}, quick_check {}",
            i.path,
            db.page_count,
            db.page_size,
            db.journal_mode,
            db.user_version,
            db.quick_check
        )?;
        if !db.not_checkable.is_empty() {
            outln!(
                "not checkable (only the application defines what they need): {}",
                not_checkable_line(&db.not_checkable)
            )?;
        }
        outln!("{:<32} {:>12}", "TABLE", "ROWS")?;
        for t in &db.tables {
            outln!(
                "{:<32} {:>12}",
                t.name,
                t.rows.map_or("unreadable".to_string(), |r| r.to_string())
            )?;
        }
        rules_at_capture(db.validation.as_ref())?;
    }
    for i in &items {
        let Some(book) = &i.workbook else { continue };
        outln!()?;
        outln!("workbook {}:", i.path)?;
        for t in &book.tables {
            let columns: Vec<String> = t
                .columns
                .iter()
                .map(|c| format!("{} ({})", c.name, c.kind))
                .collect();
            let what = match &t.sheet {
                Some(sheet) => format!("table {} on {sheet}", t.name),
                None => format!("sheet {}", t.name),
            };
            outln!("  {what}: {} row(s); {}", t.rows, columns.join(", "))?;
        }
    }
    for i in &items {
        let Some(db) = &i.server else { continue };
        outln!()?;
        outln!(
            "{} database {} ({}): {}, server {}, {} when dumped, schema {}{}",
            db.engine,
            db.database,
            i.path,
            db.tool,
            db.server_version,
            bytes(db.size_bytes),
            &db.schema_fingerprint[..db.schema_fingerprint.len().min(16)],
            db.schema_version
                .as_ref()
                .map(|v| format!(", migrations {v}"))
                .unwrap_or_default()
        )?;
        outln!("{:<40} {:>12}", "TABLE", "ROWS")?;
        for t in &db.tables {
            outln!(
                "{:<40} {:>12}",
                t.name,
                t.rows.map_or("unreadable".to_string(), |r| r.to_string())
            )?;
        }
        rules_at_capture(db.validation.as_ref())?;
    }
    Ok(crate::exit::OK)
}

/// The validation rules' results stored with a database, every rule.
fn rules_at_capture(v: Option<&backstop_format::manifest::Validation>) -> anyhow::Result<()> {
    match v {
        Some(v) => crate::output::print_rules("validation rules at capture", &v.results, false),
        None => Ok(()),
    }
}

/// `table (reason), ...`
fn not_checkable_line(n: &[backstop_format::manifest::NotCheckable]) -> String {
    n.iter()
        .map(|n| format!("{} ({})", n.table, n.reason))
        .collect::<Vec<_>>()
        .join(", ")
}
