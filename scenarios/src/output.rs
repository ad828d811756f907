//! Output directories and the files psim writes into them.
//!
//! Every command writes to a directory of its own: `config.toml` first (the
//! resolved experiment, so the run can be replayed with
//! `psim run --config DIR/config.toml` even if it is interrupted), then the
//! results as they are computed. psim never writes over a user's files: a
//! named directory must be new or empty unless `force` is set, and the
//! default `psim-out/NAME` gets a numeric suffix when taken.

use crate::experiments::tradeoff::{TradeoffRow, TradeoffTable, WorkersRow};
use crate::plot::{Plot, Series};
use crate::sweep::SweepResult;
use psim_common::num::show;
use psim_common::Experiment;
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use thiserror::Error;

mod stream;
pub use stream::SweepWriter;

/// Every file psim writes into an output directory. `psim report` embeds
/// only these, `--force` removes only these, and [`OutputDir::write`]
/// refuses any other name (so a new file must be listed here).
pub const PSIM_FILES: &[&str] = &[
    // every command
    "config.toml",
    "summary.json",
    "report.txt",
    "report.html",
    // run, sweep, tradeoff
    "runs.csv",
    "traces.csv",
    "staleness.csv",
    "traces.svg",
    "tradeoff.svg",
    // cluster engines: who contributed what; --record-pushes
    "workers.csv",
    "pushes.csv",
    "pushes.svg",
    "pushes-workers.svg",
    // three-phases
    "curves.csv",
    "phase-two.csv",
    "three-phases.svg",
    "phase-two-ode.svg",
    // momentum-vs-workers
    "table.md",
    "accuracy.svg",
    "best-momentum.svg",
    // run, sweep, tradeoff with --shard
    "shard.json",
    // Python: psim.run/sweep(record_runs=True)
    "run-traces.csv",
    // --parquet (Python: by default)
    "runs.parquet",
    "traces.parquet",
    "run-traces.parquet",
    // reproduce --check-seeds
    "seeds.txt",
    "seeds.json",
    // spiky
    "histograms.csv",
    "finals.csv",
    "spiky.svg",
    // speedup
    "speedup.csv",
    "speedup.svg",
    "heterogeneous.svg",
    "momentum.json",
    // phase-diagram
    "cells.csv",
    "edges.csv",
    "phase-constant.svg",
    "phase-uniform.svg",
    "phase-workers.svg",
    // saddle-escape, escape-times
    "escape.csv",
    "saddle-escape.svg",
    "escape-by-step-size.csv",
    "saddle-escape-by-batch.csv",
    "sharp-escape-by-batch.csv",
    "escape-vs-step-size.svg",
    "saddle-escape-vs-batch.svg",
    "sharp-escape-vs-batch.svg",
];

/// The advisory lock file of an output directory: a process writing the
/// directory holds an exclusive `flock` on it for as long as its
/// [`OutputDir`] lives, so a second writer is refused by name. It is left in
/// place (removing it would let two processes lock two different files).
pub const LOCK_FILE: &str = ".psim.lock";

/// Why output could not be written.
#[derive(Debug, Error)]
pub enum OutputError {
    /// The directory holds files and overwriting was not allowed.
    #[error("output directory `{0}` exists and is not empty; choose another --out or pass --force to overwrite psim's files in it")]
    NotEmpty(PathBuf),
    /// `--force` on a non-empty directory psim did not write.
    #[error("output directory `{0}` is not empty and is not a psim output directory (it has no config.toml); --force only replaces an earlier psim output, choose another --out")]
    NotPsimOutput(PathBuf),
    /// A file psim reads back is not a regular file.
    #[error("`{path}` is {what}; psim reads its own files only as regular files (never through a link, never a FIFO or device): remove it")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// Another process holds the directory's lock.
    #[error("output directory `{0}` is in use by another psim process (it holds `{0}/.psim.lock`); wait for it to finish, or choose another --out")]
    Locked(PathBuf),
    /// A path psim writes through is a symlink or another non-directory.
    #[error("`{path}` is {what}; psim writes only into directories it created and never follows a link it did not create: remove it, or give another directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The experiment's name cannot name a directory.
    #[error(transparent)]
    Name(#[from] psim_common::ConfigError),
    /// A file name missing from [`PSIM_FILES`] (a bug).
    #[error("`{0}` is not in psim's list of output files (output::PSIM_FILES)")]
    Unlisted(String),
    /// A filesystem error (the cause is in the message, not repeated as a source).
    #[error("cannot write `{path}`: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file psim reads back does not hold what psim writes.
    #[error("invalid `{path}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Serialisation failed.
    #[error("cannot encode `{path}`: {message}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl OutputError {
    fn io(path: &Path, cause: std::io::Error) -> Self {
        OutputError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// A directory psim owns for one command. It holds the directory's lock
/// ([`LOCK_FILE`]) until the last clone is dropped.
#[derive(Debug, Clone)]
pub struct OutputDir {
    path: PathBuf,
    _lock: std::sync::Arc<std::fs::File>,
    /// Whether files are flushed to disk ([`OutputDir::scratch`]: not).
    durable: bool,
}

/// Whether `dir` holds anything but psim's lock file (unreadable: no).
fn has_entries(dir: &Path) -> bool {
    dir.read_dir().is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name() != std::ffi::OsStr::new(LOCK_FILE)))
    })
}

/// Whether `path` is a regular file, without following a symlink.
fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// Takes the exclusive lock of `dir` (creating [`LOCK_FILE`] without
/// following a link), or refuses with [`OutputError::Locked`].
fn lock(dir: &Path) -> Result<std::fs::File, OutputError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| OutputError::io(&path, e))?;
    let kind = file
        .metadata()
        .map_err(|e| OutputError::io(&path, e))?
        .file_type();
    if !kind.is_file() {
        return Err(OutputError::NotADirectory {
            path,
            what: psim_common::fs::describe(&kind),
        });
    }
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
            OutputError::Locked(dir.to_path_buf())
        } else {
            OutputError::io(&path, e)
        });
    }
    Ok(file)
}

/// Makes `dir` a real directory (creating it if missing), refusing a
/// symlink or a file in its place.
fn ensure_dir(dir: &Path) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) => Err(OutputError::NotADirectory {
            path: dir.to_path_buf(),
            what: psim_common::fs::describe(&m.file_type()),
        }),
        Err(_) => match std::fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ensure_dir_exists(dir),
            Err(e) => Err(OutputError::io(dir, e)),
        },
    }
}

fn ensure_dir_exists(dir: &Path) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) => Err(OutputError::NotADirectory {
            path: dir.to_path_buf(),
            what: psim_common::fs::describe(&m.file_type()),
        }),
        Err(e) => Err(OutputError::io(dir, e)),
    }
}

impl OutputDir {
    /// Opens `requested`, or `psim-out/<default_name>` (with a `-2`, `-3`…
    /// suffix if taken) when none is given. `default_name` must be a plain
    /// file name ([`psim_common::validate_name`]).
    ///
    /// A non-empty `requested` directory needs `force`, and then must be an
    /// earlier psim output (it has `config.toml`): psim's own files in it
    /// ([`PSIM_FILES`]) are removed first, so no earlier experiment's plots
    /// or tables mix into this one's; other files are left alone. A symlink
    /// among them is removed, never followed. The directory's lock is taken
    /// before anything in it is removed or written.
    pub fn create(
        requested: Option<&Path>,
        default_name: &str,
        force: bool,
    ) -> Result<Self, OutputError> {
        psim_common::validate_name(default_name)?;
        match requested {
            Some(p) => {
                let non_empty = has_entries(p);
                if non_empty && !force {
                    return Err(OutputError::NotEmpty(p.to_path_buf()));
                }
                if non_empty && !is_regular(&p.join("config.toml")) {
                    return Err(OutputError::NotPsimOutput(p.to_path_buf()));
                }
                std::fs::create_dir_all(p).map_err(|e| OutputError::io(p, e))?;
                let lock = lock(p)?;
                if has_entries(p) {
                    if !force {
                        // Filled between the check and the lock.
                        return Err(OutputError::NotEmpty(p.to_path_buf()));
                    }
                    for name in PSIM_FILES {
                        let f = p.join(name);
                        // A file or a symlink (the link is removed, not its target).
                        if std::fs::symlink_metadata(&f)
                            .is_ok_and(|m| m.file_type().is_file() || m.file_type().is_symlink())
                        {
                            std::fs::remove_file(&f).map_err(|e| OutputError::io(&f, e))?;
                        }
                    }
                    remove_point_files(&p.join("points"))?;
                }
                Ok(Self {
                    path: p.to_path_buf(),
                    _lock: std::sync::Arc::new(lock),
                    durable: true,
                })
            }
            None => {
                let base = Path::new("psim-out").join(default_name);
                std::fs::create_dir_all("psim-out").map_err(|e| OutputError::io(&base, e))?;
                let mut k = 1;
                loop {
                    let candidate = if k == 1 {
                        base.clone()
                    } else {
                        PathBuf::from(format!("{}-{k}", base.display()))
                    };
                    k += 1;
                    // create_dir is exclusive: two processes never get one name.
                    match std::fs::create_dir(&candidate) {
                        Ok(()) => {
                            let lock = lock(&candidate)?;
                            return Ok(Self {
                                path: candidate,
                                _lock: std::sync::Arc::new(lock),
                                durable: true,
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(OutputError::io(&candidate, e)),
                    }
                }
            }
        }
    }

    /// An existing psim output directory (it has `config.toml`, a regular
    /// file), to continue (`--resume`, a retried shard, `psim merge` into
    /// it). Takes the directory's lock.
    ///
    /// Every file psim will read back is checked first
    /// ([`check_regular_files`]), and so is a `shard.json`'s shard (a count
    /// of 0 or an index beyond it is refused by name, never divided by).
    pub fn existing(path: &Path) -> Result<Self, OutputError> {
        let config = path.join("config.toml");
        if !is_regular(&config) {
            // A config.toml that is there but no regular file (a symlink,
            // a FIFO) is named as such, like every other file psim reads.
            return Err(match std::fs::symlink_metadata(&config) {
                Ok(m) => OutputError::NotRegular {
                    path: config,
                    what: psim_common::fs::describe(&m.file_type()),
                },
                Err(_) => OutputError::NotPsimOutput(path.to_path_buf()),
            });
        }
        let lock = lock(path)?;
        check_regular_files(path)?;
        check_shard_json(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: std::sync::Arc::new(lock),
            durable: true,
        })
    }

    /// Any existing directory holding psim output (for `psim report`, which
    /// writes `report.html` into directories without `config.toml` too).
    /// Takes the directory's lock.
    pub fn existing_any(path: &Path) -> Result<Self, OutputError> {
        ensure_dir_exists(path)?;
        let lock = lock(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: std::sync::Arc::new(lock),
            durable: true,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same directory written without flushing to disk: files are
    /// still written aside and renamed into place (a killed process leaves
    /// whole files or none), but neither fsync'd nor group-committed. For a
    /// scratch directory that dies with its process (the Python package's
    /// temporary output directory), where the flushes were most of a short
    /// call's wall time (≈ 45 ms of a 50 ms `psim.run`, on a shared disk).
    pub fn scratch(mut self) -> Self {
        self.durable = false;
        self
    }

    /// Writes `contents` to `name` inside the directory, atomically: a
    /// reader (or a crash) sees the old file or the whole new one, never a
    /// part ([`atomic_write`]).
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf, OutputError> {
        let path = self.checked(name)?;
        write_aside(&path, |f| f.write_all(contents.as_ref()), self.durable)?;
        Ok(path)
    }

    /// Writes `name` atomically from `fill` (streamed; [`atomic_write`]).
    pub fn write_with(
        &self,
        name: &str,
        fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
    ) -> Result<PathBuf, OutputError> {
        let path = self.checked(name)?;
        write_aside(&path, fill, self.durable)?;
        Ok(path)
    }

    /// The `points` directory, created if missing; a symlink or a file in
    /// its place is refused.
    pub fn points_dir(&self) -> Result<PathBuf, OutputError> {
        let dir = self.path.join("points");
        ensure_dir(&dir)?;
        Ok(dir)
    }

    /// Writes the two files of finished point `index` from their bytes
    /// (`points/P.runs.csv`, then `points/P.json`, the marker that the
    /// point is done), each atomically.
    pub fn write_point_bytes(
        &self,
        index: usize,
        json: &str,
        rows: &[u8],
    ) -> Result<(), OutputError> {
        let dir = self.points_dir()?;
        atomic_write_unsynced(&dir.join(format!("{index}.runs.csv")), |f| {
            f.write_all(rows)
        })?;
        atomic_write_unsynced(&dir.join(format!("{index}.json")), |f| {
            f.write_all(json.as_bytes())
        })?;
        Ok(())
    }

    /// Flushes everything written to the directory's file system to disk
    /// (`syncfs`): the group commit of point files, which are written
    /// without a flush each ([`OutputDir::write_point_bytes`]).
    pub fn sync(&self) -> Result<(), OutputError> {
        if !self.durable {
            return Ok(());
        }
        let dir = std::fs::File::open(&self.path).map_err(|e| OutputError::io(&self.path, e))?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: syncfs on a file descriptor this function owns.
            if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
                return Err(OutputError::io(&self.path, std::io::Error::last_os_error()));
            }
        }
        #[cfg(not(target_os = "linux"))]
        dir.sync_all().map_err(|e| OutputError::io(&self.path, e))?;
        Ok(())
    }

    /// The path of `name`, which must be one of [`PSIM_FILES`].
    fn checked(&self, name: &str) -> Result<PathBuf, OutputError> {
        if !PSIM_FILES.contains(&name) {
            return Err(OutputError::Unlisted(name.to_string()));
        }
        Ok(self.path.join(name))
    }

    /// Writes `value` as pretty JSON.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<PathBuf, OutputError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| OutputError::Encode {
            path: self.path.join(name),
            message: e.to_string(),
        })?;
        self.write(name, text + "\n")
    }

    /// Writes the resolved experiment as `config.toml`.
    pub fn write_config(&self, experiment: &Experiment) -> Result<PathBuf, OutputError> {
        let text = toml::to_string(experiment).map_err(|e| OutputError::Encode {
            path: self.path.join("config.toml"),
            message: e.to_string(),
        })?;
        // TOML prints a tiny float in full (5e-324 as 324 digits): shorten
        // long numbers, kept only if the text still reads back the same.
        let short = shorten_floats(&text);
        let text = match toml::from_str::<Experiment>(&short) {
            Ok(back) if back == *experiment => short,
            _ => text,
        };
        let header =
            "# Resolved psim configuration: replay with `psim run --config <this file>`.\n";
        self.write("config.toml", format!("{header}{text}"))
    }

    /// Writes rows as CSV with a header taken from `header`.
    pub fn write_csv(
        &self,
        name: &str,
        header: &[&str],
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> Result<PathBuf, OutputError> {
        let path = self.checked(name)?;
        write_aside(
            &path,
            |f| {
                let mut w = csv::Writer::from_writer(f);
                w.write_record(header).map_err(std::io::Error::other)?;
                for r in rows {
                    w.write_record(&r).map_err(std::io::Error::other)?;
                }
                w.flush()
            },
            self.durable,
        )?;
        Ok(path)
    }
}

/// Rewrites every unquoted decimal number longer than 24 characters in
/// TOML `text` in exponent notation ([`psim_common::num::show`]).
fn shorten_floats(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            quoted = !quoted;
        }
        let starts_number = !quoted
            && (c.is_ascii_digit() || c == '-')
            && !text[..i].ends_with(|p: char| p.is_alphanumeric() || p == '_' || p == '.');
        if !starts_number {
            out.push(c);
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = chars.peek() {
            if d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E' | '+' | '-') {
                end = j + d.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        let token = &text[i..end];
        match token.parse::<f64>() {
            Ok(v) if token.len() > 24 && token.contains('.') && v.is_finite() => {
                out.push_str(&format!("{v:e}"))
            }
            _ => out.push_str(token),
        }
    }
    out
}

/// Creates a temporary file beside `path` exclusively (`O_CREAT|O_EXCL`,
/// never through a symlink: a planted `.NAME.tmp-…` is not written
/// through, another name is tried).
fn create_temp(path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    let mut last = None;
    for _ in 0..64 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{name}.tmp-{}-{k}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name left")))
}

/// Writes `path` atomically: `fill` writes a temporary file in the same
/// directory, created exclusively and never through a link
/// ([`create_temp`]), which is flushed to disk (fsync) and renamed over
/// `path` (a symlink at `path` is replaced, not followed). A crash or a
/// full disk leaves the old file or none, never a truncated one; the
/// temporary file is removed on error.
pub fn atomic_write(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    write_aside(path, fill, true)
}

/// [`atomic_write`] without the flush to disk: atomic against a killed
/// process (the page cache survives it), made durable against a power
/// loss by the next [`OutputDir::sync`] (point files: group commit).
pub fn atomic_write_unsynced(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    write_aside(path, fill, false)
}

fn write_aside(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
    sync: bool,
) -> Result<(), OutputError> {
    let (tmp, file) = create_temp(path).map_err(|e| OutputError::io(path, e))?;
    let result = (|| {
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        if sync {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|cause| {
        let _ = std::fs::remove_file(&tmp);
        OutputError::io(path, cause)
    })
}

/// Checks that every file psim would read back from `dir` (its
/// [`PSIM_FILES`], `points/*`, and `points` itself) is a regular file (or a
/// directory for `points`) when present: a symlink, FIFO or device is
/// refused by name, so a later read neither follows a link out of the
/// directory nor blocks.
pub fn check_regular_files(dir: &Path) -> Result<(), OutputError> {
    let bad = |path: PathBuf, kind: &std::fs::FileType| OutputError::NotRegular {
        path,
        what: psim_common::fs::describe(kind),
    };
    // report.html is only written (renamed over, a link replaced), never read.
    for name in PSIM_FILES.iter().filter(|n| **n != "report.html") {
        let f = dir.join(name);
        if let Ok(m) = std::fs::symlink_metadata(&f) {
            if !m.file_type().is_file() {
                return Err(bad(f, &m.file_type()));
            }
        }
    }
    let points = dir.join("points");
    match std::fs::symlink_metadata(&points) {
        Err(_) => return Ok(()),
        Ok(m) if !m.file_type().is_dir() => return Err(bad(points, &m.file_type())),
        Ok(_) => {}
    }
    for entry in points
        .read_dir()
        .map_err(|e| OutputError::io(&points, e))?
        .flatten()
    {
        let kind = entry
            .file_type()
            .map_err(|e| OutputError::io(&entry.path(), e))?;
        if !kind.is_file() {
            return Err(bad(entry.path(), &kind));
        }
    }
    Ok(())
}

/// Refuses a `shard.json` in `dir` whose shard is not `I/N` with
/// 1 ≤ N ≤ 10⁸ and I < N (absent: fine).
fn check_shard_json(dir: &Path) -> Result<(), OutputError> {
    let path = dir.join("shard.json");
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(());
    }
    let text = psim_common::fs::read_regular(&path, psim_common::fs::Links::Refuse)
        .map_err(|e| OutputError::io(&path, e))?;
    let bad = |message: String| OutputError::Invalid {
        path: path.clone(),
        message,
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let field = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    match (field("index"), field("count")) {
        (Some(i), Some(n)) if (1..=100_000_000).contains(&n) && i < n => Ok(()),
        (i, n) => {
            let show = |v: Option<u64>| v.map_or("missing".to_string(), |v| v.to_string());
            Err(bad(format!(
                "its shard must have 1 ≤ count ≤ 100000000 and index < count, got index {}, count {}; the file was edited or damaged: rerun this shard into a new --out",
                show(i),
                show(n)
            )))
        }
    }
}

/// Removes psim's point files (`P.json`, `P.runs.csv`, and temporaries
/// left by a kill) from `dir`, and `dir` if that empties it.
fn remove_point_files(dir: &Path) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => {}
        // A link is removed, never followed into its target.
        Ok(m) if m.file_type().is_symlink() => {
            return std::fs::remove_file(dir).map_err(|e| OutputError::io(dir, e));
        }
        _ => return Ok(()),
    }
    let Ok(entries) = dir.read_dir() else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.trim_start_matches('.');
        let digits = stem.split('.').next().unwrap_or("");
        let ours = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (name.ends_with(".json") || name.ends_with(".runs.csv") || name.contains(".tmp-"));
        if ours {
            let f = entry.path();
            std::fs::remove_file(&f).map_err(|e| OutputError::io(&f, e))?;
        }
    }
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// `summary.json`: the sweep's points and, for tradeoff experiments, the analysis.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    /// Experiment name.
    pub name: &'a str,
    /// psim version that produced it.
    pub psim_version: &'a str,
    /// Master seed.
    pub seed: u64,
    /// Runs per point.
    pub runs: u32,
    /// Steps per run.
    pub steps: u64,
    /// The server's update rule (the same for every point).
    pub rule: &'a psim_common::update::RuleKind,
    /// The step-size schedule (the same for every point).
    pub schedule: &'a psim_common::update::Schedule,
    /// Threads the sweep used.
    pub threads: usize,
    /// Wall-clock seconds of the sweep.
    pub wall_seconds: f64,
    /// Every point's summary.
    pub points: Vec<&'a crate::sweep::PointSummary>,
    /// Optimal delays per (μ, η), when analysed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tradeoff: Option<&'a TradeoffTable>,
}

/// A float as the CSV tables write it: the shortest text that reads back
/// to the same value, empty for NaN (a diverged run's error).
pub fn f(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        show(v)
    }
}

/// Writes `summary.json`, `runs.csv`, `traces.csv`, `staleness.csv` and the
/// plots of a sweep; returns the files written.
pub fn write_sweep(
    out: &OutputDir,
    sweep: &SweepResult,
    tradeoff: Option<&TradeoffTable>,
) -> Result<Vec<PathBuf>, OutputError> {
    let e = &sweep.experiment;
    let mut w = SweepWriter::new(out, e, (sweep.wall_seconds, sweep.threads), tradeoff)?;
    for p in &sweep.points {
        w.add(p)?;
    }
    let mut files = Vec::new();
    if sweep.points.iter().any(|p| !p.pushes.is_empty()) {
        files.push(write_pushes(out, sweep)?);
        let (time, workers) = pushes_plots(sweep);
        files.push(out.write("pushes.svg", time.to_svg())?);
        files.push(out.write("pushes-workers.svg", workers.to_svg())?);
    }
    files.extend(w.finish()?);
    match tradeoff {
        Some(TradeoffTable::Delays(rows)) => {
            files.push(out.write("tradeoff.svg", tradeoff_plot(rows, &e.name).to_svg())?)
        }
        Some(TradeoffTable::Workers(rows)) => {
            files.push(out.write("tradeoff.svg", workers_plot(rows, &e.name).to_svg())?)
        }
        None => {}
    }
    Ok(files)
}

/// How many `param_*` columns the runs of `e` carry: the kept final
/// parameters' dimension, read off the first point's first run (its row in
/// memory, or its point file's first line beyond the `fixed` columns).
fn param_count_of(
    out: &OutputDir,
    e: &Experiment,
    first: Option<&crate::sweep::PointResult>,
    fixed: usize,
) -> usize {
    if !e.base.record_params {
        return 0;
    }
    let Some(p) = first else {
        return 0;
    };
    if let Some(r) = p.rows.first() {
        return r.params.len();
    }
    let frag = out
        .path()
        .join("points")
        .join(format!("{}.runs.csv", p.summary.index));
    read_regular(&frag)
        .ok()
        .and_then(|t| {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(t.as_bytes());
            r.records().next()?.ok().map(|rec| rec.len())
        })
        .map_or(0, |n| n.saturating_sub(fixed))
}

/// The point columns of every CSV: index, μ, η, then the engine axes (the
/// delay model on the injected engine, workers/compute time/consistency on
/// the others), then `rest`.
fn columns(e: &Experiment, rest: &[&'static str]) -> Vec<&'static str> {
    let axes: &[&str] = match e.base.cluster() {
        Some(c) if c.worker_compute.is_some() => {
            &["workers", "compute_time", "consistency", "worker_compute"]
        }
        Some(_) => &["workers", "compute_time", "consistency"],
        None => &["delay"],
    };
    let mut c = vec!["point", "momentum", "step_size"];
    c.extend(axes.iter().copied());
    c.extend(rest.iter().copied());
    c
}

/// A point's values of the [`columns`] before `rest`.
fn point_head(s: &crate::sweep::PointSummary) -> Vec<String> {
    let mut row = vec![s.index.to_string(), show(s.momentum), show(s.step_size)];
    match s.workers {
        Some(w) => {
            row.extend([
                w.to_string(),
                s.compute_time.clone().unwrap_or_default(),
                s.consistency.clone().unwrap_or_default(),
            ]);
            // Set for every point of the experiment or for none (columns).
            if let Some(wc) = &s.worker_compute {
                row.push(wc.clone());
            }
        }
        None => row.push(s.delay.clone().unwrap_or_default()),
    }
    row
}

/// The header of `runs.csv`.
pub fn runs_header(e: &Experiment) -> Vec<&'static str> {
    let simulated = e.base.engine_kind() == psim_common::EngineKind::VirtualTime;
    // Capped sleeps exist only where workers really sleep.
    let wall_clock = e.base.engine.is_wall_clock();
    columns(
        e,
        &[
            "run",
            "outcome",
            "outcome_step",
            "final_error",
            "tail_error",
            "mean_staleness",
            "max_staleness",
            "received",
            "applied",
            "dropped_too_stale",
            "dropped_after_stop",
            "clamped",
            "cancelled",
        ],
    )
    .into_iter()
    .chain(wall_clock.then_some("capped_sleeps"))
    .chain(["wall_seconds"])
    .chain(simulated.then_some("virtual_time"))
    .collect()
}

/// The `runs.csv` rows of point `p` (also its `points/P.runs.csv`).
pub fn runs_rows<'a>(
    _e: &Experiment,
    p: &'a crate::sweep::PointResult,
) -> impl Iterator<Item = Vec<String>> + 'a {
    runs_rows_of(p)
}

/// Reads `path` as text if it is a regular file (not a link, a FIFO or a
/// device, which could point outside the directory or block forever).
pub fn read_regular(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (psim reads only regular files it wrote)",
        ));
    }
    std::fs::read_to_string(path)
}

/// The `runs.csv` rows of point `p` (also its `points/P.runs.csv`).
pub fn runs_rows_of(p: &crate::sweep::PointResult) -> impl Iterator<Item = Vec<String>> + '_ {
    // The point's own engine: a plan may mix engines (the cluster tradeoff
    // runs the matching injected points beside its own).
    let simulated = p.config.engine_kind() == psim_common::EngineKind::VirtualTime;
    let wall_clock = p.config.engine.is_wall_clock();
    p.rows.iter().map(move |r| {
        let (outcome, step) = match r.outcome {
            psim_common::Outcome::StepsReached => ("steps_reached", String::new()),
            psim_common::Outcome::TargetErrorReached { step } => {
                ("target_error_reached", step.to_string())
            }
            psim_common::Outcome::Diverged { step } => ("diverged", step.to_string()),
            psim_common::Outcome::Stopped { step } => ("stopped", step.to_string()),
        };
        let c = r.counters;
        let mut row = point_head(&p.summary);
        row.extend([
            r.run.to_string(),
            outcome.into(),
            step,
            f(r.final_error),
            f(r.tail_error),
            f(r.mean_staleness),
            r.max_staleness.to_string(),
            c.received.to_string(),
            c.applied.to_string(),
            c.dropped_too_stale.to_string(),
            c.dropped_after_stop.to_string(),
            c.clamped.to_string(),
            c.cancelled.to_string(),
        ]);
        if wall_clock {
            row.push(r.capped_sleeps.to_string());
        }
        row.push(format!("{:.6}", r.wall_seconds));
        if simulated {
            row.push(r.virtual_time.map_or(String::new(), |t| t.to_string()));
        }
        // A scenario's measured columns, then the kept parameters: every
        // value in Rust's shortest round-trip form, so reading it back
        // gives the same bits.
        row.extend(r.extras.iter().map(|&v| f(v)));
        row.extend(r.params.iter().map(|&v| f(v)));
        row
    })
}

/// Mean error versus step; for a tradeoff sweep only the τ = 0 curve per μ
/// (all points would be unreadable), otherwise up to 10 points.
pub fn traces_plot(sweep: &SweepResult, tradeoff: bool) -> Plot {
    let mut plot = TracesPlot::new(&sweep.experiment, tradeoff);
    sweep.points.iter().for_each(|p| plot.add(p));
    plot.into_plot()
}

/// [`traces_plot`] built a point at a time: the first ten series (one per
/// (μ, η) at the smallest delay for the tradeoff).
pub struct TracesPlot {
    name: String,
    grid: psim_common::Grid,
    tradeoff: bool,
    seen: std::collections::HashSet<(u64, u64)>,
    series: Vec<Series>,
}

impl TracesPlot {
    /// An empty plot for experiment `e`.
    pub fn new(e: &Experiment, tradeoff: bool) -> Self {
        Self {
            name: e.name.clone(),
            grid: e.grid.clone(),
            tradeoff,
            seen: Default::default(),
            series: Vec::new(),
        }
    }

    /// Adds point `p`'s trace, if it is one of the series shown.
    pub fn add(&mut self, p: &crate::sweep::PointResult) {
        if self.series.len() == 10 {
            return;
        }
        let key = (p.summary.momentum.to_bits(), p.summary.step_size.to_bits());
        if self.tradeoff && !self.seen.insert(key) {
            return;
        }
        let grid = &self.grid;
        let tradeoff = self.tradeoff;
        let mut label = Vec::new();
        if grid.momentum.len() > 1 || tradeoff {
            label.push(format!("μ={}", p.summary.momentum));
        }
        if grid.step_size.len() > 1 {
            label.push(format!("η={}", p.summary.step_size));
        }
        if (grid.delay.len() > 1 || grid.has_cluster_axes()) && !tradeoff {
            label.push(p.summary.setting());
        }
        if label.is_empty() {
            label.push(format!("μ={} {}", p.summary.momentum, p.summary.setting()));
        }
        self.series.push(Series {
            label: label.join(" "),
            points: p.trace.iter().map(|t| (t.step as f64, t.mean)).collect(),
            band: p
                .trace
                .iter()
                .map(|t| (t.step as f64, t.p10, t.p90))
                .collect(),
            markers: false,
            dashed: false,
            color: None,
        });
    }

    /// The plot.
    pub fn into_plot(self) -> Plot {
        Plot {
            title: format!(
                "{}: mean error over runs{} (band: 10–90%)",
                self.name,
                if self.tradeoff {
                    " at the smallest delay"
                } else {
                    ""
                }
            ),
            x_label: "step".into(),
            y_label: "error".into(),
            log_y: true,
            series: self.series,
            ..Default::default()
        }
    }
}

/// Figure 1 of 001: mean error versus delay, one line per μ, a 10–90% band,
/// and the measured optimal delays marked.
pub fn tradeoff_plot(rows: &[TradeoffRow], name: &str) -> Plot {
    let series = rows
        .iter()
        .map(|r| Series {
            label: format!(
                "μ={}{} (τ*={})",
                r.momentum,
                if rows.iter().any(|o| o.step_size != r.step_size) {
                    format!(" η={}", r.step_size)
                } else {
                    String::new()
                },
                r.optimal_delay.map_or("–".into(), |d| d.to_string())
            ),
            points: r
                .errors
                .iter()
                .map(|e| {
                    (
                        e.delay,
                        if e.at.diverged > 0 {
                            f64::NAN
                        } else {
                            e.at.mean_error
                        },
                    )
                })
                .collect(),
            band: r
                .errors
                .iter()
                .filter(|e| e.at.diverged == 0)
                .map(|e| (e.delay, e.at.p10, e.at.p90))
                .collect(),
            markers: true,
            dashed: false,
            color: None,
        })
        .collect::<Vec<_>>();
    // The theory, dashed in each μ's colour: the OU stationary error (the
    // level at τ = 0) across the grid, and a vertical mark at the largest
    // stable constant delay of the linearised delayed heavy ball.
    let mut series = series;
    for (i, r) in rows.iter().enumerate() {
        let Some(ou) = r.theory_ou_error else {
            continue;
        };
        let x_max = r.errors.last().map_or(0.0, |e| e.delay);
        let y_top = r
            .errors
            .iter()
            .filter(|e| e.at.diverged == 0)
            .map(|e| e.at.p90)
            .fold(ou, f64::max);
        let mut points = vec![(0.0, ou), (x_max, ou)];
        let mut label = format!("theory μ={}: OU", r.momentum);
        if let Some(t) = r.theory_max_stable_delay {
            points.extend([
                (f64::NAN, f64::NAN),
                (t as f64, 0.8 * ou),
                (t as f64, y_top),
            ]);
            label.push_str(&format!(", τ ≤ {t}"));
        }
        series.push(Series {
            label,
            points,
            dashed: true,
            color: Some(i),
            ..Default::default()
        });
    }
    Plot {
        title: format!("{name}: mean error vs delay (band: 10–90% of runs; dashed: theory)"),
        x_label: "delay τ (steps)".into(),
        y_label: "optimisation error".into(),
        log_y: true,
        series,
        ..Default::default()
    }
}

/// The cluster-engine counterpart of Figure 1: mean error versus worker
/// count, one line per μ, a 10–90% band, the largest tolerated M in the legend.
pub fn workers_plot(rows: &[WorkersRow], name: &str) -> Plot {
    let series = rows
        .iter()
        .map(|r| Series {
            label: format!(
                "μ={}{}{} (M*={})",
                r.momentum,
                if rows.iter().any(|o| o.step_size != r.step_size) {
                    format!(" η={}", r.step_size)
                } else {
                    String::new()
                },
                r.setting
                    .as_ref()
                    .map_or(String::new(), |x| format!(" {x}")),
                r.max_workers.map_or("–".into(), |d| d.to_string())
            ),
            points: r
                .errors
                .iter()
                .map(|e| {
                    let y = if e.at.diverged > 0 {
                        f64::NAN
                    } else {
                        e.at.mean_error
                    };
                    (e.workers as f64, y)
                })
                .collect(),
            band: r
                .errors
                .iter()
                .filter(|e| e.at.diverged == 0)
                .map(|e| (e.workers as f64, e.at.p10, e.at.p90))
                .collect(),
            markers: true,
            dashed: false,
            color: None,
        })
        .collect();
    Plot {
        title: format!("{name}: mean error vs workers (band: 10–90% of runs)"),
        x_label: "workers M".into(),
        y_label: "optimisation error".into(),
        log_y: true,
        series,
        ..Default::default()
    }
}

/// Writes `pushes.csv` ([`psim_common::pushes::PUSHES_HEADER`]), streamed
/// row by row: every recorded push of every run, in the order applied.
pub fn write_pushes(out: &OutputDir, sweep: &SweepResult) -> Result<PathBuf, OutputError> {
    use std::io::Write;
    out.write_with("pushes.csv", |w| {
        writeln!(w, "{}", psim_common::pushes::PUSHES_HEADER)?;
        for p in &sweep.points {
            for (run, rows) in &p.pushes {
                for r in rows {
                    writeln!(
                        w,
                        "{},{run},{},{},{},{},{:e},{:e}",
                        p.summary.index,
                        r.worker,
                        r.fetched_version,
                        r.applied_version,
                        r.staleness,
                        r.compute_seconds,
                        r.wait_seconds
                    )?;
                }
            }
        }
        Ok(())
    })
}

/// The measured staleness over time (per point, first recorded run:
/// staleness against applied version, averaged in up to 400 bins) and per
/// worker (mean staleness of each worker's recorded pushes, with its max).
pub fn pushes_plots(sweep: &SweepResult) -> (Plot, Plot) {
    let mut time = Vec::new();
    let mut workers = Vec::new();
    for p in sweep.points.iter().take(COLORS_SHOWN) {
        let Some((run, rows)) = p.pushes.first() else {
            continue;
        };
        let bins = rows.len().clamp(1, 400);
        let per = rows.len().div_ceil(bins).max(1);
        time.push(Series {
            label: format!("{} run {run} (mean of {per})", p.summary.setting()),
            points: rows
                .chunks(per)
                .map(|c| {
                    let n = c.len() as f64;
                    (
                        c.iter().map(|r| r.applied_version as f64).sum::<f64>() / n,
                        c.iter().map(|r| r.staleness as f64).sum::<f64>() / n,
                    )
                })
                .collect(),
            ..Default::default()
        });
        let m = rows
            .iter()
            .map(|r| r.worker as usize + 1)
            .max()
            .unwrap_or(0);
        let mut sum = vec![(0u64, 0u64, 0u64); m];
        for r in rows {
            let e = &mut sum[r.worker as usize];
            e.0 += r.staleness;
            e.1 += 1;
            e.2 = e.2.max(r.staleness);
        }
        workers.push(Series {
            label: format!("{} run {run}: mean", p.summary.setting()),
            points: sum
                .iter()
                .enumerate()
                .filter(|(_, e)| e.1 > 0)
                .map(|(w, e)| (w as f64, e.0 as f64 / e.1 as f64))
                .collect(),
            band: sum
                .iter()
                .enumerate()
                .filter(|(_, e)| e.1 > 0)
                .map(|(w, e)| (w as f64, 0.0, e.2 as f64))
                .collect(),
            markers: true,
            ..Default::default()
        });
    }
    let name = &sweep.experiment.name;
    (
        Plot {
            title: format!("{name}: measured staleness over time (pushes.csv)"),
            x_label: "applied version".into(),
            y_label: "staleness".into(),
            series: time,
            ..Default::default()
        },
        Plot {
            title: format!("{name}: measured staleness per worker (band: 0 to max)"),
            x_label: "worker".into(),
            y_label: "staleness".into(),
            series: workers,
            ..Default::default()
        },
    )
}

/// Points drawn on the push plots.
const COLORS_SHOWN: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_writes_over_a_non_empty_directory() {
        let dir = std::env::temp_dir().join(format!("psim-out-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = OutputDir::create(Some(&dir), "x", false).unwrap();
        out.write("report.txt", "hello").unwrap();
        let err = OutputDir::create(Some(&dir), "x", false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(
            out.write("a.txt", "x").is_err(),
            "unlisted file names are refused"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn force_replaces_only_an_earlier_psim_output() {
        let dir = std::env::temp_dir().join(format!("psim-out-force-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mine.txt"), "user data").unwrap();
        let err = OutputDir::create(Some(&dir), "x", true).unwrap_err();
        assert!(err.to_string().contains("not a psim output"), "{err}");
        assert!(dir.join("mine.txt").exists());
        std::fs::write(dir.join("config.toml"), "old").unwrap();
        std::fs::write(dir.join("tradeoff.svg"), "<svg/>").unwrap();
        std::fs::write(dir.join("report.html"), "old").unwrap();
        OutputDir::create(Some(&dir), "x", true).unwrap();
        for gone in ["config.toml", "tradeoff.svg", "report.html"] {
            assert!(!dir.join(gone).exists(), "{gone} left behind");
        }
        assert!(dir.join("mine.txt").exists(), "other files are left alone");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_floats_in_toml_are_shortened_and_nothing_else() {
        let tiny = format!("{}", 5e-324);
        let text = format!("a = {tiny}\nb = [1.5, {tiny}]\nc = \"{tiny}\"\nd = 12\n");
        let short = shorten_floats(&text);
        assert_eq!(
            short,
            format!("a = 5e-324\nb = [1.5, 5e-324]\nc = \"{tiny}\"\nd = 12\n")
        );
    }

    #[test]
    fn a_name_that_leaves_psim_out_is_refused() {
        for bad in ["../../x", "/tmp/abs", ".."] {
            let err = OutputDir::create(None, bad, false).unwrap_err().to_string();
            assert!(err.contains("`name`"), "{err}");
        }
    }
}
