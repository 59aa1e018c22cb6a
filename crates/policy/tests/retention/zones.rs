//! Calendar buckets follow the time zone passed in, including across DST changes.

use backstop_policy::{Policy, UNLIMITED};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use rstest::rstest;

use crate::support::*;

/// Z, A, B, C in UTC. In New York (UTC-4 in June) A and B fall on 10 June and C on 11 June;
/// in Berlin (UTC+2) A, B and C all fall on 11 June.
fn near_midnight() -> Vec<backstop_policy::Candidate> {
    cands(&[
        "2025-06-09T12:00Z", // Z
        "2025-06-10T22:30Z", // A
        "2025-06-11T01:30Z", // B
        "2025-06-11T05:00Z", // C
    ])
}

#[rstest]
// UTC days: C (11th), then A (10th).
#[case::utc(TimeZone::UTC, &["2025-06-11T05:00Z", "2025-06-10T22:30Z"], "daily 2025-06-10")]
// New York: C (11th, 01:00), then B (10th, 21:30), newer than A on the same day.
#[case::new_york(new_york(), &["2025-06-11T05:00Z", "2025-06-11T01:30Z"], "daily 2025-06-10")]
// Berlin: C, B and A are all on the 11th; the next day with a snapshot is Z's, the 9th.
#[case::berlin(berlin(), &["2025-06-11T05:00Z", "2025-06-09T12:00Z"], "daily 2025-06-09")]
fn daily_buckets_near_midnight(
    #[case] tz: TimeZone,
    #[case] want: &[&str],
    #[case] second_reason: &str,
) {
    let p = Policy {
        keep_daily: Some(2),
        ..policy()
    };
    let plan = plan_at(&near_midnight(), &p, ts("2025-07-01T00:00Z"), &tz);
    assert_eq!(kept(&plan), z(want));
    assert_eq!(reasons_of(&plan, want[1]), [second_reason]);
}

/// Every hour from `from` to `to` inclusive (UTC).
fn hourly(from: &str, to: &str) -> Vec<backstop_policy::Candidate> {
    let (from, to) = (ts(from), ts(to));
    let n = to.duration_since(from).as_hours() + 1;
    (0..n)
        .map(|h| cand(h as usize, from + SignedDuration::from_hours(h)))
        .collect()
}

#[test]
fn new_york_fall_back_hour_is_one_bucket() {
    // On 2 November 2025 01:00-01:59 happens twice: 05:00Z (EDT) and 06:00Z (EST).
    let c = hourly("2025-11-01T00:00Z", "2025-11-04T00:00Z");
    let tz = new_york();
    let p = Policy {
        keep_hourly: Some(UNLIMITED),
        ..policy()
    };
    let plan = plan_at(&c, &p, ts("2025-12-01T00:00Z"), &tz);
    let gone: Vec<String> = plan.forgotten().map(|d| d.time.to_string()).collect();
    assert_eq!(gone, z(&["2025-11-02T05:00Z"]));
    assert_eq!(
        reasons_of(&plan, "2025-11-02T06:00Z"),
        ["hourly 2025-11-02 01:00"]
    );

    let p = Policy {
        keep_daily: Some(UNLIMITED),
        ..policy()
    };
    let plan = plan_at(&c, &p, ts("2025-12-01T00:00Z"), &tz);
    // 23:00 local of 31 Oct (EDT), 1 Nov (EDT) and 2 Nov (EST, a 25-hour day), the last
    // snapshot (19:00 on 3 Nov), and the oldest (20:00 on 31 Oct) with the count left over.
    assert_eq!(
        kept(&plan),
        z(&[
            "2025-11-04T00:00Z",
            "2025-11-03T04:00Z",
            "2025-11-02T03:00Z",
            "2025-11-01T03:00Z",
            "2025-11-01T00:00Z",
        ])
    );
    assert_eq!(reasons_of(&plan, "2025-11-03T04:00Z"), ["daily 2025-11-02"]);
    assert_eq!(
        reasons_of(&plan, "2025-11-01T00:00Z"),
        ["oldest daily 2025-10-31"]
    );
}

#[test]
fn new_york_spring_forward_day_has_23_hours() {
    // On 9 March 2025 the clock jumps from 01:59 EST (06:59Z) to 03:00 EDT (07:00Z).
    let c = hourly("2025-03-08T00:00Z", "2025-03-11T00:00Z");
    let tz = new_york();
    let p = Policy {
        keep_hourly: Some(UNLIMITED),
        ..policy()
    };
    let plan = plan_at(&c, &p, ts("2025-04-01T00:00Z"), &tz);
    assert_eq!(plan.forget, 0, "no local hour repeats");
    assert_eq!(
        reasons_of(&plan, "2025-03-09T06:00Z"),
        ["hourly 2025-03-09 01:00"]
    );
    assert_eq!(
        reasons_of(&plan, "2025-03-09T07:00Z"),
        ["hourly 2025-03-09 03:00"]
    );
    let labels: Vec<String> = plan
        .decisions
        .iter()
        .flat_map(|d| d.reasons.iter().map(ToString::to_string))
        .collect();
    assert!(!labels.iter().any(|l| l.contains("2025-03-09 02:00")));

    let p = Policy {
        keep_daily: Some(UNLIMITED),
        ..policy()
    };
    let plan = plan_at(&c, &p, ts("2025-04-01T00:00Z"), &tz);
    assert_eq!(
        kept(&plan),
        z(&[
            "2025-03-11T00:00Z", // 20:00 EDT, 10 March
            "2025-03-10T03:00Z", // 23:00 EDT, 9 March
            "2025-03-09T04:00Z", // 23:00 EST, 8 March
            "2025-03-08T04:00Z", // 23:00 EST, 7 March
            "2025-03-08T00:00Z", // 19:00 EST, 7 March: the oldest
        ])
    );
    let on_the_9th = plan
        .decisions
        .iter()
        .filter(|d| d.time >= ts("2025-03-09T05:00Z") && d.time <= ts("2025-03-10T03:00Z"))
        .count();
    assert_eq!(on_the_9th, 23);
}

#[test]
fn within_days_are_calendar_days_across_dst() {
    // Berlin falls back on 26 October 2025. One day before 26 Oct 13:00 CET (12:00Z) is
    // 25 Oct 13:00 CEST (11:00Z): 25 hours, so 25 hourly snapshots are after it.
    let c = hourly("2025-10-25T00:00Z", "2025-10-26T12:00Z");
    let p = Policy {
        keep_within: Some("1d".parse().unwrap()),
        ..policy()
    };
    let plan = plan_at(&c, &p, ts("2025-11-01T00:00Z"), &berlin());
    assert_eq!(kept(&plan), hours("2025-10-25T12:00Z", "2025-10-26T12:00Z"));
    assert_eq!(plan.keep, 25);
    let utc = plan_at(&c, &p, ts("2025-11-01T00:00Z"), &TimeZone::UTC);
    assert_eq!(utc.keep, 24);
}
