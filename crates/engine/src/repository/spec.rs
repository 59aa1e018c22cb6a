//! Snapshot specs: how a person names a snapshot.
//!
//! - a full id or a unique id prefix (`3fa2c1`);
//! - `latest`, `latest:SOURCE`: the newest snapshot (of that source);
//! - `latest-verified`, `latest-verified:SOURCE`: the newest snapshot whose newest restore drill
//!   passed, never a `pre-restore` safety snapshot (that is the state a restore rolled back);
//! - `SOURCE@TIME`, `@TIME`: the newest snapshot (of that source) taken at or before `TIME`, read
//!   in the configured time zone: `2026-12-04T18:00`, `2026-12-04 18:00`, a date alone (the end
//!   of that day), an RFC 3339 time with an offset, `yesterday 18:00`, `today 9:30`.
//!
//! "Newest" must mean the newest: a snapshot whose manifest cannot be read may be the newest one
//! asked for, so a spec that picks by recency fails with an integrity error that names the
//! damaged snapshots and the newest readable one, rather than silently taking an older one.

use std::collections::HashMap;

use backstop_format::manifest::{BackupKind, Snapshot, SourceKind};
use backstop_format::record::Record;
use backstop_format::{SnapshotId, Timestamp};
use jiff::Zoned;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

use crate::error::{Error, Result};

/// The clock and time zone that a spec's time is read in (passed in, never read here).
#[derive(Debug, Clone)]
pub struct SpecClock {
    pub now: Timestamp,
    pub time_zone: TimeZone,
}

/// A parsed snapshot spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// `latest` or `latest:SOURCE`.
    Latest(Option<String>),
    /// `latest-verified` or `latest-verified:SOURCE`.
    LatestVerified(Option<String>),
    /// `SOURCE@TIME` or `@TIME`: the newest at or before the time.
    AtOrBefore(Option<String>, Timestamp),
    /// A full id or an id prefix, lower case.
    Id(String),
}

impl Spec {
    /// Parses a spec; a time needs `clock` (the error says so when it is `None`).
    pub fn parse(spec: &str, clock: Option<&SpecClock>) -> Result<Self> {
        if let Some(rest) = spec.strip_prefix("latest-verified") {
            return match rest.strip_prefix(':') {
                None if rest.is_empty() => Ok(Spec::LatestVerified(None)),
                Some(s) if !s.is_empty() => Ok(Spec::LatestVerified(Some(s.to_string()))),
                _ => Err(Error::Invalid(format!(
                    "invalid snapshot {spec:?}: use latest-verified or latest-verified:SOURCE"
                ))),
            };
        }
        if let Some(rest) = spec.strip_prefix("latest") {
            return match rest.strip_prefix(':') {
                None if rest.is_empty() => Ok(Spec::Latest(None)),
                Some(s) if !s.is_empty() => Ok(Spec::Latest(Some(s.to_string()))),
                _ => Err(Error::Invalid(format!(
                    "invalid snapshot {spec:?}: use latest or latest:SOURCE"
                ))),
            };
        }
        if let Some((source, time)) = spec.rsplit_once('@') {
            let clock = clock.ok_or_else(|| {
                Error::Invalid(format!(
                    "the snapshot {spec:?} names a time, which needs a time zone here"
                ))
            })?;
            let at = parse_time(time.trim(), clock)?;
            if at > clock.now {
                return Err(Error::Invalid(format!(
                    "{time:?} is in the future ({}): name a time at or before now",
                    at.to_zoned(clock.time_zone.clone())
                        .strftime("%Y-%m-%d %H:%M %Z")
                )));
            }
            let source = (!source.is_empty()).then(|| source.to_string());
            return Ok(Spec::AtOrBefore(source, at));
        }
        let prefix = spec.to_ascii_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "invalid snapshot {spec:?}: give an id, a unique id prefix, latest, latest:SOURCE, latest-verified[:SOURCE] or SOURCE@TIME"
            )));
        }
        Ok(Spec::Id(prefix))
    }

    /// The source a spec names, if any.
    pub fn source(&self) -> Option<&str> {
        match self {
            Spec::Latest(s) | Spec::LatestVerified(s) | Spec::AtOrBefore(s, _) => s.as_deref(),
            Spec::Id(_) => None,
        }
    }

    /// The same rule applied to another source (an id stays an id).
    pub fn for_source(&self, name: &str) -> Spec {
        let name = Some(name.to_string());
        match self {
            Spec::Latest(_) => Spec::Latest(name),
            Spec::LatestVerified(_) => Spec::LatestVerified(name),
            Spec::AtOrBefore(_, at) => Spec::AtOrBefore(name, *at),
            Spec::Id(prefix) => Spec::Id(prefix.clone()),
        }
    }
}

/// The other snapshots a spec that names a source `X` (`latest:X`, `X@TIME`) may mean.
///
/// A backup of a path is filed, unless told otherwise, under the path's last part, which is
/// also the name its item gets: `backstop backup data/shop.db` makes snapshots of source
/// `shop.db` holding the item `shop.db`. So when another source's snapshots hold an item `X` at
/// their top (the configured source `shop` with `path = "data/shop.db"`), `latest:shop.db` may
/// mean the newest copy of that item as well as the newest snapshot of the source `shop.db`, and
/// the two can be different days. For each other source of files or of a database whose pick
/// by the same rule holds a top item named `X`, this returns that pick (by source name). It
/// returns nothing for a spec that names no source. Only the top of a snapshot counts: a file
/// deep in some tree is not what a source name means.
pub fn item_readings(
    spec: &Spec,
    snaps: &[(SnapshotId, Snapshot)],
    drills: &HashMap<SnapshotId, Record>,
) -> Vec<(SnapshotId, Snapshot)> {
    let Some(name) = spec.source() else {
        return Vec::new();
    };
    let mut others: Vec<&str> = snaps
        .iter()
        .map(|(_, s)| s.source.name.as_str())
        .filter(|n| *n != name)
        .collect();
    others.sort_unstable();
    others.dedup();
    others
        .into_iter()
        .filter_map(|other| resolve(&spec.for_source(other), snaps, &[], drills).ok())
        .filter(|(_, s)| holds_at_top(s, name))
        .collect()
}

/// Whether a snapshot of files or of a database holds an item `name` at its top: each path
/// given to such a backup is stored under its last part. (A path given as `.` says nothing
/// here; its item is named after the directory it was in.)
pub fn holds_at_top(s: &Snapshot, name: &str) -> bool {
    matches!(s.source.kind, SourceKind::Files | SourceKind::Sqlite)
        && s.paths.iter().any(|p| last_part(p) == Some(name))
}

/// `data/shop.db` -> `shop.db`, `/srv/app/` -> `app`, `C:\data\x` -> `x`; none for `.`.
fn last_part(path: &str) -> Option<&str> {
    path.trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .filter(|p| !matches!(*p, "" | "." | ".."))
}

/// The snapshots a scheduled or `--latest` restore drill checks: the newest of each source (or
/// of `source`) that is not a `pre-restore` safety snapshot. A safety snapshot holds the state a
/// restore rolled back; drilling it instead of the newest real backup would leave that backup
/// unproven. Newest first.
pub fn drill_targets(
    snaps: &[(SnapshotId, Snapshot)],
    source: Option<&str>,
) -> Vec<(SnapshotId, Snapshot)> {
    let mut out: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for (id, s) in snaps.iter().rev() {
        if s.kind == BackupKind::PreRestore
            || source.is_some_and(|n| s.source.name != n)
            || out.iter().any(|(_, o)| o.source.name == s.source.name)
        {
            continue;
        }
        out.push((*id, s.clone()));
    }
    out
}

/// Reads a spec's time in the clock's zone.
fn parse_time(s: &str, clock: &SpecClock) -> Result<Timestamp> {
    let bad = |why: String| {
        Error::Invalid(format!(
            "invalid snapshot time {s:?}: {why}; write e.g. 2026-12-04T18:00, \"2026-12-04 18:00\", 2026-12-04 or \"yesterday 18:00\""
        ))
    };
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    let today = clock.now.to_zoned(clock.time_zone.clone()).date();
    let lower = s.to_ascii_lowercase();
    let (day, rest) = if let Some(r) = lower.strip_prefix("yesterday") {
        (Some(today.yesterday().map_err(|e| bad(e.to_string()))?), r)
    } else if let Some(r) = lower.strip_prefix("today") {
        (Some(today), r)
    } else {
        (None, lower.as_str())
    };
    let civil = match day {
        Some(day) => match rest.trim() {
            "" => end_of(day),
            t => day.to_datetime(parse_clock_time(t).map_err(&bad)?),
        },
        // A date alone means the whole day (its last instant), not its midnight.
        None => match s.parse::<Date>() {
            Ok(d) if s.len() == 10 => end_of(d),
            _ => s.parse::<DateTime>().map_err(|e| bad(e.to_string()))?,
        },
    };
    let zoned: Zoned = civil
        .to_zoned(clock.time_zone.clone())
        .map_err(|e| bad(e.to_string()))?;
    Ok(zoned.timestamp())
}

/// `18:00`, `9:30`, `18:00:30`.
fn parse_clock_time(t: &str) -> std::result::Result<Time, String> {
    let padded = if t.len() == 4 && t.as_bytes()[1] == b':' {
        format!("0{t}")
    } else {
        t.to_string()
    };
    padded.parse::<Time>().map_err(|e| e.to_string())
}

/// The last instant of a day.
fn end_of(d: Date) -> DateTime {
    d.to_datetime(Time::MAX)
}

/// A snapshot that cannot be read: its object name and why.
pub type Damaged<'a> = &'a [(String, Error)];

/// Resolves a parsed spec against the snapshot list (oldest first), the unreadable snapshots
/// and each snapshot's newest drill.
pub fn resolve(
    spec: &Spec,
    snaps: &[(SnapshotId, Snapshot)],
    damaged: Damaged<'_>,
    drills: &HashMap<SnapshotId, Record>,
) -> Result<(SnapshotId, Snapshot)> {
    let of_source = |s: &Snapshot| spec.source().is_none_or(|n| s.source.name == n);
    let newest = |pick: &dyn Fn(&SnapshotId, &Snapshot) -> bool| {
        snaps
            .iter()
            .rev()
            .find(|(id, s)| of_source(s) && pick(id, s))
            .cloned()
    };
    match spec {
        Spec::Id(prefix) => by_id(prefix, snaps, damaged),
        Spec::Latest(source) => {
            let found = newest(&|_, _| true);
            refuse_if_damaged(spec, snaps, damaged, found.as_ref(), |_| true)?;
            found.ok_or_else(|| match source {
                Some(n) => Error::NotFound(format!("no snapshot of source {n:?}")),
                None => Error::NotFound("the repository has no snapshots yet".into()),
            })
        }
        Spec::LatestVerified(source) => {
            let passed = |id: &SnapshotId| drills.get(id).is_some_and(|r| r.passed);
            let found = newest(&|id, s| s.kind != BackupKind::PreRestore && passed(id));
            // Only a damaged snapshot that passed a drill could have been the answer.
            refuse_if_damaged(spec, snaps, damaged, found.as_ref(), |name| {
                SnapshotId::from_hex(name).is_ok_and(|id| passed(&id))
            })?;
            found.ok_or_else(|| {
                Error::NotFound(format!(
                    "no snapshot{} has passed a restore drill yet (safety snapshots taken before a restore do not count)",
                    source.as_ref().map(|n| format!(" of {n}")).unwrap_or_default()
                ))
            })
        }
        Spec::AtOrBefore(source, at) => {
            let found = newest(&|_, s| s.time <= *at);
            refuse_if_damaged(spec, snaps, damaged, found.as_ref(), |_| true)?;
            found.ok_or_else(|| {
                Error::NotFound(format!(
                    "no snapshot{} was taken at or before {at}",
                    source
                        .as_ref()
                        .map(|n| format!(" of {n}"))
                        .unwrap_or_default()
                ))
            })
        }
    }
}

fn by_id(
    prefix: &str,
    snaps: &[(SnapshotId, Snapshot)],
    damaged: Damaged<'_>,
) -> Result<(SnapshotId, Snapshot)> {
    let matches: Vec<_> = snaps
        .iter()
        .filter(|(id, _)| id.to_hex().starts_with(prefix))
        .collect();
    let broken: Vec<_> = damaged
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .collect();
    match (matches.as_slice(), broken.as_slice()) {
        ([one], []) => Ok((*one).clone()),
        ([], [(name, e)]) => Err(Error::DamagedSnapshot(format!(
            "snapshot {name} is damaged: {e}"
        ))),
        ([], []) => Err(Error::NotFound(format!("no snapshot with id {prefix}"))),
        (m, b) => Err(Error::Invalid(format!(
            "snapshot prefix {prefix} is ambiguous: it matches {} snapshots; give more digits",
            m.len() + b.len()
        ))),
    }
}

/// Fails when a damaged snapshot could be the one a recency spec asks for.
///
/// A damaged snapshot's own time and source cannot be read, but a readable snapshot that names
/// it as its parent tells both: the same source, and older. Such a one cannot be the answer when
/// its child is of another source than asked, or no newer than the snapshot found.
fn refuse_if_damaged(
    spec: &Spec,
    snaps: &[(SnapshotId, Snapshot)],
    damaged: Damaged<'_>,
    found: Option<&(SnapshotId, Snapshot)>,
    could_be: impl Fn(&str) -> bool,
) -> Result<()> {
    let ruled_out = |name: &str| {
        snaps.iter().any(|(_, child)| {
            child.parent.is_some_and(|p| p.to_hex() == name)
                && (spec.source().is_some_and(|n| child.source.name != n)
                    || found.is_some_and(|(_, f)| child.time <= f.time))
        })
    };
    let suspects: Vec<&(String, Error)> = damaged
        .iter()
        .filter(|(name, _)| could_be(name) && !ruled_out(name))
        .collect();
    if suspects.is_empty() {
        return Ok(());
    }
    let list = suspects
        .iter()
        .map(|(name, e)| format!("{} ({e})", &name[..name.len().min(12)]))
        .collect::<Vec<_>>()
        .join(", ");
    let which = match spec.source() {
        Some(s) => format!(" of {s}"),
        None => String::new(),
    };
    let intact = match found {
        Some((id, s)) => format!(
            "; the newest readable match{which} is {} from {}",
            id.short(),
            s.time
        ),
        None => String::new(),
    };
    Err(Error::DamagedSnapshot(format!(
        "{} snapshot(s) cannot be read and may be the one asked for{which}: {list}{intact}",
        suspects.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> SpecClock {
        SpecClock {
            now: "2026-12-05T10:00:00Z".parse().unwrap(),
            time_zone: TimeZone::get("Europe/Berlin").unwrap(),
        }
    }

    #[test]
    fn times_are_read_in_the_configured_zone() {
        let c = clock();
        let at = |s: &str| match Spec::parse(s, Some(&c)).unwrap() {
            Spec::AtOrBefore(src, t) => (src, t.to_string()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            at("shop@2026-12-04T18:00"),
            (Some("shop".into()), "2026-12-04T17:00:00Z".into())
        );
        assert_eq!(at("shop@2026-12-04 18:00").1, "2026-12-04T17:00:00Z");
        assert_eq!(at("shop@yesterday 18:00").1, "2026-12-04T17:00:00Z");
        assert_eq!(at("shop@today 9:30").1, "2026-12-05T08:30:00Z");
        assert_eq!(at("@2026-12-04").1, "2026-12-04T22:59:59.999999999Z");
        assert_eq!(at("a@b@2026-12-04T18:00Z").0, Some("a@b".into()));
        assert_eq!(at("shop@2026-12-04T18:00Z").1, "2026-12-04T18:00:00Z");
    }

    #[test]
    fn a_future_or_garbled_time_is_an_error() {
        let c = clock();
        for s in [
            "shop@2026-12-06T00:00",
            "shop@tomorrow",
            "shop@18:00 yesterday",
            "shop@",
        ] {
            let e = Spec::parse(s, Some(&c)).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{s}: {e}");
        }
        assert!(
            Spec::parse("shop@2026-12-06", Some(&c))
                .unwrap_err()
                .to_string()
                .contains("future")
        );
        assert!(Spec::parse("shop@2026-12-04", None).is_err());
    }

    /// A snapshot of `source` (of `kind`) at `time` given `paths`.
    fn snap(source: &str, kind: SourceKind, time: &str, paths: &[&str]) -> (SnapshotId, Snapshot) {
        let snapshot = Snapshot {
            version: backstop_format::manifest::SNAPSHOT_VERSION,
            time: time.parse().unwrap(),
            host: "h".into(),
            source: backstop_format::manifest::SourceRef {
                name: source.into(),
                kind,
            },
            kind: BackupKind::Manual,
            description: None,
            tags: vec![],
            ticket: None,
            parent: None,
            paths: paths.iter().map(|p| p.to_string()).collect(),
            items: serde_json::from_str(r#"{"size":0,"hash":""}"#).unwrap(),
            stats: Default::default(),
            warnings: vec![],
            program: "test".into(),
            repaired: None,
            excludes: Default::default(),
        };
        (SnapshotId::random(), snapshot)
    }

    #[test]
    fn a_source_name_that_is_another_sources_top_item_has_another_reading() {
        // `backup data/shop.db` before the source was configured, then the configured source
        // `shop` (path data/shop.db), newer; a folder source holding a deeper shop.db; a command.
        let snaps = vec![
            snap(
                "shop.db",
                SourceKind::Sqlite,
                "2026-12-01T10:00:00Z",
                &["/srv/data/shop.db"],
            ),
            snap("app", SourceKind::Files, "2026-12-02T10:00:00Z", &["app/"]),
            snap(
                "shop",
                SourceKind::Sqlite,
                "2026-12-03T10:00:00Z",
                &["/srv/data/shop.db"],
            ),
            snap(
                "shop",
                SourceKind::Sqlite,
                "2026-12-05T10:00:00Z",
                &["/srv/data/shop.db"],
            ),
            snap(
                "dump",
                SourceKind::Command,
                "2026-12-05T11:00:00Z",
                &["shop.db"],
            ),
        ];
        let none = HashMap::new();
        let readings = |spec: &str| -> Vec<SnapshotId> {
            item_readings(&Spec::parse(spec, Some(&clock())).unwrap(), &snaps, &none)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        // The newest copy of the item is shop's newest snapshot, not the older source's.
        assert_eq!(readings("latest:shop.db"), vec![snaps[3].0]);
        // By the same rule: at or before a time, shop's snapshot of that time.
        assert_eq!(readings("shop.db@2026-12-04"), vec![snaps[2].0]);
        assert_eq!(readings("shop.db@2026-12-02"), Vec::<SnapshotId>::new());
        // A name no other source holds at its top, a source's own name, an id: nothing else.
        assert!(readings("latest:app").is_empty());
        assert!(readings("latest:shop").is_empty());
        assert!(readings("latest").is_empty());
        assert!(readings(&snaps[0].0.to_hex()).is_empty());
        // The item of a folder source is its top directory.
        let mut with_app = snaps.clone();
        with_app.push(snap(
            "app",
            SourceKind::Sqlite,
            "2026-12-04T10:00:00Z",
            &["x/app"],
        ));
        let found = item_readings(&Spec::Latest(Some("app".into())), &with_app, &none);
        assert!(
            found.is_empty(),
            "app's own snapshots are not another reading"
        );
        // latest-verified picks among drilled snapshots only.
        assert!(readings("latest-verified:shop.db").is_empty());
    }

    #[test]
    fn a_path_is_stored_under_its_last_part() {
        assert_eq!(last_part("data/shop.db"), Some("shop.db"));
        assert_eq!(last_part("/srv/app/"), Some("app"));
        assert_eq!(last_part("C:\\data\\shop.db"), Some("shop.db"));
        assert_eq!(last_part("shop.db"), Some("shop.db"));
        assert_eq!(last_part("."), None);
        assert_eq!(last_part("/"), None);
    }

    #[test]
    fn plain_specs_parse_as_before() {
        assert_eq!(Spec::parse("latest", None).unwrap(), Spec::Latest(None));
        assert_eq!(
            Spec::parse("latest:shop", None).unwrap(),
            Spec::Latest(Some("shop".into()))
        );
        assert_eq!(
            Spec::parse("latest-verified:shop", None).unwrap(),
            Spec::LatestVerified(Some("shop".into()))
        );
        assert_eq!(Spec::parse("3FA2", None).unwrap(), Spec::Id("3fa2".into()));
        for bad in ["latest:", "latestx", "latest-verified:", "xyz", ""] {
            assert!(Spec::parse(bad, None).is_err(), "{bad}");
        }
    }
}
