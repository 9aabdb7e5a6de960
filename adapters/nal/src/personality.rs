//! Stack personalities for tests: wrappers that make a stack meeting the receive contract (the
//! in-memory [`MockNet`](crate::mock::MockNet), or `std-embedded-nal` over real sockets) behave
//! like the stacks of the [stack profiles](crate::stack#stack-profiles), read from their
//! sources: smoltcp-nal 0.7, w5500 0.6 and the AT-command stacks. The unit tests and the
//! integration suites (`tests/common`, which includes this file) run through them, each under
//! its profile.

use core::net::SocketAddr;
use std::vec::Vec;

use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, nb};
use smoltcp_nal::NetworkError;
use smoltcp_nal::smoltcp::socket::tcp::{ConnectError, RecvError, SendError};

/// Reads pulled from the inner stack per `receive` of [`W5500Like`]: enough to drain anything
/// a test sends, bounded so that an endless peer cannot hold a call.
const DRAIN_READS: usize = 64;

/// smoltcp-nal 0.7: `receive` says `Ok(0)` for "no data yet" and
/// `Err(TcpReadFailure(RecvError::Finished))` at the end of the stream; a full send buffer is
/// `Ok(0)`; every error is a [`NetworkError`].
#[derive(Debug, Default)]
pub(crate) struct SmoltcpLike<S>(pub(crate) S);

impl<S: TcpClientStack> TcpClientStack for SmoltcpLike<S> {
    type TcpSocket = S::TcpSocket;
    type Error = NetworkError;

    fn socket(&mut self) -> Result<S::TcpSocket, NetworkError> {
        self.0.socket().map_err(|_| NetworkError::NoSocket)
    }

    fn connect(
        &mut self,
        s: &mut S::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), NetworkError> {
        self.0
            .connect(s, remote)
            .map_err(|e| e.map(|_| NetworkError::TcpConnectionFailure(ConnectError::InvalidState)))
    }

    fn send(&mut self, s: &mut S::TcpSocket, data: &[u8]) -> nb::Result<usize, NetworkError> {
        match self.0.send(s, data) {
            Err(nb::Error::WouldBlock) => Ok(0),
            other => {
                other.map_err(|e| e.map(|_| NetworkError::TcpWriteFailure(SendError::InvalidState)))
            }
        }
    }

    fn receive(&mut self, s: &mut S::TcpSocket, buf: &mut [u8]) -> nb::Result<usize, NetworkError> {
        match self.0.receive(s, buf) {
            Err(nb::Error::WouldBlock) => Ok(0),
            Ok(0) if !buf.is_empty() => {
                Err(nb::Error::Other(NetworkError::TcpReadFailure(RecvError::Finished)))
            }
            other => {
                other.map_err(|e| e.map(|_| NetworkError::TcpReadFailure(RecvError::InvalidState)))
            }
        }
    }

    fn close(&mut self, s: S::TcpSocket) -> Result<(), NetworkError> {
        self.0.close(s).map_err(|_| NetworkError::NotConnected)
    }
}

/// w5500 0.6: `receive` says `Ok(0)` for "no data yet"; once the peer has closed (the chip left
/// ESTABLISHED), `receive` and `send` fail with `NotConnected`, and the bytes that arrived
/// before the close and were not read are lost. Modelled by draining the inner stack into the
/// socket's own buffer at every call, as the chip fills its RX memory: an end of stream seen
/// there drops what the buffer holds.
#[derive(Debug, Default)]
pub(crate) struct W5500Like<S>(pub(crate) S);

/// A [`W5500Like`] socket: the inner socket and the chip's RX memory.
#[derive(Debug)]
pub(crate) struct ChipSocket<T> {
    inner: T,
    unread: Vec<u8>,
    closed: bool,
}

/// [`W5500Like`]'s error: `NotConnected`, or the inner stack's error.
#[derive(Debug)]
pub(crate) enum ChipError<E> {
    NotConnected,
    Other(E),
}

impl<E: TcpError> TcpError for ChipError<E> {
    fn kind(&self) -> TcpErrorKind {
        match self {
            Self::NotConnected => TcpErrorKind::PipeClosed,
            Self::Other(e) => e.kind(),
        }
    }
}

impl<S: TcpClientStack> TcpClientStack for W5500Like<S> {
    type TcpSocket = ChipSocket<S::TcpSocket>;
    type Error = ChipError<S::Error>;

    fn socket(&mut self) -> Result<Self::TcpSocket, Self::Error> {
        let inner = self.0.socket().map_err(ChipError::Other)?;
        Ok(ChipSocket { inner, unread: Vec::new(), closed: false })
    }

    fn connect(
        &mut self,
        s: &mut Self::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error> {
        self.0.connect(&mut s.inner, remote).map_err(|e| e.map(ChipError::Other))
    }

    fn send(&mut self, s: &mut Self::TcpSocket, data: &[u8]) -> nb::Result<usize, Self::Error> {
        if s.closed {
            return Err(nb::Error::Other(ChipError::NotConnected));
        }
        self.0.send(&mut s.inner, data).map_err(|e| e.map(ChipError::Other))
    }

    fn receive(
        &mut self,
        s: &mut Self::TcpSocket,
        buf: &mut [u8],
    ) -> nb::Result<usize, Self::Error> {
        let mut chunk = [0u8; 2048];
        for _ in 0..DRAIN_READS {
            if s.closed {
                break;
            }
            match self.0.receive(&mut s.inner, &mut chunk) {
                Ok(0) | Err(nb::Error::Other(_)) => s.closed = true,
                Ok(n) => s.unread.extend_from_slice(&chunk[..n]),
                Err(nb::Error::WouldBlock) => break,
            }
        }
        if s.closed {
            s.unread.clear();
            return Err(nb::Error::Other(ChipError::NotConnected));
        }
        let n = buf.len().min(s.unread.len());
        buf[..n].copy_from_slice(&s.unread[..n]);
        s.unread.drain(..n);
        Ok(n)
    }

    fn close(&mut self, s: Self::TcpSocket) -> Result<(), Self::Error> {
        self.0.close(s.inner).map_err(ChipError::Other)
    }
}

/// AT-command stacks (esp-at-nal 0.5, quectel-bg77 0.4): `connect` and `send` block until done
/// (here: retry the inner stack until it stops saying `WouldBlock`, sleeping 1 ms between
/// tries), and the end of a stream is never reported: it reads as "no data yet".
#[derive(Debug, Default)]
pub(crate) struct AtLike<S>(pub(crate) S);

/// What an AT-command stack does while its modem works: wait.
fn pause() {
    std::thread::sleep(core::time::Duration::from_millis(1));
}

impl<S: TcpClientStack> TcpClientStack for AtLike<S> {
    type TcpSocket = S::TcpSocket;
    type Error = S::Error;

    fn socket(&mut self) -> Result<S::TcpSocket, S::Error> {
        self.0.socket()
    }

    fn connect(&mut self, s: &mut S::TcpSocket, remote: SocketAddr) -> nb::Result<(), S::Error> {
        for _ in 0..10_000 {
            match self.0.connect(s, remote) {
                Err(nb::Error::WouldBlock) => pause(),
                other => return other,
            }
        }
        Err(nb::Error::WouldBlock)
    }

    fn send(&mut self, s: &mut S::TcpSocket, data: &[u8]) -> nb::Result<usize, S::Error> {
        let mut sent = 0;
        for _ in 0..10_000 {
            if sent == data.len() {
                break;
            }
            match self.0.send(s, &data[sent..]) {
                Ok(n) => sent += n,
                Err(nb::Error::WouldBlock) => pause(),
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    fn receive(&mut self, s: &mut S::TcpSocket, buf: &mut [u8]) -> nb::Result<usize, S::Error> {
        match self.0.receive(s, buf) {
            Ok(0) if !buf.is_empty() => Err(nb::Error::WouldBlock),
            other => other,
        }
    }

    fn close(&mut self, s: S::TcpSocket) -> Result<(), S::Error> {
        self.0.close(s)
    }
}
