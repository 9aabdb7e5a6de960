//! [`RedisStore`] (feature `redis`): the tokens of a fleet in one Redis key, the refresh lease in
//! another, and a pub/sub channel that wakes the processes waiting for someone else's refresh.

use core::fmt;
use core::time::Duration;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use redis::{Connection, ConnectionLike, ErrorKind, PubSub, RedisError, Script, ServerErrorKind};
use zeroize::Zeroizing;

use crate::record::{decode, encode};
use crate::store::{Lease, StoreError, StoredTokens, TokenStore};

/// Keeps the tokens in a Redis server shared by every process and machine that uses one
/// credential, and coordinates their refreshes (see [the store module](crate::TokenStore)).
///
/// # Keys
///
/// Everything lives under the prefix given to [`new`](Self::new), say `reauth:myapp`:
///
/// | key | holds |
/// |---|---|
/// | `reauth:myapp:record` | the record: the JSON of [`FileStore`](crate::FileStore)'s format 2 (`record_version`, the tokens, the expiry), no time to live |
/// | `reauth:myapp:lease` | the owner of the refresh lease, with the lease's time to live |
/// | `reauth:myapp:changed` | a pub/sub channel: `save`, `clear` and `release` publish on it |
///
/// - `save` and `clear` are one Lua script each that compares the record's version and writes
///   (or deletes) in the same step, then publishes; a `save` whose exact record is already
///   there counts as done, so a command sent again after a dropped connection is harmless.
///   `save_over` (a login) picks the next version and writes in one script, over a damaged
///   record too.
/// - `try_lease` is `SET lease owner NX PX ttl`, in a script that also renews the lease for its
///   own owner; `release` is a compare-and-delete script. The time to live is counted by the
///   Redis server's clock, so the hosts' clocks need not agree for the lease.
/// - `wait_for_change` subscribes to the channel, then looks at the record's version and the
///   lease, and sleeps on the subscription until a message comes, the lease's time to live
///   runs out, or the [poll interval](Self::poll_interval) (250 ms by default) passes, and
///   looks again. Without a subscription (refused, or lost) it polls at the same interval. It
///   never sleeps past its `until`; a command it sends meanwhile is bounded by the
///   [timeout](Self::timeout).
///
/// One connection serves the commands of all threads (a command takes well under a
/// millisecond on a local network); a waiter opens its own for the subscription and closes it
/// when it returns. Every connect and every command is bounded by the [timeout](Self::timeout)
/// (2 s by default). The expiry (`expires_at_unix_ms`) is wall-clock time: hosts whose clocks
/// disagree by more than a fraction of the token lifetime adopt tokens too early or too late
/// (a too-late adoption costs one 401 and a refresh, never a reuse).
///
/// # When Redis is away, restarted, or loses the keys
///
/// - **Away** (refused, timed out, an error answer): every operation fails with
///   [`StoreError::Unavailable`], which never holds a token. The client fails closed: it does
///   not refresh without the lease, and requests that need a refresh fail with
///   [`Error::RefreshUnavailable`](crate::Error::RefreshUnavailable) holding
///   [`RefreshError::Store`](crate::RefreshError::Store). Requests with a valid access token
///   do not touch the store and go on. With
///   [`ClientBuilder::lease_fallback`](crate::ClientBuilder::lease_fallback) each process
///   refreshes on its own instead; with a rotating refresh token, two processes doing so at
///   once log each other out. If Redis goes away between a refresh call and the save of its
///   result, the new tokens stay in that process's memory and the record keeps the refresh
///   token the call consumed.
/// - **Restarted**: a command that finds its connection dropped is sent again on a new
///   connection, which is tried every 20 ms for up to the timeout (only for a connection that
///   had worked before, and never after a timeout, when the command may still be running), so a
///   restart shorter than the timeout goes unnoticed. Unless Redis persists its data, the
///   record and the lease are gone, as below. With the append-only file (`appendonly yes`), an
///   acknowledged write survives the server process being killed, lease time to live included.
/// - **Loses the keys** (restart without persistence, failover to a replica that had not
///   received the last writes, `FLUSHDB`, eviction): the next process that refreshes finds no
///   record, refreshes with the refresh token in its own memory and writes version 1. That is
///   right when every process held the newest record. A process that had not yet adopted the
///   newest record when it was lost still holds a refresh token that was consumed, and presents
///   it: a reuse (with reuse revocation, a new login for all). The versions start again from 1,
///   so a process that held version 1 of the lost record takes the new version 1 for its own.
///   A lost lease lets a second process refresh while the first one still is. Run the Redis
///   that holds the keys with `maxmemory-policy noeviction` (the lease has a time to live, so a
///   `volatile-*` policy may evict it early) and with the append-only file.
///
/// This is a store for one Redis server (with or without replicas), not Redis Cluster, and it
/// does not speak TLS (the crate's `redis` dependency is built without it).
///
/// # Examples
///
/// ```no_run
/// use reauth_ureq::{Client, RedisStore};
///
/// let store = RedisStore::new("redis://127.0.0.1:6379/0", "reauth:my-app")?;
/// let client = Client::builder()
///     .token_url("https://auth.example.com/oauth/token")
///     .client_id("my-app")
///     .store(store)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisStore {
    /// Where to connect (parsed from the URL, which may hold a password: never printed).
    client: redis::Client,
    /// The prefix the keys were made from, for `Debug`.
    prefix: String,
    /// `{prefix}:record`.
    record_key: String,
    /// `{prefix}:lease`.
    lease_key: String,
    /// `{prefix}:changed`.
    channel: String,
    /// Bound of each connect and each command.
    timeout: Duration,
    /// Longest sleep of `wait_for_change` between two looks at the record and the lease.
    poll_interval: Duration,
    /// The command connection, `None` until the first command and after a failed one.
    connection: Mutex<Option<Connection>>,
    scripts: Scripts,
}

/// The Lua scripts, each run atomically by the server.
struct Scripts {
    save: Script,
    save_over: Script,
    clear: Script,
    lease: Script,
    release: Script,
    state: Script,
}

/// Default bound of each connect and each command.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause between two connects while a server that was there comes back.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// Default longest sleep of `wait_for_change` between two looks.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The version of a record, in the scripts: `record_version` of its JSON, -1 if that cannot be
/// read, 0 for no record. Shared by the scripts that compare versions.
const READ_VERSION: &str = r"
local function read_version(key)
  local raw = redis.call('GET', key)
  if not raw then return 0, raw end
  local ok, record = pcall(cjson.decode, raw)
  if ok and type(record) == 'table' and type(record.record_version) == 'number'
      and record.record_version > 0 then
    return record.record_version, raw
  end
  return -1, raw
end
";

/// KEYS[1] record; ARGV[1] the new record's JSON, ARGV[2] its version, ARGV[3] the channel.
/// Returns {1, version} when written (or already there), {0, current} on a conflict, {2, 0}
/// when the record there cannot be read.
const SAVE: &str = r"
local current, raw = read_version(KEYS[1])
local version = tonumber(ARGV[2])
if raw == ARGV[1] then return {1, version} end
if current < 0 then return {2, 0} end
if current + 1 ~= version then return {0, current} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return {1, version}
";

/// KEYS[1] record; ARGV[1] and ARGV[2] the new record's JSON before and after its version,
/// ARGV[3] the channel. Writes the record as the version after the current one (a record that
/// cannot be read counts as none). Returns the version written.
const SAVE_OVER: &str = r"
local current = read_version(KEYS[1])
if current < 0 then current = 0 end
local version = current + 1
redis.call('SET', KEYS[1], ARGV[1] .. version .. ARGV[2])
redis.call('PUBLISH', ARGV[3], version)
return version
";

/// KEYS[1] record; ARGV[1] the expected version, or '' for any; ARGV[2] the channel.
/// Returns {1, 0} when removed (or there was none to remove with ''), {0, current} on a
/// conflict. A record that cannot be read is no newer record: it may go.
const CLEAR: &str = r"
local current, raw = read_version(KEYS[1])
if ARGV[1] ~= '' then
  local expected = tonumber(ARGV[1])
  if current < 0 then current = expected end
  if current ~= expected then return {0, current} end
end
if raw then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '0')
end
return {1, 0}
";

/// KEYS[1] lease; ARGV[1] owner, ARGV[2] time to live in ms. Returns 1 if taken or renewed.
const LEASE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// KEYS[1] lease; ARGV[1] owner, ARGV[2] the channel. Deletes the lease only if the owner
/// still holds it. Returns 1 if it did.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
";

/// KEYS[1] record, KEYS[2] lease. Returns {version, lease's time to live in ms}: the version as
/// `read_version` gives it, the time to live -2 if there is no lease. No token leaves Redis.
const STATE: &str = r"
local version = read_version(KEYS[1])
return {version, redis.call('PTTL', KEYS[2])}
";

impl RedisStore {
    /// A store on the Redis server at `url` (`redis://[[user]:password@]host[:port][/db]`),
    /// with its keys under `prefix` (`{prefix}:record`, `{prefix}:lease`, `{prefix}:changed`).
    /// Nothing is sent until the first operation. Give every credential its own prefix.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `url` is not a Redis URL this crate can use (a
    /// `rediss://` URL needs TLS, which is not built in). The error does not repeat the URL.
    pub fn new(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable("parse the Redis URL"))?;
        let script = |body: &str| Script::new(&format!("{READ_VERSION}{body}"));
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            record_key: format!("{prefix}:record"),
            lease_key: format!("{prefix}:lease"),
            channel: format!("{prefix}:changed"),
            timeout: DEFAULT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            connection: Mutex::new(None),
            scripts: Scripts {
                save: script(SAVE),
                save_over: script(SAVE_OVER),
                clear: script(CLEAR),
                lease: Script::new(LEASE),
                release: Script::new(RELEASE),
                state: script(STATE),
            },
        })
    }

    /// Bounds each connect and each command (default 2 s; at least 1 ms). A client MUST keep
    /// it well below its refresh timeout: the lease is taken and the record written within it.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long `wait_for_change` sleeps at most between two looks at the record and the lease
    /// (default 250 ms; at least 1 ms). A published change ends the sleep at once; this bounds
    /// the wait when a message is lost or the subscription cannot be had.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The key that holds the record.
    #[must_use]
    pub fn record_key(&self) -> &str {
        &self.record_key
    }

    /// The key that holds the lease.
    #[must_use]
    pub fn lease_key(&self) -> &str {
        &self.lease_key
    }

    /// The pub/sub channel that `save`, `clear` and `release` publish on.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A new connection with the command timeout on both directions.
    fn connect(&self) -> Result<Connection, RedisError> {
        let connection = self.client.get_connection_with_timeout(self.timeout)?;
        connection.set_read_timeout(Some(self.timeout))?;
        connection.set_write_timeout(Some(self.timeout))?;
        Ok(connection)
    }

    /// Runs `command` on the shared connection, connecting first if needed.
    ///
    /// A connection that had worked and is found dropped (a restarted server, an idle
    /// connection closed by a proxy) is replaced at once, and again every 20 ms while the server
    /// refuses or is still loading its data, for at most the [timeout](Self::timeout) counted
    /// from the start of the operation, and the command is sent once more: every command here
    /// may be sent twice. A first connect that fails fails at once, so a server that stays
    /// away costs one timeout, not one per operation.
    fn run<T>(
        &self,
        action: &'static str,
        command: impl Fn(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let mut slot = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut connection, reused) = match slot.take() {
            Some(connection) => (connection, true),
            None => (self.connect().map_err(unavailable(action))?, false),
        };
        let mut result = command(&mut connection);
        // The first reconnect goes at once: an idle connection closed by the other side is
        // the common case.
        let mut pause = Duration::ZERO;
        if reused {
            while let Err(e) = &result {
                let gone = (e.is_connection_dropped() && !e.is_timeout())
                    || e.kind() == ErrorKind::Server(ServerErrorKind::BusyLoading);
                if !gone || started.elapsed() + pause >= self.timeout {
                    break;
                }
                std::thread::sleep(pause);
                pause = RECONNECT_PAUSE;
                result = self.connect().and_then(|mut fresh| {
                    let result = command(&mut fresh);
                    connection = fresh;
                    result
                });
            }
        }
        match result {
            Ok(value) => {
                *slot = Some(connection);
                Ok(value)
            }
            Err(e) => {
                // An error answer leaves the connection usable; anything else may have left a
                // reply half read.
                if !e.is_io_error() && !e.is_timeout() && connection.is_open() {
                    *slot = Some(connection);
                }
                Err(unavailable(action)(e))
            }
        }
    }

    /// The record's version (-1: unreadable, 0: none) and how long the lease still holds.
    fn state(&self) -> Result<(i64, Option<Duration>), StoreError> {
        let (version, ttl_ms): (i64, i64) = self
            .run("read the record version and the lease", |c| {
                self.scripts.state.key(&self.record_key).key(&self.lease_key).invoke(c)
            })?;
        let left = u64::try_from(ttl_ms).ok().map(Duration::from_millis);
        Ok((version, left))
    }

    fn corrupt(&self, line: usize, column: usize) -> StoreError {
        StoreError::Corrupt { path: PathBuf::from(&self.record_key), line, column }
    }
}

impl TokenStore for RedisStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        // As bytes: a conversion that fails could quote the value, and the value holds tokens.
        let raw: Option<Vec<u8>> =
            self.run("read the record", |c| redis::cmd("GET").arg(&self.record_key).query(c))?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let raw = Zeroizing::new(raw);
        decode(&raw).map(Some).map_err(|(line, column)| self.corrupt(line, column))
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let json = encode(tokens)?;
        let (status, current): (i64, i64) = self.run("write the record", |c| {
            self.scripts
                .save
                .key(&self.record_key)
                .arg(json.as_bytes())
                .arg(tokens.version)
                .arg(&self.channel)
                .invoke(c)
        })?;
        match status {
            1 => Ok(()),
            0 => Err(StoreError::Conflict { current: u64::try_from(current).unwrap_or(0) }),
            // The record there is not ours to overwrite by version: say where it is broken.
            _ => Err(match self.load() {
                Err(e) => e,
                Ok(_) => self.corrupt(1, 1),
            }),
        }
    }

    /// One script: the version is chosen and the record written in the same step, so no other
    /// writer can come in between. A record that cannot be read is written over (a login
    /// repairs a damaged record) and counts as version 0.
    fn save_over(&self, tokens: StoredTokens) -> Result<u64, StoreError> {
        let json = encode(&StoredTokens { version: 0, ..tokens })?;
        // `encode` writes `{"version":2,"record_version":0,` first: split around that 0.
        let (head, tail) = json
            .strip_prefix(VERSION_HEAD)
            .and_then(|rest| rest.strip_prefix('0'))
            .map(|tail| (VERSION_HEAD, tail))
            .ok_or_else(|| {
                StoreError::Other("the record encoder changed its field order".into())
            })?;
        let version: i64 = self.run("write the record", |c| {
            self.scripts
                .save_over
                .key(&self.record_key)
                .arg(head)
                .arg(tail.as_bytes())
                .arg(&self.channel)
                .invoke(c)
        })?;
        Ok(u64::try_from(version).unwrap_or(0))
    }

    fn clear(&self, version: Option<u64>) -> Result<(), StoreError> {
        let expected = version.map_or_else(String::new, |v| v.to_string());
        let (status, current): (i64, i64) = self.run("remove the record", |c| {
            self.scripts.clear.key(&self.record_key).arg(&expected).arg(&self.channel).invoke(c)
        })?;
        if status == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict { current: u64::try_from(current).unwrap_or(0) })
        }
    }

    fn try_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        // What is left of the lease by this process's clock, rounded up: the server's deadline
        // is then never earlier than the holder's own.
        let left = lease.remaining();
        let ttl_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).saturating_add(1);
        let taken: i64 = self.run("take the lease", |c| {
            self.scripts.lease.key(&self.lease_key).arg(lease.owner()).arg(ttl_ms).invoke(c)
        })?;
        Ok(taken == 1)
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let _: i64 = self.run("release the lease", |c| {
            self.scripts
                .release
                .key(&self.lease_key)
                .arg(lease.owner())
                .arg(&self.channel)
                .invoke(c)
        })?;
        Ok(())
    }

    fn wait_for_change(&self, seen: u64, until: Instant) -> Result<(), StoreError> {
        if Instant::now() >= until {
            return Ok(());
        }
        // Subscribe first, then look: a change before the subscription is seen by the look, one
        // after it arrives as a message. The subscription lasts as long as `subscriber`.
        let mut connection = self.connect().ok();
        let mut subscriber = connection.as_mut().and_then(|connection| {
            let mut subscription = connection.as_pubsub();
            subscription.subscribe(&self.channel).ok()?;
            Some(subscription)
        });
        loop {
            let (version, lease_left) = self.state()?;
            if i64::try_from(seen).ok() != Some(version) || lease_left.is_none() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let mut nap = (until - now).min(self.poll_interval);
            if let Some(left) = lease_left {
                // A holder that died lets its lease lapse without a message.
                nap = nap.min(left + Duration::from_millis(1));
            }
            let nap = nap.max(Duration::from_millis(1));
            match subscriber.as_mut().map(|subscription| next_message(subscription, nap)) {
                Some(Ok(true)) => return Ok(()),
                Some(Ok(false)) => {}
                Some(Err(_)) => subscriber = None,
                None => std::thread::sleep(nap),
            }
        }
    }
}

/// Waits up to `nap` for a message on `subscription`. Returns whether one came.
fn next_message(subscription: &mut PubSub<'_>, nap: Duration) -> Result<bool, RedisError> {
    subscription.set_read_timeout(Some(nap))?;
    match subscription.get_message() {
        Ok(_) => Ok(true),
        Err(e) if e.is_timeout() => Ok(false),
        Err(e) => Err(e),
    }
}

/// How the JSON of every record starts, up to its version number.
const VERSION_HEAD: &str = r#"{"version":2,"record_version":"#;

/// Wraps a Redis error as [`StoreError::Unavailable`]. Redis errors hold no token: the values
/// that hold tokens are only ever read as bytes, a conversion that cannot fail.
fn unavailable(action: &'static str) -> impl Fn(RedisError) -> StoreError {
    move |e| StoreError::Unavailable { action, source: Box::new(e) }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn record(version: u64) -> StoredTokens {
        StoredTokens {
            version,
            refresh_token: Zeroizing::new("refresh-SECRET".to_owned()),
            access_token: Some(Zeroizing::new("access-SECRET".to_owned())),
            expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
        }
    }

    #[test]
    fn record_round_trips_through_the_file_store_format() {
        let json = encode(&record(7)).unwrap();
        assert!(json.starts_with(&format!("{VERSION_HEAD}7,")), "{}", json.len());
        let back = decode(json.as_bytes()).unwrap();
        assert_eq!(back.version, 7);
        assert_eq!(*back.refresh_token, "refresh-SECRET");
        assert_eq!(back.access_token.as_deref().map(String::as_str), Some("access-SECRET"));
        assert_eq!(back.expires_at, record(7).expires_at);
    }

    #[test]
    fn damaged_records_give_a_position_and_no_token() {
        let json = encode(&record(3)).unwrap();
        assert!(decode(&json.as_bytes()[..json.len() / 2]).is_err());
        let old = br#"{"version":1,"record_version":3,"refresh_token":"x"}"#;
        assert_eq!(decode(old).err(), Some((1, 1)));
        let zero = br#"{"version":2,"record_version":0,"refresh_token":"x"}"#;
        assert_eq!(decode(zero).err(), Some((1, 1)));
        assert!(decode(b"").is_err());
    }

    #[test]
    fn bad_url_is_unavailable_without_the_url() {
        let error = RedisStore::new("http://user:SECRET@host/", "p").unwrap_err();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert!(!error.to_string().contains("SECRET"), "{error}");
        assert!(!format!("{error:?}").contains("SECRET"), "{error:?}");
        let store = RedisStore::new("redis://:SECRET@127.0.0.1:1/", "reauth:test").unwrap();
        assert!(!format!("{store:?}").contains("SECRET"));
        assert_eq!(store.record_key(), "reauth:test:record");
        assert_eq!(store.lease_key(), "reauth:test:lease");
        assert_eq!(store.channel(), "reauth:test:changed");
    }
}
