//! [`Policy`]: the `keep_*` rules of one source.

use serde::{Deserialize, Serialize};

use crate::KeepWithin;

/// A count that keeps every bucket, like restic's `--keep-daily unlimited` (`-1` there).
pub const UNLIMITED: u32 = u32::MAX;

/// Retention rules for one source, as given on the command line (`--keep-last` ...) or in
/// `backstop.toml`. A snapshot is kept if any rule keeps it.
///
/// Counts: `None` and `Some(0)` disable a rule; [`UNLIMITED`] keeps the newest snapshot of every
/// bucket. Unknown fields are refused when deserializing, so a misspelt rule in a config file
/// is an error rather than a rule silently missing from what decides deletions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Keep the N newest snapshots.
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    pub keep_hourly: Option<u32>,
    /// ... days ...
    pub keep_daily: Option<u32>,
    /// ... ISO weeks (Monday to Sunday) ...
    pub keep_weekly: Option<u32>,
    /// ... months ...
    pub keep_monthly: Option<u32>,
    /// ... years ...
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within this long of the newest one.
    pub keep_within: Option<KeepWithin>,
    /// Keep every snapshot that has the tag. An entry `"a,b"` means a snapshot with both `a`
    /// and `b` (as restic's `--keep-tag a,b`); an entry `""` means a snapshot without tags.
    pub keep_tags: Vec<String>,
}

impl Policy {
    /// Whether no rule is given (every count absent or zero, no duration, no tag): applied as
    /// it is, it would forget everything.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, n)| *n == 0)
            && self.within().is_none()
            && self.keep_tags.is_empty()
    }

    /// What a small business usually wants: the 10 newest snapshots, then one a day for a
    /// month, one a week for two months and one a month for a year.
    pub fn small_business_default() -> Policy {
        Policy {
            keep_last: Some(10),
            keep_daily: Some(30),
            keep_weekly: Some(8),
            keep_monthly: Some(12),
            ..Policy::default()
        }
    }

    /// One line such as `keep last 10, daily 30, weekly 8, monthly 12`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (name, n) in self.counts() {
            match n {
                0 => {}
                UNLIMITED => parts.push(format!("all {name}")),
                n => parts.push(format!("{name} {n}")),
            }
        }
        if let Some(w) = self.within() {
            parts.push(format!("within {w}"));
        }
        for t in &self.keep_tags {
            if t.is_empty() {
                parts.push("untagged".to_string());
            } else {
                parts.push(format!("tag {t}"));
            }
        }
        if parts.is_empty() {
            "no retention rule".to_string()
        } else {
            format!("keep {}", parts.join(", "))
        }
    }

    /// The counted rules by name, absent ones as 0.
    pub(crate) fn counts(&self) -> [(&'static str, u32); 6] {
        [
            ("last", self.keep_last.unwrap_or(0)),
            ("hourly", self.keep_hourly.unwrap_or(0)),
            ("daily", self.keep_daily.unwrap_or(0)),
            ("weekly", self.keep_weekly.unwrap_or(0)),
            ("monthly", self.keep_monthly.unwrap_or(0)),
            ("yearly", self.keep_yearly.unwrap_or(0)),
        ]
    }

    /// The `keep_within` rule, unless absent or zero (restic skips a zero duration too).
    pub(crate) fn within(&self) -> Option<KeepWithin> {
        self.keep_within.filter(|w| !w.is_zero())
    }
}

/// The tags of one `keep_tags` entry: split at commas, whitespace trimmed, as restic's
/// `splitTagList`.
pub(crate) fn tag_list(entry: &str) -> Vec<&str> {
    entry.split(',').map(str::trim).collect()
}

/// Restic's `Snapshot.HasTags`: every tag of `list` is among `tags`, where `""` matches a
/// snapshot without tags.
pub(crate) fn has_tags(tags: &[String], list: &[&str]) -> bool {
    for t in list {
        if t.is_empty() && tags.is_empty() {
            return true;
        }
        if !tags.iter().any(|have| have == t) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Policy::default(), "no retention rule")]
    #[case(
        Policy::small_business_default(),
        "keep last 10, daily 30, weekly 8, monthly 12"
    )]
    #[case(
        Policy { keep_hourly: Some(24), keep_yearly: Some(UNLIMITED), keep_daily: Some(0),
                 ..Policy::default() },
        "keep hourly 24, all yearly"
    )]
    #[case(
        Policy { keep_within: Some("1y6m".parse().unwrap()),
                 keep_tags: vec!["release".into(), "a,b".into(), "".into()],
                 ..Policy::default() },
        "keep within 1y6m, tag release, tag a,b, untagged"
    )]
    fn describe(#[case] p: Policy, #[case] want: &str) {
        assert_eq!(p.describe(), want);
    }

    #[rstest]
    #[case(Policy::default(), true)]
    #[case(Policy { keep_last: Some(0), keep_daily: Some(0), ..Policy::default() }, true)]
    #[case(Policy { keep_within: Some(KeepWithin::default()), ..Policy::default() }, true)]
    #[case(Policy { keep_last: Some(1), ..Policy::default() }, false)]
    #[case(Policy { keep_yearly: Some(UNLIMITED), ..Policy::default() }, false)]
    #[case(Policy { keep_tags: vec!["x".into()], ..Policy::default() }, false)]
    #[case(Policy { keep_within: Some("1h".parse().unwrap()), ..Policy::default() }, false)]
    fn is_empty(#[case] p: Policy, #[case] want: bool) {
        assert_eq!(p.is_empty(), want);
    }

    #[test]
    fn serde_field_names_and_unknown_fields() {
        let p = Policy {
            keep_last: Some(3),
            keep_within: Some("2w".parse().unwrap()),
            keep_tags: vec!["release".into()],
            ..Policy::default()
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "keep_last": 3, "keep_hourly": null, "keep_daily": null, "keep_weekly": null,
                "keep_monthly": null, "keep_yearly": null, "keep_within": "2w",
                "keep_tags": ["release"]
            })
        );
        let back: Policy =
            serde_json::from_str(r#"{"keep_last":3,"keep_within":"2w","keep_tags":["release"]}"#)
                .unwrap();
        assert_eq!(back, p);
        let err = serde_json::from_str::<Policy>(r#"{"keep_dayly":3}"#).unwrap_err();
        assert!(err.to_string().contains("keep_dayly"), "{err}");
    }

    #[rstest]
    #[case(&["a", "b"], "a", true)]
    #[case(&["a", "b"], "a,b", true)]
    #[case(&["a", "b"], " b , a ", true)]
    #[case(&["a"], "a,b", false)]
    #[case(&[], "", true)]
    #[case(&["a"], "", false)]
    #[case(&[], "a", false)]
    fn tags_match_like_restic(#[case] tags: &[&str], #[case] entry: &str, #[case] want: bool) {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        assert_eq!(has_tags(&tags, &tag_list(entry)), want);
    }
}
