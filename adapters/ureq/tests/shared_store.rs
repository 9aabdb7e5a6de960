//! The store protocol that lets processes share one credential (versioned record with
//! compare-and-set, a lease with an owner and a deadline), checked on both built-in stores, and
//! clients that share a store inside one process. Real processes sharing a `FileStore` are run
//! by `reauth fleet` (the CLI's tests).

mod common;

use core::time::Duration;
use std::path::PathBuf;
use std::thread;
use std::time::{Instant, SystemTime};

use reauth_core::{FailCause, State};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_ureq::{
    Client, Error, FileStore, Lease, MemoryStore, StoreError, StoredTokens, TokenStore,
};
use zeroize::Zeroizing;

use crate::common::{builder, quick_config};

fn record(version: u64, tag: &str) -> StoredTokens {
    StoredTokens {
        version,
        refresh_token: Zeroizing::new(format!("refresh-{tag}")),
        access_token: Some(Zeroizing::new(format!("access-{tag}"))),
        expires_at: Some(SystemTime::now() + Duration::from_secs(60)),
    }
}

/// The contract every store keeps, whatever it is backed by.
fn contract(store: &dyn TokenStore) {
    assert!(store.load().unwrap().is_none());
    // Compare-and-set: version 1 over nothing, 2 over 1; a stale writer is turned away and
    // told what is there.
    store.save(&record(1, "a")).unwrap();
    assert!(matches!(store.save(&record(1, "b")), Err(StoreError::Conflict { current: 1 })));
    store.save(&record(2, "c")).unwrap();
    assert!(matches!(store.save(&record(2, "d")), Err(StoreError::Conflict { current: 2 })));
    let loaded = store.load().unwrap().unwrap();
    assert_eq!((loaded.version, loaded.refresh_token.as_str()), (2, "refresh-c"));
    // A login writes over whatever is there.
    assert_eq!(store.save_over(record(0, "login")).unwrap(), 3);
    // Clearing a version that was replaced meanwhile removes nothing.
    assert!(matches!(store.clear(Some(2)), Err(StoreError::Conflict { current: 3 })));
    assert!(store.load().unwrap().is_some());
    store.clear(Some(3)).unwrap();
    assert!(store.load().unwrap().is_none());
    store.save(&record(1, "again")).unwrap();
    store.clear(None).unwrap();
    assert!(store.load().unwrap().is_none());

    // The lease: one owner at a time; the same owner renews; only the owner releases.
    let first = Lease::new(Duration::from_millis(300));
    let second = Lease::new(Duration::from_secs(10));
    assert_ne!(first.owner(), second.owner());
    assert!(first.owner().starts_with(&format!("{}-", std::process::id())));
    assert!(store.try_lease(&first).unwrap());
    assert!(store.try_lease(&first).unwrap(), "the holder renews");
    assert!(!store.try_lease(&second).unwrap(), "taken");
    store.release(&second).unwrap();
    assert!(!store.try_lease(&second).unwrap(), "a non-holder's release changes nothing");
    // A lapsed lease can be taken over, and then the old holder cannot release it.
    thread::sleep(Duration::from_millis(350));
    assert!(store.try_lease(&second).unwrap(), "lapsed leases are taken over");
    store.release(&first).unwrap();
    let third = Lease::new(Duration::from_secs(10));
    assert!(!store.try_lease(&third).unwrap(), "the lapsed holder released the new one's lease");
    store.release(&second).unwrap();
    assert!(store.try_lease(&third).unwrap());

    // A waiter wakes when the holder writes (and, at the latest, at its deadline).
    let started = Instant::now();
    store.wait_for_change(0, started + Duration::from_millis(50)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    store.release(&third).unwrap();
}

#[test]
fn memory_store_keeps_the_store_contract() {
    contract(&MemoryStore::new());
}

#[test]
fn file_store_keeps_the_store_contract() {
    let dir = scratch("contract");
    contract(&FileStore::new(dir.join("tokens.json")));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn file_store_reads_the_first_file_format_as_version_one() {
    let dir = scratch("format1");
    let path = dir.join("tokens.json");
    std::fs::write(&path, br#"{"version":1,"refresh_token":"rt-old"}"#).unwrap();
    let loaded = FileStore::new(&path).load().unwrap().unwrap();
    assert_eq!((loaded.version, loaded.refresh_token.as_str()), (1, "rt-old"));
    FileStore::new(&path).save(&record(2, "new")).unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn clients_sharing_a_store_make_one_refresh_per_expiry_and_adopt_each_others_tokens() {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_millis(400),
        revoke_on_reuse: true,
        ..IssuerConfig::default()
    })
    .unwrap();
    let store = MemoryStore::new();
    let clients: Vec<Client> = (0..4)
        .map(|i| builder(&issuer, &format!("c{i}")).store(store.clone()).build().unwrap())
        .collect();
    let tokens = issuer.login();
    clients[0].login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    // The others were built before the login: they pick it up from the store when asked.
    let deadline = Instant::now() + Duration::from_secs(2);
    let handles: Vec<_> = clients
        .iter()
        .flat_map(|c| (0..3).map(move |_| c.clone()))
        .map(|client| {
            let url = issuer.api_url("shared");
            thread::spawn(move || {
                let mut failures = 0;
                for _ in 0..100_000 {
                    if Instant::now() >= deadline {
                        break;
                    }
                    failures += usize::from(client.get(&url).is_err());
                }
                failures
            })
        })
        .collect();
    let failures: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let counters = issuer.counters();
    assert_eq!(failures, 0, "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0, "{counters:?}");
    assert_eq!(counters.refresh_calls, counters.refresh_successes, "{counters:?}");
    assert!(counters.refresh_successes >= 3, "several expiries: {counters:?}");
    let adopted: u64 = clients.iter().map(|c| c.stats().adopted).sum();
    assert!(adopted > 0, "the clients adopted each other's records");
}

#[test]
fn refused_refresh_clears_the_record_so_a_restart_knows_it_must_log_in() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let dir = scratch("refused");
    let path = dir.join("tokens.json");
    let client = builder(&issuer, "app").store(FileStore::new(&path)).build().unwrap();
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    issuer.expire_all_now();
    issuer.inject(Fault::InvalidGrant { times: 1 });
    assert!(matches!(client.get(&issuer.api_url("x")), Err(Error::NeedsLogin)));
    assert_eq!(client.state(), State::Failed { cause: FailCause::Refused });
    assert!(FileStore::new(&path).load().unwrap().is_none(), "the dead record is gone");
    // A restarted program knows at once, without a network call.
    let calls = issuer.counters().requests_total;
    let restarted = Client::builder()
        .token_url(issuer.token_url())
        .config(quick_config())
        .store(FileStore::new(&path))
        .build()
        .unwrap();
    assert!(restarted.needs_login());
    assert_eq!(issuer.counters().requests_total, calls);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_logged_out_process_picks_up_a_login_made_by_another() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let waiting = builder(&issuer, "a").store(store.clone()).build().unwrap();
    assert!(waiting.needs_login());
    let other = builder(&issuer, "b").store(store.clone()).build().unwrap();
    let tokens = issuer.login();
    other.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    assert_eq!(waiting.get(&issuer.api_url("x")).unwrap().status(), 200);
    assert_eq!(waiting.stats().adopted, 1);
    // Its own logout stands, whatever the others do.
    waiting.logout().unwrap();
    let tokens = issuer.login();
    other.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    assert!(matches!(waiting.get(&issuer.api_url("y")), Err(Error::NeedsLogin)));
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reauth-shared-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A store that counts every call, to show which requests touch it.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    calls: core::sync::atomic::AtomicU64,
}

impl Counting {
    fn bump(&self) {
        self.calls.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
}

impl TokenStore for Counting {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        self.bump();
        self.inner.load()
    }
    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        self.bump();
        self.inner.save(tokens)
    }
    fn clear(&self, version: Option<u64>) -> Result<(), StoreError> {
        self.bump();
        self.inner.clear(version)
    }
    fn try_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.bump();
        self.inner.try_lease(lease)
    }
    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.bump();
        self.inner.release(lease)
    }
}

#[test]
fn requests_with_a_valid_token_never_touch_the_store() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = std::sync::Arc::new(Counting::default());
    let client = builder(&issuer, "app").store(std::sync::Arc::clone(&store)).build().unwrap();
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    let before = store.calls.load(core::sync::atomic::Ordering::Relaxed);
    for _ in 0..200 {
        assert_eq!(client.get(&issuer.api_url("hot")).unwrap().status(), 200);
    }
    assert_eq!(store.calls.load(core::sync::atomic::Ordering::Relaxed), before);
    // A refresh does: lease, reload, save, release.
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("refresh")).unwrap().status(), 200);
    let refresh_calls = store.calls.load(core::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(refresh_calls, 4, "try_lease, load, save, release");
}
