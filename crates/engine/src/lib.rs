//! The backstop engine: repositories, backup, restore, verify, forget and prune.
//!
//! Both front ends reach it through the application layer (`backstop-app`), with the same
//! option and summary types. The engine never prints; it reports through [`Progress`].
//!
//! Its rooms: [`repository`] (mechanics: open/init, the index, locks, keys, specs, records,
//! reading content), [`store`] (the write path: dedup, compression, packs, trees), [`ops`]
//! (operations: backup, restore, database restores, drills, verify, forget, prune, repair) and [`reports`] (listing, stats, status: read only). Mechanics call neither
//! operations nor reports, and reports call no operation.
//!
//! ```no_run
//! use std::sync::Arc;
//! use backstop_engine::{backup, BackupOptions, Indexed, NoProgress, Repository};
//! use backstop_sources::files::FilesSource;
//! use backstop_storage::LocalStorage;
//!
//! let repo = Repository::open(Arc::new(LocalStorage::new("backups/repo")), None)?;
//! let ix = Indexed::load(&repo)?;
//! let mut source = FilesSource::new(vec!["data/shop.db".into()], vec![])?;
//! let opts = BackupOptions {
//!     source_name: "shop".into(),
//!     kind: Default::default(),
//!     description: None,
//!     tags: vec![],
//!     ticket: None,
//!     time: backstop_format::Timestamp::now(),
//!     host: "till-1".into(),
//!     program: "backstop".into(),
//!     force: false,
//!     skip_unchanged: false,
//! };
//! let summary = backup(&ix, &mut source, &opts, &NoProgress)?;
//! println!("snapshot {} added {} bytes", summary.id, summary.bytes_added);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod ops;
pub mod progress;
pub mod reports;
pub mod repository;
pub mod store;

// The flat paths the front ends, the tests and the backup module use.
pub use ops::{backup, copy, database, drill, forget, prune, repair, restore, verify};
pub use reports::{listing, stats, status};
pub use repository as repo;
pub use repository::{attempts, content, index, keys, lock, spec};
pub use store::chunker;

pub use backup::{BackupOptions, BackupSummary, backup};
pub use error::{Error, ErrorKind, Result};
pub use forget::{ForgetOptions, ForgetPlan, ForgetSummary, forget, plan_forget};
pub use index::{Index, IndexProblem, LoadedIndex};
pub use progress::{NoProgress, Progress, Within};
pub use prune::{PruneOptions, PrunePlan, PruneSummary, prune};
pub use repo::{InitOptions, ObjectTotals, Repository};
pub use repository::indexed::Indexed;
pub use repository::spill::SpillOptions;
pub use restore::{
    RestoreItems, RestoreOptions, RestorePlan, RestoreSummary, plan_restore, restore,
};
pub use spec::SpecClock;
pub use stats::{StatsOptions, StatsReport, stats};
pub use verify::{VerifyOptions, VerifyReport, verify};
