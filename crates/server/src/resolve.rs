//! Which snapshot a spec names, asked before anything is restored: the restore picker's "as of a
//! time" and `GET /api/v1/snapshots/resolve` show the answer, and the restore then names that
//! snapshot by its id (a backup made in between cannot change what is restored).
//!
//! A spec is one of the engine's (`crate::spec` in the engine: an id, `latest`,
//! `latest-verified`, `SOURCE@TIME`), qualified by the source it is asked for: `latest` becomes
//! `latest:SOURCE` and `@TIME` becomes `SOURCE@TIME`. Times are read in the configured time zone.
//! "No snapshot before that time" is worded here, in that zone, with the oldest snapshot there is.

use backstop_engine::Error as E;
use backstop_engine::SpecClock;
use backstop_engine::listing::{ListFilter, SnapshotRow, list_snapshots};
use backstop_engine::spec::Spec;
use backstop_format::manifest::Snapshot;
use backstop_format::{SnapshotId, Timestamp};
use jiff::tz::TimeZone;
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

/// A resolved spec: the snapshot, and the time it was asked for (time specs only).
#[derive(Debug, Clone)]
pub struct Found {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub spec: String,
    pub as_of: Option<Timestamp>,
}

/// `spec` as asked for `source`: `latest` and `latest-verified` of that source, a bare `@TIME`
/// of that source; anything else as it is.
pub fn qualify(spec: &str, source: Option<&str>) -> String {
    match (spec, source) {
        ("latest" | "latest-verified", Some(src)) => format!("{spec}:{src}"),
        (s, Some(src)) if s.starts_with('@') => format!("{src}{s}"),
        (s, _) => s.to_string(),
    }
}

/// Resolves `spec` (for `source`, when given) to one snapshot. A snapshot of another source than
/// `source` is refused.
pub fn find(setup: &Setup, spec: &str, source: Option<&str>) -> anyhow::Result<Found> {
    let wanted = qualify(spec, source);
    let clock = SpecClock {
        now: Timestamp::now(),
        time_zone: setup.time_zone.clone(),
    };
    let parsed = Spec::parse(&wanted, Some(&clock))?;
    let as_of = match &parsed {
        Spec::AtOrBefore(_, at) => Some(*at),
        _ => None,
    };
    let (id, snapshot) = match setup.repo.find_snapshot_at(&wanted, &clock) {
        Err(E::NotFound(_)) if as_of.is_some() => {
            let at = as_of.expect("checked just above");
            return Err(nothing_before(setup, parsed.source(), at)?.into());
        }
        r => r?,
    };
    if let Some(src) = source
        && snapshot.source.name != src
    {
        return Err(E::Invalid(format!(
            "snapshot {} belongs to source {:?}, not {src:?}",
            id.short(),
            snapshot.source.name
        ))
        .into());
    }
    Ok(Found {
        id,
        snapshot,
        spec: wanted,
        as_of,
    })
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

/// The configured zone's name, as the page says it.
pub fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name()
        .unwrap_or("the system's time zone")
        .to_string()
}

/// A time as the page shows it, in `tz`: minutes, seconds only when there are some.
pub fn local_time(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.second() == 0 && z.subsec_nanosecond() == 0 {
        z.strftime("%Y-%m-%d %H:%M").to_string()
    } else {
        z.strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// The "not found" of a time spec, in the configured zone and with the oldest snapshot there is
/// (so the administrator knows how far back the history goes).
fn nothing_before(setup: &Setup, source: Option<&str>, at: Timestamp) -> anyhow::Result<E> {
    let tz = &setup.time_zone;
    let (snaps, _) = setup.repo.snapshots()?;
    let oldest = snaps
        .iter()
        .filter(|(_, s)| source.is_none_or(|n| s.source.name == n))
        .map(|(_, s)| s.time)
        .min();
    let of = source.map(|n| format!(" of {n}")).unwrap_or_default();
    let when = format!("{} ({})", local_time(at, tz), zone_name(tz));
    Ok(E::NotFound(match oldest {
        Some(first) => format!(
            "no snapshot{of} was taken at or before {when}: the oldest is from {}; pick a later time",
            local_time(first, tz)
        ),
        None => format!("no snapshot{of} was taken at or before {when}: there is none yet"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_qualified_by_the_source_they_are_asked_for() {
        assert_eq!(qualify("latest", Some("shop")), "latest:shop");
        assert_eq!(
            qualify("latest-verified", Some("shop")),
            "latest-verified:shop"
        );
        assert_eq!(
            qualify("@2026-12-04 18:00", Some("shop")),
            "shop@2026-12-04 18:00"
        );
        assert_eq!(qualify("@yesterday 18:00", None), "@yesterday 18:00");
        assert_eq!(qualify("3fa2c1", Some("shop")), "3fa2c1");
        assert_eq!(qualify("latest:docs", Some("shop")), "latest:docs");
    }

    #[test]
    fn times_are_shown_in_the_zone_without_empty_seconds() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let t: Timestamp = "2026-12-04T17:00:00Z".parse().unwrap();
        assert_eq!(local_time(t, &tz), "2026-12-04 18:00");
        let t: Timestamp = "2026-12-04T17:00:05.5Z".parse().unwrap();
        assert_eq!(local_time(t, &tz), "2026-12-04 18:00:05");
    }
}
