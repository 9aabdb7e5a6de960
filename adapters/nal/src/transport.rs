//! The byte pipe under the HTTP exchange: the [`Transport`] trait, its blanket implementation for
//! every [`embedded_nal::TcpClientStack`], and helpers to build one over `embedded_io` streams
//! (a TLS session, a modem UART) without ever blocking.
//!
//! # Layering TLS or a modem on top
//!
//! The HTTP code only ever calls the five methods of [`Transport`], and treats
//! `nb::Error::WouldBlock` as "come back at the next poll". To run over a stream that speaks
//! `embedded_io` (a TLS session such as `embedded-tls` over a TCP socket, or an AT-command modem
//! that exposes a byte stream), wrap it in a type of your own and implement [`Transport`] for it:
//!
//! - `Connection` is whatever names one session (an index into your sessions, or the session
//!   itself); `open` allocates it, `connect` drives the TCP connect and then the TLS handshake,
//!   returning `WouldBlock` until both are done;
//! - `send`, `flush` and `receive` call [`io_write`], [`io_flush`] and [`io_read`], which check
//!   [`WriteReady`] / [`ReadReady`] first, so the blocking `embedded_io` calls are only made when
//!   they cannot block;
//! - wrap the stream's error in [`IoError`], which maps [`embedded_io::ErrorKind`] to
//!   [`TcpErrorKind`].
//!
//! A TLS layer MUST implement `flush` (the default does nothing): the client calls it once the
//! whole request is written, and a TLS writer holds the last record until then.

use core::fmt;
use core::net::SocketAddr;

use embedded_io::{ErrorKind, Read, ReadReady, Write, WriteReady};
use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, nb};

use crate::stack::StreamEnd;

/// A source of non-blocking byte-stream connections, as the client needs them.
///
/// Every method MUST return at once: `Err(nb::Error::WouldBlock)` means "not yet, ask again at
/// the next poll". Implemented for every [`TcpClientStack`]; see the [module docs](self) for
/// layering TLS or a modem.
pub trait Transport {
    /// One connection (a TCP socket, a TLS session).
    type Connection;
    /// The error of every operation; [`TcpError::kind`] tells a closed pipe from anything else.
    type Error: TcpError;

    /// What `receive` says about the end of a stream. [`StreamEnd::Reported`] (the
    /// [receive contract](crate::stack)) unless a [stack profile](crate::stack#stack-profiles)
    /// says otherwise.
    const STREAM_END: StreamEnd = StreamEnd::Reported;

    /// Allocates a connection that is not connected yet.
    ///
    /// # Errors
    /// The stack has no free socket, or another stack error.
    fn open(&mut self) -> Result<Self::Connection, Self::Error>;

    /// Connects to `remote`; `WouldBlock` until the connection is established.
    ///
    /// # Errors
    /// The connection failed (refused, unreachable, handshake failed).
    fn connect(
        &mut self,
        connection: &mut Self::Connection,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error>;

    /// Sends a prefix of `data` and returns its length, which may be less than `data.len()`.
    ///
    /// # Errors
    /// The connection failed.
    fn send(
        &mut self,
        connection: &mut Self::Connection,
        data: &[u8],
    ) -> nb::Result<usize, Self::Error>;

    /// Pushes out whatever `send` buffered; called once after the whole request was sent.
    /// The default does nothing, which is right for a plain TCP socket.
    ///
    /// # Errors
    /// The connection failed.
    fn flush(&mut self, connection: &mut Self::Connection) -> nb::Result<(), Self::Error> {
        let _ = connection;
        Ok(())
    }

    /// Receives into `buf` and returns how many bytes arrived; `Ok(0)` means the peer closed
    /// the connection and every byte it sent was handed out. This is the
    /// [receive contract](crate::stack); a stack that reads `receive` otherwise is wrapped in
    /// its [stack profile](crate::stack#stack-profiles).
    ///
    /// # Errors
    /// The connection failed.
    fn receive(
        &mut self,
        connection: &mut Self::Connection,
        buf: &mut [u8],
    ) -> nb::Result<usize, Self::Error>;

    /// Closes the connection and frees it. Errors are ignored: the exchange is over either way.
    fn close(&mut self, connection: Self::Connection);
}

impl<S: TcpClientStack> Transport for S {
    type Connection = S::TcpSocket;
    type Error = S::Error;

    fn open(&mut self) -> Result<Self::Connection, Self::Error> {
        self.socket()
    }

    fn connect(
        &mut self,
        connection: &mut Self::Connection,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error> {
        TcpClientStack::connect(self, connection, remote)
    }

    fn send(
        &mut self,
        connection: &mut Self::Connection,
        data: &[u8],
    ) -> nb::Result<usize, Self::Error> {
        TcpClientStack::send(self, connection, data)
    }

    fn receive(
        &mut self,
        connection: &mut Self::Connection,
        buf: &mut [u8],
    ) -> nb::Result<usize, Self::Error> {
        TcpClientStack::receive(self, connection, buf)
    }

    fn close(&mut self, connection: Self::Connection) {
        // The exchange is finished or abandoned: a failure to close changes nothing for it.
        let _ = TcpClientStack::close(self, connection);
    }
}

/// An `embedded_io` error seen as a [`TcpError`], for [`Transport`] implementations over
/// `embedded_io` streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoError<E>(pub E);

impl<E: embedded_io::Error> TcpError for IoError<E> {
    fn kind(&self) -> TcpErrorKind {
        match self.0.kind() {
            ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

impl<E: fmt::Display> fmt::Display for IoError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Writes a prefix of `data` to `w` if it is ready, `WouldBlock` otherwise.
///
/// # Errors
/// The stream's error, wrapped in [`IoError`].
pub fn io_write<W: Write + WriteReady>(
    w: &mut W,
    data: &[u8],
) -> nb::Result<usize, IoError<W::Error>> {
    if data.is_empty() {
        return Ok(0);
    }
    if !w.write_ready().map_err(|e| nb::Error::Other(IoError(e)))? {
        return Err(nb::Error::WouldBlock);
    }
    w.write(data).map_err(|e| nb::Error::Other(IoError(e)))
}

/// Flushes `w` if it is ready to take more bytes (and so will not block), `WouldBlock`
/// otherwise.
///
/// # Errors
/// The stream's error, wrapped in [`IoError`].
pub fn io_flush<W: Write + WriteReady>(w: &mut W) -> nb::Result<(), IoError<W::Error>> {
    if !w.write_ready().map_err(|e| nb::Error::Other(IoError(e)))? {
        return Err(nb::Error::WouldBlock);
    }
    w.flush().map_err(|e| nb::Error::Other(IoError(e)))
}

/// Reads from `r` if it has bytes (or has reached its end), `WouldBlock` otherwise. `Ok(0)` for
/// a non-empty `buf` means end of stream.
///
/// # Errors
/// The stream's error, wrapped in [`IoError`].
pub fn io_read<R: Read + ReadReady>(
    r: &mut R,
    buf: &mut [u8],
) -> nb::Result<usize, IoError<R::Error>> {
    if buf.is_empty() {
        return Ok(0);
    }
    if !r.read_ready().map_err(|e| nb::Error::Other(IoError(e)))? {
        return Err(nb::Error::WouldBlock);
    }
    r.read(buf).map_err(|e| nb::Error::Other(IoError(e)))
}
