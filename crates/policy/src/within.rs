//! `--keep-within`: a calendar duration such as `30d`, `1y6m` or `2w12h`.
//!
//! The syntax is restic's (`6y5m234d37h`, see restic `internal/data/duration.go`) plus weeks
//! (`w`, seven days), which restic does not accept. Unlike restic, a unit may appear only once,
//! numbers cannot be negative and a zero duration is refused: each of those is more likely a
//! typo than an intention, and a typo here decides what gets deleted.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PolicyError;

/// What every duration error message says about the accepted form.
const ACCEPTED: &str = "expected numbers with units y (years), m (months), w (weeks), d (days) \
                        or h (hours), each unit at most once, combined like \"30d\", \"1y6m\" or \"2w12h\"";

/// A calendar duration for `keep_within`: years, months, weeks, days and hours.
///
/// Parsed from and shown as the canonical string (`"1y6m2w3d12h"`, units in that order, zero
/// parts left out); serde uses that string too.
///
/// ```
/// use backstop_policy::KeepWithin;
///
/// let d: KeepWithin = "12h1y".parse().unwrap();
/// assert_eq!(d.to_string(), "1y12h");
/// assert!("30x".parse::<KeepWithin>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeepWithin {
    pub years: u32,
    pub months: u32,
    pub weeks: u32,
    pub days: u32,
    pub hours: u32,
}

impl KeepWithin {
    /// Whether every part is zero (such a rule keeps nothing and counts as no rule).
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The cut-off for a group whose newest snapshot (not in the future) is `latest`: snapshots
    /// strictly after it are within. `None` when the cut-off lies before the earliest time jiff
    /// can represent, so that every snapshot is within.
    ///
    /// This is restic's arithmetic (`internal/data/snapshot_policy.go`):
    /// `latest.AddDate(-Years, -Months, -Days).Add(time.Hour * -Hours)`. Go's `AddDate` does not
    /// clamp the day of the month but carries it over: one month before 31 March is "31
    /// February", which is 3 March (2 March in a leap year). Years, months and days are
    /// subtracted from the wall-clock time in `tz` (a day is a calendar day, 23 or 25 hours
    /// across a DST change), hours are then subtracted as exact hours.
    pub(crate) fn cutoff(&self, latest: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let dt = tz.to_datetime(latest);
        let months = i64::from(dt.year()) * 12 + i64::from(dt.month())
            - 1
            - (i64::from(self.years) * 12 + i64::from(self.months));
        let year = i16::try_from(months.div_euclid(12)).ok()?;
        let month = i8::try_from(months.rem_euclid(12) + 1).ok()?;
        let first = Date::new(year, month, 1).ok()?;
        let day_offset = i64::from(dt.day()) - 1 - i64::from(self.days) - 7 * i64::from(self.weeks);
        let date = first
            .checked_add(Span::new().try_days(day_offset).ok()?)
            .ok()?;
        let zoned = tz.to_zoned(date.to_datetime(dt.time())).ok()?;
        zoned
            .timestamp()
            .checked_sub(SignedDuration::from_hours(i64::from(self.hours)))
            .ok()
    }
}

impl fmt::Display for KeepWithin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        for (n, unit) in parts {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        if self.is_zero() {
            f.write_str("0h")?;
        }
        Ok(())
    }
}

impl FromStr for KeepWithin {
    type Err = PolicyError;

    fn from_str(input: &str) -> Result<Self, PolicyError> {
        let bad = |problem: String| PolicyError::InvalidDuration {
            input: input.to_string(),
            problem: format!("{problem}; {ACCEPTED}"),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(bad("it is empty".to_string()));
        }
        let mut d = KeepWithin::default();
        let mut seen = String::new();
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                let c = rest.chars().next().expect("rest is not empty");
                return Err(bad(format!("expected a number, found {c:?}")));
            }
            let n: u32 = rest[..digits]
                .parse()
                .map_err(|_| bad(format!("the number {} is too large", &rest[..digits])))?;
            rest = &rest[digits..];
            let Some(unit) = rest.chars().next() else {
                return Err(bad(format!("the number {n} has no unit")));
            };
            let slot = match unit {
                'y' => &mut d.years,
                'm' => &mut d.months,
                'w' => &mut d.weeks,
                'd' => &mut d.days,
                'h' => &mut d.hours,
                other => return Err(bad(format!("unknown unit {other:?} after {n}"))),
            };
            if seen.contains(unit) {
                return Err(bad(format!("the unit {unit:?} appears twice")));
            }
            seen.push(unit);
            *slot = n;
            rest = &rest[unit.len_utf8()..];
        }
        if d.is_zero() {
            return Err(bad("it is zero, which would keep nothing".to_string()));
        }
        Ok(d)
    }
}

impl Serialize for KeepWithin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeepWithin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn w(years: u32, months: u32, weeks: u32, days: u32, hours: u32) -> KeepWithin {
        KeepWithin {
            years,
            months,
            weeks,
            days,
            hours,
        }
    }

    #[rstest]
    #[case("30d", w(0, 0, 0, 30, 0), "30d")]
    #[case("1y6m", w(1, 6, 0, 0, 0), "1y6m")]
    #[case("2w", w(0, 0, 2, 0, 0), "2w")]
    #[case("12h", w(0, 0, 0, 0, 12), "12h")]
    #[case("1y5m7d2h", w(1, 5, 0, 7, 2), "1y5m7d2h")]
    #[case("2w12h", w(0, 0, 2, 0, 12), "2w12h")]
    #[case("12h1y", w(1, 0, 0, 0, 12), "1y12h")]
    #[case(" 7d ", w(0, 0, 0, 7, 0), "7d")]
    #[case("0y3d", w(0, 0, 0, 3, 0), "3d")]
    #[case("14d", w(0, 0, 0, 14, 0), "14d")]
    fn parses_and_shows_canonical(
        #[case] input: &str,
        #[case] want: KeepWithin,
        #[case] shown: &str,
    ) {
        let got: KeepWithin = input.parse().unwrap();
        assert_eq!(got, want);
        assert_eq!(got.to_string(), shown);
        assert_eq!(shown.parse::<KeepWithin>().unwrap(), want);
    }

    #[rstest]
    #[case("", "it is empty")]
    #[case("   ", "it is empty")]
    #[case("30", "the number 30 has no unit")]
    #[case("d", "expected a number, found 'd'")]
    #[case("30x", "unknown unit 'x' after 30")]
    #[case("30M", "unknown unit 'M' after 30")]
    #[case("1d2d", "the unit 'd' appears twice")]
    #[case("-3d", "expected a number, found '-'")]
    #[case("1.5d", "unknown unit '.' after 1")]
    #[case("3 d", "unknown unit ' ' after 3")]
    #[case("0d", "it is zero")]
    #[case("99999999999d", "the number 99999999999 is too large")]
    fn rejects_with_a_clear_message(#[case] input: &str, #[case] problem: &str) {
        let msg = input.parse::<KeepWithin>().unwrap_err().to_string();
        assert!(msg.contains(problem), "{msg}");
        assert!(
            msg.contains(&format!("{input:?}")),
            "names the input: {msg}"
        );
        assert!(msg.contains("\"1y6m\""), "shows the accepted form: {msg}");
    }

    #[test]
    fn serde_is_the_string() {
        let d = w(1, 0, 2, 0, 3);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1y2w3h\"");
        let back: KeepWithin = serde_json::from_str("\"1y2w3h\"").unwrap();
        assert_eq!(back, d);
        let err = serde_json::from_str::<KeepWithin>("\"3q\"").unwrap_err();
        assert!(err.to_string().contains("unknown unit 'q'"), "{err}");
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[rstest]
    // 31 March minus one month is "31 February", carried over to 3 March as Go does.
    #[case("2025-03-31T12:00:00Z", "1m", "2025-03-03T12:00:00Z")]
    #[case("2024-03-31T12:00:00Z", "1m", "2024-03-02T12:00:00Z")]
    #[case("2025-12-31T23:00:00Z", "30d", "2025-12-01T23:00:00Z")]
    #[case("2025-12-31T23:00:00Z", "2w12h", "2025-12-17T11:00:00Z")]
    #[case("2025-12-31T23:00:00Z", "1y", "2024-12-31T23:00:00Z")]
    #[case("2025-01-15T00:00:00Z", "1m", "2024-12-15T00:00:00Z")]
    #[case("2024-02-29T06:00:00Z", "1y", "2023-03-01T06:00:00Z")]
    #[case("2025-03-01T00:00:00Z", "1d1h", "2025-02-27T23:00:00Z")]
    fn cutoff_follows_go_add_date(#[case] latest: &str, #[case] within: &str, #[case] want: &str) {
        let d: KeepWithin = within.parse().unwrap();
        assert_eq!(d.cutoff(ts(latest), &TimeZone::UTC), Some(ts(want)));
    }

    #[test]
    fn cutoff_days_are_calendar_days_in_the_zone() {
        // Berlin: 2025-03-30 has 23 hours. One day before 31 March 12:00 CEST is 30 March 12:00
        // CEST, 24 hours earlier; two days before is 29 March 12:00 CET, 47 hours earlier.
        let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let latest = ts("2025-03-31T10:00:00Z");
        let one: KeepWithin = "1d".parse().unwrap();
        let two: KeepWithin = "2d".parse().unwrap();
        assert_eq!(one.cutoff(latest, &tz), Some(ts("2025-03-30T10:00:00Z")));
        assert_eq!(two.cutoff(latest, &tz), Some(ts("2025-03-29T11:00:00Z")));
    }

    #[test]
    fn cutoff_before_the_representable_range_is_none() {
        let d: KeepWithin = "20000y".parse().unwrap();
        assert_eq!(d.cutoff(ts("2025-01-01T00:00:00Z"), &TimeZone::UTC), None);
        // u32::MAX hours is about 490,000 years.
        let h = w(0, 0, 0, 0, u32::MAX);
        assert_eq!(h.cutoff(ts("2025-01-01T00:00:00Z"), &TimeZone::UTC), None);
    }
}
