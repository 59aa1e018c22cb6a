//! Copying snapshots to another repository: the request `backstop copy` and the daemon's copy
//! jobs (`copy_to` on a source) share. The destination is opened, or created with the source's
//! keys when no repository is there yet (`Repository::init_like`), and `engine::copy` sends
//! what it lacks.

use backstop_engine::copy::{CopyOptions, CopySummary};
use backstop_engine::progress::Progress;
use backstop_engine::{InitOptions, Repository};
use backstop_format::{SnapshotId, Timestamp};

use crate::repository::{self, CacheUse, Location};
use crate::retention::Retention;

/// Where a copy goes, the passphrase that opens (or will open) the repository there, and what
/// the daemon's forget keeps there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub location: Location,
    pub passphrase: Option<String>,
    /// Its section's `retention`, else the configured policies (as the main repository's).
    pub retention: Retention,
}

impl Destination {
    /// `to` (a `[repositories.NAME]` name or a location) with its section's `password_file`,
    /// else `fallback` (the source repository's passphrase: a first copy creates the
    /// destination with the same one).
    pub fn resolve(
        to: &str,
        config: &crate::config::Config,
        fallback: Option<&str>,
    ) -> anyhow::Result<Self> {
        let location = Location::resolve(Some(to), config).expect("a location given");
        let passphrase = match location.password_file() {
            Some(f) => Some(repository::read_password_file(&f)?),
            None => fallback.map(str::to_owned),
        };
        Ok(Self {
            retention: Retention::of_repository(config, Some(&location)),
            location,
            passphrase,
        })
    }
}

/// What [`copy`] did: the engine's summary, where to, and whether it made the repository.
#[derive(Debug, Clone)]
pub struct Copied {
    pub to: String,
    pub created: bool,
    pub summary: CopySummary,
    /// The destination's Object Lock, if it has one: the daemon then lengthens its retentions
    /// as it does the main repository's.
    pub object_lock: Option<backstop_format::config::ObjectLock>,
}

/// Copies `snapshots` of `src` (every snapshot when empty) that `dest` lacks. `src_passphrase`
/// opens `src`'s key when the destination must be created.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    src: &Repository,
    src_passphrase: Option<&str>,
    dest: &Destination,
    snapshots: Vec<SnapshotId>,
    cache: &CacheUse,
    host: &str,
    warn: &dyn Fn(&str),
    progress: &dyn Progress,
) -> anyhow::Result<Copied> {
    let pass = dest.passphrase.as_deref();
    let (dst, created) = match repository::open_with(&dest.location, pass, cache) {
        Ok(r) => (r, false),
        Err(e) if repository::is_no_repository(&e) => {
            let pass = src
                .is_encrypted()
                .then(|| pass.map(str::to_owned))
                .flatten();
            let opts = InitOptions::new(pass, Timestamp::now(), host.to_owned());
            let made = repository::init_like(&dest.location, src, src_passphrase, &opts)?;
            (made, true)
        }
        Err(e) => return Err(e),
    };
    let from_ix = repository::load_index(src, warn)?;
    let to_ix = repository::load_index(&dst, warn)?;
    let summary = backstop_engine::copy::copy(
        &from_ix,
        &to_ix,
        &CopyOptions {
            snapshots,
            host: host.to_owned(),
        },
        progress,
    )?;
    Ok(Copied {
        to: dest.location.to_string(),
        created,
        summary,
        object_lock: dst.config().object_lock,
    })
}
