//! `reauth login`: the first login, writing the tokens into the `FileStore` that `reauth get`
//! then uses.
//!
//! - On a desktop (the default): the authorization code grant with PKCE and a loopback redirect
//!   (RFC 7636, RFC 8252). It listens on `127.0.0.1`, opens the browser at the authorization URL
//!   when there is one (`xdg-open` with a display, `open`, the Windows URL handler; a failure is
//!   no error), prints the URL in any case, and waits for the browser to come back.
//!   `--no-browser` only prints it (to open it elsewhere on the same machine, or for a test that
//!   plays the browser).
//! - `--device`: the device authorization grant (RFC 8628), for a terminal without a browser or
//!   a machine the browser cannot reach the loopback of (SSH). It shows a user code and where to
//!   enter it, as a device would on its display, and waits while the user approves it on
//!   another device.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use core::time::Duration;

use crate::get::AuthMethod;
use reauth_ureq::{
    AuthorizationCodeLogin, AuthorizationPrompt, Client, ClientBuilder, DeviceLogin, DevicePrompt,
    FileStore,
};
use zeroize::Zeroizing;

/// Options of `reauth login`.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// Log in with the device authorization grant (RFC 8628): show a code, wait for approval.
    /// Without it: the authorization code grant with PKCE in a browser.
    #[arg(long)]
    device: bool,
    /// The OAuth2 token endpoint (gets the code or is polled with the device code, and is
    /// later used to refresh).
    #[arg(long)]
    token_url: String,
    /// The device authorization endpoint (with --device).
    #[arg(long)]
    device_url: Option<String>,
    /// The authorization endpoint the browser visits (without --device).
    #[arg(long)]
    authorize_url: Option<String>,
    /// Do not open a browser; only print the authorization URL.
    #[arg(long)]
    no_browser: bool,
    /// Port of the loopback redirect URI http://127.0.0.1:PORT/callback (0: a free one; set
    /// one for a server that registered a fixed redirect URI).
    #[arg(long, default_value_t = 0)]
    redirect_port: u16,
    /// How long to wait for the browser to come back, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    wait: u64,
    /// The file the tokens are written to (created with mode 0600), as `reauth get --store`.
    #[arg(long)]
    store: PathBuf,
    /// `client_id` of this client (required without --device).
    #[arg(long)]
    client_id: Option<String>,
    /// Name of an environment variable holding the `client_secret` (never a command-line
    /// argument, where other users could read it).
    #[arg(long, value_name = "VAR")]
    client_secret_env: Option<String>,
    /// How the secret authenticates the client at the token endpoint: HTTP Basic
    /// (`client_secret_basic`, the default) or in the form body (`client_secret_post`). The
    /// stored client, which `reauth get` runs, takes its own `--client-auth`.
    #[arg(long, value_enum, requires = "client_secret_env")]
    client_auth: Option<AuthMethod>,
    /// `scope` asked for.
    #[arg(long)]
    scope: Option<String>,
    /// A PEM file of CA certificates to trust at the token endpoint instead of the bundled
    /// Mozilla roots (may be given more than once; the browser flow and the stored client).
    #[arg(long, value_name = "FILE")]
    root_certificates: Vec<PathBuf>,
    /// Allow a plain http token endpoint on a host other than loopback (the code and the
    /// tokens then cross the network in the clear).
    #[arg(long)]
    allow_insecure_http: bool,
}

/// Runs the login: the prompt to stdout, errors to stderr.
pub(crate) fn run(args: Args) -> ExitCode {
    let flow = match (&args.device_url, &args.authorize_url, &args.client_id) {
        (Some(device_url), _, _) if args.device => Flow::Device(device_url),
        (_, Some(authorize_url), Some(client_id)) if !args.device => {
            Flow::AuthorizationCode(authorize_url, client_id)
        }
        _ => {
            eprintln!(
                "reauth login: pass --device with --device-url (the device flow), or \
                 --authorize-url and --client-id (the browser flow with PKCE)"
            );
            return ExitCode::from(2);
        }
    };
    match login(&args, flow) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reauth login: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// The login flow asked for, with its endpoint.
enum Flow<'a> {
    /// The device authorization grant at this endpoint.
    Device(&'a str),
    /// The authorization code grant at this authorization endpoint, for this client id.
    AuthorizationCode(&'a str, &'a str),
}

fn login(args: &Args, flow: Flow<'_>) -> Result<(), Box<dyn core::error::Error>> {
    let mut builder = Client::builder()
        .token_url(&args.token_url)
        .store(FileStore::new(&args.store))
        .allow_insecure_http(args.allow_insecure_http)
        .user_agent(concat!("reauth/", env!("CARGO_PKG_VERSION")));
    for path in &args.root_certificates {
        builder = builder.root_certificates_file(path);
    }
    let secret = match &args.client_secret_env {
        Some(var) => Some(Zeroizing::new(
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
        )),
        None => None,
    };
    if let Some(id) = &args.client_id {
        builder = builder.client_id(id);
    }
    if let Some(secret) = &secret {
        builder = builder.client_secret(secret.as_str());
    }
    if let Some(method) = args.client_auth {
        builder = builder.client_auth(method.into());
    }
    if let Some(scope) = &args.scope {
        builder = builder.scope(scope);
    }
    match flow {
        Flow::Device(device_url) => device_login(args, builder, device_url, secret.as_deref()),
        Flow::AuthorizationCode(authorize_url, client_id) => {
            // No TLS settings of its own: run through the client, the login uses the client's.
            let mut login = AuthorizationCodeLogin::new(authorize_url, &args.token_url, client_id)
                .port(args.redirect_port)
                .wait_timeout(Duration::from_secs(args.wait));
            if let Some(secret) = &secret {
                login = login.client_secret(secret.as_str());
            }
            if let Some(method) = args.client_auth {
                login = login.client_auth(method.into());
            }
            if let Some(scope) = &args.scope {
                login = login.scope(scope);
            }
            let client = builder.build()?;
            let open = !args.no_browser;
            client.login_with_authorization_code(&login, |prompt| show_url(prompt, open))?;
            println!("reauth login: logged in; tokens saved to {}", args.store.display());
            Ok(())
        }
    }
}

fn device_login(
    args: &Args,
    builder: ClientBuilder,
    device_url: &str,
    secret: Option<&String>,
) -> Result<(), Box<dyn core::error::Error>> {
    // No TLS settings of its own: run through the client, the login uses the client's.
    let mut device = DeviceLogin::new(device_url, &args.token_url);
    if let Some(id) = &args.client_id {
        device = device.client_id(id);
    }
    if let Some(secret) = secret {
        device = device.client_secret(secret.as_str());
    }
    if let Some(method) = args.client_auth {
        device = device.client_auth(method.into());
    }
    if let Some(scope) = &args.scope {
        device = device.scope(scope);
    }
    let client = builder.build()?;
    client.login_with_device(&device, show)?;
    println!("reauth login: approved; tokens saved to {}", args.store.display());
    Ok(())
}

/// Prints the authorization URL, and opens the browser at it when asked and one is there.
fn show_url(prompt: &AuthorizationPrompt, open: bool) {
    let opened = open && open_browser(&prompt.url);
    if opened {
        println!("reauth login: opening your browser; if it did not open, visit");
    } else {
        println!("reauth login: to log in, open this URL in a browser on this machine:");
    }
    println!("  {}", prompt.url);
    println!(
        "Waiting up to {} s for the browser to come back to {} (no browser here? use --device)",
        prompt.wait_timeout.as_secs(),
        prompt.redirect_uri
    );
    let _ = std::io::stdout().flush();
}

/// Asks the desktop to open `url` in the default browser; false if there is no way to.
///
/// The launcher is started and not waited for: it may stay until the browser exits. Without a
/// display (`DISPLAY`, `WAYLAND_DISPLAY`) `xdg-open` would fall back to a text browser in this
/// very terminal, so it is not tried.
fn open_browser(url: &str) -> bool {
    use std::process::{Command, Stdio};
    let mut command = if cfg!(target_os = "macos") {
        let mut command = Command::new("open");
        command.arg(url);
        command
    } else if cfg!(windows) {
        // `start` would need the URL quoted for cmd (it holds `&`); the URL handler does not.
        let mut command = Command::new("rundll32");
        command.args(["url.dll,FileProtocolHandler", url]);
        command
    } else {
        let display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        if !display {
            return false;
        }
        let mut command = Command::new("xdg-open");
        command.arg(url);
        command
    };
    let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    child.map(|mut child| drop(std::thread::spawn(move || child.wait()))).is_ok()
}

/// Shows the code the way a device with a small display would.
fn show(prompt: &DevicePrompt) {
    let minutes = prompt.expires_in.as_secs().div_ceil(60);
    println!("+------------------------------------------------+");
    println!("| To sign in, visit                              |");
    println!("|   {:<44} |", prompt.verification_uri);
    println!("| and enter the code                             |");
    println!("|   {:<44} |", prompt.user_code);
    println!("+------------------------------------------------+");
    if let Some(complete) = &prompt.verification_uri_complete {
        println!("or open {complete}");
    }
    println!("The code is valid for {minutes} min. Waiting for approval...");
    let _ = std::io::stdout().flush();
}
