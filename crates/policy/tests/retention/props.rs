//! Properties that hold for any snapshots and any policy.

use backstop_format::manifest::BackupKind;
use backstop_policy::{Candidate, KeepWithin, Lifecycle, Policy, PolicyError, plan_group};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use crate::support::*;

fn kind() -> impl Strategy<Value = BackupKind> {
    prop_oneof![
        Just(BackupKind::Manual),
        Just(BackupKind::Scheduled),
        Just(BackupKind::Startup),
        Just(BackupKind::PreChange),
        Just(BackupKind::PreRestore),
    ]
}

/// Up to 60 snapshots within about 40 days of 2025-03-01 (minutes apart at random, some at
/// the same time), with random kinds, tags and marks.
fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
    let one = (
        0i64..60 * 24 * 40,
        kind(),
        prop::collection::vec(prop_oneof![Just("a"), Just("b")], 0..2),
        any::<bool>(),
        prop::option::of(0i64..60 * 24 * 40),
        any::<bool>(),
    );
    prop::collection::vec(one, 0..60).prop_map(|v| {
        let base = ts("2025-03-01T00:00Z");
        v.into_iter()
            .enumerate()
            .map(
                |(n, (min, kind, tags, pinned, verified, drill))| Candidate {
                    kind,
                    tags: tags.into_iter().map(String::from).collect(),
                    pinned: pinned && n % 3 == 0,
                    verified_at: verified.map(|m| base + SignedDuration::from_mins(m)),
                    drill_passed: drill && n % 4 == 0,
                    ..cand(n, base + SignedDuration::from_mins(min))
                },
            )
            .collect()
    })
}

fn count() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), (0u32..6).prop_map(Some), Just(Some(u32::MAX))]
}

fn policies() -> impl Strategy<Value = Policy> {
    (
        [count(), count(), count(), count(), count(), count()],
        prop::option::of((0u32..3, 0u32..3, 0u32..48)),
        prop::collection::vec(
            prop_oneof![Just("a"), Just("b"), Just("a,b"), Just("")],
            0..2,
        ),
    )
        .prop_map(|(c, within, tags)| Policy {
            keep_last: c[0],
            keep_hourly: c[1],
            keep_daily: c[2],
            keep_weekly: c[3],
            keep_monthly: c[4],
            keep_yearly: c[5],
            keep_within: within.map(|(weeks, days, hours)| KeepWithin {
                weeks,
                days,
                hours,
                ..KeepWithin::default()
            }),
            keep_tags: tags.into_iter().map(String::from).collect(),
        })
}

fn zone() -> impl Strategy<Value = TimeZone> {
    prop_oneof![Just(TimeZone::UTC), Just(new_york()), Just(berlin())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plan_invariants(
        c in candidates(),
        p in policies(),
        tz in zone(),
        now_min in 0i64..60 * 24 * 50,
    ) {
        let now = ts("2025-03-01T00:00Z") + SignedDuration::from_mins(now_min);
        let plan = match plan_group("src", &c, &p, &Lifecycle::default(), now, &tz) {
            Ok(plan) => plan,
            Err(PolicyError::EmptyPolicy) => {
                prop_assert!(p.is_empty());
                return Ok(());
            }
            Err(PolicyError::WouldForgetAll { .. }) => {
                // Only tags can keep nothing: any count keeps the newest snapshot, and
                // keep_within keeps the newest one not in the future (or all of them).
                prop_assert!(!c.is_empty());
                prop_assert!(p.keep_tags.iter().len() > 0);
                prop_assert!(p.keep_within.is_none_or(|w| w.is_zero()));
                for n in [p.keep_last, p.keep_hourly, p.keep_daily, p.keep_weekly,
                          p.keep_monthly, p.keep_yearly] {
                    prop_assert!(n.unwrap_or(0) == 0);
                }
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        prop_assert!(!p.is_empty());
        prop_assert_eq!(plan.decisions.len(), c.len());
        prop_assert_eq!(plan.keep + plan.forget, c.len());
        prop_assert_eq!(plan.keep, plan.decisions.iter().filter(|d| d.keep).count());
        for d in &plan.decisions {
            prop_assert_eq!(d.keep, !d.reasons.is_empty());
        }
        for w in plan.decisions.windows(2) {
            prop_assert!(w[0].time >= w[1].time, "newest first");
        }
        // Every snapshot exactly once.
        let mut ids: Vec<_> = plan.decisions.iter().map(|d| d.id).collect();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len(), c.len());
        for cand in &c {
            let d = plan.decisions.iter().find(|d| d.id == cand.id).unwrap();
            if cand.pinned {
                prop_assert!(d.keep, "pinned snapshot forgotten");
            }
            if cand.kind == BackupKind::PreChange && cand.verified_at.is_none() {
                prop_assert!(d.keep, "unverified pre-change snapshot forgotten");
            }
        }
        if !c.is_empty() && p.keep_last.unwrap_or(0) >= 1 {
            prop_assert!(plan.decisions[0].keep, "newest forgotten despite keep_last");
        }
        // A bucket rule with a count keeps the newest snapshot too.
        if !c.is_empty() && (p.keep_daily.unwrap_or(0) >= 1 || p.keep_weekly.unwrap_or(0) >= 1) {
            prop_assert!(plan.decisions[0].keep);
        }
    }

    #[test]
    fn keep_within_round_trips(y in 0u32..50, m in 0u32..50, w in 0u32..50, d in 0u32..400,
                               h in 0u32..1000) {
        let k = KeepWithin { years: y, months: m, weeks: w, days: d, hours: h };
        prop_assume!(!k.is_zero());
        let s = k.to_string();
        prop_assert_eq!(s.parse::<KeepWithin>().unwrap(), k);
        let json = serde_json::to_string(&k).unwrap();
        prop_assert_eq!(serde_json::from_str::<KeepWithin>(&json).unwrap(), k);
    }

    #[test]
    fn adding_a_rule_never_forgets_more(c in candidates(), p in policies(), extra in 1u32..4) {
        let now: Timestamp = ts("2025-05-01T00:00Z");
        let Ok(base) = plan_group("src", &c, &p, &Lifecycle::default(), now, &TimeZone::UTC)
        else { return Ok(()) };
        let more = Policy { keep_last: Some(p.keep_last.unwrap_or(0).saturating_add(extra)), ..p };
        let wider = plan_group("src", &c, &more, &Lifecycle::default(), now, &TimeZone::UTC)
            .unwrap();
        for (a, b) in base.decisions.iter().zip(&wider.decisions) {
            prop_assert_eq!(a.id, b.id);
            prop_assert!(!a.keep || b.keep);
        }
    }
}
