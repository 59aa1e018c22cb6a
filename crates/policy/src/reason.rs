//! Why a snapshot is kept: one [`Reason`] per rule that keeps it.

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::KeepWithin;

/// A calendar period of the bucket rules (`keep_hourly` ... `keep_yearly`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    pub const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a snapshot is kept. A snapshot kept by several rules lists each of them, policy rules
/// first (in the order below), then the lifecycle rules.
///
/// Buckets are labelled in the plan's time zone: `2025-11-21 13:00` (hour), `2025-11-21`
/// (day), `2025-W47` (ISO week), `2025-11` (month), `2025` (year).
///
/// JSON: an object whose `rule` is the variant in kebab-case, with the variant's fields beside
/// it, e.g. `{"rule":"daily","bucket":"2025-11-21"}` or `{"rule":"pinned"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Reason {
    /// One of the `keep_last` newest snapshots.
    Last,
    /// The newest snapshot of one of the `keep_hourly` newest hours that have one.
    Hourly {
        bucket: String,
    },
    Daily {
        bucket: String,
    },
    Weekly {
        bucket: String,
    },
    Monthly {
        bucket: String,
    },
    Yearly {
        bucket: String,
    },
    /// The oldest snapshot of the group, kept because a bucket rule still had a count left
    /// when the walk reached it, although its bucket already had a newer snapshot kept. Restic
    /// keeps it since 0.16 and labels it "oldest daily snapshot" and so on since its pull
    /// request 5039 (2024); its manual (`doc/060_forget.rst`): "If there are not enough
    /// snapshots to keep one for each duration related `--keep-{within-,}*` option, the oldest
    /// snapshot is kept additionally and marked as `oldest` in the output (e.g. `oldest hourly
    /// snapshot`)." `keep_last` never gives it: each of its buckets is a single snapshot.
    Oldest {
        period: Period,
        bucket: String,
    },
    /// Within `keep_within` of the newest snapshot.
    Within {
        within: KeepWithin,
    },
    /// Carries every tag of this `keep_tags` entry (`"a,b"` means both `a` and `b`).
    Tag {
        tag: String,
    },
    /// Pinned by someone: never forgotten while pinned.
    Pinned,
    /// A pre-change snapshot nobody has marked verified yet.
    PreChangePending,
    /// A pre-change snapshot marked verified, kept for the grace period.
    PreChangeGrace {
        until: Timestamp,
    },
    /// A pre-restore safety snapshot younger than the minimum age.
    PreRestoreMinAge {
        until: Timestamp,
    },
    /// The newest snapshot whose restore drill passed: proof that a restore works.
    NewestDrilled,
}

impl Reason {
    /// Whether this reason comes from the retention policy (`keep_*`), not from a lifecycle
    /// rule that applies whatever the policy.
    pub fn is_policy(&self) -> bool {
        !matches!(
            self,
            Reason::Pinned
                | Reason::PreChangePending
                | Reason::PreChangeGrace { .. }
                | Reason::PreRestoreMinAge { .. }
                | Reason::NewestDrilled
        )
    }

    /// The bucket reason of `period`.
    pub(crate) fn bucket(period: Period, bucket: String) -> Reason {
        match period {
            Period::Hourly => Reason::Hourly { bucket },
            Period::Daily => Reason::Daily { bucket },
            Period::Weekly => Reason::Weekly { bucket },
            Period::Monthly => Reason::Monthly { bucket },
            Period::Yearly => Reason::Yearly { bucket },
        }
    }

    /// Shows the reason with times in `tz` (`Display` shows them in UTC).
    pub fn display_in<'a>(&'a self, tz: &'a TimeZone) -> impl fmt::Display + 'a {
        InZone { reason: self, tz }
    }
}

struct InZone<'a> {
    reason: &'a Reason,
    tz: &'a TimeZone,
}

impl fmt::Display for InZone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |t: &Timestamp| {
            t.to_zoned(self.tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        };
        match self.reason {
            Reason::Last => f.write_str("last"),
            Reason::Hourly { bucket } => write!(f, "hourly {bucket}"),
            Reason::Daily { bucket } => write!(f, "daily {bucket}"),
            Reason::Weekly { bucket } => write!(f, "weekly {bucket}"),
            Reason::Monthly { bucket } => write!(f, "monthly {bucket}"),
            Reason::Yearly { bucket } => write!(f, "yearly {bucket}"),
            Reason::Oldest { period, bucket } => write!(f, "oldest {period} {bucket}"),
            Reason::Within { within } => write!(f, "within {within}"),
            Reason::Tag { tag } => write!(f, "tag {tag}"),
            Reason::Pinned => f.write_str("pinned"),
            Reason::PreChangePending => f.write_str("pre-change, pending verification"),
            Reason::PreChangeGrace { until } => {
                write!(f, "pre-change verified, grace until {}", at(until))
            }
            Reason::PreRestoreMinAge { until } => {
                write!(f, "pre-restore, kept until {}", at(until))
            }
            Reason::NewestDrilled => f.write_str("newest snapshot that passed a restore drill"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display_in(&TimeZone::UTC).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn b(s: &str) -> String {
        s.to_string()
    }

    fn until() -> Timestamp {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    #[rstest]
    #[case(Reason::Last, "last")]
    #[case(Reason::Hourly { bucket: b("2026-11-21 13:00") }, "hourly 2026-11-21 13:00")]
    #[case(Reason::Daily { bucket: b("2026-11-21") }, "daily 2026-11-21")]
    #[case(Reason::Weekly { bucket: b("2026-W47") }, "weekly 2026-W47")]
    #[case(Reason::Monthly { bucket: b("2026-11") }, "monthly 2026-11")]
    #[case(Reason::Yearly { bucket: b("2026") }, "yearly 2026")]
    #[case(
        Reason::Oldest { period: Period::Daily, bucket: b("2026-01-01") },
        "oldest daily 2026-01-01"
    )]
    #[case(Reason::Within { within: "30d".parse().unwrap() }, "within 30d")]
    #[case(Reason::Tag { tag: b("release") }, "tag release")]
    #[case(Reason::Pinned, "pinned")]
    #[case(Reason::PreChangePending, "pre-change, pending verification")]
    #[case(
        Reason::PreChangeGrace { until: until() },
        "pre-change verified, grace until 2026-11-30 12:00 UTC"
    )]
    #[case(
        Reason::PreRestoreMinAge { until: until() },
        "pre-restore, kept until 2026-11-30 12:00 UTC"
    )]
    #[case(Reason::NewestDrilled, "newest snapshot that passed a restore drill")]
    fn display(#[case] reason: Reason, #[case] shown: &str) {
        assert_eq!(reason.to_string(), shown);
        let json = serde_json::to_string(&reason).unwrap();
        assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), reason);
    }

    #[test]
    fn display_in_a_zone() {
        let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let r = Reason::PreChangeGrace { until: until() };
        assert_eq!(
            r.display_in(&tz).to_string(),
            "pre-change verified, grace until 2026-11-30 13:00 CET"
        );
    }

    #[test]
    fn json_shape() {
        let j = |r: &Reason| serde_json::to_string(r).unwrap();
        assert_eq!(j(&Reason::Last), r#"{"rule":"last"}"#);
        assert_eq!(
            j(&Reason::Oldest {
                period: Period::Weekly,
                bucket: b("2025-W01")
            }),
            r#"{"rule":"oldest","period":"weekly","bucket":"2025-W01"}"#
        );
        assert_eq!(
            j(&Reason::PreRestoreMinAge { until: until() }),
            r#"{"rule":"pre-restore-min-age","until":"2026-11-30T12:00:00Z"}"#
        );
        assert_eq!(j(&Reason::NewestDrilled), r#"{"rule":"newest-drilled"}"#);
        assert!(!Reason::Pinned.is_policy());
        assert!(Reason::Tag { tag: b("x") }.is_policy());
    }
}
