//! `backstop snapshots`

use backstop_engine::listing::{ListFilter, list_snapshots};
use backstop_format::Timestamp;

use crate::context::{Ctx, GlobalArgs};
use crate::output::{bytes, drill, print_json};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only snapshots of this source
    #[arg(long)]
    pub source: Option<String>,
    /// Only snapshots with this tag
    #[arg(long)]
    pub tag: Option<String>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    let now = Timestamp::now();
    let filter = ListFilter {
        source: a.source.clone(),
        tag: a.tag.clone(),
        kind: None,
    };
    let (rows, bad) = list_snapshots(&repo, &filter, &ctx.config.lifecycle()?, now)?;
    for (name, e) in &bad {
        eprintln!("warning: snapshot {name} cannot be read: {e}");
    }
    if g.json {
        print_json(&rows)?;
        return Ok(crate::exit::OK);
    }
    if rows.is_empty() {
        outln!("no snapshots")?;
        return Ok(crate::exit::OK);
    }
    let tz = ctx.config.time_zone()?;
    outln!(
        "{:<10} {:<19} {:<16} {:<11} {:>10}  {:<36} {}",
        "ID",
        "TIME",
        "SOURCE",
        "KIND",
        "SIZE",
        "VERIFIED",
        "TAGS / DESCRIPTION"
    )?;
    for r in &rows {
        let t = crate::output::time(r.time, &tz);
        let verified = match &r.verification {
            None => "not drilled".to_string(),
            Some(v) => drill(v.state == "passed", v.time, v.duration_ms, now),
        };
        let mut extra = String::new();
        if r.pinned {
            extra.push_str("[pinned] ");
        }
        if let Some(from) = &r.repaired_from {
            extra.push_str(&format!("[repaired copy of {}] ", from.short()));
        }
        if let Some(p) = &r.pre_change {
            extra.push_str(&format!("[{}] ", p.human()));
        }
        extra.push_str(&r.tags.join(","));
        if let Some(d) = &r.description {
            if !extra.is_empty() {
                extra.push(' ');
            }
            extra.push_str(d);
        }
        outln!(
            "{:<10} {:<19} {:<16} {:<11} {:>10}  {:<36} {}",
            r.id.short(),
            t,
            r.source,
            r.kind.as_str(),
            bytes(r.bytes),
            verified,
            extra
        )?;
    }
    outln!("{} snapshot(s)", rows.len())?;
    Ok(crate::exit::OK)
}
