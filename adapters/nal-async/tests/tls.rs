//! HTTPS: the async client through embedded-tls against the mock issuer's TLS listener (rustls,
//! a CA made at test time), on the host's loopback TCP: the storm over TLS, a server the pinned
//! CA did not sign refused before any byte of HTTP, and a plain transport refused when the
//! client requires HTTPS.
#![cfg(feature = "tls")]

mod common;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use reauth_nal_async::tls::{MAX_RECORD, Tls, TlsError, TlsTransportError};
use reauth_nal_async::{Error, Request, Tcp};
use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use reauth_testkit::tls::TestPki;

use crate::common::{Literal, Loopback, TestClient, logged_in_as, net, run};

type TlsNet = Tls<'static, Loopback, Literal, ChaCha20Rng>;

fn tls(ca_der: &'static [u8]) -> TlsNet {
    Tls::new(Tcp::new(&Loopback, &Literal), ca_der, ChaCha20Rng::seed_from_u64(7), MAX_RECORD, 4096)
}

/// One request over `net`: its status or its error.
async fn get_over(
    client: &TestClient,
    net: &TlsNet,
) -> Result<u16, Error<TlsTransportError<std::io::Error>>> {
    let mut buf = vec![0u8; MAX_RECORD + 4096 + 4096];
    client.send(net, &Request::get("/api/items"), &mut buf).await.map(|r| r.status())
}

#[test]
fn many_tasks_over_https_get_one_refresh_per_expiry() {
    let pki = TestPki::generate().unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    let ca: &'static [u8] = Box::leak(pki.ca_der().to_vec().into_boxed_slice());
    run(async {
        let client = logged_in_as(&issuer, None, "localhost", true);
        let net: &'static TlsNet = Box::leak(Box::new(tls(ca)));
        for _ in 0..3 {
            issuer.expire_all_now();
            let mut tasks = Vec::new();
            for _ in 0..6 {
                let client = client.clone();
                tasks.push(tokio::task::spawn_local(async move { get_over(&client, net).await }));
            }
            for task in tasks {
                let result = task.await.unwrap();
                assert!(matches!(result, Ok(200)), "{result:?}");
            }
        }
        let counters = issuer.counters();
        assert_eq!(counters.refresh_calls, 3, "{counters:?}");
        assert_eq!(client.stats().refreshes, 3);
        assert_eq!(counters.reuse_attempts, 0);
        assert!(counters.refreshes_per_access_token_max <= 1);
    });
}

#[test]
fn a_server_the_pinned_ca_did_not_sign_is_refused_before_any_request() {
    let pki = TestPki::generate().unwrap();
    let stranger = TestPki::generate().unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    let ca: &'static [u8] = Box::leak(stranger.ca_der().to_vec().into_boxed_slice());
    run(async {
        let client = logged_in_as(&issuer, None, "localhost", true);
        let result = get_over(&client, &tls(ca)).await;
        assert!(
            matches!(
                result,
                Err(Error::Transport {
                    error: TlsTransportError::Tls(TlsError::InvalidCertificate),
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(issuer.counters().requests_total, 0);
    });
}

#[test]
fn the_wrong_name_is_refused_too() {
    let pki = TestPki::generate_for(&["api.example"]).unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    let ca: &'static [u8] = Box::leak(pki.ca_der().to_vec().into_boxed_slice());
    run(async {
        let client = logged_in_as(&issuer, None, "localhost", true);
        let result = get_over(&client, &tls(ca)).await;
        assert!(matches!(result, Err(Error::Transport { .. })), "{result:?}");
        assert_eq!(issuer.counters().requests_total, 0);
    });
}

#[test]
fn a_client_that_requires_https_refuses_a_plain_transport() {
    let issuer = MockIssuer::start(IssuerConfig::default()).unwrap();
    run(async {
        let client = logged_in_as(&issuer, None, "localhost", true);
        let mut buf = [0u8; 1024];
        let result = client.send(&net(), &Request::get("/api/x"), &mut buf).await;
        assert!(matches!(result, Err(Error::InsecureTransport)), "{result:?}");
        assert_eq!(issuer.counters().requests_total, 0);
    });
}

#[test]
fn a_server_named_by_its_ip_address_is_verified_through_its_common_name() {
    let pki = TestPki::generate_for(&["127.0.0.1"]).unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    let ca: &'static [u8] = Box::leak(pki.ca_der().to_vec().into_boxed_slice());
    run(async {
        let client = logged_in_as(&issuer, None, "127.0.0.1", true);
        let result = get_over(&client, &tls(ca)).await;
        assert!(matches!(result, Ok(200)), "{result:?}");
    });
}
