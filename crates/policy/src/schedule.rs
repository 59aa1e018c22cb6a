//! When a job runs, and when a source is overdue: pure arithmetic on a clock passed in.
//!
//! A schedule is an interval (`every = "6h"`: the next run is one interval after the last
//! one) or a cron pattern in the configured time zone (`cron = "0 */6 * * *"`: the next run is
//! the first matching minute after the last one). A run missed while the machine was off is
//! due at once, and made up once: after it runs, the next run follows from that run.

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::PolicyError;

/// How often something runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A fixed interval after the previous run.
    Every(SignedDuration),
    /// The minutes a cron pattern (5 fields, or 6 with seconds) matches, in the time zone.
    Cron {
        pattern: String,
        cron: Box<croner::Cron>,
    },
}

/// Parses an interval such as `6h`, `90m`, `1d`, `1w` or `1h30m` (units w, d, h, m, s, each
/// at most once, largest first).
pub fn parse_interval(s: &str) -> Result<SignedDuration, PolicyError> {
    let bad = |problem: &str| PolicyError::InvalidDuration {
        input: s.to_string(),
        problem: format!("{problem}; write a number and a unit, like 6h, 30m, 1d or 1h30m"),
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    let units = [
        ("w", 7 * 86_400),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ];
    let mut rest = t;
    let mut next_unit = 0;
    let mut secs: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad("a number is missing"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let Some(pos) = units[next_unit..]
            .iter()
            .position(|(u, _)| rest.starts_with(u))
            .map(|p| p + next_unit)
        else {
            return Err(bad("a unit is missing, unknown, repeated or out of order"));
        };
        secs = n
            .checked_mul(units[pos].1)
            .and_then(|v| secs.checked_add(v))
            .ok_or_else(|| bad("the number is too large"))?;
        rest = &rest[units[pos].0.len()..];
        next_unit = pos + 1;
    }
    if secs <= 0 {
        return Err(bad("it must be longer than zero"));
    }
    Ok(SignedDuration::from_secs(secs))
}

/// An interval in the shortest form `parse_interval` reads back.
pub fn format_interval(d: SignedDuration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (u, n) in [
        ("w", 7 * 86_400),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ] {
        if secs >= n {
            out.push_str(&format!("{}{u}", secs / n));
            secs %= n;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

impl Schedule {
    /// An interval schedule from `every = "..."`.
    pub fn every(s: &str) -> Result<Self, PolicyError> {
        Ok(Schedule::Every(parse_interval(s)?))
    }

    /// A cron schedule from `cron = "..."`.
    pub fn cron(s: &str) -> Result<Self, PolicyError> {
        let cron = croner::Cron::from_str(s.trim()).map_err(|e| PolicyError::InvalidSchedule {
            input: s.to_string(),
            problem: format!(
                "{e}; write five fields: minute hour day-of-month month day-of-week, like \"0 */6 * * *\""
            ),
        })?;
        Ok(Schedule::Cron {
            pattern: s.trim().to_string(),
            cron: Box::new(cron),
        })
    }

    /// The first run after `last`; with no run yet, now (a new source is backed up at once).
    pub fn next_run(&self, last: Option<Timestamp>, now: Timestamp, tz: &TimeZone) -> Timestamp {
        let Some(last) = last else {
            return now;
        };
        match self {
            Schedule::Every(d) => last.saturating_add(*d).unwrap_or(Timestamp::MAX),
            Schedule::Cron { cron, .. } => cron
                .find_next_occurrence(&last.to_zoned(tz.clone()), false)
                .map(|z| z.timestamp())
                // A pattern that never matches again (a date in the past): never due.
                .unwrap_or(Timestamp::MAX),
        }
    }

    /// Whether a run is due at `now`: the next run after `last` has come (a run missed while
    /// the machine was off included).
    pub fn is_due(&self, last: Option<Timestamp>, now: Timestamp, tz: &TimeZone) -> bool {
        self.next_run(last, now, tz) <= now
    }

    /// The usual time between runs, around `now`: the interval, or the gap between the cron
    /// pattern's next two matches.
    pub fn period(&self, now: Timestamp, tz: &TimeZone) -> SignedDuration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron { cron, .. } => {
                let z = now.to_zoned(tz.clone());
                let a = cron.find_next_occurrence(&z, false);
                let b = a
                    .as_ref()
                    .ok()
                    .and_then(|a| cron.find_next_occurrence(a, false).ok());
                match (a, b) {
                    (Ok(a), Some(b)) => b.timestamp().duration_since(a.timestamp()),
                    _ => SignedDuration::from_hours(24),
                }
            }
        }
    }

    /// When a source whose last success was `last` counts as overdue: half a period (at least
    /// 15 minutes) after its next run should have happened.
    pub fn overdue_at(&self, last: Option<Timestamp>, now: Timestamp, tz: &TimeZone) -> Timestamp {
        let grace = (self.period(now, tz) / 2).max(SignedDuration::from_mins(15));
        match last {
            None => now,
            Some(_) => self
                .next_run(last, now, tz)
                .saturating_add(grace)
                .unwrap_or(Timestamp::MAX),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", format_interval(*d)),
            Schedule::Cron { pattern, .. } => write!(f, "cron {pattern}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn intervals_parse_and_print() {
        for (s, secs, back) in [
            ("6h", 21_600, "6h"),
            ("90m", 5_400, "1h30m"),
            ("1h30m", 5_400, "1h30m"),
            ("1d", 86_400, "1d"),
            ("2w", 1_209_600, "2w"),
            (" 15m ", 900, "15m"),
        ] {
            let d = parse_interval(s).unwrap();
            assert_eq!(d.as_secs(), secs, "{s}");
            assert_eq!(format_interval(d), back);
        }
        for bad in ["", "6", "h", "6x", "6h6h", "30m1h", "0h", "-1h", "6 h"] {
            let e = parse_interval(bad).unwrap_err().to_string();
            assert!(e.contains("6h"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_runs_one_interval_after_the_last_and_makes_up_a_missed_run_once() {
        let s = Schedule::every("6h").unwrap();
        let tz = TimeZone::UTC;
        let now = ts("2026-01-01T12:00:00Z");
        assert_eq!(s.next_run(None, now, &tz), now, "never run: due now");
        let last = ts("2026-01-01T09:00:00Z");
        assert_eq!(s.next_run(Some(last), now, &tz), ts("2026-01-01T15:00:00Z"));
        assert!(!s.is_due(Some(last), now, &tz));
        // Off for two days: due once, and after that run the next is 6 h later.
        let later = ts("2026-01-03T10:00:00Z");
        assert!(s.is_due(Some(last), later, &tz));
        assert!(!s.is_due(Some(later), later, &tz));
        assert_eq!(
            s.next_run(Some(later), later, &tz),
            ts("2026-01-03T16:00:00Z")
        );
        assert_eq!(s.period(now, &tz).as_hours(), 6);
        assert_eq!(
            s.overdue_at(Some(last), now, &tz),
            ts("2026-01-01T18:00:00Z"),
            "next run + half a period"
        );
    }

    #[test]
    fn cron_follows_the_time_zone() {
        let s = Schedule::cron("0 2 * * *").unwrap();
        let last = ts("2026-03-01T12:00:00Z");
        let now = ts("2026-03-01T12:00:01Z");
        assert_eq!(
            s.next_run(Some(last), now, &TimeZone::UTC),
            ts("2026-03-02T02:00:00Z")
        );
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            s.next_run(Some(last), now, &berlin),
            ts("2026-03-02T01:00:00Z"),
            "02:00 in Berlin is 01:00 UTC in winter"
        );
        assert_eq!(s.period(now, &TimeZone::UTC).as_hours(), 24);
        let six = Schedule::cron("0 */6 * * *").unwrap();
        assert_eq!(
            six.next_run(Some(ts("2026-03-01T06:00:00Z")), now, &TimeZone::UTC),
            ts("2026-03-01T12:00:00Z")
        );
        assert!(six.is_due(Some(ts("2026-03-01T06:00:00Z")), now, &TimeZone::UTC));
        assert_eq!(six.to_string(), "cron 0 */6 * * *");
        let e = Schedule::cron("every six hours").unwrap_err().to_string();
        assert!(e.contains("0 */6 * * *"), "{e}");
    }
}
