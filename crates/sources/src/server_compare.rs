//! Which rows a restore of a server database would change: the live database against a
//! scratch database on the same server into which the snapshot's dump was loaded, table by
//! table, rows matched by primary key and counted.
//!
//! The two databases cannot be joined in one query (PostgreSQL has no query across
//! databases), so each side's server hashes every row of a table: the key's values and the
//! whole row's, `md5` of their text (PostgreSQL: `ROW(...)::text` in fixed session settings;
//! MariaDB: each value's `MD5`, so that no value is cut short and `NULL` is told from text).
//! Each side sends its pairs ordered by the key's hash, so that the two streams are merged as
//! they come, in two threads of their own, without holding a table in memory. Ordering by a
//! hash rather than by the key keeps the collations of the two databases out of it; a key of
//! one integer column (most tables') is sent as its value instead, in its own order, which
//! the server reads from the key's index without hashing or sorting.
//!
//! Each table is read by one statement, a consistent view of it; the live database is only
//! read. A table whose shape differs between the two (its columns in order, their types, its
//! primary key) is not compared ([`SCHEMA_DIFFERS`]). A table without a primary key has its
//! rows matched by their whole content, as many of each as there are
//! ([`TableComparison::by_content`]): a changed row counts as one entered and one deleted. A
//! partitioned table's rows are compared in its partitions only ([`PARTITIONED`]), so that
//! none is counted twice.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::Error;
use crate::server::Server;
use crate::sqlite::compare::{RowsSince, SCHEMA_DIFFERS, TableComparison};

/// A row as its key (its hash, or an integer key's value: [`integer`]) and its own hash, 16
/// bytes each.
type Pair = ([u8; 16], [u8; 16]);

/// What a side's thread sends of one table: its rows in batches, then how the read ended.
enum Message {
    Rows(Vec<Pair>),
    Done(Result<(), String>),
}

/// Rows a batch holds: few enough to keep memory low, enough to keep the channel quiet.
const BATCH: usize = 4096;

/// A table as one side has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    /// The name as the plan's tables name it (PostgreSQL: `schema.table`, quoted as needed).
    name: String,
    /// How a query names it (quoted and qualified).
    quoted: String,
    /// Each column's name and type, in order.
    columns: Vec<(String, String)>,
    /// The primary key's columns, in order (none: the table has no primary key).
    key: Vec<String>,
    /// A partitioned table (PostgreSQL), whose rows are its partitions'.
    partitioned: bool,
}

/// What a partitioned table is said to be: its rows are compared once, in its partitions.
pub const PARTITIONED: &str = "partitioned table, its rows are compared in its partitions";

/// Compares every table that both `live` and `snapshot` (databases of one engine, the second
/// loaded from a snapshot's dump) have; tables only one of them has are left out (their row
/// counts say enough). A table that cannot be read on one side is reported as not compared;
/// a database that cannot be reached at all is an error.
pub fn compare_databases(live: &Server, snapshot: &Server) -> Result<Vec<TableComparison>, Error> {
    let now = shapes(live)?;
    let then = shapes(snapshot)?;
    // Tables both have; those whose shape differs are not read.
    let mut out = Vec::new();
    let mut read = Vec::new();
    for (name, shape) in &now {
        let Some(old) = then.get(name) else { continue };
        let skipped = match (shape, old) {
            (a, b) if a.columns != b.columns || a.key != b.key => Some(SCHEMA_DIFFERS),
            (a, b) if a.partitioned || b.partitioned => Some(PARTITIONED),
            _ => None,
        };
        if let Some(why) = skipped {
            out.push(TableComparison {
                table: name.clone(),
                rows: Err(why.to_owned()),
                by_content: false,
            });
            continue;
        }
        read.push(shape.clone());
    }
    let queries: Vec<Query> = read.iter().map(|s| hashed_rows_query(live, s)).collect();
    std::thread::scope(|scope| -> Result<(), Error> {
        let (live_tx, live_rx) = sync_channel(4);
        let (then_tx, then_rx) = sync_channel(4);
        scope.spawn(|| send_rows(live, &queries, live_tx));
        scope.spawn(|| send_rows(snapshot, &queries, then_tx));
        for shape in &read {
            let rows = merge(&live_rx, &then_rx)?;
            out.push(TableComparison {
                table: shape.name.clone(),
                rows,
                by_content: shape.key.is_empty(),
            });
        }
        Ok(())
    })?;
    out.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(out)
}

/// Whether the rows of `server`'s databases can be compared, asked before a scratch database
/// is loaded for it: not those of a MariaDB server reached through options backstop's own
/// client cannot follow yet.
pub fn can_compare(server: &Server) -> Result<(), Error> {
    match server {
        Server::Mariadb(m) if m.needs_tools() => Err(Error::Invalid(
            "rows of a MariaDB database reached through a socket, client certificates or other \
             options backstop's own client cannot follow are not compared yet"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// Every table of `server`'s database with its columns and primary key, by name.
fn shapes(server: &Server) -> Result<BTreeMap<String, Shape>, Error> {
    let mut tables = BTreeMap::new();
    match server {
        Server::Postgres(p) => {
            let mut c = p.client()?;
            set_postgres_session(&mut c)?;
            let rows = crate::pg_export::rows(&mut c, PG_SHAPES)?;
            for r in rows {
                let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                let columns: Vec<(String, String)> =
                    serde_json::from_str(&text(3)).map_err(|e| {
                        Error::Invalid(format!("reading the columns of {}: {e}", text(0)))
                    })?;
                let key: Vec<String> = serde_json::from_str(&text(4)).unwrap_or_default();
                let quoted = format!(
                    "{}.{}",
                    crate::postgres::quote_ident(&text(1)),
                    crate::postgres::quote_ident(&text(2))
                );
                tables.insert(
                    text(0),
                    Shape {
                        name: text(0),
                        quoted,
                        columns,
                        key,
                        partitioned: text(5) == "t",
                    },
                );
            }
        }
        Server::Mariadb(m) => {
            can_compare(server)?;
            let mut c = m.wire()?;
            c.run(MARIA_SESSION)?;
            for r in c.rows(MARIA_COLUMNS)? {
                let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                let name = text(0);
                tables
                    .entry(name.clone())
                    .or_insert_with(|| Shape {
                        quoted: crate::mariadb::quote_ident(&name),
                        name,
                        columns: Vec::new(),
                        key: Vec::new(),
                        partitioned: false,
                    })
                    .columns
                    .push((text(1), text(2)));
            }
            for r in c.rows(MARIA_KEYS)? {
                let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                if let Some(t) = tables.get_mut(&text(0)) {
                    t.key.push(text(1));
                }
            }
        }
    }
    Ok(tables)
}

/// The session settings under which a value's text is the same in both databases.
fn set_postgres_session(c: &mut postgres::Client) -> Result<(), Error> {
    c.batch_execute(
        "SET DateStyle = ISO, YMD; SET IntervalStyle = postgres; SET TimeZone = 'UTC'; \
         SET extra_float_digits = 3; SET bytea_output = 'hex'; SET search_path = ''; \
         SET work_mem = '64MB'",
    )
    .map_err(|e| Error::Invalid(format!("PostgreSQL: {}", crate::pg_export::error_text(&e))))
}

/// Every ordinary and partitioned table (as [`crate::postgres::TABLE_ROWS`] lists them): its
/// name as the plan's, its schema and name, its columns (`[[name, type], ...]`), its primary
/// key's columns, and whether it is partitioned (`t`).
const PG_SHAPES: &str = "SELECT format('%I.%I', n.nspname, c.relname), n.nspname, c.relname, \
     coalesce((SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, \
     a.atttypmod)) ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid \
     AND a.attnum > 0 AND NOT a.attisdropped)::text, '[]'), \
     coalesce((SELECT json_agg(a.attname ORDER BY k.ord) FROM pg_index i \
     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
     WHERE i.indrelid = c.oid AND i.indisprimary)::text, '[]'), c.relkind = 'p' FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1";

/// The settings under which a value's text is the same in both databases.
const MARIA_SESSION: &str = "SET NAMES utf8mb4; SET SESSION time_zone = '+00:00'";

/// Every column of every base table, in order.
const MARIA_COLUMNS: &str = "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE \
     FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
     ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
     WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
     ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION";

/// Every primary key's columns, in order.
const MARIA_KEYS: &str = "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY' \
     ORDER BY TABLE_NAME, SEQ_IN_INDEX";

/// A table's query ([`hashed_rows_query`]) and how its first column, the key, reads.
struct Query {
    sql: String,
    /// The key is one integer column, read as its value (else the key's hash).
    integer_key: bool,
}

/// Whether a key of these columns is one integer column, whose rows the server gives in key
/// order from the key's own index, without hashing or sorting anything: most tables'.
fn integer_key(shape: &Shape) -> bool {
    let [key] = shape.key.as_slice() else {
        return false;
    };
    let Some((_, kind)) = shape.columns.iter().find(|(c, _)| c == key) else {
        return false;
    };
    let kind = kind.to_ascii_lowercase();
    // PostgreSQL's `format_type` names, MariaDB's `COLUMN_TYPE` (`int(11) unsigned`...).
    matches!(kind.as_str(), "smallint" | "integer" | "bigint")
        || ["tinyint", "smallint", "mediumint", "int", "bigint"]
            .iter()
            .any(|t| {
                kind.strip_prefix(t)
                    .is_some_and(|r| r.is_empty() || r.starts_with('(') || r.starts_with(' '))
            })
}

/// The query that gives a table's rows as their key (an integer key's value, else its hash)
/// and the hash of their whole content, ordered by both (a table without a key: the content's
/// hash is its key too).
fn hashed_rows_query(server: &Server, shape: &Shape) -> Query {
    let integer_key = integer_key(shape);
    let sql = match server {
        Server::Postgres(_) => {
            let row = "md5(ROW(t.*)::text)";
            if integer_key {
                let key = crate::postgres::quote_ident(&shape.key[0]);
                return Query {
                    sql: format!(
                        "COPY (SELECT t.{key}, {row} FROM {} AS t ORDER BY 1) TO STDOUT",
                        shape.quoted
                    ),
                    integer_key,
                };
            }
            let key = match shape.key.is_empty() {
                true => row.to_owned(),
                false => format!(
                    "md5(ROW({})::text)",
                    shape
                        .key
                        .iter()
                        .map(|k| format!("t.{}", crate::postgres::quote_ident(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            // Hex digits in "C" order are the bytes' order.
            format!(
                "COPY (SELECT {key} COLLATE \"C\", {row} COLLATE \"C\" FROM {} AS t \
                 ORDER BY 1, 2) TO STDOUT",
                shape.quoted
            )
        }
        Server::Mariadb(_) => {
            let hash = |columns: &mut dyn Iterator<Item = &String>| {
                let values: Vec<String> = columns
                    .map(|c| format!("IFNULL(MD5({}), '-')", crate::mariadb::quote_ident(c)))
                    .collect();
                format!("UNHEX(MD5(CONCAT_WS(',', {})))", values.join(", "))
            };
            let row = hash(&mut shape.columns.iter().map(|(c, _)| c));
            let key = match (integer_key, shape.key.is_empty()) {
                (true, _) => crate::mariadb::quote_ident(&shape.key[0]),
                (false, true) => row.clone(),
                (false, false) => hash(&mut shape.key.iter()),
            };
            // Integers in their order; binary strings byte by byte.
            format!("SELECT {key}, {row} FROM {} ORDER BY 1, 2", shape.quoted)
        }
    };
    Query { sql, integer_key }
}

/// An integer key as 16 bytes in the integer's order (its sign bit flipped, big-endian), so
/// that the merge orders it as the server did.
fn integer(text: &[u8]) -> Option<[u8; 16]> {
    let v: i128 = std::str::from_utf8(text).ok()?.parse().ok()?;
    Some(((v as u128) ^ (1 << 127)).to_be_bytes())
}

/// Runs each of `queries` on `server`'s database in turn and sends its rows, then how it
/// ended. Stops when the other end hangs up.
fn send_rows(server: &Server, queries: &[Query], tx: SyncSender<Message>) {
    let done = |tx: &SyncSender<Message>, r: Result<(), Error>| {
        tx.send(Message::Done(r.map_err(|e| e.to_string()))).is_ok()
    };
    match server {
        Server::Postgres(p) => {
            let mut c = match p.client().and_then(|mut c| {
                set_postgres_session(&mut c)?;
                Ok(c)
            }) {
                Ok(c) => c,
                Err(e) => return unreachable_for_all(&e, queries, &tx),
            };
            for q in queries {
                let sent = postgres_rows(&mut c, q, &tx);
                if !done(&tx, sent) {
                    return;
                }
            }
        }
        Server::Mariadb(m) => {
            let mut c = match m.wire().and_then(|mut c| {
                c.run(MARIA_SESSION)?;
                Ok(c)
            }) {
                Ok(c) => c,
                Err(e) => return unreachable_for_all(&e, queries, &tx),
            };
            for q in queries {
                let mut batch = Vec::with_capacity(BATCH);
                let mut gone = false;
                let read = c.query_with(&q.sql, &mut |_, row| {
                    let pair = match (row.first(), row.get(1)) {
                        (Some(Some(k)), Some(Some(r))) if q.integer_key => (
                            integer(k)
                                .ok_or_else(|| Error::Invalid("a key is not an integer".into()))?,
                            digest(r)?,
                        ),
                        (Some(Some(k)), Some(Some(r))) => (digest(k)?, digest(r)?),
                        _ => return Err(Error::Invalid("a row's hash is missing".into())),
                    };
                    batch.push(pair);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if tx.send(Message::Rows(full)).is_err() {
                            gone = true;
                            return Err(Error::Invalid("the comparison stopped".into()));
                        }
                    }
                    Ok(())
                });
                if gone {
                    return;
                }
                if !batch.is_empty() && read.is_ok() && tx.send(Message::Rows(batch)).is_err() {
                    return;
                }
                if !done(&tx, read) {
                    return;
                }
            }
        }
    }
}

/// Ends every table of `queries` with `e`: the database could not be reached.
fn unreachable_for_all(e: &Error, queries: &[Query], tx: &SyncSender<Message>) {
    for _ in queries {
        if tx.send(Message::Done(Err(e.to_string()))).is_err() {
            return;
        }
    }
}

/// A MariaDB hash: 16 bytes.
fn digest(bytes: &[u8]) -> Result<[u8; 16], Error> {
    bytes
        .try_into()
        .map_err(|_| Error::Invalid(format!("a row's hash has {} bytes, not 16", bytes.len())))
}

/// Reads one table's hashed rows (`COPY` text: two hex hashes a line) and sends them.
fn postgres_rows(
    c: &mut postgres::Client,
    query: &Query,
    tx: &SyncSender<Message>,
) -> Result<(), Error> {
    let what = "reading the rows' hashes";
    let reader = c.copy_out(query.sql.as_str()).map_err(|e| {
        Error::Invalid(format!(
            "PostgreSQL: {what}: {}",
            crate::pg_export::error_text(&e)
        ))
    })?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
    let mut line = Vec::with_capacity(80);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| crate::pg_export::copy_error(what, e))?;
        if n == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let bad = || Error::Invalid(format!("{what}: a line is not two hashes"));
        let (k, r) = text
            .iter()
            .position(|&b| b == b'\t')
            .map(|i| (&text[..i], &text[i + 1..]))
            .ok_or_else(bad)?;
        let key = match query.integer_key {
            true => integer(k),
            false => from_hex(k),
        };
        batch.push((key.ok_or_else(bad)?, from_hex(r).ok_or_else(bad)?));
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.send(Message::Rows(full)).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Message::Rows(batch));
    }
    Ok(())
}

/// 32 hex digits as 16 bytes.
fn from_hex(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(text[2 * i])? << 4 | nibble(text[2 * i + 1])?;
    }
    Some(out)
}

/// One side's rows of the table being merged, as they arrive.
struct Side<'a> {
    rx: &'a Receiver<Message>,
    batch: std::vec::IntoIter<Pair>,
    /// How the side's read ended, once it has.
    ended: Option<Result<(), String>>,
}

impl<'a> Side<'a> {
    fn new(rx: &'a Receiver<Message>) -> Self {
        Side {
            rx,
            batch: Vec::new().into_iter(),
            ended: None,
        }
    }

    /// The next row, or `None` at the table's end.
    fn next(&mut self) -> Result<Option<Pair>, Error> {
        loop {
            if let Some(p) = self.batch.next() {
                return Ok(Some(p));
            }
            if self.ended.is_some() {
                return Ok(None);
            }
            match self.rx.recv() {
                Ok(Message::Rows(rows)) => self.batch = rows.into_iter(),
                Ok(Message::Done(r)) => self.ended = Some(r),
                Err(_) => {
                    return Err(Error::Invalid(
                        "a database's rows stopped coming before the comparison ended".into(),
                    ));
                }
            }
        }
    }
}

/// Merges one table's rows from both sides: rows whose key only the live side has were
/// entered since the snapshot, only the snapshot's were deleted since, and both's with
/// another hash changed since. Both sides are read to the table's end in every case.
fn merge(
    live: &Receiver<Message>,
    then: &Receiver<Message>,
) -> Result<Result<RowsSince, String>, Error> {
    let (mut now, mut old) = (Side::new(live), Side::new(then));
    let mut since = RowsSince::default();
    let (mut a, mut b) = (now.next()?, old.next()?);
    loop {
        match (a, b) {
            (None, None) => break,
            (Some(_), None) => {
                since.added += 1;
                a = now.next()?;
            }
            (None, Some(_)) => {
                since.deleted += 1;
                b = old.next()?;
            }
            (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                std::cmp::Ordering::Less => {
                    since.added += 1;
                    a = now.next()?;
                }
                std::cmp::Ordering::Greater => {
                    since.deleted += 1;
                    b = old.next()?;
                }
                std::cmp::Ordering::Equal => {
                    if x.1 != y.1 {
                        since.changed += 1;
                    }
                    a = now.next()?;
                    b = old.next()?;
                }
            },
        }
    }
    Ok(match (now.ended, old.ended) {
        (Some(Err(e)), _) => Err(format!("rows not compared (the live database: {e})")),
        (_, Some(Err(e))) => Err(format!("rows not compared (the snapshot's copy: {e})")),
        _ => Ok(since),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: u8, r: u8) -> Pair {
        ([k; 16], [r; 16])
    }

    fn sent(rows: Vec<Vec<Pair>>, end: Result<(), String>) -> Receiver<Message> {
        let (tx, rx) = sync_channel(rows.len() + 1);
        for r in rows {
            tx.send(Message::Rows(r)).unwrap();
        }
        tx.send(Message::Done(end)).unwrap();
        rx
    }

    #[test]
    fn rows_are_merged_by_key_hash_across_batches() {
        // Keys 1..=5 now (3 changed, 5 new), keys 1..=4 and 6 in the snapshot (4 and 6 gone).
        let now = sent(
            vec![
                vec![pair(1, 1), pair(2, 2)],
                vec![pair(3, 9)],
                vec![pair(5, 5)],
            ],
            Ok(()),
        );
        let then = sent(
            vec![
                vec![pair(1, 1)],
                vec![pair(2, 2), pair(3, 3), pair(4, 4), pair(6, 6)],
            ],
            Ok(()),
        );
        assert_eq!(
            merge(&now, &then).unwrap(),
            Ok(RowsSince {
                added: 1,
                deleted: 2,
                changed: 1
            })
        );
        // Rows matched by content (no key): as many of each as there are.
        let now = sent(vec![vec![pair(1, 1), pair(1, 1), pair(2, 2)]], Ok(()));
        let then = sent(vec![vec![pair(1, 1), pair(3, 3), pair(3, 3)]], Ok(()));
        assert_eq!(
            merge(&now, &then).unwrap(),
            Ok(RowsSince {
                added: 2,
                deleted: 2,
                changed: 0
            })
        );
    }

    #[test]
    fn a_side_that_fails_leaves_the_table_not_compared_and_the_next_one_in_step() {
        let (tx, now) = sync_channel(8);
        tx.send(Message::Rows(vec![pair(1, 1)])).unwrap();
        tx.send(Message::Done(Err("permission denied".into())))
            .unwrap();
        tx.send(Message::Rows(vec![pair(7, 7)])).unwrap();
        tx.send(Message::Done(Ok(()))).unwrap();
        let (tx2, then) = sync_channel(8);
        tx2.send(Message::Rows(vec![pair(1, 1), pair(2, 2)]))
            .unwrap();
        tx2.send(Message::Done(Ok(()))).unwrap();
        tx2.send(Message::Rows(vec![pair(7, 8)])).unwrap();
        tx2.send(Message::Done(Ok(()))).unwrap();
        let first = merge(&now, &then).unwrap().unwrap_err();
        assert!(first.contains("permission denied"), "{first}");
        assert_eq!(
            merge(&now, &then).unwrap(),
            Ok(RowsSince {
                added: 0,
                deleted: 0,
                changed: 1
            })
        );
        // A side whose thread is gone is an error, not a count.
        drop(tx);
        assert!(merge(&now, &then).is_err());
    }

    #[test]
    fn integer_keys_keep_their_order_as_bytes() {
        let keys = [
            "-9223372036854775808",
            "-5",
            "-1",
            "0",
            "1",
            "7",
            "18446744073709551615",
        ];
        let bytes: Vec<[u8; 16]> = keys
            .iter()
            .map(|k| integer(k.as_bytes()).unwrap())
            .collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]), "{bytes:?}");
        assert_eq!(integer(b"12a"), None);
        let shape = |kind: &str, key: &[&str]| Shape {
            name: "t".into(),
            quoted: "t".into(),
            columns: vec![("id".into(), kind.into()), ("n".into(), "text".into())],
            key: key.iter().map(|k| k.to_string()).collect(),
            partitioned: false,
        };
        assert!(integer_key(&shape("bigint", &["id"])));
        assert!(integer_key(&shape("int(11) unsigned", &["id"])));
        assert!(integer_key(&shape("int", &["id"])));
        assert!(!integer_key(&shape("interval", &["id"])));
        assert!(!integer_key(&shape("numeric(10,0)", &["id"])));
        assert!(!integer_key(&shape("bigint", &["id", "n"])));
        assert!(!integer_key(&shape("bigint", &[])));
    }

    #[test]
    fn hex_hashes_read_as_their_bytes() {
        assert_eq!(
            from_hex(b"000102030405060708090a0b0c0d0eff"),
            Some([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255])
        );
        assert_eq!(from_hex(b"00"), None);
        assert_eq!(from_hex(b"zz0102030405060708090a0b0c0d0eff"), None);
    }
}
