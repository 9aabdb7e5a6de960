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
use core::time::Duration as StdDuration;

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{ErrorType, Read, Write};
use embedded_nal_async::TcpConnect;
use reauth_nal_async::Tcp;
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};

use crate::common::{Literal, get_over, logged_in, run, storm_over};

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
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: StdDuration::from_secs(1),
        ..IssuerConfig::default()
    })
    .unwrap();
    run(async {
        let client = logged_in(&issuer, Some(StdDuration::from_secs(1)));
        let results = storm_over(&client, &MODEM, 8, 30, StdDuration::from_millis(60)).await;
        let failed: Vec<_> = results.iter().filter(|r| !matches!(r, Ok(200))).collect();
        assert!(failed.is_empty(), "{failed:?}");
        let counters = issuer.counters();
        let stats = client.stats();
        assert!(stats.refreshes >= 1, "{stats:?}");
        assert_eq!(counters.refresh_calls, stats.refresh_calls);
        assert_eq!(stats.refresh_calls, stats.refreshes, "one call per episode: {stats:?}");
        assert_eq!(counters.reuse_attempts, 0);
        assert!(counters.refreshes_per_access_token_max <= 1, "{counters:?}");
    });
}

/// A storm on an expired token over the modem: one refresh, every task answered.
#[test]
fn a_storm_on_an_expired_token_parks_every_task_behind_one_refresh() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.expire_all_now();
        let results = storm_over(&client, &MODEM, 12, 1, StdDuration::ZERO).await;
        assert!(results.iter().all(|r| matches!(r, Ok(200))), "{results:?}");
        let counters = issuer.counters();
        assert_eq!((counters.refresh_calls, counters.reuse_attempts), (1, 0), "{counters:?}");
    });
}

/// A token endpoint that closes without answering is, to this modem, one that never answers:
/// the response timeout (1.5 s here) ends the attempt, and the retry succeeds. A body cut short
/// by a reset and a malformed answer cost one retry each, as on any stack.
#[test]
fn a_silent_close_a_reset_or_a_malformed_answer_costs_one_retry() {
    for fault in [
        Fault::CloseBeforeAnswer { times: 1 },
        Fault::ResetMidBody { times: 1 },
        Fault::MalformedJson { times: 1 },
    ] {
        let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
        run(async {
            let client = logged_in(&issuer, None);
            issuer.expire_all_now();
            issuer.inject(fault.clone());
            let unreported = UNREPORTED_CLOSES.load(Ordering::Relaxed);
            let result = get_over(&client, &MODEM, "/api/x").await;
            assert!(matches!(result, Ok(200)), "{fault:?}: {result:?}");
            if let Fault::CloseBeforeAnswer { .. } = fault {
                // The attempt really met the silence, and ended by its timeout.
                assert!(UNREPORTED_CLOSES.load(Ordering::Relaxed) > unreported);
            }
            let stats = client.stats();
            assert_eq!((stats.refresh_failures, stats.refreshes), (1, 1), "{fault:?}");
            assert_eq!(issuer.counters().reuse_attempts, 0, "{fault:?}");
        });
    }
}
