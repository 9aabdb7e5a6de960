//! One HTTP exchange over one connection, stepped without blocking: open a socket, connect, send
//! the request (partial writes resumed), flush, receive the response (short reads resumed), and
//! close. Both the request slots and the refresh exchange are built on it.

use core::net::SocketAddr;

use embedded_nal::nb;
use reauth_core::{Duration, Instant};

use crate::config::Timeouts;
use crate::error::{Error, HttpError, Stage, TimeoutKind};
use crate::http::{Answer, Receiver, RecvError};
use crate::stack::StreamEnd;
use crate::transport::Transport;

/// Socket calls one [`Exchange::advance`] may make, so that a stack that never says `WouldBlock`
/// (or a peer that streams framing forever) cannot hold the poll loop. A step that runs out of
/// budget asks to be polled again at once.
const STEP_BUDGET: u8 = 64;

/// The state of one exchange. `C` is the transport's connection type.
#[derive(Debug)]
pub(crate) struct Exchange<C> {
    /// The open connection, from [`Phase::Connecting`] until the exchange ends.
    connection: Option<C>,
    phase: Phase,
    /// Bytes of the request on their way, in [`Phase::Sending`].
    sent: usize,
    /// The response read so far, in [`Phase::Receiving`].
    receiver: Receiver,
    /// When the current phase times out, or the whole exchange if that comes first.
    deadline_at: Instant,
    /// When the whole exchange times out, whatever its phase.
    give_up_at: Instant,
    /// There is work the last advance did not get to (just started, or out of budget): poll
    /// again at once.
    busy: bool,
    /// In [`Phase::Idle`] with a connection: until when it may carry the next exchange.
    idle_until: Instant,
    /// The exchange runs on a kept connection and nothing has come back on it yet: if it fails
    /// now, the server closed the connection while it was idle, and the exchange goes again on
    /// a new one.
    reused: bool,
}

/// `repr(u8)` makes `Idle` the all-zero value (see [`SlotState`](crate::slot::SlotState)).
/// The phases' data lives in [`Exchange`] fields, so that a step updates it in place instead of
/// moving it in and out of the enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// No exchange.
    Idle,
    /// Started; the socket opens at the next advance.
    Start,
    Connecting,
    Sending,
    Flushing,
    Receiving,
}

/// What one exchange sends and where it reads the answer into. The same buffers MUST be passed
/// to every advance of one exchange.
pub(crate) struct Wire<'b> {
    pub(crate) remote: SocketAddr,
    /// The whole request as it goes on the wire.
    pub(crate) request: &'b [u8],
    /// The buffer the answer is read into.
    pub(crate) response: &'b mut [u8],
    /// The request is a `HEAD`: its answer has no body.
    pub(crate) head_request: bool,
    /// The request may go on a kept connection, and its connection may be kept after it for
    /// [`Timeouts::keep_alive`] (an idempotent request; see [`crate::Timeouts`]).
    pub(crate) persistent: bool,
}

/// What an advance achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to report yet; the connection waits on the network or on the next poll.
    Pending,
    /// The response is complete and the connection closed.
    Done(Answer),
}

impl<C> Exchange<C> {
    pub(crate) const fn new() -> Self {
        Self {
            connection: None,
            phase: Phase::Idle,
            sent: 0,
            receiver: Receiver::new(false),
            deadline_at: Instant::ZERO,
            give_up_at: Instant::ZERO,
            busy: false,
            idle_until: Instant::ZERO,
            reused: false,
        }
    }

    /// Begins a new exchange; at the next [`advance`](Self::advance) it takes the kept
    /// connection or opens one. The caller MUST have ended the previous exchange (it ends by
    /// itself when it completes or fails, and by [`abort`](Self::abort)).
    pub(crate) fn start(&mut self) {
        self.phase = Phase::Start;
        self.sent = 0;
        self.busy = true;
    }

    /// When this exchange next needs a poll even if the network stays quiet: its current
    /// deadline, or [`Instant::ZERO`] ("at once") when it has work it could not finish.
    pub(crate) const fn poll_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => None,
            _ if self.busy => Some(Instant::ZERO),
            _ => Some(self.deadline_at),
        }
    }

    /// True once any byte of the current (or last) exchange's request went to the stack: from
    /// then on the server may have acted on it.
    pub(crate) const fn sent_any(&self) -> bool {
        self.sent > 0
    }

    /// Closes a kept connection once it has been idle for [`Timeouts::keep_alive`]. Called
    /// when the exchange's owner is polled without work, so a device that stops sending does not
    /// hold the server's connection much longer.
    pub(crate) fn close_idle<T: Transport<Connection = C>>(&mut self, net: &mut T, now: Instant) {
        if matches!(self.phase, Phase::Idle) && now >= self.idle_until {
            self.abort(net);
        }
    }

    /// Closes the connection, if any, and forgets the exchange.
    pub(crate) fn abort<T: Transport<Connection = C>>(&mut self, net: &mut T) {
        if let Some(connection) = self.connection.take() {
            net.close(connection);
        }
        self.phase = Phase::Idle;
    }

    /// Moves the exchange forward as far as the network allows without waiting. On completion
    /// the connection is kept if the exchange is persistent and the answer allows it, else
    /// closed; on failure it is closed; either way the exchange is idle again.
    ///
    /// # Errors
    /// Transport errors, timeouts, an invalid or oversized response, or the peer closing early.
    pub(crate) fn advance<T: Transport<Connection = C>>(
        &mut self,
        net: &mut T,
        wire: Wire<'_>,
        now: Instant,
        timeouts: &Timeouts,
    ) -> Result<Step, Error<T::Error>> {
        let persistent = wire.persistent;
        let result = self.run(net, wire, now, timeouts);
        match result {
            Ok(Step::Pending) => {}
            // The server closed the kept connection while it was idle (the request may have
            // crossed its close): go again on a new connection. Only idempotent requests are
            // persistent, so sending one twice is safe. Only a connection found closed (or
            // reset) before any byte of the answer: a server that is merely slow (a timeout)
            // may be working on the request, which must not go twice.
            Err(Error::ConnectionClosed | Error::Transport { .. })
                if cfg!(feature = "keep-alive") && self.reused =>
            {
                self.abort(net);
                self.start();
                return Ok(Step::Pending);
            }
            Ok(Step::Done(_))
                if cfg!(feature = "keep-alive") && persistent && self.receiver.reusable() =>
            {
                self.phase = Phase::Idle;
                self.idle_until = deadline(now, timeouts.keep_alive, Instant::MAX);
            }
            _ => self.abort(net),
        }
        result
    }

    #[inline(never)]
    fn run<T: Transport<Connection = C>>(
        &mut self,
        net: &mut T,
        wire: Wire<'_>,
        now: Instant,
        timeouts: &Timeouts,
    ) -> Result<Step, Error<T::Error>> {
        let Wire { remote, request, response, head_request, persistent } = wire;
        self.busy = false;
        match self.phase {
            Phase::Idle => return Ok(Step::Pending),
            Phase::Start => {
                self.give_up_at = deadline(now, timeouts.total, Instant::MAX);
                let (phase, limit) = if cfg!(feature = "keep-alive")
                    && self.reuse_kept(net, persistent, now)
                {
                    (Phase::Sending, timeouts.idle)
                } else {
                    let connection = net.open().map_err(|error| transport(Stage::Socket, error))?;
                    self.connection = Some(connection);
                    (Phase::Connecting, timeouts.connect)
                };
                self.phase = phase;
                self.deadline_at = deadline(now, limit, self.give_up_at);
            }
            _ if now >= self.give_up_at => return Err(Error::Timeout(TimeoutKind::Total)),
            _ => {}
        }
        let Some(connection) = self.connection.as_mut() else {
            // Every phase after `Start` has a connection; a missing one means the exchange was
            // never started properly, which is treated as a closed connection.
            return Err(Error::ConnectionClosed);
        };
        for _ in 0..STEP_BUDGET {
            // What the network said: `Ok(true)` progress (the phase's deadline restarts),
            // `Ok(false)` "would block".
            let progress = match self.phase {
                Phase::Idle | Phase::Start => return Err(Error::ConnectionClosed),
                Phase::Connecting => match net.connect(connection, remote) {
                    Ok(()) => {
                        self.phase = Phase::Sending;
                        self.sent = 0;
                        Ok(true)
                    }
                    Err(e) => would_block(e, Stage::Connect),
                },
                Phase::Sending => match request.get(self.sent..).unwrap_or_default() {
                    [] => {
                        self.phase = Phase::Flushing;
                        continue;
                    }
                    rest => match net.send(connection, rest) {
                        // A stack that accepts nothing is treated like one that would block.
                        Ok(n) => {
                            self.sent += n.min(rest.len());
                            Ok(n > 0)
                        }
                        Err(e) => would_block(e, Stage::Send),
                    },
                },
                Phase::Flushing => match net.flush(connection) {
                    Ok(()) => {
                        self.phase = Phase::Receiving;
                        self.receiver = Receiver::new(head_request);
                        self.deadline_at = deadline(now, timeouts.response, self.give_up_at);
                        continue;
                    }
                    Err(e) => would_block(e, Stage::Send),
                },
                Phase::Receiving => {
                    let receiver = &mut self.receiver;
                    // A close-delimited body that filled the buffer fits only if the stream ends
                    // right here, which a one-byte probe tells.
                    let mut probe = [0u8; 1];
                    let spare = receiver.spare(response);
                    let full = spare.is_empty();
                    let into = if full { &mut probe[..] } else { spare };
                    let answer = match net.receive(connection, into) {
                        Ok(0) => receiver.on_eof().map(Some),
                        Ok(_) if full => Err(RecvError::TooLarge),
                        Ok(n) => {
                            // An answer is coming: whatever happens now is not a stale connection.
                            self.reused = false;
                            let answer = receiver.on_data(response, n);
                            // A stack that cannot report the end of a stream reliably refuses
                            // a body that only the end delimits, as soon as the head says so.
                            if !matches!(T::STREAM_END, StreamEnd::Reported)
                                && receiver.close_delimited()
                            {
                                Err(RecvError::Http(HttpError::CloseDelimited))
                            } else {
                                answer
                            }
                        }
                        Err(e) => {
                            would_block(e, Stage::Receive)?;
                            return self.pending(now);
                        }
                    };
                    match answer {
                        Ok(Some(answer)) => return Ok(Step::Done(answer)),
                        Ok(None) => Ok(true),
                        Err(RecvError::Http(e)) => Err(Error::Http(e)),
                        Err(RecvError::TooLarge) => {
                            Err(Error::ResponseTooLarge { capacity: response.len() })
                        }
                        Err(RecvError::Truncated) => Err(Error::ConnectionClosed),
                    }
                }
            };
            if !progress? {
                return self.pending(now);
            }
            // The response deadline runs from the end of the request until the head is complete
            // (the server's thinking time), and holds while bytes trickle in (interim
            // responses, a slow head); otherwise progress restarts the idle deadline.
            if self.phase != Phase::Receiving || self.receiver.has_head() {
                self.deadline_at = deadline(now, timeouts.idle, self.give_up_at);
            } else if now >= self.deadline_at {
                return self.pending(now);
            }
        }
        // Out of budget: there may be more to do right away.
        self.busy = true;
        Ok(Step::Pending)
    }

    /// At the start of an exchange: true if it goes on the kept connection (the request is
    /// persistent, the connection has not been idle too long, and it is quiet: a server that
    /// closed it, or sent something unasked such as a `408` before closing, has made the
    /// receive side end or hold bytes); otherwise a kept connection is closed and false says to
    /// open one.
    fn reuse_kept<T: Transport<Connection = C>>(
        &mut self,
        net: &mut T,
        persistent: bool,
        now: Instant,
    ) -> bool {
        self.reused = false;
        if let Some(mut kept) = self.connection.take() {
            let quiet = matches!(net.receive(&mut kept, &mut [0; 1]), Err(nb::Error::WouldBlock));
            if persistent && now < self.idle_until && quiet {
                self.connection = Some(kept);
                self.reused = true;
            } else {
                net.close(kept);
            }
        }
        self.reused
    }

    /// The network has nothing for now: fine unless a deadline has passed.
    // Out of line: called from three places.
    #[inline(never)]
    fn pending<E>(&self, now: Instant) -> Result<Step, Error<E>> {
        if now < self.deadline_at {
            return Ok(Step::Pending);
        }
        if now >= self.give_up_at {
            return Err(Error::Timeout(TimeoutKind::Total));
        }
        let kind = match self.phase {
            Phase::Connecting => TimeoutKind::Connect,
            Phase::Receiving if !self.receiver.has_head() => TimeoutKind::Response,
            _ => TimeoutKind::Idle,
        };
        Err(Error::Timeout(kind))
    }
}

/// A phase's deadline: `limit` from `now`, but no later than the whole exchange's. Out of line:
/// the 64-bit arithmetic would otherwise be copied into every phase.
#[inline(never)]
fn deadline(now: Instant, limit: Duration, give_up_at: Instant) -> Instant {
    now.saturating_add(limit).min(give_up_at)
}

/// `Ok(false)` for "would block", else the stack's error at `stage`.
fn would_block<E>(error: nb::Error<E>, stage: Stage) -> Result<bool, Error<E>> {
    match error {
        nb::Error::WouldBlock => Ok(false),
        nb::Error::Other(error) => Err(transport(stage, error)),
    }
}

const fn transport<E>(stage: Stage, error: E) -> Error<E> {
    Error::Transport { stage, error }
}
