//! embassy-time's driver on the core's SysTick: a 1 kHz tick (embassy-time is built for it,
//! feature `tick-hz-1_000`), at which the timer queue hands out what is due and the NIC's
//! receiver is woken ([`crate::nic`] has no interrupt line).

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// The mps2-an386's core clock.
const CORE_HZ: u32 = 25_000_000;

struct SysTickDriver {
    /// Milliseconds since [`start`].
    ticks: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow(cs).borrow_mut();
            if queue.schedule_wake(at, waker) {
                // A deadline already passed is handed out now, not at the next tick.
                queue.next_expiration(self.ticks.borrow(cs).get());
            }
        });
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

/// Starts the 1 kHz tick.
pub(crate) fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let now = DRIVER.ticks.borrow(cs).get() + 1;
        DRIVER.ticks.borrow(cs).set(now);
        DRIVER.queue.borrow(cs).borrow_mut().next_expiration(now);
    });
    crate::nic::RX_WAKER.wake();
}
