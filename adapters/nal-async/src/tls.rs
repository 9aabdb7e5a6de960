//! HTTPS: [`Tls`], a [`Transport`] that runs TLS 1.3 (embedded-tls, async) over a [`Tcp`]
//! connection, the server's certificate checked against a pinned CA (feature `tls`).
//!
//! Every exchange of a client that is given this transport, the refresh included, goes through
//! the TLS connection: no byte of a token leaves the device in clear. A client whose
//! [`ClientConfig::https`](crate::ClientConfig::https) is set refuses any other transport
//! ([`Error::InsecureTransport`](crate::Error::InsecureTransport)), so a wiring mistake cannot
//! send a token in clear either.
//!
//! # Verification
//!
//! The server's chain must lead to the pinned CA certificate (DER), and its name (the
//! [`Endpoint::name`], a DNS name or, through the certificate's common name, an IP address)
//! must match. Signatures: ECDSA P-256 (embedded-tls's `rustpki` verifier; P-384, Ed25519 and
//! RSA are its further features). The validity period is not checked: a device without a wall
//! clock cannot (embedded-tls's `NoClock`).
//!
//! # Buffers
//!
//! Each connection takes [`Tls::scratch_len`](Transport::scratch_len) bytes of the caller's
//! buffer for its record buffers: `read` bytes (a whole TLS record: 16,640 for any server;
//! less only for a server known to send smaller records) and `write` bytes (at least the
//! request plus 128 bytes of record overhead, and large enough for the ClientHello).

use core::cell::RefCell;
use core::fmt;

use embedded_io_async::{ErrorKind, Read, Write};
use embedded_nal_async::{Dns, TcpConnect};
pub use embedded_tls::TlsError;
use embedded_tls::pki::CertVerifier;
use embedded_tls::{
    Aes128GcmSha256, Certificate, CryptoProvider, NoClock, TlsConfig, TlsConnection, TlsContext,
};
use rand_core::{CryptoRng, RngCore, SeedableRng};

use crate::config::Endpoint;
use crate::transport::{Tcp, TcpConnection, TcpError, Transport};

/// The read record buffer that fits any TLS record: 16 KiB of plaintext plus 256 bytes.
pub const MAX_RECORD: usize = 16_640;

/// Bytes of the server's certificate the verifier keeps between the certificate and its
/// signature check.
const CERT_SIZE: usize = 2048;

/// TLS 1.3 over a [`Tcp`] transport, verifying servers against one pinned CA.
///
/// `R` is the random generator each handshake's keys come from: a cryptographic one, seeded
/// from the device's hardware RNG (each connection gets its own, seeded from this one).
pub struct Tls<'s, T, D, R> {
    tcp: Tcp<'s, T, D>,
    ca: &'s [u8],
    rng: RefCell<R>,
    read: usize,
    write: usize,
}

impl<T, D, R> fmt::Debug for Tls<'_, T, D, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca_len", &self.ca.len())
            .field("read", &self.read)
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

impl<'s, T, D, R> Tls<'s, T, D, R> {
    /// TLS over `tcp`, trusting the CA certificate `ca_der` (DER), with record buffers of
    /// `read` and `write` bytes ([`MAX_RECORD`] and 4,096 suit most servers and requests).
    #[must_use]
    pub const fn new(
        tcp: Tcp<'s, T, D>,
        ca_der: &'s [u8],
        rng: R,
        read: usize,
        write: usize,
    ) -> Self {
        Self { tcp, ca: ca_der, rng: RefCell::new(rng), read, write }
    }
}

/// Why a [`Tls`] transport failed.
#[derive(Debug, Clone, Copy)]
pub enum TlsTransportError<E> {
    /// The TCP side (name lookup, connect).
    Tcp(TcpError<E>),
    /// The handshake (a certificate that does not verify is
    /// [`TlsError::InvalidCertificate`]) or a record.
    Tls(TlsError),
}

impl<E: embedded_io::Error> embedded_io::Error for TlsTransportError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Tcp(e) => e.kind(),
            Self::Tls(TlsError::Io(kind)) => *kind,
            Self::Tls(TlsError::ConnectionClosed) => ErrorKind::ConnectionAborted,
            Self::Tls(_) => ErrorKind::InvalidData,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for TlsTransportError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(e) => write!(f, "{e}"),
            Self::Tls(e) => write!(f, "TLS: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for TlsTransportError<E> {}

/// An open TLS connection.
pub struct TlsStream<'c, C: Read + Write> {
    inner: TlsConnection<'c, TcpConnection<C>, Aes128GcmSha256>,
}

impl<C: Read + Write> fmt::Debug for TlsStream<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsStream")
    }
}

impl<C: Read + Write> embedded_io_async::ErrorType for TlsStream<'_, C> {
    type Error = TlsTransportError<C::Error>;
}

impl<C: Read + Write> Read for TlsStream<'_, C> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        match self.inner.read(buf).await {
            // The server's close_notify, or its TCP close: the end of the stream.
            Err(TlsError::ConnectionClosed) => Ok(0),
            other => other.map_err(TlsTransportError::Tls),
        }
    }
}

impl<C: Read + Write> Write for TlsStream<'_, C> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.inner.write(buf).await.map_err(TlsTransportError::Tls)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush().await.map_err(TlsTransportError::Tls)
    }
}

/// The handshake's crypto: the connection's own generator and the pinned-CA verifier.
struct Pinned<'v, R> {
    rng: R,
    verifier: CertVerifier<'v, Aes128GcmSha256, NoClock, CERT_SIZE>,
}

impl<R: RngCore + CryptoRng> CryptoProvider for Pinned<'_, R> {
    type CipherSuite = Aes128GcmSha256;
    type Signature = &'static [u8];

    fn rng(&mut self) -> impl embedded_tls::CryptoRngCore {
        &mut self.rng
    }

    fn verifier(
        &mut self,
    ) -> Result<&mut impl embedded_tls::TlsVerifier<Self::CipherSuite>, TlsError> {
        Ok(&mut self.verifier)
    }
}

impl<T, D, R> Transport for Tls<'_, T, D, R>
where
    T: TcpConnect,
    D: Dns,
    R: RngCore + CryptoRng + SeedableRng,
{
    type Error = TlsTransportError<T::Error>;
    type Connection<'c>
        = TlsStream<'c, T::Connection<'c>>
    where
        Self: 'c;

    const ENCRYPTED: bool = true;

    fn scratch_len(&self) -> usize {
        self.read + self.write
    }

    async fn connect<'c>(
        &'c self,
        endpoint: &Endpoint<'_>,
        scratch: &'c mut [u8],
    ) -> Result<Self::Connection<'c>, Self::Error> {
        // A generator of its own for this handshake, seeded from the transport's: the borrow
        // ends here, before any await.
        let rng = R::from_rng(&mut *self.rng.borrow_mut())
            .map_err(|_| TlsTransportError::Tls(TlsError::InternalError))?;
        let tcp = self.tcp.connect(endpoint, &mut []).await.map_err(TlsTransportError::Tcp)?;
        let (read, write) = scratch.split_at_mut(self.read.min(scratch.len()));
        let mut inner = TlsConnection::new(tcp, read, write);
        let config = TlsConfig::new().with_server_name(endpoint.name);
        let verifier = CertVerifier::new(Certificate::X509(self.ca));
        let context = TlsContext::new(&config, Pinned { rng, verifier });
        inner.open(context).await.map_err(TlsTransportError::Tls)?;
        Ok(TlsStream { inner })
    }
}
