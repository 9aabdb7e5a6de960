//! One HTTP exchange over one connection, stepped without blocking: open a socket, connect, send
//! the request (partial writes resumed), flush, receive the response (short reads resumed), and
//! close. Both the request slots and the refresh exchange are built on it.

use core::net::SocketAddr;

use embedded_nal::nb;
use reauth_core::Instant;

use crate::config::Timeouts;
use crate::error::{Error, Stage, TimeoutKind};
use crate::http::{Answer, Receiver, RecvError};
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
    /// When the current phase times out.
    deadline_at: Instant,
    /// When the whole exchange times out, whatever its phase.
    give_up_at: Instant,
    /// There is work the last advance did not get to (just started, or out of budget): poll
    /// again at once.
    busy: bool,
}

/// `repr(u8)` makes `Idle` the all-zero value (see [`SlotState`](crate::slot::SlotState)).
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
enum Phase {
    /// No exchange.
    Idle,
    /// Started; the socket opens at the next advance.
    Start,
    Connecting,
    /// `sent` bytes of the request are on their way.
    Sending {
        sent: usize,
    },
    Flushing,
    Receiving(Receiver),
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
            deadline_at: Instant::ZERO,
            give_up_at: Instant::ZERO,
            busy: false,
        }
    }

    /// Begins a new exchange; the connection opens at the next [`advance`](Self::advance). The
    /// caller MUST have ended the previous one (it ends by itself when it completes or fails,
    /// and by [`abort`](Self::abort)).
    pub(crate) fn start(&mut self) {
        self.phase = Phase::Start;
        self.busy = true;
    }

    /// When this exchange next needs a poll even if the network stays quiet: its current
    /// deadline, or [`Instant::ZERO`] ("at once") when it has work it could not finish.
    pub(crate) const fn poll_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => None,
            _ if self.busy => Some(Instant::ZERO),
            _ if self.deadline_at.millis() < self.give_up_at.millis() => Some(self.deadline_at),
            _ => Some(self.give_up_at),
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
    /// or failure the connection is closed and the exchange is idle again.
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
        let result = self.run(net, wire, now, timeouts);
        if !matches!(result, Ok(Step::Pending)) {
            self.abort(net);
        }
        result
    }

    fn run<T: Transport<Connection = C>>(
        &mut self,
        net: &mut T,
        wire: Wire<'_>,
        now: Instant,
        timeouts: &Timeouts,
    ) -> Result<Step, Error<T::Error>> {
        let Wire { remote, request, response, head_request } = wire;
        self.busy = false;
        if !matches!(self.phase, Phase::Idle | Phase::Start) && now >= self.give_up_at {
            return Err(Error::Timeout(TimeoutKind::Total));
        }
        for _ in 0..STEP_BUDGET {
            if let Phase::Idle = self.phase {
                return Ok(Step::Pending);
            }
            if let Phase::Start = self.phase {
                let connection = net.open().map_err(|error| transport(Stage::Socket, error))?;
                self.connection = Some(connection);
                self.phase = Phase::Connecting;
                self.deadline_at = now.saturating_add(timeouts.connect);
                self.give_up_at = now.saturating_add(timeouts.total);
                continue;
            }
            let Some(connection) = self.connection.as_mut() else {
                // Every phase after `Start` has a connection; a missing one means the exchange
                // was never started properly, which is treated as a closed connection.
                return Err(Error::ConnectionClosed);
            };
            match self.phase {
                Phase::Idle | Phase::Start => {}
                Phase::Connecting => match net.connect(connection, remote) {
                    Ok(()) => {
                        self.phase = Phase::Sending { sent: 0 };
                        self.deadline_at = now.saturating_add(timeouts.idle);
                    }
                    Err(nb::Error::WouldBlock) => return self.pending(now),
                    Err(nb::Error::Other(error)) => return Err(transport(Stage::Connect, error)),
                },
                Phase::Sending { sent } => {
                    let rest = request.get(sent..).unwrap_or_default();
                    if rest.is_empty() {
                        self.phase = Phase::Flushing;
                        continue;
                    }
                    match net.send(connection, rest) {
                        // A stack that accepts nothing is treated like one that would block.
                        Ok(0) | Err(nb::Error::WouldBlock) => return self.pending(now),
                        Ok(n) => {
                            self.phase = Phase::Sending { sent: sent + n.min(rest.len()) };
                            self.deadline_at = now.saturating_add(timeouts.idle);
                        }
                        Err(nb::Error::Other(error)) => return Err(transport(Stage::Send, error)),
                    }
                }
                Phase::Flushing => match net.flush(connection) {
                    Ok(()) => {
                        self.phase = Phase::Receiving(Receiver::new(head_request));
                        self.deadline_at = now.saturating_add(timeouts.response);
                    }
                    Err(nb::Error::WouldBlock) => return self.pending(now),
                    Err(nb::Error::Other(error)) => return Err(transport(Stage::Send, error)),
                },
                Phase::Receiving(mut receiver) => {
                    let had_head = receiver.has_head();
                    // A close-delimited body that filled the buffer fits only if the stream ends
                    // right here, which a one-byte probe tells.
                    let mut probe = [0u8; 1];
                    let spare = receiver.spare(response);
                    let full = spare.is_empty();
                    let into = if full { &mut probe[..] } else { spare };
                    let result = match net.receive(connection, into) {
                        Ok(0) => receiver.on_eof().map(Some),
                        Ok(_) if full => Err(RecvError::TooLarge),
                        Ok(n) => receiver.on_data(response, n),
                        Err(nb::Error::WouldBlock) => return self.pending(now),
                        Err(nb::Error::Other(e)) => return Err(transport(Stage::Receive, e)),
                    };
                    let answer = result.map_err(|e| match e {
                        RecvError::Http(e) => Error::Http(e),
                        RecvError::TooLarge => Error::ResponseTooLarge { capacity: response.len() },
                        RecvError::Truncated => Error::ConnectionClosed,
                    })?;
                    if let Some(answer) = answer {
                        return Ok(Step::Done(answer));
                    }
                    if receiver.has_head() || had_head {
                        // Once the head is in, the response deadline gives way to the idle one.
                        self.deadline_at = now.saturating_add(timeouts.idle);
                    }
                    self.phase = Phase::Receiving(receiver);
                }
            }
        }
        // Out of budget: there may be more to do right away.
        self.busy = true;
        Ok(Step::Pending)
    }

    /// The network has nothing for now: fine unless the phase's deadline has passed.
    fn pending<E>(&self, now: Instant) -> Result<Step, Error<E>> {
        if now >= self.give_up_at {
            return Err(Error::Timeout(TimeoutKind::Total));
        }
        if now < self.deadline_at {
            return Ok(Step::Pending);
        }
        let kind = match self.phase {
            Phase::Connecting => TimeoutKind::Connect,
            Phase::Receiving(receiver) if !receiver.has_head() => TimeoutKind::Response,
            _ => TimeoutKind::Idle,
        };
        Err(Error::Timeout(kind))
    }
}

const fn transport<E>(stage: Stage, error: E) -> Error<E> {
    Error::Transport { stage, error }
}
