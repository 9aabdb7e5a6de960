//! The firmware's one clock: SysTick counts milliseconds since boot. It feeds reauth-nal
//! (`Instant`), smoltcp-nal (an `embedded_time::Clock`) and the TCP timestamps of every socket.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use embedded_time::fraction::Fraction;
use embedded_time::{Instant, clock};

/// The core clock of QEMU's mps2 boards (`SYSCLK_FRQ` in QEMU's `hw/arm/mps2.c`): 25 MHz.
const CORE_HZ: u32 = 25_000_000;

/// Milliseconds since [`start`]; wraps after 49 days, far beyond any run.
static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Starts SysTick with a 1 ms period and its interrupt, which also ends every `wfi`.
pub(crate) fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_counter();
    syst.enable_interrupt();
}

/// Milliseconds since [`start`].
pub(crate) fn millis() -> u32 {
    MILLIS.load(Ordering::Relaxed)
}

/// The TCP timestamp value (RFC 7323) of every socket: milliseconds since boot. A SYN on a
/// port that an earlier connection used carries a newer timestamp, so a server still holding
/// that connection in TIME_WAIT accepts it at once (RFC 6191) instead of answering with an ACK
/// that costs the client a SYN retransmission.
pub(crate) fn tsval() -> u32 {
    millis()
}

/// The clock smoltcp-nal reads, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Millis;

impl clock::Clock for Millis {
    type T = u32;
    const SCALING_FACTOR: Fraction = Fraction::new(1, 1000);

    fn try_now(&self) -> Result<Instant<Self>, clock::Error> {
        Ok(Instant::new(millis()))
    }
}

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}
