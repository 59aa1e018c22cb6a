//! `backstop validate`

use crate::context::{Ctx, GlobalArgs};
use crate::output::print_json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The source whose rules run (its live database)
    #[arg(long)]
    pub source: String,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let (path, results) = backstop_app::validate::validate_source(&ctx.config, &a.source)?;
    let failing = results.iter().filter(|r| !r.passed).count();
    if g.json {
        print_json(&serde_json::json!({
            "source": a.source,
            "path": path,
            "passed": failing == 0,
            "rules": results,
        }))?;
    } else {
        outln!(
            "{} ({path}): {}",
            a.source,
            match failing {
                0 => format!("all {} rules hold", results.len()),
                n => format!("{n} of {} rules failing", results.len()),
            }
        )?;
        for r in &results {
            let mark = if r.passed { "ok  " } else { "FAIL" };
            let mut line = format!("  {mark} {}: ", r.name);
            match (r.passed, r.kind.as_str()) {
                (true, _) | (false, "sql" | "integrity") => line.push_str(&r.detail),
                (false, _) => line.push_str(&format!("{} {}", r.count, r.detail)),
            }
            if !r.first.is_empty() {
                line.push_str(&format!(": {}", r.first.join("; ")));
                if (r.first.len() as u64) < r.count {
                    line.push_str(" ...");
                }
            }
            outln!("{line}")?;
        }
    }
    Ok(match failing {
        0 => crate::exit::OK,
        _ => crate::exit::INTEGRITY,
    })
}
