//! The lifecycle rules: pinned, pre-change, pre-restore, newest drilled.

use backstop_format::manifest::BackupKind;
use backstop_policy::{
    Candidate, GroupPlan, Lifecycle, Policy, PreChangeState, Reason, plan_group, pre_change_state,
};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rstest::rstest;

use crate::support::*;

fn now() -> Timestamp {
    ts("2025-06-15T12:00Z")
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// Four daily scheduled snapshots, 1 to 4 June at noon (ids 0..3, oldest first).
fn four() -> Vec<Candidate> {
    cands(&[
        "2025-06-01T12:00Z",
        "2025-06-02T12:00Z",
        "2025-06-03T12:00Z",
        "2025-06-04T12:00Z",
    ])
}

fn last_1() -> Policy {
    Policy {
        keep_last: Some(1),
        ..policy()
    }
}

fn run(c: &[Candidate], lifecycle: &Lifecycle) -> GroupPlan {
    plan_group("src", c, &last_1(), lifecycle, now(), &TimeZone::UTC).unwrap()
}

/// The reasons of the snapshot with id `n`.
fn reasons(plan: &GroupPlan, n: usize) -> Vec<Reason> {
    plan.decisions
        .iter()
        .find(|d| d.id == id(n))
        .unwrap()
        .reasons
        .clone()
}

#[test]
fn pinned_is_kept() {
    let mut c = four();
    c[1].pinned = true;
    let plan = run(&c, &Lifecycle::default());
    assert_eq!(reasons(&plan, 3), [Reason::Last]);
    assert_eq!(reasons(&plan, 1), [Reason::Pinned]);
    assert!(reasons(&plan, 0).is_empty() && reasons(&plan, 2).is_empty());
    assert_eq!((plan.keep, plan.forget), (2, 2));
}

#[rstest]
#[case::pending(None, Some(PreChangeState::PendingVerification), vec![Reason::PreChangePending])]
#[case::in_grace(
    Some(ts("2025-06-12T12:00Z")),
    Some(PreChangeState::Verified { until: ts("2025-06-19T12:00Z") }),
    vec![Reason::PreChangeGrace { until: ts("2025-06-19T12:00Z") }]
)]
#[case::last_second_of_grace(
    Some(ts("2025-06-08T12:00:01Z")),
    Some(PreChangeState::Verified { until: ts("2025-06-15T12:00:01Z") }),
    vec![Reason::PreChangeGrace { until: ts("2025-06-15T12:00:01Z") }]
)]
// The grace ends exactly now: retired, and the policy forgets it.
#[case::grace_over(Some(ts("2025-06-08T12:00Z")), Some(PreChangeState::Retired), vec![])]
#[case::long_retired(Some(ts("2025-06-02T12:00Z")), Some(PreChangeState::Retired), vec![])]
fn pre_change(
    #[case] verified_at: Option<Timestamp>,
    #[case] state: Option<PreChangeState>,
    #[case] want: Vec<Reason>,
) {
    let mut c = four();
    c[1].kind = BackupKind::PreChange;
    c[1].verified_at = verified_at;
    let lifecycle = Lifecycle::default();
    assert_eq!(pre_change_state(&c[1], &lifecycle, now()), state);
    assert_eq!(
        pre_change_state(&c[2], &lifecycle, now()),
        None,
        "not pre-change"
    );
    let plan = run(&c, &lifecycle);
    assert_eq!(reasons(&plan, 1), want);
    assert_eq!(plan.keep, 1 + usize::from(!want.is_empty()));
}

#[test]
fn pre_change_grace_is_configurable() {
    let mut c = four();
    c[1].kind = BackupKind::PreChange;
    c[1].verified_at = Some(ts("2025-06-15T11:30Z"));
    let short = Lifecycle {
        pre_change_grace: SignedDuration::from_mins(30),
        ..Lifecycle::default()
    };
    assert_eq!(
        pre_change_state(&c[1], &short, now()),
        Some(PreChangeState::Retired)
    );
    let long = Lifecycle {
        pre_change_grace: SignedDuration::from_mins(31),
        ..Lifecycle::default()
    };
    assert_eq!(
        pre_change_state(&c[1], &long, now()),
        Some(PreChangeState::Verified {
            until: ts("2025-06-15T12:01Z")
        })
    );
}

#[rstest]
// Exactly the minimum age: may be forgotten.
#[case::old_enough("2025-06-08T12:00Z", vec![])]
#[case::one_second_too_young(
    "2025-06-08T12:00:01Z",
    vec![Reason::PreRestoreMinAge { until: ts("2025-06-15T12:00:01Z") }]
)]
#[case::young(
    "2025-06-14T00:00Z",
    vec![Reason::PreRestoreMinAge { until: ts("2025-06-21T00:00Z") }]
)]
fn pre_restore_min_age(#[case] time: &str, #[case] want: Vec<Reason>) {
    let mut c = four();
    // Newest by a margin, so that keep_last 1 keeps it unless the time is older.
    c.push(cand(9, ts("2025-06-15T00:00Z")));
    let mut r = cand(5, ts(time));
    r.kind = BackupKind::PreRestore;
    c.push(r);
    let plan = run(&c, &Lifecycle::default());
    assert_eq!(reasons(&plan, 5), want);
}

#[test]
fn only_the_newest_drilled_snapshot_is_protected() {
    let mut c = four();
    c[0].drill_passed = true;
    c[2].drill_passed = true;
    let plan = run(&c, &Lifecycle::default());
    assert_eq!(reasons(&plan, 2), [Reason::NewestDrilled]);
    assert!(
        reasons(&plan, 0).is_empty(),
        "an older drilled snapshot is not protected"
    );
    assert_eq!(plan.keep, 2);
}

#[test]
fn every_reason_is_listed_policy_first() {
    let mut c = four();
    c[3].pinned = true;
    c[3].drill_passed = true;
    c[3].kind = BackupKind::PreChange;
    c[3].tags = vec!["release".into()];
    let p = Policy {
        keep_last: Some(1),
        keep_daily: Some(1),
        keep_tags: vec!["release".into()],
        ..policy()
    };
    let plan = plan_group("src", &c, &p, &Lifecycle::default(), now(), &TimeZone::UTC).unwrap();
    let shown: Vec<String> = reasons(&plan, 3).iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "last",
            "daily 2025-06-04",
            "tag release",
            "pinned",
            "pre-change, pending verification",
            "newest snapshot that passed a restore drill",
        ]
    );
}

#[test]
fn the_policy_counts_every_kind() {
    // The newest is a pre-change snapshot: it takes keep_last's only slot, so the scheduled
    // snapshot before it is forgotten.
    let mut c = four();
    c[3].kind = BackupKind::PreChange;
    let plan = run(&c, &Lifecycle::default());
    assert_eq!(reasons(&plan, 3), [Reason::Last, Reason::PreChangePending]);
    assert!(reasons(&plan, 2).is_empty());
}

#[test]
fn lifecycle_defaults_and_serde() {
    let l = Lifecycle::default();
    assert_eq!(l.pre_change_grace, days(7));
    assert_eq!(l.pre_restore_min_age, days(7));
    let json = serde_json::to_value(l).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"pre_change_grace": "PT168H", "pre_restore_min_age": "PT168H"})
    );
    let back: Lifecycle = serde_json::from_value(json).unwrap();
    assert_eq!(back, l);
    let partial: Lifecycle = serde_json::from_str(r#"{"pre_change_grace":"PT1H"}"#).unwrap();
    assert_eq!(partial.pre_change_grace, SignedDuration::from_hours(1));
    assert_eq!(partial.pre_restore_min_age, days(7));
}

#[test]
fn pre_change_state_json_and_display() {
    let v = PreChangeState::Verified {
        until: ts("2026-11-30T12:00Z"),
    };
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"state":"verified","until":"2026-11-30T12:00:00Z"}"#
    );
    assert_eq!(
        serde_json::to_string(&PreChangeState::PendingVerification).unwrap(),
        r#"{"state":"pending-verification"}"#
    );
    assert_eq!(v.to_string(), "verified, kept until 2026-11-30 12:00 UTC");
    assert_eq!(PreChangeState::Retired.to_string(), "retired");
}
