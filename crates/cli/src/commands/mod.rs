//! One file per command.

pub mod backup;
pub mod info;
pub mod init;
pub mod restore;
pub mod show;
pub mod snapshots;
pub mod verify;
