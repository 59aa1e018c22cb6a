//! 3-2-1 status: for each source, which repositories hold its newest snapshot (the main one and
//! its `copy_to` ones), on how many kinds of storage, whether one is offsite, each copy's newest
//! snapshot that passed a restore drill, and whether the source's rules (`copies = N`,
//! `offsite = true`) are met. `backstop status` adds it to each source.

use std::collections::{BTreeMap, BTreeSet};

use backstop_engine::Repository;
use backstop_format::{SnapshotId, Timestamp};
use serde::Serialize;

use crate::config::Config;
use crate::copy::Destination;
use crate::repository::{self, CacheUse, Location};

/// One repository of a source, as the status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CopyState {
    /// The `[repositories.NAME]` name, if it has one.
    pub name: Option<String>,
    pub location: String,
    /// `local` or `s3`.
    pub storage: &'static str,
    pub offsite: bool,
    /// Whether it holds the source's newest snapshot (of the main repository).
    pub holds_newest: bool,
    /// Its newest snapshot of the source, and how old that is.
    pub newest: Option<SnapshotId>,
    pub newest_age_seconds: Option<i64>,
    /// Its newest snapshot of the source that passed a restore drill there, and how old that
    /// snapshot is.
    pub newest_verified: Option<SnapshotId>,
    pub newest_verified_age_seconds: Option<i64>,
    /// Why it could not be read (then it holds nothing as far as the status knows).
    pub error: Option<String>,
    /// Since when the copies to it have failed, and the newest failure, as the daemon's job
    /// history says (`None` outside the daemon, and while its newest copy worked).
    pub copy_failing_since: Option<Timestamp>,
    pub copy_error: Option<String>,
}

/// A source's copies.
#[derive(Debug, Clone, Serialize)]
pub struct SourceCopies {
    pub source: String,
    /// The main repository's newest snapshot of the source.
    pub newest: Option<SnapshotId>,
    /// Repositories holding it, kinds of storage among them, and whether one is offsite.
    pub copies: usize,
    pub storage_kinds: usize,
    pub offsite: bool,
    /// The rules, as configured.
    pub required_copies: Option<usize>,
    pub required_offsite: bool,
    pub repositories: Vec<CopyState>,
    /// The rules not met, and the copies that failed, in words.
    pub problems: Vec<String>,
}

/// The copies of every configured source that has `copy_to` repositories or a rule; `main` is
/// the repository opened at `main_location`, `passphrase` its passphrase (the destinations'
/// default, as for a copy).
pub fn copies(
    config: &Config,
    main: &Repository,
    main_location: &Location,
    passphrase: Option<&str>,
    cache: &CacheUse,
    now: Timestamp,
) -> anyhow::Result<Vec<SourceCopies>> {
    let mut out = Vec::new();
    for (name, s) in &config.sources {
        let rules = Rules {
            copies: s.copies,
            offsite: s.offsite,
        };
        if !rules.apply(s.copy_to.len()) {
            continue;
        }
        let dests = s
            .copy_to
            .iter()
            .map(|to| Destination::resolve(to, config, passphrase))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.push(source_copies(
            name,
            (main, main_location),
            &dests,
            rules,
            cache,
            now,
        ));
    }
    Ok(out)
}

/// A source's 3-2-1 rules (`copies`, `offsite` in its config section).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    pub copies: Option<usize>,
    pub offsite: bool,
}

impl Rules {
    /// Whether a source with these rules and `destinations` copies has a 3-2-1 status at all.
    pub fn apply(&self, destinations: usize) -> bool {
        destinations > 0 || self.copies.is_some() || self.offsite
    }
}

/// The copies of `source`: in `main` (the repository and where it is) and in `dests`.
pub fn source_copies(
    source: &str,
    (main, main_location): (&Repository, &Location),
    dests: &[Destination],
    rules: Rules,
    cache: &CacheUse,
    now: Timestamp,
) -> SourceCopies {
    let mut repos = vec![state(source, main_location, Ok(main), now)];
    for dest in dests {
        let opened = repository::open_with(&dest.location, dest.passphrase.as_deref(), cache);
        repos.push(state(source, &dest.location, opened.as_ref(), now));
    }
    let newest = repos[0].newest;
    for r in &mut repos {
        r.holds_newest = newest.is_some() && r.newest == newest;
    }
    let holding: Vec<&CopyState> = repos.iter().filter(|r| r.holds_newest).collect();
    let kinds: BTreeSet<&str> = holding.iter().map(|r| r.storage).collect();
    let offsite = holding.iter().any(|r| r.offsite);
    let mut problems = Vec::new();
    for r in &repos {
        if let Some(e) = &r.error {
            problems.push(format!("copy at {} failing: {e}", r.location));
        }
    }
    if let Some(n) = rules.copies
        && holding.len() < n
    {
        problems.push(format!(
            "{} of the required {n} copies hold the newest snapshot",
            holding.len()
        ));
    }
    if rules.offsite && !offsite {
        problems.push("no offsite copy holds the newest snapshot".into());
    }
    SourceCopies {
        source: source.to_owned(),
        newest,
        copies: holding.len(),
        storage_kinds: kinds.len(),
        offsite,
        required_copies: rules.copies,
        required_offsite: rules.offsite,
        repositories: repos,
        problems,
    }
}

/// What `repo` (or the error opening it) says of `source`.
fn state(
    source: &str,
    location: &Location,
    repo: Result<&Repository, &anyhow::Error>,
    now: Timestamp,
) -> CopyState {
    let mut st = CopyState {
        name: location.name().map(str::to_owned),
        location: location.to_string(),
        storage: if location.is_remote() { "s3" } else { "local" },
        offsite: location.is_remote(),
        holds_newest: false,
        newest: None,
        newest_age_seconds: None,
        newest_verified: None,
        newest_verified_age_seconds: None,
        error: None,
        copy_failing_since: None,
        copy_error: None,
    };
    let repo = match repo {
        Ok(r) => r,
        Err(e) => {
            st.error = Some(format!("{e:#}"));
            return st;
        }
    };
    let read = |st: &mut CopyState| -> anyhow::Result<()> {
        let snaps = repo.snapshots()?.readable;
        let mine: Vec<_> = snaps
            .iter()
            .filter(|(_, s)| s.source.name == source)
            .collect();
        let age = |t: Timestamp| now.as_second() - t.as_second();
        if let Some((id, s)) = mine.iter().max_by_key(|(_, s)| s.time) {
            st.newest = Some(*id);
            st.newest_age_seconds = Some(age(s.time));
        }
        let drills = repo.verification()?;
        if let Some((id, s)) = mine
            .iter()
            .filter(|(id, _)| drills.get(id).is_some_and(|r| r.passed))
            .max_by_key(|(_, s)| s.time)
        {
            st.newest_verified = Some(*id);
            st.newest_verified_age_seconds = Some(age(s.time));
        }
        Ok(())
    };
    if let Err(e) = read(&mut st) {
        st.error = Some(format!("{e:#}"));
    }
    st
}

/// Which other repositories hold each snapshot: what `backstop snapshots` shows beside each.
#[derive(Debug, Clone, Default)]
pub struct Holders {
    /// The repositories (by name, else location) holding each snapshot, in config order.
    pub by_snapshot: BTreeMap<SnapshotId, Vec<String>>,
    /// Repositories that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
}

/// The repositories the config knows besides the one at `this`: the main one
/// (`repository`), each `[repositories.NAME]`, and each location a source copies to, once
/// each.
pub fn other_repositories(config: &Config, this: &Location) -> Vec<Location> {
    let mut out: Vec<Location> = Vec::new();
    let named = config
        .repositories
        .keys()
        .filter_map(|n| Location::named(n, config));
    let copied_to = config
        .sources
        .values()
        .flat_map(|s| &s.copy_to)
        .filter_map(|to| Location::resolve(Some(to), config));
    for loc in Location::resolve(None, config)
        .into_iter()
        .chain(named)
        .chain(copied_to)
    {
        let place = loc.to_string();
        if place != this.to_string() && out.iter().all(|o| o.to_string() != place) {
            out.push(loc);
        }
    }
    out
}

/// Which of `others` hold which snapshots, opening each with its section's passphrase file,
/// else `passphrase` (a copy's default). A location with no repository holds nothing; one that
/// cannot be read is listed in `unreadable`.
pub fn holders(others: &[Location], passphrase: Option<&str>, cache: &CacheUse) -> Holders {
    let mut out = Holders::default();
    for loc in others {
        let label = loc.name().map_or_else(|| loc.to_string(), str::to_owned);
        let ids = (|| -> anyhow::Result<Vec<SnapshotId>> {
            let pass = match loc.password_file() {
                Some(f) => Some(repository::read_password_file(&f)?),
                None => passphrase.map(str::to_owned),
            };
            let repo = match repository::open_with(loc, pass.as_deref(), cache) {
                Err(e) if repository::is_no_repository(&e) => return Ok(vec![]),
                r => r?,
            };
            Ok(repo
                .snapshots()?
                .readable
                .into_iter()
                .map(|(id, _)| id)
                .collect())
        })();
        match ids {
            Ok(ids) => {
                for id in ids {
                    out.by_snapshot.entry(id).or_default().push(label.clone());
                }
            }
            Err(e) => out.unreadable.push((label, format!("{e:#}"))),
        }
    }
    out
}
