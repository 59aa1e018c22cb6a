//! Test support shared by the engine's test binaries (included with `#[path]`).

use backstop_engine::BackupOptions;
use backstop_format::Timestamp;
use backstop_format::manifest::BackupKind;
use backstop_sources::Buffers;

/// A manual backup of source `name` by "test-host", `t` seconds after a fixed time.
pub fn opts(name: &str, t: i64) -> BackupOptions {
    BackupOptions {
        source_name: name.into(),
        kind: BackupKind::Manual,
        description: None,
        tags: vec![],
        ticket: None,
        time: Timestamp::from_second(1_700_000_000 + t).unwrap(),
        host: "test-host".into(),
        program: "test".into(),
        force: false,
        skip_unchanged: false,
    }
}

/// Content in owned buffers, as a database capture hands it over; of 2 MiB, the engine's read
/// batch, so that the engine cuts the same batches as from a reader.
pub struct Pieces(std::vec::IntoIter<Vec<u8>>);

impl Pieces {
    pub fn of(data: &[u8]) -> Box<dyn Buffers> {
        let pieces: Vec<Vec<u8>> = data.chunks(2 << 20).map(<[u8]>::to_vec).collect();
        Box::new(Pieces(pieces.into_iter()))
    }
}

impl Buffers for Pieces {
    fn next_buffer(&mut self, _: Option<Vec<u8>>) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.0.next())
    }
}
