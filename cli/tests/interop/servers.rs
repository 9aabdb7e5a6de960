//! Starting and stopping the real servers: oidc-provider under Node, Authlib under the venv's
//! Python, each on two free loopback ports (HTTP and HTTPS, the latter with a certificate from
//! a CA made here), killed when the guard drops.

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reauth_testkit::tls::{PkiFiles, TestPki};
use reauth_ureq::ureq;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use tempfile::TempDir;

/// How reauth-ureq, `reauth get` and the login flow talk to the servers: HTTPS, the test CA
/// their only root. reauth-nal has no TLS and uses the servers' plain HTTP port
/// ([`Server::http_addr`]).
pub(crate) const TRANSPORT: Transport = Transport::Https;

/// Plain HTTP or HTTPS on loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    #[allow(dead_code, reason = "the other setting of TRANSPORT")]
    Http,
    Https,
}

/// The repository's top directory (the servers' files are under `interop/`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// oidc-provider (Node).
    OidcProvider,
    /// Authlib + Flask (Python); `superseded_403`: a bare 403 for an access token a rotation
    /// revoked (issue 11 item 10) instead of 401 `invalid_token`.
    Authlib { superseded_403: bool },
}

impl Kind {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::OidcProvider => "oidc-provider",
            Self::Authlib { superseded_403: false } => "authlib",
            Self::Authlib { superseded_403: true } => "authlib (403 for superseded tokens)",
        }
    }

    /// The protected resource the requests GET.
    pub(crate) const fn api_path(self) -> &'static str {
        match self {
            Self::OidcProvider => "/me",
            Self::Authlib { .. } => "/api",
        }
    }

    /// The token endpoint's path.
    pub(crate) const fn token_path(self) -> &'static str {
        "/token"
    }

    /// `None` when this server can run here, or why not.
    fn missing(self) -> Option<String> {
        match self {
            Self::OidcProvider => {
                if !on_path("node") {
                    Some("no `node` on PATH".into())
                } else if !repo().join("interop/oidc-provider/node_modules/oidc-provider").is_dir()
                {
                    Some(
                        "oidc-provider not installed (run `npm ci` in interop/oidc-provider)"
                            .into(),
                    )
                } else {
                    None
                }
            }
            Self::Authlib { .. } => {
                if python().is_file() {
                    None
                } else {
                    Some(format!(
                        "no venv at {} (python3 -m venv interop/authlib/.venv && \
                         interop/authlib/.venv/bin/pip install -r interop/authlib/requirements.txt)",
                        python().display()
                    ))
                }
            }
        }
    }
}

fn python() -> PathBuf {
    repo().join("interop/authlib/.venv/bin/python")
}

/// Whether a program is on the `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// True when the test may go on; prints `skipped: TEST: WHY` and returns false when a server
/// it needs cannot run here, and fails instead when `CI` is set.
pub(crate) fn can_run(test: &str, kind: Kind) -> bool {
    let Some(why) = kind.missing() else { return true };
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "{test} cannot run in CI: {why}");
    println!("skipped: {test}: {why}");
    false
}

/// A loopback port free right now (the OS picks it; the listener is closed at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CA made at test time and a server certificate for loopback (the testkit's [`TestPki`]),
/// written as PEM files into a temporary directory the servers read; and the key pair of the
/// `private_key_jwt` client.
pub(crate) struct Pki {
    _dir: TempDir,
    pub(crate) files: PkiFiles,
    pub(crate) ca_pem: String,
    pub(crate) ca_der: Vec<u8>,
    /// `jwt-client`'s private key (ECDSA P-256, PKCS#8) for `private_key_jwt`, and as a PEM file.
    pub(crate) client_key_pkcs8: Vec<u8>,
    pub(crate) client_key_pem: PathBuf,
    /// Its public key as a JWK (JSON), registered with the servers.
    pub(crate) client_jwk: String,
}

/// The `kid` of `jwt-client`'s key.
pub(crate) const CLIENT_KEY_ID: &str = "interop-1";

impl Pki {
    pub(crate) fn new() -> Self {
        let pki = TestPki::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = pki.write_to(dir.path()).unwrap();
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // An uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let client_jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": CLIENT_KEY_ID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
        .to_string();
        let body = STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<&str> =
            body.as_bytes().chunks(64).map(|line| core::str::from_utf8(line).unwrap()).collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let client_key_pem = dir.path().join("client-key.pem");
        std::fs::write(&client_key_pem, pem).unwrap();
        Self {
            _dir: dir,
            files,
            ca_pem: pki.ca_pem().to_owned(),
            ca_der: pki.ca_der().to_vec(),
            client_key_pkcs8: pkcs8.as_ref().to_vec(),
            client_key_pem,
            client_jwk,
        }
    }
}

/// A running server; killed (and waited for) on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) kind: Kind,
    http: SocketAddr,
    https: SocketAddr,
    pub(crate) pki: Pki,
    /// The server's `ready:` line (its versions).
    pub(crate) banner: String,
}

impl Server {
    /// Starts `kind` with `access_ttl`-second access tokens and waits (at most 30 s) for it to
    /// say it listens.
    pub(crate) fn start(kind: Kind, access_ttl: u32) -> Self {
        let pki = Pki::new();
        let (http_port, https_port) = (free_port(), free_port());
        let http = SocketAddr::from(([127, 0, 0, 1], http_port));
        let https = SocketAddr::from(([127, 0, 0, 1], https_port));
        let base = match TRANSPORT {
            Transport::Http => format!("http://{http}"),
            Transport::Https => format!("https://{https}"),
        };
        let mut command = match kind {
            Kind::OidcProvider => {
                let mut c = Command::new("node");
                c.current_dir(repo().join("interop/oidc-provider"))
                    .arg("server.mjs")
                    .args(["--issuer", &base]);
                c
            }
            Kind::Authlib { superseded_403 } => {
                let mut c = Command::new(python());
                c.current_dir(repo().join("interop/authlib"))
                    .arg("server.py")
                    .args(["--issuer", &base])
                    .args(["--superseded-access", if superseded_403 { "403" } else { "401" }]);
                c
            }
        };
        command
            .args(["--http-port", &http_port.to_string()])
            .args(["--https-port", &https_port.to_string()])
            .arg("--cert")
            .arg(&pki.files.server_cert)
            .arg("--key")
            .arg(&pki.files.server_key)
            .args(["--access-ttl", &access_ttl.to_string()])
            .args(["--client-jwk", &pki.client_jwk])
            // The server exits when its stdin closes, should this process die without Drop.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let (sender, ready) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = sender.clone();
            // Reads to the end, so that the server never blocks on a full pipe.
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        // Only the readers hold a sender now: a server that exits ends the wait at once.
        drop(sender);
        let mut server = Self { child, kind, http, https, pki, banner: String::new() };
        let mut said = Vec::new();
        loop {
            match ready.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.starts_with("ready: ") => {
                    server.banner = line["ready: ".len()..].to_owned();
                    break;
                }
                // oidc-provider's development warnings are expected; keep them for a failure.
                Ok(line) => said.push(line),
                Err(e) => panic!("{} did not start ({e}):\n{}", kind.name(), said.join("\n")),
            }
        }
        // Later output goes nowhere: the readers keep draining the pipes.
        drop(ready);
        server
    }

    /// `http://127.0.0.1:PORT` or `https://...`, as [`TRANSPORT`] says.
    pub(crate) fn base(&self) -> String {
        match TRANSPORT {
            Transport::Http => format!("http://{}", self.http),
            Transport::Https => format!("https://{}", self.https),
        }
    }

    /// The HTTPS address, for reauth-nal-async's TLS transport.
    pub(crate) const fn https_addr(&self) -> SocketAddr {
        self.https
    }

    /// The plain HTTP address, for reauth-nal (no TLS).
    pub(crate) const fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The CA certificate file, for `reauth get --root-certificates`.
    pub(crate) fn ca_file(&self) -> &Path {
        &self.pki.files.ca
    }

    /// An agent for the login flow and the counters: no redirects followed, statuses as
    /// answers, the test CA trusted for HTTPS.
    pub(crate) fn agent(&self) -> ureq::Agent {
        let cert = ureq::tls::Certificate::from_pem(self.pki.ca_pem.as_bytes()).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
            .build();
        ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .tls_config(tls)
            .build()
            .new_agent()
    }

    /// The server's counters (`GET /__counts`).
    pub(crate) fn counts(&self) -> Counts {
        let mut response = self.agent().get(format!("{}/__counts", self.base())).call().unwrap();
        assert_eq!(response.status(), 200);
        let body = response.body_mut().read_to_string().unwrap();
        Counts(serde_json::from_str(&body).unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /__counts` of a server.
#[derive(Debug)]
pub(crate) struct Counts(serde_json::Value);

impl Counts {
    /// One counter; 0 if the server does not keep it.
    pub(crate) fn get(&self, name: &str) -> u64 {
        self.0.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0)
    }

    /// `self - before`, counter by counter.
    pub(crate) fn since(&self, before: &Self, name: &str) -> u64 {
        self.get(name) - before.get(name)
    }
}
