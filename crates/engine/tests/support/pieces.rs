//! Test support shared by the engine's test binaries (included with `#[path]`).

use backstop_sources::Buffers;

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
