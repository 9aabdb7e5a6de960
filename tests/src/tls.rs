//! Certificates made at test time, for HTTPS tests: a private certificate authority and a server
//! certificate it signed, ready for the mock issuer's TLS listener
//! ([`MockIssuer::start_tls`](crate::issuer::MockIssuer::start_tls)), for a client's custom root
//! (the CA's PEM or DER), and for other servers a test starts (PEM files on disk).
//!
//! Nothing here is a secret worth keeping: every key is made fresh by [`TestPki::generate`] and
//! dies with the test. The keys are ECDSA P-256, which rustls, ureq's verifier and embedded-tls
//! all accept.
//!
//! ```
//! use reauth_testkit::tls::TestPki;
//!
//! let pki = TestPki::generate().unwrap();
//! assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! // Another, unrelated authority: a client that trusts only `pki` must reject its servers.
//! let stranger = TestPki::generate().unwrap();
//! assert_ne!(pki.ca_der(), stranger.ca_der());
//! ```

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the server certificate of [`TestPki::generate`] is valid for: every way a test
/// reaches a loopback server.
pub const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate authority made at test time and one server certificate it signed.
pub struct TestPki {
    /// The authority's certificate, PEM.
    ca_pem: String,
    /// The authority's certificate, DER.
    ca_der: CertificateDer<'static>,
    /// The server's certificate, PEM.
    server_cert_pem: String,
    /// The server's certificate, DER.
    server_cert_der: CertificateDer<'static>,
    /// The server's private key, PKCS#8 PEM.
    server_key_pem: String,
    /// The server's private key, PKCS#8 DER.
    server_key_der: Vec<u8>,
}

/// Where [`TestPki::write_to`] put the PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFiles {
    /// The authority's certificate (`ca.pem`): what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate (`server.pem`).
    pub server_cert: PathBuf,
    /// The server's private key (`server-key.pem`, PKCS#8).
    pub server_key: PathBuf,
}

impl TestPki {
    /// A fresh authority and a server certificate for [`LOOPBACK_NAMES`].
    ///
    /// # Errors
    ///
    /// Fails only if key generation or signing fails (rcgen's error).
    pub fn generate() -> Result<Self, rcgen::Error> {
        Self::generate_for(&LOOPBACK_NAMES)
    }

    /// A fresh authority and a server certificate for `names`: DNS names, or IP addresses
    /// (written as addresses, e.g. `"10.42.0.1"`, they become IP subject alternative names).
    ///
    /// # Errors
    ///
    /// Fails if a name is neither a valid DNS name nor an IP address, or if key generation or
    /// signing fails.
    pub fn generate_for(names: &[&str]) -> Result<Self, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        // A name of its own: two authorities of one test must not look like one to a verifier
        // (same name, wrong key reads as `BadSignature` instead of `UnknownIssuer`).
        ca_params.distinguished_name.push(DnType::CommonName, unique_ca_name());
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut server_params = CertificateParams::new(
            names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>(),
        )?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate()?;
        let server_cert = server_params.signed_by(&server_key, &ca)?;

        Ok(Self {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            server_cert_pem: server_cert.pem(),
            server_cert_der: server_cert.der().clone(),
            server_key_pem: server_key.serialize_pem(),
            server_key_der: server_key.serialize_der(),
        })
    }

    /// The authority's certificate, PEM: what a client adds as its custom root.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The authority's certificate, DER.
    #[must_use]
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The server's certificate, PEM.
    #[must_use]
    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    /// The server's certificate, DER.
    #[must_use]
    pub fn server_cert_der(&self) -> &[u8] {
        &self.server_cert_der
    }

    /// The server's private key, PKCS#8 PEM.
    #[must_use]
    pub fn server_key_pem(&self) -> &str {
        &self.server_key_pem
    }

    /// Writes `ca.pem`, `server.pem` and `server-key.pem` into `dir` (which must exist), for
    /// servers started as other programs (Node, Python).
    ///
    /// # Errors
    ///
    /// Any error writing the files.
    pub fn write_to(&self, dir: &Path) -> io::Result<PkiFiles> {
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
        };
        fs::write(&files.ca, &self.ca_pem)?;
        fs::write(&files.server_cert, &self.server_cert_pem)?;
        fs::write(&files.server_key, &self.server_key_pem)?;
        Ok(files)
    }

    /// A rustls server configuration presenting the server certificate (TLS 1.3 and 1.2, the
    /// ring provider, no client certificates).
    ///
    /// # Errors
    ///
    /// Fails if rustls rejects the key or the protocol versions (it does not for keys made here).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.server_cert_der.clone()], key)?;
        Ok(Arc::new(config))
    }
}

/// `reauth test CA <pid>.<n>.<nanos>`: unique within a process and across processes.
fn unique_ca_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("reauth test CA {}.{n}.{nanos}", std::process::id())
}

/// Shows which authority this is, never the private key.
impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("ca_der_len", &self.ca_der.len())
            .field("server_cert_der_len", &self.server_cert_der.len())
            .finish_non_exhaustive()
    }
}
