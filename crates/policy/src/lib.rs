//! Retention and schedule arithmetic: which snapshots of a source a policy keeps, and when a
//! job is due or a source overdue ([`Schedule`]), as pure functions of the snapshot list, a
//! clock and a time zone passed in (no I/O).
//!
//! [`plan_group`] returns a [`GroupPlan`]: for every snapshot, newest first, whether it is kept
//! and every [`Reason`] why. `forget` shows that plan (on a dry run, or in the web UI) before
//! it deletes anything; the plan types are serde types (snake_case fields, kebab-case values)
//! and each reason has a short `Display`.
//!
//! The `keep_*` rules of a [`Policy`] follow restic's `forget` exactly (restic's
//! `internal/data/snapshot_policy.go` and its manual page "Removing backup snapshots"):
//! `keep_last` keeps the N newest; `keep_hourly` ... `keep_yearly` keep the newest snapshot of
//! each of the N newest hours, days, ISO weeks, months or years that have a snapshot, plus the
//! oldest snapshot when a rule has a count left over ([`Reason::Oldest`]); `keep_within` keeps
//! everything within a calendar duration of the newest snapshot; `keep_tags` keeps tagged
//! snapshots. The details, with restic's lines quoted, are in `src/rules.rs`. Then backstop's
//! [`Lifecycle`] rules keep pinned snapshots, pre-change snapshots until verified and for a
//! grace period after, young pre-restore snapshots and the newest snapshot that passed a
//! restore drill.
//!
//! ```
//! use backstop_format::id::SnapshotId;
//! use backstop_format::manifest::BackupKind;
//! use backstop_policy::{Candidate, Lifecycle, Policy, Reason, plan_group};
//! use jiff::{Timestamp, tz::TimeZone};
//!
//! // One snapshot a day at noon, 1 to 10 March 2025; the one of 2 March is pinned.
//! let candidates: Vec<Candidate> = (1..=10u8)
//!     .map(|day| Candidate {
//!         id: SnapshotId([day; 32]),
//!         time: format!("2025-03-{day:02}T12:00:00Z").parse().unwrap(),
//!         kind: BackupKind::Scheduled,
//!         tags: vec![],
//!         pinned: day == 2,
//!         verified_at: None,
//!         drill_passed: false,
//!     })
//!     .collect();
//! let policy = Policy { keep_last: Some(2), keep_weekly: Some(1), ..Policy::default() };
//! let now: Timestamp = "2025-03-11T00:00:00Z".parse().unwrap();
//! let plan = plan_group("db", &candidates, &policy, &Lifecycle::default(), now, &TimeZone::UTC)
//!     .unwrap();
//!
//! assert_eq!((plan.keep, plan.forget), (3, 7));
//! let newest = &plan.decisions[0];
//! assert_eq!(newest.time.to_string(), "2025-03-10T12:00:00Z");
//! assert_eq!(newest.reasons[0], Reason::Last);
//! let shown: Vec<String> = newest.reasons.iter().map(|r| r.to_string()).collect();
//! assert_eq!(shown, ["last", "weekly 2025-W11"]);
//! assert_eq!(plan.decisions[8].reasons, [Reason::Pinned]);
//! ```

mod human;
mod lifecycle;
mod plan;
mod policy;
mod reason;
mod rules;
mod schedule;
mod within;

pub use human::{format_age, format_bytes, format_minute, format_seconds, format_span};
pub use lifecycle::{Lifecycle, PreChangeState, pre_change_state};
pub use plan::{Candidate, Decision, GroupPlan, plan_group};
pub use policy::{Policy, UNLIMITED};
pub use reason::{Period, Reason};
pub use schedule::{Schedule, format_interval, parse_interval};
pub use within::KeepWithin;

/// What can go wrong when parsing or applying a retention policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy has no rule; applied, it would forget every snapshot.
    #[error(
        "no retention rule given: pass --keep-last, --keep-hourly, --keep-daily, --keep-weekly, \
         --keep-monthly, --keep-yearly, --keep-within or --keep-tag, or configure retention; \
         refusing to forget everything"
    )]
    EmptyPolicy,
    /// The policy keeps no snapshot of the source `group`; the lifecycle rules may keep a few, but a
    /// policy that keeps nothing is more likely a mistake (a misspelt tag) than an intention.
    #[error(
        "refusing to forget every snapshot of source {group:?}: the retention policy \
         ({policy}) keeps none of them; is a --keep-tag misspelt?"
    )]
    WouldForgetAll { group: String, policy: String },
    /// A `keep_within` duration or an interval that does not parse.
    #[error("invalid duration {input:?}: {problem}")]
    InvalidDuration { input: String, problem: String },
    /// A cron pattern that does not parse.
    #[error("invalid schedule {input:?}: {problem}")]
    InvalidSchedule { input: String, problem: String },
}
