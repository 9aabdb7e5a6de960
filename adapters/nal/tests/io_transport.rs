//! The layering story of `reauth_nal::transport`, tested end to end: a [`Transport`] written
//! outside the crate over an `embedded_io` stream that, like a TLS writer, holds what it is given
//! until it is flushed, run against the real mock issuer. It also shows that such an
//! implementation coexists with the blanket one for `TcpClientStack`.

use core::net::SocketAddr;
use core::time::Duration as StdDuration;
use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Instant as StdInstant;

use embedded_io::{ErrorType, Read, ReadReady, Write, WriteReady};
use reauth_core::{Duration, Instant};
use reauth_nal::embedded_nal::nb;
use reauth_nal::transport::{IoError, io_flush, io_read, io_write};
use reauth_nal::{Client, ClientConfig, Endpoint, Event, NoStore, OAuth2, Request, Transport};
use reauth_testkit::issuer::{IssuerConfig, MockIssuer};

/// A byte stream that buffers writes until `flush`, the way a TLS session buffers a record.
struct Sealed {
    stream: TcpStream,
    pending: Vec<u8>,
    flushes: usize,
}

impl ErrorType for Sealed {
    type Error = io::Error;
}

impl Read for Sealed {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, io::Error> {
        self.stream.read(buf)
    }
}

impl ReadReady for Sealed {
    fn read_ready(&mut self) -> Result<bool, io::Error> {
        self.stream.set_nonblocking(true)?;
        let ready = match self.stream.peek(&mut [0u8; 1]) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        };
        self.stream.set_nonblocking(false)?;
        ready
    }
}

impl Write for Sealed {
    fn write(&mut self, buf: &[u8]) -> Result<usize, io::Error> {
        // Short writes, to exercise the client's resumption.
        let n = buf.len().min(100);
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), io::Error> {
        self.flushes += 1;
        self.stream.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }
}

impl WriteReady for Sealed {
    fn write_ready(&mut self) -> Result<bool, io::Error> {
        Ok(true)
    }
}

/// Opens `Sealed` streams: the firmware's own transport type.
#[derive(Default)]
struct SealedNet {
    flushes: usize,
}

impl Transport for SealedNet {
    type Connection = Option<Sealed>;
    type Error = IoError<io::Error>;

    fn open(&mut self) -> Result<Self::Connection, Self::Error> {
        Ok(None)
    }

    fn connect(
        &mut self,
        connection: &mut Self::Connection,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error> {
        let stream = TcpStream::connect(remote).map_err(|e| nb::Error::Other(IoError(e)))?;
        *connection = Some(Sealed { stream, pending: Vec::new(), flushes: 0 });
        Ok(())
    }

    fn send(
        &mut self,
        connection: &mut Self::Connection,
        data: &[u8],
    ) -> nb::Result<usize, Self::Error> {
        io_write(connection.as_mut().ok_or(nb::Error::WouldBlock)?, data)
    }

    fn flush(&mut self, connection: &mut Self::Connection) -> nb::Result<(), Self::Error> {
        io_flush(connection.as_mut().ok_or(nb::Error::WouldBlock)?)
    }

    fn receive(
        &mut self,
        connection: &mut Self::Connection,
        buf: &mut [u8],
    ) -> nb::Result<usize, Self::Error> {
        io_read(connection.as_mut().ok_or(nb::Error::WouldBlock)?, buf)
    }

    fn close(&mut self, connection: Self::Connection) {
        self.flushes += connection.map_or(0, |c| c.flushes);
    }
}

#[test]
fn a_buffering_stream_layered_under_the_client_refreshes_once_and_replays() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let host = issuer.addr().to_string();
    let endpoint = Endpoint { addr: issuer.addr(), host: &host };
    let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
    let mut client: Client<'_, SealedNet, NoStore, OAuth2<'_>, 3, 1024, 2048, 256, 256> =
        Client::new(ClientConfig::new(endpoint, endpoint), exchange, NoStore);
    let tokens = issuer.login();
    let lifetime = Duration::from_secs(tokens.expires_in.as_secs());
    client
        .login(Instant::ZERO, &tokens.access_token, &tokens.refresh_token, Some(lifetime))
        .unwrap();
    issuer.expire_all_now();
    let mut net = SealedNet::default();
    for _ in 0..3 {
        let request = Request {
            headers: &[("Content-Type", "text/plain")],
            ..Request::post("/api/upload", &[b'x'; 300])
        };
        client.submit(Instant::ZERO, &request).unwrap();
    }
    let start = StdInstant::now();
    let mut answered = 0;
    for _ in 0..1_000_000 {
        if answered == 3 {
            break;
        }
        assert!(start.elapsed() < StdDuration::from_secs(10), "timed out");
        let now = Instant::from_millis(start.elapsed().as_millis() as u64);
        let mut any = false;
        while let Some(event) = client.poll(&mut net, now) {
            any = true;
            match event {
                Event::Response { id, status } => {
                    let body =
                        String::from_utf8_lossy(client.response(id).unwrap().body()).into_owned();
                    assert_eq!(status, 200, "{body}");
                    assert!(body.contains("\"received\":300"), "{body}");
                    client.release(id);
                    answered += 1;
                }
                Event::Failed { error, .. } => panic!("{error:?}"),
                _ => {}
            }
        }
        if !any {
            std::thread::sleep(StdDuration::from_millis(1));
        }
    }
    assert_eq!(answered, 3);
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.api_unauthorized, counters.api_ok), (1, 3, 3));
    assert_eq!(net.flushes, 7, "one flush per exchange: 3 requests, 1 refresh, 3 replays");
}
