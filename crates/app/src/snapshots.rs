//! Which snapshot a spec names. A spec is one of the engine's (an id or its prefix, `latest`,
//! `latest-verified`, `SOURCE@TIME`; see `backstop_engine::spec`), qualified by the source it is
//! asked for: `latest` becomes `latest:SOURCE` and `@TIME` becomes `SOURCE@TIME`. Times are read
//! in the configured time zone, and "no snapshot before that time" is worded in that zone with
//! the oldest snapshot there is.
//!
//! The CLI adds its own handling of a name that is both a source and an item (a note or a usage
//! error naming both); the daemon's picker shows the answer before anything is restored.

use backstop_engine::Error as E;
use backstop_engine::spec::Spec;
use backstop_engine::{Repository, SpecClock};
use backstop_format::manifest::Snapshot;
use backstop_format::{SnapshotId, Timestamp};
use jiff::tz::TimeZone;

/// A resolved spec: the snapshot, the spec as resolved, and the time it was asked for (time
/// specs only).
#[derive(Debug, Clone)]
pub struct Found {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// The spec as resolved (qualified by the source), e.g. `shop@2026-12-04T18:00`.
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

/// Resolves `spec` (for `source`, when given) to one snapshot, reading times in `time_zone`.
/// A snapshot of another source than `source` is refused.
pub fn find(
    repo: &Repository,
    spec: &str,
    source: Option<&str>,
    time_zone: &TimeZone,
) -> anyhow::Result<Found> {
    let wanted = qualify(spec, source);
    let clock = SpecClock {
        now: Timestamp::now(),
        time_zone: time_zone.clone(),
    };
    let parsed = Spec::parse(&wanted, Some(&clock))?;
    let as_of = match &parsed {
        Spec::AtOrBefore(_, at) => Some(*at),
        _ => None,
    };
    let (id, snapshot) = match repo.find_snapshot_at(&wanted, &clock) {
        Err(E::NotFound(_)) if as_of.is_some() => {
            let at = as_of.expect("checked just above");
            return Err(nothing_before(repo, time_zone, parsed.source(), at)?.into());
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

/// What a restore drill without a named snapshot tests: the newest real backup of each source
/// (of `source` only, when given), never a safety snapshot that holds rolled-back state.
/// Nothing to drill is "not found".
pub fn drill_targets(
    repo: &Repository,
    source: Option<&str>,
) -> anyhow::Result<Vec<(SnapshotId, Snapshot)>> {
    let targets = backstop_engine::spec::drill_targets(&repo.snapshots()?.readable, source);
    if targets.is_empty() {
        return Err(E::NotFound(match source {
            Some(source) => format!("no snapshot of source {source:?} to drill"),
            None => "the repository has no snapshots to drill".into(),
        })
        .into());
    }
    Ok(targets)
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
/// (so the reader knows how far back the history goes).
fn nothing_before(
    repo: &Repository,
    tz: &TimeZone,
    source: Option<&str>,
    at: Timestamp,
) -> anyhow::Result<E> {
    let snaps = repo.snapshots()?.readable;
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
