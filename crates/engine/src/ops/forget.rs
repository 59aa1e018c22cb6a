//! Forget: decide, per source, which snapshots a retention policy keeps, and delete the others.
//!
//! The decision is `backstop_policy::plan_group` (pure, the clock and time zone passed in);
//! this module gathers what it needs from the repository (snapshots and their records: pins,
//! restore drills, mark-verified) and applies the plan. Forget deletes snapshot objects only
//! (then their records); the space of their data is reclaimed by `prune`, which works out
//! what is still used from the snapshots that remain. So forget needs no exclusive lock: a
//! backup running beside it only adds objects. It refuses when a record cannot be read, since
//! that record might be the pin that protects a snapshot.

use std::collections::{BTreeMap, HashMap};

use backstop_format::{SnapshotId, Timestamp};
use backstop_policy::{Candidate, GroupPlan, Lifecycle, Policy, plan_group};
use backstop_storage::Kind;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::repository::SnapshotList;
use crate::repository::lock::Lock;
use crate::repository::marks::candidate;
use crate::repository::{Marks, Repository};

/// What to forget.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// The policy of sources that have none of their own.
    pub policy: Policy,
    /// Policies of single sources (from the config file).
    pub per_source: BTreeMap<String, Policy>,
    /// Only these sources; all when empty.
    pub sources: Vec<String>,
    pub lifecycle: Lifecycle,
    /// The clock: "now" for grace periods and minimum ages.
    pub now: Timestamp,
    /// Calendar buckets (daily, weekly...) follow snapshot times in this zone.
    pub time_zone: TimeZone,
    pub host: String,
}

/// The decision for every snapshot of every source considered, newest first per source.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetPlan {
    pub now: Timestamp,
    pub time_zone: String,
    pub groups: Vec<GroupPlan>,
    /// Snapshots that cannot be read: never forgotten (nothing is known about them), listed so
    /// that they are not a surprise.
    pub unreadable: Vec<String>,
}

impl ForgetPlan {
    /// The snapshots the plan forgets.
    pub fn forget_ids(&self) -> Vec<SnapshotId> {
        self.groups
            .iter()
            .flat_map(|g| g.decisions.iter())
            .filter(|d| !d.keep)
            .map(|d| d.id)
            .collect()
    }

    pub fn keep_count(&self) -> usize {
        self.groups.iter().map(|g| g.keep).sum()
    }
}

/// What forget did.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetSummary {
    pub dry_run: bool,
    pub plan: ForgetPlan,
    /// Snapshots deleted (0 on a dry run).
    pub forgotten: usize,
    /// Records of those snapshots deleted.
    pub records_deleted: usize,
    /// Snapshots the plan forgets that the storage refused to delete (a bucket's lock rule
    /// still holds them): kept, with their records.
    pub locked: Vec<SnapshotId>,
}

/// Each snapshot's record names, and its marks (pins, drills).
struct SnapshotRecords {
    names: HashMap<SnapshotId, Vec<String>>,
    marks: HashMap<SnapshotId, Marks>,
}

/// Reads every record; refuses when one cannot be read: it might be the pin that protects a
/// snapshot.
fn read_records(repo: &Repository) -> Result<SnapshotRecords> {
    let (records, bad_records) = repo.records_checked()?;
    if let Some((name, e)) = bad_records.first() {
        return Err(Error::Integrity(format!(
            "record {name} cannot be read ({e}); it may be the pin that protects a snapshot, so \
             nothing is forgotten: run `backstop repair records` (it deletes unreadable records and lists the pins that remain)"
        )));
    }
    let mut names: HashMap<SnapshotId, Vec<String>> = HashMap::new();
    for (name, r) in &records {
        names.entry(r.snapshot).or_default().push(name.clone());
    }
    let marks = Marks::from_records(records.into_iter().map(|(_, r)| r).collect());
    Ok(SnapshotRecords { names, marks })
}

/// Computes the plan without changing anything.
pub fn plan_forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetPlan> {
    Ok(gather(repo, opts)?.0)
}

/// The plan, and each snapshot's record names.
fn gather(
    repo: &Repository,
    opts: &ForgetOptions,
) -> Result<(ForgetPlan, HashMap<SnapshotId, Vec<String>>)> {
    let SnapshotList {
        readable: snaps,
        unreadable: bad_snaps,
    } = repo.snapshots()?;
    let SnapshotRecords {
        names: record_names,
        marks,
    } = read_records(repo)?;
    let mut groups: BTreeMap<&str, Vec<Candidate>> = BTreeMap::new();
    for (id, snap) in &snaps {
        groups
            .entry(snap.source.name.as_str())
            .or_default()
            .push(candidate(*id, snap, marks.get(id)));
    }
    for s in &opts.sources {
        if !groups.contains_key(s.as_str()) {
            return Err(Error::NotFound(format!(
                "no snapshot of source {s:?} (see `backstop snapshots`)"
            )));
        }
    }
    let mut plan = ForgetPlan {
        now: opts.now,
        time_zone: opts.time_zone.iana_name().unwrap_or("local").to_string(),
        groups: Vec::new(),
        unreadable: bad_snaps.into_iter().map(|(n, _)| n).collect(),
    };
    for (source, candidates) in groups {
        if !opts.sources.is_empty() && !opts.sources.iter().any(|s| s == source) {
            continue;
        }
        let policy = opts.per_source.get(source).unwrap_or(&opts.policy);
        let group = plan_group(
            source,
            &candidates,
            policy,
            &opts.lifecycle,
            opts.now,
            &opts.time_zone,
        )
        .map_err(|e| Error::Invalid(format!("source {source}: {e}")))?;
        plan.groups.push(group);
    }
    Ok((plan, record_names))
}

/// Plans under a shared lock and, unless `dry_run`, deletes the snapshots the plan forgets and
/// then their records. The plan is computed again here rather than taken from the caller, so
/// a pin or drill recorded after a preview is respected.
pub fn forget(repo: &Repository, opts: &ForgetOptions, dry_run: bool) -> Result<ForgetSummary> {
    let lock = Lock::acquire(repo, false, "forget", &opts.host, Timestamp::now())?;
    let (plan, record_names) = gather(repo, opts)?;
    let mut summary = ForgetSummary {
        dry_run,
        plan,
        forgotten: 0,
        records_deleted: 0,
        locked: Vec::new(),
    };
    if !dry_run {
        let mut refused = None;
        for id in summary.plan.forget_ids() {
            let records = record_names.get(&id).map_or(&[][..], Vec::as_slice);
            match delete_snapshot(repo, &id.to_hex(), records)? {
                Ok(n) => {
                    summary.forgotten += 1;
                    summary.records_deleted += n;
                }
                Err(e) => {
                    refused.get_or_insert(e);
                    summary.locked.push(id);
                }
            }
        }
        none_deleted(summary.forgotten, refused)?;
    }
    lock.release()?;
    Ok(summary)
}

/// Deletes the snapshot object `id`, then its `records`: the snapshot first, so a crash
/// between leaves records of a snapshot that is gone (prune removes them), never a snapshot
/// without its pin. `Ok(Err(_))` when the storage refuses to delete the snapshot (a bucket's
/// lock rule still holds it, or credentials that may not delete): it is kept, with its
/// records; otherwise the number of records deleted.
fn delete_snapshot(
    repo: &Repository,
    id: &str,
    records: &[String],
) -> Result<std::result::Result<usize, backstop_storage::Error>> {
    match repo.storage().delete(Kind::Snapshot, id) {
        Ok(()) => {}
        Err(e @ backstop_storage::Error::AccessDenied { .. }) => return Ok(Err(e)),
        Err(e) => return Err(e.into()),
    }
    for name in records {
        repo.storage().delete(Kind::Record, name)?;
    }
    Ok(Ok(records.len()))
}

/// A forget whose every delete the storage refused has changed nothing: that is an error
/// (these credentials may not delete), not a summary of zero.
fn none_deleted(forgotten: usize, refused: Option<backstop_storage::Error>) -> Result<()> {
    match (forgotten, refused) {
        (0, Some(cause)) => Err(Error::CannotDelete {
            operation: "forget".into(),
            cause,
        }),
        _ => Ok(()),
    }
}

/// One snapshot that [`forget_named`] forgets.
#[derive(Debug, Clone, Serialize)]
pub struct NamedForget {
    /// The snapshot object's name (its id in hex).
    pub id: String,
    /// Its source and time, when the object can be read.
    pub source: Option<String>,
    pub time: Option<Timestamp>,
    /// Why it cannot be read, for a damaged snapshot object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// What `forget ID...` did.
#[derive(Debug, Clone, Serialize)]
pub struct NamedForgetSummary {
    pub dry_run: bool,
    pub snapshots: Vec<NamedForget>,
    /// Snapshots deleted (0 on a dry run).
    pub forgotten: usize,
    /// Records of those snapshots deleted.
    pub records_deleted: usize,
    /// Those the storage refused to delete (as [`ForgetSummary::locked`]), by id.
    pub locked: Vec<String>,
}

impl NamedForgetSummary {
    pub fn ids(&self) -> Vec<SnapshotId> {
        self.snapshots
            .iter()
            .filter_map(|s| SnapshotId::from_hex(&s.id).ok())
            .collect()
    }
}

/// Forgets the snapshots named by id (or a unique start of one), whatever the retention
/// policy says, including snapshot objects that cannot be read at all: those cannot be
/// repaired (nothing in them can be read) and they keep `prune` from running, since prune
/// cannot tell what they need. A pinned snapshot is refused (unpin it first), and so is any
/// name when a record cannot be read (it might be that snapshot's pin).
pub fn forget_named(
    repo: &Repository,
    names: &[String],
    dry_run: bool,
    host: &str,
) -> Result<NamedForgetSummary> {
    let lock = Lock::acquire(repo, false, "forget", host, Timestamp::now())?;
    let SnapshotList {
        readable: snaps,
        unreadable: bad_snaps,
    } = repo.snapshots()?;
    let SnapshotRecords {
        names: record_names,
        marks,
    } = read_records(repo)?;
    let mut chosen: Vec<NamedForget> = Vec::new();
    for want in names {
        let want = want.trim().to_ascii_lowercase();
        if want.is_empty() || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "{want:?} is not a snapshot id: give the id (or its start) that `backstop \
                 snapshots` or `backstop verify` shows"
            )));
        }
        let mut found: Vec<NamedForget> = snaps
            .iter()
            .filter(|(id, _)| id.to_hex().starts_with(&want))
            .map(|(id, s)| NamedForget {
                id: id.to_hex(),
                source: Some(s.source.name.clone()),
                time: Some(s.time),
                unreadable: None,
            })
            .collect();
        found.extend(
            bad_snaps
                .iter()
                .filter(|(name, _)| name.starts_with(&want))
                .map(|(name, e)| NamedForget {
                    id: name.clone(),
                    source: None,
                    time: None,
                    unreadable: Some(e.to_string()),
                }),
        );
        let one = match found.len() {
            0 => {
                return Err(Error::NotFound(format!(
                    "no snapshot with id {want} (see `backstop snapshots`; damaged ones are \
                     named by `backstop verify`)"
                )));
            }
            1 => found.remove(0),
            n => {
                return Err(Error::Invalid(format!(
                    "{n} snapshots have ids starting with {want}: give more of the id"
                )));
            }
        };
        if let Ok(id) = SnapshotId::from_hex(&one.id)
            && marks.get(&id).is_some_and(|m| m.pinned)
        {
            return Err(Error::Invalid(format!(
                "snapshot {} is pinned: nothing was forgotten (unpin it first if it should go)",
                one.id
            )));
        }
        if !chosen.iter().any(|c| c.id == one.id) {
            chosen.push(one);
        }
    }
    let mut summary = NamedForgetSummary {
        dry_run,
        snapshots: chosen,
        forgotten: 0,
        records_deleted: 0,
        locked: Vec::new(),
    };
    if !dry_run {
        let mut refused = None;
        for s in &summary.snapshots {
            let id = SnapshotId::from_hex(&s.id).ok();
            let records = id
                .and_then(|id| record_names.get(&id))
                .map_or(&[][..], Vec::as_slice);
            match delete_snapshot(repo, &s.id, records)? {
                Ok(n) => {
                    summary.forgotten += 1;
                    summary.records_deleted += n;
                }
                Err(e) => {
                    refused.get_or_insert(e);
                    summary.locked.push(s.id.clone());
                }
            }
        }
        none_deleted(summary.forgotten, refused)?;
    }
    lock.release()?;
    Ok(summary)
}
