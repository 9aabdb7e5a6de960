//! Where tokens may and may not go, for reauth-ureq: never into `Debug`, `Display` or an error
//! chain; the refresh token only to the token endpoint and the access token only to the API;
//! the file store's file owner-only and replaced atomically.
//!
//! `tests/e2e.rs` (`no_public_type_shows_a_token`) already formats the builder, the client, the
//! stores and the coordinator's rejections after a login with a sentinel token; this file adds
//! tokens installed by a refresh (the issuer's own and a sentinel from a custom exchange), every
//! error the client can produce with its `source()` chain, and the file store. Wiping of the
//! token buffers on overwrite and drop is the core's (`reauth_core::Token` derives
//! `ZeroizeOnDrop` and `Token::set` zeroizes before writing; heapless's `zeroize` feature wipes
//! the whole buffer).

mod common;

use core::time::Duration;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Instant, SystemTime};

use reauth_core::Config;
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_testkit::secrets::{assert_hidden, error_chain};
use reauth_ureq::{
    Client, ClientBuilder, Error, FileStore, MemoryStore, NewTokens, RefreshError, StoredTokens,
    TokenStore,
};
use zeroize::Zeroizing;

use crate::common::quick_config;

/// Marks a token value the test installed itself; it must never be shown.
const SENTINEL: &str = "SENTINEL-c0ffee";

fn builder(issuer: &MockIssuer) -> ClientBuilder {
    common::builder(issuer, "secrets")
}

#[test]
fn no_public_type_shows_tokens_installed_by_a_real_refresh_or_any_error_chain() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    let store = MemoryStore::new();
    let client = builder(&issuer).client_secret(SENTINEL).store(store.clone()).build().unwrap();
    let login = issuer.login();
    client.login(&login.access_token, &login.refresh_token, Some(login.expires_in)).unwrap();
    issuer.expire_all_now();
    assert_eq!(client.get(&issuer.api_url("x")).unwrap().status(), 200);
    let refreshed = store.snapshot().unwrap();
    let refreshed_access = refreshed.access_token.clone().unwrap();
    assert_ne!(*refreshed.refresh_token, login.refresh_token, "the refresh rotated");
    let mut shown = vec![
        format!("{client:?}"),
        format!("{store:?}"),
        format!("{refreshed:?}"),
        format!("{:?}", FileStore::new("tokens.json")),
        format!("{:?} {:?}", client.stats(), client.state()),
    ];
    // Every transient failure of the token endpoint, as the error of the request that waited.
    let one_attempt = Config { max_refresh_attempts: 1, max_unanswered: 1, ..quick_config() };
    let faults = [
        Fault::ServiceUnavailable { times: 1 },
        Fault::TooManyRequests { times: 1, retry_after_secs: 0 },
        Fault::CloseBeforeAnswer { times: 1 },
        Fault::ResetMidBody { times: 1 },
        Fault::MalformedJson { times: 1 },
        // Rotates on the server, then carries a 9000-byte access token the client refuses.
        Fault::OversizedToken { times: 1, len: 9_000 },
    ];
    let faulty = builder(&issuer).config(one_attempt).store(MemoryStore::new()).build().unwrap();
    for fault in faults {
        let tokens = issuer.login();
        faulty.login(&tokens.access_token, &tokens.refresh_token, None).unwrap();
        issuer.expire_all_now();
        issuer.inject(fault.clone());
        let error = faulty.get(&issuer.api_url("x")).unwrap_err();
        // Answered failures leave the token usable later; a lost answer (the server may have
        // rotated the token) stops it at once with one attempt allowed.
        assert!(
            matches!(error, Error::RefreshUnavailable(Some(_)) | Error::NeedsLogin),
            "{fault:?}: {error:?}"
        );
        assert!(faulty.last_refresh_error().is_some(), "{fault:?}");
        shown.push(error_chain(&error));
        shown.push(format!("{:?}", faulty.last_refresh_error()));
        shown.push(format!("{faulty:?}"));
    }
    // A refusal, a transport failure of an API request, and unusable tokens.
    issuer.inject(Fault::InvalidClient { times: 1 });
    let refused = faulty.get(&issuer.api_url("x")).unwrap_err();
    assert!(matches!(refused, Error::NeedsLogin), "{refused:?}");
    shown.push(format!("{:?}", faulty.last_refresh_error()));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/api/x", closed.local_addr().unwrap());
    drop(closed);
    let transport = client.get(&nowhere).unwrap_err();
    assert!(matches!(transport, Error::Transport(_)), "{transport:?}");
    shown.push(error_chain(&transport));
    let too_long = SENTINEL.repeat(1_000);
    for (access, refresh) in [(too_long.as_str(), SENTINEL), ("SENTINEL-c0ffee\r\nX: y", SENTINEL)]
    {
        let error = client.login(access, refresh, None).unwrap_err();
        assert!(matches!(error, Error::Token(_)), "{error:?}");
        shown.push(error_chain(&error));
        shown.push(format!("{:?}", NewTokens::new(access, Some(refresh), None)));
    }
    // A sentinel installed by a refresh: a custom exchange hands it out.
    let sentinel_client = Client::builder()
        .refresh_with(|_: &str| {
            NewTokens::new(SENTINEL, Some(SENTINEL), None)
                .map_err(|e| RefreshError::Other(e.to_string()))
        })
        .store(MemoryStore::new())
        .build()
        .unwrap();
    sentinel_client.login("SENTINEL-old-access", "SENTINEL-old-refresh", None).unwrap();
    // The issuer knows neither token: refused, refreshed to the sentinel, refused again.
    let unauthorized = sentinel_client.get(&issuer.api_url("x")).unwrap_err();
    assert!(matches!(unauthorized, Error::Unauthorized), "{unauthorized:?}");
    assert_eq!(sentinel_client.stats().refreshes_succeeded, 1);
    shown.push(error_chain(&unauthorized));
    shown.push(format!("{sentinel_client:?}"));
    shown.push(error_chain(&Error::RefreshUnavailable(Some(RefreshError::refused(Some(401))))));
    assert_hidden(
        &shown,
        &[
            SENTINEL,
            &login.access_token,
            &login.refresh_token,
            &refreshed_access,
            &refreshed.refresh_token,
        ],
    );
}

/// A server that quotes the refused refresh token in its `error_description` (Spring Security
/// OAuth's `Invalid refresh token: <token>`) does not get it into the error, its `Display` or
/// `last_refresh_error`: the description is withheld, and says why.
#[test]
fn a_refusal_that_quotes_the_refresh_token_is_withheld() {
    let issuer =
        MockIssuer::start(IssuerConfig { quote_refused_token: true, ..IssuerConfig::default() })
            .unwrap();
    let client = builder(&issuer).store(MemoryStore::new()).build().unwrap();
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, None).unwrap();
    issuer.revoke_session();
    issuer.expire_all_now();
    let error = client.get(&issuer.api_url("x")).unwrap_err();
    assert!(matches!(error, Error::NeedsLogin), "{error:?}");
    let last = client.last_refresh_error().expect("the refusal is kept");
    let RefreshError::Refused { description: Some(description), .. } = &last else {
        panic!("{last:?}")
    };
    assert_eq!(description, reauth_core::oauth::DESCRIPTION_WITHHELD);
    let shown = [error_chain(&error), format!("{last:?}"), last.to_string(), format!("{client:?}")];
    assert_hidden(&shown, &[&tokens.refresh_token, &tokens.access_token]);
}

#[test]
fn store_errors_never_quote_the_token_file() {
    let scratch = Scratch::new("corrupt");
    let path = scratch.0.join("tokens.json");
    let contents = [
        // A token where a number belongs: serde's message would quote it.
        format!(r#"{{"version":"{SENTINEL}","refresh_token":"{SENTINEL}"}}"#),
        format!(r#"{{"version":1,"refresh_token":"{SENTINEL}","access_token":{SENTINEL}}}"#),
        format!(r#"{{"version":2,"refresh_token":"{SENTINEL}"}}"#),
        format!(r#"{{"version":1,"refresh_token":"{SENTINEL}""#),
    ];
    let mut shown = Vec::new();
    for content in contents {
        fs::write(&path, &content).unwrap();
        let error = FileStore::new(&path).load().unwrap_err();
        shown.push(error_chain(&error));
        let build =
            Client::builder().token_url("http://127.0.0.1:9/t").store(FileStore::new(&path));
        let error = build.build().unwrap_err();
        assert!(matches!(error, Error::Store(_)), "{error:?}");
        shown.push(error_chain(&error));
    }
    // An I/O failure: the directory is a regular file.
    let blocked = FileStore::new(path.join("tokens.json"));
    let error = blocked.save(&stored(1, SENTINEL)).unwrap_err();
    shown.push(error_chain(&error));
    assert_hidden(&shown, &[SENTINEL]);
}

#[test]
fn realistic_workload_never_sends_a_token_to_the_wrong_endpoint() {
    let issuer = MockIssuer::start(IssuerConfig {
        token_lifetime: Duration::from_millis(400),
        latency_jitter: Duration::from_millis(20),
        seed: 11,
        ..IssuerConfig::default()
    })
    .unwrap();
    // The issuer says `expires_in: 1` for its 400 ms tokens, and the expiry of every token
    // below also kills one a refresh may be bringing at that moment, so a replay may still meet
    // a 401: a second replay parks it for the next refresh instead of failing it
    // (`Unauthorized` would be right for it, but is not what this test is about).
    let config = Config { replay_limit: 2, ..quick_config() };
    let client = builder(&issuer).config(config).client_secret("s3cret-s3cret").build().unwrap();
    let tokens = issuer.login();
    client.login(&tokens.access_token, &tokens.refresh_token, Some(tokens.expires_in)).unwrap();
    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (client, barrier) = (client.clone(), Arc::clone(&barrier));
            let (get, post) = (issuer.api_url("get"), issuer.api_url("post"));
            thread::spawn(move || {
                barrier.wait();
                let started = Instant::now();
                let mut failed = Vec::new();
                // A storm at the start, then staggered traffic through several expiries,
                // bounded by count and by time.
                for n in 0..500u64 {
                    if started.elapsed() >= Duration::from_millis(1_200) {
                        break;
                    }
                    let result = if n % 3 == 0 {
                        client.post_json(&post, &serde_json::json!({ "n": n }))
                    } else {
                        client.get(&get)
                    };
                    match result {
                        Ok(r) if r.status() == 200 => {}
                        other => failed.push(format!("{:?}", other.map(|r| r.status()))),
                    }
                    thread::sleep(Duration::from_millis((n * 7 + i as u64 * 13) % 30));
                }
                failed
            })
        })
        .collect();
    // Transient faults in the middle of it (the retries must be as careful as the first try),
    // then a storm: every token expires at once.
    thread::sleep(Duration::from_millis(300));
    issuer.inject(Fault::ServiceUnavailable { times: 1 });
    issuer.inject(Fault::TooManyRequests { times: 1, retry_after_secs: 0 });
    thread::sleep(Duration::from_millis(300));
    issuer.expire_all_now();
    let failed: Vec<_> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let counters = issuer.counters();
    // The workload did what it is meant to: many requests, several refreshes, some retried.
    assert!(counters.api_ok > 100 && counters.refresh_successes >= 2, "{counters:?}");
    assert!(counters.faults_served >= 1, "{counters:?}");
    assert_eq!(counters.refresh_token_seen_on_api, 0, "{counters:?}");
    assert_eq!(counters.access_token_seen_on_token_endpoint, 0, "{counters:?}");
    assert_eq!(counters.reuse_attempts, 0, "{counters:?}");
}

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("reauth-ureq-secrets-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Tokens to save as record `version`, marked with `tag`.
fn stored(version: u64, tag: &str) -> StoredTokens {
    StoredTokens {
        version,
        refresh_token: Zeroizing::new(format!("refresh-{tag}")),
        access_token: Some(Zeroizing::new(format!("access-{tag}"))),
        expires_at: Some(SystemTime::now() + Duration::from_secs(60)),
    }
}

fn loaded_tag(path: &Path) -> String {
    let tokens = FileStore::new(path).load().unwrap().expect("tokens in the file");
    tokens.refresh_token.trim_start_matches("refresh-").to_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn file_store_files_are_owner_only_even_over_a_world_readable_file() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("mode");
    let path = scratch.0.join("tokens.json");
    let store = FileStore::new(&path);
    store.save(&stored(1, "first")).unwrap();
    assert_eq!(mode(&path), 0o600);
    // Someone loosened the file: the next save replaces it with an owner-only one.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    store.save(&stored(2, "second")).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(loaded_tag(&path), "second");
    assert_eq!(
        scratch.names(),
        ["tokens.json", "tokens.json.lock"],
        "no temporary file left behind"
    );
}

#[cfg(unix)]
#[test]
fn file_store_replaces_the_file_by_rename_and_never_writes_into_it() {
    use std::os::unix::fs::MetadataExt;
    let scratch = Scratch::new("rename");
    let path = scratch.0.join("tokens.json");
    let store = FileStore::new(&path);
    store.save(&stored(1, "old")).unwrap();
    // A second name for the old file's inode: had `save` truncated and rewritten the file in
    // place, this name would see the new tokens (or, after a crash, half of them).
    let old = scratch.0.join("old-inode.json");
    fs::hard_link(&path, &old).unwrap();
    let old_inode = fs::metadata(&path).unwrap().ino();
    store.save(&stored(2, "new")).unwrap();
    assert_eq!(loaded_tag(&old), "old", "the old file was written into");
    assert_eq!(loaded_tag(&path), "new");
    assert_ne!(fs::metadata(&path).unwrap().ino(), old_inode, "not replaced by a rename");
    assert_eq!(scratch.names(), ["old-inode.json", "tokens.json", "tokens.json.lock"]);
}

#[test]
fn temp_files_left_by_a_crash_are_removed_once_stale_and_nothing_else_is() {
    let scratch = Scratch::new("sweep");
    let path = scratch.0.join("tokens.json");
    let store = FileStore::new(&path);
    store.save(&stored(1, "current")).unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3_600);
    let leftover = |name: &str, modified: SystemTime| {
        let file = fs::File::create(scratch.0.join(name)).unwrap();
        file.set_modified(modified).unwrap();
    };
    leftover(".tokens.json.4242.7f3a.tmp", hour_ago); // a crashed save: removed
    leftover(".tokens.json.4243.0b.tmp", SystemTime::now()); // a save in progress: kept
    leftover(".tokens.json.backup.tmp", hour_ago); // not a name `save` makes: kept
    leftover(".other.json.4242.7.tmp", hour_ago); // another store's: kept
    assert_eq!(loaded_tag(&path), "current");
    assert_eq!(
        scratch.names(),
        [
            ".other.json.4242.7.tmp",
            ".tokens.json.4243.0b.tmp",
            ".tokens.json.backup.tmp",
            "tokens.json",
            "tokens.json.lock"
        ]
    );
    leftover(".tokens.json.1.2e.tmp", hour_ago);
    store.clear(None).unwrap();
    assert_eq!(
        scratch.names(),
        [
            ".other.json.4242.7.tmp",
            ".tokens.json.4243.0b.tmp",
            ".tokens.json.backup.tmp",
            "tokens.json.lock"
        ],
        "logout leaves no stale copy of the tokens"
    );
}

#[test]
fn a_temp_file_left_by_a_crash_keeps_the_old_tokens_and_does_not_block_the_next_save() {
    let scratch = Scratch::new("crash");
    let path = scratch.0.join("tokens.json");
    let store = FileStore::new(&path);
    store.save(&stored(1, "before-crash")).unwrap();
    // A process died between writing its temporary file and renaming it: the file is half
    // written. It had our process id (after a restart in a container, where the id is always
    // the same, this is the common case); names are random, so leftovers cannot be in the way.
    let half = br#"{"version":1,"refresh_token":"refresh-lost"#;
    for n in 0..64 {
        let name = format!(".tokens.json.{}.{n:032x}.tmp", std::process::id());
        fs::write(scratch.0.join(name), half).unwrap();
    }
    assert_eq!(loaded_tag(&path), "before-crash", "the real file is whole");
    let saved = store.save(&stored(2, "after-restart"));
    assert!(saved.is_ok(), "a leftover temporary file blocked the save: {saved:?}");
    assert_eq!(loaded_tag(&path), "after-restart");
}
