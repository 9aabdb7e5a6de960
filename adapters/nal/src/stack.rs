//! The receive contract reauth-nal needs from a network stack, and the stack profiles that make
//! the known `embedded-nal` stacks meet it without a shim of your own.
//!
//! # The receive contract
//!
//! embedded-nal 0.9 does not say what `receive` returns when there is nothing to read, or when
//! the peer has closed, and the stacks disagree. reauth-nal reads [`Transport::receive`] (for a
//! [`TcpClientStack`], its `receive`) into a non-empty buffer like this:
//!
//! | `receive` returns | it means | reauth-nal then |
//! |---|---|---|
//! | `Err(nb::Error::WouldBlock)` | no data yet | comes back at the next poll; the deadlines of [`Timeouts`](crate::Timeouts) run |
//! | `Ok(n)`, `n > 0` | `n` bytes of the stream | reads them |
//! | `Ok(0)` | end of stream: the peer closed, and every byte it sent was handed out | ends a body delimited by the close; any other unfinished answer is [`Error::ConnectionClosed`](crate::Error::ConnectionClosed) |
//! | `Err(nb::Error::Other(e))` | the connection is gone: reset, or closed with bytes the stack will no longer hand out | fails the exchange with [`Error::Transport`](crate::Error::Transport) |
//!
//! `connect`, `send` and `flush` may block until done (an AT-command modem does): that is
//! slower, never wrong. `send` returning `Ok(0)` is read as "would block".
//!
//! A refresh whose request went out (even in part) and whose answer was lost this way is
//! reported to the coordinator as a lost exchange, never retried at once: the server may
//! already have rotated the refresh token.
//!
//! # Stack profiles
//!
//! | stack | no data yet | end of stream | use with reauth-nal |
//! |---|---|---|---|
//! | std-embedded-nal 0.4 (host) | `WouldBlock` | `Ok(0)` | as is: it meets the contract |
//! | smoltcp-nal 0.7 (smoltcp 0.12) | `Ok(0)` | `Err(TcpReadFailure(RecvError::Finished))` | [`SmoltcpNal`] (feature `smoltcp`) |
//!
//! A stack whose `receive` says `Ok(0)` for "no data yet" MUST NOT be used bare: reauth-nal
//! would read every quiet moment as the end of the answer.

use core::net::SocketAddr;

use embedded_nal::{TcpClientStack, nb};

#[cfg(doc)]
use crate::transport::Transport;

/// The smoltcp-nal 0.7 profile (feature `smoltcp`): wraps a
/// [`smoltcp_nal::NetworkStack`] (or `&mut` one) so that it meets the
/// [receive contract](self): `receive` returning `Ok(0)` into a non-empty buffer ("no data
/// yet" in smoltcp) becomes `WouldBlock`, and `Err(TcpReadFailure(RecvError::Finished))` (the
/// peer's FIN, once every byte before it was read) becomes `Ok(0)`. Every other call and error
/// passes through unchanged.
///
/// # Examples
///
/// ```ignore
/// // `stack` is a smoltcp_nal::NetworkStack; poll it, then the client, in the main loop.
/// stack.poll()?;
/// while let Some(event) = client.poll(&mut SmoltcpNal(&mut stack), now()) { /* ... */ }
/// ```
#[cfg(feature = "smoltcp")]
#[derive(Debug, Default)]
pub struct SmoltcpNal<S>(pub S);

#[cfg(feature = "smoltcp")]
impl<S> TcpClientStack for SmoltcpNal<S>
where
    S: TcpClientStack<Error = smoltcp_nal::NetworkError>,
{
    type TcpSocket = S::TcpSocket;
    type Error = smoltcp_nal::NetworkError;

    fn socket(&mut self) -> Result<Self::TcpSocket, Self::Error> {
        self.0.socket()
    }

    fn connect(
        &mut self,
        socket: &mut Self::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error> {
        self.0.connect(socket, remote)
    }

    fn send(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &[u8],
    ) -> nb::Result<usize, Self::Error> {
        self.0.send(socket, buffer)
    }

    fn receive(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, Self::Error> {
        use smoltcp_nal::NetworkError;
        use smoltcp_nal::smoltcp::socket::tcp::RecvError;
        match self.0.receive(socket, buffer) {
            Ok(0) if !buffer.is_empty() => Err(nb::Error::WouldBlock),
            Err(nb::Error::Other(NetworkError::TcpReadFailure(RecvError::Finished))) => Ok(0),
            other => other,
        }
    }

    fn close(&mut self, socket: Self::TcpSocket) -> Result<(), Self::Error> {
        self.0.close(socket)
    }
}

#[cfg(all(test, feature = "smoltcp"))]
mod tests {
    use std::collections::VecDeque;

    use smoltcp_nal::NetworkError;
    use smoltcp_nal::smoltcp::socket::tcp::RecvError;

    use super::*;

    /// A stack that hands out scripted `receive` results, smoltcp-nal's way.
    struct Scripted(VecDeque<nb::Result<usize, NetworkError>>);

    impl TcpClientStack for Scripted {
        type TcpSocket = ();
        type Error = NetworkError;
        fn socket(&mut self) -> Result<(), NetworkError> {
            Ok(())
        }
        fn connect(&mut self, (): &mut (), _: SocketAddr) -> nb::Result<(), NetworkError> {
            Ok(())
        }
        fn send(&mut self, (): &mut (), data: &[u8]) -> nb::Result<usize, NetworkError> {
            Ok(data.len())
        }
        fn receive(&mut self, (): &mut (), _: &mut [u8]) -> nb::Result<usize, NetworkError> {
            self.0.pop_front().unwrap()
        }
        fn close(&mut self, (): ()) -> Result<(), NetworkError> {
            Ok(())
        }
    }

    #[test]
    fn smoltcp_nal_reads_as_the_receive_contract_says() {
        let finished = NetworkError::TcpReadFailure(RecvError::Finished);
        let reset = NetworkError::TcpReadFailure(RecvError::InvalidState);
        let mut stack = SmoltcpNal(Scripted(
            [Ok(0), Ok(5), Err(nb::Error::Other(reset)), Err(nb::Error::Other(finished))].into(),
        ));
        let mut buf = [0; 8];
        let mut read = || match stack.receive(&mut (), &mut buf) {
            Ok(n) => std::format!("Ok({n})"),
            Err(nb::Error::WouldBlock) => "WouldBlock".into(),
            Err(nb::Error::Other(e)) => std::format!("{e:?}"),
        };
        assert_eq!(read(), "WouldBlock");
        assert_eq!(read(), "Ok(5)");
        assert_eq!(read(), "TcpReadFailure(InvalidState)");
        assert_eq!(read(), "Ok(0)");
    }
}
