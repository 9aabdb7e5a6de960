//! Where the tokens live between runs and between processes: the [`TokenStore`] trait, its
//! versioned record and refresh lease, and an in-memory store.
//!
//! # One credential, many processes
//!
//! A store may be shared: processes on one host share a [`FileStore`](crate::FileStore), a fleet
//! of machines shares a Redis store. Each refresh consumes the refresh token on a rotating
//! server, so two processes that refresh with the same token log each other out. The store
//! therefore holds a **versioned record** and a **lease**:
//!
//! - Every write is a compare-and-set on [`StoredTokens::version`]: a record is written as version
//!   `v + 1` only while the store still holds version `v` ([`StoreError::Conflict`] otherwise).
//! - Before a refresh the client takes the store's lease ([`TokenStore::try_lease`]): an owner
//!   (random, per attempt) and a deadline. Under the lease it reloads the record: a newer
//!   version than the one it holds is **adopted** (another process refreshed: no call of
//!   ours). Otherwise it refreshes with the record's refresh token, under a hard deadline shorter
//!   than the lease, writes the new record with compare-and-set, and releases the lease.
//! - A process that finds the lease taken waits for the new record ([`TokenStore::wait_for_change`])
//!   within its refresh timeout, and adopts it.
//! - A refusal (`invalid_grant`) is final only after a reload: a newer record is adopted instead
//!   (the refusal was for a token another process had already rotated). A final refusal clears
//!   the record, unless a newer version was written meanwhile, so that a restarted program knows
//!   at once that it must log in.
//!
//! A lease is owner + deadline + compare-and-release, never a bare flag: a holder that outlived
//! its lease (stopped, swapped out) cannot release the next holder's lease, and it cannot have
//! started its refresh call after its deadline (it checks before it sends). What no lease can
//! prevent: a holder frozen *after* it sent the refresh token and thawed after its lease lapsed
//! races the next holder; the compare-and-set then keeps exactly one record, and the loser's
//! rotated token is dropped (the server's reuse detection, if any, decides the rest).
//!
//! The client saves the rotated refresh token *before* it releases the requests that wait for
//! the new access token, so a crash right after a refresh never leaves the program holding only
//! a refresh token the server has already consumed.

use core::fmt;
use core::hash::{BuildHasher, Hasher};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::hash_map::RandomState;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use zeroize::Zeroizing;

/// Persists the credentials of one client and coordinates refreshes among the processes that
/// share them.
///
/// Implementations MUST be safe to call from any thread and MUST NOT call back into the client.
/// The client calls the store outside its own lock, and only around a refresh, a login or a
/// logout: a request with a valid token never touches the store.
pub trait TokenStore: Send + Sync {
    /// The record saved last, or `None` if nothing was saved (or the store was cleared).
    ///
    /// # Errors
    /// [`StoreError`] if the store exists but cannot be read or parsed.
    fn load(&self) -> Result<Option<StoredTokens>, StoreError>;

    /// Writes `tokens` as the new record, if the store still holds version
    /// `tokens.version - 1` (no record counts as version 0): a compare-and-set.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with the version found if another writer came first (nothing is
    /// written); any other [`StoreError`] if the record could not be made durable, the previous
    /// one SHOULD then still be in place.
    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError>;

    /// Writes `tokens` over whatever record the store holds, as the version after the current
    /// one (`tokens.version` is ignored), retrying if another writer comes in between: what a
    /// login does. Returns the version written.
    ///
    /// # Errors
    /// As [`save`](Self::save); [`StoreError::Conflict`] only if other writers won eight times
    /// in a row.
    fn save_over(&self, mut tokens: StoredTokens) -> Result<u64, StoreError> {
        let mut attempts = 0;
        loop {
            let current = self.load().ok().flatten().map_or(0, |r| r.version);
            tokens.version = current.saturating_add(1);
            match self.save(&tokens) {
                Err(StoreError::Conflict { .. }) if attempts < 8 => attempts += 1,
                other => return other.map(|()| tokens.version),
            }
        }
    }

    /// Removes the record: any record if `version` is `None` (logout), or only the record of
    /// that version (a refused refresh token, which a newer record may already have replaced).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the store holds another version than `version` (nothing is
    /// removed); any other [`StoreError`] if the record could not be removed.
    fn clear(&self, version: Option<u64>) -> Result<(), StoreError>;

    /// Takes the refresh lease for `lease`'s owner until its deadline, if no other owner holds
    /// an unexpired one. Returns whether it was taken. Taking it again as the same owner renews
    /// it.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be reached: the client then does not refresh (it
    /// fails closed, see [`StoreError::Unavailable`]).
    fn try_lease(&self, lease: &Lease) -> Result<bool, StoreError>;

    /// Gives the lease back, if `lease`'s owner still holds it (compare-and-delete): a holder
    /// whose lease lapsed never removes the next holder's.
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be reached; the lease then lapses at its deadline.
    fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Waits until the record may have moved past version `seen`, or until `until`, whichever
    /// comes first. A spurious return is allowed: the caller reloads and checks.
    ///
    /// The default polls: it sleeps 20 ms (less if `until` is sooner).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be reached.
    fn wait_for_change(&self, seen: u64, until: Instant) -> Result<(), StoreError> {
        let _ = seen;
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(20)));
        Ok(())
    }
}

/// The credentials a store holds. The strings are wiped when dropped; `Debug` shows no token.
#[derive(Clone)]
pub struct StoredTokens {
    /// The record's version: 1 for the first record a store holds, one more for each record
    /// written since. Writes are compare-and-set on it (see [`TokenStore::save`]).
    pub version: u64,
    /// The refresh token: the one thing a restarted program needs to get going again.
    pub refresh_token: Zeroizing<String>,
    /// The access token, if one was current when the tokens were saved.
    pub access_token: Option<Zeroizing<String>>,
    /// When the access token expires (wall-clock time, so that it survives a restart and means
    /// the same in every process).
    pub expires_at: Option<SystemTime>,
}

/// The right to refresh one shared credential: a random owner and a deadline.
///
/// The client makes one per refresh attempt, with a time to live longer than its refresh
/// timeout, and checks [`remaining`](Self::remaining) before it sends the refresh token, so it
/// never talks to the token endpoint after its lease has lapsed.
#[derive(Clone)]
pub struct Lease {
    owner: String,
    ttl: Duration,
    /// When the lease was asked for: the deadline counts from here, so it is never later than
    /// the store's own.
    asked_at: Instant,
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
        source: std::io::Error,
    },
    /// The file exists but is not a token file this crate wrote (or it was cut short).
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first problem.
        line: usize,
        /// 1-based column of the first problem.
        column: usize,
    },
    /// A compare-and-set found another version than expected: another process wrote first.
    /// Nothing was written.
    Conflict {
        /// The version the store holds (0: no record).
        current: u64,
    },
    /// A remote store (Redis) could not be reached or answered an error. The client fails
    /// closed: it neither refreshes without the lease nor writes without the compare-and-set.
    Unavailable {
        /// What the store was doing, e.g. `"take the lease"`.
        action: &'static str,
        /// The client library's error, which holds no token.
        source: Box<dyn core::error::Error + Send + Sync>,
    },
    /// A custom store's own failure, described without any token.
    Other(String),
}

/// Keeps the tokens in memory only: a restarted program must log in again. Clones share the
/// same record and lease, so clients built on clones of one store behave like processes that
/// share a file, and a test can keep one and inspect what the clients saved.
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<(Mutex<Slot>, Condvar)>,
}

#[derive(Default)]
struct Slot {
    record: Option<StoredTokens>,
    /// Owner and deadline of the lease, if one was taken and not released.
    lease: Option<(String, Instant)>,
}

impl Lease {
    /// A lease with a new random owner, to be held for `ttl` from now.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        // The process id first: an operator (or a chaos test) can tell which process holds it.
        Self {
            owner: format!("{}-{}", std::process::id(), random_hex()),
            ttl,
            asked_at: Instant::now(),
        }
    }

    /// The owner's name: the process id, a dash and 32 random hexadecimal digits, unique per
    /// attempt.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// How long the lease is asked for.
    #[must_use]
    pub const fn ttl(&self) -> Duration {
        self.ttl
    }

    /// When the lease lapses, by this process's clock (counted from when it was asked for, so
    /// never later than the store's deadline).
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.asked_at + self.ttl
    }

    /// How long the lease still holds.
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    /// The deadline in wall-clock milliseconds since the Unix epoch, for stores shared between
    /// processes of one host.
    pub(crate) fn deadline_unix_ms(&self) -> u64 {
        let left = self.remaining();
        unix_ms(SystemTime::now() + left)
    }
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
        let store = Self::default();
        store.lock().record = Some(tokens);
        store
    }

    /// A copy of what the store holds now.
    #[must_use]
    pub fn snapshot(&self) -> Option<StoredTokens> {
        self.lock().record.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.shared.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        Ok(self.snapshot())
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let mut slot = self.lock();
        let current = slot.record.as_ref().map_or(0, |r| r.version);
        if current.checked_add(1) != Some(tokens.version) {
            return Err(StoreError::Conflict { current });
        }
        slot.record = Some(tokens.clone());
        self.shared.1.notify_all();
        Ok(())
    }

    fn clear(&self, version: Option<u64>) -> Result<(), StoreError> {
        let mut slot = self.lock();
        let current = slot.record.as_ref().map_or(0, |r| r.version);
        if version.is_some_and(|v| v != current) {
            return Err(StoreError::Conflict { current });
        }
        slot.record = None;
        self.shared.1.notify_all();
        Ok(())
    }

    fn try_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        let mut slot = self.lock();
        let now = Instant::now();
        let free = match &slot.lease {
            None => true,
            Some((owner, deadline)) => *owner == lease.owner || *deadline <= now,
        };
        if free {
            slot.lease = Some((lease.owner.clone(), lease.deadline()));
        }
        Ok(free)
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut slot = self.lock();
        if slot.lease.as_ref().is_some_and(|(owner, _)| *owner == lease.owner) {
            slot.lease = None;
            self.shared.1.notify_all();
        }
        Ok(())
    }

    fn wait_for_change(&self, seen: u64, until: Instant) -> Result<(), StoreError> {
        let slot = self.lock();
        let unchanged = |slot: &mut Slot| {
            slot.record.as_ref().map_or(0, |r| r.version) == seen && slot.lease.is_some()
        };
        let left = until.saturating_duration_since(Instant::now());
        let _ = self
            .shared
            .1
            .wait_timeout_while(slot, left, unchanged)
            .unwrap_or_else(PoisonError::into_inner);
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

    fn clear(&self, version: Option<u64>) -> Result<(), StoreError> {
        (**self).clear(version)
    }

    fn save_over(&self, tokens: StoredTokens) -> Result<u64, StoreError> {
        (**self).save_over(tokens)
    }

    fn try_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        (**self).try_lease(lease)
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        (**self).release(lease)
    }

    fn wait_for_change(&self, seen: u64, until: Instant) -> Result<(), StoreError> {
        (**self).wait_for_change(seen, until)
    }
}

/// 32 hexadecimal digits that no other call in any process is likely to produce: two draws
/// from the standard library's randomly keyed hasher over the process id, the time and a
/// counter. Names, not secrets.
pub(crate) fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let draw = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        hasher.finish()
    };
    format!("{:016x}{:016x}", draw(), draw())
}

/// Wall-clock milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("version", &self.version)
            .field("refresh_token", &format_args!("<redacted {} bytes>", self.refresh_token.len()))
            .field("access_token", &self.access_token.as_ref().map(|t| t.len()))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("owner", &self.owner)
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.lock();
        f.debug_struct("MemoryStore")
            .field("tokens", &slot.record)
            .field("leased", &slot.lease.is_some())
            .finish()
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
            Self::Conflict { current } => {
                write!(f, "another process wrote the token record first (now version {current})")
            }
            Self::Unavailable { action, source } => {
                write!(f, "the token store is unavailable: could not {action}: {source}")
            }
            Self::Other(what) => f.write_str(what),
        }
    }
}

impl core::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Unavailable { source, .. } => Some(&**source),
            _ => None,
        }
    }
}
