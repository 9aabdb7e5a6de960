//! The storms: many requests across several access-token lifetimes through one client, and the
//! numbers the verdict reads. Bounded in time and in requests.

use core::time::Duration as StdDuration;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::thread;
use std::time::Instant as StdInstant;

use reauth_core::oauth::RefreshParams;
use reauth_core::{Config, Duration, Instant, RequestId};
use reauth_nal::{ClientConfig, Endpoint, Event, NoStore, OAuth2, Request, Timeouts};
use reauth_ureq::{Client, ClientAssertionKey, ClientBuilder};

use crate::flow::{self, Method};
use crate::servers::{CLIENT_KEY_ID, Counts, Server};

/// Requests per thread at most, whatever the time (the loop's count bound).
pub(crate) const MAX_REQUESTS_PER_THREAD: u64 = 50_000;

/// What one storm did, from both sides.
#[derive(Debug, Default)]
pub(crate) struct Storm {
    pub(crate) requests: u64,
    pub(crate) failed: u64,
    /// The first few failures (statuses and error messages, which hold no token).
    pub(crate) examples: Vec<String>,
    /// Refreshes the client installed (generations it moved on).
    pub(crate) episodes: u64,
    /// Refresh attempts that failed, each followed by a backoff (reauth-ureq's count).
    pub(crate) refreshes_failed: u64,
    /// Requests replayed at once after a 401/403 for an older token (reauth-ureq's count;
    /// reauth-nal keeps none).
    pub(crate) stale_replays: Option<u64>,
    /// Token-endpoint refresh calls, refresh tokens presented twice, and so on (the server's).
    pub(crate) refresh_calls: u64,
    pub(crate) refresh_successes: u64,
    pub(crate) reuse: u64,
    pub(crate) by_method: u64,
    pub(crate) api_401: u64,
    pub(crate) api_403: u64,
    pub(crate) seconds: f64,
}

impl Storm {
    pub(crate) fn server_side(&mut self, server: &Server, before: &Counts, method: Method) {
        let after = server.counts();
        self.refresh_calls = after.since(before, "refresh_calls");
        self.refresh_successes = after.since(before, "refresh_successes");
        self.reuse = after.since(before, "reuse");
        self.by_method = after.since(before, method.refresh_counter());
        self.api_401 = after.since(before, "userinfo_401") + after.since(before, "api_401");
        self.api_403 = after.since(before, "userinfo_other") + after.since(before, "api_403");
    }

    /// One line for the report.
    pub(crate) fn summary(&self, what: &str) -> String {
        format!(
            "interop storm: {what}: {} requests in {:.1} s, {} failed, {} refresh calls, {} \
             episodes, {} reuse, {} refresh failures (backoffs), {} stale replays, server \
             answered {} x 401 and {} x 403",
            self.requests,
            self.seconds,
            self.failed,
            self.refresh_calls,
            self.episodes,
            self.reuse,
            self.refreshes_failed,
            self.stale_replays.map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
            self.api_401,
            self.api_403
        )
    }

    /// The verdict: 0 failed, 0 reuse, refresh calls = episodes (>= `min_episodes`), every
    /// refresh authenticated the way the client is registered.
    pub(crate) fn check(&self, what: &str, min_episodes: u64) {
        let line = self.summary(what);
        assert_eq!(self.failed, 0, "{line}\n  e.g. {:?}", self.examples);
        assert_eq!(self.reuse, 0, "{line}");
        assert_eq!(self.refresh_calls, self.episodes, "{line}");
        assert_eq!(self.refresh_successes, self.episodes, "{line}");
        assert_eq!(self.by_method, self.refresh_calls, "{line}: refreshes not all by the method");
        assert!(self.episodes >= min_episodes, "{line}: fewer than {min_episodes} episodes");
        assert!(self.requests > self.episodes, "{line}");
    }
}

/// A reauth-ureq client for `method`'s client at `server`, for `threads` threads (one idle
/// connection kept for each, as the builder's docs advise), logged in with the code flow's
/// token response.
pub(crate) fn ureq_client(server: &Server, method: Method, threads: usize) -> Client {
    let client = client_builder(server, method, threads).build().unwrap();
    client.login_from_token_response(&flow::login(server, method)).unwrap();
    client
}

/// The builder of [`ureq_client`]: token endpoint, client authentication, the test CA.
pub(crate) fn client_builder(server: &Server, method: Method, threads: usize) -> ClientBuilder {
    let mut builder = Client::builder()
        .max_idle_connections(threads)
        .token_url(format!("{}{}", server.base(), server.kind.token_path()))
        .client_id(method.client_id())
        .root_certificates_pem(&server.pki.ca_pem);
    if let Some(secret) = method.secret() {
        builder = builder.client_secret(secret).client_auth(method.client_auth());
    }
    if method == Method::PrivateKeyJwt {
        let pem = std::fs::read(&server.pki.client_key_pem).unwrap();
        let key = ClientAssertionKey::es256_pem(&pem).unwrap().key_id(CLIENT_KEY_ID);
        builder = builder.private_key_jwt(key);
    }
    builder
}

/// `threads` threads GET the protected resource through one reauth-ureq client for
/// `duration`.
pub(crate) fn ureq_storm(
    server: &Server,
    method: Method,
    threads: usize,
    duration: StdDuration,
) -> Storm {
    let client = ureq_client(server, method, threads);
    let url = format!("{}{}", server.base(), server.kind.api_path());
    let before = server.counts();
    let generation = client.generation().0;
    let stats = client.stats();
    let started = StdInstant::now();
    let deadline = started + duration;
    let examples = Mutex::new(Vec::new());
    let (requests, failed) = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let (mut requests, mut failed) = (0u64, 0u64);
                    while StdInstant::now() < deadline && requests < MAX_REQUESTS_PER_THREAD {
                        requests += 1;
                        let outcome =
                            client.get(&url).map_err(|e| e.to_string()).and_then(|mut response| {
                                let status = response.status();
                                // Read to the end, so that the connection goes back to the pool.
                                let mut sink = Vec::new();
                                let _ = response.body_mut().as_reader().read_to_end(&mut sink);
                                if status.is_success() {
                                    Ok(())
                                } else {
                                    Err(format!("status {status}"))
                                }
                            });
                        if let Err(e) = outcome {
                            failed += 1;
                            let mut examples = examples.lock().unwrap();
                            if examples.len() < 5 {
                                examples.push(e);
                            }
                        }
                    }
                    (requests, failed)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    let after = client.stats();
    let mut storm = Storm {
        requests,
        failed,
        examples: examples.into_inner().unwrap(),
        episodes: u64::from(client.generation().0 - generation),
        refreshes_failed: after.refreshes_failed - stats.refreshes_failed,
        stale_replays: Some(after.stale_replays - stats.stale_replays),
        seconds: started.elapsed().as_secs_f64(),
        ..Storm::default()
    };
    storm.server_side(server, &before, method);
    storm
}

/// Request slots of the reauth-nal client, as on a device.
const SLOTS: usize = 8;

/// reauth-nal on std-embedded-nal, the way firmware drives it: one thread, one poll loop,
/// every free slot kept busy, for `duration`.
pub(crate) fn nal_storm(server: &Server, method: Method, duration: StdDuration) -> Storm {
    assert_ne!(method, Method::PrivateKeyJwt, "reauth-nal has no private_key_jwt");
    let answer = flow::login(server, method);
    let host = server.http_addr().to_string();
    let endpoint = Endpoint { addr: server.http_addr(), host: &host };
    let config = ClientConfig {
        coordinator: Config {
            refresh_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(8),
            ..Config::DEFAULT
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(4),
            idle: Duration::from_secs(4),
            total: Duration::from_secs(8),
            ..Timeouts::DEFAULT
        },
        ..ClientConfig::new(endpoint, endpoint)
    };
    let exchange = oauth2(server, method);
    // 4 KiB for an answer: oidc-provider's refresh answer carries an ID token.
    let mut client: reauth_nal::Client<
        '_,
        std_embedded_nal::Stack,
        NoStore,
        OAuth2<'_>,
        SLOTS,
        1024,
        4096,
        512,
        256,
    > = reauth_nal::Client::new(config, exchange, NoStore);
    let mut net = std_embedded_nal::Stack;
    let clock = StdInstant::now();
    let now = || Instant::from_millis(u64::try_from(clock.elapsed().as_millis()).unwrap());
    client.login_from_token_response(now(), &answer).unwrap();
    let before = server.counts();
    let started = StdInstant::now();
    let deadline = started + duration;
    // Open requests drain within their own timeouts after the deadline.
    let hard_stop = deadline + StdDuration::from_secs(20);
    let mut storm = Storm::default();
    let mut open: HashMap<RequestId, ()> = HashMap::new();
    let path = server.kind.api_path();
    let mut polls = 0u64;
    loop {
        let submitting =
            StdInstant::now() < deadline && storm.requests < MAX_REQUESTS_PER_THREAD * SLOTS as u64;
        if (!submitting && open.is_empty()) || StdInstant::now() >= hard_stop {
            break;
        }
        while submitting && client.free_slots() > 0 {
            match client.submit(now(), &Request::get(path)) {
                Ok(id) => {
                    storm.requests += 1;
                    open.insert(id, ());
                }
                Err(e) => {
                    storm.requests += 1;
                    storm.fail(format!("submit: {e:?}"));
                    break;
                }
            }
        }
        let mut progressed = false;
        while let Some(event) = client.poll(&mut net, now()) {
            polls += 1;
            progressed = true;
            match event {
                Event::Response { id, status } => {
                    client.release(id);
                    open.remove(&id);
                    if !(200..300).contains(&status) {
                        storm.fail(format!("status {status}"));
                    }
                }
                Event::Failed { id, error } => {
                    open.remove(&id);
                    storm.fail(error.to_string());
                }
                Event::Refreshed { .. } => storm.episodes += 1,
                Event::RefreshFailed { .. } => storm.refreshes_failed += 1,
                _ => {}
            }
        }
        if !progressed {
            thread::sleep(StdDuration::from_micros(300));
        }
    }
    storm.failed += open.len() as u64;
    storm.seconds = started.elapsed().as_secs_f64();
    assert!(polls > 0);
    storm.server_side(server, &before, method);
    storm
}

/// reauth-nal's (and reauth-nal-async's) refresh exchange with `server` as `method`'s client.
pub(crate) fn oauth2(server: &Server, method: Method) -> OAuth2<'static> {
    OAuth2 {
        path: server.kind.token_path(),
        params: RefreshParams {
            client_id: Some(method.client_id()),
            client_secret: method.secret(),
            scope: None,
        },
        auth: method.client_auth(),
    }
}

impl Storm {
    /// Counts a failed request; `what` is kept while there are fewer than five examples.
    pub(crate) fn fail(&mut self, what: String) {
        self.failed += 1;
        self.example(what);
    }

    /// Keeps `what` among the examples while there are fewer than five.
    fn example(&mut self, what: String) {
        if self.examples.len() < 5 {
            self.examples.push(what);
        }
    }

    /// Adds `part`'s requests and failures (one task's share of the storm), keeping its
    /// examples while there is room.
    pub(crate) fn add(&mut self, part: Self) {
        self.requests += part.requests;
        self.failed += part.failed;
        for what in part.examples {
            self.example(what);
        }
    }
}
