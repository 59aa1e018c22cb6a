//! The job history: one row per run, inserted when it starts and replaced when it ends.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, params};

use super::{JobRecord, State, StateError, from_millis, millis, sql_limit};

impl State {
    /// Records a job run, replacing any earlier record with the same id.
    pub fn record_job(&self, j: &JobRecord) -> Result<(), StateError> {
        let detail = serde_json::to_string(&j.detail)
            .map_err(|e| StateError::Invalid(format!("job detail cannot be stored: {e}")))?;
        let figures = serde_json::to_string(&j.figures)
            .map_err(|e| StateError::Invalid(format!("job figures cannot be stored: {e}")))?;
        self.conn().execute(
            "INSERT INTO jobs (id, kind, source, triggered_by, started, finished, outcome, message, detail, figures)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, source = excluded.source,
                 triggered_by = excluded.triggered_by, started = excluded.started,
                 finished = excluded.finished, outcome = excluded.outcome,
                 message = excluded.message, detail = excluded.detail,
                 figures = excluded.figures",
            params![
                j.id,
                j.kind,
                j.source,
                j.trigger,
                millis(j.started),
                j.finished.map(millis),
                j.outcome,
                j.message,
                detail,
                figures
            ],
        )?;
        Ok(())
    }

    /// The newest `limit` job runs, of one source or of all, newest start first.
    pub fn jobs(&self, source: Option<&str>, limit: usize) -> Result<Vec<JobRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "{JOB_SELECT} WHERE (?1 IS NULL OR source = ?1)
             ORDER BY started DESC, rowid DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![source, sql_limit(limit)], job_row)?;
        rows.map(|row| job_record(row?)).collect()
    }

    /// One job of the history by its id.
    pub fn job(&self, id: &str) -> Result<Option<JobRecord>, StateError> {
        let row = self
            .conn()
            .query_row(&format!("{JOB_SELECT} WHERE id = ?1"), [id], job_row)
            .optional()?;
        row.map(job_record).transpose()
    }

    /// The finished runs of `kind` for `source` that started at or after `since`, the newest
    /// `limit` of them, oldest first: (started, finished, outcome).
    pub fn runs_since(
        &self,
        source: &str,
        kind: &str,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, Timestamp, String)>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT started, finished, outcome FROM
             (SELECT started, finished, outcome, rowid FROM jobs
              WHERE source = ?1 AND kind = ?2 AND started >= ?3 AND finished IS NOT NULL
              ORDER BY started DESC, rowid DESC LIMIT ?4)
             ORDER BY started, rowid",
        )?;
        let rows = stmt.query_map(
            params![source, kind, millis(since), sql_limit(limit)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (started, finished, outcome) = row?;
            out.push((from_millis(started)?, from_millis(finished)?, outcome));
        }
        Ok(out)
    }

    /// The newest run of `kind` for `source`, optionally only with this `outcome`.
    pub fn last_job(
        &self,
        source: &str,
        kind: &str,
        outcome: Option<&str>,
    ) -> Result<Option<JobRecord>, StateError> {
        let row = self
            .conn()
            .query_row(
                &format!(
                    "{JOB_SELECT} WHERE source = ?1 AND kind = ?2 AND (?3 IS NULL OR outcome = ?3)
                     ORDER BY started DESC, rowid DESC LIMIT 1"
                ),
                params![source, kind, outcome],
                job_row,
            )
            .optional()?;
        row.map(job_record).transpose()
    }
}

const JOB_SELECT: &str = "SELECT id, kind, source, triggered_by, started, finished, outcome, \
                          message, detail, figures FROM jobs";

/// A job row with times and detail still raw, converted by [`job_record`].
struct JobRow {
    record: JobRecord,
    started: i64,
    finished: Option<i64>,
    detail: String,
    figures: String,
}

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        record: JobRecord {
            id: r.get(0)?,
            kind: r.get(1)?,
            source: r.get(2)?,
            trigger: r.get(3)?,
            started: Timestamp::UNIX_EPOCH,
            finished: None,
            outcome: r.get(6)?,
            message: r.get(7)?,
            detail: serde_json::Value::Null,
            figures: Default::default(),
        },
        started: r.get(4)?,
        finished: r.get(5)?,
        detail: r.get(8)?,
        figures: r.get(9)?,
    })
}

fn job_record(row: JobRow) -> Result<JobRecord, StateError> {
    let detail = serde_json::from_str(&row.detail)
        .map_err(|e| StateError::Corrupt(format!("detail of job {:?}: {e}", row.record.id)))?;
    let figures = serde_json::from_str(&row.figures)
        .map_err(|e| StateError::Corrupt(format!("figures of job {:?}: {e}", row.record.id)))?;
    Ok(JobRecord {
        started: from_millis(row.started)?,
        finished: row.finished.map(from_millis).transpose()?,
        detail,
        figures,
        ..row.record
    })
}
