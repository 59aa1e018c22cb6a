//! The audit log: who did what, when. Repeated failures collapse into one row with a count,
//! so a flood of bad logins or unknown tokens costs a row per kind of failure and hour, not a
//! row per request; rows older than the daemon's retention are deleted.

use jiff::{SignedDuration, Timestamp};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{AuditEntry, State, StateError, from_millis, millis, secret_hash, sql_limit};

/// A failure equal to one at most this long before it is counted there instead of added.
const COLLAPSE_WINDOW: SignedDuration = SignedDuration::from_hours(1);

/// One row of the audit log as listed: an entry and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// The entry; its `time` is the newest occurrence.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// How many times it happened (repeated failures are collapsed), at least 1.
    pub count: u64,
    /// The first occurrence (equal to `time` when `count` is 1).
    pub first: Timestamp,
}

const AUDIT_SELECT: &str = "SELECT time, actor, action, target, outcome, detail, count, COALESCE(first_time, time) FROM audit";

impl State {
    /// Appends an entry to the audit log. A `denied` or `failed` entry equal in everything
    /// but time to one from the last hour is counted there instead.
    pub fn audit(&self, e: &AuditEntry) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if matches!(e.outcome.as_str(), "denied" | "failed") {
            let since = e.time.checked_sub(COLLAPSE_WINDOW).unwrap_or(e.time);
            let same: Option<i64> = tx
                .query_row(
                    "SELECT seq FROM audit WHERE actor = ?1 AND action = ?2 AND outcome = ?3
                     AND target = ?4 AND detail = ?5 AND time >= ?6
                     ORDER BY time DESC, seq DESC LIMIT 1",
                    params![
                        e.actor,
                        e.action,
                        e.outcome,
                        e.target,
                        e.detail,
                        millis(since)
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(seq) = same {
                tx.execute(
                    "UPDATE audit SET count = count + 1, time = MAX(time, ?2) WHERE seq = ?1",
                    params![seq, millis(e.time)],
                )?;
                tx.commit()?;
                return Ok(());
            }
        }
        tx.execute(
            "INSERT INTO audit (time, actor, action, target, outcome, detail, count, first_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?1)",
            params![
                millis(e.time),
                e.actor,
                e.action,
                e.target,
                e.outcome,
                e.detail
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StateError> {
        Ok(self
            .audit_page(limit, 0)?
            .into_iter()
            .map(|r| r.entry)
            .collect())
    }

    /// `limit` audit rows after skipping the `offset` newest, newest first.
    pub fn audit_page(&self, limit: usize, offset: usize) -> Result<Vec<AuditRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "{AUDIT_SELECT} ORDER BY time DESC, seq DESC LIMIT ?1 OFFSET ?2"
        ))?;
        let rows = stmt.query_map(params![sql_limit(limit), sql_limit(offset)], audit_row)?;
        rows.map(|row| {
            let (time, first, record) = row?;
            Ok(AuditRecord {
                entry: AuditEntry {
                    time: from_millis(time)?,
                    ..record.entry
                },
                first: from_millis(first)?,
                ..record
            })
        })
        .collect()
    }

    /// How many rows the audit log holds.
    pub fn audit_rows(&self) -> Result<u64, StateError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes audit rows whose newest occurrence is older than `before`; returns how many.
    pub fn prune_audit(&self, before: Timestamp) -> Result<usize, StateError> {
        Ok(self
            .conn()
            .execute("DELETE FROM audit WHERE time < ?1", [millis(before)])?)
    }

    /// The name of the revoked token with this secret, for the audit log; `None` if no token
    /// ever had it.
    pub fn revoked_token(&self, secret: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT name FROM revoked_tokens WHERE secret_hash = ?1",
                [secret_hash(secret)],
                |r| r.get(0),
            )
            .optional()?)
    }
}

/// A row with its times still raw: (time, first, record).
fn audit_row(r: &Row<'_>) -> rusqlite::Result<(i64, i64, AuditRecord)> {
    let count: i64 = r.get(6)?;
    Ok((
        r.get(0)?,
        r.get(7)?,
        AuditRecord {
            entry: AuditEntry {
                time: Timestamp::UNIX_EPOCH,
                actor: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                outcome: r.get(4)?,
                detail: r.get(5)?,
            },
            count: u64::try_from(count).unwrap_or(1),
            first: Timestamp::UNIX_EPOCH,
        },
    ))
}
