//! `backstop init`

use backstop_engine::InitOptions;
use backstop_format::Timestamp;
use backstop_format::config::{LockMode, ObjectLock};
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, host};
use crate::output::{UsageError, print_json};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptionArg {
    /// Encrypt every object; the passphrase comes from BACKSTOP_PASSWORD, BACKSTOP_PASSWORD_FILE or --password-file
    Passphrase,
    /// Store objects unencrypted
    None,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Encryption of the new repository [default: passphrase if one is given, otherwise none]
    #[arg(long, value_enum)]
    pub encryption: Option<EncryptionArg>,
    /// zstd compression level for chunks (0 = none, 1 = fast, up to 19)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub compression: i32,
    /// S3 only, in a bucket with Object Lock enabled: write every object with a retention of
    /// this many days, so that no one can delete or replace it before then (docs/s3.md,
    /// "History a compromised machine cannot delete")
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub object_lock_days: Option<u32>,
    /// With --object-lock-days: `compliance` (no one can shorten it) or `governance` (a user
    /// allowed to bypass governance retention can)
    #[arg(
        long,
        value_enum,
        default_value = "compliance",
        requires = "object_lock_days"
    )]
    pub object_lock_mode: LockModeArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockModeArg {
    Compliance,
    Governance,
}

#[derive(Serialize)]
struct Out {
    repository: String,
    encrypted: bool,
    id: String,
    version: u32,
    /// Days of retention written with every object, if any.
    object_lock_days: Option<u32>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let loc = ctx.repo_location().ok_or_else(|| {
        UsageError("no repository given: pass --repo, set BACKSTOP_REPO, or set `repository` in backstop.toml".into())
    })?;
    let pass = ctx.passphrase()?;
    let enc = a.encryption.unwrap_or(if pass.is_some() {
        EncryptionArg::Passphrase
    } else {
        EncryptionArg::None
    });
    let passphrase = match enc {
        EncryptionArg::None => None,
        EncryptionArg::Passphrase => Some(pass.ok_or_else(|| {
            UsageError(
                "--encryption passphrase needs a passphrase: set BACKSTOP_PASSWORD or BACKSTOP_PASSWORD_FILE, or pass --password-file".into(),
            )
        })?),
    };
    let mut opts = InitOptions::new(passphrase, Timestamp::now(), host());
    opts.compression = a.compression;
    opts.object_lock = a.object_lock_days.map(|days| ObjectLock {
        days,
        mode: match a.object_lock_mode {
            LockModeArg::Compliance => LockMode::Compliance,
            LockModeArg::Governance => LockMode::Governance,
        },
    });
    let repo = backstop_app::repository::init(&loc, &opts)?;
    let out = Out {
        repository: loc.to_string(),
        encrypted: repo.is_encrypted(),
        id: repo.config().id.clone(),
        version: repo.config().version,
        object_lock_days: repo.config().object_lock.map(|l| l.days),
    };
    if g.json {
        print_json(&out)?;
    } else if !g.quiet {
        outln!(
            "created repository {} ({})",
            out.repository,
            if out.encrypted {
                "encrypted: XChaCha20-Poly1305, key from passphrase via Argon2id; keep the passphrase safe, without it the data cannot be read"
            } else {
                "NOT encrypted"
            }
        )?;
    }
    Ok(crate::exit::OK)
}
