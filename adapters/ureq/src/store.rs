//! Where the tokens live between runs: the [`TokenStore`] trait, an in-memory store, and a file
//! store that writes atomically with owner-only permissions.
//!
//! The client saves the rotated refresh token *before* it releases the requests that wait for
//! the new access token, so a crash right after a refresh never leaves the program holding only
//! a refresh token the server has already consumed.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Persists the credentials of one client.
///
/// Implementations MUST be safe to call from any thread; the client calls `save` while it holds
/// its own lock, so `save` SHOULD be quick (a small file write is fine) and MUST NOT call back
/// into the client.
pub trait TokenStore: Send + Sync {
    /// The tokens saved last, or `None` if nothing was saved (or the store was cleared).
    ///
    /// # Errors
    /// [`StoreError`] if the store exists but cannot be read or parsed.
    fn load(&self) -> Result<Option<StoredTokens>, StoreError>;

    /// Replaces the saved tokens.
    ///
    /// # Errors
    /// [`StoreError`] if the tokens could not be made durable; the previous ones SHOULD then
    /// still be in place.
    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError>;

    /// Forgets the saved tokens (logout).
    ///
    /// # Errors
    /// [`StoreError`] if the tokens could not be removed.
    fn clear(&self) -> Result<(), StoreError>;
}

/// The credentials a store holds. The strings are wiped when dropped; `Debug` shows no token.
#[derive(Clone)]
pub struct StoredTokens {
    /// The refresh token: the one thing a restarted program needs to get going again.
    pub refresh_token: Zeroizing<String>,
    /// The access token, if one was current when the tokens were saved.
    pub access_token: Option<Zeroizing<String>>,
    /// When the access token expires (wall-clock time, so that it survives a restart).
    pub expires_at: Option<SystemTime>,
}

/// Why a store could not load, save or clear the tokens. Never holds a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    Io {
        /// What the store was doing, e.g. `"rename the temporary file"`.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file exists but is not a token file this crate wrote.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first problem.
        line: usize,
        /// 1-based column of the first problem.
        column: usize,
    },
    /// A custom store's own failure, described without any token.
    Other(String),
}

/// Keeps the tokens in memory only: a restarted program must log in again. Clones share the
/// same slot, so a test can keep one and inspect what the client saved.
#[derive(Clone, Default)]
pub struct MemoryStore {
    slot: Arc<Mutex<Option<StoredTokens>>>,
}

/// Keeps the tokens in one JSON file, written atomically with mode 0600.
///
/// `save` writes a temporary file in the same directory (created with mode 0600, so the tokens
/// are never readable by others, not even for a moment), flushes it to disk, renames it over
/// the target, and flushes the directory, so that after a crash the file holds either the old
/// tokens or the new ones, never a mix or nothing. A temporary file a crash left behind is removed
/// by the next `load` or `clear` once it is five minutes old (a save in progress is younger).
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that already holds `tokens`, as if a previous run had saved them.
    #[must_use]
    pub fn with_tokens(tokens: StoredTokens) -> Self {
        Self { slot: Arc::new(Mutex::new(Some(tokens))) }
    }

    /// A copy of what the store holds now.
    #[must_use]
    pub fn snapshot(&self) -> Option<StoredTokens> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        Ok(self.snapshot())
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(tokens.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        (**self).load()
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        (**self).save(tokens)
    }

    fn clear(&self) -> Result<(), StoreError> {
        (**self).clear()
    }
}

/// Largest token file `load` agrees to read: the token buffers are 8 KiB + 2 KiB.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Makes temporary file names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file older than this is a crash's leftover, not a save in progress (a save
/// writes, flushes and renames within moments), so `load` and `clear` remove it: it holds tokens.
const STALE_TEMP_AGE: Duration = Duration::from_secs(300);

impl FileStore {
    /// A store backed by the file at `path`. Nothing is touched until the first `load` or
    /// `save`; the directory MUST exist.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file the tokens are kept in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// The start of this store's temporary file names: `.{file name}.`, then
    /// `{process id}.{counter}.tmp`.
    fn temp_prefix(&self) -> String {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "tokens".to_owned(), |n| n.to_string_lossy().into_owned());
        format!(".{name}.")
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
            let ours = ids.split_once('.').is_some_and(|(pid, counter)| {
                [pid, counter]
                    .iter()
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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

    fn io_error(&self, action: &'static str, path: &Path, source: io::Error) -> StoreError {
        let _ = self;
        StoreError::Io { action, path: path.to_path_buf(), source }
    }

    fn write_temp(&self, temp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let opened = match options.open(temp) {
            // The counter makes the name unique within this process, so a file already there is
            // the leftover of an earlier process with the same id that died between writing and
            // renaming (after a restart in a container the id is usually the same). It holds
            // nothing anyone will read: replace it rather than fail the save, which would leave
            // a rotated refresh token unsaved. `create_new` still refuses anything racing in.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(temp);
                options.open(temp)
            }
            other => other,
        };
        let mut file = opened.map_err(|e| self.io_error("create the temporary file", temp, e))?;
        file.write_all(bytes).map_err(|e| self.io_error("write the temporary file", temp, e))?;
        file.sync_all().map_err(|e| self.io_error("flush the temporary file", temp, e))
    }
}

/// The file format, version 1.
#[derive(Serialize)]
struct FileOut<'a> {
    version: u32,
    refresh_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_unix_ms: Option<u64>,
}

#[derive(Deserialize)]
struct FileIn {
    version: u32,
    refresh_token: String,
    access_token: Option<String>,
    expires_at_unix_ms: Option<u64>,
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        self.remove_stale_temps();
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error("open the token file", &self.path, e)),
        };
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io_error("read the token file", &self.path, e))?;
        // serde_json's messages may quote the offending value, which could be a token: keep only
        // the position.
        let corrupt = |line, column| StoreError::Corrupt { path: self.path.clone(), line, column };
        let parsed: FileIn =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.line(), e.column()))?;
        let FileIn { version, refresh_token, access_token, expires_at_unix_ms } = parsed;
        let refresh_token = Zeroizing::new(refresh_token);
        let access_token = access_token.map(Zeroizing::new);
        if version != 1 {
            return Err(corrupt(1, 1));
        }
        let expires_at = expires_at_unix_ms
            .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
        Ok(Some(StoredTokens { refresh_token, access_token, expires_at }))
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let expires_at_unix_ms = tokens
            .expires_at
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let out = FileOut {
            version: 1,
            refresh_token: &tokens.refresh_token,
            access_token: tokens.access_token.as_deref().map(String::as_str),
            expires_at_unix_ms,
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec_pretty(&out).map_err(|e| StoreError::Other(e.to_string()))?,
        );
        let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp =
            self.dir().join(format!("{}{}.{unique}.tmp", self.temp_prefix(), std::process::id()));
        if let Err(e) = self.write_temp(&temp, &bytes) {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        if let Err(e) = fs::rename(&temp, &self.path) {
            let _ = fs::remove_file(&temp);
            return Err(self.io_error("rename the temporary file", &self.path, e));
        }
        sync_dir(self.dir()).map_err(|e| self.io_error("flush the directory", self.dir(), e))
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.remove_stale_temps();
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io_error("remove the token file", &self.path, e)),
        }
        sync_dir(self.dir()).map_err(|e| self.io_error("flush the directory", self.dir(), e))
    }
}

/// Makes a rename or removal in `dir` durable. Only meaningful (and possible) on Unix.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("refresh_token", &format_args!("<redacted {} bytes>", self.refresh_token.len()))
            .field("access_token", &self.access_token.as_ref().map(|t| t.len()))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("tokens", &self.snapshot()).finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { action, path, source } => {
                write!(f, "could not {action} ({}): {source}", path.display())
            }
            Self::Corrupt { path, line, column } => write!(
                f,
                "{} is not a reauth token file (problem at line {line}, column {column})",
                path.display()
            ),
            Self::Other(what) => f.write_str(what),
        }
    }
}

impl core::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
