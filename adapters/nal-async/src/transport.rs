//! Where connections come from: the [`Transport`] trait, and [`Tcp`], plain TCP over any
//! embedded-nal-async stack ([`TcpConnect`] for connections, [`Dns`] for names). The TLS layer
//! ([`Tls`](crate::tls::Tls), feature `tls`) is another `Transport` over the same stack.

use core::fmt;
use core::future::Future;
use core::net::{IpAddr, SocketAddr};

use embedded_io_async::{ErrorKind, Read, Write};
use embedded_nal_async::{AddrType, Dns, TcpConnect};

use crate::config::Endpoint;

/// Opens connections to an [`Endpoint`] for one exchange each.
///
/// A connection is closed by dropping it. It may borrow `scratch`, a part of the caller's
/// buffer [`scratch_len`](Self::scratch_len) bytes long, for the connection's own state (TLS
/// record buffers); the rest of the buffer holds the HTTP request and response.
pub trait Transport {
    /// Why connecting, reading or writing failed.
    type Error: embedded_io::Error;
    /// An open connection.
    type Connection<'c>: Read<Error = Self::Error> + Write<Error = Self::Error>
    where
        Self: 'c;

    /// True if nothing sent over a connection can be read on the way (TLS). A client whose
    /// [`ClientConfig::https`](crate::ClientConfig::https) is set refuses a transport without it.
    const ENCRYPTED: bool = false;

    /// Bytes of the caller's buffer each connection takes for itself (0 for plain TCP).
    fn scratch_len(&self) -> usize {
        0
    }

    /// Connects to `endpoint` (looking its name up if it has no fixed address).
    ///
    /// # Errors
    /// The name did not resolve, the connection or its handshake failed.
    fn connect<'c>(
        &'c self,
        endpoint: &Endpoint<'_>,
        scratch: &'c mut [u8],
    ) -> impl Future<Output = Result<Self::Connection<'c>, Self::Error>>;
}

/// Plain TCP over an embedded-nal-async stack: `T` connects, `D` looks names up. embassy-net's
/// `TcpClient` and `DnsSocket` are one such pair.
#[derive(Clone, Copy, Debug)]
pub struct Tcp<'s, T, D> {
    /// The stack's TCP client.
    pub tcp: &'s T,
    /// The stack's resolver.
    pub dns: &'s D,
}

impl<'s, T, D> Tcp<'s, T, D> {
    /// Connections from `tcp`, names through `dns`.
    #[must_use]
    pub const fn new(tcp: &'s T, dns: &'s D) -> Self {
        Self { tcp, dns }
    }
}

/// Why a [`Tcp`] transport failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError<E> {
    /// The endpoint's name did not resolve.
    Dns,
    /// The stack's error.
    Io(E),
}

impl<E: embedded_io::Error> embedded_io::Error for TcpError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Dns => ErrorKind::NotFound,
            Self::Io(e) => e.kind(),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for TcpError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns => f.write_str("name lookup failed"),
            Self::Io(e) => write!(f, "network error: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for TcpError<E> {}

/// A [`Tcp`] connection: the stack's, with errors wrapped in [`TcpError`].
pub struct TcpConnection<C>(C);

impl<C> fmt::Debug for TcpConnection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TcpConnection")
    }
}

impl<C: embedded_io_async::ErrorType> embedded_io_async::ErrorType for TcpConnection<C> {
    type Error = TcpError<C::Error>;
}

impl<C: Read> Read for TcpConnection<C> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf).await.map_err(TcpError::Io)
    }
}

impl<C: Write> Write for TcpConnection<C> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).await.map_err(TcpError::Io)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().await.map_err(TcpError::Io)
    }
}

impl<T: TcpConnect, D: Dns> Transport for Tcp<'_, T, D> {
    type Error = TcpError<T::Error>;
    type Connection<'c>
        = TcpConnection<T::Connection<'c>>
    where
        Self: 'c;

    async fn connect<'c>(
        &'c self,
        endpoint: &Endpoint<'_>,
        _scratch: &'c mut [u8],
    ) -> Result<Self::Connection<'c>, Self::Error> {
        let remote = resolve(self.dns, endpoint).await.ok_or(TcpError::Dns)?;
        self.tcp.connect(remote).await.map(TcpConnection).map_err(TcpError::Io)
    }
}

/// The endpoint's socket address: its fixed address, or its name looked up.
pub(crate) async fn resolve<D: Dns>(dns: &D, endpoint: &Endpoint<'_>) -> Option<SocketAddr> {
    let ip: IpAddr = match endpoint.addr {
        Some(ip) => ip,
        None => dns.get_host_by_name(endpoint.name, AddrType::Either).await.ok()?,
    };
    Some(SocketAddr::new(ip, endpoint.port))
}
