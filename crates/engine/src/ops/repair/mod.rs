//! Repair: get back what a damaged repository still holds, without deleting data.
//!
//! - [`index`]: rebuild the index from the packs' trailers;
//! - [`snapshots`]: copy each snapshot part of which is lost into a repaired snapshot of what
//!   can still be read;
//! - [`records`]: delete records that cannot be read (they block `forget`).
//!
//! Each takes the exclusive lock (no backup, prune or other repair runs meanwhile).

pub mod index;
pub mod records;
pub mod snapshots;

pub use index::{RepairIndexSummary, repair_index};
pub use records::{RepairRecordsSummary, repair_records};
pub use snapshots::{RepairSnapshotsOptions, RepairSnapshotsSummary, repair_snapshots};
