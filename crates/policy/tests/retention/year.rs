//! A year of hourly snapshots (2025, UTC, one every hour on the hour), the clock at
//! 2026-01-01T00:00Z. The expected sets are worked out from restic's rules by hand:
//! 2025-12-31 is a Wednesday in ISO week 2026-W01 (Monday 2025-12-29 to Sunday 2026-01-04),
//! 2025-01-01 is a Wednesday in ISO week 2025-W01, and the last snapshot of a day is at 23:00.

use backstop_policy::{Policy, UNLIMITED};
use jiff::SignedDuration;
use rstest::rstest;

use crate::support::*;

fn last_of_days(days: &[&str]) -> Vec<String> {
    days.iter()
        .map(|d| ts(&format!("{d}T23:00:00Z")).to_string())
        .collect()
}

/// Sundays at 23:00 from 2025-01-05 to 2025-12-28 (52 of them), newest first.
fn sundays() -> Vec<String> {
    let first = ts("2025-01-05T23:00:00Z");
    (0..52)
        .rev()
        .map(|w| (first + SignedDuration::from_hours(24 * 7 * w)).to_string())
        .collect()
}

/// 23:00 of every day of 2025, newest first.
fn every_day() -> Vec<String> {
    hours("2025-01-01T23:00Z", "2025-12-31T23:00Z")
        .into_iter()
        .step_by(24)
        .collect()
}

fn month_ends() -> Vec<String> {
    last_of_days(&[
        "2025-12-31",
        "2025-11-30",
        "2025-10-31",
        "2025-09-30",
        "2025-08-31",
        "2025-07-31",
        "2025-06-30",
        "2025-05-31",
        "2025-04-30",
        "2025-03-31",
        "2025-02-28",
        "2025-01-31",
    ])
}

fn cat(parts: &[Vec<String>]) -> Vec<String> {
    parts.concat()
}

#[rstest]
#[case::last_10(
    Policy { keep_last: Some(10), ..policy() },
    hours("2025-12-31T14:00Z", "2025-12-31T23:00Z")
)]
#[case::hourly_24(
    Policy { keep_hourly: Some(24), ..policy() },
    hours("2025-12-31T00:00Z", "2025-12-31T23:00Z")
)]
#[case::daily_7(
    Policy { keep_daily: Some(7), ..policy() },
    last_of_days(&["2025-12-31", "2025-12-30", "2025-12-29", "2025-12-28", "2025-12-27",
                   "2025-12-26", "2025-12-25"])
)]
// 2026-W01 holds 29..31 December; 2025-W52 ends on Sunday the 28th.
#[case::weekly_4_across_new_year(
    Policy { keep_weekly: Some(4), ..policy() },
    last_of_days(&["2025-12-31", "2025-12-28", "2025-12-21", "2025-12-14"])
)]
#[case::monthly_12(Policy { keep_monthly: Some(12), ..policy() }, month_ends())]
// Only one year: its newest snapshot, and the oldest because two counts are left over.
#[case::yearly_3(
    Policy { keep_yearly: Some(3), ..policy() },
    z(&["2025-12-31T23:00Z", "2025-01-01T00:00Z"])
)]
// 53 weeks have snapshots (2025-W01 ... 2025-W52 and 2026-W01), fewer than 60: the Sunday of
// each, the last Wednesday, and the very first snapshot as the oldest.
#[case::weekly_60_keeps_oldest(
    Policy { keep_weekly: Some(60), ..policy() },
    cat(&[z(&["2025-12-31T23:00Z"]), sundays(), z(&["2025-01-01T00:00Z"])])
)]
#[case::monthly_13_keeps_oldest(
    Policy { keep_monthly: Some(13), ..policy() },
    cat(&[month_ends(), z(&["2025-01-01T00:00Z"])])
)]
#[case::daily_unlimited(
    Policy { keep_daily: Some(UNLIMITED), ..policy() },
    cat(&[every_day(), z(&["2025-01-01T00:00Z"])])
)]
// Daily: 25..31 Dec. Weekly: 31 (daily too), 28 (daily too), 21, 14 Dec. Monthly: 31 Dec
// (daily too), then the end of each month from November back to January.
#[case::daily_7_weekly_4_monthly_12(
    Policy { keep_daily: Some(7), keep_weekly: Some(4), keep_monthly: Some(12), ..policy() },
    last_of_days(&["2025-12-31", "2025-12-30", "2025-12-29", "2025-12-28", "2025-12-27",
                   "2025-12-26", "2025-12-25", "2025-12-21", "2025-12-14", "2025-11-30",
                   "2025-10-31", "2025-09-30", "2025-08-31", "2025-07-31", "2025-06-30",
                   "2025-05-31", "2025-04-30", "2025-03-31", "2025-02-28", "2025-01-31"])
)]
#[case::small_business_default(
    Policy::small_business_default(),
    cat(&[
        hours("2025-12-31T14:00Z", "2025-12-31T23:00Z"),
        // daily 30 (31 Dec, already kept, back to 2 Dec).
        last_of_days(&["2025-12-30", "2025-12-29", "2025-12-28", "2025-12-27", "2025-12-26",
                       "2025-12-25", "2025-12-24", "2025-12-23", "2025-12-22", "2025-12-21",
                       "2025-12-20", "2025-12-19", "2025-12-18", "2025-12-17", "2025-12-16",
                       "2025-12-15", "2025-12-14", "2025-12-13", "2025-12-12", "2025-12-11",
                       "2025-12-10", "2025-12-09", "2025-12-08", "2025-12-07", "2025-12-06",
                       "2025-12-05", "2025-12-04", "2025-12-03", "2025-12-02"]),
        // weekly 8: 31 Dec and the Sundays 28, 21, 14, 7 Dec (all daily too), 30, 23, 16 Nov;
        // monthly 12: 31 Dec, 30 Nov (weekly too), 31 Oct ... 31 Jan.
        last_of_days(&["2025-11-30", "2025-11-23", "2025-11-16", "2025-10-31", "2025-09-30", "2025-08-31",
                       "2025-07-31", "2025-06-30", "2025-05-31", "2025-04-30", "2025-03-31",
                       "2025-02-28", "2025-01-31"]),
    ])
)]
// The cut-off is 2025-12-01T23:00Z, and only snapshots strictly after it are within.
#[case::within_30d(
    Policy { keep_within: Some("30d".parse().unwrap()), ..policy() },
    hours("2025-12-02T00:00Z", "2025-12-31T23:00Z")
)]
// One month before 31 Dec 23:00 is "31 Nov" 23:00, which Go's AddDate (so restic) carries
// over to 1 Dec 23:00: the same cut-off as 30d, where clamping would give 30 Nov.
#[case::within_1m(
    Policy { keep_within: Some("1m".parse().unwrap()), ..policy() },
    hours("2025-12-02T00:00Z", "2025-12-31T23:00Z")
)]
#[case::within_1y(
    Policy { keep_within: Some("1y".parse().unwrap()), ..policy() },
    hours("2025-01-01T00:00Z", "2025-12-31T23:00Z")
)]
// 31 Dec 23:00 - 14 days - 12 hours = 17 Dec 11:00.
#[case::within_2w12h(
    Policy { keep_within: Some("2w12h".parse().unwrap()), ..policy() },
    hours("2025-12-17T12:00Z", "2025-12-31T23:00Z")
)]
fn year_of_hourly_snapshots(#[case] policy: Policy, #[case] want: Vec<String>) {
    let plan = crate::support::plan(&hourly_year(), &policy, new_year());
    let got = kept(&plan);
    assert_eq!(got.len(), want.len(), "how many kept");
    assert_eq!(got, want);
    assert_eq!(plan.keep, want.len());
    assert_eq!(plan.forget, 8760 - want.len());
}

#[test]
fn expected_sizes_are_what_the_closed_forms_say() {
    assert_eq!(
        hours("2025-12-02T00:00Z", "2025-12-31T23:00Z").len(),
        30 * 24
    );
    assert_eq!(
        hours("2025-12-17T12:00Z", "2025-12-31T23:00Z").len(),
        14 * 24 + 12
    );
    assert_eq!(sundays().last().unwrap(), "2025-01-05T23:00:00Z");
    assert_eq!(sundays().first().unwrap(), "2025-12-28T23:00:00Z");
    assert_eq!(every_day().len(), 365);
}

#[test]
fn reasons_of_the_combination() {
    let p = Policy {
        keep_last: Some(1),
        keep_daily: Some(7),
        keep_weekly: Some(4),
        keep_monthly: Some(12),
        ..policy()
    };
    let plan = crate::support::plan(&hourly_year(), &p, new_year());
    assert_eq!(
        reasons_of(&plan, "2025-12-31T23:00Z"),
        [
            "last",
            "daily 2025-12-31",
            "weekly 2026-W01",
            "monthly 2025-12"
        ]
    );
    assert_eq!(
        reasons_of(&plan, "2025-12-28T23:00Z"),
        ["daily 2025-12-28", "weekly 2025-W52"]
    );
    assert_eq!(reasons_of(&plan, "2025-12-21T23:00Z"), ["weekly 2025-W51"]);
    assert_eq!(reasons_of(&plan, "2025-01-31T23:00Z"), ["monthly 2025-01"]);
    assert!(reasons_of(&plan, "2025-12-31T22:00Z").is_empty());
}

#[test]
fn oldest_reasons() {
    let yearly = Policy {
        keep_yearly: Some(3),
        keep_hourly: Some(2),
        ..policy()
    };
    let plan = crate::support::plan(&hourly_year(), &yearly, new_year());
    assert_eq!(
        reasons_of(&plan, "2025-12-31T23:00Z"),
        ["hourly 2025-12-31 23:00", "yearly 2025"]
    );
    // hourly has no count left when the walk reaches the oldest snapshot; yearly has two.
    assert_eq!(
        reasons_of(&plan, "2025-01-01T00:00Z"),
        ["oldest yearly 2025"]
    );
    let weekly = Policy {
        keep_weekly: Some(60),
        ..policy()
    };
    let plan = crate::support::plan(&hourly_year(), &weekly, new_year());
    assert_eq!(
        reasons_of(&plan, "2025-01-01T00:00Z"),
        ["oldest weekly 2025-W01"]
    );
    assert_eq!(reasons_of(&plan, "2025-01-05T23:00Z"), ["weekly 2025-W01"]);
}

#[test]
fn within_reason_shows_the_duration() {
    let p = Policy {
        keep_within: Some("2w12h".parse().unwrap()),
        keep_last: Some(1),
        ..policy()
    };
    let plan = crate::support::plan(&hourly_year(), &p, new_year());
    assert_eq!(
        reasons_of(&plan, "2025-12-31T23:00Z"),
        ["last", "within 2w12h"]
    );
    assert_eq!(reasons_of(&plan, "2025-12-17T12:00Z"), ["within 2w12h"]);
    assert!(reasons_of(&plan, "2025-12-17T11:00Z").is_empty());
}

#[rstest]
#[case::one_tag(vec!["release"], z(&["2025-07-04T09:00Z", "2025-03-15T12:00Z"]))]
#[case::both_tags_of_an_entry(vec!["nightly,db"], z(&["2025-10-10T03:00Z"]))]
#[case::entries_are_alternatives(
    vec!["release", "db"],
    z(&["2025-10-10T03:00Z", "2025-07-04T09:00Z", "2025-03-15T12:00Z"])
)]
#[case::spaces_around_tags(vec![" db , nightly "], z(&["2025-10-10T03:00Z"]))]
fn keep_tag(#[case] tags: Vec<&str>, #[case] want: Vec<String>) {
    let mut cands = hourly_year();
    for c in &mut cands {
        match c.time.to_string().as_str() {
            "2025-03-15T12:00:00Z" | "2025-07-04T09:00:00Z" => c.tags = vec!["release".into()],
            "2025-10-10T03:00:00Z" => c.tags = vec!["nightly".into(), "db".into()],
            "2025-10-11T03:00:00Z" => c.tags = vec!["nightly".into()],
            _ => {}
        }
    }
    let p = Policy {
        keep_tags: tags.iter().map(|t| t.to_string()).collect(),
        ..policy()
    };
    let plan = crate::support::plan(&cands, &p, new_year());
    assert_eq!(kept(&plan), want);
    let first = plan.kept().next().unwrap();
    assert!(
        first
            .reasons
            .iter()
            .all(|r| r.to_string().starts_with("tag "))
    );
}
