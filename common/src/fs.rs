//! Reading input files safely: only regular files, never through a symlink
//! psim did not expect, and never blocking on a FIFO or a device.
//!
//! Every file psim reads as an input (a `--config`, a `trace:` file, a file
//! of an output directory read back by `--resume`, `psim merge` or
//! `psim report`) goes through [`open_regular`]: it opens without blocking
//! (`O_NONBLOCK`, so a FIFO with no writer does not hang the process),
//! optionally without following a final symlink (`O_NOFOLLOW`), and then
//! refuses anything `fstat` does not call a regular file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Whether a final symlink may be followed when opening an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow a symlink (a user's own input file, e.g. `--config`).
    Follow,
    /// Refuse a symlink (psim's own files in an output directory).
    Refuse,
}

/// Opens `path` for reading if it is a regular file; a FIFO, socket,
/// device or directory is refused with `InvalidInput` naming what it is,
/// and so is a symlink when `links` is [`Links::Refuse`].
pub fn open_regular(path: &Path, links: Links) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
        if links == Links::Refuse {
            flags |= libc::O_NOFOLLOW;
        }
        opts.custom_flags(flags);
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        // O_NOFOLLOW on a symlink fails with ELOOP: say what it is.
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && links == Links::Refuse => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a symbolic link; psim reads its own files only as regular files, never through a link",
            ))
        }
        Err(e) => return Err(e),
    };
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", describe(&kind)),
        ));
    }
    #[cfg(unix)]
    {
        // Back to blocking reads for a regular file (O_NONBLOCK has no
        // effect on them, but leave the descriptor as a plain open would).
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor we own; failure is harmless.
        unsafe {
            let fd = file.as_raw_fd();
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
        }
    }
    Ok(file)
}

/// Reads `path` as UTF-8 text if it is a regular file ([`open_regular`]).
pub fn read_regular(path: &Path, links: Links) -> std::io::Result<String> {
    let mut text = String::new();
    open_regular(path, links)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Reads `path` as bytes if it is a regular file ([`open_regular`]).
pub fn read_regular_bytes(path: &Path, links: Links) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path, links)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// What a non-regular file is, for messages.
pub fn describe(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// `path` made absolute against the current directory (without resolving
/// links), as text: an input file's path is recorded this way in
/// `config.toml`, so a replay or a resume from another folder reads the
/// same file. A path that cannot be made absolute is kept as given.
pub fn absolute(path: &str) -> String {
    std::path::absolute(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_symlink_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("psim-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "1 2").unwrap();
        assert_eq!(read_regular(&plain, Links::Refuse).unwrap(), "1 2");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&plain, &link).unwrap();
        assert_eq!(read_regular(&link, Links::Follow).unwrap(), "1 2");
        let err = read_regular(&link, Links::Refuse).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, Links::Follow).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
        let err = read_regular(&dir, Links::Follow).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
