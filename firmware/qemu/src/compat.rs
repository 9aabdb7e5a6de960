//! smoltcp-nal's `receive` read the way reauth-nal reads `receive` (TECH-NOTES §12): `Ok(0)`
//! into a non-empty buffer means "no data yet" there and becomes `WouldBlock`; the peer's FIN
//! (`TcpReadFailure(Finished)`) becomes `Ok(0)`, the end of the stream.
//!
//! Temporary: reauth-nal's own smoltcp profile (branch `nal-stacks`) replaces this file.

use core::net::SocketAddr;

use reauth_nal::embedded_nal::{TcpClientStack, nb};
use smoltcp_nal::NetworkError;
use smoltcp_nal::smoltcp::socket::tcp::RecvError;

/// A smoltcp-nal stack (or anything with its receive semantics) with std-embedded-nal's.
pub(crate) struct Smoltcp<S>(pub(crate) S);

impl<S: TcpClientStack<Error = NetworkError>> TcpClientStack for Smoltcp<S> {
    type TcpSocket = S::TcpSocket;
    type Error = NetworkError;

    fn socket(&mut self) -> Result<Self::TcpSocket, NetworkError> {
        self.0.socket()
    }

    fn connect(
        &mut self,
        socket: &mut Self::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), NetworkError> {
        self.0.connect(socket, remote)
    }

    fn send(
        &mut self,
        socket: &mut Self::TcpSocket,
        data: &[u8],
    ) -> nb::Result<usize, NetworkError> {
        match self.0.send(socket, data) {
            Ok(0) if !data.is_empty() => Err(nb::Error::WouldBlock),
            other => other,
        }
    }

    fn receive(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, NetworkError> {
        match self.0.receive(socket, buffer) {
            Ok(0) if !buffer.is_empty() => Err(nb::Error::WouldBlock),
            Err(nb::Error::Other(NetworkError::TcpReadFailure(RecvError::Finished))) => Ok(0),
            other => other,
        }
    }

    fn close(&mut self, socket: Self::TcpSocket) -> Result<(), NetworkError> {
        self.0.close(socket)
    }
}
