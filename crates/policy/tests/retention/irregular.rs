//! Irregular snapshots: gaps of days, two in one hour, equal times, snapshots in the future.
//! Each expectation is derived by hand in the comments, walking newest first as restic does.

use backstop_policy::{Policy, PolicyError, plan_group};
use jiff::tz::TimeZone;
use rstest::rstest;

use crate::support::*;

/// s1 ... s8, given out of order. ISO weeks: 1 March 2025 (Saturday) is in W09, 5 March in
/// W10, 12 March in W11, 20 and 21 March in W12.
fn march() -> Vec<backstop_policy::Candidate> {
    cands(&[
        "2025-03-12T09:00Z", // s5: same hour as s6, earlier
        "2025-03-01T10:00Z", // s1: oldest, same hour as s2
        "2025-03-21T00:01Z", // s8: newest
        "2025-03-01T18:00Z", // s3
        "2025-03-20T23:59Z", // s7: two minutes before s8, another day
        "2025-03-05T09:00Z", // s4: a gap of four days before it, one week after
        "2025-03-12T09:45Z", // s6
        "2025-03-01T10:30Z", // s2
    ])
}

const S: [&str; 9] = [
    "",
    "2025-03-01T10:00Z",
    "2025-03-01T10:30Z",
    "2025-03-01T18:00Z",
    "2025-03-05T09:00Z",
    "2025-03-12T09:00Z",
    "2025-03-12T09:45Z",
    "2025-03-20T23:59Z",
    "2025-03-21T00:01Z",
];

fn s(ns: &[usize]) -> Vec<String> {
    ns.iter().map(|&n| ts(S[n]).to_string()).collect()
}

fn now() -> jiff::Timestamp {
    ts("2025-04-01T00:00Z")
}

#[rstest]
// last 1: s8. hourly 4: s8, s7, s6 (s5 shares its hour), s4. daily 4: the same four days.
// weekly 3: s8 (W12; s7 too), s6 (W11), s4 (W10). monthly 2: s8 (March), then every other
// snapshot is in March too, so none until the oldest, s1, kept with the count left over.
#[case::mixed(
    Policy { keep_last: Some(1), keep_hourly: Some(4), keep_daily: Some(4),
             keep_weekly: Some(3), keep_monthly: Some(2), ..policy() },
    s(&[8, 7, 6, 4, 1])
)]
// Six non-empty hours, fewer than 10: the newest of each (s5 and s1 lose to s6 and s2), then
// the oldest, s1, because counts are left.
#[case::hourly_10(Policy { keep_hourly: Some(10), ..policy() }, s(&[8, 7, 6, 4, 3, 2, 1]))]
// Days with snapshots: 21, 20, 12, 5, 1 March. daily 3: s8, s7, s6.
#[case::daily_3(Policy { keep_daily: Some(3), ..policy() }, s(&[8, 7, 6]))]
// Weeks W12, W11, W10, W09: the newest of each, s8, s6, s4, s3; no count left for s1.
#[case::weekly_4(Policy { keep_weekly: Some(4), ..policy() }, s(&[8, 6, 4, 3]))]
// daily 2: s8, s7. Within 10 days of s8 (cut-off 11 March 00:01): s8, s7, s6, s5.
#[case::daily_2_within_10d(
    Policy { keep_daily: Some(2), keep_within: Some("10d".parse().unwrap()), ..policy() },
    s(&[8, 7, 6, 5])
)]
// Cut-off 13 March 00:01: only s8 and s7.
#[case::within_8d(Policy { keep_within: Some("8d".parse().unwrap()), ..policy() }, s(&[8, 7]))]
fn march_cases(#[case] policy: Policy, #[case] want: Vec<String>) {
    let plan = crate::support::plan(&march(), &policy, now());
    assert_eq!(kept(&plan), want);
}

#[test]
fn march_reasons() {
    let p = Policy {
        keep_last: Some(1),
        keep_hourly: Some(4),
        keep_daily: Some(4),
        keep_weekly: Some(3),
        keep_monthly: Some(2),
        ..policy()
    };
    let plan = crate::support::plan(&march(), &p, now());
    let all: Vec<String> = plan.decisions.iter().map(|d| d.time.to_string()).collect();
    assert_eq!(all, s(&[8, 7, 6, 5, 4, 3, 2, 1]), "newest first");
    assert_eq!(
        reasons_of(&plan, S[8]),
        [
            "last",
            "hourly 2025-03-21 00:00",
            "daily 2025-03-21",
            "weekly 2025-W12",
            "monthly 2025-03"
        ]
    );
    assert_eq!(
        reasons_of(&plan, S[7]),
        ["hourly 2025-03-20 23:00", "daily 2025-03-20"]
    );
    assert_eq!(
        reasons_of(&plan, S[4]),
        [
            "hourly 2025-03-05 09:00",
            "daily 2025-03-05",
            "weekly 2025-W10"
        ]
    );
    assert_eq!(reasons_of(&plan, S[1]), ["oldest monthly 2025-03"]);
    assert!(reasons_of(&plan, S[5]).is_empty());
}

#[rstest]
// 30 days before 31 March 00:00 is 1 March 00:00; restic keeps only what is strictly after.
#[case("30d", "2025-03-31T00:00Z", &["2025-03-01T00:00:01Z"], &["2025-03-01T00:00:00Z"])]
// One month before 31 March 12:00 is "31 February" 12:00, which Go (so restic) carries over to
// 3 March 12:00, where jiff's clamping would give 28 February.
#[case(
    "1m",
    "2025-03-31T12:00Z",
    &["2025-03-03T13:00Z"],
    &["2025-03-03T12:00Z", "2025-03-02T12:00Z", "2025-02-28T12:00Z"]
)]
#[case("12h", "2025-03-31T12:00Z", &["2025-03-31T00:00:01Z"], &["2025-03-31T00:00Z"])]
fn within_boundary(
    #[case] within: &str,
    #[case] latest: &str,
    #[case] kept_too: &[&str],
    #[case] forgotten: &[&str],
) {
    let mut times = vec![latest];
    times.extend(kept_too);
    times.extend(forgotten);
    let p = Policy {
        keep_within: Some(within.parse().unwrap()),
        ..policy()
    };
    let plan = crate::support::plan(&cands(&times), &p, now());
    let mut want = vec![latest];
    want.extend(kept_too);
    assert_eq!(kept(&plan), z(&want));
    let gone: Vec<String> = plan.forgotten().map(|d| d.time.to_string()).collect();
    assert_eq!(gone, z(forgotten));
}

#[test]
fn within_counts_from_the_newest_snapshot_not_in_the_future() {
    let times = [
        "2025-03-20T00:00Z",
        "2025-03-09T00:00Z",
        "2025-03-01T00:00Z",
    ];
    let p = Policy {
        keep_within: Some("2d".parse().unwrap()),
        ..policy()
    };
    // From 9 March: cut-off 7 March. The future snapshot is within (after the cut-off).
    let plan = crate::support::plan(&cands(&times), &p, ts("2025-03-10T00:00Z"));
    assert_eq!(kept(&plan), z(&["2025-03-20T00:00Z", "2025-03-09T00:00Z"]));
    // Every snapshot in the future: restic's reference is the zero time, so all are within.
    let plan = crate::support::plan(&cands(&times), &p, ts("2025-02-01T00:00Z"));
    assert_eq!(plan.keep, 3);
    // A snapshot exactly at `now` is not before it, so it is not the reference either: from
    // 8 March the cut-off is 6 March 00:00, which keeps 6 March 12:00.
    let times = [
        "2025-03-09T00:00Z",
        "2025-03-08T00:00Z",
        "2025-03-06T12:00Z",
    ];
    let plan = crate::support::plan(&cands(&times), &p, ts("2025-03-09T00:00Z"));
    assert_eq!(plan.keep, 3);
}

#[test]
fn future_snapshots_count_like_others_for_the_bucket_rules() {
    let times = [
        "2025-03-20T00:00Z",
        "2025-03-09T00:00Z",
        "2025-03-08T00:00Z",
    ];
    let p = Policy {
        keep_last: Some(1),
        keep_daily: Some(2),
        ..policy()
    };
    let plan = crate::support::plan(&cands(&times), &p, ts("2025-03-10T00:00Z"));
    assert_eq!(kept(&plan), z(&["2025-03-20T00:00Z", "2025-03-09T00:00Z"]));
}

#[test]
fn equal_times_keep_their_given_order() {
    let c = cands(&[
        "2025-03-01T00:00Z",
        "2025-03-01T00:00Z",
        "2025-02-01T00:00Z",
    ]);
    let p = Policy {
        keep_last: Some(1),
        ..policy()
    };
    let plan = crate::support::plan(&c, &p, now());
    let ids: Vec<_> = plan.decisions.iter().map(|d| d.id).collect();
    assert_eq!(ids, [id(0), id(1), id(2)]);
    assert!(plan.decisions[0].keep && !plan.decisions[1].keep);
}

#[test]
fn a_policy_that_keeps_nothing_is_refused() {
    let mut c = march();
    c[0].pinned = true;
    let p = Policy {
        keep_tags: vec!["relaese".into()],
        ..policy()
    };
    let err = plan_group("db", &c, &p, &Default::default(), now(), &TimeZone::UTC).unwrap_err();
    assert_eq!(
        err,
        PolicyError::WouldForgetAll {
            group: "db".into(),
            policy: "keep tag relaese".into()
        }
    );
    assert!(
        err.to_string()
            .contains("refusing to forget every snapshot of source \"db\"")
    );
    // No snapshot, nothing to refuse.
    let plan = plan_group("db", &[], &p, &Default::default(), now(), &TimeZone::UTC).unwrap();
    assert_eq!((plan.keep, plan.forget), (0, 0));
}

#[test]
fn an_empty_policy_is_an_error() {
    for p in [
        Policy::default(),
        Policy {
            keep_daily: Some(0),
            keep_last: Some(0),
            ..policy()
        },
    ] {
        let err = plan_group(
            "db",
            &march(),
            &p,
            &Default::default(),
            now(),
            &TimeZone::UTC,
        )
        .unwrap_err();
        assert_eq!(err, PolicyError::EmptyPolicy);
        let msg = err.to_string();
        assert!(
            msg.starts_with("no retention rule given: pass --keep-last"),
            "{msg}"
        );
        assert!(msg.ends_with("refusing to forget everything"), "{msg}");
    }
    assert_eq!(
        plan_group(
            "db",
            &[],
            &Policy::default(),
            &Default::default(),
            now(),
            &TimeZone::UTC
        ),
        Err(PolicyError::EmptyPolicy)
    );
}
