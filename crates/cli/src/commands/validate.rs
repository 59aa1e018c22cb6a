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
        crate::output::print_rules(&format!("{} ({path})", a.source), &results, false)?;
    }
    Ok(match failing {
        0 => crate::exit::OK,
        _ => crate::exit::INTEGRITY,
    })
}
