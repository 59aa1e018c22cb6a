//! Backstop's own rules that apply whatever the retention policy says. They can only turn a
//! forget into a keep, never the other way.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use backstop_format::manifest::BackupKind;

use crate::{Candidate, Reason};

/// Rules that always apply, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lifecycle {
    /// How long a pre-change snapshot stays after someone marked it verified (default 7 days).
    pub pre_change_grace: SignedDuration,
    /// Minimum age before a pre-restore safety snapshot may be forgotten (default 7 days).
    pub pre_restore_min_age: SignedDuration,
}

impl Default for Lifecycle {
    fn default() -> Self {
        const WEEK: SignedDuration = SignedDuration::from_hours(7 * 24);
        Lifecycle {
            pre_change_grace: WEEK,
            pre_restore_min_age: WEEK,
        }
    }
}

/// Where a pre-change snapshot stands, as `snapshots` shows it.
///
/// JSON: `{"state":"pending-verification"}`, `{"state":"verified","until":"..."}` or
/// `{"state":"retired"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum PreChangeState {
    /// Nobody has marked it verified: kept whatever the policy.
    PendingVerification,
    /// Marked verified: kept whatever the policy until `until`.
    Verified { until: Timestamp },
    /// Marked verified and the grace period is over: only the policy decides.
    Retired,
}

impl fmt::Display for PreChangeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreChangeState::PendingVerification => f.write_str("pending verification"),
            PreChangeState::Verified { until } => write!(
                f,
                "verified, kept until {}",
                until.strftime("%Y-%m-%d %H:%M UTC")
            ),
            PreChangeState::Retired => f.write_str("retired"),
        }
    }
}

/// `t + d`, or the end (start) of representable time if that is past it: a grace period that
/// overflows lasts forever.
fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The pre-change state of `c` at `now`; `None` when `c` is not a pre-change snapshot.
pub fn pre_change_state(
    c: &Candidate,
    lifecycle: &Lifecycle,
    now: Timestamp,
) -> Option<PreChangeState> {
    if c.kind != BackupKind::PreChange {
        return None;
    }
    Some(match c.verified_at {
        None => PreChangeState::PendingVerification,
        Some(at) => {
            let until = add(at, lifecycle.pre_change_grace);
            if now < until {
                PreChangeState::Verified { until }
            } else {
                PreChangeState::Retired
            }
        }
    })
}

/// Adds the lifecycle reasons to `reasons` (parallel to `sorted`, newest first).
pub(crate) fn add_reasons(
    sorted: &[&Candidate],
    lifecycle: &Lifecycle,
    now: Timestamp,
    reasons: &mut [Vec<Reason>],
) {
    let newest_drilled = sorted.iter().position(|c| c.drill_passed);
    for (i, (c, r)) in sorted.iter().zip(reasons.iter_mut()).enumerate() {
        if c.pinned {
            r.push(Reason::Pinned);
        }
        match pre_change_state(c, lifecycle, now) {
            Some(PreChangeState::PendingVerification) => r.push(Reason::PreChangePending),
            Some(PreChangeState::Verified { until }) => r.push(Reason::PreChangeGrace { until }),
            Some(PreChangeState::Retired) | None => {}
        }
        if c.kind == BackupKind::PreRestore {
            let until = add(c.time, lifecycle.pre_restore_min_age);
            if now < until {
                r.push(Reason::PreRestoreMinAge { until });
            }
        }
        if newest_drilled == Some(i) {
            r.push(Reason::NewestDrilled);
        }
    }
}
