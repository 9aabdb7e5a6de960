//! The async client against the testkit's mock issuer over the host's loopback TCP (tokio, one
//! thread, many tasks): one refresh per expiry for many tasks, cancellation at every await that
//! matters, reauth-nal's fault matrix, and no token in anything a test can print.

mod common;

use core::time::Duration as StdDuration;

use reauth_core::Rejection;
use reauth_nal_async::{Error, Request};
use reauth_testkit::issuer::{Fault, IssuerConfig, MockIssuer};
use reauth_testkit::secrets::assert_hidden;

use crate::common::{
    Flash, LOOPBACK, N, TestClient, TokioClock, get, logged_in, net, run, scenario, storm,
};

#[test]
fn many_tasks_across_expiries_get_one_refresh_each_and_no_failure() {
    scenario::many_tasks_across_expiries(&LOOPBACK);
}

#[test]
fn a_storm_on_an_expired_token_parks_every_task_behind_one_refresh() {
    scenario::storm_on_an_expired_token(&LOOPBACK);
}

#[test]
fn a_dropped_parked_request_leaves_the_others_served() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.expire_all_now();
        // The refresh hangs long enough for the parked requests to be dropped while waiting.
        issuer.inject(Fault::Hang { times: 1, duration: StdDuration::from_millis(800) });
        let mut dropped = Vec::new();
        for _ in 0..4 {
            let client = client.clone();
            dropped.push(tokio::task::spawn_local(async move {
                tokio::time::timeout(StdDuration::from_millis(200), get(&client, "/api/x")).await
            }));
        }
        for task in dropped {
            // Each either timed out (dropped while parked or running the refresh) or finished.
            let _ = task.await.unwrap();
        }
        // The coordinator is consistent: new requests get a fresh token with one refresh.
        let results = storm(&client, 4, 2, StdDuration::ZERO).await;
        assert!(results.iter().all(|r| matches!(r, Ok(200))), "{results:?}");
        let counters = issuer.counters();
        assert_eq!(counters.reuse_attempts, 0);
        assert_eq!(counters.refresh_successes, 1, "{counters:?}");
        assert_eq!(client.stats().refreshes, 1);
    });
}

#[test]
fn a_dropped_refresh_in_flight_is_reported_lost_and_the_next_request_refreshes() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.expire_all_now();
        // The answer trickles: the request is on the server (the token rotates) when the task is
        // dropped mid-answer.
        issuer.inject(Fault::Trickle { times: 1, byte_delay: StdDuration::from_millis(20) });
        let first = tokio::time::timeout(StdDuration::from_millis(300), get(&client, "/api/x"));
        assert!(first.await.is_err(), "the first request should still be waiting");
        let stats = client.stats();
        // Dropped after its request went out: lost, not transient (it counts towards the
        // presentations of one refresh token).
        assert_eq!((stats.refresh_calls, stats.lost_refreshes), (1, 1), "{stats:?}");
        // The rotated token never arrived: the retry presents the old one, a reuse the server
        // refuses, and the client says it needs a login instead of hammering.
        let second = get(&client, "/api/x").await;
        assert!(matches!(second, Err(Error::Rejected(Rejection::NeedsLogin))), "{second:?}");
        assert!(client.needs_login());
        assert!(client.with_store(|f| f.cleared));
    });
}

#[test]
fn transient_503s_are_retried_and_the_request_succeeds() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.expire_all_now();
        issuer.inject(Fault::ServiceUnavailable { times: 2 });
        assert!(matches!(get(&client, "/api/x").await, Ok(200)));
        let stats = client.stats();
        assert_eq!((stats.refresh_calls, stats.refresh_failures, stats.refreshes), (3, 2, 1));
        assert_eq!(issuer.counters().refresh_calls, 3);
    });
}

#[test]
fn a_429_holds_the_retry_back_until_its_retry_after() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.expire_all_now();
        issuer.inject(Fault::TooManyRequests { times: 1, retry_after_secs: 1 });
        let start = tokio::time::Instant::now();
        assert!(matches!(get(&client, "/api/x").await, Ok(200)));
        // Not a timed assertion on speed: the hint is a lower bound the client must respect.
        assert!(start.elapsed() >= StdDuration::from_secs(1));
        assert_eq!(client.stats().refreshes, 1);
    });
}

#[test]
fn a_hanging_token_endpoint_times_out_and_the_retry_succeeds() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.expire_all_now();
        issuer.inject(Fault::Hang { times: 1, duration: StdDuration::from_secs(4) });
        assert!(matches!(get(&client, "/api/x").await, Ok(200)));
        let stats = client.stats();
        assert_eq!((stats.refresh_failures, stats.refreshes), (1, 1), "{stats:?}");
        assert_eq!(issuer.counters().reuse_attempts, 0);
    });
}

#[test]
fn a_reset_or_a_malformed_answer_costs_one_retry() {
    for fault in [
        Fault::ResetMidBody { times: 1 },
        Fault::CloseBeforeAnswer { times: 1 },
        Fault::MalformedJson { times: 1 },
    ] {
        scenario::one_retry_after(&LOOPBACK, fault);
    }
}

#[test]
fn invalid_grant_logs_out_and_rejects_every_parked_request() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.expire_all_now();
        issuer.inject(Fault::InvalidGrant { times: 1 });
        let results = storm(&client, 6, 1, StdDuration::ZERO).await;
        assert!(
            results.iter().all(|r| matches!(r, Err(Error::Rejected(Rejection::NeedsLogin)))),
            "{results:?}"
        );
        assert!(client.needs_login());
        assert_eq!(issuer.counters().refresh_calls, 1);
        assert!(client.with_store(|f| f.cleared));
    });
}

/// A client the token endpoint does not accept (`401 invalid_client`: here it sends no
/// credentials to an issuer that requires them) needs a login, and says why; its stored
/// refresh token, never spent, is kept for the corrected firmware (as in reauth-nal).
#[test]
fn invalid_client_is_a_configuration_error_that_keeps_the_stored_token() {
    let issuer = MockIssuer::start(IssuerConfig {
        client_id: Some("device".into()),
        client_secret: Some("s3cret".into()),
        ..IssuerConfig::default()
    })
    .unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        assert_eq!(client.last_refresh_error(), None);
        issuer.expire_all_now();
        let results = storm(&client, 4, 1, StdDuration::ZERO).await;
        assert!(
            results.iter().all(|r| matches!(r, Err(Error::Rejected(Rejection::NeedsLogin)))),
            "{results:?}"
        );
        let error = client.last_refresh_error().expect("the refusal is kept");
        assert!(error.is_configuration_error(), "{error:?}");
        assert!(format!("{error:?}").contains("InvalidClient"), "{error:?}");
        // The server's own words, as reauth-nal keeps them.
        let description = client.refusal_description().expect("the issuer described it");
        assert_eq!(description.as_str(), "unknown client");
        assert!(!client.with_store(|f| f.cleared), "the unspent refresh token is kept");
        assert_eq!(issuer.counters().refresh_calls, 1);
        // New credentials: the refusal was about the old ones.
        let tokens = issuer.login();
        client.login(&tokens.access_token, &tokens.refresh_token, None).unwrap();
        assert_eq!((client.last_refresh_error(), client.refusal_description()), (None, None));
    });
}

/// A server that quotes the refused refresh token in its `error_description` (Spring Security
/// OAuth's `Invalid refresh token: <token>`): the client keeps the description withheld.
#[test]
fn a_refusal_that_quotes_the_refresh_token_is_withheld() {
    let issuer =
        MockIssuer::start(IssuerConfig { quote_refused_token: true, ..IssuerConfig::default() })
            .unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.revoke_session();
        issuer.expire_all_now();
        let result = get(&client, "/api/x").await;
        assert!(matches!(result, Err(Error::Rejected(Rejection::NeedsLogin))), "{result:?}");
        let description = client.refusal_description().expect("the issuer described it");
        assert_eq!(description.as_str(), reauth_core::oauth::DESCRIPTION_WITHHELD);
    });
}

#[test]
fn an_oversized_token_answer_is_lost_and_its_reuse_refused() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        issuer.expire_all_now();
        issuer.inject(Fault::OversizedToken { times: 1, len: 600 });
        let result = get(&client, "/api/x").await;
        // The answer rotated the token on the server but cannot be held (A = 512): the retry
        // presents the old token, the server refuses the reuse, the device must log in.
        assert!(matches!(result, Err(Error::Rejected(Rejection::NeedsLogin))), "{result:?}");
        assert_eq!(client.stats().refresh_failures, 2);
    });
}

#[test]
fn an_oversized_api_response_is_a_typed_error() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        let mut buf = [0u8; 150];
        let result = client.send(&net(), &Request::get("/api/x"), &mut buf).await;
        assert!(matches!(result, Err(Error::ResponseTooLarge { capacity: 150 })), "{result:?}");
        let mut small = [0u8; 16];
        let result = client.send(&net(), &Request::get("/api/x"), &mut small).await;
        assert!(matches!(result, Err(Error::RequestTooLarge { .. })), "{result:?}");
        let bad = Request { headers: &[("Authorization", "x")], ..Request::get("/api/x") };
        let mut buf = [0u8; 1024];
        let result = client.send(&net(), &bad, &mut buf).await;
        assert!(matches!(result, Err(Error::InvalidRequest)), "{result:?}");
    });
}

#[test]
fn no_token_shows_in_debug_display_or_errors_and_buffers_are_wiped() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        let mut shown = vec![format!("{client:?}")];
        issuer.expire_all_now();
        let faults = [
            Fault::ServiceUnavailable { times: 1 },
            Fault::MalformedJson { times: 1 },
            Fault::OversizedToken { times: 1, len: 600 },
        ];
        for fault in faults {
            issuer.inject(fault);
        }
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            let result = client.send(&net(), &Request::get("/api/x"), &mut buf).await;
            match result {
                Ok(r) => shown.push(format!("{r:?}")),
                Err(e) => shown.push(reauth_testkit::secrets::error_chain(&e)),
            }
            // Nothing but the response stays: no request with its token.
            shown.push(String::from_utf8_lossy(&buf).into_owned());
        }
        shown.push(format!("{client:?} {:?}", client.stats()));
        let secrets: Vec<String> =
            client.with_store(|f| f.saved.iter().map(|(t, _)| t.clone()).collect());
        assert_hidden(&shown, &secrets);
    });
}

#[test]
fn more_open_requests_than_places_are_refused_busy() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    issuer.set_latency(StdDuration::from_millis(200), StdDuration::ZERO);
    run(async {
        let client = logged_in(&issuer, None);
        let results = storm(&client, N + 2, 1, StdDuration::ZERO).await;
        let busy = results.iter().filter(|r| matches!(r, Err(Error::Busy))).count();
        let ok = results.iter().filter(|r| matches!(r, Ok(200))).count();
        assert_eq!((ok, busy), (N, 2), "{results:?}");
    });
}

#[test]
fn requests_dropped_on_the_wire_free_their_places() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    issuer.set_latency(StdDuration::from_millis(300), StdDuration::ZERO);
    run(async {
        let client = logged_in(&issuer, None);
        // N requests on the wire, all dropped before their answers.
        let mut dropped = Vec::new();
        for _ in 0..N {
            let client = client.clone();
            dropped.push(tokio::task::spawn_local(async move {
                tokio::time::timeout(StdDuration::from_millis(100), get(&client, "/api/x")).await
            }));
        }
        for task in dropped {
            assert!(task.await.unwrap().is_err(), "the request should have been dropped");
        }
        // Every place is free again: N more requests all get in and are answered.
        let results = storm(&client, N, 1, StdDuration::ZERO).await;
        assert!(results.iter().all(|r| matches!(r, Ok(200))), "{results:?}");
        assert_eq!(issuer.counters().refresh_calls, 0);
    });
}

#[test]
fn a_failed_save_of_the_rotated_token_is_counted_and_the_new_tokens_are_used() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in(&issuer, None);
        client.with_store(|f| f.broken = true);
        issuer.expire_all_now();
        assert!(matches!(get(&client, "/api/x").await, Ok(200)));
        let stats = client.stats();
        assert_eq!((stats.refreshes, stats.persist_failures), (1, 1), "{stats:?}");
        // The new tokens are in memory: the next request needs no refresh.
        assert!(matches!(get(&client, "/api/x").await, Ok(200)));
        assert_eq!(issuer.counters().refresh_calls, 1);
    });
}

#[test]
fn an_endpoint_without_an_address_is_looked_up_and_a_name_that_does_not_resolve_is_typed() {
    use reauth_nal_async::{ClientConfig, Endpoint, OAuth2, TcpError};

    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let port = issuer.addr().port();
        let looked_up = Endpoint { name: "127.0.0.1", port, addr: None, host: "127.0.0.1" };
        let nowhere = Endpoint { name: "nowhere.invalid", port, addr: None, host: "nowhere" };
        for (endpoint, resolves) in [(looked_up, true), (nowhere, false)] {
            let exchange = OAuth2 { path: "/oauth/token", ..OAuth2::default() };
            let clock = TokioClock(tokio::time::Instant::now());
            let client = TestClient::new(
                ClientConfig::new(endpoint, endpoint),
                exchange,
                Flash::default(),
                clock,
            );
            let tokens = issuer.login();
            client.login(&tokens.access_token, &tokens.refresh_token, None).unwrap();
            let result = get(&client, "/api/x").await;
            if resolves {
                assert!(matches!(result, Ok(200)), "{result:?}");
            } else {
                let dns = matches!(result, Err(Error::Transport { error: TcpError::Dns, .. }));
                assert!(dns, "{result:?}");
            }
        }
    });
}
