//! `backstop forget`

use backstop_app::retention::Retention;
use backstop_engine::forget::{NamedForgetSummary, forget_named};
use backstop_engine::{ForgetSummary, PruneSummary};
use backstop_format::Timestamp;
use backstop_policy::{KeepWithin, Policy};
use serde::Serialize;

use crate::context::{Ctx, GlobalArgs, host};
use crate::output::{UsageError, print_json, time};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Forget these snapshots (ids, or unique starts of ids), whatever the policy says: also
    /// damaged snapshot objects that cannot be read (`backstop verify` names them), which
    /// keep prune from running. Pinned snapshots are refused
    #[arg(
        value_name = "SNAPSHOT",
        conflicts_with_all = ["sources", "keep_last", "keep_hourly", "keep_daily", "keep_weekly",
            "keep_monthly", "keep_yearly", "keep_within", "keep_tags", "time_zone"]
    )]
    pub snapshots: Vec<String>,
    /// Only snapshots of this source (repeatable) [default: every source]
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N (ISO) weeks that have one
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within this long of the newest one, e.g. 30d, 1y6m, 2w, 12h
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<KeepWithin>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// IANA time zone for the calendar buckets [default: `time_zone` in backstop.toml, else the
    /// system's]
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Show the plan, forget nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Then reclaim the space (as `backstop prune`)
    #[arg(long)]
    pub prune: bool,
    /// With --prune: see `backstop prune --max-unused`
    #[arg(
        long,
        default_value_t = 5.0,
        value_name = "PERCENT",
        requires = "prune"
    )]
    pub max_unused: f64,
}

impl Args {
    /// The policy given by flags, if any flag was given.
    fn flag_policy(&self) -> Option<Policy> {
        let p = Policy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within,
            keep_tags: self.keep_tags.clone(),
        };
        (p != Policy::default()).then_some(p)
    }
}

#[derive(Serialize)]
struct Out {
    #[serde(flatten)]
    forget: ForgetSummary,
    prune: Option<PruneSummary>,
}

#[derive(Serialize)]
struct NamedOut {
    #[serde(flatten)]
    forget: NamedForgetSummary,
    prune: Option<PruneSummary>,
}

pub fn run(g: &GlobalArgs, a: Args) -> anyhow::Result<u8> {
    let ctx = Ctx::new(g)?;
    let repo = ctx.open()?;
    if !a.snapshots.is_empty() {
        return forget_ids(g, &repo, &a, &ctx.config.time_zone()?);
    }
    let time_zone = match &a.time_zone {
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| {
            UsageError(format!(
                "--time-zone {name:?} is not a known IANA time zone ({e})"
            ))
        })?,
        None => ctx.config.time_zone()?,
    };
    // Flags replace the configured policies for this run; otherwise the repository's own
    // (`[repositories.NAME] retention`), else each source has its own policy from the config,
    // or the top-level one, or the built-in default.
    let retention = match a.flag_policy() {
        Some(p) => Retention::only(p),
        None => Retention::of_repository(&ctx.config, ctx.repo_location().as_ref()),
    };
    let opts = retention.forget_options(
        a.sources.clone(),
        ctx.config.lifecycle()?,
        time_zone.clone(),
        &crate::context::runtime(),
        Timestamp::now(),
    );
    let prune_opts = prune_options(&a)?;
    let forget = backstop_engine::forget(&repo, &opts, a.dry_run)?;
    if !g.json && !g.quiet {
        print_plan(&forget, &time_zone, a.prune)?;
    }
    let locked: Vec<String> = forget.locked.iter().map(|id| id.short()).collect();
    warn_locked(g, &locked);
    let prune = then_prune(g, &repo, &a, prune_opts, forget.plan.forget_ids())?;
    if g.json {
        print_json(&Out { forget, prune })?;
    }
    Ok(crate::exit::OK)
}

fn prune_options(a: &Args) -> anyhow::Result<Option<backstop_engine::PruneOptions>> {
    Ok(if a.prune {
        Some(
            super::prune::Args {
                dry_run: a.dry_run,
                max_unused: a.max_unused,
            }
            .options()?,
        )
    } else {
        None
    })
}

/// With --prune: prunes after forgetting `forgotten` (on a dry run, as if they had been).
fn then_prune(
    g: &GlobalArgs,
    repo: &backstop_engine::Repository,
    a: &Args,
    opts: Option<backstop_engine::PruneOptions>,
    forgotten: Vec<backstop_format::SnapshotId>,
) -> anyhow::Result<Option<PruneSummary>> {
    let Some(mut o) = opts else {
        return Ok(None);
    };
    if a.dry_run {
        // Nothing was forgotten: plan the prune as if it had been.
        o.assume_forgotten = forgotten.into_iter().collect();
    }
    let s = super::prune::run_prune(repo, &o, a.dry_run, g)?;
    if !g.json && !g.quiet {
        super::prune::print_summary(&s)?;
    }
    Ok(Some(s))
}

/// `forget ID...`
fn forget_ids(
    g: &GlobalArgs,
    repo: &backstop_engine::Repository,
    a: &Args,
    tz: &jiff::tz::TimeZone,
) -> anyhow::Result<u8> {
    let prune_opts = prune_options(a)?;
    let s = forget_named(repo, &a.snapshots, a.dry_run, &host())?;
    let locked: Vec<String> = s
        .locked
        .iter()
        .map(|id| id[..id.len().min(10)].into())
        .collect();
    warn_locked(g, &locked);
    if !g.json && !g.quiet {
        for f in &s.snapshots {
            let what = match (&f.unreadable, &f.source, f.time) {
                (Some(why), _, _) => format!("damaged snapshot object ({why})"),
                (None, Some(src), Some(t)) => format!("{src} {}", time(t, tz)),
                _ => String::new(),
            };
            outln!(
                "{} {}: {what}",
                if s.dry_run { "would forget" } else { "forgot" },
                &f.id[..f.id.len().min(10)]
            )?;
        }
        if s.dry_run {
            outln!("dry run: nothing was changed")?;
        } else if !a.prune {
            outln!(
                "forgot {} snapshot(s); run `backstop prune` to reclaim their space",
                s.forgotten
            )?;
        }
    }
    // A dry run keeps every snapshot, so the prune is planned as if these were gone.
    let prune = then_prune(g, repo, a, prune_opts, s.ids())?;
    if g.json {
        print_json(&NamedOut { forget: s, prune })?;
    }
    Ok(crate::exit::OK)
}

/// Says which snapshots the storage refused to delete (`locked` in `--json`).
fn warn_locked(g: &GlobalArgs, locked: &[String]) {
    if !locked.is_empty() && !g.quiet {
        eprintln!(
            "warning: the storage refused to delete {} snapshot(s), which are kept: {} (a lock \
             rule on the bucket still holds them, or the key may not delete)",
            locked.len(),
            locked.join(", ")
        );
    }
}

fn print_plan(s: &ForgetSummary, tz: &jiff::tz::TimeZone, pruning: bool) -> anyhow::Result<()> {
    if s.plan.groups.is_empty() {
        outln!("no snapshots")?;
    }
    for g in &s.plan.groups {
        outln!(
            "{} ({}): {} snapshot(s), keep {}, forget {}",
            g.source,
            g.policy.describe(),
            g.decisions.len(),
            g.keep,
            g.forget
        )?;
        outln!(
            "  {:<10} {:<19} {:<11} {:<7} REASONS",
            "ID",
            "TIME",
            "KIND",
            "ACTION"
        )?;
        for d in &g.decisions {
            let reasons: Vec<String> = d
                .reasons
                .iter()
                .map(|r| r.display_in(tz).to_string())
                .collect();
            outln!(
                "  {:<10} {:<19} {:<11} {:<7} {}",
                d.id.short(),
                time(d.time, tz),
                d.kind.as_str(),
                if d.keep { "keep" } else { "forget" },
                reasons.join(", ")
            )?;
        }
    }
    for name in &s.plan.unreadable {
        outln!(
            "snapshot {name} cannot be read: kept (`backstop verify` says more; `backstop forget \
             {name}` deletes it)"
        )?;
    }
    let n = s.plan.forget_ids().len();
    if s.dry_run {
        outln!("dry run: would forget {n} snapshot(s); nothing was changed")?;
    } else if pruning {
        outln!("forgot {} snapshot(s)", s.forgotten)?;
    } else {
        outln!(
            "forgot {} snapshot(s); run `backstop prune` to reclaim their space",
            s.forgotten
        )?;
    }
    Ok(())
}
