//! The HTTP response reader that the request slots and the refresh exchange use, opened up for
//! the fuzz targets and corpus tests in `reauth-testkit`. Hidden from the docs and outside any
//! compatibility promise: firmware has no use for it, and it compiles away when unused.

use crate::error::HttpError;
use crate::http::{Answer, Receiver, RecvError, Response};

/// Reads one response into a caller buffer from bytes delivered in pieces of any size, exactly
/// as an exchange does.
///
/// The driver asks for [`spare`](Self::spare) room, copies up to that many received bytes into
/// it and reports the count with [`on_data`](Self::on_data), or reports the end of the stream
/// with [`on_eof`](Self::on_eof). When `spare` is empty (a close-delimited body has filled the
/// buffer) the driver MUST look one byte ahead, as an exchange does: more data means the
/// response is [`ReadError::TooLarge`], the end of the stream means `on_eof`. The same buffer
/// MUST be passed every time.
#[derive(Clone, Copy, Debug)]
pub struct Reader {
    receiver: Receiver,
    /// The complete response, once there is one.
    answer: Option<Answer>,
}

/// Why a [`Reader`] stopped without a response. Each maps to one [`Error`](crate::Error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Not valid HTTP/1.1, or a framing this client does not speak ([`Error::Http`]).
    ///
    /// [`Error::Http`]: crate::Error::Http
    Http(HttpError),
    /// The response does not fit the buffer ([`Error::ResponseTooLarge`]).
    ///
    /// [`Error::ResponseTooLarge`]: crate::Error::ResponseTooLarge
    TooLarge,
    /// The stream ended before the response did ([`Error::ConnectionClosed`]).
    ///
    /// [`Error::ConnectionClosed`]: crate::Error::ConnectionClosed
    Truncated,
}

impl Reader {
    /// A reader for the answer to a request; `head_request` if it was a `HEAD` (no body then,
    /// whatever the headers say).
    #[must_use]
    pub const fn new(head_request: bool) -> Self {
        Self { receiver: Receiver::new(head_request), answer: None }
    }

    /// Where the next bytes go: the free end of `buf`.
    pub fn spare<'b>(&self, buf: &'b mut [u8]) -> &'b mut [u8] {
        self.receiver.spare(buf)
    }

    /// `n` bytes were copied into [`spare`](Self::spare). Returns true once the response is
    /// complete; read it with [`response`](Self::response).
    ///
    /// # Errors
    /// The response is malformed or does not fit `buf`.
    pub fn on_data(&mut self, buf: &mut [u8], n: usize) -> Result<bool, ReadError> {
        let answer = self.receiver.on_data(buf, n).map_err(ReadError::from)?;
        self.answer = self.answer.or(answer);
        Ok(self.answer.is_some())
    }

    /// The stream ended. A close-delimited body is complete now.
    ///
    /// # Errors
    /// [`ReadError::Truncated`] if the response was not complete.
    pub fn on_eof(&mut self) -> Result<(), ReadError> {
        if self.answer.is_none() {
            self.answer = Some(self.receiver.on_eof().map_err(ReadError::from)?);
        }
        Ok(())
    }

    /// True once the head of the final (non-interim) response is complete: the server has
    /// started answering (the response deadline ends, the idle one begins).
    #[must_use]
    pub const fn has_head(&self) -> bool {
        self.receiver.has_head()
    }

    /// The complete response in `buf`, as [`Client::response`](crate::Client::response) would
    /// show it; `None` before it is complete.
    #[must_use]
    pub fn response<'b>(&self, buf: &'b [u8]) -> Option<Response<'b>> {
        self.answer.map(|answer| answer.view(buf))
    }
}

impl From<RecvError> for ReadError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Http(e) => Self::Http(e),
            RecvError::TooLarge => Self::TooLarge,
            RecvError::Truncated => Self::Truncated,
        }
    }
}
