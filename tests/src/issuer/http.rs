//! The HTTP/1.1 plumbing of the issuer: the accept loop, one thread per connection, reading a
//! request (httparse for the head, Content-Length or chunked bodies, bounded sizes and times),
//! writing a [`route::Reply`], and the shutdown that joins every thread.
//!
//! Every blocking call is bounded: reads time out every [`POLL_INTERVAL`] so a connection thread
//! notices shutdown quickly, writes time out after [`WRITE_TIMEOUT`], and on shutdown every open
//! socket is shut down so that nothing stays blocked.

use core::mem;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::route::{self, Action, Reply};
use super::state::State;

/// Largest accepted request head (request line and headers), in bytes.
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// Largest accepted request body, in bytes (after chunked decoding).
pub(super) const MAX_BODY: usize = 1024 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;
/// Read timeout of connection sockets: how soon a blocked reader notices shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Granularity of interruptible sleeps (latency, hang, trickle).
const SLEEP_SLICE: Duration = Duration::from_millis(10);
/// How long a keep-alive connection may sit idle between requests before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take to send one whole request once it has started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection drains what the client still sends, so that the kernel does
/// not answer unread data with a reset that would destroy our last response.
const LINGER_TIMEOUT: Duration = Duration::from_millis(250);

/// State shared by the [`super::MockIssuer`] handle, the accept thread and connection threads.
pub(super) struct Shared {
    /// Tokens, faults, counters and knobs.
    state: Mutex<State>,
    /// Set once by [`shutdown`]; every loop checks it.
    shutting_down: AtomicBool,
    /// Open connections: a clone of each socket (to cut it on shutdown) and its thread.
    connections: Mutex<Vec<Connection>>,
}

/// One connection thread and a handle on its socket.
struct Connection {
    /// A clone of the connection's socket.
    stream: TcpStream,
    /// The thread serving it.
    thread: JoinHandle<()>,
}

impl Shared {
    /// Wraps a fresh state.
    pub(super) fn new(state: State) -> Self {
        Self {
            state: Mutex::new(state),
            shutting_down: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        }
    }

    /// Locks the state. Nothing panics while holding the lock, so poisoning cannot leave the
    /// state half-updated and is ignored.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the issuer is being dropped.
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Sleeps for `duration` in short slices; returns false (early) if the issuer shuts down.
    fn pause(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        loop {
            if self.is_shutting_down() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            thread::sleep(SLEEP_SLICE.min(deadline - now));
        }
    }
}

/// Accepts connections until shutdown, one thread each; with `tls`, every connection is a TLS
/// server connection (the handshake runs on the connection's thread).
pub(super) fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    tls: Option<&Arc<ServerConfig>>,
) {
    loop {
        let accepted = listener.accept();
        if shared.is_shutting_down() {
            return;
        }
        match accepted {
            Ok((stream, _)) => spawn_connection(stream, shared, tls),
            // Out of file descriptors or a connection reset before accept: back off, go on.
            Err(_) => thread::sleep(SLEEP_SLICE),
        }
    }
}

/// Stops the server: no new connections, every open one cut, every thread joined.
pub(super) fn shutdown(shared: &Shared, addr: SocketAddr, accept_thread: Option<JoinHandle<()>>) {
    shared.shutting_down.store(true, Ordering::Release);
    if let Some(accept_thread) = accept_thread {
        // `accept` has no timeout: a connection of our own wakes it to see the flag. If even
        // that fails the thread is left to end at the next connection rather than hang `drop`.
        let woken =
            (0..3).any(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
        if woken {
            let _ = accept_thread.join();
        }
    }
    let connections = mem::take(&mut *lock_connections(shared));
    for connection in &connections {
        let _ = connection.stream.shutdown(Shutdown::Both);
    }
    for connection in connections {
        let _ = connection.thread.join();
    }
}

/// Locks the connection list (poisoning ignored, as for the state).
fn lock_connections(shared: &Shared) -> MutexGuard<'_, Vec<Connection>> {
    shared.connections.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a thread for `stream` and registers it; reaps threads that have ended.
fn spawn_connection(stream: TcpStream, shared: &Arc<Shared>, tls: Option<&Arc<ServerConfig>>) {
    shared.lock().counters_mut().connections_accepted += 1;
    let Ok(registered) = stream.try_clone() else {
        return;
    };
    let mut connections = lock_connections(shared);
    let mut i = 0;
    while i < connections.len() {
        if connections[i].thread.is_finished() {
            let _ = connections.swap_remove(i).thread.join();
        } else {
            i += 1;
        }
    }
    let for_thread = Arc::clone(shared);
    let tls = tls.cloned();
    let spawned = thread::Builder::new()
        .name("mock-issuer-conn".into())
        .spawn(move || serve_connection(stream, &for_thread, tls));
    // If no thread can be spawned the socket is dropped: the client sees the connection close.
    if let Ok(thread) = spawned {
        connections.push(Connection { stream: registered, thread });
    }
}

/// A parsed request.
pub(super) struct Request {
    /// The method, e.g. `POST`.
    pub(super) method: String,
    /// The request target as sent: path and query.
    pub(super) target: String,
    /// The headers, names as sent.
    pub(super) headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub(super) body: Vec<u8>,
    /// The raw request head, for the token-leak scans.
    pub(super) head: Vec<u8>,
    /// Whether the client wants the connection kept open after the answer.
    pub(super) keep_alive: bool,
    /// `http` or `https`, as the connection was made.
    pub(super) scheme: &'static str,
}

impl Request {
    /// The value of the first header called `name` (case-insensitive).
    pub(super) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// The target's path, without the query.
    pub(super) fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The target's query, without the `?` (empty when there is none).
    pub(super) fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }
}

/// An answer ready to be written.
pub(super) struct Response {
    /// The status code.
    pub(super) status: u16,
    /// The `Content-Type`, or `None` for an empty body.
    pub(super) content_type: Option<&'static str>,
    /// Extra headers.
    pub(super) headers: Vec<(&'static str, String)>,
    /// The body (not yet chunk-encoded).
    pub(super) body: Vec<u8>,
    /// Send the body with `Transfer-Encoding: chunked`.
    pub(super) chunked: bool,
}

impl Response {
    /// A response with a JSON body.
    pub(super) fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: Some("application/json"),
            headers: Vec::new(),
            body: body.into().into_bytes(),
            chunked: false,
        }
    }

    /// Adds a header.
    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The head, and the body as it goes on the wire (chunk-encoded if asked).
    fn encode(&self, close: bool) -> (Vec<u8>, Vec<u8>) {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nServer: reauth-mock-issuer\r\n",
            self.status,
            reason(self.status)
        );
        if let Some(content_type) = self.content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        let body = if self.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
            chunk_encode(&self.body)
        } else {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
            self.body.clone()
        };
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(if close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        (head.into_bytes(), body)
    }
}

/// Encodes `body` as chunks; bodies of 2 bytes or more always take at least two data chunks, so
/// that a client's decoder is exercised across chunk boundaries.
fn chunk_encode(body: &[u8]) -> Vec<u8> {
    let size = body.len().div_ceil(2).clamp(1, 4096);
    let mut out = Vec::with_capacity(body.len() + 64);
    for chunk in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The reason phrase of the status codes the issuer uses.
const fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Why no request could be read.
enum ReadError {
    /// The client closed, went idle too long, or the issuer is shutting down: close silently.
    Closed,
    /// The request is invalid or too large: answer this status and close.
    Bad(u16, &'static str),
}

/// A connection the issuer serves: a plain TCP stream, or TLS over one.
trait Wire: Read + Write {
    /// The TCP socket underneath, for timeouts and shutdown.
    fn socket(&self) -> &TcpStream;

    /// Ends our sending direction; TLS first says so with a `close_notify` alert, so that the
    /// client can tell the end of a close-delimited answer from a truncation attack.
    fn finish_sending(&mut self) -> io::Result<()>;

    /// `http` or `https`: how the issuer names itself in its discovery metadata.
    const SCHEME: &'static str;
}

impl Wire for TcpStream {
    const SCHEME: &'static str = "http";

    fn socket(&self) -> &TcpStream {
        self
    }

    fn finish_sending(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Wire for StreamOwned<ServerConnection, TcpStream> {
    const SCHEME: &'static str = "https";

    fn socket(&self) -> &TcpStream {
        &self.sock
    }

    fn finish_sending(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush()?;
        self.sock.shutdown(Shutdown::Write)
    }
}

/// Serves one connection, then closes it. The socket is shut down explicitly because the clone
/// kept in [`Shared`] would otherwise keep it open until the thread is reaped.
fn serve_connection(stream: TcpStream, shared: &Shared, tls: Option<Arc<ServerConfig>>) {
    match tls {
        None => {
            let mut stream = stream;
            serve_requests(&mut stream, shared);
            let _ = stream.shutdown(Shutdown::Both);
        }
        Some(config) => {
            // A config rustls accepted once does not fail here; if it did, the client would see
            // the connection close, like any other refused connection.
            if let Ok(connection) = ServerConnection::new(config) {
                let mut stream = StreamOwned::new(connection, stream);
                serve_requests(&mut stream, shared);
                let _ = stream.sock.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Serves requests on one connection until either side wants it closed. A TLS handshake runs
/// inside the first read, under the same timeouts as a request.
fn serve_requests(stream: &mut impl Wire, shared: &Shared) {
    let socket = stream.socket();
    let _ = socket.set_nodelay(true);
    if socket.set_read_timeout(Some(POLL_INTERVAL)).is_err()
        || socket.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut buf = Vec::new();
    loop {
        let request = match read_request(stream, &mut buf, shared) {
            Ok(request) => request,
            Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status, message)) => {
                {
                    let mut state = shared.lock();
                    let counters = state.counters_mut();
                    counters.requests_total += 1;
                    counters.malformed_requests += 1;
                }
                let body =
                    format!(r#"{{"error":"invalid_request","error_description":"{message}"}}"#);
                let (head, body) = Response::json(status, body).encode(true);
                if write_all(stream, &head).is_ok() && write_all(stream, &body).is_ok() {
                    linger(stream, shared);
                }
                return;
            }
        };
        let reply = route::handle(shared, &request);
        if !execute(stream, shared, reply, request.keep_alive) {
            return;
        }
    }
}

/// Carries out a reply; returns whether the connection stays open for another request.
fn execute(stream: &mut impl Wire, shared: &Shared, reply: Reply, keep_alive: bool) -> bool {
    if !shared.pause(reply.delay) {
        return false;
    }
    match reply.action {
        Action::Send(response) => send(stream, shared, &response, keep_alive, None),
        Action::Trickle(response, byte_delay) => {
            send(stream, shared, &response, keep_alive, Some(byte_delay))
        }
        Action::Hang(duration) => {
            shared.pause(duration);
            false
        }
        Action::Close => false,
        Action::ResetMidBody(mut response) => {
            response.chunked = false;
            let (head, body) = response.encode(true);
            let _ =
                write_all(stream, &head).and_then(|()| write_all(stream, &body[..body.len() / 2]));
            let _ = stream.flush();
            let _ = stream.socket().shutdown(Shutdown::Both);
            false
        }
    }
}

/// Writes a response in one go, or byte by byte with `byte_delay` between bytes; returns whether
/// the connection stays open.
fn send(
    stream: &mut impl Wire,
    shared: &Shared,
    response: &Response,
    keep_alive: bool,
    byte_delay: Option<Duration>,
) -> bool {
    let (mut bytes, body) = response.encode(!keep_alive);
    bytes.extend_from_slice(&body);
    let written = match byte_delay {
        None => write_all(stream, &bytes).is_ok(),
        Some(delay) => {
            bytes.chunks(1).all(|byte| write_all(stream, byte).is_ok() && shared.pause(delay))
        }
    };
    if written && !keep_alive {
        linger(stream, shared);
    }
    written && keep_alive
}

/// Writes all of `bytes` (the socket's write timeout bounds each attempt).
fn write_all(stream: &mut impl Wire, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)?;
    stream.flush()
}

/// Half-closes, then reads and discards whatever the client still sends for a short while, so
/// that the last response is not destroyed by a reset caused by unread input.
fn linger(stream: &mut impl Wire, shared: &Shared) {
    if stream.finish_sending().is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIMEOUT;
    let mut sink = [0; 4096];
    while Instant::now() < deadline && !shared.is_shutting_down() {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// Whether a read error only means "nothing yet".
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Reads more bytes into `buf`, waiting until `deadline` at most.
fn fill(
    stream: &mut impl Wire,
    buf: &mut Vec<u8>,
    shared: &Shared,
    deadline: Instant,
) -> Result<(), ReadError> {
    let mut chunk = [0; 16 * 1024];
    loop {
        if shared.is_shutting_down() || Instant::now() >= deadline {
            return Err(ReadError::Closed);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return Err(ReadError::Closed),
        }
    }
}

/// The parts of a request head kept once httparse's borrow of the buffer ends.
struct Head {
    /// Length of the head in the buffer.
    len: usize,
    /// The method.
    method: String,
    /// The request target.
    target: String,
    /// HTTP minor version (0 or 1).
    version: u8,
    /// The headers.
    headers: Vec<(String, Vec<u8>)>,
}

/// Parses a complete head at the start of `buf`; `Ok(None)` when more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => {
            if len > MAX_HEAD {
                return Err(ReadError::Bad(431, "request head too large"));
            }
            let (Some(method), Some(target), Some(version)) =
                (request.method, request.path, request.version)
            else {
                return Err(ReadError::Bad(400, "malformed request line"));
            };
            Ok(Some(Head {
                len,
                method: method.to_owned(),
                target: target.to_owned(),
                version,
                headers: request
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect(),
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(ReadError::Bad(431, "too many headers")),
        Err(_) => Err(ReadError::Bad(400, "malformed request head")),
    }
}

/// Reads one request from the connection; bytes of a following (pipelined) request stay in
/// `buf`.
fn read_request<W: Wire>(
    stream: &mut W,
    buf: &mut Vec<u8>,
    shared: &Shared,
) -> Result<Request, ReadError> {
    let idle_deadline = Instant::now() + IDLE_TIMEOUT;
    let mut request_deadline = None;
    let head = loop {
        if !buf.is_empty() && request_deadline.is_none() {
            request_deadline = Some(Instant::now() + REQUEST_TIMEOUT);
        }
        if let Some(head) = parse_head(buf)? {
            break head;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(431, "request head too large"));
        }
        fill(stream, buf, shared, request_deadline.unwrap_or(idle_deadline))?;
    };
    let deadline = request_deadline.unwrap_or_else(|| Instant::now() + REQUEST_TIMEOUT);
    let mut request = Request {
        keep_alive: wants_keep_alive(&head.headers, head.version),
        scheme: W::SCHEME,
        method: head.method,
        target: head.target,
        headers: head.headers,
        body: Vec::new(),
        head: buf.drain(..head.len).collect(),
    };
    let framing = body_framing(&request)?;
    if framing != Framing::Empty
        && request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
        && buf.is_empty()
        && write_all(stream, b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
    {
        return Err(ReadError::Closed);
    }
    request.body = match framing {
        Framing::Empty => Vec::new(),
        Framing::Length(len) => {
            while buf.len() < len {
                fill(stream, buf, shared, deadline)?;
            }
            buf.drain(..len).collect()
        }
        Framing::Chunked => read_chunked(stream, buf, shared, deadline)?,
    };
    Ok(request)
}

/// Whether the connection stays open after this request (HTTP/1.1 defaults to yes, 1.0 to no).
fn wants_keep_alive(headers: &[(String, Vec<u8>)], version: u8) -> bool {
    let has = |token: &str| {
        headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("connection")).any(|(_, v)| {
            v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if version == 0 { has("keep-alive") } else { !has("close") }
}

/// How the request body is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked` (wins over `Content-Length`, RFC 9112 §6.3).
    Chunked,
}

/// Finds the body framing from the headers, enforcing [`MAX_BODY`].
fn body_framing(request: &Request) -> Result<Framing, ReadError> {
    if let Some(coding) = request.header("transfer-encoding") {
        let last = coding.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
        return if last.eq_ignore_ascii_case(b"chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(ReadError::Bad(501, "unsupported transfer-encoding"))
        };
    }
    let mut length = None;
    for (_, value) in
        request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        let parsed = core::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or(ReadError::Bad(400, "invalid content-length"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(ReadError::Bad(400, "conflicting content-length"));
        }
        length = Some(parsed);
    }
    match length {
        None | Some(0) => Ok(Framing::Empty),
        Some(len) if len > MAX_BODY => Err(ReadError::Bad(413, "request body too large")),
        Some(len) => Ok(Framing::Length(len)),
    }
}

/// Reads and decodes a chunked body (trailers are skipped).
fn read_chunked(
    stream: &mut impl Wire,
    buf: &mut Vec<u8>,
    shared: &Shared,
    deadline: Instant,
) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete((consumed, 0))) => {
                let trailers = &buf[pos + consumed..];
                if trailers.starts_with(b"\r\n") {
                    pos += consumed + 2;
                    break;
                }
                if let Some(end) = trailers.windows(4).position(|w| w == b"\r\n\r\n") {
                    pos += consumed + end + 4;
                    break;
                }
                if trailers.len() > MAX_HEAD {
                    return Err(ReadError::Bad(431, "trailers too large"));
                }
            }
            Ok(httparse::Status::Complete((consumed, size))) => {
                let size = usize::try_from(size)
                    .ok()
                    .filter(|&s| s <= MAX_BODY - body.len())
                    .ok_or(ReadError::Bad(413, "request body too large"))?;
                let start = pos + consumed;
                let end = start + size;
                if buf.len() >= end + 2 {
                    if &buf[end..end + 2] != b"\r\n" {
                        return Err(ReadError::Bad(400, "malformed chunk"));
                    }
                    body.extend_from_slice(&buf[start..end]);
                    pos = end + 2;
                    continue;
                }
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() - pos > 1024 {
                    return Err(ReadError::Bad(400, "malformed chunk size"));
                }
            }
            Err(_) => return Err(ReadError::Bad(400, "malformed chunk size")),
        }
        fill(stream, buf, shared, deadline)?;
    }
    buf.drain(..pos);
    Ok(body)
}
