//! Restic's own test data: the snapshot list of `TestApplyPolicy` in restic's
//! `internal/data/snapshot_policy_test.go`, and the results its golden files
//! (`testdata/policy_keep_snapshots_N`) record for a few of its policies, times in UTC.

use backstop_format::manifest::BackupKind;
use backstop_policy::{Candidate, Policy};
use rstest::rstest;

use crate::support::*;

/// Restic's list, in restic's order (which matters for equal times: its sort is stable).
const RESTIC: &[(&str, &[&str])] = &[
    ("2014-09-01T10:20:30Z", &[]),
    ("2014-09-02T10:20:30Z", &[]),
    ("2014-09-05T10:20:30Z", &[]),
    ("2014-09-06T10:20:30Z", &[]),
    ("2014-09-08T10:20:30Z", &[]),
    ("2014-09-09T10:20:30Z", &[]),
    ("2014-09-10T10:20:30Z", &[]),
    ("2014-09-11T10:20:30Z", &[]),
    ("2014-09-20T10:20:30Z", &[]),
    ("2014-09-22T10:20:30Z", &[]),
    ("2014-08-08T10:20:30Z", &[]),
    ("2014-08-10T10:20:30Z", &[]),
    ("2014-08-12T10:20:30Z", &[]),
    ("2014-08-13T10:20:30Z", &[]),
    ("2014-08-13T10:20:30.1Z", &[]),
    ("2014-08-15T10:20:30Z", &[]),
    ("2014-08-18T10:20:30Z", &[]),
    ("2014-08-20T10:20:30Z", &[]),
    ("2014-08-21T10:20:30Z", &[]),
    ("2014-08-22T10:20:30Z", &[]),
    ("2014-10-01T10:20:30Z", &["foo"]),
    ("2014-10-02T10:20:30Z", &["foo"]),
    ("2014-10-05T10:20:30Z", &["foo"]),
    ("2014-10-06T10:20:30Z", &["foo"]),
    ("2014-10-08T10:20:30Z", &["foo"]),
    ("2014-10-09T10:20:30Z", &["foo"]),
    ("2014-10-10T10:20:30Z", &["foo"]),
    ("2014-10-11T10:20:30Z", &["foo"]),
    ("2014-10-20T10:20:30Z", &["foo"]),
    ("2014-10-22T10:20:30Z", &["foo"]),
    ("2014-11-08T10:20:30Z", &["foo"]),
    ("2014-11-10T10:20:30Z", &["foo"]),
    ("2014-11-12T10:20:30Z", &["foo"]),
    ("2014-11-13T10:20:30Z", &["foo"]),
    ("2014-11-13T10:20:30.1Z", &["bar"]),
    ("2014-11-15T10:20:30Z", &["foo", "bar"]),
    ("2014-11-18T10:20:30Z", &[]),
    ("2014-11-20T10:20:30Z", &[]),
    ("2014-11-21T10:20:30Z", &[]),
    ("2014-11-22T10:20:30Z", &[]),
    ("2015-09-01T10:20:30Z", &[]),
    ("2015-09-02T10:20:30Z", &[]),
    ("2015-09-05T10:20:30Z", &[]),
    ("2015-09-06T10:20:30Z", &[]),
    ("2015-09-08T10:20:30Z", &[]),
    ("2015-09-09T10:20:30Z", &[]),
    ("2015-09-10T10:20:30Z", &[]),
    ("2015-09-11T10:20:30Z", &[]),
    ("2015-09-20T10:20:30Z", &[]),
    ("2015-09-22T10:20:30Z", &[]),
    ("2015-08-08T10:20:30Z", &[]),
    ("2015-08-10T10:20:30Z", &[]),
    ("2015-08-12T10:20:30Z", &[]),
    ("2015-08-13T10:20:30Z", &[]),
    ("2015-08-13T10:20:30.1Z", &[]),
    ("2015-08-15T10:20:30Z", &[]),
    ("2015-08-18T10:20:30Z", &[]),
    ("2015-08-20T10:20:30Z", &[]),
    ("2015-08-21T10:20:30Z", &[]),
    ("2015-08-22T10:20:30Z", &[]),
    ("2015-10-01T10:20:30Z", &[]),
    ("2015-10-02T10:20:30Z", &[]),
    ("2015-10-05T10:20:30Z", &[]),
    ("2015-10-06T10:20:30Z", &[]),
    ("2015-10-08T10:20:30Z", &[]),
    ("2015-10-09T10:20:30Z", &[]),
    ("2015-10-10T10:20:30Z", &[]),
    ("2015-10-11T10:20:30Z", &[]),
    ("2015-10-20T10:20:30Z", &[]),
    ("2015-10-22T10:20:30Z", &[]),
    ("2015-10-22T10:20:30Z", &[]),
    ("2015-10-22T10:20:30Z", &["foo", "bar"]),
    ("2015-10-22T10:20:30Z", &["foo", "bar"]),
    ("2015-10-22T10:20:30Z", &["foo", "bar"]),
    ("2015-11-08T10:20:30Z", &[]),
    ("2015-11-10T10:20:30Z", &[]),
    ("2015-11-12T10:20:30Z", &[]),
    ("2015-11-13T10:20:30Z", &[]),
    ("2015-11-13T10:20:30.1Z", &[]),
    ("2015-11-15T10:20:30Z", &[]),
    ("2015-11-18T10:20:30Z", &[]),
    ("2015-11-20T10:20:30Z", &[]),
    ("2015-11-21T10:20:30Z", &[]),
    ("2015-11-22T10:20:30Z", &[]),
    ("2016-01-01T01:02:03Z", &[]),
    ("2016-01-01T01:03:03Z", &[]),
    ("2016-01-01T07:08:03Z", &[]),
    ("2016-01-03T07:02:03Z", &[]),
    ("2016-01-04T10:23:03Z", &[]),
    ("2016-01-04T11:23:03Z", &[]),
    ("2016-01-04T12:23:03Z", &[]),
    ("2016-01-04T12:24:03Z", &[]),
    ("2016-01-04T12:28:03Z", &[]),
    ("2016-01-04T12:30:03Z", &[]),
    ("2016-01-04T16:23:03Z", &[]),
    ("2016-01-05T09:02:03Z", &[]),
    ("2016-01-06T08:02:03Z", &[]),
    ("2016-01-07T10:02:03Z", &[]),
    ("2016-01-08T20:02:03Z", &[]),
    ("2016-01-09T21:02:03Z", &[]),
    ("2016-01-12T21:02:03Z", &[]),
    ("2016-01-12T21:08:03Z", &[]),
    ("2016-01-18T12:02:03Z", &[]),
];

fn restic_snapshots() -> Vec<Candidate> {
    RESTIC
        .iter()
        .enumerate()
        .map(|(n, (t, tags))| Candidate {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            kind: BackupKind::Scheduled,
            ..cand(n, ts(t))
        })
        .collect()
}

fn kept_with_reasons(p: &Policy) -> Vec<(usize, String, Vec<String>)> {
    let cands = restic_snapshots();
    let plan = plan(&cands, p, ts("2026-01-01T00:00Z"));
    assert_eq!(plan.keep + plan.forget, RESTIC.len());
    plan.kept()
        .map(|d| {
            let n = cands.iter().position(|c| c.id == d.id).unwrap();
            let reasons = d.reasons.iter().map(ToString::to_string).collect();
            (n, d.time.to_string(), reasons)
        })
        .collect()
}

fn row(n: usize, time: &str, reasons: &[&str]) -> (usize, String, Vec<String>) {
    let reasons = reasons.iter().map(|r| r.to_string()).collect();
    (n, ts(time).to_string(), reasons)
}

/// Golden file 15: `{Daily: 2, Weekly: 2, Monthly: 6}`. Of the five snapshots at
/// 2015-10-22 10:20:30, restic keeps the first given (untagged, index 69).
#[test]
fn daily_2_weekly_2_monthly_6() {
    let p = Policy {
        keep_daily: Some(2),
        keep_weekly: Some(2),
        keep_monthly: Some(6),
        ..policy()
    };
    assert_eq!(
        kept_with_reasons(&p),
        [
            row(
                102,
                "2016-01-18T12:02:03Z",
                &["daily 2016-01-18", "weekly 2016-W03", "monthly 2016-01"]
            ),
            row(
                101,
                "2016-01-12T21:08:03Z",
                &["daily 2016-01-12", "weekly 2016-W02"]
            ),
            row(83, "2015-11-22T10:20:30Z", &["monthly 2015-11"]),
            row(69, "2015-10-22T10:20:30Z", &["monthly 2015-10"]),
            row(49, "2015-09-22T10:20:30Z", &["monthly 2015-09"]),
            row(59, "2015-08-22T10:20:30Z", &["monthly 2015-08"]),
            row(39, "2014-11-22T10:20:30Z", &["monthly 2014-11"]),
        ]
    );
}

/// Golden file 16: `{Yearly: 10}`, where restic shows "oldest yearly snapshot".
#[test]
fn yearly_10() {
    let p = Policy {
        keep_yearly: Some(10),
        ..policy()
    };
    assert_eq!(
        kept_with_reasons(&p),
        [
            row(102, "2016-01-18T12:02:03Z", &["yearly 2016"]),
            row(83, "2015-11-22T10:20:30Z", &["yearly 2015"]),
            row(39, "2014-11-22T10:20:30Z", &["yearly 2014"]),
            row(10, "2014-08-08T10:20:30Z", &["oldest yearly 2014"]),
        ]
    );
}

/// Golden file 19: `{Tags: [[foo, bar]]}`.
#[test]
fn tags_foo_and_bar() {
    let p = Policy {
        keep_tags: vec!["foo,bar".into()],
        ..policy()
    };
    let r = &["tag foo,bar"];
    assert_eq!(
        kept_with_reasons(&p),
        [
            row(71, "2015-10-22T10:20:30Z", r),
            row(72, "2015-10-22T10:20:30Z", r),
            row(73, "2015-10-22T10:20:30Z", r),
            row(35, "2014-11-15T10:20:30Z", r),
        ]
    );
}

/// Golden files 24 and 25: `{Within: 1m}` and `{Within: 1m14d}` keep the 19 snapshots of
/// January 2016 (the cut-offs, 18 December and 4 December 2015, fall in the gap before them).
#[rstest]
#[case("1m")]
#[case("1m14d")]
fn within(#[case] d: &str) {
    let p = Policy {
        keep_within: Some(d.parse().unwrap()),
        ..policy()
    };
    let got = kept_with_reasons(&p);
    let want: Vec<_> = (84..=102)
        .rev()
        .map(|n| row(n, RESTIC[n].0, &[&format!("within {d}")]))
        .collect();
    assert_eq!(got, want);
}
