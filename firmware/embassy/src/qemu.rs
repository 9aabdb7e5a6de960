//! The run on QEMU's `mps2-an386` (feature `qemu`): the issuer's address and the refresh token
//! from the semihosting command line (`issuer=IP:PORT refresh=TOKEN [seconds=S]`), the outcomes
//! counted, one `result` line printed through semihosting at the end, and QEMU ended with the
//! run's status. Tokens are never printed.

use core::net::SocketAddr;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_semihosting::{debug, hprintln, nr};
use reauth_nal_async::reauth_core::Rejection;
use reauth_nal_async::{Error, Stats};

/// The run's settings.
pub(crate) struct Settings {
    pub(crate) issuer: SocketAddr,
    /// `IP:PORT`, the `Host` header.
    pub(crate) host: &'static str,
    /// `IP`, the name the TLS certificate is checked against.
    pub(crate) name: &'static str,
    /// The CA to pin (`ca=` in hex, DER), for a TLS image.
    pub(crate) ca: Option<&'static [u8]>,
    pub(crate) refresh: &'static str,
    pub(crate) seconds: u32,
}

static REQUESTS: AtomicU32 = AtomicU32::new(0);
static SUCCEEDED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);
static NEEDS_LOGIN: AtomicU32 = AtomicU32::new(0);
static SLOWEST_MS: AtomicU32 = AtomicU32::new(0);
static RUNNING: AtomicU32 = AtomicU32::new(0);
static END_MS: AtomicU32 = AtomicU32::new(0);

/// Reads the semihosting command line; `None` without `issuer=` and `refresh=`.
pub(crate) fn settings() -> Option<Settings> {
    let buffer = cortex_m::singleton!(: [u8; 2048] = [0; 2048])?;
    let mut block = [buffer.as_mut_ptr() as usize, buffer.len()];
    // SAFETY: SYS_GET_CMDLINE takes a two-word block (buffer address, its length), writes at
    // most that many bytes into the buffer and the length it wrote into the block's second
    // word. Both live until the call returns.
    let failed =
        unsafe { cortex_m_semihosting::syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
    if failed != 0 {
        return None;
    }
    let len = core::hint::black_box(block[1]).min(buffer.len());
    let line = buffer[..len].split(|&b| b == 0).next().unwrap_or_default();
    let line = core::str::from_utf8(line).ok()?;
    let (mut issuer, mut host, mut refresh, mut seconds, mut ca) = (None, "", "", 10, None);
    for word in line.split_ascii_whitespace() {
        match word.split_once('=') {
            Some(("issuer", value)) => {
                issuer = value.parse().ok();
                host = value;
            }
            Some(("refresh", value)) => refresh = value,
            Some(("seconds", value)) => seconds = value.parse().ok()?,
            Some(("ca", hex)) => ca = Some(unhex(hex)?),
            _ => {}
        }
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    (!refresh.is_empty()).then_some(Settings { issuer: issuer?, host, name, refresh, seconds, ca })
}

/// Decodes hex digits into a buffer of its own.
fn unhex(hex: &str) -> Option<&'static [u8]> {
    let out = cortex_m::singleton!(: [u8; 1024] = [0; 1024])?;
    let len = hex.len() / 2;
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let [high, low] = pair else { return None };
        *out.get_mut(i)? = digit(*high)? << 4 | digit(*low)?;
    }
    out.get(..len)
}

/// The run starts now and ends `seconds` later; `tasks` tasks will report [`done`].
pub(crate) fn start(seconds: u32, tasks: usize) {
    let now = embassy_time::Instant::now().as_millis() as u32;
    END_MS.store(now.saturating_add(seconds.saturating_mul(1000)), Ordering::Relaxed);
    RUNNING.store(tasks as u32, Ordering::Relaxed);
}

/// True once no new request should start.
pub(crate) fn over() -> bool {
    embassy_time::Instant::now().as_millis() as u32 >= END_MS.load(Ordering::Relaxed)
}

/// Counts one request's outcome and its latency.
pub(crate) fn count<E>(result: Result<u16, Error<E>>, millis: u64) {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    match result {
        Ok(200..300) => {
            SUCCEEDED.fetch_add(1, Ordering::Relaxed);
            SLOWEST_MS.fetch_max(millis as u32, Ordering::Relaxed);
        }
        Err(Error::Rejected(Rejection::NeedsLogin)) => {
            NEEDS_LOGIN.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            FAILED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A task finished; the last one prints the result and ends the emulation.
pub(crate) fn done(stats: Stats) {
    if RUNNING.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    hprintln!(
        "reauth-embassy: result requests={} succeeded={} failed={} needs_login={} refreshes={} \
         refresh_calls={} refresh_failures={} replays={} slowest_ms={}",
        REQUESTS.load(Ordering::Relaxed),
        SUCCEEDED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
        NEEDS_LOGIN.load(Ordering::Relaxed),
        stats.refreshes,
        stats.refresh_calls,
        stats.refresh_failures,
        stats.replays,
        SLOWEST_MS.load(Ordering::Relaxed),
    );
    exit(true);
}

/// Ends the emulation (semihosting SYS_EXIT).
pub(crate) fn exit(success: bool) -> ! {
    debug::exit(if success { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    hprintln!("reauth-embassy: panic");
    exit(false)
}
