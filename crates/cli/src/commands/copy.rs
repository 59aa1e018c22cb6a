//! `backstop copy`: copy snapshots to another repository (an offsite copy), sending only the
//! chunks it lacks; a first copy to an empty location creates the repository there with the
//! source's keys.

use backstop_app::copy::{Destination, copy};
use backstop_app::repository::{self, Credentials, Location};
use backstop_format::SnapshotId;
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, host, warner};
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
    // The same place, however it is named (a section's name or its location).
    if from_loc.to_string() == to_loc.to_string() {
        return Err(UsageError(format!("--to names the repository copied from ({to_loc})")).into());
    }
    let creds = Credentials::from_env(g.password_file.clone());
    let from_pass = creds.passphrase(&ctx.config, Some(&from_loc))?;
    let dest = Destination::resolve(&a.to, &ctx.config, from_pass.as_deref())?;
    let cache = ctx.cache_use();
    let src = repository::open_with(&from_loc, from_pass.as_deref(), &cache)?;
    let mut ids: Vec<SnapshotId> = Vec::new();
    for spec in &a.snapshots {
        ids.push(src.find_snapshot(spec)?.0);
    }
    let copied = copy(
        &src,
        from_pass.as_deref(),
        &dest,
        ids,
        &cache,
        &host(),
        &warner(g.quiet),
        &backstop_engine::progress::NoProgress,
    )?;
    if copied.created && !g.quiet && !g.json {
        eprintln!("created a repository at {to_loc} with the keys of {from_loc}");
    }
    let summary = copied.summary;
    let out = Out {
        from: from_loc.to_string(),
        to: to_loc.to_string(),
        created: copied.created,
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
