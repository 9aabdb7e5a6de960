//! [`FileStore`]: the tokens in one JSON file, written atomically with owner-only permissions,
//! shared safely by the processes of one host through a sibling lock file.

use core::time::Duration;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use zeroize::Zeroizing;

use crate::record;
use crate::store::{Lease, StoreError, StoredTokens, TokenStore, random_hex, unix_ms};

/// Keeps the tokens in one JSON file, written atomically with mode 0600, and coordinates the
/// processes that share it.
///
/// `save` writes a temporary file in the same directory (a random name, created exclusively with
/// mode 0600 and never through a link, so the tokens are never readable by others, not even for
/// a moment), flushes it to disk, renames it over the target, and flushes the directory, so that
/// after a crash the file holds either the old tokens or the new ones, never a mix or nothing.
/// A temporary file a crash left behind is removed by the next `load` or `clear` once it is five
/// minutes old (a save in progress is younger).
///
/// Sharing (see [the store module](crate::TokenStore)): the compare-and-set of `save` and
/// `clear`, and the refresh lease, are serialized by an exclusive advisory lock (`flock` on
/// Unix) on the sibling file `NAME.lock`, held only for those few file operations: never across
/// a refresh call, so a stopped or killed process blocks no one. The lease itself is a line in
/// that file (owner and wall-clock deadline), which a later holder may take over once its
/// deadline has passed; a killed holder's lease therefore lapses after its time to live. The
/// token file is never locked (a save replaces it by rename) and a `load` needs no lock.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
}

/// Largest token file `load` agrees to read: the token buffers are 8 KiB + 2 KiB.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A temporary file older than this is a crash's leftover, not a save in progress (a save
/// writes, flushes and renames within moments), so `load` and `clear` remove it: it holds tokens.
const STALE_TEMP_AGE: Duration = Duration::from_secs(300);

/// How often a process waiting for another one's refresh looks at the file.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

impl FileStore {
    /// A store backed by the file at `path` (and the lock file `path` + `.lock`). Nothing is
    /// touched until the first operation; the directory MUST exist.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file the tokens are kept in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file beside the token file.
    #[must_use]
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// The start of this store's temporary file names: `.{file name}.`, then
    /// `{process id}.{32 random hex digits}.tmp`.
    fn temp_prefix(&self) -> String {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "tokens".to_owned(), |n| n.to_string_lossy().into_owned());
        format!(".{name}.")
    }

    /// Opens the lock file and locks it exclusively; the lock goes with the returned file.
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.lock_path();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Never through a symbolic link someone left in its place: the lease line is
            // written into this file.
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(&path).map_err(|e| io_error("open the lock file", &path, e))?;
        file.lock().map_err(|e| io_error("lock the lock file", &path, e))?;
        Ok(file)
    }

    /// The lease line of the locked lock file: owner and deadline, or `None` if there is none.
    fn read_lease(&self, file: &mut File) -> Result<Option<(String, u64)>, StoreError> {
        let mut text = String::new();
        file.rewind()
            .and_then(|()| file.take(4096).read_to_string(&mut text))
            .map_err(|e| io_error("read the lock file", &self.lock_path(), e))?;
        // A torn or foreign line is no lease: it cannot name a live owner.
        Ok(text.split_once(' ').and_then(|(owner, deadline)| {
            let deadline = deadline.trim().parse::<u64>().ok()?;
            Some((owner.to_owned(), deadline))
        }))
    }

    fn write_lease(&self, file: &mut File, line: &str) -> Result<(), StoreError> {
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(line.as_bytes()))
            .map_err(|e| io_error("write the lock file", &self.lock_path(), e))
    }

    /// The version of the record on disk (0: none). A damaged record counts as none, so that a
    /// login can write over it; a refresh never gets that far (its reload fails first).
    fn current_version(&self) -> Result<u64, StoreError> {
        match self.read() {
            Ok(record) => Ok(record.map_or(0, |r| r.version)),
            Err(StoreError::Corrupt { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn read(&self) -> Result<Option<StoredTokens>, StoreError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open the token file", &self.path, e)),
        };
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("read the token file", &self.path, e))?;
        let corrupt =
            |(line, column)| StoreError::Corrupt { path: self.path.clone(), line, column };
        record::decode(&bytes).map(Some).map_err(corrupt)
    }

    /// Removes the temporary files that a `save` interrupted by a crash left beside the token
    /// file, once they are [`STALE_TEMP_AGE`] old. Best effort: what cannot be read or removed
    /// is left alone, and only names of the exact form `save` uses are touched.
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return;
        };
        let prefix = self.temp_prefix();
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(ids) = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix.as_str()))
                .and_then(|n| n.strip_suffix(".tmp"))
            else {
                continue;
            };
            let ours = ids.split_once('.').is_some_and(|(pid, random)| {
                !pid.is_empty()
                    && pid.bytes().all(|b| b.is_ascii_digit())
                    && !random.is_empty()
                    && random.bytes().all(|b| b.is_ascii_hexdigit())
            });
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age >= STALE_TEMP_AGE);
            if ours && stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Writes `bytes` to a new temporary file with a name no one can guess, created exclusively
    /// (never through a link left in its place); a name clash is retried with a new name.
    fn write_temp(&self, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut attempts = 0;
        let (temp, mut file) = loop {
            let temp = self.dir().join(format!(
                "{}{}.{}.tmp",
                self.temp_prefix(),
                std::process::id(),
                random_hex()
            ));
            match options.open(&temp) {
                Ok(file) => break (temp, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => {
                    attempts += 1;
                }
                Err(e) => return Err(io_error("create the temporary file", &temp, e)),
            }
        };
        let written = file
            .write_all(bytes)
            .map_err(|e| io_error("write the temporary file", &temp, e))
            .and_then(|()| {
                file.sync_all().map_err(|e| io_error("flush the temporary file", &temp, e))
            });
        match written {
            Ok(()) => Ok(temp),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(e)
            }
        }
    }
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        self.remove_stale_temps();
        self.read()
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let bytes = record::encode(tokens)?;
        let _lock = self.lock()?;
        let current = self.current_version()?;
        if current.checked_add(1) != Some(tokens.version) {
            return Err(StoreError::Conflict { current });
        }
        let temp = self.write_temp(bytes.as_bytes())?;
        if let Err(e) = fs::rename(&temp, &self.path) {
            let _ = fs::remove_file(&temp);
            return Err(io_error("rename the temporary file", &self.path, e));
        }
        sync_dir(self.dir()).map_err(|e| io_error("flush the directory", self.dir(), e))
    }

    fn clear(&self, version: Option<u64>) -> Result<(), StoreError> {
        self.remove_stale_temps();
        let _lock = self.lock()?;
        if let Some(expected) = version {
            let current = self.current_version()?;
            if current != expected {
                return Err(StoreError::Conflict { current });
            }
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("remove the token file", &self.path, e)),
        }
        sync_dir(self.dir()).map_err(|e| io_error("flush the directory", self.dir(), e))
    }

    fn try_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        let mut file = self.lock()?;
        let now = unix_ms(SystemTime::now());
        let free = match self.read_lease(&mut file)? {
            None => true,
            Some((owner, deadline)) => owner == lease.owner() || deadline <= now,
        };
        if free {
            self.write_lease(
                &mut file,
                &format!("{} {}\n", lease.owner(), lease.deadline_unix_ms()),
            )?;
        }
        Ok(free)
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut file = self.lock()?;
        if self.read_lease(&mut file)?.is_some_and(|(owner, _)| owner == lease.owner()) {
            self.write_lease(&mut file, "")?;
        }
        Ok(())
    }

    fn wait_for_change(&self, seen: u64, until: Instant) -> Result<(), StoreError> {
        // Polls the record; a released lease also ends the wait, so that the waiter can take
        // it (the holder may have given up without writing).
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(POLL_INTERVAL.min(until - now));
            let changed = self.read().map_or(true, |r| r.map_or(0, |r| r.version) != seen);
            let mut file = self.lock()?;
            let leased = self
                .read_lease(&mut file)?
                .is_some_and(|(_, deadline)| deadline > unix_ms(SystemTime::now()));
            if changed || !leased {
                return Ok(());
            }
        }
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io { action, path: path.to_path_buf(), source }
}

/// Makes a rename or removal in `dir` durable. Only meaningful (and possible) on Unix.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
