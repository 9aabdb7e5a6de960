//! `reauth get`: one authenticated GET against a real OAuth2 server. The tokens live in a file
//! store, so every run resumes where the last one stopped and saves the rotated refresh token.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use reauth_core::oauth::ClientAuth;
use reauth_ureq::{Client, ClientAssertionKey, FileStore, StoredTokens, TokenStore};
use zeroize::Zeroizing;

/// Options of `reauth get`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// The URL to GET.
    url: String,
    /// The OAuth2 token endpoint used to refresh.
    #[arg(long, required_unless_present = "issuer")]
    token_url: Option<String>,
    /// The authorization server's issuer URL: the token endpoint and the client
    /// authentication method are taken from its metadata (RFC 8414, then OpenID discovery).
    /// `--token-url` and `--client-auth` win over what it says.
    #[arg(long)]
    issuer: Option<String>,
    /// The file the tokens are kept in (created with mode 0600).
    #[arg(long)]
    store: PathBuf,
    /// `client_id` sent with each refresh.
    #[arg(long)]
    client_id: Option<String>,
    /// Name of an environment variable holding the `client_secret` (never a command-line
    /// argument, where other users could read it).
    #[arg(long, value_name = "VAR")]
    client_secret_env: Option<String>,
    /// How the secret authenticates the client: HTTP Basic (`client_secret_basic`, what every
    /// server must accept) or in the form body (`client_secret_post`).
    /// Default: Basic, or what the issuer's metadata lists.
    #[arg(long, value_enum)]
    client_auth: Option<AuthMethod>,
    /// A PEM file with the client's private key (RSA for RS256, P-256 for ES256): the client
    /// authenticates with `private_key_jwt` (RFC 7523), a signed assertion instead of a secret.
    #[arg(long, value_name = "FILE", conflicts_with = "client_secret_env")]
    private_key: Option<PathBuf>,
    /// The `kid` to put in the assertion's header, for a server that holds several keys.
    #[arg(long, value_name = "KID", requires = "private_key")]
    key_id: Option<String>,
    /// `scope` asked for with each refresh.
    #[arg(long)]
    scope: Option<String>,
    /// Name of an environment variable holding a refresh token to seed the store with (replaces
    /// what the store holds).
    #[arg(long, value_name = "VAR")]
    refresh_token_env: Option<String>,
    /// Use the proxy named by HTTPS_PROXY/HTTP_PROXY/ALL_PROXY (and NO_PROXY).
    #[arg(long)]
    env_proxy: bool,
    /// A PEM file of CA certificates to trust instead of the bundled Mozilla roots, for a token
    /// endpoint or an API behind a private CA (may be given more than once).
    #[arg(long, value_name = "FILE")]
    root_certificates: Vec<PathBuf>,
    /// Verify servers with the operating system's trust store and verifier instead of the
    /// bundled Mozilla roots.
    #[arg(long, conflicts_with = "root_certificates")]
    platform_verifier: bool,
    /// Allow plain http to hosts other than loopback (tokens and secrets then cross the
    /// network in the clear).
    #[arg(long)]
    allow_insecure_http: bool,
}

/// `--client-auth` (of `reauth get` and `reauth login`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuthMethod {
    /// `client_secret_basic`.
    Basic,
    /// `client_secret_post`.
    Post,
}

impl From<AuthMethod> for ClientAuth {
    fn from(method: AuthMethod) -> Self {
        match method {
            AuthMethod::Basic => Self::Basic,
            AuthMethod::Post => Self::Post,
        }
    }
}

/// Runs the GET: body to stdout, errors to stderr.
pub(crate) fn run(args: Args) -> ExitCode {
    match get(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reauth get: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn get(args: &Args) -> Result<ExitCode, Box<dyn core::error::Error>> {
    let store = FileStore::new(&args.store);
    if let Some(var) = &args.refresh_token_env {
        let token = Zeroizing::new(
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
        );
        store.save_over(StoredTokens {
            version: 0,
            refresh_token: token,
            access_token: None,
            expires_at: None,
        })?;
    }
    let mut builder = Client::builder()
        .store(store)
        .env_proxy(args.env_proxy)
        .platform_verifier(args.platform_verifier)
        .allow_insecure_http(args.allow_insecure_http)
        .user_agent(concat!("reauth/", env!("CARGO_PKG_VERSION")));
    if let Some(token_url) = &args.token_url {
        builder = builder.token_url(token_url);
    }
    if let Some(issuer) = &args.issuer {
        builder = builder.issuer(issuer);
    }
    for path in &args.root_certificates {
        builder = builder.root_certificates_file(path);
    }
    if let Some(id) = &args.client_id {
        builder = builder.client_id(id);
    }
    if let Some(var) = &args.client_secret_env {
        let secret = Zeroizing::new(
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
        );
        builder = builder.client_secret(secret.as_str());
        if let Some(method) = args.client_auth {
            builder = builder.client_auth(method.into());
        }
    }
    if let Some(path) = &args.private_key {
        let pem = Zeroizing::new(
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        );
        let mut key =
            ClientAssertionKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(kid) = &args.key_id {
            key = key.key_id(kid);
        }
        builder = builder.private_key_jwt(key);
    }
    if let Some(scope) = &args.scope {
        builder = builder.scope(scope);
    }
    let client = builder.build()?;
    if client.needs_login() {
        let endpoint = match (&args.token_url, &args.issuer) {
            (Some(token_url), _) => format!("--token-url {token_url}"),
            (None, Some(issuer)) => format!("--issuer {issuer}"),
            (None, None) => String::new(),
        };
        eprintln!(
            "reauth get: {} holds no refresh token. Seed it once with a refresh token from your \
             login flow, e.g.\n  REFRESH_TOKEN=... reauth get {} {endpoint} --store {} \
             --refresh-token-env REFRESH_TOKEN",
            args.store.display(),
            args.url,
            args.store.display()
        );
        return Ok(ExitCode::from(2));
    }
    let mut response = match client.get(&args.url) {
        Ok(response) => response,
        Err(reauth_ureq::Error::NeedsLogin) => {
            // Say why: the server's refusal, with its own description.
            match client.last_refresh_error() {
                // A client set up wrong (its secret, its auth method, its TLS roots) is not
                // cured by a new login: say what is wrong instead.
                Some(reason) if reason.is_configuration_error() => {
                    eprintln!("reauth get: {reason}");
                }
                Some(reason) => eprintln!("reauth get: log in again: {reason}"),
                None => eprintln!("reauth get: no usable credentials: log in again"),
            }
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e.into()),
    };
    let status = response.status();
    let mut stdout = io::stdout().lock();
    io::copy(&mut response.body_mut().as_reader(), &mut stdout)?;
    stdout.flush()?;
    if status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("reauth get: HTTP {status}");
        Ok(ExitCode::FAILURE)
    }
}
