//! [`plan_group`]: the keep-or-forget decision for every snapshot of one source.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use backstop_format::id::SnapshotId;
use backstop_format::manifest::BackupKind;

use crate::{Lifecycle, Policy, PolicyError, Reason, lifecycle, rules};

/// What forget needs to know of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: SnapshotId,
    pub time: Timestamp,
    pub kind: BackupKind,
    pub tags: Vec<String>,
    pub pinned: bool,
    /// When someone marked this (pre-change) snapshot verified, if they did.
    pub verified_at: Option<Timestamp>,
    /// True if a restore drill of this snapshot passed (its newest drill record passed).
    pub drill_passed: bool,
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub id: SnapshotId,
    pub time: Timestamp,
    pub kind: BackupKind,
    pub keep: bool,
    /// Every rule that keeps it (empty exactly when it is forgotten).
    pub reasons: Vec<Reason>,
}

/// The decisions for every snapshot of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPlan {
    pub source: String,
    pub policy: Policy,
    /// How many snapshots are kept.
    pub keep: usize,
    /// How many snapshots are forgotten.
    pub forget: usize,
    /// Newest first; snapshots with the same time in the order they were given.
    pub decisions: Vec<Decision>,
}

impl GroupPlan {
    /// The decisions that keep.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }

    /// The decisions that forget.
    pub fn forgotten(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }
}

/// Decides keep or forget for every snapshot of one source.
///
/// The policy's rules follow restic's `forget` (see the crate documentation) and count every
/// snapshot of the group whatever its kind; calendar buckets are taken in `tz`. Then the
/// lifecycle rules add their reasons: pinned, pre-change pending or in grace, pre-restore
/// younger than the minimum age, and the newest snapshot whose restore drill passed.
///
/// `now` is used for the lifecycle rules and, as in restic, to leave snapshots in the future
/// out when finding the newest snapshot that `keep_within` counts from. Snapshots in the
/// future are otherwise treated like any other.
///
/// # Errors
/// - [`PolicyError::EmptyPolicy`] if the policy has no rule, even for an empty group: the
///   caller decides what default to use.
/// - [`PolicyError::WouldForgetAll`] if the group has snapshots and the policy keeps none of
///   them (whatever the lifecycle rules keep). As restic's `forget` ("refusing to delete last
///   snapshot of snapshot group"), this catches a misspelt `--keep-tag`; only a policy of tags
///   alone can keep nothing.
pub fn plan_group(
    source: &str,
    candidates: &[Candidate],
    policy: &Policy,
    lifecycle: &Lifecycle,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<GroupPlan, PolicyError> {
    if policy.is_empty() {
        return Err(PolicyError::EmptyPolicy);
    }
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    // Stable, as restic's `sort.Stable`: equal times keep their given order.
    sorted.sort_by_key(|c| std::cmp::Reverse(c.time));
    let mut reasons = rules::policy_reasons(&sorted, policy, now, tz);
    if !sorted.is_empty() && reasons.iter().all(Vec::is_empty) {
        return Err(PolicyError::WouldForgetAll {
            group: source.to_string(),
            policy: policy.describe(),
        });
    }
    lifecycle::add_reasons(&sorted, lifecycle, now, &mut reasons);

    let decisions: Vec<Decision> = sorted
        .iter()
        .zip(reasons)
        .map(|(c, reasons)| Decision {
            id: c.id,
            time: c.time,
            kind: c.kind,
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect();
    let keep = decisions.iter().filter(|d| d.keep).count();
    Ok(GroupPlan {
        source: source.to_string(),
        policy: policy.clone(),
        keep,
        forget: decisions.len() - keep,
        decisions,
    })
}
