//! Which snapshot a spec names, asked before anything is restored: the restore picker's "as of a
//! time" and `GET /api/v1/snapshots/resolve` show the answer, and the restore then names that
//! snapshot by its id (a backup made in between cannot change what is restored).
//!
//! How a spec is qualified by its source and resolved is `backstop_app::snapshots`, the same for
//! the CLI; this module adds the listing row the API sends.

use backstop_engine::listing::{ListFilter, SnapshotRow, list_snapshots};
use backstop_format::Timestamp;
use serde::Serialize;

use crate::setup::Setup;

/// A spec's answer, as the API sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    /// The spec as resolved (qualified by the source), e.g. `shop@2026-12-04T18:00`.
    pub spec: String,
    /// The time a time spec was read as; `null` for ids and `latest`.
    pub as_of: Option<Timestamp>,
    /// The zone that time was read in.
    pub time_zone: String,
    /// The snapshot it names: the row `GET /api/v1/snapshots` lists.
    pub snapshot: SnapshotRow,
}

pub use backstop_app::snapshots::{Found, local_time, qualify, zone_name};

/// Resolves `spec` (for `source`, when given) to one snapshot, in the configured time zone
/// (see [`backstop_app::snapshots::find`]).
pub fn find(setup: &Setup, spec: &str, source: Option<&str>) -> anyhow::Result<Found> {
    backstop_app::snapshots::find(&setup.repo, spec, source, &setup.time_zone)
}

/// [`find`], with the snapshot's listing row (drill state, pins) for the API.
pub fn resolution(setup: &Setup, spec: &str, source: Option<&str>) -> anyhow::Result<Resolution> {
    let found = find(setup, spec, source)?;
    let (rows, _) = list_snapshots(
        &setup.repo,
        &ListFilter {
            source: Some(found.snapshot.source.name.clone()),
            ..ListFilter::default()
        },
        &setup.lifecycle,
        Timestamp::now(),
    )?;
    let snapshot = rows
        .into_iter()
        .find(|r| r.id == found.id)
        .ok_or_else(|| anyhow::anyhow!("snapshot {} vanished", found.id.short()))?;
    Ok(Resolution {
        spec: found.spec,
        as_of: found.as_of,
        time_zone: zone_name(&setup.time_zone),
        snapshot,
    })
}
