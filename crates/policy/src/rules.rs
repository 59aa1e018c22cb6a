//! The `keep_*` rules, as restic's `ApplyPolicy` (`internal/data/snapshot_policy.go`, formerly
//! `internal/restic/snapshot_policy.go`) applies them.
//!
//! Snapshots are walked newest first. Each counted rule (`last`, `hourly` ... `yearly`) has a
//! count and remembers the bucket of the last snapshot it kept; a snapshot whose bucket
//! differs from that one is kept by the rule, which then counts one down. So each rule keeps
//! the newest snapshot of each of its N newest non-empty buckets (`last` puts every snapshot in
//! a bucket of its own). The rules do not interact: each sees every snapshot.
//!
//! Since restic 0.16 the oldest snapshot is also kept by a rule that still has a count left
//! over, even when its bucket already has a newer snapshot kept:
//!
//! ```go
//! // also keep the oldest snapshot if the bucket has some counts left. This maximizes the
//! // the history length kept while some counts are left.
//! if val != b.Last || nr == len(list)-1 {
//!     ...
//!     if val == b.Last && nr == len(list)-1 {
//!         b.reason = fmt.Sprintf("oldest %v", b.reason)
//!     }
//! ```
//!
//! `keep_within` keeps snapshots strictly after the cut-off (`cur.Time.After(t)`) computed
//! from the newest snapshot that is not in the future: restic's `findLatestTimestamp` takes
//! the newest time `Before(now)`, and its manual says "All duration related options ignore
//! snapshots with a timestamp in the future (relative to when the forget command is run) and
//! these snapshots will hence not be removed". If every snapshot is in the future, restic's
//! reference is Go's zero time, so every snapshot is within; so it is here.
//!
//! Restic's `--keep-within-{hourly,...}` and `--unique` are not implemented.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::policy::{UNLIMITED, has_tags, tag_list};
use crate::{Candidate, Period, Policy, Reason};

/// The bucket a snapshot falls in for one rule; compared for equality only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    /// `keep_last`: every snapshot in a bucket of its own (its position).
    Position(usize),
    /// year (ISO year for weeks), month or ISO week, day, hour; unused parts 0.
    Civil(i16, i8, i8, i8),
}

/// One counted rule while walking the snapshots.
struct Counter {
    /// `None` for `keep_last`.
    period: Option<Period>,
    remaining: u32,
    last: Option<Bucket>,
}

fn bucket(period: Option<Period>, dt: &DateTime, position: usize) -> Bucket {
    let Some(period) = period else {
        return Bucket::Position(position);
    };
    let (y, m, d, h) = (dt.year(), dt.month(), dt.day(), dt.hour());
    match period {
        Period::Hourly => Bucket::Civil(y, m, d, h),
        Period::Daily => Bucket::Civil(y, m, d, 0),
        Period::Weekly => {
            let w = dt.date().iso_week_date();
            Bucket::Civil(w.year(), w.week(), 0, 0)
        }
        Period::Monthly => Bucket::Civil(y, m, 0, 0),
        Period::Yearly => Bucket::Civil(y, 0, 0, 0),
    }
}

/// The bucket's label as shown in a reason.
fn label(period: Period, dt: &DateTime) -> String {
    match period {
        Period::Hourly => format!("{} {:02}:00", dt.date(), dt.hour()),
        Period::Daily => dt.date().to_string(),
        Period::Weekly => {
            let w = dt.date().iso_week_date();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        Period::Monthly => format!("{:04}-{:02}", dt.year(), dt.month()),
        Period::Yearly => format!("{:04}", dt.year()),
    }
}

/// The policy's reasons for each of `sorted` (newest first, ties in their given order), in the
/// same order. An empty list means the policy forgets that snapshot.
pub(crate) fn policy_reasons(
    sorted: &[&Candidate],
    policy: &Policy,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<Vec<Reason>> {
    let counts = policy.counts();
    let periods = [None].into_iter().chain(Period::ALL.map(Some));
    let mut counters: Vec<Counter> = periods
        .zip(counts)
        .map(|(period, (_, n))| Counter {
            period,
            remaining: n,
            last: None,
        })
        .collect();
    let within = policy.within().map(|w| {
        let reference = sorted.iter().map(|c| c.time).filter(|t| *t < now).max();
        (w, reference.and_then(|r| w.cutoff(r, tz)))
    });
    let tag_lists: Vec<(&String, Vec<&str>)> = policy
        .keep_tags
        .iter()
        .map(|entry| (entry, tag_list(entry)))
        .collect();

    let oldest = sorted.len().saturating_sub(1);
    let mut out = Vec::with_capacity(sorted.len());
    for (nr, c) in sorted.iter().enumerate() {
        let dt = tz.to_datetime(c.time);
        let mut reasons = Vec::new();
        for counter in &mut counters {
            if counter.remaining == 0 {
                continue;
            }
            let b = bucket(counter.period, &dt, nr);
            let same = counter.last == Some(b);
            if same && nr != oldest {
                continue;
            }
            reasons.push(match counter.period {
                None => Reason::Last,
                Some(p) if same => Reason::Oldest {
                    period: p,
                    bucket: label(p, &dt),
                },
                Some(p) => Reason::bucket(p, label(p, &dt)),
            });
            counter.last = Some(b);
            if counter.remaining != UNLIMITED {
                counter.remaining -= 1;
            }
        }
        if let Some((w, cutoff)) = within
            && cutoff.is_none_or(|cut| c.time > cut)
        {
            reasons.push(Reason::Within { within: w });
        }
        for (entry, list) in &tag_lists {
            if has_tags(&c.tags, list) {
                reasons.push(Reason::Tag {
                    tag: (*entry).clone(),
                });
            }
        }
        out.push(reasons);
    }
    out
}
