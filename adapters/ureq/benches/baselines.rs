//! Baselines: reauth-ureq against plain ureq (the floor) and against the client a Rust developer
//! writes without reauth (the naive client), in one run on one loopback mock issuer.
//!
//! # The three clients
//!
//! - **plain ureq**: a ureq agent and a fixed, long-lived valid token. It never refreshes, so it
//!   is the floor: no client that has to keep a token fresh can beat it.
//! - **reauth-ureq**: a [`Client`] built with its defaults and the issuer's token endpoint.
//! - **naive**: [`NaiveClient`] below, an honest version of what one writes without reauth: the
//!   access and refresh tokens in a `Mutex` (the threads share the client by reference, which
//!   is what an `Arc<Mutex<String>>` amounts to), locked only to read or write them; a
//!   thread whose request gets 401 refreshes on its own (form POST of the refresh token it reads
//!   from the mutex at that moment), stores the new tokens and retries once; when the refresh
//!   answers `invalid_grant` because another thread rotated the refresh token first, it re-reads
//!   the mutex and retries once with whatever access token is there now.
//!
//! All three use identically configured ureq agents: the configuration reauth-ureq's builder
//! gives its API agent (statuses as responses, no redirects, no proxy, 10 s connect timeout,
//! 30 s per-phase timeouts, ureq's default keep-alive pool).
//!
//! # Scenarios
//!
//! 1. **Storm**: every round, every token the issuer has issued is expired
//!    ([`MockIssuer::expire_all_now`]) and [`STORM_THREADS`] threads, released by one barrier,
//!    send one GET each. Plain ureq gets a fresh long-lived token before its rounds (the
//!    expiry would kill its fixed one too), so its rounds measure the same burst without expiry.
//! 2. **Staggered**: the issuer hands out tokens that live [`STAGGER_LIFETIME`] and answers
//!    after [`LATENCY`] plus up to [`JITTER`]; [`STAGGER_THREADS`] threads start
//!    [`STAGGER_STEP`] apart and send GETs back to back for [`STAGGER_ROUND`] (about two token
//!    lifetimes), so tokens expire while requests are in flight on every thread. The issuer
//!    says `expires_in: 1` for such a token (whole seconds, rounded up), so clients believe it
//!    lives more than three times longer than it does: realistic clock skew, which pushes
//!    reauth onto its reactive path (a 401, one refresh, replays) instead of its proactive one.
//! 3. **Steady**: valid long-lived tokens, no issuer latency, [`STEADY_THREADS`] threads sending
//!    back to back for [`STEADY_ROUND`]: nothing but the per-request cost of each client.
//!
//! # Fairness
//!
//! The three clients share the issuer, the agent configuration and the thread count. Every
//! scenario runs as short rounds, one per client in a row (a *triple*), the order cycling
//! through all six permutations so that no client always runs first or last; each round's
//! issuer counters are reset before it and read after it, so they belong to that round alone.
//! Throughput is the median of a client's round rates, and "vs plain" is the median over the
//! triples of the client's rate divided by plain ureq's rate in the *same* triple: neighbouring
//! rounds see the same machine load, which makes the ratio far steadier on a shared machine than
//! two long runs one after the other. Latency percentiles are over every request of every round.
//!
//! Every load loop is bounded in count ([`PER_THREAD_CAP`]) and in time (the round length); a
//! whole run takes about a minute.
//!
//! # Probes
//!
//! Two more interleaved measurements on plain ureq isolate costs the tables reveal:
//! a 401 whose body is dropped unread (ureq then closes the connection, so the retry opens a new
//! one) against one whose body is read to the end (the connection goes back to the pool), and
//! ureq's default pool (3 idle connections per host) against one as large as the storm, on steady
//! traffic, on bursts, and on steady traffic again once the bursts have filled the large pool.
//!
//! Run with `cargo bench -p reauth-ureq --bench baselines` (`harness = false`: it prints its own
//! markdown tables). `BASELINES_SCENARIOS=storm,staggered,steady,probes` (any subset) runs only
//! those. `BASELINES_ONLY=plain|reauth|naive` with `BASELINES_REQUESTS=N` instead sends `N`
//! sequential GETs with a valid token through one client and nothing else, for instruction counts
//! under `valgrind --tool=callgrind` (`adapters/ureq/benches/instructions.sh`).

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::BTreeMap;
use std::env;
use std::io::Read;
use std::sync::{Barrier, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use http::Response;
use reauth_testkit::issuer::{Counters, IssuedTokens, IssuerConfig, MockIssuer};
use reauth_ureq::Client;
use serde::Deserialize;
use ureq::{Agent, Body};

/// Threads released together in every storm round.
const STORM_THREADS: usize = 32;
/// Storm rounds per client.
const STORM_ROUNDS: usize = 24;
/// Threads of the staggered scenario.
const STAGGER_THREADS: usize = 12;
/// Lifetime of the tokens the issuer hands out during the staggered scenario.
const STAGGER_LIFETIME: Duration = Duration::from_millis(300);
/// How much later each staggered thread starts than the one before it.
const STAGGER_STEP: Duration = Duration::from_millis(2);
/// Length of one staggered round.
const STAGGER_ROUND: Duration = Duration::from_millis(600);
/// Staggered rounds per client (a multiple of 6: each order of the three clients comes up
/// equally often).
const STAGGER_ROUNDS: usize = 12;
/// Threads of the steady scenario (the same as staggered).
const STEADY_THREADS: usize = STAGGER_THREADS;
/// Length of one steady round.
const STEADY_ROUND: Duration = Duration::from_millis(200);
/// Steady rounds per client (a multiple of 6).
const STEADY_ROUNDS: usize = 30;
/// Fixed issuer latency in the storm and staggered scenarios.
const LATENCY: Duration = Duration::from_millis(1);
/// Upper bound of the random extra issuer latency in the storm and staggered scenarios.
const JITTER: Duration = Duration::from_millis(1);
/// Most requests one thread sends in one round, whatever the time left.
const PER_THREAD_CAP: usize = 20_000;
/// Idle pooled connections per host of every agent: ureq's default, which reauth-ureq's builder
/// keeps (the probes measure what a larger pool would change).
const POOL_IDLE_PER_HOST: usize = 3;
/// Lifetime of the tokens plain ureq uses and of every token in the steady scenario.
const LONG_LIFETIME: Duration = Duration::from_secs(3600);
/// Pairs of rounds of each probe.
const PROBE_PAIRS: usize = 12;
/// 401-then-retry exchanges per round of the 401 probe.
const PROBE_RETRIES: usize = 200;

fn main() {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: LONG_LIFETIME,
        seed: 7,
        ..IssuerConfig::default()
    })
    .expect("start the mock issuer");
    if let Ok(only) = env::var("BASELINES_ONLY") {
        instructions_workload(&issuer, &only);
        return;
    }

    let url = issuer.api_url("baseline");
    let reauth = Client::builder().token_url(issuer.token_url()).build().expect("build client");
    log_in(&reauth, &issuer.login());
    let naive =
        NaiveClient::new(api_agent(POOL_IDLE_PER_HOST), issuer.token_url(), &issuer.login());
    let clients = Clients { plain: api_agent(POOL_IDLE_PER_HOST), reauth, naive, url };

    // Warm-up: connection pools, page faults, lazily built statics.
    let warm = bearer(&issuer.login());
    for _ in 0..200 {
        plain_get(&clients.plain, &clients.url, &warm);
        reauth_get(&clients.reauth, &clients.url);
        clients.naive.get(&clients.url);
    }

    let scenarios = env::var("BASELINES_SCENARIOS").unwrap_or_default();
    let wanted = |name: &str| scenarios.is_empty() || scenarios.split(',').any(|s| s == name);
    let started = Instant::now();
    println!();
    println!("# Baselines: plain ureq, reauth-ureq and the naive client");
    println!();
    if wanted("storm") {
        let title = format!(
            "Storm: {STORM_THREADS} threads fire one GET each right after every token is \
             expired, {STORM_ROUNDS} rounds per client, issuer latency {} ms + up to {} ms",
            LATENCY.as_millis(),
            JITTER.as_millis()
        );
        print_table(&title, &storm(&issuer, &clients));
    }
    if wanted("staggered") {
        let title = format!(
            "Staggered: {STAGGER_THREADS} threads started {} ms apart send GETs back to back \
             for {} ms per round, {STAGGER_ROUNDS} rounds per client, tokens live {} ms \
             (`expires_in: 1`), issuer latency {} ms + up to {} ms",
            STAGGER_STEP.as_millis(),
            STAGGER_ROUND.as_millis(),
            STAGGER_LIFETIME.as_millis(),
            LATENCY.as_millis(),
            JITTER.as_millis()
        );
        print_table(&title, &staggered(&issuer, &clients));
    }
    if wanted("steady") {
        let title = format!(
            "Steady: valid tokens, no issuer latency, {STEADY_THREADS} threads send GETs back \
             to back for {} ms per round, {STEADY_ROUNDS} rounds per client",
            STEADY_ROUND.as_millis()
        );
        print_table(&title, &steady(&issuer, &clients));
    }
    let stats = clients.reauth.stats();
    println!(
        "reauth-ureq over the whole run: {} requests, {} failed, {} refreshes started, {} \
         stale-401 replays, {} parked, {} transport errors.",
        stats.requests,
        stats.failed,
        stats.refreshes_started,
        stats.stale_replays,
        stats.parked,
        stats.transport_errors
    );
    println!(
        "naive client over the whole run: {} refresh calls, {} answered `invalid_grant`.",
        clients.naive.refreshes.load(Ordering::Relaxed),
        clients.naive.invalid_grants.load(Ordering::Relaxed)
    );
    println!();
    if wanted("probes") {
        probes(&issuer, &clients.url);
    }
    println!("Whole run: {:.1} s.", started.elapsed().as_secs_f64());
    println!();
}

// -------------------------------------------------------------------------------------------
// The clients

/// The three clients under test and the URL they all GET.
struct Clients {
    /// Plain ureq; its token is handed to each round.
    plain: Agent,
    reauth: Client,
    naive: NaiveClient,
    url: String,
}

/// Which client a round drives.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Plain,
    Reauth,
    Naive,
}

impl Kind {
    /// The six orders in which a triple runs the three clients.
    const ORDERS: [[Self; 3]; 6] = [
        [Self::Plain, Self::Reauth, Self::Naive],
        [Self::Reauth, Self::Naive, Self::Plain],
        [Self::Naive, Self::Plain, Self::Reauth],
        [Self::Plain, Self::Naive, Self::Reauth],
        [Self::Naive, Self::Reauth, Self::Plain],
        [Self::Reauth, Self::Plain, Self::Naive],
    ];

    const fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain ureq, fixed valid token (floor)",
            Self::Reauth => "reauth-ureq",
            Self::Naive => "naive: `Mutex<String>`, every 401 refreshes",
        }
    }
}

/// A ureq agent configured like reauth-ureq's API agent (see `ClientBuilder::build`), with at
/// most `idle_per_host` idle pooled connections per host (ureq's default is 3).
fn api_agent(idle_per_host: usize) -> Agent {
    let phase = Some(Duration::from_secs(30));
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_send_request(phase)
        .timeout_send_body(phase)
        .timeout_recv_response(phase)
        .timeout_recv_body(phase)
        .proxy(None)
        .max_idle_connections(idle_per_host.max(10))
        .max_idle_connections_per_host(idle_per_host)
        .build()
        .into()
}

/// `Bearer <access token>`.
fn bearer(tokens: &IssuedTokens) -> String {
    format!("Bearer {}", tokens.access_token)
}

fn log_in(client: &Client, tokens: &IssuedTokens) {
    client
        .login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in))
        .expect("log reauth in");
}

/// One GET through plain ureq; true when it ended in 200.
fn plain_get(agent: &Agent, url: &str, authorization: &str) -> bool {
    agent
        .get(url)
        .header("Authorization", authorization)
        .call()
        .is_ok_and(|response| finish(response) == 200)
}

/// One GET through reauth-ureq; true when it ended in 200.
fn reauth_get(client: &Client, url: &str) -> bool {
    client.get(url).is_ok_and(|response| finish(response) == 200)
}

/// Reads the body to its end (so that the connection can go back to the pool) and returns the
/// status, or 0 when the body could not be read. A small buffer: `io::copy` would zero 8 KiB on
/// every call, a cost of the bench rather than of the client.
fn finish(mut response: Response<Body>) -> u16 {
    let status = response.status().as_u16();
    let mut reader = response.body_mut().as_reader();
    let mut buf = [0u8; 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return status,
            Ok(_) => {}
            Err(_) => return 0,
        }
    }
}

/// The client one writes without reauth. See the [crate docs](self).
///
/// It is deliberately not a strawman: it refreshes only after a 401, sends the newest refresh
/// token it can see, retries once after its own refresh, and after an `invalid_grant` (someone
/// else rotated the token first) retries once with the access token that is current by then.
/// What it lacks is coordination: nothing stops every thread that got a 401 from refreshing.
struct NaiveClient {
    /// One agent for the API and the token endpoint, as one would write it.
    agent: Agent,
    token_url: String,
    /// The current tokens; locked only to read or replace them.
    tokens: Mutex<NaiveTokens>,
    /// Refresh calls this client made.
    refreshes: AtomicU64,
    /// Refresh calls answered `invalid_grant`.
    invalid_grants: AtomicU64,
}

/// What the naive client keeps behind its mutex.
struct NaiveTokens {
    access: String,
    refresh: String,
}

/// The fields of an OAuth2 token answer (RFC 6749 §5.1, §5.2) the naive client reads.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    error: Option<String>,
}

/// How a naive refresh ended.
enum NaiveRefresh {
    /// New tokens, already stored; carries the new access token.
    Refreshed(String),
    /// `invalid_grant`: the refresh token was used already (by another thread).
    InvalidGrant,
    /// Anything else: transport error, another status, an unreadable answer.
    Failed,
}

impl NaiveClient {
    fn new(agent: Agent, token_url: String, tokens: &IssuedTokens) -> Self {
        let naive = Self {
            agent,
            token_url,
            tokens: Mutex::new(NaiveTokens { access: String::new(), refresh: String::new() }),
            refreshes: AtomicU64::new(0),
            invalid_grants: AtomicU64::new(0),
        };
        naive.log_in(tokens);
        naive
    }

    /// Installs the tokens of a login.
    fn log_in(&self, tokens: &IssuedTokens) {
        *self.lock() = NaiveTokens {
            access: tokens.access_token.clone(),
            refresh: tokens.refresh_token.clone(),
        };
    }

    /// One GET with the current token; true when it ended in 200.
    fn get(&self, url: &str) -> bool {
        let access = self.lock().access.clone();
        let Ok(response) = self.send(url, &access) else {
            return false;
        };
        if response.status() != 401 {
            return finish(response) == 200;
        }
        // Typical code drops the 401 without reading its body (as reauth-ureq does too).
        drop(response);
        let refresh = self.lock().refresh.clone();
        let retry_with = match self.refresh(&refresh) {
            NaiveRefresh::Refreshed(access) => access,
            NaiveRefresh::InvalidGrant => self.lock().access.clone(),
            NaiveRefresh::Failed => return false,
        };
        self.send(url, &retry_with).is_ok_and(|response| finish(response) == 200)
    }

    fn send(&self, url: &str, access: &str) -> Result<Response<Body>, ureq::Error> {
        self.agent.get(url).header("Authorization", &format!("Bearer {access}")).call()
    }

    /// POSTs the refresh grant and stores what it brings.
    fn refresh(&self, refresh_token: &str) -> NaiveRefresh {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .agent
            .post(&self.token_url)
            .send_form([("grant_type", "refresh_token"), ("refresh_token", refresh_token)]);
        let Ok(mut response) = sent else {
            return NaiveRefresh::Failed;
        };
        let status = response.status().as_u16();
        let Ok(answer) = response.body_mut().read_json::<TokenAnswer>() else {
            return NaiveRefresh::Failed;
        };
        match (status, answer) {
            (200, TokenAnswer { access_token: Some(access), refresh_token, .. }) => {
                let mut tokens = self.lock();
                tokens.access.clone_from(&access);
                if let Some(refresh) = refresh_token {
                    tokens.refresh = refresh;
                }
                NaiveRefresh::Refreshed(access)
            }
            (400, TokenAnswer { error: Some(error), .. }) if error == "invalid_grant" => {
                self.invalid_grants.fetch_add(1, Ordering::Relaxed);
                NaiveRefresh::InvalidGrant
            }
            _ => NaiveRefresh::Failed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, NaiveTokens> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// -------------------------------------------------------------------------------------------
// Scenarios

/// How the threads of one round send.
#[derive(Clone, Copy)]
enum Load {
    /// One request per thread, all released by one barrier.
    Burst,
    /// Back to back until `length` has passed since the start, thread `i` starting `i * step`
    /// after it.
    Timed { length: Duration, step: Duration },
}

/// What one round of one client did.
struct Round {
    requests: u64,
    failed: u64,
    /// From the barrier's release to the end of the last request.
    elapsed: Duration,
    /// One per request, in microseconds.
    latencies: Vec<u32>,
    /// The issuer's counters over the round alone.
    counters: Counters,
}

impl Round {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Everything a scenario measured for one client.
#[derive(Default)]
struct Tally {
    requests: u64,
    failed: u64,
    refresh_calls: u64,
    reuse_attempts: u64,
    refreshes_per_token_max: u64,
    rates: Vec<f64>,
    /// Rate divided by plain ureq's rate in the same triple.
    ratios: Vec<f64>,
    latencies: Vec<u32>,
}

impl Tally {
    fn add(&mut self, round: Round) {
        self.requests += round.requests;
        self.failed += round.failed;
        self.refresh_calls += round.counters.refresh_calls;
        self.reuse_attempts += round.counters.reuse_attempts;
        self.refreshes_per_token_max =
            self.refreshes_per_token_max.max(round.counters.refreshes_per_access_token_max);
        self.rates.push(round.rate());
        self.latencies.extend(round.latencies);
    }
}

/// What a scenario measured, by client.
type Results = BTreeMap<Kind, Tally>;

/// Scenario 1: storms after a server-side expiry of every token.
fn storm(issuer: &MockIssuer, clients: &Clients) -> Results {
    issuer.set_token_lifetime(LONG_LIFETIME);
    issuer.set_latency(LATENCY, JITTER);
    triples(STORM_ROUNDS, |kind| {
        issuer.expire_all_now();
        // The expiry killed plain ureq's token too; the floor sends with a valid one.
        let plain = (kind == Kind::Plain).then(|| bearer(&issuer.login()));
        run(issuer, clients, kind, plain.as_deref(), STORM_THREADS, Load::Burst)
    })
}

/// Scenario 2: short-lived tokens under staggered back-to-back traffic.
fn staggered(issuer: &MockIssuer, clients: &Clients) -> Results {
    issuer.set_token_lifetime(STAGGER_LIFETIME);
    issuer.set_latency(LATENCY, JITTER);
    issuer.expire_all_now();
    let plain = bearer(&issuer.login_with_lifetime(LONG_LIFETIME));
    let load = Load::Timed { length: STAGGER_ROUND, step: STAGGER_STEP };
    triples(STAGGER_ROUNDS, |kind| run(issuer, clients, kind, Some(&plain), STAGGER_THREADS, load))
}

/// Scenario 3: valid tokens, no latency, nothing but each client's per-request cost.
fn steady(issuer: &MockIssuer, clients: &Clients) -> Results {
    issuer.set_token_lifetime(LONG_LIFETIME);
    issuer.set_latency(Duration::ZERO, Duration::ZERO);
    log_in(&clients.reauth, &issuer.login());
    clients.naive.log_in(&issuer.login());
    let plain = bearer(&issuer.login());
    let load = Load::Timed { length: STEADY_ROUND, step: Duration::ZERO };
    triples(STEADY_ROUNDS, |kind| run(issuer, clients, kind, Some(&plain), STEADY_THREADS, load))
}

/// Runs `rounds` triples (one round per client, the order cycling through [`Kind::ORDERS`]) and
/// gathers each client's rounds, with its per-triple ratio to plain ureq.
fn triples(rounds: usize, mut round: impl FnMut(Kind) -> Round) -> Results {
    let mut results = Results::new();
    for triple in 0..rounds {
        let mut rates = BTreeMap::new();
        for kind in Kind::ORDERS[triple % Kind::ORDERS.len()] {
            let done = round(kind);
            rates.insert(kind, done.rate());
            results.entry(kind).or_default().add(done);
        }
        for (kind, rate) in &rates {
            let ratio = rate / rates[&Kind::Plain];
            results.entry(*kind).or_default().ratios.push(ratio);
        }
    }
    results
}

/// One round of `kind` with `threads` threads; `plain` is plain ureq's `Authorization` value.
fn run(
    issuer: &MockIssuer,
    clients: &Clients,
    kind: Kind,
    plain: Option<&str>,
    threads: usize,
    load: Load,
) -> Round {
    issuer.reset_counters();
    let url = clients.url.as_str();
    let mut round = match (kind, plain) {
        (Kind::Plain, Some(authorization)) => {
            drive(threads, load, || plain_get(&clients.plain, url, authorization))
        }
        (Kind::Plain, None) => unreachable!("plain ureq needs a token"),
        (Kind::Reauth, _) => drive(threads, load, || reauth_get(&clients.reauth, url)),
        (Kind::Naive, _) => drive(threads, load, || clients.naive.get(url)),
    };
    round.counters = issuer.counters();
    round
}

/// Runs `send` on `threads` threads as `load` says; `send` returns true for a 200.
fn drive(threads: usize, load: Load, send: impl Fn() -> bool + Sync) -> Round {
    let barrier = Barrier::new(threads + 1);
    let (started, per_thread) = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (barrier, send) = (&barrier, &send);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let (cap, until) = match load {
                        Load::Burst => (1, None),
                        Load::Timed { length, step } => {
                            thread::sleep(step * u32::try_from(i).unwrap_or(u32::MAX));
                            (PER_THREAD_CAP, Some(start + length))
                        }
                    };
                    let mut latencies = Vec::with_capacity(cap.min(4096));
                    let mut failed = 0u64;
                    while latencies.len() < cap && until.is_none_or(|t| Instant::now() < t) {
                        let sent = Instant::now();
                        let ok = send();
                        let micros = sent.elapsed().as_micros();
                        latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                        failed += u64::from(!ok);
                    }
                    (latencies, failed)
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let per_thread: Vec<_> =
            handles.into_iter().map(|h| h.join().expect("load thread")).collect();
        (started, per_thread)
    });
    let elapsed = started.elapsed();
    let mut round = Round {
        requests: 0,
        failed: 0,
        elapsed,
        latencies: Vec::new(),
        counters: Counters::default(),
    };
    for (latencies, failed) in per_thread {
        round.requests += latencies.len() as u64;
        round.failed += failed;
        round.latencies.extend(latencies);
    }
    round
}

// -------------------------------------------------------------------------------------------
// Probes of costs found in the tables

/// Prints the two probe tables (see the crate docs).
fn probes(issuer: &MockIssuer, url: &str) {
    issuer.set_token_lifetime(LONG_LIFETIME);
    issuer.set_latency(Duration::ZERO, Duration::ZERO);
    let agent = api_agent(POOL_IDLE_PER_HOST);
    let stale = bearer(&issuer.login());
    issuer.expire_all_now();
    let valid = bearer(&issuer.login());

    // A 401 dropped unread against a 401 read to its end, each followed by the retry.
    let retry = |drain: bool| {
        let started = Instant::now();
        for _ in 0..PROBE_RETRIES {
            let response = agent.get(url).header("Authorization", &stale).call();
            let response = response.expect("401 probe");
            assert_eq!(response.status(), 401);
            if drain {
                finish(response);
            }
            assert!(plain_get(&agent, url, &valid), "retry of the 401 probe");
        }
        started.elapsed() / u32::try_from(PROBE_RETRIES).unwrap_or(u32::MAX)
    };
    let (dropped, drained) = pairs(|| retry(false), || retry(true));

    // ureq's default pool against one with room for every thread: steady load on fresh agents
    // (the large pool then holds one connection per thread), bursts, and steady load again on
    // the burst's agents (the large pool now holds one connection per burst thread, more than
    // there are threads, and ureq hands them out oldest first).
    let small = api_agent(POOL_IDLE_PER_HOST);
    let large = api_agent(STORM_THREADS);
    let steady_load = Load::Timed { length: STEADY_ROUND / 2, step: Duration::ZERO };
    let steady = |agent: &Agent| {
        let rate = drive(STEADY_THREADS, steady_load, || plain_get(agent, url, &valid)).rate();
        Duration::from_secs_f64(1.0 / rate)
    };
    let burst = |agent: &Agent| {
        let rate = drive(STORM_THREADS, Load::Burst, || plain_get(agent, url, &valid)).rate();
        Duration::from_secs_f64(1.0 / rate)
    };
    let (steady_small, steady_large) = pairs(|| steady(&small), || steady(&large));
    let (burst_small, burst_large) = pairs(|| burst(&small), || burst(&large));
    let (after_small, after_large) = pairs(|| steady(&small), || steady(&large));

    println!(
        "## Probes (plain ureq, no issuer latency, median of {PROBE_PAIRS} interleaved pairs)"
    );
    println!();
    println!("| probe | as reauth-ureq does it now | alternative | alternative / now |");
    println!("|---|---:|---:|---:|");
    println!(
        "| a 401 and its retry, one thread: 401 body dropped vs read to the end | {} | {} | \
         {:.2} |",
        micros(dropped),
        micros(drained),
        drained.as_secs_f64() / dropped.as_secs_f64()
    );
    let rows = [
        (format!("{STEADY_THREADS} threads back to back"), steady_small, steady_large),
        (format!("{STORM_THREADS} threads send one GET each at once"), burst_small, burst_large),
        (
            format!("{STEADY_THREADS} threads back to back, after the bursts"),
            after_small,
            after_large,
        ),
    ];
    for (load, small, large) in rows {
        println!(
            "| time per request, {load}: pool of {POOL_IDLE_PER_HOST} idle per host vs \
             {STORM_THREADS} | {} | {} | {:.2} |",
            micros(small),
            micros(large),
            large.as_secs_f64() / small.as_secs_f64()
        );
    }
    println!();
}

/// Runs `a` and `b` [`PROBE_PAIRS`] times each, alternating which goes first; the medians.
fn pairs(mut a: impl FnMut() -> Duration, mut b: impl FnMut() -> Duration) -> (Duration, Duration) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for pair in 0..PROBE_PAIRS {
        if pair % 2 == 0 {
            xs.push(a());
            ys.push(b());
        } else {
            ys.push(b());
            xs.push(a());
        }
    }
    xs.sort();
    ys.sort();
    (xs[xs.len() / 2], ys[ys.len() / 2])
}

// -------------------------------------------------------------------------------------------
// Instruction counts

/// Sends `BASELINES_REQUESTS` sequential GETs with a valid token through the client `only`
/// names, for `valgrind --tool=callgrind`: two runs at different counts give the instructions
/// per request (the issuer's share included, which is the same for every client).
fn instructions_workload(issuer: &MockIssuer, only: &str) {
    let requests: usize =
        env::var("BASELINES_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let url = issuer.api_url("baseline");
    let ok = match only {
        "plain" => {
            let (agent, authorization) = (api_agent(POOL_IDLE_PER_HOST), bearer(&issuer.login()));
            (0..requests).all(|_| plain_get(&agent, &url, &authorization))
        }
        "reauth" => {
            let client = Client::builder().token_url(issuer.token_url()).build().expect("client");
            log_in(&client, &issuer.login());
            (0..requests).all(|_| reauth_get(&client, &url))
        }
        "naive" => {
            let naive = NaiveClient::new(
                api_agent(POOL_IDLE_PER_HOST),
                issuer.token_url(),
                &issuer.login(),
            );
            (0..requests).all(|_| naive.get(&url))
        }
        other => panic!("BASELINES_ONLY must be plain, reauth or naive, not {other:?}"),
    };
    assert!(ok, "every request of the instruction workload must succeed");
    println!("{only}: {requests} requests");
}

// -------------------------------------------------------------------------------------------
// Output

/// Prints one scenario's table in markdown.
fn print_table(title: &str, results: &Results) {
    println!("## {title}");
    println!();
    println!(
        "| client | requests | failed | refresh calls | reuse (`invalid_grant`) | max refreshes \
         per access token | throughput | vs plain: median of triples (middle half) | p50 | p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, tally) in results {
        let mut rates = tally.rates.clone();
        let mut ratios = tally.ratios.clone();
        // Sorted, so that the median and the quartiles can be read off.
        ratios.sort_by(f64::total_cmp);
        let quartile = |q: usize| ratios.get(ratios.len() * q / 4).copied().unwrap_or(f64::NAN);
        let (low, mid, high) = (quartile(1), quartile(2), quartile(3));
        let mut latencies = tally.latencies.clone();
        latencies.sort_unstable();
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} req/s | {:.3} ({:.2}–{:.2}) | {} | {} |",
            kind.name(),
            tally.requests,
            tally.failed,
            tally.refresh_calls,
            tally.reuse_attempts,
            tally.refreshes_per_token_max,
            median(&mut rates),
            mid,
            low,
            high,
            percentile(&latencies, 50),
            percentile(&latencies, 99),
        );
    }
    println!();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The `p`th percentile of `sorted` microseconds, formatted in milliseconds.
fn percentile(sorted: &[u32], p: usize) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let index = (sorted.len() * p).div_ceil(100).saturating_sub(1).min(sorted.len() - 1);
    format!("{:.2} ms", f64::from(sorted[index]) / 1000.0)
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
