//! The handle on one captured database, owned by its entry: the capture thread with its read
//! transaction, the page streams it sends, and the check that completes the item.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};
use std::thread::JoinHandle;

use backstop_format::Timestamp;
use backstop_format::manifest::{DatabaseMeta, Item, ItemKind, Validation};

use super::{Checked, Pass};
use crate::{Buffers, Capture, Chunking, Error, OnChange};

/// A WAL file modified less than this many seconds before the previous snapshot may hold
/// commits that snapshot did not see (see `SqliteCapture::probably_unchanged`).
const RACY_MARGIN_SECS: i64 = 2;

/// A running capture thread or checker thread, with what it found.
pub(super) type Running = JoinHandle<Result<Option<Checked>, Error>>;

/// One database's capture, from its entry until the item is complete.
pub(super) struct SqliteCapture {
    pub(super) path: PathBuf,
    pub(super) page_size: u32,
    /// What is known of the database but its check (filled in by `complete`).
    pub(super) meta: DatabaseMeta,
    pub(super) capture: Running,
    /// Asks the capture thread for one more reading of the pages in its transaction; dropped
    /// once no second reading can be needed, which lets the capture finish.
    pub(super) again: Option<Sender<Pass>>,
    pub(super) checker: Option<Running>,
    /// Starts (`true`) or cancels (`false`) the checker's quick_check.
    pub(super) start_check: Option<Sender<bool>>,
    /// Starts the checker's quick_check, for the engine to call once the content changed.
    pub(super) on_change: Option<OnChange>,
    /// Whether the capture's next pass runs backstop's own check (see `Checking::Native`).
    pub(super) check_pass: Option<Arc<AtomicBool>>,
    /// The source's validation rules, run by the capture thread in its transaction.
    pub(super) rules: Option<RulesHandle>,
}

/// The capture's end of the validation rules: `go` tells the capture thread whether to run
/// them (`false` when an unchanged image keeps the previous results), `done` brings them back.
pub(super) struct RulesHandle {
    pub(super) fingerprint: String,
    pub(super) go: Sender<bool>,
    pub(super) done: Receiver<Vec<crate::rules::RuleResult>>,
}

impl RulesHandle {
    /// The previous snapshot's results, when they are of this image under these rules;
    /// otherwise asks the capture thread to run the rules (answered by [`RulesHandle::results`]).
    fn start(&self, same_image: Option<&DatabaseMeta>) -> Option<Validation> {
        let kept = same_image
            .and_then(|p| p.validation.as_ref())
            .filter(|v| v.rules == self.fingerprint)
            .cloned();
        let _ = self.go.send(kept.is_none());
        kept
    }

    /// The results of a run asked for by [`RulesHandle::start`], once the capture thread ended.
    fn results(self, kept: Option<Validation>) -> Option<Validation> {
        kept.or_else(|| {
            self.done.try_recv().ok().map(|results| Validation {
                rules: self.fingerprint,
                results,
            })
        })
    }
}

/// A stream of pages from the capture thread, in the buffers it fills.
pub(super) struct PageStream {
    rx: Receiver<io::Result<Vec<u8>>>,
    /// Buffers the engine is done with go back to the capture thread to be filled again.
    done: Sender<Vec<u8>>,
}

impl PageStream {
    /// A new pass: the pass for the capture thread, and the stream it sends.
    pub(super) fn pass() -> (Pass, Self) {
        // A rendezvous channel: a buffer waits in the capture's hands until the engine's reader
        // takes it (a queued buffer would be one more in memory).
        let (tx, rx) = sync_channel(0);
        let (done, free) = channel();
        ((tx, free), Self { rx, done })
    }
}

impl Buffers for PageStream {
    fn next_buffer(&mut self, recycled: Option<Vec<u8>>) -> io::Result<Option<Vec<u8>>> {
        if let Some(b) = recycled {
            let _ = self.done.send(b);
        }
        match self.rx.recv() {
            Ok(Ok(b)) => Ok(Some(b)),
            Ok(Err(e)) => Err(e),
            // The capture thread ended: its result (an error, if any) comes out in
            // `Capture::complete`.
            Err(_) => Ok(None),
        }
    }
}

/// Whether the WAL file of `path` is absent, empty, or last written well before `since`: then
/// a snapshot taken at `since` saw every commit in it.
fn wal_quiet_since(path: &Path, since: Timestamp) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::metadata(PathBuf::from(wal)) {
        Err(e) => e.kind() == io::ErrorKind::NotFound,
        Ok(m) if m.len() == 0 => true,
        Ok(m) => m
            .modified()
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .is_some_and(|t| t.as_second() + RACY_MARGIN_SECS < since.as_second()),
    }
}

impl Capture for SqliteCapture {
    fn chunking(&self) -> Chunking {
        Chunking::Fixed(self.page_size)
    }

    /// Guesses from the file's size and modification time, and the WAL's, which every commit
    /// changes. The guess only decides whether the engine hashes the image first: the image
    /// counts as unchanged only if its hash equals the previous one.
    fn probably_unchanged(&mut self, item: &Item, previous: &Item, since: Timestamp) -> bool {
        let likely = self.again.is_some()
            && previous.kind == ItemKind::Sqlite
            && previous.size == item.size
            && previous.mtime.is_some()
            && previous.mtime == item.mtime
            && wal_quiet_since(&self.path, since);
        if !likely {
            // No second reading will be asked for: the capture may end its transaction (and
            // run its check) as soon as the first one is done.
            self.again = None;
        }
        // A reading that only hashes needs no check: a changed image is read (and checked)
        // again, an unchanged one keeps its last result.
        if let Some(w) = &self.check_pass {
            w.store(!likely, Ordering::Relaxed);
        }
        likely
    }

    fn read_again(&mut self) -> Result<Option<Box<dyn Buffers>>, Error> {
        let Some(again) = self.again.take() else {
            return Ok(None);
        };
        let (pass, stream) = PageStream::pass();
        if let Some(w) = &self.check_pass {
            w.store(true, Ordering::Relaxed);
        }
        if again.send(pass).is_err() {
            return Ok(None);
        }
        Ok(Some(Box::new(stream)))
    }

    fn take_on_change(&mut self) -> Option<OnChange> {
        self.on_change.take()
    }

    fn complete(self: Box<Self>, item: &mut Item, previous: Option<&Item>) -> Result<(), Error> {
        let SqliteCapture {
            mut meta,
            capture,
            again,
            checker,
            start_check,
            check_pass,
            rules,
            ..
        } = *self;
        // The rules run in the capture's transaction unless this image under these rules was
        // validated last time.
        let same_image = previous.and_then(|p| {
            let same =
                p.content.as_ref().map(|c| &c.hash) == item.content.as_ref().map(|c| &c.hash);
            p.database
                .as_ref()
                .filter(|_| same && p.kind == ItemKind::Sqlite)
        });
        let kept = rules.as_ref().and_then(|r| r.start(same_image));
        // No further reading: the capture thread ends its transaction.
        drop(again);
        let in_txn = joined(capture)?;
        meta.validation = rules.and_then(|r| r.results(kept));
        // The same image as last time: its check result still holds, so the running check is
        // stopped rather than waited for (this is what makes an unchanged database cheap).
        let unchanged = same_image
            // A failed or stopped check is not kept on SQLite's word alone: it may have stopped
            // at a table this build now checks around (see `limits`). backstop's own check, which
            // only claims databases it can check whole, keeps its verdict.
            .filter(|p| p.is_healthy() || check_pass.is_some());
        // (A check that ran in the capture's transaction on the same image says the same.)
        if let Some(prev) = unchanged {
            // Cancels the check if it has not started; if it has, wait for it and use it.
            if let Some(go) = start_check {
                let _ = go.send(false);
            }
            let fresh = match checker {
                Some(h) => joined(h)?,
                None => None,
            };
            (meta.quick_check, meta.tables, meta.not_checkable) = fresh.unwrap_or_else(|| {
                (
                    prev.quick_check.clone(),
                    prev.tables.clone(),
                    prev.not_checkable.clone(),
                )
            });
            item.database = Some(meta);
            return Ok(());
        }
        // Changed content: make sure the check runs even if the engine did not say so.
        if let Some(go) = start_check {
            let _ = go.send(true);
        }
        let checked = match (in_txn, checker) {
            (Some(c), _) => Some(c),
            (None, Some(h)) => joined(h)?,
            (None, None) => None,
        };
        let Some((check, tables, not_checkable)) = checked else {
            return Err(Error::Invalid("the capture was not completed".into()));
        };
        meta.quick_check = check;
        meta.tables = tables;
        meta.not_checkable = not_checkable;
        item.database = Some(meta);
        Ok(())
    }
}

fn joined<T>(h: JoinHandle<Result<T, Error>>) -> Result<T, Error> {
    h.join()
        .unwrap_or_else(|_| Err(Error::Invalid("the SQLite capture thread panicked".into())))
}
