//! One HTTP exchange over one connection, awaited step by step under deadlines: connect, send
//! the request written in the buffer, read the response into the same buffer with reauth-nal's
//! response reader, close. Requests and refreshes both go through it.

use embassy_futures::select::{Either, select};
use embedded_io_async::{Read, Write};
use reauth_core::{Duration, Instant};
use reauth_nal::codec::{ReadError, Reader};

use crate::clock::Clock;
use crate::config::{Endpoint, Timeouts};
use crate::error::{Error, Stage, TimeoutKind};
use crate::transport::Transport;

/// One exchange's inputs: where to, and the request in `http[..request_len]`.
pub(crate) struct Exchange<'x> {
    pub(crate) endpoint: &'x Endpoint<'x>,
    pub(crate) request_len: usize,
    pub(crate) head_request: bool,
    pub(crate) timeouts: &'x Timeouts,
    /// The whole exchange ends by then, whatever its phase.
    pub(crate) give_up_at: Instant,
}

/// Runs the exchange: `scratch` goes to the transport, `http` holds the request and then the
/// response. Sets `*sent_any` once any byte of the request went to the transport (from then on
/// the server may have acted on it). Returns the reader that holds the complete response.
///
/// Cancellation-safe: dropping the future drops the connection, which closes it.
pub(crate) async fn run<T: Transport, C: Clock>(
    net: &T,
    clock: &C,
    x: Exchange<'_>,
    scratch: &mut [u8],
    http: &mut [u8],
    sent_any: &mut bool,
) -> Result<Reader, Error<T::Error>> {
    let Exchange { endpoint, request_len, head_request, timeouts, give_up_at } = x;
    let deadline = |limit: Duration| clock.now().saturating_add(limit).min(give_up_at);
    let connect = net.connect(endpoint, scratch);
    let mut connection =
        timed(clock, deadline(timeouts.connect), give_up_at, TimeoutKind::Connect, connect)
            .await?
            .map_err(|error| Error::Transport { stage: Stage::Connect, error })?;

    let mut sent = 0;
    while let Some(rest) = http.get(sent..request_len).filter(|rest| !rest.is_empty()) {
        let write = connection.write(rest);
        let n = timed(clock, deadline(timeouts.idle), give_up_at, TimeoutKind::Idle, write)
            .await?
            .map_err(|error| Error::Transport { stage: Stage::Send, error })?;
        if n == 0 {
            return Err(Error::ConnectionClosed);
        }
        *sent_any = true;
        sent += n;
    }
    let flush = connection.flush();
    timed(clock, deadline(timeouts.idle), give_up_at, TimeoutKind::Idle, flush)
        .await?
        .map_err(|error| Error::Transport { stage: Stage::Send, error })?;

    // The response deadline runs from the end of the request until the head is complete (the
    // server's thinking time); after it, each read has the idle deadline.
    let response_at = deadline(timeouts.response);
    let mut reader = Reader::new(head_request);
    loop {
        let (at, kind) = if reader.has_head() {
            (deadline(timeouts.idle), TimeoutKind::Idle)
        } else {
            (response_at, TimeoutKind::Response)
        };
        // A close-delimited body that filled the buffer fits only if the stream ends right
        // here, which a one-byte probe tells.
        let mut probe = [0u8; 1];
        let spare = reader.spare(http);
        let full = spare.is_empty();
        let into = if full { &mut probe[..] } else { spare };
        let read = connection.read(into);
        let n = timed(clock, at, give_up_at, kind, read)
            .await?
            .map_err(|error| Error::Transport { stage: Stage::Receive, error })?;
        let done = match n {
            0 => reader.on_eof().map(|()| true),
            _ if full => Err(ReadError::TooLarge),
            n => reader.on_data(http, n),
        };
        match done {
            Ok(true) => return Ok(reader),
            Ok(false) => {}
            Err(ReadError::Http(e)) => return Err(Error::Http(e)),
            Err(ReadError::TooLarge) => {
                return Err(Error::ResponseTooLarge { capacity: http.len() });
            }
            Err(ReadError::Truncated) => return Err(Error::ConnectionClosed),
        }
    }
}

/// `future` with a deadline: [`TimeoutKind::Total`] if the whole exchange's passed first, `kind`
/// (the step's own timeout) if the step's did.
async fn timed<F: Future, C: Clock, E>(
    clock: &C,
    at: Instant,
    give_up_at: Instant,
    kind: TimeoutKind,
    future: F,
) -> Result<F::Output, Error<E>> {
    match select(future, clock.sleep_until(at)).await {
        Either::First(output) => Ok(output),
        Either::Second(()) if at >= give_up_at => Err(Error::Timeout(TimeoutKind::Total)),
        Either::Second(()) => Err(Error::Timeout(kind)),
    }
}
