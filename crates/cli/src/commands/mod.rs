//! One file per command (pin.rs holds pin, unpin and mark-verified: one kind of record).

pub mod access;
pub mod backup;
pub mod completions;
pub mod copy;
pub mod diff;
pub mod export;
pub mod forget;
pub mod import;
pub mod info;
pub mod init;
pub mod key;
pub mod man;
pub mod object_lock;
pub mod pin;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod serve;
pub mod show;
pub mod snapshots;
pub mod stats;
pub mod status;
pub mod unlock;
pub mod validate;
pub mod verify;
