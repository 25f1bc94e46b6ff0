//! The VPC definition (docs/format.md): the YAML model ([`model`]), loading with
//! locations ([`parse`]), the semantic rules ([`validate`]) and the resolved result
//! ([`validated`]). [`load_file`] and [`load_str`] run them all.

pub mod error;
pub mod model;
pub mod parse;
pub mod validate;
pub mod validated;

use std::{
    fs::OpenOptions,
    io::Read as _,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::Path,
};

pub use error::{Diagnostic, Diagnostics, LoadError};
pub use validated::ValidatedConfig;

/// Parses and validates the text of a definition; `file` names it in the diagnostics.
pub fn load_str(file: &str, text: &str) -> Result<ValidatedConfig, Diagnostics> {
    let diagnostics = |items| Diagnostics {
        file: file.to_owned(),
        items,
    };
    let parsed = parse::parse_str(text).map_err(|d| diagnostics(vec![d]))?;
    validate::validate(&parsed).map_err(diagnostics)
}

/// The largest definition file read (bytes): a definition filling every map (131,072 routes,
/// 32,768 instances, ...) takes about 10 MB of YAML.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// Reads a definition file, bounded in size and time: only a regular file is read (a FIFO, a
/// device such as `/dev/zero` or a directory is refused without blocking: the file is opened
/// non-blocking and checked before any read), and at most [`MAX_FILE_BYTES`].
pub fn read_file(path: &Path) -> Result<String, LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(LoadError::NotAFile {
            path: path.to_owned(),
            kind,
        });
    }
    let too_large = || LoadError::TooLarge {
        path: path.to_owned(),
        limit: MAX_FILE_BYTES,
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte more than the limit: a file growing while it is read is caught too.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map_err(|e| read_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Reads ([`read_file`]), parses and validates a definition file.
pub fn load_file(path: &Path) -> Result<ValidatedConfig, LoadError> {
    let text = read_file(path)?;
    Ok(load_str(&path.display().to_string(), &text)?)
}
