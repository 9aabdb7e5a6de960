//! Network namespaces for the real-stack runs (`reauth firmware --stack smoltcp-tap|qemu`):
//! the run makes one of its own (`ip netns add`), starts itself again inside it (`ip netns
//! exec`), and deletes it when that ends. Inside, the mock issuer, the TAP device and QEMU's
//! user-mode network use addresses that exist only there; nothing leaves the machine.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::process::{Command, ExitCode};

/// Set, to the namespace's name, in the run started inside the namespace.
const ENV: &str = "REAUTH_NETNS";

/// The namespace this process runs in, if a run of ours made it.
pub(crate) fn current() -> Option<String> {
    env::var(ENV).ok()
}

/// Whether this process runs as root (user id 0), which `ip netns` and `ip tuntap` need.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|line| {
            line.strip_prefix("Uid:").and_then(|ids| ids.split_whitespace().next()) == Some("0")
        })
    })
}

/// Why a namespace cannot be made here, or `None` when it can.
fn missing() -> Option<&'static str> {
    if !is_root() {
        Some("not root (ip netns and ip tuntap need it)")
    } else if !on_path("ip") {
        Some("no `ip` command (iproute2)")
    } else {
        None
    }
}

/// Whether `program` is an executable file in a directory of the `PATH`.
fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A network namespace of ours; dropping it deletes it, and with it every device inside.
#[derive(Debug)]
pub(crate) struct Namespace {
    name: String,
}

impl Namespace {
    /// Makes `reauth-PID` with its loopback up.
    ///
    /// # Errors
    ///
    /// Not root, no `ip` command, or `ip` failed.
    pub(crate) fn create() -> io::Result<Self> {
        if let Some(why) = missing() {
            return Err(io::Error::other(format!("cannot make a network namespace: {why}")));
        }
        let name = format!("reauth-{}", std::process::id());
        ip(["netns", "add", name.as_str()])?;
        let namespace = Self { name };
        ip(["-n", namespace.name.as_str(), "link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// Runs this program again, with the same arguments, inside the namespace; its exit code.
    pub(crate) fn run_self(self) -> ExitCode {
        let status = env::current_exe().and_then(|exe| {
            Command::new("ip")
                .args(["netns", "exec", self.name.as_str()])
                .arg(exe)
                .args(env::args_os().skip(1))
                .env(ENV, &self.name)
                .status()
        });
        match status {
            Ok(status) if status.success() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("reauth: cannot run inside network namespace {}: {e}", self.name);
                ExitCode::FAILURE
            }
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(["netns", "delete", self.name.as_str()]);
    }
}

/// Runs `ip ARGS`.
///
/// # Errors
///
/// `ip` could not be started or failed.
pub(crate) fn ip<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> io::Result<()> {
    let args: Vec<S> = args.into_iter().collect();
    let status = Command::new("ip").args(&args).status()?;
    if status.success() {
        Ok(())
    } else {
        let line: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        Err(io::Error::other(format!("`ip {}` failed ({status})", line.join(" "))))
    }
}
