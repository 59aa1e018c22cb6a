//! A source that is the standard output of a command (a database dump tool, for example), or
//! any other byte stream such as standard input.
//!
//! The stream is stored as one item. A command that exits non-zero fails the backup in
//! [`Source::finish`], after its output has been read: a dump that stopped half way must never
//! become a snapshot.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use backstop_format::manifest::{Item, ItemKind, SourceKind};

use crate::{Chunking, Entry, EntryContent, Error, Source};

/// The last bytes of a command's standard error kept for the error message.
const STDERR_TAIL: usize = 4096;

/// Runs a command and captures its standard output.
pub struct CommandSource {
    argv: Vec<String>,
    item_name: String,
    child: Option<Child>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    started: bool,
    read: Counter,
    allow_empty: bool,
    /// Variables set for the command only (a password, which never goes in argv).
    env: Vec<(String, String)>,
    kind: SourceKind,
}

impl CommandSource {
    /// `argv[0]` is the program; the output is stored as an item called `item_name`.
    pub fn new(argv: Vec<String>, item_name: String) -> Result<Self, Error> {
        if argv.is_empty() {
            return Err(Error::Invalid("the command is empty".into()));
        }
        backstop_format::manifest::check_item_path(&item_name)?;
        Ok(Self {
            argv,
            item_name,
            child: None,
            stderr: None,
            started: false,
            read: Counter::default(),
            allow_empty: false,
            env: Vec::new(),
            kind: SourceKind::Command,
        })
    }

    /// Sets `key` to `value` in the command's environment only.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Records the snapshot as of this kind (a database dumped by its tool) instead of a
    /// command's output.
    pub fn of_kind(mut self, kind: SourceKind) -> Self {
        self.kind = kind;
        self
    }

    /// Accepts a command that writes nothing (by default an empty output fails the backup: a
    /// dump of the wrong database that prints nothing is not a backup).
    pub fn allow_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
    }
}

impl Source for CommandSource {
    fn kind(&self) -> SourceKind {
        self.kind
    }

    fn describe(&self) -> Vec<String> {
        vec![self.argv.join(" ")]
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        if self.started {
            return Ok(None);
        }
        self.started = true;
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("starting command {:?}", self.argv[0]), e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        // Drain stderr concurrently so a chatty command cannot block on a full pipe.
        self.stderr = Some(std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            tail
        }));
        self.child = Some(child);
        Ok(Some(stream_entry(
            &self.item_name,
            self.read.wrap(Box::new(stdout)),
        )))
    }

    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn finish(&mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child
            .wait()
            .map_err(|e| Error::io(format!("waiting for command {:?}", self.argv[0]), e))?;
        let tail = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return self.read.check(
                &format!("command {:?}", self.argv.join(" ")),
                self.allow_empty,
            );
        }
        let text = String::from_utf8_lossy(&tail[tail.len().saturating_sub(STDERR_TAIL)..]);
        let text = text.trim();
        Err(Error::CommandFailed {
            command: self.argv.join(" "),
            status: status.to_string(),
            stderr: if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            },
        })
    }
}

impl Drop for CommandSource {
    fn drop(&mut self) {
        // An abandoned backup must not leave the command running.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The one entry of a stream source.
fn stream_entry(name: &str, content: Box<dyn Read + Send>) -> Entry {
    Entry {
        item: Item::new(name, ItemKind::Stream),
        content: Some(EntryContent::Stream {
            reader: content,
            chunking: Chunking::ContentDefined,
        }),
        required: true,
        reuse_unchanged: false,
    }
}

/// Any reader (standard input) as a one-item source.
pub struct StreamSource {
    reader: Option<Box<dyn Read + Send>>,
    item_name: String,
    read: Counter,
    allow_empty: bool,
}

impl StreamSource {
    pub fn new(reader: Box<dyn Read + Send>, item_name: String) -> Result<Self, Error> {
        backstop_format::manifest::check_item_path(&item_name)?;
        Ok(Self {
            reader: Some(reader),
            item_name,
            read: Counter::default(),
            allow_empty: false,
        })
    }

    /// Accepts an empty stream (by default it fails the backup: `pg_dump wrongdb | backstop
    /// backup --stdin` must not leave an empty snapshot that looks like a backup).
    pub fn allow_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
    }
}

/// Counts the bytes a stream gave, to tell an empty one at the end.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl Counter {
    fn wrap(&self, inner: Box<dyn Read + Send>) -> Box<dyn Read + Send> {
        Box::new(Counted {
            inner,
            count: self.0.clone(),
        })
    }

    fn check(&self, what: &str, allow_empty: bool) -> Result<(), Error> {
        if allow_empty || self.0.load(Ordering::Relaxed) > 0 {
            Ok(())
        } else {
            Err(Error::Empty(what.to_string()))
        }
    }
}

struct Counted {
    inner: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Source for StreamSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Stdin
    }
    fn describe(&self) -> Vec<String> {
        vec!["-".into()]
    }
    fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        Ok(self
            .reader
            .take()
            .map(|r| stream_entry(&self.item_name, self.read.wrap(r))))
    }
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    fn finish(&mut self) -> Result<(), Error> {
        self.read.check("standard input", self.allow_empty)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Reads a stream entry's content to its end.
    fn read_all(e: Entry) -> Vec<u8> {
        let Some(EntryContent::Stream { mut reader, .. }) = e.content else {
            panic!("a stream entry");
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    fn run(argv: &[&str]) -> (Vec<u8>, Result<(), Error>) {
        let mut s =
            CommandSource::new(argv.iter().map(|s| s.to_string()).collect(), "out".into()).unwrap();
        let out = read_all(s.next_entry().unwrap().unwrap());
        assert!(s.next_entry().unwrap().is_none());
        (out, s.finish())
    }

    #[test]
    fn captures_stdout() {
        let (out, r) = run(&["sh", "-c", "printf hello"]);
        assert_eq!(out, b"hello");
        r.unwrap();
    }

    #[test]
    fn failing_command_fails_with_its_stderr() {
        let (out, r) = run(&["sh", "-c", "printf partial; echo boom >&2; exit 3"]);
        assert_eq!(out, b"partial");
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("boom") && msg.contains('3'), "{msg}");
    }

    #[test]
    fn an_empty_output_fails_unless_allowed() {
        let (out, r) = run(&["true"]);
        assert!(out.is_empty());
        assert!(matches!(r, Err(Error::Empty(_))), "{r:?}");
        let mut s = CommandSource::new(vec!["true".into()], "out".into())
            .unwrap()
            .allow_empty(true);
        read_all(s.next_entry().unwrap().unwrap());
        s.finish().unwrap();
        let mut s = StreamSource::new(Box::new(std::io::empty()), "in".into()).unwrap();
        read_all(s.next_entry().unwrap().unwrap());
        assert!(matches!(s.finish(), Err(Error::Empty(_))));
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let mut s = CommandSource::new(vec!["/nonexistent/prog".into()], "out".into()).unwrap();
        let err = s.next_entry().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/prog"), "{err}");
    }
}
