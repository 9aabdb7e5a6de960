//! embassy-net's driver for the board's LAN9118: the polled smoltcp device of `firmware/qemu`
//! (included, not copied), its frames handed to embassy-net. The chip's interrupt line is not
//! used: the SysTick ([`crate::time`]) wakes the receiver every millisecond.

use core::task::Context;

use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState};
use embassy_sync::waitqueue::AtomicWaker;
use smoltcp::phy::{Device, RxToken as _, TxToken as _};
use smoltcp::time::Instant;

use crate::lan9118::{self, Lan9118, MTU};

/// The task waiting for a frame (embassy-net's runner), woken at every tick.
pub(crate) static RX_WAKER: AtomicWaker = AtomicWaker::new();

/// The LAN9118 as an embassy-net driver.
pub(crate) struct Nic(pub(crate) Lan9118);

impl Driver for Nic {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx<'_>, Tx<'_>)> {
        RX_WAKER.register(cx.waker());
        let (rx, tx) = self.0.receive(Instant::ZERO)?;
        Some((Rx(rx), Tx(tx)))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Tx<'_>> {
        RX_WAKER.register(cx.waker());
        self.0.transmit(Instant::ZERO).map(Tx)
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.0.mac())
    }
}

/// A received frame.
pub(crate) struct Rx<'a>(lan9118::RxToken<'a>);

impl embassy_net_driver::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        // embassy-net may parse in place; smoltcp's token lends the frame read-only.
        self.0.consume(|frame| {
            let mut copy = [0u8; MTU];
            let len = frame.len().min(MTU);
            copy[..len].copy_from_slice(&frame[..len]);
            f(&mut copy[..len])
        })
    }
}

/// Room for a frame to send.
pub(crate) struct Tx<'a>(lan9118::TxToken<'a>);

impl embassy_net_driver::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.consume(len, f)
    }
}
