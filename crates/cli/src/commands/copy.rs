//! `backstop copy`: copy snapshots to another repository (an offsite copy), sending only the
//! chunks it lacks; a first copy to an empty location creates the repository there with the
//! source's keys.

use backstop_app::repository::{self, Credentials, Location};
use backstop_engine::copy::{CopyOptions, copy};
use backstop_engine::{Error as EngineError, InitOptions};
use backstop_format::{SnapshotId, Timestamp};
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, host, load_index};
use crate::output::{UsageError, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to copy: a `[repositories.NAME]` name, a directory or s3://BUCKET/PREFIX (created,
    /// with the source's keys and passphrase, if no repository is there)
    #[arg(long, value_name = "NAME|LOCATION")]
    pub to: String,
    /// Where to copy from [default: the main repository, --repo]
    #[arg(long, value_name = "NAME|LOCATION")]
    pub from: Option<String>,
    /// Snapshots to copy (ids, prefixes or specs like latest:SOURCE) [default: every snapshot
    /// the destination lacks]
    pub snapshots: Vec<String>,
}

#[derive(Serialize)]
struct Out {
    from: String,
    to: String,
    /// Whether this copy created the destination repository.
    created: bool,
    copied: Vec<String>,
    present: Vec<String>,
    chunks_new: u64,
    bytes_added: u64,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let from_loc = match &a.from {
        Some(f) => Location::resolve(Some(f), &ctx.config).expect("a location given"),
        None => ctx.repo_location().ok_or_else(|| {
            UsageError(
                "no repository to copy from: pass --from or --repo, set BACKSTOP_REPO, or set \
                 `repository` in backstop.toml"
                    .into(),
            )
        })?,
    };
    let to_loc = Location::resolve(Some(&a.to), &ctx.config).expect("a location given");
    if from_loc == to_loc {
        return Err(UsageError(format!("--to names the repository copied from ({to_loc})")).into());
    }
    let creds = Credentials::from_env(g.password_file.clone());
    let from_pass = creds.passphrase(&ctx.config, Some(&from_loc))?;
    // The destination's own passphrase file if its section names one, else the source's.
    let to_pass = match to_loc.password_file() {
        Some(f) => Some(repository::read_password_file(&f)?),
        None => from_pass.clone(),
    };
    let cache = ctx.cache_use();
    let src = repository::open_with(&from_loc, from_pass.as_deref(), &cache)?;
    let (dst, created) = match repository::open_with(&to_loc, to_pass.as_deref(), &cache) {
        Ok(r) => (r, false),
        Err(e) if matches!(e.downcast_ref(), Some(EngineError::NoRepository(_))) => {
            let pass = src.is_encrypted().then(|| to_pass.clone()).flatten();
            let opts = InitOptions::new(pass, Timestamp::now(), host());
            let made = repository::init_like(&to_loc, &src, from_pass.as_deref(), &opts)?;
            if !g.quiet && !g.json {
                eprintln!(
                    "created a repository at {to_loc} with the keys of {from_loc} ({})",
                    if made.is_encrypted() {
                        "encrypted"
                    } else {
                        "unencrypted"
                    }
                );
            }
            (made, true)
        }
        Err(e) => return Err(e),
    };
    let mut ids: Vec<SnapshotId> = Vec::new();
    for spec in &a.snapshots {
        ids.push(src.find_snapshot(spec)?.0);
    }
    let from_ix = load_index(&src, g.quiet)?;
    let to_ix = load_index(&dst, g.quiet)?;
    let summary = copy(
        &from_ix,
        &to_ix,
        &CopyOptions {
            snapshots: ids,
            host: host(),
        },
        &backstop_engine::progress::NoProgress,
    )?;
    let out = Out {
        from: from_loc.to_string(),
        to: to_loc.to_string(),
        created,
        copied: summary.copied.iter().map(|i| i.to_hex()).collect(),
        present: summary.present.iter().map(|i| i.to_hex()).collect(),
        chunks_new: summary.chunks_new,
        bytes_added: summary.bytes_added,
    };
    if g.json {
        print_json(&out)?;
    } else if !g.quiet {
        outln!(
            "copied {} snapshot(s) to {} ({} new chunks, {:.1} MiB); {} already there",
            out.copied.len(),
            out.to,
            out.chunks_new,
            out.bytes_added as f64 / (1 << 20) as f64,
            out.present.len()
        )?;
    }
    Ok(crate::exit::OK)
}
