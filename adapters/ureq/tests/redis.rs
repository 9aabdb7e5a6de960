//! [`RedisStore`] against a real `redis-server` (started by the testkit on a free port of
//! 127.0.0.1, without persistence): the store contract, several clients sharing one credential
//! through it against the loopback mock issuer, and Redis stopped or restarted under them.
//!
//! Without `redis-server` each test prints `skipped: redis-server not found (...)` and returns,
//! unless `CI` is set (then it fails). Every loop is bounded in count and time; timing bounds
//! are generous upper limits on "did not hang until a later deadline", never performance
//! assertions.

#![cfg(feature = "redis")]

mod common;

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Arc;
use std::thread;
use std::time::{Instant, SystemTime};

use reauth_testkit::issuer::{Counters, IssuerConfig, MockIssuer};
use reauth_testkit::redis_server::{Persistence, RedisServer};
use reauth_ureq::{
    Client, ClientBuilder, Error, Lease, RedisStore, RefreshError, Stats, StoreError, StoredTokens,
    TokenStore,
};
use zeroize::Zeroizing;

const SECRET: &str = "SENTINEL-redis-secret-7f3a";

fn record(version: u64, refresh: &str) -> StoredTokens {
    StoredTokens {
        version,
        refresh_token: Zeroizing::new(refresh.to_owned()),
        access_token: Some(Zeroizing::new(format!("access-{refresh}"))),
        expires_at: Some(SystemTime::now() + Duration::from_secs(60)),
    }
}

fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::new(&server.url(), prefix).unwrap()
}

/// Sends one command to the server (for a test's own inspection and damage).
fn raw(server: &RedisServer, args: &[&str]) -> String {
    server.command(args).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The store contract

#[test]
fn save_is_compare_and_set_and_clear_checks_the_version() {
    let Some(server) = RedisServer::start_or_skip("save_is_compare_and_set") else { return };
    let store = store(&server, "reauth:cas");
    assert!(store.load().unwrap().is_none());
    assert!(matches!(store.save(&record(2, "a")), Err(StoreError::Conflict { current: 0 })));
    store.save(&record(1, "a")).unwrap();
    // Another writer with the same base loses; the same record sent twice counts as written.
    assert!(matches!(store.save(&record(1, "b")), Err(StoreError::Conflict { current: 1 })));
    let first = record(2, "c");
    store.save(&first).unwrap();
    store.save(&first).unwrap();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!((loaded.version, loaded.refresh_token.as_str()), (2, "c"));
    assert_eq!(loaded.access_token.as_deref().map(String::as_str), Some("access-c"));
    let expected_ms = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis();
    assert_eq!(loaded.expires_at.map(expected_ms), first.expires_at.map(expected_ms));

    // Another prefix is another credential.
    let other = RedisStore::new(&server.url(), "reauth:other").unwrap();
    assert!(other.load().unwrap().is_none());

    assert!(matches!(store.clear(Some(1)), Err(StoreError::Conflict { current: 2 })));
    assert_eq!(store.load().unwrap().unwrap().version, 2);
    store.clear(Some(2)).unwrap();
    assert!(store.load().unwrap().is_none());
    assert!(matches!(store.clear(Some(2)), Err(StoreError::Conflict { current: 0 })));
    store.clear(None).unwrap();

    // A login writes over whatever is there.
    assert_eq!(store.save_over(record(0, "d")).unwrap(), 1);
    assert_eq!(store.save_over(record(0, "e")).unwrap(), 2);
    store.clear(None).unwrap();
    assert!(store.load().unwrap().is_none());
}

#[test]
fn damaged_record_is_a_typed_error_that_shows_no_token() {
    let Some(server) = RedisServer::start_or_skip("damaged_record") else { return };
    let store = store(&server, "reauth:damaged");
    store.save(&record(1, SECRET)).unwrap();
    let json = raw(&server, &["GET", store.record_key()]);
    assert!(json.contains(SECRET), "the record holds the token as FileStore's format does");
    let cut = format!(r#"{{"version":2,"record_version":1,"refresh_token":"{SECRET}"#);
    assert!(raw(&server, &["SET", store.record_key(), &cut]).starts_with("+OK"));

    for error in [store.load().unwrap_err(), store.save(&record(2, "x")).unwrap_err()] {
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        assert!(!format!("{error} {error:?}").contains(SECRET), "{error}");
    }
    // A record too damaged to read is no newer record: a versioned clear may remove it, and a
    // login writes over it.
    store.clear(Some(7)).unwrap();
    assert!(store.load().unwrap().is_none());
    assert!(raw(&server, &["SET", store.record_key(), &cut]).starts_with("+OK"));
    assert_eq!(store.save_over(record(0, "fresh")).unwrap(), 1);
    assert_eq!(store.load().unwrap().unwrap().refresh_token.as_str(), "fresh");
    store.clear(None).unwrap();
    // Not a string at all.
    assert!(raw(&server, &["HSET", store.record_key(), "f", SECRET]).starts_with(':'));
    let error = store.load().unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(SECRET), "{error}");
}

#[test]
fn lease_is_exclusive_renewable_expiring_and_released_only_by_its_owner() {
    let Some(server) = RedisServer::start_or_skip("lease") else { return };
    let store = store(&server, "reauth:lease");
    let (a, b) = (Lease::new(Duration::from_secs(30)), Lease::new(Duration::from_secs(30)));
    assert!(store.try_lease(&a).unwrap());
    assert!(!store.try_lease(&b).unwrap());
    assert!(store.try_lease(&a).unwrap(), "the same owner renews");
    let ttl: u64 = raw(&server, &["PTTL", store.lease_key()])[1..].trim().parse().unwrap();
    assert!(ttl > 20_000 && ttl <= 30_001, "{ttl}");
    store.release(&b).unwrap();
    assert!(!store.try_lease(&b).unwrap(), "a non-owner's release removed the lease");
    store.release(&a).unwrap();
    assert!(store.try_lease(&b).unwrap());
    store.release(&b).unwrap();

    // A holder that outlives its lease neither blocks the next one nor releases its lease.
    let short = Lease::new(Duration::from_millis(150));
    assert!(store.try_lease(&short).unwrap());
    let next = Lease::new(Duration::from_secs(30));
    let mut taken = false;
    for _ in 0..500 {
        if store.try_lease(&next).unwrap() {
            taken = true;
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(taken, "the lapsed lease was still held after 5 s");
    store.release(&short).unwrap();
    assert!(!store.try_lease(&Lease::new(Duration::from_secs(1))).unwrap());
}

#[test]
fn wait_for_change_wakes_on_save_and_release_by_message() {
    let Some(server) = RedisServer::start_or_skip("wait_for_change") else { return };
    // Polling so slow that only a message can end the waits below before their deadline.
    let waiter = Arc::new(store(&server, "reauth:wait").poll_interval(Duration::from_secs(120)));
    let writer = store(&server, "reauth:wait");
    writer.save(&record(1, "a")).unwrap();
    let holder = Lease::new(Duration::from_secs(120));
    assert!(writer.try_lease(&holder).unwrap());

    // Nothing to wait for: a past deadline, a record already past `seen`, no lease.
    let started = Instant::now();
    waiter.wait_for_change(1, started).unwrap();
    waiter.wait_for_change(0, started + Duration::from_secs(60)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));

    // A deadline with nothing happening: the wait ends at it, not at the next poll.
    let started = Instant::now();
    waiter.wait_for_change(1, started + Duration::from_millis(200)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));

    for (what, change) in [("save", 0), ("release", 1)] {
        let until = Instant::now() + Duration::from_secs(60);
        let w = Arc::clone(&waiter);
        let seen = writer.load().unwrap().unwrap().version;
        let handle = thread::spawn(move || {
            w.wait_for_change(seen, until).unwrap();
            Instant::now()
        });
        thread::sleep(Duration::from_millis(100));
        if change == 0 {
            writer.save(&record(seen + 1, "b")).unwrap();
        } else {
            writer.release(&holder).unwrap();
        }
        let woke = handle.join().unwrap();
        assert!(woke < until - Duration::from_secs(30), "the {what} did not wake the waiter");
    }
}

#[test]
fn redis_away_is_unavailable_for_every_operation() {
    let Some(mut server) = RedisServer::start_or_skip("redis_away") else { return };
    let store = store(&server, "reauth:away").timeout(Duration::from_millis(500));
    store.save(&record(1, SECRET)).unwrap();
    server.stop();
    let lease = Lease::new(Duration::from_secs(10));
    let errors = [
        store.load().map(drop).unwrap_err(),
        store.save(&record(2, SECRET)).unwrap_err(),
        store.clear(Some(1)).unwrap_err(),
        store.try_lease(&lease).map(drop).unwrap_err(),
        store.release(&lease).unwrap_err(),
        store.wait_for_change(1, Instant::now() + Duration::from_secs(5)).unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert!(!format!("{error} {error:?}").contains(SECRET), "{error}");
    }
    server.restart().unwrap();
    // Back, on a new connection; without persistence the record is gone.
    assert!(store.load().unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Clients sharing one credential

/// `n` clients, each with its own `RedisStore` on `server` under `prefix` (as `n` processes
/// would have): the first logs in, the others start from what it saved.
fn fleet(
    server: &RedisServer,
    issuer: &MockIssuer,
    prefix: &str,
    n: usize,
    configure: impl Fn(ClientBuilder) -> ClientBuilder,
) -> Vec<Client> {
    let builder = || configure(common::builder(issuer, "redis").store(store(server, prefix)));
    let first = builder().build().unwrap();
    let tokens = issuer.login();
    first.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    let mut clients = vec![first];
    clients.extend((1..n).map(|_| builder().build().unwrap()));
    clients
}

/// What the threads of a storm saw.
#[derive(Debug, Default)]
struct Outcome {
    ok: u64,
    failures: Vec<String>,
}

/// `threads` threads per client send requests, with short pauses, until `done` says so or
/// `max_requests` per thread have been sent.
fn storm(
    clients: &[Client],
    issuer: &MockIssuer,
    threads: usize,
    max_requests: usize,
    done: impl Fn(&Counters) -> bool,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let url = issuer.api_url("fleet");
    let mut handles = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for t in 0..threads {
            let (client, stop, url) = (client.clone(), Arc::clone(&stop), url.clone());
            handles.push(thread::spawn(move || {
                let mut outcome = Outcome::default();
                for n in 0..max_requests {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match client.get(&url) {
                        Ok(r) if r.status() == 200 => outcome.ok += 1,
                        Ok(r) => outcome.failures.push(format!("status {}", r.status())),
                        Err(e) => outcome.failures.push(e.to_string()),
                    }
                    thread::sleep(Duration::from_millis(((n * 7 + c * 5 + t * 13) % 20) as u64));
                }
                outcome
            }));
        }
    }
    // The watcher: bounded by count (and so by time).
    for _ in 0..6000 {
        if done(&issuer.counters()) || handles.iter().all(thread::JoinHandle::is_finished) {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Outcome::default();
    for handle in handles {
        let outcome = handle.join().unwrap();
        total.ok += outcome.ok;
        total.failures.extend(outcome.failures);
    }
    total
}

fn fleet_stats(clients: &[Client]) -> Vec<Stats> {
    clients.iter().map(Client::stats).collect()
}

#[test]
fn clients_sharing_redis_refresh_once_per_expiry_without_reuse() {
    let Some(server) = RedisServer::start_or_skip("clients_sharing_redis") else { return };
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_secs(1),
        revoke_on_reuse: true,
        // A refresh takes a while, so that clients meet at the lease and wait for the record.
        latency: Duration::from_millis(20),
        ..IssuerConfig::default()
    })
    .unwrap();
    let clients = fleet(&server, &issuer, "reauth:fleet", CLIENTS, |b| b);
    issuer.reset_counters();
    let outcome = storm(&clients, &issuer, 6, 4000, |c| c.refresh_successes >= 8);
    let counters = issuer.counters();
    let stats = fleet_stats(&clients);
    let waits = raw(&server, &["INFO", "commandstats"])
        .lines()
        .find(|l| l.starts_with("cmdstat_subscribe:"))
        .map_or_else(|| "cmdstat_subscribe: none".to_owned(), str::to_owned);
    eprintln!("{outcome:?}\n{counters:?}\n{}\n{waits}", summary(&stats));
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_one_refresh_per_episode(&counters, &stats);
}

/// Clients in a fleet test: each stands for a process with its own connection to Redis.
const CLIENTS: usize = 3;

/// One refresh call per expiry episode, fleet-wide, and no reuse.
///
/// An episode is one access token reaching its refresh time. Every client sees every episode
/// (the clients share one token), and starts one attempt for it: exactly one of them calls the
/// token endpoint, the others adopt the record it wrote. So, with `E` the issuer's refresh
/// calls: every call brought new tokens and was made by one client (no call was wasted, no
/// token was refreshed twice), and the other clients adopted at least `(CLIENTS - 1) * (E - 1)`
/// times (the storm may stop before everyone adopted the last record). A client that refreshed
/// on its own instead of adopting would make more calls than episodes and fewer adoptions.
fn assert_one_refresh_per_episode(counters: &Counters, stats: &[Stats]) {
    let calls = counters.refresh_calls;
    let own_calls: u64 = stats.iter().map(|s| s.refreshes_succeeded).sum();
    let adopted: u64 = stats.iter().map(|s| s.adopted).sum();
    assert_eq!(counters.reuse_attempts, 0, "{counters:?}");
    assert_eq!(counters.refreshes_per_access_token_max, 1, "{counters:?}");
    assert_eq!(counters.refresh_successes, calls, "{counters:?}");
    assert_eq!(own_calls, calls, "{}", summary(stats));
    assert!(calls >= 3, "too few episodes to judge: {counters:?}");
    let floor = (CLIENTS as u64 - 1) * (calls - 1);
    assert!(adopted >= floor, "adopted {adopted} < {floor}: {}", summary(stats));
}

/// The per-client counts that matter here, one line per client.
fn summary(stats: &[Stats]) -> String {
    stats
        .iter()
        .map(|s| {
            format!(
                "requests {} failed {} attempts {} own calls {} adopted {} store errors {}",
                s.requests,
                s.failed,
                s.refreshes_started,
                s.refreshes_succeeded,
                s.adopted,
                s.store_errors
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Redis away or restarted under the clients

#[test]
fn redis_stopped_fails_closed_unless_lease_fallback_is_on() {
    let Some(mut server) = RedisServer::start_or_skip("redis_stopped") else { return };
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let short = |b: ClientBuilder| b.store(store(&server, "reauth:stopped").timeout(SHORT));
    let clients = fleet(&server, &issuer, "reauth:stopped", 2, short);
    let fallback = short(common::builder(&issuer, "redis")).lease_fallback(true).build().unwrap();
    let url = issuer.api_url("stopped");
    for client in clients.iter().chain([&fallback]) {
        assert_eq!(client.get(&url).unwrap().status(), 200);
    }
    server.stop();
    // A valid token needs no store.
    assert_eq!(clients[0].get(&url).unwrap().status(), 200);
    issuer.expire_all_now();
    issuer.reset_counters();

    for client in &clients {
        match client.get(&url) {
            Err(Error::RefreshUnavailable(Some(RefreshError::Store(e)))) => {
                assert!(matches!(*e, StoreError::Unavailable { .. }), "{e:?}");
            }
            other => panic!("expected a store failure, got {other:?}"),
        }
    }
    assert_eq!(issuer.counters().refresh_calls, 0, "a refresh went ahead without the lease");

    // The opt-in: this process refreshes on its own; the new tokens stay in its memory.
    assert_eq!(fallback.get(&url).unwrap().status(), 200);
    let counters = issuer.counters();
    assert_eq!((counters.refresh_calls, counters.reuse_attempts), (1, 0), "{counters:?}");
    assert!(fallback.stats().store_errors >= 1, "{:?}", fallback.stats());
}

/// Store timeout for tests where Redis is stopped: a refused connection fails at once anyway.
const SHORT: Duration = Duration::from_millis(500);

#[test]
fn redis_restarted_mid_run_recovers_without_reuse() {
    let Some(mut server) = RedisServer::start_or_skip("redis_restarted") else { return };
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_secs(1),
        revoke_on_reuse: true,
        ..IssuerConfig::default()
    })
    .unwrap();
    let clients = Arc::new(fleet(&server, &issuer, "reauth:restart", CLIENTS, |b| b));
    issuer.reset_counters();
    let issuer = Arc::new(issuer);
    let restarted = Arc::new(AtomicBool::new(false));
    let stormer = {
        let (clients, issuer, restarted) =
            (Arc::clone(&clients), Arc::clone(&issuer), Arc::clone(&restarted));
        thread::spawn(move || {
            storm(&clients, &issuer, 4, 6000, move |c| {
                restarted.load(Ordering::Relaxed) && c.refresh_successes >= 9
            })
        })
    };
    // Restart once three episodes went by and every client holds the newest record: the
    // restart loses the record (no persistence), and no client is between a refresh and its
    // adoption (see the RedisStore docs for a loss inside that window).
    let mut synced = false;
    for _ in 0..20_000 {
        let episodes = issuer.counters().refresh_successes;
        let stats = fleet_stats(&clients);
        synced = episodes >= 3
            && stats.iter().all(|s| {
                s.refreshes_started == episodes && s.refreshes_succeeded + s.adopted == episodes
            });
        if synced || stormer.is_finished() {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    assert!(synced, "the clients never agreed: {}", summary(&fleet_stats(&clients)));
    server.restart().unwrap();
    restarted.store(true, Ordering::Relaxed);
    let outcome = stormer.join().unwrap();
    let counters = issuer.counters();
    let stats = fleet_stats(&clients);
    eprintln!("{outcome:?}\n{counters:?}\n{}", summary(&stats));
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_one_refresh_per_episode(&counters, &stats);
    assert!(counters.refresh_successes >= 9, "{counters:?}");
}

#[test]
fn persistent_redis_restarted_during_a_refresh_goes_unnoticed() {
    let Some(mut server) = RedisServer::start_or_skip_with("redis_aof", Persistence::Aof) else {
        return;
    };
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_secs(1),
        revoke_on_reuse: true,
        // A refresh holds the lease for a while: long enough to restart Redis under it.
        latency: Duration::from_millis(20),
        ..IssuerConfig::default()
    })
    .unwrap();
    let clients = Arc::new(fleet(&server, &issuer, "reauth:aof", CLIENTS, |b| b));
    issuer.reset_counters();
    let issuer = Arc::new(issuer);
    let restarted = Arc::new(AtomicBool::new(false));
    let stormer = {
        let (clients, issuer, restarted) =
            (Arc::clone(&clients), Arc::clone(&issuer), Arc::clone(&restarted));
        thread::spawn(move || {
            storm(&clients, &issuer, 4, 6000, move |c| {
                restarted.load(Ordering::Relaxed) && c.refresh_successes >= 8
            })
        })
    };
    // Kill and restart Redis while a client holds the lease: between its load and its save.
    let lease_key = store(&server, "reauth:aof").lease_key().to_owned();
    let mut leased = false;
    for _ in 0..20_000 {
        leased = issuer.counters().refresh_successes >= 2
            && raw(&server, &["EXISTS", &lease_key]).starts_with(":1");
        if leased || stormer.is_finished() {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    assert!(leased, "no refresh was seen under the lease");
    let down = Instant::now();
    server.restart().unwrap();
    let down = down.elapsed();
    let kept = raw(&server, &["EXISTS", &lease_key]);
    restarted.store(true, Ordering::Relaxed);
    let outcome = stormer.join().unwrap();
    let counters = issuer.counters();
    let stats = fleet_stats(&clients);
    eprintln!(
        "Redis down for {down:?}, lease kept: {}\n{outcome:?}\n{counters:?}\n{}",
        kept.trim(),
        summary(&stats)
    );
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_one_refresh_per_episode(&counters, &stats);
    assert!(stats.iter().all(|s| s.store_errors == 0), "{}", summary(&stats));
}

#[test]
fn requests_with_a_valid_token_never_touch_redis() {
    let Some(server) = RedisServer::start_or_skip("valid_token_hot_path") else { return };
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let clients = fleet(&server, &issuer, "reauth:hot", 2, |b| b);
    let commands = || -> u64 {
        let info = raw(&server, &["INFO", "stats"]);
        let line = info.lines().find(|l| l.starts_with("total_commands_processed:")).unwrap();
        line["total_commands_processed:".len()..].trim().parse().unwrap()
    };
    let before = commands();
    let url = issuer.api_url("hot");
    for client in &clients {
        for _ in 0..100 {
            assert_eq!(client.get(&url).unwrap().status(), 200);
        }
    }
    // The only command in between is the second INFO itself.
    assert_eq!(commands(), before + 1);
}
