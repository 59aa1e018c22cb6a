//! `backstop unlock`: remove the locks of operations that died (a crashed prune on another
//! machine blocks every restore until its lock goes stale, 30 minutes later).

use backstop_engine::lock::{LockStatus, unlock};
use backstop_format::Timestamp;

use crate::context::{Ctx, GlobalArgs, host};
use crate::output::print_json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also remove the locks of operations that may still be running. A backup, restore or
    /// verify that starts beside a prune which is in fact still running can fail or store a
    /// snapshot that refers to deleted data: use it only once you know the holder is gone
    #[arg(long)]
    pub remove_all: bool,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    if a.remove_all {
        eprintln!(
            "warning: --remove-all removes the locks of operations that may still be running; \
             if one is (a prune above all), commands started now can fail or lose data"
        );
    }
    let summary = unlock(&repo, a.remove_all, Timestamp::now(), &host())?;
    if g.json {
        print_json(&summary)?;
        return Ok(crate::exit::OK);
    }
    for l in &summary.removed {
        outln!("removed {}", line(l))?;
    }
    for l in &summary.kept {
        outln!("kept    {}", line(l))?;
    }
    if !g.quiet {
        if summary.removed.is_empty() && summary.kept.is_empty() {
            outln!("the repository holds no locks")?;
        } else if !summary.kept.is_empty() {
            outln!(
                "{} lock(s) kept: their operations look alive (refreshed within 30 minutes). If \
                 you are sure they are not running (the machine crashed), run `backstop unlock \
                 --remove-all`",
                summary.kept.len()
            )?;
        }
    }
    Ok(crate::exit::OK)
}

fn line(l: &LockStatus) -> String {
    format!(
        "{}: {}{}",
        &l.name[..l.name.len().min(12)],
        l.description,
        if l.stale { " (stale)" } else { "" }
    )
}
