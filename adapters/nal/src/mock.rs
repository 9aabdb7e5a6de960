//! An in-memory [`TcpClientStack`] for deterministic tests: each connection to an address plays
//! the next [`Script`] queued for it, answering with canned bytes after the whole request has
//! arrived, with `WouldBlock`, short reads and writes, dropped connections and silence on
//! demand. Every complete request is recorded for assertions.

use core::net::SocketAddr;
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, nb};

/// How one connection behaves.
#[derive(Clone, Debug, Default)]
pub(crate) struct Script {
    /// What the server sends once the request is complete.
    pub(crate) response: Vec<u8>,
    /// `connect` says `WouldBlock` this many times first.
    pub(crate) connect_blocks: u32,
    /// `connect` fails.
    pub(crate) refuse: bool,
    /// At most this many bytes per `send` (0: no limit).
    pub(crate) send_max: usize,
    /// At most this many bytes per `receive` (0: no limit).
    pub(crate) recv_max: usize,
    /// Every other `send` and `receive` says `WouldBlock`.
    pub(crate) stutter: bool,
    /// The peer closes (`Ok(0)`) after sending this many bytes of the response.
    pub(crate) close_after: Option<usize>,
    /// The connection fails (pipe closed) after this many bytes of the response.
    pub(crate) reset_after: Option<usize>,
    /// The server reads the request and never answers.
    pub(crate) silent: bool,
    /// The server sends this many bytes of the response, then nothing more, and keeps the
    /// connection open.
    pub(crate) stall_after: Option<usize>,
    /// After the response, the server keeps sending this forever, one copy per `receive`.
    pub(crate) endless: Vec<u8>,
    /// After the whole response the connection stays open, and the next request on it is
    /// answered by the next script queued for the same address (none: it gets no answer).
    pub(crate) keep_open: bool,
    /// On a kept connection: the server has closed it while it was idle, so `receive` gives
    /// the end at once, even before a request.
    pub(crate) gone: bool,
}

impl Script {
    pub(crate) fn answer(response: &[u8]) -> Self {
        Self { response: response.to_vec(), ..Self::default() }
    }
}

/// A response with a `Content-Length` body.
pub(crate) fn http(status: u16, body: &str) -> Vec<u8> {
    std::format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// A token endpoint success.
pub(crate) fn token_response(access: &str, refresh: &str, expires_in: u32) -> Vec<u8> {
    http(
        200,
        &std::format!(
            concat!(
                r#"{{"access_token":"{}","token_type":"Bearer","#,
                r#""expires_in":{},"refresh_token":"{}"}}"#
            ),
            access,
            expires_in,
            refresh
        ),
    )
}

#[derive(Debug)]
struct Conn {
    script: Script,
    remote: Option<SocketAddr>,
    connect_left: u32,
    /// The request bytes received so far.
    request: Vec<u8>,
    /// The request was complete and recorded.
    answered: bool,
    /// Response bytes delivered.
    delivered: usize,
    calls: u32,
    closed: bool,
}

/// The in-memory stack.
#[derive(Debug, Default)]
pub(crate) struct MockNet {
    conns: Vec<Conn>,
    scripts: BTreeMap<SocketAddr, VecDeque<Script>>,
    /// Every complete request, with the address it went to, in order of completion.
    pub(crate) requests: Vec<(SocketAddr, Vec<u8>)>,
    /// The server speaks HTTP/1.1 as servers do: after answering a request that did not ask
    /// for `Connection: close`, it keeps the connection open (and silent) instead of closing.
    pub(crate) http11: bool,
}

/// The mock's error: only its kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MockError(pub(crate) TcpErrorKind);

impl TcpError for MockError {
    fn kind(&self) -> TcpErrorKind {
        self.0
    }
}

impl MockNet {
    pub(crate) fn script(&mut self, remote: SocketAddr, script: Script) {
        self.scripts.entry(remote).or_default().push_back(script);
    }

    /// Sockets opened, closed ones included.
    pub(crate) fn sockets_opened(&self) -> usize {
        self.conns.len()
    }

    /// Sockets opened and not closed.
    pub(crate) fn open_sockets(&self) -> usize {
        self.conns.iter().filter(|c| !c.closed).count()
    }

    /// The requests that went to `remote`, as text.
    pub(crate) fn requests_to(&self, remote: SocketAddr) -> Vec<std::string::String> {
        self.requests
            .iter()
            .filter(|(to, _)| *to == remote)
            .map(|(_, r)| std::string::String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    fn conn(&mut self, socket: usize) -> Result<&mut Conn, nb::Error<MockError>> {
        match self.conns.get_mut(socket) {
            Some(c) if !c.closed => Ok(c),
            _ => Err(nb::Error::Other(MockError(TcpErrorKind::Other))),
        }
    }
}

/// True once `request` holds a head and the body its `Content-Length` announces.
fn is_complete(request: &[u8]) -> bool {
    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = std::string::String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    request.len() >= end + 4 + length
}

impl TcpClientStack for MockNet {
    type TcpSocket = usize;
    type Error = MockError;

    fn socket(&mut self) -> Result<usize, MockError> {
        self.conns.push(Conn {
            script: Script::default(),
            remote: None,
            connect_left: 0,
            request: Vec::new(),
            answered: false,
            delivered: 0,
            calls: 0,
            closed: false,
        });
        Ok(self.conns.len() - 1)
    }

    fn connect(&mut self, socket: &mut usize, remote: SocketAddr) -> nb::Result<(), MockError> {
        let script = match self.conns.get(*socket) {
            Some(c) if c.remote.is_none() => {
                self.scripts.get_mut(&remote).and_then(VecDeque::pop_front)
            }
            _ => None,
        };
        let conn = self.conn(*socket)?;
        if conn.remote.is_none() {
            let Some(script) = script else {
                return Err(nb::Error::Other(MockError(TcpErrorKind::Other)));
            };
            conn.connect_left = script.connect_blocks;
            conn.script = script;
            conn.remote = Some(remote);
        }
        if conn.script.refuse {
            return Err(nb::Error::Other(MockError(TcpErrorKind::Other)));
        }
        if conn.connect_left > 0 {
            conn.connect_left -= 1;
            return Err(nb::Error::WouldBlock);
        }
        Ok(())
    }

    fn send(&mut self, socket: &mut usize, buffer: &[u8]) -> nb::Result<usize, MockError> {
        let conn = self.conn(*socket)?;
        conn.calls += 1;
        if conn.script.stutter && conn.calls % 2 == 1 {
            return Err(nb::Error::WouldBlock);
        }
        let n = match conn.script.send_max {
            0 => buffer.len(),
            max => buffer.len().min(max),
        };
        conn.request.extend_from_slice(&buffer[..n]);
        if !conn.answered && is_complete(&conn.request) {
            conn.answered = true;
            let (remote, request) = (conn.remote.unwrap(), conn.request.clone());
            self.requests.push((remote, request));
        }
        Ok(n)
    }

    fn receive(&mut self, socket: &mut usize, buffer: &mut [u8]) -> nb::Result<usize, MockError> {
        let http11 = self.http11;
        let conn = self.conn(*socket)?;
        conn.calls += 1;
        if conn.script.gone {
            return Ok(0);
        }
        if !conn.answered || conn.script.silent {
            return Err(nb::Error::WouldBlock);
        }
        if conn.script.stutter && conn.calls % 2 == 1 {
            return Err(nb::Error::WouldBlock);
        }
        let total = conn.script.response.len();
        if conn.script.stall_after.is_some_and(|n| conn.delivered >= n) {
            return Err(nb::Error::WouldBlock);
        }
        let limit = conn.script.close_after.or(conn.script.reset_after).unwrap_or(total).min(total);
        if conn.delivered >= limit && !conn.script.endless.is_empty() {
            let n = buffer.len().min(conn.script.endless.len());
            buffer[..n].copy_from_slice(&conn.script.endless[..n]);
            return Ok(n);
        }
        let asked_close = core::str::from_utf8(&conn.request)
            .is_ok_and(|r| r.to_ascii_lowercase().contains("\r\nconnection: close\r\n"));
        if conn.delivered >= limit && limit == total && http11 && !asked_close {
            return Err(nb::Error::WouldBlock);
        }
        if conn.delivered >= limit {
            if conn.script.reset_after.is_some() {
                return Err(nb::Error::Other(MockError(TcpErrorKind::PipeClosed)));
            }
            return Ok(0);
        }
        let mut n = buffer.len().min(limit - conn.delivered);
        if let Some(stall) = conn.script.stall_after {
            n = n.min(stall - conn.delivered);
        }
        if conn.script.recv_max > 0 {
            n = n.min(conn.script.recv_max);
        }
        buffer[..n].copy_from_slice(&conn.script.response[conn.delivered..conn.delivered + n]);
        conn.delivered += n;
        if conn.script.keep_open && conn.delivered == total {
            // Ready for the next request on this connection, with the next script.
            let remote = conn.remote.unwrap();
            let next = self.scripts.get_mut(&remote).and_then(VecDeque::pop_front);
            let conn = &mut self.conns[*socket];
            conn.script = next.unwrap_or(Script { silent: true, ..Script::default() });
            conn.request.clear();
            conn.answered = false;
            conn.delivered = 0;
        }
        Ok(n)
    }

    fn close(&mut self, socket: usize) -> Result<(), MockError> {
        if let Some(conn) = self.conns.get_mut(socket) {
            conn.closed = true;
        }
        Ok(())
    }
}
