//! `backstop key list | add | remove | passwd`: the passphrases of an encrypted repository.

use std::path::PathBuf;

use backstop_engine::keys::{self, KeyInfo};
use backstop_format::Timestamp;
use backstop_format::crypto::KdfParams;

use crate::context::{Ctx, GlobalArgs, host};
use crate::output::{UsageError, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// List the key files; the one the passphrase given opens is marked
    List,
    /// Add a key: another passphrase that opens the repository (keep it apart from the first;
    /// either one opens the repository if the other is lost or its key file is damaged)
    Add(AddArgs),
    /// Remove a key file (never the one the passphrase given opens)
    Remove(RemoveArgs),
    /// Change the passphrase: a key file for the new passphrase is added (and checked), then
    /// the one the old passphrase opens is removed; no data is rewritten
    Passwd(AddArgs),
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// File holding the new passphrase [env: BACKSTOP_NEW_PASSWORD_FILE; or the passphrase
    /// itself in BACKSTOP_NEW_PASSWORD]
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// The key file's id, or the start of it (`backstop key list`)
    pub id: String,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let Some(pass) = ctx.passphrase()? else {
        return Err(UsageError("the repository is not encrypted: it has no keys".into()).into());
    };
    match a.what {
        What::List => {
            let list = keys::list_keys(&repo, &pass)?;
            if g.json {
                print_json(&list)?;
            } else {
                print_list(&list, &ctx.config.time_zone()?)?;
            }
        }
        What::Add(a) => {
            let k = add(&repo, &pass, &new_passphrase(&a)?)?;
            if g.json {
                print_json(&k)?;
            } else if !g.quiet {
                outln!(
                    "added key {}: the new passphrase opens the repository (checked). Keep it \
                     somewhere other than the first one",
                    k.id
                )?;
            }
        }
        What::Passwd(a) => {
            let new = new_passphrase(&a)?;
            let old = keys::list_keys(&repo, &pass)?
                .into_iter()
                .find(|k| k.current)
                .ok_or_else(|| anyhow::anyhow!("no key file is opened by the passphrase given"))?;
            // Added first: if anything stops in between, both passphrases open the repository.
            let added = add(&repo, &pass, &new)?;
            let removed = keys::remove_key(&repo, &new, &old.id)?;
            if g.json {
                print_json(&serde_json::json!({ "added": added, "removed": removed }))?;
            } else if !g.quiet {
                outln!(
                    "changed the passphrase: key {} added (checked), key {} of the old \
                     passphrase removed",
                    added.id,
                    removed.id
                )?;
            }
        }
        What::Remove(a) => {
            let k = keys::remove_key(&repo, &pass, &a.id)?;
            if g.json {
                print_json(&k)?;
            } else if !g.quiet {
                outln!(
                    "removed key {}: its passphrase no longer opens the repository",
                    k.id
                )?;
            }
        }
    }
    Ok(crate::exit::OK)
}

/// Adds a key file for `new` (opened with `pass`), checked by the engine before it returns.
fn add(repo: &backstop_engine::Repository, pass: &str, new: &str) -> anyhow::Result<KeyInfo> {
    Ok(keys::add_key(
        repo,
        pass,
        new,
        KdfParams::default(),
        Timestamp::now(),
        &host(),
    )?)
}

/// The new passphrase: --new-password-file, BACKSTOP_NEW_PASSWORD_FILE, BACKSTOP_NEW_PASSWORD.
fn new_passphrase(a: &AddArgs) -> anyhow::Result<String> {
    let file = a
        .new_password_file
        .clone()
        .or_else(|| std::env::var_os("BACKSTOP_NEW_PASSWORD_FILE").map(PathBuf::from));
    let p = match file {
        Some(f) => crate::context::read_password_file(&f)?,
        None => std::env::var("BACKSTOP_NEW_PASSWORD").map_err(|_| {
            UsageError(
                "no new passphrase: pass --new-password-file, or set BACKSTOP_NEW_PASSWORD_FILE \
                 or BACKSTOP_NEW_PASSWORD"
                    .into(),
            )
        })?,
    };
    if p.is_empty() {
        return Err(UsageError("the new passphrase is empty".into()).into());
    }
    Ok(p)
}

fn print_list(list: &[KeyInfo], tz: &jiff::tz::TimeZone) -> anyhow::Result<()> {
    outln!("{:<16} {:<25} {:<20} STATE", "ID", "CREATED", "HOST")?;
    for k in list {
        let created = k
            .created
            .map(|t| crate::output::time(t, tz))
            .unwrap_or_else(|| "?".into());
        let state = match (&k.damaged, k.current) {
            (Some(why), _) => format!("DAMAGED: {why}"),
            (None, true) => "opened by this passphrase".into(),
            (None, false) => "ok".into(),
        };
        outln!(
            "{:<16} {:<25} {:<20} {}",
            &k.id[..k.id.len().min(16)],
            created,
            k.host.as_deref().unwrap_or("?"),
            state
        )?;
    }
    let usable = list.iter().filter(|k| k.damaged.is_none()).count();
    if usable < 2 {
        outln!(
            "only one usable key: if its file is damaged or the passphrase lost, the data cannot \
             be read. Add a second with `backstop key add`"
        )?;
    }
    Ok(())
}
