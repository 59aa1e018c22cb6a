//! A restore plan in words: a sentence for each table the restore changes and a summary, as
//! the restore page, the API's dry run and `backstop restore --dry-run` show them.

use backstop_engine::database::{DatabasePlan, TableChange};
use backstop_format::Timestamp;
use jiff::tz::TimeZone;

/// Words a database plan: a sentence for each table the restore changes, and a summary
/// ("Restoring loses 37 rows of orders entered since 2026-12-07 14:00, brings back 12
/// deleted rows of customers and reverts 5 changed rows of customers."). Tables are named as
/// they are: "rows of orders" (the singular of a table's name is not known).
pub fn describe(plan: &mut DatabasePlan, tz: &TimeZone) {
    let rows_compared = plan.comparison.as_ref().is_some_and(|c| c.rows);
    plan.summary = Some(describe_tables(
        &mut plan.tables,
        plan.time,
        rows_compared,
        tz,
    ));
}

/// Words `tables` of a restore to a snapshot taken at `time` (each table's `words`), and
/// returns the summary; `rows_compared`: whether their rows were compared one by one (else
/// the words speak of row counts). A database server's plan has row counts only.
pub fn describe_tables(
    tables: &mut [TableChange],
    time: Timestamp,
    rows_compared: bool,
    tz: &TimeZone,
) -> String {
    for t in tables.iter_mut() {
        t.words = table_words(t);
    }
    let when = backstop_policy::format_minute(time, tz);
    match rows_compared {
        true => summary_of_rows(tables, &when),
        false => summary_of_counts(tables, &when),
    }
}

/// `1 row`, `37 rows`.
fn rows(n: u64) -> String {
    match n {
        1 => "1 row".into(),
        n => format!("{n} rows"),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn listed(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What the restore does to one table, or `None` when it changes nothing there (as far as
/// is known).
fn table_words(t: &TableChange) -> Option<String> {
    let name = &t.name;
    if let Some(s) = t.since {
        let mut clauses: Vec<String> = Vec::new();
        for (n, what, effect) in [
            (s.added, "entered", "will be lost"),
            (s.deleted, "deleted", "will come back"),
            (
                s.changed,
                "changed",
                match s.changed {
                    1 => "will go back to its old values",
                    _ => "will go back to their old values",
                },
            ),
        ] {
            if n == 0 {
                continue;
            }
            clauses.push(match clauses.is_empty() {
                true => format!("{} of {name} {what} since the snapshot {effect}", rows(n)),
                false => format!("{n} {what} since then {effect}"),
            });
        }
        let by_content = match t.by_content {
            true => {
                " (its rows are matched by content, the table having no primary key: a changed \
                 row counts as one entered and one deleted)"
            }
            false => "",
        };
        return (!clauses.is_empty()).then(|| format!("{}{by_content}.", listed(&clauses)));
    }
    let count = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
    if let Some(why) = &t.not_compared {
        return Some(format!(
            "{name}: {why} ({} now, {} in the snapshot).",
            count(t.rows_now),
            count(t.rows_snapshot)
        ));
    }
    Some(match (t.rows_now, t.rows_snapshot) {
        (Some(now), Some(then)) if now > then => format!(
            "{name} has {} more now than in the snapshot: restoring loses the rows entered since.",
            rows(now - then)
        ),
        (Some(now), Some(then)) if now < then => format!(
            "{name} has {} fewer now than in the snapshot: restoring brings back the rows \
             deleted since.",
            rows(then - now)
        ),
        (Some(now), None) => format!(
            "{name} is not in the snapshot: restoring removes the table and its {}.",
            rows(now)
        ),
        (None, Some(then)) => format!(
            "{name} is not in the live database: restoring brings it back with its {}.",
            rows(then)
        ),
        _ => return None,
    })
}

/// Tables the snapshot lacks (removed by the restore) and tables only the snapshot has
/// (brought back), as summary clauses.
fn whole_tables(tables: &[TableChange]) -> Vec<String> {
    let (mut gone, mut back) = (Vec::new(), Vec::new());
    for t in tables {
        match (t.rows_now, t.rows_snapshot) {
            (Some(_), None) => gone.push(t.name.clone()),
            (None, Some(_)) => back.push(t.name.clone()),
            _ => {}
        }
    }
    let table = |names: &[String]| match names.len() {
        1 => format!("the table {}", names[0]),
        _ => format!("the tables {}", listed(names)),
    };
    let mut clauses = Vec::new();
    if !gone.is_empty() {
        clauses.push(format!("removes {}", table(&gone)));
    }
    if !back.is_empty() {
        clauses.push(format!("brings back {}", table(&back)));
    }
    clauses
}

/// `Restoring A, B, and C.` (a comma before the last `and` of three or more clauses, whose
/// own lists use `and` already).
fn restoring(clauses: &[String]) -> String {
    match clauses {
        [] => String::new(),
        [one] => format!("Restoring {one}."),
        [a, b] => format!("Restoring {a} and {b}."),
        [init @ .., last] => format!("Restoring {}, and {last}.", init.join(", ")),
    }
}

fn summary_of_rows(tables: &[TableChange], when: &str) -> String {
    let (mut lost, mut back, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for t in tables {
        let Some(s) = t.since else { continue };
        if s.added > 0 {
            lost.push(format!("{} of {}", rows(s.added), t.name));
        }
        if s.deleted > 0 {
            back.push(format!(
                "{} deleted {} of {}",
                s.deleted,
                plural(s.deleted),
                t.name
            ));
        }
        if s.changed > 0 {
            changed.push((s.changed, t.name.clone()));
        }
    }
    let mut clauses = Vec::new();
    if !lost.is_empty() {
        clauses.push(format!("loses {} entered since {when}", listed(&lost)));
    }
    if !back.is_empty() {
        clauses.push(format!("brings back {}", listed(&back)));
    }
    let total: u64 = changed.iter().map(|(n, _)| n).sum();
    match changed.as_slice() {
        [] => {}
        [(n, table)] => clauses.push(format!("reverts {n} changed {} of {table}", plural(*n))),
        more => clauses.push(format!(
            "reverts {total} changed rows in {} tables",
            more.len()
        )),
    }
    clauses.extend(whole_tables(tables));
    // A partitioned table's rows are its partitions', which were compared.
    let not_compared: Vec<String> = tables
        .iter()
        .filter(|t| {
            t.not_compared
                .as_deref()
                .is_some_and(|w| w != backstop_sources::server_compare::PARTITIONED)
        })
        .map(|t| t.name.clone())
        .collect();
    let mut out = match clauses.is_empty() {
        true if not_compared.is_empty() => format!(
            "Restoring changes no rows: the live database has the same rows as the snapshot of \
             {when}."
        ),
        true => "Restoring changes no rows in the tables that were compared.".into(),
        false => restoring(&clauses),
    };
    if !not_compared.is_empty() {
        out.push_str(&format!(
            " The rows of {} were not compared (see below).",
            listed(&not_compared)
        ));
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "row" } else { "rows" }
}

fn summary_of_counts(tables: &[TableChange], when: &str) -> String {
    let (mut fewer, mut more) = (Vec::new(), Vec::new());
    for t in tables {
        match (t.rows_now, t.rows_snapshot) {
            (Some(now), Some(then)) if now > then => {
                fewer.push(format!("{} of {}", rows(now - then), t.name))
            }
            (Some(now), Some(then)) if now < then => {
                more.push(format!("{} of {}", rows(then - now), t.name))
            }
            _ => {}
        }
    }
    let mut clauses = Vec::new();
    if !fewer.is_empty() {
        clauses.push(format!("removes {}", listed(&fewer)));
    }
    if !more.is_empty() {
        clauses.push(format!("brings back {}", listed(&more)));
    }
    clauses.extend(whole_tables(tables));
    match clauses.is_empty() {
        true => format!(
            "By row counts, restoring to the snapshot of {when} changes nothing: each table has \
             as many rows as then (rows changed since are not counted)."
        ),
        false => format!(
            "By row counts, restoring to the snapshot of {when} {}; rows changed since are not \
             counted.",
            restoring(&clauses)
                .trim_start_matches("Restoring ")
                .trim_end_matches('.')
        ),
    }
}
