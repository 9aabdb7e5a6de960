//! A real `redis-server` for tests: started on `127.0.0.1` with a free port and a temporary
//! directory, without persistence, stopped on drop, and restartable on the same port.
//!
//! The binary is the one on `PATH` (the Debian package `redis-server`), or the one named by the
//! environment variable `REDIS_SERVER`. Where there is none, [`RedisServer::start_or_skip`]
//! prints `skipped: redis-server not found (...)` and returns `None`, so that a test can return
//! early; when the environment variable `CI` is set it panics instead: in CI the Redis tests
//! must run. [`Persistence::Aof`] gives a server whose data survives a restart.
//!
//! # Examples
//!
//! ```no_run
//! use reauth_testkit::redis_server::RedisServer;
//!
//! let Some(mut server) = RedisServer::start_or_skip("example") else { return };
//! println!("Redis at {}", server.url());
//! server.restart().unwrap(); // same port, empty data set
//! ```

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Instant, SystemTime};

/// How long a started server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server keeps across [`RedisServer::restart`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing (`--save '' --appendonly no`): a restart starts with an empty data set.
    #[default]
    None,
    /// The append-only file (`--appendonly yes --appendfsync everysec`): every write the server
    /// acknowledged is in the file (in the OS's cache at least), so it survives the server
    /// being killed and restarted, time to live of keys included.
    Aof,
}

/// A running `redis-server` child process with its own port and directory.
///
/// Dropping it kills the server, waits for it, and removes the directory.
pub struct RedisServer {
    /// The binary that was started.
    program: OsString,
    /// The port, kept across [`restart`](Self::restart).
    port: u16,
    /// The temporary directory: the server's `--dir` and its log file.
    dir: PathBuf,
    persistence: Persistence,
    /// The server process; `None` while stopped.
    child: Option<Child>,
}

/// Why no server could be started.
#[derive(Debug)]
pub enum StartError {
    /// There is no `redis-server` to run (the `io::Error` of trying `redis-server --version`).
    NotFound(io::Error),
    /// The server was found but did not start or did not answer.
    Failed(io::Error),
}

impl RedisServer {
    /// Starts a server on a free port of `127.0.0.1`, with a new temporary directory, no RDB
    /// snapshots and no AOF, and waits until it answers `PING`.
    ///
    /// # Errors
    /// [`StartError::NotFound`] if there is no `redis-server`; [`StartError::Failed`] if it did
    /// not answer within 10 s (the error holds the end of its log).
    pub fn start() -> Result<Self, StartError> {
        Self::start_with(Persistence::None)
    }

    /// [`start`](Self::start) with the given persistence.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_with(persistence: Persistence) -> Result<Self, StartError> {
        let program = program();
        match Command::new(&program).arg("--version").stdout(Stdio::null()).status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                let e = io::Error::other(format!("`redis-server --version` exited with {status}"));
                return Err(StartError::NotFound(e));
            }
            Err(e) => return Err(StartError::NotFound(e)),
        }
        let dir = temp_dir().map_err(StartError::Failed)?;
        let mut server = Self { program, port: 0, dir, persistence, child: None };
        // Another process may take the free port between our probe and the server's bind.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port().map_err(StartError::Failed)?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(StartError::Failed(last.unwrap_or_else(|| io::Error::other("no attempt made"))))
    }

    /// [`start`](Self::start) for a test named `test`: `None` (after printing
    /// `skipped: redis-server not found (...)`) if there is no `redis-server` and `CI` is not
    /// set.
    ///
    /// # Panics
    /// If the server was found but did not start, or was not found while `CI` is set.
    #[must_use]
    pub fn start_or_skip(test: &str) -> Option<Self> {
        Self::start_or_skip_with(test, Persistence::None)
    }

    /// [`start_or_skip`](Self::start_or_skip) with the given persistence.
    ///
    /// # Panics
    /// As [`start_or_skip`](Self::start_or_skip).
    #[must_use]
    pub fn start_or_skip_with(test: &str, persistence: Persistence) -> Option<Self> {
        match Self::start_with(persistence) {
            Ok(server) => Some(server),
            Err(StartError::NotFound(e)) if std::env::var_os("CI").is_none() => {
                println!(
                    "skipped: redis-server not found ({e}; install the redis-server package or \
                     set REDIS_SERVER): {test}"
                );
                None
            }
            Err(e) => panic!("{test}: could not start redis-server: {e}"),
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port the server listens on (the same after a restart).
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running (started and not stopped).
    #[must_use]
    pub const fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for it to exit. Its data
    /// is gone (no persistence). Does nothing if it is stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs and starts a new one on the same port and directory, and
    /// waits until it answers. Its data set is empty unless it has [`Persistence::Aof`].
    ///
    /// # Errors
    /// If the new server did not answer within 10 s (the error holds the end of its log).
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Sends `PING` and reads the answer: `Ok` only for `+PONG`.
    ///
    /// # Errors
    /// If the server cannot be reached or answers something else.
    pub fn ping(&self) -> io::Result<()> {
        let answer = self.command(&["PING"])?;
        if answer == "+PONG\r\n" {
            Ok(())
        } else {
            Err(io::Error::other(format!("answered {answer:?}")))
        }
    }

    /// Sends one command on a new connection and returns the raw answer (RESP, as the server
    /// wrote it: `+OK\r\n`, `:1\r\n`, `$5\r\nvalue\r\n`, ...), as far as one read of up to
    /// 64 KiB gets it: enough for the small answers a test inspects.
    ///
    /// # Errors
    /// If the server cannot be reached within 1 s or does not answer within 5 s.
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request)?;
        let mut answer = vec![0u8; 64 * 1024];
        let n = stream.read(&mut answer)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        answer.truncate(n);
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    /// Starts the process on `self.port` and waits until it answers `PING`.
    fn spawn(&mut self) -> io::Result<()> {
        let mut child = Command::new(&self.program)
            .current_dir(&self.dir)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(&self.dir)
            .args(["--save", "", "--logfile", "redis.log", "--appendonly"])
            .args(match self.persistence {
                Persistence::None => &["no"][..],
                Persistence::Aof => &["yes", "--appendfsync", "everysec"],
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let started = Instant::now();
        // Bounded by time: a server that neither answers nor exits is killed after 10 s.
        loop {
            if self.ping().is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            let exited = child.try_wait()?;
            if exited.is_some() || started.elapsed() >= START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "redis-server on port {} did not answer ({}); its log ends with:\n{}",
                    self.port,
                    exited.map_or_else(|| "timed out".to_owned(), |s| s.to_string()),
                    log_tail(&self.dir.join("redis.log"))
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("persistence", &self.persistence)
            .field("running", &self.is_running())
            .finish()
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(e) => write!(f, "redis-server not found: {e}"),
            Self::Failed(e) => write!(f, "redis-server did not start: {e}"),
        }
    }
}

impl core::error::Error for StartError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::NotFound(e) | Self::Failed(e) => Some(e),
        }
    }
}

/// `$REDIS_SERVER`, or `redis-server` from `PATH`.
fn program() -> OsString {
    std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into())
}

/// A port that was free a moment ago (the OS's pick for port 0).
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(listener.local_addr()?.port())
}

/// A new directory under the system's temporary directory.
fn temp_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "reauth-redis-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// The last lines of the server's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
