//! Downloads: a snapshot restored into a scratch file, checked like `restore --to`, then
//! streamed. A database snapshot becomes its SQLite file, a snapshot of one file that file, and
//! anything else a tar archive (POSIX ustar with PAX records for long names).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use backstop_app::restore::DatabaseRequest;
use backstop_engine::database::{database_item, plan_database, restore_database};
use backstop_engine::{Indexed, NoProgress, RestoreOptions, plan_restore, restore};
use backstop_format::Timestamp;
use backstop_format::manifest::ItemKind;

use crate::setup::Setup;

/// A file ready to stream; the caller deletes it (and its directory) afterwards.
#[derive(Debug)]
pub struct Prepared {
    pub path: PathBuf,
    /// The name offered to the browser.
    pub name: String,
    pub content_type: &'static str,
    pub len: u64,
    /// The snapshot's full id.
    pub snapshot: String,
}

/// Restores snapshot `spec` into a new scratch directory and returns the file to send.
pub fn prepare(setup: &Setup, spec: &str) -> anyhow::Result<Prepared> {
    let (id, snap, ix, items) = snapshot_of(setup, spec)?;
    let dir = scratch_dir(setup);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = (|| -> anyhow::Result<Prepared> {
        let stamp = snap.time.strftime("%Y%m%d-%H%M%S").to_string();
        if let Some(item) = database_item(&items) {
            let name = item
                .path
                .rsplit('/')
                .next()
                .unwrap_or("database.db")
                .to_string();
            let target = dir.join(&name);
            let plan = plan_database(id, &snap, item, &target, false)?;
            restore_database(
                &ix,
                plan,
                item,
                &DatabaseRequest::download().options(
                    target.clone(),
                    &setup.runtime(),
                    Timestamp::now(),
                ),
                &NoProgress,
            )?;
            let (stem, ext) = match name.rsplit_once('.') {
                Some((s, e)) => (s.to_string(), format!(".{e}")),
                None => (name.clone(), String::new()),
            };
            return finish(
                target,
                format!("{stem}-{stamp}{ext}"),
                "application/vnd.sqlite3",
                id.to_string(),
            );
        }
        let tree = dir.join("tree");
        let opts = RestoreOptions {
            target: tree.clone(),
            overwrite: false,
            host: setup.host.clone(),
        };
        let (plan, items) = plan_restore(&ix, id, &snap, &opts)?;
        let single = plan.files.files == 1 && plan.files.dirs == 0 && plan.files.symlinks == 0;
        restore(&ix, plan, &items, &opts, &NoProgress)?;
        let first = match single {
            true => items.read(&ix).next().transpose()?,
            false => None,
        };
        if let Some(file) = first.filter(|i| i.kind == ItemKind::File) {
            let rel = &file.path;
            let name = rel.rsplit('/').next().unwrap_or("file").to_string();
            return finish(
                tree.join(rel),
                name,
                "application/octet-stream",
                id.to_string(),
            );
        }
        let tar = dir.join("snapshot.tar");
        write_tar(&tree, &tar)?;
        fs::remove_dir_all(&tree).ok();
        finish(
            tar,
            format!("{}-{stamp}.tar", snap.source.name),
            "application/x-tar",
            id.to_string(),
        )
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

/// One table of a database server's snapshot `spec` as a CSV file in a new scratch directory
/// ([`backstop_app::restore::tables_as_csv`]): PostgreSQL's from the dump alone (whether or not
/// the source is still configured), MariaDB's through a scratch database on the configured
/// source's server.
pub fn prepare_csv(setup: &Setup, spec: &str, table: &str) -> anyhow::Result<Prepared> {
    let (id, snap, ix, items) = snapshot_of(setup, spec)?;
    let (item, content) = items
        .iter()
        .find_map(|i| Some((i, i.content.as_ref()?)).filter(|(i, _)| i.server.is_some()))
        .ok_or_else(|| {
            backstop_engine::Error::Invalid(format!(
                "snapshot {} is not a database server's: tables as CSV are for PostgreSQL and \
                 MariaDB snapshots",
                id.short()
            ))
        })?;
    let server = match setup
        .source(&snap.source.name)
        .and_then(|s| s.server.clone())
    {
        Some(s) => s,
        None if snap.source.kind == backstop_format::manifest::SourceKind::Postgres => {
            backstop_app::restore::Server::new("postgres", "postgres://localhost/unused", None)?
        }
        None => {
            return Err(backstop_engine::Error::Invalid(format!(
                "source {:?} is not configured: its MariaDB server is needed to read a table",
                snap.source.name
            ))
            .into());
        }
    };
    let dir = scratch_dir(setup);
    let written = backstop_app::restore::tables_as_csv(
        &ix,
        content,
        item.server.as_ref(),
        &server,
        &[table.to_owned()],
        &dir,
        false,
        &setup.host,
    );
    // A table the dump does not have is the caller's mistake (404), not the daemon's.
    let written = written.map_err(|e| match format!("{e:#}") {
        m if m.contains("the dump has no") => backstop_engine::Error::NotFound(m).into(),
        _ => e,
    });
    let result = written.and_then(|mut w| {
        let t = w.pop().expect("one table asked for");
        let stamp = snap.time.strftime("%Y%m%d-%H%M%S").to_string();
        finish(
            t.path,
            format!("{}-{stamp}.csv", table.replace(['/', '\\'], "_")),
            "text/csv; charset=utf-8",
            id.to_string(),
        )
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

/// The snapshot `spec` names (an id, a prefix, `latest`, `@TIME`...), the index and its items.
fn snapshot_of<'r>(
    setup: &'r Setup,
    spec: &str,
) -> anyhow::Result<(
    backstop_format::SnapshotId,
    backstop_format::manifest::Snapshot,
    Indexed<'r>,
    Vec<backstop_format::manifest::Item>,
)> {
    let (id, snap) = setup.repo.find_snapshot_at(
        spec,
        &backstop_engine::SpecClock {
            now: backstop_format::Timestamp::now(),
            time_zone: setup.time_zone.clone(),
        },
    )?;
    let ix = Indexed::load(&setup.repo)?;
    let items = ix.loader().read_items(&snap.items)?;
    Ok((id, snap, ix, items))
}

/// A new scratch directory's path for one download.
fn scratch_dir(setup: &Setup) -> PathBuf {
    setup.scratch.join(format!(
        "backstop-download-{}",
        backstop_format::id::to_hex(&backstop_format::id::random_bytes::<8>())
    ))
}

fn finish(
    path: PathBuf,
    name: String,
    content_type: &'static str,
    snapshot: String,
) -> anyhow::Result<Prepared> {
    let len = fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok(Prepared {
        path,
        name,
        content_type,
        len,
        snapshot,
    })
}

/// Writes every file, directory and symlink under `root` into a tar archive at `out`.
pub fn write_tar(root: &Path, out: &Path) -> io::Result<()> {
    let mut w = BufWriter::new(File::create(out)?);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let mut entries: Vec<_> = fs::read_dir(&full)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel_child = rel.join(e.file_name());
            let name = rel_child
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let meta = fs::symlink_metadata(e.path())?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            if meta.file_type().is_symlink() {
                let target = fs::read_link(e.path())?
                    .to_string_lossy()
                    .replace('\\', "/");
                header(&mut w, &name, b'2', 0, 0o777, mtime, &target)?;
            } else if meta.is_dir() {
                header(&mut w, &format!("{name}/"), b'5', 0, 0o755, mtime, "")?;
                stack.push(rel_child);
            } else {
                let len = meta.len();
                header(&mut w, &name, b'0', len, file_mode(&meta), mtime, "")?;
                let mut f = File::open(e.path())?;
                let copied = io::copy(&mut (&mut f).take(len), &mut w)?;
                if copied != len {
                    return Err(io::Error::other(format!(
                        "{name} changed size while archived"
                    )));
                }
                pad(&mut w, len)?;
            }
        }
    }
    w.write_all(&[0u8; 1024])?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}

#[cfg(unix)]
fn file_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(meta: &fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

fn pad(w: &mut impl Write, len: u64) -> io::Result<()> {
    let rest = (512 - (len % 512) as usize) % 512;
    w.write_all(&vec![0u8; rest])
}

/// One ustar header, preceded by a PAX header when the name or link target is too long.
fn header(
    w: &mut impl Write,
    name: &str,
    typeflag: u8,
    size: u64,
    mode: u32,
    mtime: u64,
    link: &str,
) -> io::Result<()> {
    if name.len() > 100 || link.len() > 100 || !name.is_ascii() || !link.is_ascii() {
        let mut pax = String::new();
        for (k, v) in [("path", name), ("linkpath", link)] {
            if v.is_empty() {
                continue;
            }
            let body = format!(" {k}={v}\n");
            // The record's length counts its own digits.
            let mut n = body.len() + 1;
            while format!("{n}{body}").len() != n {
                n += 1;
            }
            pax.push_str(&format!("{n}{body}"));
        }
        raw_header(w, "pax_header", b'x', pax.len() as u64, 0o644, mtime, "")?;
        w.write_all(pax.as_bytes())?;
        pad(w, pax.len() as u64)?;
    }
    raw_header(w, name, typeflag, size, mode, mtime, link)
}

fn raw_header(
    w: &mut impl Write,
    name: &str,
    typeflag: u8,
    size: u64,
    mode: u32,
    mtime: u64,
    link: &str,
) -> io::Result<()> {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, len: usize, s: &[u8]| {
        let n = s.len().min(len);
        h[at..at + n].copy_from_slice(&s[..n]);
    };
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0width$o}", width = len - 1);
        let s = &s.as_bytes()[s.len().saturating_sub(len - 1)..];
        h[at..at + len - 1].copy_from_slice(s);
    };
    put(&mut h, 0, 100, name.as_bytes());
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    if size > 0o77_777_777_777 {
        // Base-256 for sizes of 8 GiB and more.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    } else {
        octal(&mut h, 124, 12, size);
    }
    octal(&mut h, 136, 12, mtime);
    h[148..156].copy_from_slice(b"        ");
    h[156] = typeflag;
    put(&mut h, 157, 100, link.as_bytes());
    put(&mut h, 257, 6, b"ustar\0");
    put(&mut h, 263, 2, b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    w.write_all(&h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_reads_back_with_the_system_tar() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/one.txt"), b"hello").unwrap();
        let long = "x".repeat(150);
        fs::write(root.join(&long), vec![7u8; 1000]).unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        let out = d.path().join("t.tar");
        write_tar(&root, &out).unwrap();
        let x = d.path().join("x");
        fs::create_dir_all(&x).unwrap();
        let Ok(status) = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&out)
            .arg("-C")
            .arg(&x)
            .status()
        else {
            eprintln!("no tar on this machine; skipped");
            return;
        };
        assert!(status.success());
        assert_eq!(fs::read(x.join("a/b/one.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(x.join(&long)).unwrap(), vec![7u8; 1000]);
        assert_eq!(fs::read(x.join("empty")).unwrap(), b"");
    }
}
