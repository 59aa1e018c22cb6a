//! Files written past the system's page cache, where the system allows it (O_DIRECT on Linux):
//! packs here, restored database images in the engine. Direct writes need their memory, file
//! offset and length aligned to [`ALIGN`].

use std::fs::File;
use std::io;
use std::path::Path;

/// Alignment of direct writes (memory, offset, length): covers 512-byte and 4 KiB blocks.
pub const ALIGN: usize = 4096;

/// Creates the new file `path` for direct writes. `None` if the system or file system refuses
/// direct I/O; the file is then removed again (it may have been created before the refusal),
/// so an ordinary `create_new` can follow.
#[cfg(target_os = "linux")]
pub fn create_new(path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    match File::options()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if refused(&e) => {
            let _ = std::fs::remove_file(path);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn create_new(_path: &Path) -> io::Result<Option<File>> {
    Ok(None)
}

/// Whether an error is the system refusing a direct write (or open): EINVAL.
pub fn refused(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    return e.raw_os_error() == Some(libc::EINVAL);
    #[cfg(not(target_os = "linux"))]
    return e.kind() == io::ErrorKind::InvalidInput;
}
