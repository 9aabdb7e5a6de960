//! One `Client::poll` against a hostile server, for `adapters/nal/benches/poll_work.sh`, which
//! counts its instructions with callgrind: the work of one poll is bounded whatever the server
//! sends.
//!
//! `cargo run --release -p reauth-nal --example hostile_poll SCENARIO K` submits one GET over an
//! in-memory stack whose server answers with SCENARIO's bytes, polls K - 1 times, then makes the
//! K-th poll inside [`measured_poll`] (the function callgrind collects), and prints what the
//! client reported and how many bytes the server had delivered. The response buffer is 16 KiB,
//! the size at which the issue measured 1.06 s for one poll.

use core::net::SocketAddr;
use std::boxed::Box;

use reauth_core::{Duration, Instant};
use reauth_nal::embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, nb};
use reauth_nal::{Client, ClientConfig, Endpoint, Event, NoStore, OAuth2, Request};

/// What the server sends once the request is in, and how.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// `100 Continue` heads, endlessly, as many as fit each receive.
    ContinueFlood,
    /// A header line that never ends, one byte per receive.
    HeadTrickle,
    /// A chunked body of one-byte chunks with long chunk extensions, endlessly.
    ChunkFlood,
    /// A chunked body's trailer section that never ends.
    TrailerFlood,
    /// A 16,000-byte `Content-Length` body, one byte per receive.
    BodyTrickle,
}

impl Scenario {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "continue-flood" => Self::ContinueFlood,
            "head-trickle" => Self::HeadTrickle,
            "chunk-flood" => Self::ChunkFlood,
            "trailer-flood" => Self::TrailerFlood,
            "body-trickle" => Self::BodyTrickle,
            _ => return None,
        })
    }

    /// The first bytes of the answer, then the bytes repeated forever, and the most bytes
    /// per receive (0: as many as the buffer takes).
    fn wire(self) -> (Vec<u8>, Vec<u8>, usize) {
        match self {
            Self::ContinueFlood => (Vec::new(), b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), 0),
            Self::HeadTrickle => (b"HTTP/1.1 200 OK\r\nX-Slow: ".to_vec(), b"a".to_vec(), 1),
            Self::ChunkFlood => {
                let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                let chunk = format!("1;{}\r\nx\r\n", "e".repeat(60)).into_bytes();
                (head, chunk, 0)
            }
            Self::TrailerFlood => {
                let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
                (head, b"X-Trailer: t\r\n".to_vec(), 0)
            }
            Self::BodyTrickle => {
                (b"HTTP/1.1 200 OK\r\nContent-Length: 16000\r\n\r\n".to_vec(), b"b".to_vec(), 1)
            }
        }
    }
}

/// A one-connection stack whose server reads the request and answers with the scenario.
struct Hostile {
    first: Vec<u8>,
    endless: Vec<u8>,
    piece: usize,
    /// Bytes of the answer delivered so far.
    delivered: usize,
    /// The request's head has arrived.
    asked: bool,
    request: Vec<u8>,
}

#[derive(Debug)]
struct Never;

impl TcpError for Never {
    fn kind(&self) -> TcpErrorKind {
        TcpErrorKind::Other
    }
}

impl TcpClientStack for Hostile {
    type TcpSocket = ();
    type Error = Never;

    fn socket(&mut self) -> Result<(), Never> {
        Ok(())
    }

    fn connect(&mut self, (): &mut (), _: SocketAddr) -> nb::Result<(), Never> {
        Ok(())
    }

    fn send(&mut self, (): &mut (), data: &[u8]) -> nb::Result<usize, Never> {
        self.request.extend_from_slice(data);
        self.asked |= self.request.windows(4).any(|w| w == b"\r\n\r\n");
        Ok(data.len())
    }

    fn receive(&mut self, (): &mut (), buf: &mut [u8]) -> nb::Result<usize, Never> {
        if !self.asked {
            return Err(nb::Error::WouldBlock);
        }
        let limit = if self.piece == 0 { buf.len() } else { self.piece.min(buf.len()) };
        for (i, byte) in buf[..limit].iter_mut().enumerate() {
            let at = self.delivered + i;
            *byte = match self.first.get(at) {
                Some(&b) => b,
                None => self.endless[(at - self.first.len()) % self.endless.len()],
            };
        }
        self.delivered += limit;
        Ok(limit)
    }

    fn close(&mut self, (): ()) -> Result<(), Never> {
        Ok(())
    }
}

type HostileClient = Client<'static, Hostile, NoStore, OAuth2<'static>, 1, 512, 16384, 64, 64>;

#[inline(never)]
fn measured_poll(
    client: &mut HostileClient,
    net: &mut Hostile,
    now: Instant,
) -> Option<Event<Never, core::convert::Infallible>> {
    client.poll(net, now)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: hostile_poll continue-flood|head-trickle|chunk-flood|trailer-flood|body-trickle K";
    let scenario = args.next().as_deref().and_then(Scenario::parse).expect(usage);
    let k: u32 = args.next().and_then(|k| k.parse().ok()).expect(usage);
    let (first, endless, piece) = scenario.wire();
    let mut net =
        Hostile { first, endless, piece, delivered: 0, asked: false, request: Vec::new() };
    let endpoint = Endpoint { addr: "192.0.2.1:80".parse().unwrap(), host: "api.example" };
    let mut client: Box<HostileClient> =
        Box::new(Client::new(ClientConfig::new(endpoint, endpoint), OAuth2::default(), NoStore));
    client.login(Instant::ZERO, "at", "rt", Some(Duration::from_secs(3600))).unwrap();
    client.submit(Instant::ZERO, &Request::get("/api/x")).unwrap();
    // The clock stands still: no deadline ends the scenario, only the client's own limits.
    let now = Instant::from_millis(1);
    for _ in 1..k {
        if let Some(event) = client.poll(&mut net, now) {
            println!("{scenario:?}: ended before poll {k}: {event:?}");
            return;
        }
    }
    let event = measured_poll(&mut client, &mut net, now);
    println!("{scenario:?} poll {k}: {event:?}, {} bytes delivered", net.delivered);
}
