//! The application layer: what the command line (`backstop`) and the daemon (`backstop serve`)
//! both do, written once.
//!
//! Here: the config model (`backstop.toml`) and its mapping to sources, exclusion rules,
//! opening a repository and loading its index, the requests both front ends make (backup,
//! restore, verify and drills, forget and prune) with their defaults and merging rules, which
//! snapshot a spec names, the one-line verdict of a result and the remedy for an error, what
//! the daemon runs on, and the error markers front ends map to exit codes and HTTP statuses.
//! Not here: argument parsing (clap), HTTP (axum), printing and progress bars; those belong
//! to the front ends, which turn their input into this crate's types and show its results.
//! Below this crate sits the engine (`backstop_engine`); front ends reach storage and sources
//! only through it and this crate.

pub mod backup;
pub mod config;
pub mod copies;
pub mod copy;
pub mod daemon;
pub mod error;
pub mod exclude;
pub mod export;
pub mod import;
pub mod outcome;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod snapshots;
pub mod sources;
pub mod validate;
pub mod verify;
