//! `backstop info`

use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, load_index};
use crate::output::{bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {}

#[derive(Serialize)]
struct Out {
    repository: String,
    id: String,
    version: u32,
    encrypted: bool,
    encryption: String,
    compression: i32,
    chunker: backstop_format::config::ChunkerParams,
    /// The retention written with every object (S3 Object Lock), if any.
    object_lock: Option<backstop_format::config::ObjectLock>,
    snapshots: usize,
    packs: usize,
    chunks: usize,
    stored_bytes: u64,
    index_files: usize,
}

pub fn run(g: &GlobalArgs, _a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let ix = load_index(&repo, g.quiet)?;
    let index = ix.index();
    let totals = repo.object_totals()?;
    let c = repo.config();
    let out = Out {
        repository: repo.location(),
        id: c.id.clone(),
        version: c.version,
        encrypted: repo.is_encrypted(),
        encryption: if repo.is_encrypted() {
            "xchacha20-poly1305, argon2id passphrase key".into()
        } else {
            "none".into()
        },
        compression: c.compression,
        chunker: c.chunker,
        object_lock: c.object_lock,
        snapshots: totals.snapshots,
        packs: totals.packs,
        chunks: index.len(),
        stored_bytes: totals.stored_bytes,
        index_files: index.files.len(),
    };
    if g.json {
        print_json(&out)?;
        return Ok(crate::exit::OK);
    }
    outln!("repository  {}", out.repository)?;
    outln!("id          {}", out.id)?;
    outln!("format      version {}", out.version)?;
    outln!(
        "encryption  {}",
        if out.encrypted {
            "ON (XChaCha20-Poly1305, Argon2id passphrase key)"
        } else {
            "OFF (not encrypted)"
        }
    )?;
    outln!("compression zstd level {}", out.compression)?;
    if let Some(l) = &out.object_lock {
        outln!(
            "object lock {} days, {} mode, on every object but locks",
            l.days,
            match l.mode {
                backstop_format::config::LockMode::Compliance => "compliance",
                backstop_format::config::LockMode::Governance => "governance",
            }
        )?;
    }
    outln!("snapshots   {}", out.snapshots)?;
    outln!(
        "packs       {} ({} chunks, {} index files)",
        out.packs,
        out.chunks,
        out.index_files
    )?;
    outln!("stored      {}", bytes(out.stored_bytes))?;
    Ok(crate::exit::OK)
}
