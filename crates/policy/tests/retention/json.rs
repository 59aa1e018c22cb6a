//! The JSON that `forget --json` and the web UI show.

use backstop_format::manifest::BackupKind;
use backstop_policy::{GroupPlan, Lifecycle, Policy, plan_group};
use jiff::tz::TimeZone;
use serde_json::json;

use crate::support::*;

#[test]
fn group_plan_json() {
    let mut c = cands(&[
        "2025-06-01T08:00Z",
        "2025-06-02T08:00Z",
        "2025-06-03T08:00Z",
    ]);
    c[0].kind = BackupKind::PreRestore;
    c[1].pinned = true;
    let p = Policy {
        keep_daily: Some(1),
        keep_within: Some("12h".parse().unwrap()),
        ..policy()
    };
    let now = ts("2025-06-03T09:00Z");
    let plan = plan_group("db", &c, &p, &Lifecycle::default(), now, &TimeZone::UTC).unwrap();
    let hex = |n| id(n).to_hex();
    let want = json!({
        "source": "db",
        "policy": {
            "keep_last": null, "keep_hourly": null, "keep_daily": 1, "keep_weekly": null,
            "keep_monthly": null, "keep_yearly": null, "keep_within": "12h", "keep_tags": []
        },
        "keep": 3,
        "forget": 0,
        "decisions": [
            {
                "id": hex(2), "time": "2025-06-03T08:00:00Z", "kind": "scheduled", "keep": true,
                "reasons": [
                    {"rule": "daily", "bucket": "2025-06-03"},
                    {"rule": "within", "within": "12h"}
                ]
            },
            {
                "id": hex(1), "time": "2025-06-02T08:00:00Z", "kind": "scheduled", "keep": true,
                "reasons": [{"rule": "pinned"}]
            },
            {
                "id": hex(0), "time": "2025-06-01T08:00:00Z", "kind": "pre-restore", "keep": true,
                "reasons": [{"rule": "pre-restore-min-age", "until": "2025-06-08T08:00:00Z"}]
            }
        ]
    });
    let got = serde_json::to_value(&plan).unwrap();
    assert_eq!(got, want);
    let back: GroupPlan = serde_json::from_value(got).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn forgotten_snapshots_have_no_reasons() {
    let c = cands(&["2025-06-01T08:00Z", "2025-06-02T08:00Z"]);
    let p = Policy {
        keep_last: Some(1),
        ..policy()
    };
    let plan = crate::support::plan(&c, &p, ts("2025-06-03T00:00Z"));
    let v = serde_json::to_value(&plan.decisions[1]).unwrap();
    assert_eq!(
        v,
        json!({"id": id(0).to_hex(), "time": "2025-06-01T08:00:00Z", "kind": "scheduled",
               "keep": false, "reasons": []})
    );
}
