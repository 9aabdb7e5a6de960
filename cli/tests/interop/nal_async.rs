//! reauth-nal-async over HTTPS (embedded-tls, TLS 1.3, the test CA pinned) on tokio's loopback
//! TCP: many tasks share one client, as tasks on an embassy executor would.

use core::future::Future;
use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration as StdDuration;
use std::rc::Rc;

use embedded_io_adapters::tokio_1::FromTokio;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use reauth_core::{Duration, Instant};
use reauth_nal_async::embassy_sync::blocking_mutex::raw::NoopRawMutex;
use reauth_nal_async::embedded_nal_async::{AddrType, Dns, TcpConnect};
use reauth_nal_async::tls::{MAX_RECORD, Tls};
use reauth_nal_async::{Client, ClientConfig, Clock, Endpoint, NoStore, OAuth2, Request, Tcp};

use crate::flow::{self, Method};
use crate::servers::Server;
use crate::storm::{self, MAX_REQUESTS_PER_THREAD, Storm};

/// tokio's clock, in milliseconds since the storm started.
#[derive(Clone, Copy)]
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> {
        // `Instant::MAX` ("never") is a day away, far beyond any storm.
        let at = at.millis().min(86_400_000);
        tokio::time::sleep_until(self.0 + StdDuration::from_millis(at))
    }
}

/// The host's TCP through tokio.
struct Loopback;

impl TcpConnect for Loopback {
    type Error = std::io::Error;
    type Connection<'a> = FromTokio<tokio::net::TcpStream>;

    async fn connect<'a>(
        &'a self,
        remote: core::net::SocketAddr,
    ) -> Result<Self::Connection<'a>, Self::Error> {
        tokio::net::TcpStream::connect(remote).await.map(FromTokio::new)
    }
}

/// The endpoint has a fixed address: no name is looked up.
struct NoLookup;

impl Dns for NoLookup {
    type Error = ();

    async fn get_host_by_name(&self, _: &str, _: AddrType) -> Result<IpAddr, ()> {
        Err(())
    }

    async fn get_host_by_address(&self, _: IpAddr, _: &mut [u8]) -> Result<usize, ()> {
        Err(())
    }
}

/// Requests open at once.
const N: usize = 16;
type AsyncClient<'a> = Client<'a, NoopRawMutex, NoStore, OAuth2<'a>, TokioClock, N, 512, 256>;

/// Tasks sharing the client (as many as it has request slots).
pub(crate) const TASKS: usize = N;

/// [`TASKS`] tasks send GETs through one reauth-nal-async client over HTTPS for `duration`.
pub(crate) fn storm(server: &Server, method: Method, duration: StdDuration) -> Storm {
    assert_ne!(method, Method::PrivateKeyJwt, "reauth-nal-async has no private_key_jwt");
    let answer: serde_json::Value = serde_json::from_slice(&flow::login(server, method)).unwrap();
    let host = format!("localhost:{}", server.https_addr().port());
    let endpoint = Endpoint {
        name: "localhost",
        port: server.https_addr().port(),
        addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        host: &host,
    };
    let mut config = ClientConfig::new(endpoint, endpoint);
    config.https = true;
    config.coordinator.refresh_timeout = Duration::from_secs(5);
    config.coordinator.wait_timeout = Duration::from_secs(8);
    let exchange = storm::oauth2(server, method);
    let path = server.kind.api_path();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    let before = server.counts();
    let started = std::time::Instant::now();
    let (mut storm, stats) = local.block_on(&runtime, async {
        let clock = TokioClock(tokio::time::Instant::now());
        let client: Rc<AsyncClient<'_>> = Rc::new(Client::new(config, exchange, NoStore, clock));
        let lifetime = answer["expires_in"].as_u64().map(Duration::from_secs);
        client
            .login(
                answer["access_token"].as_str().unwrap(),
                answer["refresh_token"].as_str().unwrap(),
                lifetime,
            )
            .unwrap();
        let net = Tls::new(
            Tcp::new(&Loopback, &NoLookup),
            &server.pki.ca_der,
            ChaCha20Rng::seed_from_u64(11),
            MAX_RECORD,
            4096,
        );
        let deadline = tokio::time::Instant::now() + duration;
        let tasks: [_; TASKS] =
            // Boxed: each holds a TLS connection's state, too big for the stack in debug builds.
            core::array::from_fn(|_| Box::pin(task(client.clone(), &net, path, deadline)));
        let mut storm = Storm::default();
        for part in embassy_futures::join::join_array(tasks).await {
            storm.add(part);
        }
        (storm, client.stats())
    });
    storm.episodes = stats.refreshes;
    storm.refreshes_failed = stats.refresh_failures;
    storm.stale_replays = Some(stats.replays);
    storm.seconds = started.elapsed().as_secs_f64();
    storm.server_side(server, &before, method);
    storm
}

/// One task: GETs `path` one after another until `deadline`; its requests, failures, examples.
async fn task(
    client: Rc<AsyncClient<'_>>,
    net: &Tls<'_, Loopback, NoLookup, ChaCha20Rng>,
    path: &str,
    deadline: tokio::time::Instant,
) -> Storm {
    let mut buf = vec![0u8; MAX_RECORD + 4096 + 4096];
    let mut storm = Storm::default();
    while tokio::time::Instant::now() < deadline && storm.requests < MAX_REQUESTS_PER_THREAD {
        storm.requests += 1;
        let problem = match client.send(net, &Request::get(path), &mut buf).await {
            Ok(response) if (200..300).contains(&response.status()) => None,
            Ok(response) => Some(format!("status {}", response.status())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(problem) = problem {
            storm.fail(problem);
        }
    }
    storm
}
