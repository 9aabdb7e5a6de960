//! The async client over a stack that behaves like an AT-command cellular modem behind
//! embedded-nal-async (the u-blox crates' way): data comes in small pieces (a `+USORD` reads at
//! most a few hundred bytes), a write takes only part of what it is given, and the end of a
//! stream is never reported: once the server has closed, a read waits for ever. The client must
//! finish every exchange from the HTTP framing alone and learn of a silent server only from its
//! own timeouts. Over the host's loopback TCP (tokio), against the mock issuer.

mod common;

use core::future::pending;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{ErrorType, Read, Write};
use embedded_nal_async::TcpConnect;
use reauth_nal_async::Tcp;
use reauth_testkit::issuer::Fault;

use crate::common::{Literal, scenario};

/// Bytes a read hands over at most.
const READ_PIECE: usize = 61;

/// Bytes a write takes at most.
const WRITE_PIECE: usize = 200;

/// Ends of stream the modem kept to itself (a read that waited for ever instead).
static UNREPORTED_CLOSES: AtomicUsize = AtomicUsize::new(0);

/// Connections with a modem's manners.
struct Modem;

/// One socket of the modem.
struct ModemSocket(FromTokio<tokio::net::TcpStream>);

impl TcpConnect for Modem {
    type Error = std::io::Error;
    type Connection<'a> = ModemSocket;

    async fn connect(&self, remote: SocketAddr) -> Result<ModemSocket, std::io::Error> {
        let stream = tokio::net::TcpStream::connect(remote).await?;
        Ok(ModemSocket(FromTokio::new(stream)))
    }
}

impl ErrorType for ModemSocket {
    type Error = std::io::Error;
}

impl Read for ModemSocket {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        let len = buf.len().min(READ_PIECE);
        let n = self.0.read(&mut buf[..len]).await?;
        if n == 0 && len > 0 {
            // The modem never says the peer closed: the caller waits until its own deadline.
            UNREPORTED_CLOSES.fetch_add(1, Ordering::Relaxed);
            return pending().await;
        }
        Ok(n)
    }
}

impl Write for ModemSocket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, std::io::Error> {
        let len = buf.len().min(WRITE_PIECE);
        self.0.write(&buf[..len]).await
    }

    async fn flush(&mut self) -> Result<(), std::io::Error> {
        self.0.flush().await
    }
}

static MODEM: Tcp<'static, Modem, Literal> = Tcp::new(&Modem, &Literal);

#[test]
fn many_tasks_across_expiries_get_one_refresh_each_and_no_failure() {
    scenario::many_tasks_across_expiries(&MODEM);
}

#[test]
fn a_storm_on_an_expired_token_parks_every_task_behind_one_refresh() {
    scenario::storm_on_an_expired_token(&MODEM);
}

/// A token endpoint that closes without answering is, to this modem, one that never answers:
/// the response timeout (1.5 s here) ends the attempt, and the retry succeeds. A body cut short
/// by a reset and a malformed answer cost one retry each, as on any stack.
#[test]
fn a_silent_close_a_reset_or_a_malformed_answer_costs_one_retry() {
    let unreported = UNREPORTED_CLOSES.load(Ordering::Relaxed);
    scenario::one_retry_after(&MODEM, Fault::CloseBeforeAnswer { times: 1 });
    // The attempt really met the silence, and ended by its timeout.
    assert!(UNREPORTED_CLOSES.load(Ordering::Relaxed) > unreported);
    scenario::one_retry_after(&MODEM, Fault::ResetMidBody { times: 1 });
    scenario::one_retry_after(&MODEM, Fault::MalformedJson { times: 1 });
}
