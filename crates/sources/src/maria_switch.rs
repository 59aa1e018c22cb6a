//! The switch of an in-place restore of a MariaDB/MySQL database ([`Mariadb::replace_with`]).
//!
//! MariaDB cannot rename a database, so the restored copy's tables are moved into the live
//! database, and the live ones out to the database that keeps them, in one `RENAME TABLE`
//! statement (atomic: an application sees the old tables or the new ones, never a mix). A
//! table with triggers cannot move to another database, and the triggers, views, procedures
//! and functions belong to a database rather than to its tables, so those are made again on
//! each side from their definitions, read beforehand where they were (`SHOW CREATE ...` in
//! that database, so their names are unqualified).
//!
//! While that happens the database has moments without its triggers or views, so the server
//! is made read-only for the switch (`SET GLOBAL read_only`, which holds off every user
//! without the READ ONLY ADMIN privilege, on every database of the server, for well under a
//! second), and the application's open sessions on the database are ended first. Until the
//! tables have moved, a failure puts back what was changed; after, what could not be made
//! again is named in a warning (the snapshot has its definition).

use crate::Error;
use crate::mariadb::Mariadb;
use crate::mysql_wire::Conn;

/// An object of a database that is made again after the tables move.
#[derive(Clone)]
struct Definition {
    kind: &'static str,
    name: String,
    /// The statements that make it, run in order (settings, then the `CREATE`).
    statements: Vec<String>,
}

fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The names in the first column of `sql`'s answer.
fn names(c: &mut Conn, sql: &str) -> Result<Vec<String>, Error> {
    c.column(sql)
}

/// The triggers, views, procedures and functions of `db`, as statements that make them again
/// in whatever database is current (views in an order that lets each find the views it reads:
/// see [`create_all`]).
fn definitions(c: &mut Conn, db: &str) -> Result<Vec<Definition>, Error> {
    c.run(&format!("USE {}", ident(db)))?;
    let mut out = Vec::new();
    let lit = literal(db);
    for view in names(
        c,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {lit} \
             ORDER BY TABLE_NAME"
        ),
    )? {
        let row = first_row(c, &format!("SHOW CREATE VIEW {}", ident(&view)), 1)?;
        out.push(Definition {
            kind: "VIEW",
            statements: vec![
                format!("SET NAMES {} COLLATE {}", field(&row, 2), field(&row, 3)),
                field(&row, 1),
            ],
            name: view,
        });
    }
    for (kind, sql) in [
        (
            "PROCEDURE",
            format!(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = \
                 {lit} AND ROUTINE_TYPE = 'PROCEDURE'"
            ),
        ),
        (
            "FUNCTION",
            format!(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = \
                 {lit} AND ROUTINE_TYPE = 'FUNCTION'"
            ),
        ),
        (
            "TRIGGER",
            format!(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = \
                 {lit} ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER"
            ),
        ),
    ] {
        for name in names(c, &sql)? {
            // Name, sql_mode, the CREATE, character_set_client, collation_connection.
            let row = first_row(c, &format!("SHOW CREATE {kind} {}", ident(&name)), 2)?;
            out.push(Definition {
                kind,
                statements: vec![
                    format!("SET SESSION sql_mode = {}", literal(&field(&row, 1))),
                    format!("SET NAMES {} COLLATE {}", field(&row, 3), field(&row, 4)),
                    field(&row, 2),
                ],
                name,
            });
        }
    }
    Ok(out)
}

/// The first row of a `SHOW CREATE ...`, whose `CREATE` (column `create`) this user must be
/// allowed to read.
fn first_row(c: &mut Conn, sql: &str, create: usize) -> Result<Vec<Option<String>>, Error> {
    let row = c.rows(sql)?.into_iter().next().unwrap_or_default();
    match row.get(create) {
        Some(Some(_)) => Ok(row),
        _ => Err(Error::Invalid(format!(
            "{sql}: the definition cannot be read by this user"
        ))),
    }
}

fn field(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// Makes `defs` in database `db`; views first, each round making those whose views exist, so
/// views that read views come after them. The ones that could not be made, with why.
fn create_all(c: &mut Conn, db: &str, defs: &[Definition]) -> Vec<String> {
    let mut failed = Vec::new();
    if let Err(e) = c.run(&format!("USE {}", ident(db))) {
        return vec![format!("{db}: {e}")];
    }
    let mut views: Vec<&Definition> = defs.iter().filter(|d| d.kind == "VIEW").collect();
    loop {
        let before = views.len();
        let mut errors = Vec::new();
        views.retain(|d| match run_all(c, &d.statements) {
            Ok(()) => false,
            Err(e) => {
                errors.push(format!("view {}: {e}", d.name));
                true
            }
        });
        if views.is_empty() || views.len() == before {
            failed.extend(errors);
            break;
        }
    }
    for d in defs.iter().filter(|d| d.kind != "VIEW") {
        if let Err(e) = run_all(c, &d.statements) {
            failed.push(format!("{} {}: {e}", d.kind.to_lowercase(), d.name));
        }
    }
    let _ = c.run("SET SESSION sql_mode = DEFAULT; SET NAMES utf8mb4");
    failed
}

fn run_all(c: &mut Conn, statements: &[String]) -> Result<(), Error> {
    statements.iter().try_for_each(|s| c.run(s))
}

/// Drops `defs` from database `db` (the triggers, so that their tables may move; or the views
/// and routines, before they are made again from the other side).
fn drop_all(c: &mut Conn, db: &str, defs: &[Definition], kinds: &[&str]) -> Result<(), Error> {
    for d in defs.iter().filter(|d| kinds.contains(&d.kind)) {
        c.run(&format!(
            "DROP {} IF EXISTS {}.{}",
            d.kind,
            ident(db),
            ident(&d.name)
        ))?;
    }
    Ok(())
}

/// Ends every session on database `db` but this one (one that ended by itself meanwhile, or
/// one this user may not end, is left: the server's read-only holds it off).
fn end_sessions(c: &mut Conn, db: &str) {
    let sessions = names(
        c,
        &format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = {} AND ID <> \
             CONNECTION_ID()",
            literal(db)
        ),
    )
    .unwrap_or_default();
    for id in sessions {
        let _ = c.run(&format!("KILL CONNECTION {id}"));
    }
}

/// Sets the server's `read_only` back to `was` when dropped, whatever happened in between.
struct ReadOnly<'a> {
    c: &'a mut Conn,
    was: bool,
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        if !self.was {
            let _ = self.c.run("SET GLOBAL read_only = OFF");
        }
    }
}

impl Mariadb {
    /// Whether this database can be switched in place: backstop's own client reaches it (not
    /// through a socket or options it cannot follow), and the connecting user may make the
    /// server read-only. An error that says what to do instead where not.
    pub(crate) fn can_switch(&self) -> Result<(), Error> {
        let mut c = self.wire().map_err(|e| {
            Error::Invalid(format!(
                "{e}: an in-place restore of a MariaDB database is done by backstop's own client; \
                 restore into a new database with --to-database NAME instead"
            ))
        })?;
        c.run("SET SESSION lock_wait_timeout = 10; SET GLOBAL read_only = @@GLOBAL.read_only")
            .map_err(|e| {
                Error::Invalid(format!(
                    "{e}: an in-place restore makes the server read-only for the moment of the \
                     switch, which needs the READ ONLY ADMIN (or SUPER) privilege; restore into \
                     a new database with --to-database NAME instead"
                ))
            })
    }

    /// Puts the tables, views, routines and triggers of the database `new` (a restored copy
    /// on this server) in this one's place, and this one's into the new database `keep_as`
    /// (see the module's documentation). What could not be made again after the tables moved
    /// is returned as warnings; an error means nothing was changed (`new` is as it was, and
    /// may be dropped).
    pub fn replace_with(&self, new: &str, keep_as: &str) -> Result<Vec<String>, Error> {
        let live = self.database();
        let mut c = self.wire()?;
        c.run("SET SESSION lock_wait_timeout = 30")?;
        let collation = c.one(&format!(
            "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME \
             = {}",
            literal(&live)
        ))?;
        let tables = |c: &mut Conn, db: &str| {
            names(
                c,
                &format!(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} \
                     AND TABLE_TYPE <> 'VIEW'",
                    literal(db)
                ),
            )
        };
        let (live_tables, new_tables) = (tables(&mut c, &live)?, tables(&mut c, new)?);
        let live_defs = definitions(&mut c, &live)?;
        let new_defs = definitions(&mut c, new)?;
        let mut create = format!("CREATE DATABASE {}", ident(keep_as));
        if !collation.is_empty()
            && collation
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            create.push_str(&format!(" COLLATE {collation}"));
        }
        c.run(&create)?;
        let was_read_only = c.one("SELECT @@GLOBAL.read_only")? == "1";
        // The application's sessions on the database are ended (their open transactions
        // rolled back, so none holds the server off read-only), before and again after.
        end_sessions(&mut c, &live);
        if let Err(e) = c.run("SET GLOBAL read_only = ON") {
            let _ = c.run(&format!("DROP DATABASE {}", ident(keep_as)));
            return Err(e);
        }
        let guard = ReadOnly {
            c: &mut c,
            was: was_read_only,
        };
        let c = &mut *guard.c;
        end_sessions(c, &live);
        let moved = (|| {
            drop_all(c, new, &new_defs, &["TRIGGER"])?;
            drop_all(c, &live, &live_defs, &["TRIGGER"])?;
            let mut renames: Vec<String> = live_tables
                .iter()
                .map(|t| {
                    format!(
                        "{}.{} TO {}.{}",
                        ident(&live),
                        ident(t),
                        ident(keep_as),
                        ident(t)
                    )
                })
                .collect();
            renames.extend(new_tables.iter().map(|t| {
                format!(
                    "{}.{} TO {}.{}",
                    ident(new),
                    ident(t),
                    ident(&live),
                    ident(t)
                )
            }));
            if renames.is_empty() {
                return Ok(());
            }
            c.run(&format!("RENAME TABLE {}", renames.join(", ")))
        })();
        if let Err(e) = moved {
            // Nothing moved: the triggers go back where they were.
            let mut lost = create_all(c, &live, &only(&live_defs, "TRIGGER"));
            lost.extend(create_all(c, new, &only(&new_defs, "TRIGGER")));
            let _ = c.run(&format!("DROP DATABASE {}", ident(keep_as)));
            let lost = match lost.is_empty() {
                true => String::new(),
                false => format!(
                    "; and these could not be made again in {live}: {}",
                    lost.join("; ")
                ),
            };
            return Err(Error::Invalid(format!(
                "moving the restored tables into {live}: {e}{lost}"
            )));
        }
        let mut warnings = Vec::new();
        let dropped = drop_all(c, &live, &live_defs, &["VIEW", "PROCEDURE", "FUNCTION"]);
        if let Err(e) = dropped {
            warnings.push(format!(
                "dropping {live}'s previous views and routines: {e}"
            ));
        }
        let mut lost = create_all(c, &live, &new_defs);
        lost.extend(
            create_all(c, keep_as, &live_defs)
                .into_iter()
                .map(|l| format!("{l} (in {keep_as})")),
        );
        drop(guard);
        if !lost.is_empty() {
            warnings.push(format!(
                "the restored tables are in {live}, but these could not be made again (their \
                 definitions are in the snapshot's dump): {}",
                lost.join("; ")
            ));
        }
        // The restored copy's database holds nothing the switch needs any more.
        if let Ok(mut c) = self.wire()
            && let Err(e) = c.run(&format!("DROP DATABASE {}", ident(new)))
        {
            warnings.push(format!("{new} could not be dropped: {e}"));
        }
        Ok(warnings)
    }
}

/// The definitions of one kind.
fn only(defs: &[Definition], kind: &str) -> Vec<Definition> {
    defs.iter().filter(|d| d.kind == kind).cloned().collect()
}
