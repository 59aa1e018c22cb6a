//! Repair: get back what a damaged repository still holds, without deleting data.
//!
//! - [`index`]: rebuild the index from the packs' trailers;
//!
//! Each takes the exclusive lock (no backup, prune or other repair runs meanwhile).

pub mod index;

pub use index::{RepairIndexSummary, repair_index};
