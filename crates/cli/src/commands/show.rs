//! `backstop show SNAPSHOT`

use backstop_engine::content::Loader;
use backstop_format::SnapshotId;
use backstop_format::manifest::{Item, Snapshot};
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, load_index};
use crate::output::{bytes, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id, unique id prefix, latest, or latest:SOURCE
    pub snapshot: String,
}

#[derive(Serialize)]
struct Out<'a> {
    id: SnapshotId,
    #[serde(flatten)]
    snapshot: &'a Snapshot,
    item_list: Vec<Item>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let (id, snap) = repo.find_snapshot(&a.snapshot)?;
    let index = load_index(&repo, g.quiet)?;
    let items = Loader::new(&repo, &index).read_items(&snap.items)?;
    if g.json {
        print_json(&Out {
            id,
            snapshot: &snap,
            item_list: items,
        })?;
        return Ok(crate::exit::OK);
    }
    outln!("snapshot    {id}")?;
    outln!("time        {}", snap.time)?;
    outln!(
        "source      {} ({})",
        snap.source.name,
        snap.source.kind.as_str()
    )?;
    outln!("kind        {}", snap.kind.as_str())?;
    outln!("host        {}", snap.host)?;
    outln!("paths       {}", snap.paths.join(" "))?;
    if let Some(d) = &snap.description {
        outln!("description {d}")?;
    }
    if !snap.tags.is_empty() {
        outln!("tags        {}", snap.tags.join(", "))?;
    }
    if let Some(t) = &snap.ticket {
        outln!("ticket      {t}")?;
    }
    if let Some(p) = &snap.parent {
        outln!("parent      {p}")?;
    }
    outln!(
        "size        {} in {} item(s); this backup added {}",
        bytes(snap.stats.bytes),
        snap.stats.items,
        bytes(snap.stats.bytes_added)
    )?;
    for w in &snap.warnings {
        outln!("warning     {w}")?;
    }
    outln!()?;
    outln!("{:<8} {:>12}  {:<16} PATH", "TYPE", "SIZE", "BLAKE3")?;
    for i in &items {
        let hash = i
            .content
            .as_ref()
            .map(|c| c.hash[..16].to_string())
            .unwrap_or_default();
        let kind = serde_json::to_value(i.kind)?
            .as_str()
            .unwrap_or("?")
            .to_string();
        let path = match &i.target {
            Some(t) => format!("{} -> {t}", i.path),
            None => i.path.clone(),
        };
        outln!("{:<8} {:>12}  {:<16} {}", kind, i.size, hash, path)?;
    }
    Ok(crate::exit::OK)
}
