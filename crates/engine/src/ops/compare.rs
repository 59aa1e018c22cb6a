//! A restore plan's rows compared one by one: the snapshot's image is written to a temporary
//! folder (as a restore drill writes it, its hash checked), the live database is read beside it
//! (`backstop_sources::sqlite::compare`), and each table gets the rows entered, deleted and
//! changed since the snapshot.
//!
//! It costs a whole image, so only databases up to [`CompareOptions::limit_bytes`] are compared;
//! larger ones, and any comparison that fails, keep the plan's row counts and say why in
//! [`RowComparison::note`]: a comparison never stops a plan. The live database is only read.
//! The temporary folder (with anything SQLite might put beside the image) is removed in every
//! case; if that fails, the note says where it is.

use std::fs;
use std::path::{Path, PathBuf};

use backstop_format::manifest::Item;
use backstop_sources::sqlite::compare::{TableComparison, compare_with_image};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ops::database::{DatabasePlan, ImageWrite, TableChange, write_image};
use crate::progress::Progress;
use crate::repository::indexed::Indexed;

/// The size up to which rows are compared by default: 2 GiB.
pub const COMPARE_LIMIT_BYTES: u64 = 2 << 30;

/// Where and up to what size a plan's rows are compared.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The folder the temporary one (holding the snapshot's image) is made in.
    pub scratch: PathBuf,
    /// The largest database compared row by row: the snapshot's image and the live file.
    pub limit_bytes: u64,
    /// Named in the repository's lock while the image is read.
    pub host: String,
}

/// How a plan's rows were compared with the snapshot's.
#[derive(Debug, Clone, Serialize)]
pub struct RowComparison {
    /// True: row by row (each table's `since`, or `not_compared`); false: row counts only
    /// (rows changed since the snapshot are not counted), and `note` says why.
    pub rows: bool,
    /// Why only row counts; with `rows`, a temporary folder that could not be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The size limit the comparison ran under.
    pub limit_bytes: u64,
}

/// Compares the rows of `plan`'s target (the live database) with those of the snapshot's
/// `item`, and records the outcome in `plan` (its `comparison`, each table's `since` or
/// `not_compared`). Never fails: a comparison that cannot be made leaves the row counts.
pub fn compare_rows(
    ix: &Indexed<'_>,
    item: &Item,
    plan: &mut DatabasePlan,
    opts: &CompareOptions,
    progress: &dyn Progress,
) {
    let limit = backstop_policy::format_bytes(opts.limit_bytes);
    let live = PathBuf::from(&plan.target);
    let live_bytes = fs::metadata(&live).map_or(0, |m| m.len());
    let counts_only = |note: String| RowComparison {
        rows: false,
        note: Some(note),
        limit_bytes: opts.limit_bytes,
    };
    plan.comparison = Some(if !plan.target_exists || plan.target_unreadable.is_some() {
        counts_only("there is no readable live database to compare the rows with".into())
    } else if plan.bytes.max(live_bytes) > opts.limit_bytes {
        counts_only(format!(
            "the database is larger than {limit}, the limit for comparing rows one by one"
        ))
    } else {
        match compared(ix, item, &live, opts, progress) {
            Ok((tables, left)) => {
                record_comparison(&mut plan.tables, &tables);
                RowComparison {
                    rows: true,
                    note: left,
                    limit_bytes: opts.limit_bytes,
                }
            }
            Err(e) => counts_only(format!("the rows could not be compared: {e}")),
        }
    });
}

/// Records each table's comparison in the plan's table of that name: its rows since the
/// snapshot, or why they were not compared.
pub fn record_comparison(tables: &mut [TableChange], compared: &[TableComparison]) {
    for t in tables {
        if let Some(c) = compared.iter().find(|c| c.table == t.name) {
            match &c.rows {
                Ok(since) => t.since = Some(*since),
                Err(why) => t.not_compared = Some(why.clone()),
            }
            t.by_content = c.by_content;
        }
    }
}

/// The comparison, and a note if the temporary folder was left behind.
fn compared(
    ix: &Indexed<'_>,
    item: &Item,
    live: &Path,
    opts: &CompareOptions,
    progress: &dyn Progress,
) -> Result<(Vec<TableComparison>, Option<String>)> {
    let io = |what: String| {
        move |e: std::io::Error| {
            Error::Source(backstop_sources::Error::Io {
                context: what,
                cause: e,
            })
        }
    };
    fs::create_dir_all(&opts.scratch)
        .map_err(io(format!("creating {}", opts.scratch.display())))?;
    let dir = tempfile::Builder::new()
        .prefix("backstop-compare-")
        .tempdir_in(&opts.scratch)
        .map_err(io(format!(
            "making a temporary folder in {}",
            opts.scratch.display()
        )))?;
    let result = (|| -> Result<Vec<TableComparison>> {
        // No prune removes the chunks while they are read.
        let _lock =
            crate::repository::lock::Lock::for_reading(ix, "restore plan", &opts.host, progress)?;
        // Read once right away: through the page cache, not synced.
        let how = ImageWrite {
            durable: false,
            direct: false,
        };
        let image = write_image(&ix.loader(), item, dir.path(), how, progress)?;
        Ok(compare_with_image(live, &image)?)
    })();
    let path = dir.path().to_path_buf();
    let left = dir.close().err().map(|e| {
        format!(
            "the temporary copy of the snapshot in {} could not be removed ({e}): remove it by hand",
            path.display()
        )
    });
    match result {
        Ok(tables) => Ok((tables, left)),
        Err(e) => Err(match left {
            Some(left) => Error::Invalid(format!("{e}; {left}")),
            None => e,
        }),
    }
}
