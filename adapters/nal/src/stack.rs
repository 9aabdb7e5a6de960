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
//! | `Ok(0)` | end of stream: the peer closed, and every byte it sent was handed out | ends a body delimited by the close; any other unfinished answer is [`Error::ConnectionClosed`] |
//! | `Err(nb::Error::Other(e))` | the connection is gone: reset, or closed with bytes the stack will no longer hand out | fails the exchange with [`Error::Transport`] |
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
//! | smoltcp-nal 0.7 (smoltcp 0.12) | `Ok(0)` | `Err(TcpReadFailure(RecvError::Finished))` | `SmoltcpNal` (feature `smoltcp`) |
//! | w5500 0.6 | `Ok(0)` | `Err(NotConnected)` as soon as the chip leaves ESTABLISHED, unread bytes lost | [`W5500`] |
//! | esp-at-nal 0.5, quectel-bg77 0.4 (AT commands) | `WouldBlock` | never reported; every call blocks | [`AtModem`] |
//!
//! What each profile costs:
//! - `SmoltcpNal` changes nothing else: smoltcp hands out every byte before the FIN.
//! - [`W5500`] ([`StreamEnd::LosesUnread`]): requests never ask the server to close
//!   (`Connection: close` is left out, also on the refresh), so that the server does not close
//!   before the answer is read; the client closes once the answer's framing says it is whole.
//!   A body that only the close delimits is refused ([`HttpError::CloseDelimited`]); an
//!   answer whose server closes anyway may be lost ([`Error::Transport`] at
//!   [`Stage::Receive`]; for a refresh, a lost exchange).
//! - [`AtModem`] ([`StreamEnd::NeverReported`]): answers framed by `Content-Length` or chunked
//!   end by their framing, as everywhere; a body that only the close delimits is refused at
//!   once ([`HttpError::CloseDelimited`]); an answer cut short by the server never ends and
//!   fails at the idle (or response) timeout of [`Timeouts`](crate::Timeouts). Connections
//!   are never kept (feature `keep-alive`): one the server closed would look quiet. Calls that
//!   block make `poll` as slow as the modem, never wrong.
//!
//! A stack not listed: find the row whose "no data yet" and "end of stream" match its
//! `receive`, or implement [`Transport`] yourself (and set [`Transport::STREAM_END`]).
//!
//! A stack whose `receive` says `Ok(0)` for "no data yet" MUST NOT be used bare: reauth-nal
//! would read every quiet moment as the end of the answer.

use core::net::SocketAddr;

use embedded_nal::{TcpClientStack, nb};

use crate::transport::Transport;
#[cfg(doc)]
use crate::{Error, HttpError, Stage};

/// What a [`Transport`]'s `receive` tells about the end of a stream; the HTTP layer adapts to
/// it ([`Transport::STREAM_END`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamEnd {
    /// `Ok(0)` once the peer closed and every byte before its close was handed out: the
    /// [receive contract](self).
    Reported,
    /// The stack reports the peer's close as an error, and from then on no longer hands out
    /// the bytes that arrived before it (w5500). Requests never ask the server to close.
    LosesUnread,
    /// Never reported: a closed connection looks like a quiet one (AT-command modems).
    NeverReported,
}

/// The smoltcp-nal 0.7 profile (feature `smoltcp`): wraps a
/// [`smoltcp_nal::NetworkStack`] (or `&mut` one) so that it meets the
/// [receive contract](self): `receive` returning `Ok(0)` into a non-empty buffer ("no data
/// yet" in smoltcp) becomes `WouldBlock`, and `Err(TcpReadFailure(RecvError::Finished))` (the
/// peer's FIN, once every byte before it was read) becomes `Ok(0)`. Every other call and error
/// passes through unchanged.
///
/// # Examples
///
/// The wrapper owns the stack for the client's whole life (the client's type names the
/// transport, so a new `&mut` borrow per poll would not do); poll the stack through `.0`.
///
/// ```ignore
/// let mut net = SmoltcpNal(smoltcp_nal::NetworkStack::new(interface, device, sockets, clock));
/// loop {
///     net.0.poll()?;
///     while let Some(event) = client.poll(&mut net, now()) { /* ... */ }
/// }
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

/// The w5500 profile, for stacks whose `receive` says `Ok(0)` for "no data yet" and fails
/// (`NotConnected`) once the peer has closed, dropping the bytes not read yet (w5500 0.6): `Ok(0)`
/// into a non-empty buffer becomes `WouldBlock`, and the client never asks the server to close
/// ([`StreamEnd::LosesUnread`], see the [stack profiles](self#stack-profiles)).
#[derive(Debug, Default)]
pub struct W5500<S>(pub S);

/// The AT-command modem profile (esp-at-nal 0.5, quectel-bg77 0.4): the stack meets the
/// receive contract except that it never reports the end of a stream, and its calls may block.
/// Every call passes through; the client refuses bodies that only the close delimits
/// ([`StreamEnd::NeverReported`], see the [stack profiles](self#stack-profiles)).
#[derive(Debug, Default)]
pub struct AtModem<S>(pub S);

/// The [`Transport`] of a profile that wraps an embedded-nal stack: every call goes to the
/// stack, but for the profile's own end-of-stream rule and its `receive` (given as a closure
/// over the stack's result). One definition, so the profiles differ only where their stacks do.
macro_rules! profile_transport {
    ($profile:ident, $end:expr, $receive:expr) => {
        impl<S: TcpClientStack> Transport for $profile<S> {
            type Connection = S::TcpSocket;
            type Error = S::Error;
            const STREAM_END: StreamEnd = $end;

            fn open(&mut self) -> Result<Self::Connection, Self::Error> {
                self.0.socket()
            }

            fn connect(
                &mut self,
                connection: &mut Self::Connection,
                remote: SocketAddr,
            ) -> nb::Result<(), Self::Error> {
                self.0.connect(connection, remote)
            }

            fn send(
                &mut self,
                connection: &mut Self::Connection,
                data: &[u8],
            ) -> nb::Result<usize, Self::Error> {
                self.0.send(connection, data)
            }

            fn receive(
                &mut self,
                connection: &mut Self::Connection,
                buf: &mut [u8],
            ) -> nb::Result<usize, Self::Error> {
                let filled = buf.len();
                let received = self.0.receive(connection, buf);
                $receive(received, filled)
            }

            fn close(&mut self, connection: Self::Connection) {
                // The exchange is finished or abandoned: a failure to close changes nothing
                // for it.
                let _ = self.0.close(connection);
            }
        }
    };
}

profile_transport!(W5500, StreamEnd::LosesUnread, |received, room: usize| match received {
    Ok(0) if room > 0 => Err(nb::Error::WouldBlock),
    other => other,
});
profile_transport!(AtModem, StreamEnd::NeverReported, |received, _room: usize| received);

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
        let mut read = || match TcpClientStack::receive(&mut stack, &mut (), &mut buf) {
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
