//! A stand-in network stack for the size measurement: it answers every exchange from canned
//! bytes hidden behind `black_box`, so the optimizer must keep every parsing path that a real
//! modem or smoltcp socket would exercise.

use core::hint::black_box;
use core::net::SocketAddr;

use reauth_nal::embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, nb};

/// What the "server" sends; which one depends on a value the optimizer cannot see.
const ANSWERS: [&[u8]; 3] = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\n\
      Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 96\r\n\r\n\
      {\"access_token\":\"at-2\",\"token_type\":\"Bearer\",\"expires_in\":3600,\
      \"refresh_token\":\"rt-2\"}       ",
];

/// The stub stack: one socket at a time per exchange, numbered.
#[derive(Default)]
pub struct StubStack {
    delivered: [usize; 4],
}

/// The stub's only error.
#[derive(Debug)]
pub struct StubError;

impl TcpError for StubError {
    fn kind(&self) -> TcpErrorKind {
        if black_box(false) { TcpErrorKind::PipeClosed } else { TcpErrorKind::Other }
    }
}

impl TcpClientStack for StubStack {
    type TcpSocket = usize;
    type Error = StubError;

    fn socket(&mut self) -> Result<usize, StubError> {
        let socket = black_box(0usize) % self.delivered.len();
        if let Some(d) = self.delivered.get_mut(socket) {
            *d = 0;
        }
        if black_box(false) { Err(StubError) } else { Ok(socket) }
    }

    fn connect(&mut self, _socket: &mut usize, remote: SocketAddr) -> nb::Result<(), StubError> {
        match black_box(remote.port()) {
            0 => Err(nb::Error::Other(StubError)),
            1 => Err(nb::Error::WouldBlock),
            _ => Ok(()),
        }
    }

    fn send(&mut self, _socket: &mut usize, buffer: &[u8]) -> nb::Result<usize, StubError> {
        black_box(buffer);
        match black_box(buffer.len()) {
            0 => Err(nb::Error::WouldBlock),
            n => Ok(n),
        }
    }

    fn receive(&mut self, socket: &mut usize, buffer: &mut [u8]) -> nb::Result<usize, StubError> {
        let which = black_box(*socket) % ANSWERS.len();
        let answer = black_box(ANSWERS.get(which).copied().unwrap_or_default());
        let Some(delivered) = self.delivered.get_mut(*socket) else {
            return Err(nb::Error::Other(StubError));
        };
        let rest = answer.get(*delivered..).unwrap_or_default();
        let n = rest.len().min(buffer.len());
        if let (Some(dst), Some(src)) = (buffer.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        *delivered += n;
        Ok(n)
    }

    fn close(&mut self, socket: usize) -> Result<(), StubError> {
        black_box(socket);
        Ok(())
    }
}
