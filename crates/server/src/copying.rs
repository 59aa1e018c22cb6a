//! Copies in the job history: for each destination of a source, its last copy job and since
//! when copies there have failed. Every copy job records its destination (`to` in its result,
//! also when it failed), so the scheduler can retry a failed copy before the next backup and
//! the page can say "copy to offsite failing since ...", across restarts of the daemon.

use std::collections::HashMap;

use backstop_format::Timestamp;
use serde::Serialize;

use crate::state::{State, StateError};

/// How many of a source's newest jobs are read for its copies.
const HISTORY: usize = 500;

/// The result of a copy job that failed: where it went, and why it failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub to: String,
    pub error: String,
}

/// The copies of a source to one destination, from the job history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRuns {
    /// When the newest copy job there finished (or started, if it has no end).
    pub last_attempt: Timestamp,
    /// Whether it failed.
    pub failed: bool,
    /// Since when copies there have failed: the first failed copy after the last one that
    /// worked (or after the oldest one read). `None` when the newest worked.
    pub failing_since: Option<Timestamp>,
    /// The newest failure's message, when the newest copy failed.
    pub error: Option<String>,
    /// The destination's Object Lock, as the newest copy that worked found it (copy jobs
    /// record it): the daemon lengthens its retentions as it does the main repository's.
    pub object_lock: Option<backstop_format::config::ObjectLock>,
}

/// `source`'s copies per destination (by location, as copy jobs record it).
pub fn copy_runs(state: &State, source: &str) -> Result<HashMap<String, CopyRuns>, StateError> {
    let mut out: HashMap<String, CopyRuns> = HashMap::new();
    // Destinations whose newest working copy has been met (older jobs no longer matter).
    let mut settled: Vec<String> = Vec::new();
    for j in state.jobs(Some(source), HISTORY)? {
        if j.kind != "copy" || !matches!(j.outcome.as_str(), "ok" | "failed") {
            continue;
        }
        let Some(to) = j.detail.get("to").and_then(|t| t.as_str()) else {
            continue;
        };
        if settled.iter().any(|s| s == to) {
            continue;
        }
        let failed = j.outcome != "ok";
        let runs = out.entry(to.to_owned()).or_insert_with(|| CopyRuns {
            last_attempt: j.finished.unwrap_or(j.started),
            failed,
            failing_since: None,
            error: failed.then(|| j.message.clone()),
            object_lock: None,
        });
        if !failed {
            runs.object_lock = j
                .detail
                .get("object_lock")
                .and_then(|l| serde_json::from_value(l.clone()).ok());
        }
        if failed && runs.failed {
            // Newest first: each older failure moves the start of the run back.
            runs.failing_since = Some(j.started);
        } else {
            settled.push(to.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::JobRecord;

    fn job(state: &State, n: i64, outcome: &str, to: &str) {
        let at = Timestamp::from_second(1_800_000_000 + n * 60).unwrap();
        let detail = match outcome {
            // The bucket (`s3://b/...`) has an Object Lock of 30 days.
            "ok" if to.starts_with("s3://") => serde_json::json!({
                "to": to, "copied": [],
                "object_lock": {"mode": "compliance", "days": 30}
            }),
            "ok" => serde_json::json!({ "to": to, "copied": [] }),
            _ => serde_json::json!({ "to": to, "error": format!("boom {n}") }),
        };
        state
            .record_job(&JobRecord {
                id: format!("job-{n}"),
                kind: "copy".into(),
                source: "shop".into(),
                trigger: "after backup".into(),
                started: at,
                finished: Some(at),
                outcome: outcome.into(),
                message: format!("{outcome} {n}"),
                detail,
                figures: Default::default(),
            })
            .unwrap();
    }

    #[test]
    fn a_destination_fails_since_its_first_failure_after_the_last_copy_that_worked() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        job(&state, 1, "failed", "s3://b/offsite");
        job(&state, 2, "ok", "s3://b/offsite");
        job(&state, 3, "failed", "s3://b/offsite");
        job(&state, 4, "ok", "/mnt/usb");
        job(&state, 5, "failed", "s3://b/offsite");
        let runs = copy_runs(&state, "shop").unwrap();
        let at = |n: i64| Timestamp::from_second(1_800_000_000 + n * 60).unwrap();
        assert_eq!(
            runs["s3://b/offsite"],
            CopyRuns {
                last_attempt: at(5),
                failed: true,
                failing_since: Some(at(3)),
                error: Some("failed 5".into()),
                // From the newest copy there that worked.
                object_lock: Some(backstop_format::config::ObjectLock {
                    mode: backstop_format::config::LockMode::Compliance,
                    days: 30
                }),
            }
        );
        assert_eq!(
            runs["/mnt/usb"],
            CopyRuns {
                last_attempt: at(4),
                failed: false,
                failing_since: None,
                error: None,
                object_lock: None,
            }
        );
        assert!(copy_runs(&state, "docs").unwrap().is_empty());
    }
}
