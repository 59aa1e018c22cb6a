//! The backstop engine: repositories, backup, restore, verify, forget and prune.
//!
//! Every front end (the CLI, later the daemon and the web UI) calls the same functions with the
//! same option and summary types. The engine never prints; it reports through [`Progress`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use backstop_engine::{backup, BackupOptions, Index, NoProgress, Repository};
//! use backstop_sources::files::FilesSource;
//! use backstop_storage::LocalStorage;
//!
//! let repo = Repository::open(Arc::new(LocalStorage::new("backups/repo")), None)?;
//! let (mut index, _) = Index::load(&repo)?;
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
//! let summary = backup(&repo, &mut index, &mut source, &opts, &NoProgress)?;
//! println!("snapshot {} added {} bytes", summary.id, summary.bytes_added);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod attempts;
pub mod backup;
pub mod builder;
pub mod chunker;
pub mod content;
pub mod database;
mod direct;
pub mod drill;
pub mod error;
pub mod forget;
pub mod index;
pub mod keys;
pub mod listing;
pub mod lock;
mod packing;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod spec;
mod spill;
pub mod stats;
pub mod status;
pub mod store;
mod unchanged;
pub mod verify;

pub use backup::{BackupOptions, BackupSummary, backup};
pub use error::{Error, ErrorKind, Result};
pub use forget::{ForgetOptions, ForgetPlan, ForgetSummary, forget, plan_forget};
pub use index::Index;
pub use progress::{NoProgress, Progress};
pub use prune::{PruneOptions, PrunePlan, PruneSummary, prune};
pub use repo::{InitOptions, ObjectTotals, Repository};
pub use restore::{RestoreOptions, RestorePlan, RestoreSummary, plan_restore, restore};
pub use spec::SpecClock;
pub use spill::SpillOptions;
pub use stats::{StatsOptions, StatsReport, stats};
pub use verify::{VerifyOptions, VerifyReport, verify};
