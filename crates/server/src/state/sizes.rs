//! The repository's size over time: one sample a day (the day in the configured time zone),
//! the newest of that day, kept for [`KEEP_DAYS`] days.

use jiff::Timestamp;
use rusqlite::params;

use super::{State, StateError, from_millis, millis};

/// Days of samples kept.
pub const KEEP_DAYS: usize = 400;

/// The repository's size on one day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SizeSample {
    /// `2026-12-07`.
    pub day: String,
    /// When it was measured (the newest measurement of the day).
    pub time: Timestamp,
    pub bytes: u64,
}

impl State {
    /// Records the repository's size measured at `time`, on `day` (`YYYY-MM-DD`), replacing an
    /// older sample of the same day, and forgets samples past the newest [`KEEP_DAYS`].
    pub fn record_size(&self, day: &str, time: Timestamp, bytes: u64) -> Result<(), StateError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO repository_sizes (day, time, bytes) VALUES (?1, ?2, ?3)
             ON CONFLICT(day) DO UPDATE SET time = excluded.time, bytes = excluded.bytes
             WHERE excluded.time >= repository_sizes.time",
            params![day, millis(time), i64::try_from(bytes).unwrap_or(i64::MAX)],
        )?;
        conn.execute(
            "DELETE FROM repository_sizes WHERE day NOT IN
             (SELECT day FROM repository_sizes ORDER BY day DESC LIMIT ?1)",
            params![KEEP_DAYS as i64],
        )?;
        Ok(())
    }

    /// The newest `days` samples, oldest first.
    pub fn sizes(&self, days: usize) -> Result<Vec<SizeSample>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT day, time, bytes FROM
             (SELECT day, time, bytes FROM repository_sizes ORDER BY day DESC LIMIT ?1)
             ORDER BY day",
        )?;
        let rows = stmt.query_map(params![days as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (day, time, bytes) = row?;
            out.push(SizeSample {
                day,
                time: from_millis(time)?,
                bytes: u64::try_from(bytes).unwrap_or(0),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_a_day_the_newest_kept_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        state.record_size("2027-01-15", t(0), 100).unwrap();
        state.record_size("2027-01-15", t(60), 150).unwrap();
        // An older measurement arriving late does not replace a newer one.
        state.record_size("2027-01-15", t(30), 120).unwrap();
        state.record_size("2027-01-16", t(86_400), 90).unwrap();
        let sizes = state.sizes(10).unwrap();
        assert_eq!(
            sizes
                .iter()
                .map(|s| (s.day.as_str(), s.bytes))
                .collect::<Vec<_>>(),
            [("2027-01-15", 150), ("2027-01-16", 90)]
        );
        assert_eq!(state.sizes(1).unwrap()[0].day, "2027-01-16");
    }
}
