//! TLS on the desktop: which roots the client trusts (ureq's bundled Mozilla roots, the
//! application's own CA certificates, or the platform's verifier), which URLs may go without
//! TLS at all, and which failures mean "the client is set up wrong" rather than "try again".
//!
//! The same settings apply to the API agent and to the token endpoint's agent: a token endpoint
//! behind a private CA is as common as an API behind one.

use core::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Why TLS settings or a URL were refused. The crate's [`Error`](crate::Error) has a variant for
/// each (this module sits below it and does not name it).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Root certificates that cannot be used.
    RootCertificates(String),
    /// Settings that exclude each other.
    Conflict(&'static str),
    /// Plain http off loopback without the opt-in.
    InsecureUrl {
        /// Which URL.
        what: &'static str,
        /// Its origin.
        origin: String,
    },
    /// Not an http or https URL with a host.
    NotHttp(&'static str),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RootCertificates(what) => write!(f, "unusable root certificates: {what}"),
            Self::Conflict(what) => f.write_str(what),
            Self::InsecureUrl { what, origin } => write!(
                f,
                "{what} is plain http to a host other than loopback ({origin}): use https, or \
                 allow_insecure_http if the network between is trusted"
            ),
            Self::NotHttp(what) => write!(f, "{what}: not an http or https URL with a host"),
        }
    }
}

/// Where the trusted root certificates come from.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsSettings {
    /// The application's own roots, in the order given; empty: the default roots.
    roots: Vec<RootSource>,
    /// Verify with the platform's verifier (feature `platform-verifier`).
    platform_verifier: bool,
    /// Plain `http` to hosts other than loopback is allowed.
    pub(crate) allow_insecure_http: bool,
}

/// One source of root certificates.
#[derive(Clone)]
enum RootSource {
    /// PEM text given by the application.
    Pem(Arc<[u8]>),
    /// A PEM file read when the client is built.
    File(PathBuf),
}

impl TlsSettings {
    /// Whether nothing was set: the bundled roots, https only off loopback.
    const fn is_default(&self) -> bool {
        self.roots.is_empty() && !self.platform_verifier && !self.allow_insecure_http
    }

    /// These settings, or `inherited` when nothing was set here: a login run through a client
    /// takes the client's, so that a private CA is given once.
    pub(crate) const fn or<'s>(&'s self, inherited: &'s Self) -> &'s Self {
        if self.is_default() { inherited } else { self }
    }

    pub(crate) fn add_pem(&mut self, pem: &[u8]) {
        self.roots.push(RootSource::Pem(pem.into()));
    }

    pub(crate) fn add_file(&mut self, path: PathBuf) {
        self.roots.push(RootSource::File(path));
    }

    #[cfg_attr(not(feature = "platform-verifier"), allow(dead_code))]
    pub(crate) const fn use_platform_verifier(&mut self, enabled: bool) {
        self.platform_verifier = enabled;
    }

    /// The TLS config both agents use: the default (Mozilla's roots, as bundled by ureq), the
    /// given roots only, or the platform's verifier.
    ///
    /// # Errors
    /// [`Refusal::RootCertificates`] for a file that cannot be read, PEM without a certificate, or
    /// a certificate that cannot be parsed; [`Refusal::Conflict`] when both custom roots and the
    /// platform verifier are asked for.
    pub(crate) fn config(&self) -> Result<TlsConfig, Refusal> {
        if self.platform_verifier {
            if !self.roots.is_empty() {
                return Err(Refusal::Conflict(
                    "root certificates and the platform verifier exclude each other: add the CA \
                     to the platform's store, or give it with root_certificates_pem alone",
                ));
            }
            return Ok(TlsConfig::builder().root_certs(RootCerts::PlatformVerifier).build());
        }
        if self.roots.is_empty() {
            return Ok(TlsConfig::default());
        }
        let mut certs = Vec::new();
        for source in &self.roots {
            let (pem, name) = match source {
                RootSource::Pem(pem) => (pem.to_vec(), "the PEM given".to_owned()),
                RootSource::File(path) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        Refusal::RootCertificates(format!("cannot read {}: {e}", path.display()))
                    })?;
                    (pem, path.display().to_string())
                }
            };
            certs.extend(parse_certificates(&pem, &name)?);
        }
        Ok(TlsConfig::builder().root_certs(RootCerts::new_with_certs(&certs)).build())
    }
}

/// Every certificate of a PEM text, each checked to be one rustls accepts as a root (ureq
/// itself silently skips one it cannot parse, which would surface only as `UnknownIssuer` on the
/// first connection).
fn parse_certificates(pem: &[u8], name: &str) -> Result<Vec<Certificate<'static>>, Refusal> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            // Keys and other sections are not roots; a bundle may well hold them.
            Ok(_) => {}
            Err(e) => return Err(Refusal::RootCertificates(format!("{name}: not valid PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(Refusal::RootCertificates(format!(
            "{name} holds no certificate (expected -----BEGIN CERTIFICATE-----)"
        )));
    }
    let mut check = rustls::RootCertStore::empty();
    let ders = certs.iter().map(|c| rustls::pki_types::CertificateDer::from(c.der()));
    let (_, ignored) = check.add_parsable_certificates(ders);
    if ignored > 0 {
        return Err(Refusal::RootCertificates(format!(
            "{name}: {ignored} of {} certificates cannot be used as a trust anchor",
            certs.len()
        )));
    }
    Ok(certs)
}

/// True if `host` is a loopback host: `localhost`, an address in 127.0.0.0/8, or `::1`
/// (bracketed or not). Traffic to it never leaves the machine, so it may go without TLS.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<core::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks that `uri` is `https`, or `http` to a loopback host, or `http` with the explicit
/// opt-in. `what` names the URL in the error ("the token endpoint", "the request").
///
/// # Errors
/// [`Refusal::InsecureUrl`] naming the URL's origin (never its path or query, which may carry
/// something secret).
pub(crate) fn require_https(
    uri: &Uri,
    allow_insecure_http: bool,
    what: &'static str,
) -> Result<(), Refusal> {
    // Compared without a lowercase copy: this runs for every request and every redirect hop.
    let scheme = uri.scheme_str().unwrap_or_default();
    let (https, http) = (scheme.eq_ignore_ascii_case("https"), scheme.eq_ignore_ascii_case("http"));
    match uri.host() {
        Some(_) if https => Ok(()),
        Some(host) if http && (allow_insecure_http || is_loopback(host)) => Ok(()),
        Some(host) if http => Err(Refusal::InsecureUrl {
            what,
            origin: match uri.port_u16() {
                Some(port) => format!("http://{host}:{port}"),
                None => format!("http://{host}"),
            },
        }),
        _ => Err(Refusal::NotHttp(what)),
    }
}

/// Why a TLS connection was refused, in the terms a user can act on. The cause names the
/// certificate problem as rustls reported it (`UnknownIssuer`, `NotValidForName`, `Expired`,
/// ...). Retrying cannot help: the settings or the server's certificate must change.
#[derive(Clone)]
pub struct TlsError {
    problem: TlsProblem,
    source: Arc<ureq::Error>,
}

/// The kind of certificate problem behind a [`TlsError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The server's certificate does not chain to a trusted root: a private CA not given to
    /// the client ([`ClientBuilder::root_certificates_pem`](crate::ClientBuilder::root_certificates_pem)),
    /// or an interception proxy.
    UnknownIssuer,
    /// The certificate is not for the host name in the URL.
    NotValidForName,
    /// The certificate has expired or is not valid yet (or this machine's clock is wrong).
    Expired,
    /// The certificate was revoked.
    Revoked,
    /// Any other certificate problem (bad encoding, bad signature, wrong purpose, ...).
    BadCertificate,
    /// The server and the client share no protocol version or cipher suite, or the server sent
    /// no certificate.
    Incompatible,
    /// The TLS settings themselves could not be used (for example the platform verifier could
    /// not start).
    Setup,
}

impl TlsError {
    /// The kind of problem.
    #[must_use]
    pub const fn problem(&self) -> TlsProblem {
        self.problem
    }

    /// If `e` is a TLS failure no retry can cure, the typed error for it; otherwise `e` back.
    pub(crate) fn classify(e: ureq::Error) -> Result<Self, ureq::Error> {
        match problem_of(&e) {
            Some(problem) => Ok(Self { problem, source: Arc::new(e) }),
            None => Err(e),
        }
    }
}

/// The certificate problem behind a ureq error, if it is one. rustls reports a failed
/// handshake as an `io::Error` of kind `InvalidData` wrapping its own error, which ureq passes
/// on as `Error::Io`.
fn problem_of(e: &ureq::Error) -> Option<TlsProblem> {
    let rustls_error = match e {
        ureq::Error::Rustls(inner) => Some(inner),
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        ureq::Error::Tls(_) => return Some(TlsProblem::Setup),
        _ => None,
    }?;
    use rustls::CertificateError as C;
    Some(match rustls_error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => TlsProblem::UnknownIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsProblem::NotValidForName,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsProblem::Expired,
            C::Revoked => TlsProblem::Revoked,
            _ => TlsProblem::BadCertificate,
        },
        rustls::Error::NoCertificatesPresented
        | rustls::Error::PeerIncompatible(_)
        | rustls::Error::UnsupportedNameType => TlsProblem::Incompatible,
        rustls::Error::InvalidCertRevocationList(_) => TlsProblem::BadCertificate,
        rustls::Error::General(_) | rustls::Error::Other(_)
            if matches!(e, ureq::Error::Rustls(_)) =>
        {
            TlsProblem::Setup
        }
        // Alerts, a peer that misbehaved, a connection cut mid-handshake: the network's doing
        // as much as the settings', so these stay transient.
        _ => return None,
    })
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server's TLS certificate was not accepted ({}): ", self.source)?;
        f.write_str(match self.problem {
            TlsProblem::UnknownIssuer => {
                "it is not signed by a trusted root; give the client the issuing CA \
                 (root_certificates_pem or root_certificates_file) or use the platform verifier"
            }
            TlsProblem::NotValidForName => "it is for another host name than the URL's",
            TlsProblem::Expired => {
                "it is outside its validity period (or this machine's clock is wrong)"
            }
            TlsProblem::Revoked => "it was revoked",
            TlsProblem::BadCertificate => "it cannot be used",
            TlsProblem::Incompatible => "the server and the client cannot agree on TLS",
            TlsProblem::Setup => "the client's TLS settings cannot be used",
        })?;
        f.write_str("; retrying will not help")
    }
}

impl fmt::Debug for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsError")
            .field("problem", &self.problem)
            .field("source", &self.source)
            .finish()
    }
}

impl core::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl fmt::Debug for RootSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "[::1]", "::1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in
            ["example.com", "128.0.0.1", "10.0.0.1", "[::2]", "localhost.evil.com", "0.0.0.0"]
        {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn https_is_required_off_loopback() {
        let check = |url: &str, allow| require_https(&url.parse().unwrap(), allow, "the test");
        assert!(check("https://auth.example.com/token", false).is_ok());
        assert!(check("http://127.0.0.1:8080/token", false).is_ok());
        assert!(check("http://[::1]:8080/token", false).is_ok());
        assert!(check("http://localhost/token", false).is_ok());
        assert!(check("http://auth.example.com/token", true).is_ok());
        match check("http://auth.example.com:8080/token?secret=1", false) {
            Err(Refusal::InsecureUrl { what, origin }) => {
                assert_eq!(what, "the test");
                assert_eq!(origin, "http://auth.example.com:8080");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(check("ftp://auth.example.com/", true), Err(Refusal::NotHttp(_))));
        assert!(matches!(check("/relative", true), Err(Refusal::NotHttp(_))));
    }

    #[test]
    fn pem_without_certificates_is_a_typed_error() {
        let mut settings = TlsSettings::default();
        settings.add_pem(b"not pem at all");
        assert!(matches!(settings.config(), Err(Refusal::RootCertificates(_))));
        let mut settings = TlsSettings::default();
        settings.add_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(matches!(settings.config(), Err(Refusal::RootCertificates(_))));
        let mut settings = TlsSettings::default();
        settings.add_file("/nonexistent/ca.pem".into());
        let Err(Refusal::RootCertificates(message)) = settings.config() else { panic!() };
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    }

    #[test]
    fn certificate_errors_are_classified() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let tls = TlsError::classify(ureq::Error::Io(io)).unwrap();
        assert_eq!(tls.problem(), TlsProblem::UnknownIssuer);
        assert!(tls.to_string().contains("UnknownIssuer"), "{tls}");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(TlsError::classify(ureq::Error::Io(reset)).is_err());
        assert!(TlsError::classify(ureq::Error::ConnectionFailed).is_err());
    }
}
