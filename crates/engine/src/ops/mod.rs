//! Operations: what changes or checks a repository as a whole, each behind its options and
//! summary types: backup (`crate::ops::backup`, still beside this room), restore of files and of
//! databases (a restore plan's rows compared one by one: `compare`), restore drills, verify,
//! forget, prune, repair, and the lengthening of object-lock retentions (`object_lock`). They use the repository's mechanics (`crate::repository`) and the
//! write path (`crate::store`); reports never call them.

pub mod backup;
pub mod compare;
pub mod copy;
pub mod database;
pub mod drill;
pub mod forget;
pub mod object_lock;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod verify;
