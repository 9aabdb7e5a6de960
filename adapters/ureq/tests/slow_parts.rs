//! Parts that take their time must not hold requests: a store whose save hangs during an early
//! refresh delays no request that has a valid token, and a custom refresh exchange that ignores
//! the refresh timeout holds no waiting request past its deadline. Both parts are held on a gate
//! the test opens only after checking the requests came back, so nothing is timed; every wait
//! of the test itself is bounded so that a regression fails instead of hanging.

mod common;

use core::time::Duration;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use reauth_core::Config;
use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use reauth_ureq::{
    Client, Error, Lease, MemoryStore, NewTokens, RefreshError, StoreError, StoredTokens,
    TokenStore,
};

/// How long the test waits for something that should happen at once before failing.
const BOUND: Duration = Duration::from_secs(20);

/// Closed until [`open`](Gate::open); [`pass`](Gate::pass) waits for that.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// A memory store whose saves after the first (the login's) wait at a gate, telling the test
/// when one has started.
struct GatedStore {
    inner: MemoryStore,
    gate: Arc<Gate>,
    entered: Mutex<mpsc::Sender<()>>,
}

impl TokenStore for GatedStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        self.inner.load()
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        if tokens.version > 1 {
            let _ = self.entered.lock().unwrap().send(());
            self.gate.pass();
        }
        self.inner.save(tokens)
    }

    fn clear(&self, version: Option<u64>) -> Result<(), StoreError> {
        self.inner.clear(version)
    }

    fn try_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.inner.try_lease(lease)
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(lease)
    }
}

#[test]
fn a_hanging_store_save_during_an_early_refresh_delays_no_request_with_a_valid_token() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let gate = Arc::new(Gate::default());
    let (entered, save_started) = mpsc::channel();
    let store = GatedStore {
        inner: MemoryStore::new(),
        gate: Arc::clone(&gate),
        entered: Mutex::new(entered),
    };
    // The early window opens at half the token's life (8 s), and no margin: 4 s of window.
    let config = Config {
        refresh_ahead: reauth_core::Duration::from_secs(3600),
        expiry_margin: reauth_core::Duration::ZERO,
        ..common::quick_config()
    };
    let client = common::builder(&issuer, "app").config(config).store(store).build().unwrap();
    let lifetime = Duration::from_secs(8);
    let tokens = issuer.login_with_lifetime(lifetime);
    client.login(&tokens.access_token, &tokens.refresh_token, Some(lifetime)).unwrap();
    thread::sleep(Duration::from_millis(4_300));

    // This request starts the early refresh, whose save then hangs.
    let first = {
        let (client, url) = (client.clone(), issuer.api_url("first"));
        thread::spawn(move || client.get(&url).map(|r| r.status().as_u16()))
    };
    save_started.recv_timeout(BOUND).expect("the early refresh reached the store");
    // Meanwhile every other request goes out with the still-valid token and comes back.
    let (done, results) = mpsc::channel();
    {
        let (client, url) = (client.clone(), issuer.api_url("meanwhile"));
        thread::spawn(move || {
            for _ in 0..5 {
                let _ = done.send(client.get(&url).map(|r| r.status().as_u16()));
            }
        });
    }
    for _ in 0..5 {
        let result = results.recv_timeout(BOUND).expect("a request waited for the store");
        assert_eq!(result.unwrap(), 200);
    }
    gate.open();
    assert_eq!(first.join().unwrap().unwrap(), 200);
    assert_eq!(issuer.counters().refresh_successes, 1);
}

#[test]
fn a_refresh_exchange_that_ignores_its_timeout_holds_no_request_past_its_deadline() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let gate = Arc::new(Gate::default());
    let held = Arc::clone(&gate);
    let client = Client::builder()
        .refresh_with(move |_: &str| -> Result<NewTokens, RefreshError> {
            // Ignores the refresh timeout entirely.
            held.pass();
            Err(RefreshError::Other("released".into()))
        })
        .config(common::quick_config())
        .refresh_timeout(Duration::from_millis(200))
        .wait_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // Expired at once: every request needs the refresh that hangs.
    client.login("access-token-1", "refresh-token-1", Some(Duration::ZERO)).unwrap();
    let (done, results) = mpsc::channel();
    for i in 0..8 {
        let (client, url, done) = (client.clone(), issuer.api_url(&format!("t{i}")), done.clone());
        thread::spawn(move || {
            let _ = done.send(client.get(&url).map(|r| r.status().as_u16()));
        });
    }
    // All eight answer while the exchange is still stuck: none is held by it.
    for _ in 0..8 {
        let result = results.recv_timeout(BOUND).expect("a request was held by the exchange");
        assert!(matches!(result, Err(Error::Timeout | Error::RefreshUnavailable(_))), "{result:?}");
    }
    gate.open();
}
