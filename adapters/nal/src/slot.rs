//! One request slot: the request copied in (so that it can be replayed), its place in the
//! coordinator's eyes (running, parked, answered), its connection, and its response buffer.

use core::net::SocketAddr;

use reauth_core::{Instant, RequestId, Ticket, TokenSet};

use crate::config::Timeouts;
use crate::error::Error;
use crate::exchange::{Exchange, Step, Wire};
use crate::http::{
    AUTH_PREFIX, Answer, Layout, Request, Response, put_authorization, wipe, write_request,
};
use crate::transport::Transport;

/// Where a request stands.
///
/// `repr(u8)` makes `Free` the all-zero value, so that a new slot is a plain `memset` instead of
/// a template copied from flash.
#[derive(Debug)]
#[repr(u8)]
pub(crate) enum SlotState<E> {
    /// No request.
    Free,
    /// Waiting for a refresh; the coordinator releases it with a send or a rejection.
    Parked,
    /// On the wire with the ticket's token.
    Running(Ticket),
    /// Answered; the response waits in the buffer until the application releases the slot.
    Answered {
        answer: Answer,
        /// The [`Event::Response`](crate::Event::Response) was handed out.
        reported: bool,
    },
    /// Failed; the slot is freed when the [`Event::Failed`](crate::Event::Failed) is handed out.
    Failed(Error<E>),
}

/// One request slot with a `REQ`-byte request buffer and a `RESP`-byte response buffer.
#[derive(Debug)]
pub(crate) struct Slot<C, E, const REQ: usize, const RESP: usize> {
    pub(crate) id: RequestId,
    pub(crate) state: SlotState<E>,
    exchange: Exchange<C>,
    layout: Layout,
    /// Length of the `Authorization` line now between the head and the tail (0 before the first
    /// send).
    auth_len: usize,
    /// The request is a `HEAD`: its response has no body.
    head_request: bool,
    request: [u8; REQ],
    response: [u8; RESP],
}

impl<C, E, const REQ: usize, const RESP: usize> Slot<C, E, REQ, RESP> {
    pub(crate) const fn new() -> Self {
        Self {
            id: RequestId(0),
            state: SlotState::Free,
            exchange: Exchange::new(),
            layout: Layout { auth_at: 0, tail_len: 0, persistent: false },
            auth_len: 0,
            head_request: false,
            request: [0; REQ],
            response: [0; RESP],
        }
    }

    pub(crate) const fn is_free(&self) -> bool {
        matches!(self.state, SlotState::Free)
    }

    /// Copies `request` in for `id`, leaving room for an access token of up to `max_token`
    /// bytes. With `keep_alive`, an idempotent request may go on the slot's kept connection, and
    /// keep it (see [`write_request`]). The slot stays free until the caller sets its state.
    ///
    /// # Errors
    /// `Err(Some(needed))` if it does not fit, `Err(None)` if it is invalid.
    pub(crate) fn load(
        &mut self,
        id: RequestId,
        request: &Request<'_>,
        host: &str,
        max_token: usize,
        keep_alive: bool,
        ask_close: bool,
    ) -> Result<(), Option<usize>> {
        let layout = write_request(&mut self.request, request, host, keep_alive, ask_close)?;
        let needed = layout.auth_at + layout.tail_len + auth_line_len(max_token);
        if needed > REQ {
            return Err(Some(needed));
        }
        self.id = id;
        self.layout = layout;
        self.auth_len = 0;
        // A byte pattern, not `==`, which links `memcmp` (see `write_request`).
        self.head_request = matches!(request.method.as_bytes(), [b'H', b'E', b'A', b'D']);
        Ok(())
    }

    /// Writes the current access token into the request and starts the exchange. The ticket's
    /// generation becomes that of the token actually written.
    pub(crate) fn send<const A: usize, const R: usize>(
        &mut self,
        mut ticket: Ticket,
        tokens: &TokenSet<A, R>,
    ) {
        let Some(token) = tokens.access() else {
            // The coordinator grants only while a token is installed; without one the request
            // could only be refused by the server.
            self.state = SlotState::Failed(Error::Rejected(reauth_core::Rejection::NeedsLogin));
            return;
        };
        match put_authorization(&mut self.request, self.layout, self.auth_len, token) {
            Ok(auth_len) => self.auth_len = auth_len,
            Err(needed) => {
                // `load` reserved room for the longest token the token set can hold.
                self.state = SlotState::Failed(Error::RequestTooLarge { needed, capacity: REQ });
                return;
            }
        }
        ticket.generation = tokens.generation();
        self.state = SlotState::Running(ticket);
        self.exchange.start();
    }

    /// Moves a running request forward. Returns its ticket and answer once it is answered;
    /// a failure is recorded in the state.
    pub(crate) fn advance<T: Transport<Connection = C, Error = E>>(
        &mut self,
        net: &mut T,
        remote: SocketAddr,
        now: Instant,
        timeouts: &Timeouts,
    ) -> Option<(Ticket, Answer)> {
        let SlotState::Running(ticket) = self.state else {
            if cfg!(feature = "keep-alive") {
                self.exchange.close_idle(net, now);
            }
            return None;
        };
        let end = self.layout.auth_at + self.auth_len + self.layout.tail_len;
        let request = self.request.get(..end).unwrap_or_default();
        let wire = Wire {
            remote,
            request,
            response: &mut self.response,
            head_request: self.head_request,
            persistent: self.layout.persistent,
        };
        let step = self.exchange.advance(net, wire, now, timeouts);
        match step {
            Ok(Step::Pending) => None,
            Ok(Step::Done(answer)) => Some((ticket, answer)),
            Err(error) => {
                self.state = SlotState::Failed(error);
                None
            }
        }
    }

    /// When this slot next needs a poll without news from the network.
    pub(crate) const fn poll_at(&self) -> Option<Instant> {
        self.exchange.poll_at()
    }

    /// The body of the answer the slot just got, for the expiry rule.
    pub(crate) fn body(&self, answer: &Answer) -> &[u8] {
        answer.view(&self.response).body()
    }

    /// The answered response, if the slot holds one.
    pub(crate) fn response(&self) -> Option<Response<'_>> {
        match &self.state {
            SlotState::Answered { answer, .. } => Some(answer.view(&self.response)),
            _ => None,
        }
    }

    /// Wipes both buffers (the request holds the access token) and frees the slot. A running
    /// exchange MUST have been ended first ([`abort`](Self::abort)).
    // Out of line: called from several places.
    #[inline(never)]
    pub(crate) fn free(&mut self) {
        wipe(&mut self.request);
        wipe(&mut self.response);
        self.auth_len = 0;
        self.state = SlotState::Free;
    }

    /// Closes the connection of a running exchange, if any, and frees the slot.
    pub(crate) fn abort<T: Transport<Connection = C>>(&mut self, net: &mut T) {
        self.exchange.abort(net);
        self.free();
    }
}

/// Length of `Authorization: Bearer <token>\r\n` for a token of `token_len` bytes.
const fn auth_line_len(token_len: usize) -> usize {
    AUTH_PREFIX.len() + token_len + 2
}
