//! Sources: what to back up, how to capture it consistently, and how to put it back.
//!
//! A [`Source`] hands the engine a sequence of [`Entry`]s: an [`Item`] describing each thing
//! captured and, for items with content, its [`EntryContent`]: a byte stream and the chunking
//! that suits it, or, for a database, its first reading and the [`Capture`] that holds the
//! database's state until the item is complete. The engine pulls entries one at a time, so a
//! source never holds more than the item it is reading. When the last entry is done the engine
//! calls [`Source::finish`]; a source whose capture turned out inconsistent (a command that
//! exited non-zero) fails there, and no snapshot is made.
//!
//! ```no_run
//! use backstop_sources::{files::FilesSource, Source};
//!
//! let mut src = FilesSource::new(vec!["docs".into()], vec![]).unwrap();
//! while let Some(entry) = src.next_entry().unwrap() {
//!     println!("{}", entry.item.path);
//! }
//! src.finish().unwrap();
//! ```

pub mod command;
pub mod csv_load;
pub mod diff;
pub mod exclude;
pub mod export;
pub mod files;
pub mod import;
mod import_server;
pub mod maria_export;
mod maria_switch;
pub mod mariadb;
mod mysql_wire;
pub mod pg_export;
pub mod postgres;
pub mod restore;
pub mod rules;
pub mod server;
pub mod server_compare;
mod server_rules;
pub mod sqlite;
pub mod table_csv;
mod tls;
pub mod workbook;

use std::io::Read;
use std::path::PathBuf;

use backstop_format::Timestamp;
use backstop_format::manifest::{Excludes, Item, SourceKind};

/// How the engine cuts a stream into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Content-defined boundaries (FastCDC): for files and dumps, where inserts shift bytes.
    ContentDefined,
    /// Fixed-size chunks aligned to the start of the stream: for page-structured data such as
    /// SQLite files, where a page never moves and content-defined cuts would straddle pages.
    Fixed(u32),
    /// A zip archive (a workbook, a document): a cut at the start of every member, read from
    /// the members' local headers as the bytes pass, and content-defined cuts within a member.
    /// A program that saves a workbook writes each member anew, but an unchanged member as the
    /// same bytes, so yesterday's members are found again whichever sheet changed. Past the
    /// members (the central directory), or in a stream that is not such an archive, cuts are
    /// content-defined.
    Zip,
}

/// How to cut a file of this name: [`Chunking::Zip`] for the zip-based formats of office
/// documents (Office Open XML, OpenDocument) and zip files, content-defined otherwise.
pub fn chunking_for(name: &str) -> Chunking {
    const ZIPS: &[&str] = &[
        "xlsx", "xlsm", "xlsb", "xltx", "xltm", "xlam", "docx", "docm", "dotx", "pptx", "pptm",
        "ods", "odt", "odp", "odg", "zip",
    ];
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext {
        Some(e) if ZIPS.contains(&e.as_str()) => Chunking::Zip,
        _ => Chunking::ContentDefined,
    }
}

/// Where and past what size a capture keeps its working state in scratch files instead of in
/// memory (the engine passes its own spill settings, see [`Source::use_scratch`]). Scratch
/// files are anonymous: unlinked at once (delete-on-close on Windows), never read by another run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchOptions {
    /// The folder for scratch files; `None` is the system's temporary folder.
    pub dir: Option<PathBuf>,
    /// Database pages above which a SQLite capture's integrity check keeps its page summaries
    /// (about 12 bytes a page) in a scratch file. The default, 524,288 (2 GiB of 4 KiB pages),
    /// keeps every database up to that size on the in-memory path.
    pub check_pages_in_memory: u64,
}

impl Default for ScratchOptions {
    fn default() -> Self {
        Self {
            dir: None,
            check_pages_in_memory: 1 << 19,
        }
    }
}

/// Called by the engine as soon as an entry's content is known to differ from the previous
/// snapshot's version of the item (at once when there is none to compare with).
pub type OnChange = Box<dyn FnOnce() + Send>;

/// One captured thing.
pub struct Entry {
    pub item: Item,
    /// The content, for files, streams and databases.
    pub content: Option<EntryContent>,
    /// If reading the content fails: true fails the whole backup (a database, a command), false
    /// skips the item with a warning (an ordinary file that vanished or cannot be read).
    pub required: bool,
    /// Whether the engine may reuse the previous snapshot's content for this item, without
    /// reading it, when its size and modification time are unchanged (ordinary files). Never
    /// for databases or streams, whose consistency comes from reading them.
    pub reuse_unchanged: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let content = self.content.as_ref().map(|c| match c {
            EntryContent::Stream { chunking, .. } => ("stream", *chunking),
            EntryContent::Captured { capture, .. } => ("captured", capture.chunking()),
        });
        f.debug_struct("Entry")
            .field("item", &self.item)
            .field("content", &content)
            .field("required", &self.required)
            .field("reuse_unchanged", &self.reuse_unchanged)
            .finish()
    }
}

/// The content of an entry.
pub enum EntryContent {
    /// Bytes read once, start to end (a file, a command's output, standard input).
    Stream {
        reader: Box<dyn Read + Send>,
        chunking: Chunking,
    },
    /// A capture the source holds open until the item is complete (a database): its first
    /// reading, in owned buffers, and the handle that can read it again and completes the item.
    Captured {
        buffers: Box<dyn Buffers>,
        capture: Box<dyn Capture>,
    },
}

/// Content handed over in owned buffers instead of through [`Read`]: a source that holds the
/// bytes in memory anyway (a database read page by page) saves copying every byte once more.
pub trait Buffers: Send {
    /// The next piece of the content (never empty), or `None` at its end. `recycled` is a
    /// buffer the caller is done with, for the source to fill again (whatever it holds).
    fn next_buffer(&mut self, recycled: Option<Vec<u8>>) -> std::io::Result<Option<Vec<u8>>>;
}

/// The source's handle on one captured entry (a database's read transaction and its check),
/// owned by the entry: whatever it is asked concerns that entry, and [`Capture::complete`]
/// consumes it, so nothing can be asked of an entry once it is complete. A handle dropped
/// without being completed (the backup failed, or skipped the item) releases what it holds.
pub trait Capture: Send {
    /// How the engine cuts the content into chunks.
    fn chunking(&self) -> Chunking;
    /// Whether the content is probably the same as `previous` (its item in the source's
    /// previous snapshot, taken at `since`), judged from metadata alone, *and*
    /// [`Capture::read_again`] can hand it out a second time. Asked before the first reading.
    /// The engine then first only hashes the content: if the hash equals the previous
    /// content's, the bytes are the same and it reuses the previous content description
    /// without cutting or looking up a single chunk; otherwise it reads the content again and
    /// stores it as usual. A wrong guess costs a second read, never a wrong snapshot.
    fn probably_unchanged(&mut self, _item: &Item, _previous: &Item, _since: Timestamp) -> bool {
        false
    }
    /// The content once more and byte for byte the same, after its first reading ended (see
    /// [`Capture::probably_unchanged`]); `None` if the source cannot.
    fn read_again(&mut self) -> Result<Option<Box<dyn Buffers>>, Error> {
        Ok(None)
    }
    /// What to call as soon as the content is known to differ from the previous snapshot's
    /// version of the item (at once when there is none to compare with): a database source
    /// starts its integrity check only then, so an unchanged database costs no check.
    fn take_on_change(&mut self) -> Option<OnChange> {
        None
    }
    /// Called once the content has been stored (`item.content` is set), to complete the item
    /// with what is only known at the end (a database's integrity check). `previous` is the
    /// item of the same path in the source's previous snapshot, if any: a source may reuse
    /// results for content that did not change. An error fails the backup. The engine also
    /// calls it, without `item.content`, before failing on content that could not be read a
    /// second time: the source's own error, if it has one, says more.
    fn complete(self: Box<Self>, item: &mut Item, previous: Option<&Item>) -> Result<(), Error>;
}

/// Something that can be backed up.
pub trait Source: Send {
    fn kind(&self) -> SourceKind;
    /// The paths or command this source captures, as given (recorded in the snapshot).
    fn describe(&self) -> Vec<String>;
    /// The exclusion rules this source applies (recorded in the snapshot); none by default.
    fn excludes(&self) -> Excludes {
        Excludes::default()
    }
    /// Where the captures of this source may keep large working state (see
    /// [`ScratchOptions`]); called by the engine before the first [`Source::next_entry`]. A
    /// source with no such state ignores it.
    fn use_scratch(&mut self, _scratch: &ScratchOptions) {}
    /// The source's data validation rules, to run on the captured state and record with the
    /// item (SQLite databases; other sources ignore them). Called before the first
    /// [`Source::next_entry`].
    fn use_rules(&mut self, _rules: &[rules::Rule]) {}
    /// The next entry, or `None` when the capture is complete. The engine is done with an
    /// entry (its capture completed or dropped) before it asks for the next one.
    fn next_entry(&mut self) -> Result<Option<Entry>, Error>;
    /// Problems that did not stop the capture (skipped files).
    fn take_warnings(&mut self) -> Vec<String>;
    /// Called after the last entry's content has been read; an error means the capture is not
    /// to be trusted and no snapshot may be written.
    fn finish(&mut self) -> Result<(), Error>;
}

/// Errors of sources and restores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message ends with the cause, so `cause` is not also the error's `source()` (a
    /// chain printer would repeat it: "X: X").
    #[error("{context}: {cause}")]
    Io {
        context: String,
        cause: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("command {command:?} failed ({status}){stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("refusing to overwrite {count} existing path(s) under {target} (first: {first})")]
    WouldOverwrite {
        target: String,
        count: usize,
        first: String,
    },
    /// A stream or a command's output was empty: nothing that could be restored was captured.
    #[error("{0} gave no data: no snapshot was made")]
    Empty(String),
    #[error(transparent)]
    Format(#[from] backstop_format::FormatError),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause: source,
        }
    }
}
