//! `backstop import`

use std::path::PathBuf;

use backstop_app::backup::{BackupRequest, SkipUnchanged, SourceSettings};
use backstop_app::import::{ImportRequest, import};
use backstop_format::manifest::BackupKind;

use crate::context::{Ctx, GlobalArgs, runtime, spill_options, warner};
use crate::output::{Bar, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The CSV file (any encoding of UTF-8, UTF-16 or Windows-1252; `,`, `;`, tab or `|`)
    pub file: PathBuf,
    /// The source whose live database takes the rows (a SQLite source in backstop.toml)
    #[arg(long = "into", value_name = "SOURCE")]
    pub source: String,
    /// The table the rows go into
    #[arg(long)]
    pub table: String,
    /// `auto` (match the header's names, or their synonyms, to the table's columns) or a
    /// mapping file (TOML: [columns] "File column" = "table_column"; [synonyms] table_column =
    /// ["Other name"]; [formats] table_column = "%d/%m/%Y" or "1.234,56")
    #[arg(long, default_value = "auto")]
    pub map: String,
    /// The file's first row is data: its columns are `1`, `2`, ... (in a mapping file) and
    /// otherwise fill the table's columns in order
    #[arg(long)]
    pub no_header: bool,
    /// Check every row and report every problem; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let map = match a.map.as_str() {
        "auto" => None,
        path => Some(PathBuf::from(path)),
    };
    let req = ImportRequest {
        file: &a.file,
        source: &a.source,
        table: &a.table,
        map: map.as_deref(),
        no_header: a.no_header,
        dry_run: a.dry_run,
    };
    let mut take_snapshot = |description: String| -> anyhow::Result<_> {
        let repo = ctx.open()?;
        let s = ctx
            .config
            .sources
            .get(&a.source)
            .expect("checked by import");
        let mut reader =
            backstop_app::sources::source_from_config(&ctx.config, &a.source, s, &[], false)?;
        let bar = Bar::new(g.quiet || g.json);
        let summary = backstop_app::backup::backup(
            &repo,
            &mut reader,
            &a.source,
            &SourceSettings {
                tags: s.tags.clone(),
                description: None,
                skip_unchanged: false,
            },
            &BackupRequest {
                kind: BackupKind::PreChange,
                description: Some(description),
                tags: Vec::new(),
                ticket: None,
                time: None,
                force: false,
                skip_unchanged: SkipUnchanged::AsConfigured,
            },
            &runtime(),
            &spill_options()?,
            &warner(g.quiet),
            &bar,
        );
        bar.done();
        Ok(summary?.id)
    };
    let done = import(&ctx.config, &req, &mut take_snapshot)?;
    let r = &done.report;
    if g.json {
        print_json(&done)?;
    } else {
        if !r.encoding.is_empty() {
            outln!(
                "{}: {} row(s), {}, delimiter '{}'; columns {}{}",
                a.file.display(),
                r.rows,
                r.encoding,
                r.delimiter,
                r.mapping
                    .iter()
                    .map(|(f, t)| match f == t {
                        true => f.clone(),
                        false => format!("{f} -> {t}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                match r.ignored.is_empty() {
                    true => String::new(),
                    false => format!(" (left out: {})", r.ignored.join(", ")),
                }
            )?;
        }
        for p in &r.problems {
            let mut at = match p.line {
                0 => "the file".to_owned(),
                n => format!("line {n}"),
            };
            if let Some(c) = &p.column {
                at.push_str(&format!(", column {c}"));
            }
            if let Some(v) = &p.value {
                at.push_str(&format!(", value {v:?}"));
            }
            outln!("  {at}: {}", p.reason)?;
        }
        let verdict = match (r.problems.len(), done.dry_run, &done.pre_change_snapshot) {
            (0, true, _) => format!(
                "dry run: all {} row(s) would go into {}; nothing changed",
                r.rows, r.table
            ),
            (n, true, _) => format!("dry run: {n} problem(s); nothing changed"),
            (0, false, Some(id)) => format!(
                "imported {} row(s) into {} in one transaction (pre-change snapshot {}: restore it to undo)",
                r.imported,
                r.table,
                id.short()
            ),
            (0, false, None) => "nothing to import: the file has no rows".to_owned(),
            (n, false, snap) => format!(
                "{n} problem(s): nothing was imported{}",
                snap.as_ref()
                    .map(|id| format!(" (the pre-change snapshot {} was taken)", id.short()))
                    .unwrap_or_default()
            ),
        };
        outln!("{verdict}")?;
    }
    Ok(match r.problems.is_empty() {
        true => crate::exit::OK,
        false => crate::exit::INTEGRITY,
    })
}
