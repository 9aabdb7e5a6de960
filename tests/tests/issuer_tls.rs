//! The mock issuer's TLS listener, seen by a rustls client: it trusts the test CA and nothing
//! else, and serves the same endpoints as over plain HTTP.

use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use reauth_testkit::issuer::{IssuerConfig, MockIssuer};
use reauth_testkit::tls::TestPki;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A rustls client that trusts only `ca`'s certificate.
fn client_config(ca: &TestPki) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.ca_der().to_vec())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Sends one `Connection: close` request over TLS to `name` and reads the whole answer.
fn https_exchange(
    issuer: &MockIssuer,
    trust: &TestPki,
    name: &str,
    request: &str,
) -> io::Result<String> {
    let tcp = TcpStream::connect(issuer.addr())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let connection = ClientConnection::new(client_config(trust), server_name).unwrap();
    let mut tls = StreamOwned::new(connection, tcp);
    tls.write_all(request.as_bytes())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn serves_the_api_over_tls_to_a_client_that_trusts_the_test_ca() {
    let pki = TestPki::generate().unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    assert!(issuer.base_url().starts_with("https://127.0.0.1:"), "{}", issuer.base_url());
    assert!(issuer.token_url().starts_with("https://"));
    let tokens = issuer.login();
    let request = format!(
        "GET /api/hello HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        tokens.access_token
    );
    for name in ["localhost", "127.0.0.1"] {
        let answer = https_exchange(&issuer, &pki, name, &request).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{name}: {answer}");
    }
    assert_eq!(issuer.counters().api_ok, 2);
}

#[test]
fn a_client_trusting_another_ca_gets_no_answer() {
    let pki = TestPki::generate().unwrap();
    let stranger = TestPki::generate().unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    let request = "GET /api/hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let error = https_exchange(&issuer, &stranger, "localhost", request).unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    assert_eq!(issuer.counters().requests_total, 0);
}

#[test]
fn plain_http_to_the_tls_port_is_not_served() {
    let pki = TestPki::generate().unwrap();
    let issuer = MockIssuer::start_tls(IssuerConfig::default(), &pki).unwrap();
    let mut tcp = TcpStream::connect(issuer.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET /api/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    // rustls answers garbage with a TLS alert (or just closes): never an HTTP response.
    let _ = tcp.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&answer));
    assert_eq!(issuer.counters().requests_total, 0);
}

#[test]
fn pem_files_for_other_servers() {
    let pki = TestPki::generate_for(&["10.42.0.1"]).unwrap();
    let dir = std::env::temp_dir().join(format!("reauth-testkit-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = pki.write_to(&dir).unwrap();
    assert_eq!(std::fs::read_to_string(&files.ca).unwrap(), pki.ca_pem());
    assert!(std::fs::read_to_string(&files.server_key).unwrap().contains("PRIVATE KEY"));
    assert!(!format!("{pki:?}").contains("PRIVATE"));
    std::fs::remove_dir_all(&dir).unwrap();
}
