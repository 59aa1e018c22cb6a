//! `backstop init`

use backstop_engine::InitOptions;
use backstop_format::Timestamp;
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
}

#[derive(Serialize)]
struct Out {
    repository: String,
    encrypted: bool,
    id: String,
    version: u32,
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
    let repo = backstop_app::repository::init(&loc, &opts)?;
    let out = Out {
        repository: loc.to_string(),
        encrypted: repo.is_encrypted(),
        id: repo.config().id.clone(),
        version: repo.config().version,
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
