//! Builders shared by the tests.

use backstop_format::id::SnapshotId;
use backstop_format::manifest::BackupKind;
use backstop_policy::{Candidate, GroupPlan, Lifecycle, Policy, plan_group};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

pub fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
}

/// A distinct id per number.
pub fn id(n: usize) -> SnapshotId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(n as u64).to_be_bytes());
    SnapshotId(b)
}

/// A scheduled snapshot without tags or marks.
pub fn cand(n: usize, time: Timestamp) -> Candidate {
    Candidate {
        id: id(n),
        time,
        kind: BackupKind::Scheduled,
        tags: vec![],
        pinned: false,
        verified_at: None,
        drill_passed: false,
    }
}

/// Candidates at the given times, numbered in order.
pub fn cands(times: &[&str]) -> Vec<Candidate> {
    times
        .iter()
        .enumerate()
        .map(|(n, t)| cand(n, ts(t)))
        .collect()
}

/// Every hour from `from` to `to` inclusive, newest first, as RFC 3339 strings.
pub fn hours(from: &str, to: &str) -> Vec<String> {
    let (from, to) = (ts(from), ts(to));
    let mut out = Vec::new();
    let mut t = to;
    while t >= from {
        out.push(t.to_string());
        t -= SignedDuration::from_hours(1);
    }
    out
}

/// One snapshot an hour through 2025 (UTC): 8760 snapshots, 2025-01-01T00:00Z to
/// 2025-12-31T23:00Z, given oldest first.
pub fn hourly_year() -> Vec<Candidate> {
    let start = ts("2025-01-01T00:00:00Z");
    (0..8760)
        .map(|h| cand(h, start + SignedDuration::from_hours(h as i64)))
        .collect()
}

/// After every snapshot of [`hourly_year`].
pub fn new_year() -> Timestamp {
    ts("2026-01-01T00:00:00Z")
}

pub fn plan_at(cands: &[Candidate], policy: &Policy, now: Timestamp, tz: &TimeZone) -> GroupPlan {
    plan_group("src", cands, policy, &Lifecycle::default(), now, tz).expect("policy applies")
}

/// The plan in UTC with the default lifecycle.
pub fn plan(cands: &[Candidate], policy: &Policy, now: Timestamp) -> GroupPlan {
    plan_at(cands, policy, now, &TimeZone::UTC)
}

/// The kept snapshots' times, newest first.
pub fn kept(plan: &GroupPlan) -> Vec<String> {
    plan.kept().map(|d| d.time.to_string()).collect()
}

/// Timestamps as [`kept`] shows them: "2025-12-31T23:00Z" becomes "2025-12-31T23:00:00Z".
pub fn z(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| ts(s).to_string()).collect()
}

pub fn reasons_of(plan: &GroupPlan, time: &str) -> Vec<String> {
    let t = ts(time);
    let d = plan
        .decisions
        .iter()
        .find(|d| d.time == t)
        .unwrap_or_else(|| panic!("no snapshot at {time}"));
    d.reasons.iter().map(ToString::to_string).collect()
}

pub fn policy() -> Policy {
    Policy::default()
}

/// A time zone by IANA name, or the POSIX rule equal to it for 2025 where the system has no
/// time zone database.
pub fn zone(iana: &str, posix: &str) -> TimeZone {
    TimeZone::get(iana).unwrap_or_else(|_| TimeZone::posix(posix).expect("valid POSIX TZ"))
}

pub fn new_york() -> TimeZone {
    zone("America/New_York", "EST5EDT,M3.2.0,M11.1.0")
}

pub fn berlin() -> TimeZone {
    zone("Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3")
}
