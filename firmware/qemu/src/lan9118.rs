//! A polled smoltcp [`Device`] for the SMSC LAN9118 Ethernet controller as QEMU models it on the
//! mps2 boards (`hw/net/lan9118.c`, 32-bit mode, at 0x4020_0000): frames are read from and
//! written to the chip's FIFOs word by word, no interrupts, no DMA.
//!
//! Receive: the RX status FIFO holds one word per waiting frame (its length, CRC included, in
//! bits 29:16); the frame's words follow in the RX data FIFO, least significant byte first.
//! Transmit: two command words (A: first and last segment, buffer size; B: tag and frame length),
//! then the frame's words into the TX data FIFO; QEMU sends the frame when its last word arrives
//! and queues one TX status word, which [`TxToken`] pops so that the status FIFO never fills.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Where the mps2-an386 maps the controller.
const BASE: usize = 0x4020_0000;

// Register offsets (LAN9118 datasheet, section 5; QEMU's `CSR_*`).
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const TX_STATUS_FIFO: usize = 0x48;
const ID_REV: usize = 0x50;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

/// `HW_CFG`: soft reset, self-clearing.
const HW_CFG_SRST: u32 = 1;
/// `TX_CFG`: transmitter on.
const TX_CFG_TX_ON: u32 = 1 << 1;
/// `MAC_CSR_CMD`: busy (start), and read rather than write.
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;
/// MAC registers behind `MAC_CSR_CMD`.
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
/// `MAC_CR`: full duplex, transmitter and receiver on. Promiscuous mode (the reset value) off:
/// only frames for our address and broadcasts come in.
const MAC_CR_FDPX: u32 = 1 << 20;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
/// TX command A: first and last segment of a frame (one buffer per frame).
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;
/// RX status: error summary.
const RX_STATUS_ERROR: u32 = 1 << 15;
/// What `ID_REV` and `BYTE_TEST` read on a LAN9118.
const CHIP_ID: u32 = 0x0118;
const BYTE_TEST_VALUE: u32 = 0x8765_4321;

/// The largest Ethernet frame without its CRC.
pub(crate) const MTU: usize = 1514;
/// A frame's buffer: the frame and its 4-byte CRC, rounded up to whole FIFO words.
const FRAME_BUFFER: usize = 1520;

/// The controller was not found where the board has it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotFound;

/// The controller, with one receive and one transmit frame buffer.
pub(crate) struct Lan9118 {
    rx: [u8; FRAME_BUFFER],
    tx: [u8; FRAME_BUFFER],
    /// TX tags count frames, so that a status word can be matched to its frame when debugging.
    tag: u16,
}

impl Lan9118 {
    /// Resets the controller and turns its MAC on, with the address QEMU gave it (from its
    /// EEPROM: `-nic ...,mac=...`, by default 52:54:00:12:34:56).
    ///
    /// # Errors
    ///
    /// [`NotFound`] when the byte-order test or the chip id do not read as a LAN9118's.
    ///
    /// # Safety
    ///
    /// Only on an mps2 board (or QEMU's model of one), and only once: the returned value owns
    /// the controller's registers.
    pub(crate) unsafe fn take() -> Result<Self, NotFound> {
        let device = Self { rx: [0; FRAME_BUFFER], tx: [0; FRAME_BUFFER], tag: 0 };
        if read(BYTE_TEST) != BYTE_TEST_VALUE || read(ID_REV) >> 16 != CHIP_ID {
            return Err(NotFound);
        }
        write(HW_CFG, HW_CFG_SRST);
        // The reset takes at most a few microseconds on the chip, none in QEMU.
        while read(HW_CFG) & HW_CFG_SRST != 0 {}
        write(INT_EN, 0);
        write(RX_CFG, 0);
        write(TX_CFG, TX_CFG_TX_ON);
        mac_write(MAC_CR, MAC_CR_FDPX | MAC_CR_TXEN | MAC_CR_RXEN);
        Ok(device)
    }

    /// The controller's MAC address.
    pub(crate) fn mac(&self) -> [u8; 6] {
        let low = mac_read(MAC_ADDRL).to_le_bytes();
        let high = mac_read(MAC_ADDRH).to_le_bytes();
        [low[0], low[1], low[2], low[3], high[0], high[1]]
    }
}

impl Device for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = loop {
            if (read(RX_FIFO_INF) >> 16) & 0xff == 0 {
                return None;
            }
            let status = read(RX_STATUS_FIFO);
            let len = ((status >> 16) & 0x3fff) as usize;
            // Every word of the frame leaves the FIFO, also those of a frame that is dropped.
            for (i, word) in (0..len.div_ceil(4)).map(|i| (i, read(RX_DATA_FIFO))) {
                if let Some(dst) = self.rx.get_mut(i * 4..i * 4 + 4) {
                    dst.copy_from_slice(&word.to_le_bytes());
                }
            }
            let frame = len.saturating_sub(4);
            if status & RX_STATUS_ERROR == 0 && (14..=MTU).contains(&frame) {
                break frame;
            }
        };
        let Self { rx, tx, tag } = self;
        Some((RxToken { frame: &rx[..len] }, TxToken { buffer: tx, tag }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        // Free space in the TX data FIFO, in bytes on the chip (QEMU counts words, which only
        // makes this check stricter): room for a whole frame and its two command words.
        (read(TX_FIFO_INF) & 0xffff >= (FRAME_BUFFER + 8) as u32)
            .then_some(TxToken { buffer: &mut self.tx, tag: &mut self.tag })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}

/// A received frame, already copied out of the FIFO.
pub(crate) struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame to send.
pub(crate) struct TxToken<'a> {
    buffer: &'a mut [u8; FRAME_BUFFER],
    tag: &'a mut u16,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(MTU);
        let frame = &mut self.buffer[..len];
        let result = f(frame);
        *self.tag = self.tag.wrapping_add(1);
        // `len` is at most MTU, so it fits the 11-bit buffer size and the 16-bit frame length.
        let size = len as u32;
        write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | size);
        write(TX_DATA_FIFO, (u32::from(*self.tag) << 16) | size);
        for chunk in frame.chunks(4) {
            let mut word = [0; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            write(TX_DATA_FIFO, u32::from_le_bytes(word));
        }
        while (read(TX_FIFO_INF) >> 16) & 0xff != 0 {
            read(TX_STATUS_FIFO);
        }
        result
    }
}

/// Reads a register of the controller.
fn read(offset: usize) -> u32 {
    // SAFETY: `offset` is one of the register offsets above, all inside the controller's
    // 256-byte register block at BASE, which is device memory on the board (no RAM aliases it);
    // a volatile 32-bit read is the access the chip expects. Reading a FIFO pops it, which only
    // this driver does, and it exists once (`Lan9118::take`).
    unsafe { core::ptr::read_volatile((BASE + offset) as *const u32) }
}

/// Writes a register of the controller.
fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`: a register inside the controller's block, written with the volatile
    // 32-bit access the chip expects, by the driver's one instance.
    unsafe { core::ptr::write_volatile((BASE + offset) as *mut u32, value) }
}

/// Reads a MAC register through `MAC_CSR_CMD`/`MAC_CSR_DATA`.
fn mac_read(register: u32) -> u32 {
    write(MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | register);
    while read(MAC_CSR_CMD) & MAC_CSR_BUSY != 0 {}
    read(MAC_CSR_DATA)
}

/// Writes a MAC register through `MAC_CSR_DATA`/`MAC_CSR_CMD`.
fn mac_write(register: u32, value: u32) {
    write(MAC_CSR_DATA, value);
    write(MAC_CSR_CMD, MAC_CSR_BUSY | register);
    while read(MAC_CSR_CMD) & MAC_CSR_BUSY != 0 {}
}
