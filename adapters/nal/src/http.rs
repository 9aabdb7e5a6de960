//! HTTP/1.1 on the wire, without I/O and without allocation: writing a request head into a fixed
//! buffer, reading a response (the head, then a `Content-Length`, chunked or
//! close-delimited body) into a fixed buffer, and the [`Response`] view the application reads.
//!
//! A response lives in one buffer: the head from offset 0, the body right after it. A chunked
//! body is decoded in place, so the buffer never holds more than the head, the decoded body and
//! the few framing bytes not yet decoded. Whatever does not fit is an error, never a truncation.

use core::ops::Range;

use reauth_core::Duration;
use zeroize::Zeroize;

use crate::error::HttpError;

/// The most header lines a response head may have ([`HttpError::TooManyHeaders`] beyond).
const MAX_HEADERS: usize = 32;

/// The line the client writes for the access token, before the token itself.
pub(crate) const AUTH_PREFIX: &[u8] = b"Authorization: Bearer ";

/// Headers the client writes itself; a request that sets one is refused, so a caller can neither
/// send a second `Authorization` nor break the framing.
const MANAGED_HEADERS: [&str; 5] =
    ["authorization", "host", "content-length", "transfer-encoding", "connection"];

/// A request as the application hands it to [`Client::submit`](crate::Client::submit). It is
/// copied into the slot, so the borrowed parts need only live for that call.
#[derive(Clone, Copy, Debug)]
pub struct Request<'r> {
    /// The method, e.g. `"GET"` or `"POST"`.
    pub method: &'r str,
    /// The request target: an absolute path with optional query, e.g. `"/api/items?page=2"`.
    pub path: &'r str,
    /// Extra headers, e.g. `[("Content-Type", "application/json")]`. `Authorization`, `Host`,
    /// `Content-Length`, `Transfer-Encoding` and `Connection` are written by the client.
    pub headers: &'r [(&'r str, &'r str)],
    /// The body; empty for none.
    pub body: &'r [u8],
}

impl<'r> Request<'r> {
    /// A `GET` of `path` without extra headers.
    #[must_use]
    pub const fn get(path: &'r str) -> Self {
        Self { method: "GET", path, headers: &[], body: &[] }
    }

    /// A `POST` of `body` to `path` without extra headers (add a `Content-Type` with struct
    /// update syntax: `Request { headers: &[...], ..Request::post(path, body) }`).
    #[must_use]
    pub const fn post(path: &'r str, body: &'r [u8]) -> Self {
        Self { method: "POST", path, headers: &[], body }
    }
}

/// A finished response, borrowed from its slot until
/// [`Client::release`](crate::Client::release).
#[derive(Clone, Copy, Debug)]
pub struct Response<'b> {
    status: u16,
    head: &'b [u8],
    body: &'b [u8],
}

impl<'b> Response<'b> {
    /// The status code.
    #[must_use]
    pub const fn status(&self) -> u16 {
        self.status
    }

    /// The body, with any chunked framing removed.
    #[must_use]
    pub const fn body(&self) -> &'b [u8] {
        self.body
    }

    /// The `Retry-After` header in seconds, if any. An HTTP date is not understood (there is no
    /// wall clock) and gives `None`, as in [`reauth_core::oauth::parse_retry_after`], whose
    /// `str` parsing this byte parser keeps out of small images.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        let seconds = parse_decimal(self.header("retry-after")?)?;
        Some(Duration::from_secs(seconds as u64))
    }

    /// The value of the first header called `name` (compared case-insensitively), with
    /// surrounding spaces removed.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        // The head passed `parse_head`, so it is read with the same line splitter: maybe empty
        // lines, the status line, then header lines until the blank one.
        let mut rest = self.head;
        let mut in_headers = false;
        while let Ok(Some((line, after))) = next_line(rest) {
            rest = after;
            if !in_headers {
                in_headers = !line.is_empty();
            } else if let Some((key, value)) = parse_header_line(line)
                && same_name(key, name.as_bytes())
            {
                return Some(value);
            }
        }
        None
    }
}

/// Where the parts of a request written by [`write_request`] sit in the request buffer:
/// `[0, auth_at)` the head without the blank line, then the `Authorization` line (written at
/// send time), then `tail_len` bytes: the blank line and the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) auth_at: usize,
    pub(crate) tail_len: usize,
    /// The request may go on a kept connection, and keep it (see [`write_request`]).
    pub(crate) persistent: bool,
}

/// Writes `request` into `buf` without an `Authorization` line; see [`Layout`]. With
/// `keep_alive`, a request with an idempotent method (RFC 9110 §9.2.2) is persistent: it may be
/// sent again when a kept connection turns out closed before the answer. Any other asks the
/// server to close the connection after answering, if `ask_close` (a stack that loses what
/// arrives with the server's close needs the client to close first: see [`StreamEnd`]).
///
/// [`StreamEnd`]: crate::stack::StreamEnd
///
/// # Errors
/// `Err(Some(needed))` if it does not fit, `Err(None)` if the request is invalid.
pub(crate) fn write_request(
    buf: &mut [u8],
    request: &Request<'_>,
    host: &str,
    keep_alive: bool,
    ask_close: bool,
) -> Result<Layout, Option<usize>> {
    let valid = is_token(request.method)
        && is_visible(request.path)
        && request.path.starts_with('/')
        && is_visible(host)
        && request.headers.iter().all(|(name, value)| {
            is_token(name)
                && is_field_value(value)
                && !MANAGED_HEADERS.iter().any(|m| same_name(name.as_bytes(), m.as_bytes()))
        });
    if !valid {
        return Err(None);
    }
    let method = request.method;
    // Byte patterns rather than `str` comparisons, which link `memcmp`; reauth-core compares
    // JSON keys by a byte loop for the same reason. Together -188 B of the example firmware.
    let bodyless = matches!(
        method.as_bytes(),
        [b'G', b'E', b'T']
            | [b'H', b'E', b'A', b'D']
            | [b'D', b'E', b'L', b'E', b'T', b'E']
            | [b'O', b'P', b'T', b'I', b'O', b'N', b'S']
    );
    let persistent = cfg!(feature = "keep-alive")
        && keep_alive
        && (bodyless || matches!(method.as_bytes(), [b'P', b'U', b'T']));
    let mut out = Cursor::new(buf);
    out.put(request.method.as_bytes());
    out.put(b" ");
    out.put(request.path.as_bytes());
    out.put(b" HTTP/1.1\r\nHost: ");
    out.put(host.as_bytes());
    if !persistent && ask_close {
        out.put(b"\r\nConnection: close");
    }
    out.put(b"\r\n");
    if !request.body.is_empty() || !bodyless {
        out.put(b"Content-Length: ");
        out.put_decimal(request.body.len());
        out.put(b"\r\n");
    }
    for (name, value) in request.headers {
        out.put(name.as_bytes());
        out.put(b": ");
        out.put(value.as_bytes());
        out.put(b"\r\n");
    }
    let auth_at = out.len();
    out.put(b"\r\n");
    out.put(request.body);
    let end = out.finish().map_err(Some)?;
    Ok(Layout { auth_at, tail_len: end - auth_at, persistent })
}

/// Puts `Authorization: Bearer <token>` between the head and the tail of a request that
/// [`write_request`] wrote into `buf` as `layout`, replacing an `Authorization` line of
/// `old_len` bytes written there before (0 for none). Returns the new line's length; the request
/// is then `layout.auth_at + line + layout.tail_len` bytes.
///
/// # Errors
/// `Err(needed)`, the request's length with this token, if it does not fit; `buf` is unchanged.
pub(crate) fn put_authorization(
    buf: &mut [u8],
    layout: Layout,
    old_len: usize,
    token: &str,
) -> Result<usize, usize> {
    let Layout { auth_at, tail_len, .. } = layout;
    let old_tail = auth_at + old_len;
    let new_len = AUTH_PREFIX.len() + token.len() + 2;
    let new_tail = auth_at + new_len;
    let end = new_tail + tail_len;
    if end > buf.len() || old_tail + tail_len > buf.len() {
        return Err(end);
    }
    move_within(buf, old_tail..old_tail + tail_len, new_tail);
    let mut line = Cursor::new(buf.get_mut(auth_at..new_tail).unwrap_or_default());
    line.put(AUTH_PREFIX);
    line.put(token.as_bytes());
    line.put(b"\r\n");
    Ok(new_len)
}

/// Writes into a fixed buffer and counts what would not fit, so that a too-small buffer is
/// reported with the size it would need.
pub(crate) struct Cursor<'b> {
    buf: &'b mut [u8],
    /// Bytes written so far, or that would have been: may exceed `buf.len()`.
    len: usize,
}

impl<'b> Cursor<'b> {
    pub(crate) const fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    // Called a dozen times per request head: one shared copy is smaller than a dozen inlined.
    #[inline(never)]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    /// Lets `write` fill the rest of the buffer; counts what it wrote, or the length it needed
    /// (`Err`, nothing written then).
    pub(crate) fn put_from(&mut self, write: impl FnOnce(&mut [u8]) -> Result<usize, usize>) {
        let spare = self.buf.get_mut(self.len..).unwrap_or_default();
        let (Ok(n) | Err(n)) = write(spare);
        self.len = self.len.saturating_add(n);
    }

    pub(crate) fn put_decimal(&mut self, mut n: usize) {
        // 20 digits hold any u64, so every index below is in range; `get_mut` keeps it so.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            if let Some(d) = digits.get_mut(at) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || at == 0 {
                break;
            }
        }
        self.put(digits.get(at..).unwrap_or(&[]));
    }

    /// The length written, or `Err(needed)` if it did not fit.
    pub(crate) fn finish(self) -> Result<usize, usize> {
        if self.len <= self.buf.len() { Ok(self.len) } else { Err(self.len) }
    }
}

/// What the head of a response says, copied out of the buffer so that it can be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    /// The server keeps the connection open after this response: HTTP/1.1 without
    /// `Connection: close`.
    pub(crate) persistent: bool,
    /// Length of the head in bytes, blank line included; the body starts here.
    pub(crate) len: usize,
}

/// A response read completely: the body is `buf[head.len..body_end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) head: Head,
    pub(crate) body_end: usize,
}

impl Answer {
    /// The application's view of the answer in `buf`.
    pub(crate) fn view<'b>(&self, buf: &'b [u8]) -> Response<'b> {
        Response {
            status: self.head.status,
            head: buf.get(..self.head.len).unwrap_or(&[]),
            body: buf.get(self.head.len..self.body_end).unwrap_or(&[]),
        }
    }
}

/// Why reading a response stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecvError {
    Http(HttpError),
    /// The response does not fit the buffer.
    TooLarge,
    /// The connection ended before the response did.
    Truncated,
}

impl From<HttpError> for RecvError {
    fn from(e: HttpError) -> Self {
        Self::Http(e)
    }
}

/// Interim (1xx) responses one exchange accepts before the final one. Servers send one
/// `100 Continue` or a few `103 Early Hints`; a flood of them is an error, not work.
pub(crate) const MAX_INTERIM: u8 = 8;

/// Reads one response into a caller buffer, a few bytes at a time.
///
/// The driver asks for [`spare`](Self::spare) room, receives into it and reports the count with
/// [`on_data`](Self::on_data), or reports the end of the stream with [`on_eof`](Self::on_eof),
/// until one of them returns the [`Answer`]; then the exchange is over. The same buffer MUST be
/// passed every time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Receiver {
    /// `buf[..filled]` holds what was received (minus framing already decoded away).
    filled: usize,
    /// The request was `HEAD`: the response has no body whatever its headers say.
    head_request: bool,
    /// Interim (1xx) responses dropped so far, at most [`MAX_INTERIM`].
    interim: u8,
    /// The final response's head, once [`framing`](Self::framing) is past [`Framing::Head`].
    head: Head,
    framing: Framing,
}

/// Where the response stands: its head, then its body framed one of three ways.
///
/// `repr(u8)` makes `Head` (and so a new [`Receiver`]) the all-zero value: a new slot is a plain
/// `memset` instead of a template copied from flash.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
enum Framing {
    /// The head of the final (non-interim) response is not complete yet.
    Head,
    /// The body ends at this offset.
    Length { end: usize },
    /// The body ends when the connection does.
    Close,
    /// `buf[head.len..out]` is decoded body, `buf[raw..filled]` framing not yet decoded.
    Chunked { out: usize, raw: usize, chunk: Chunk },
}

#[derive(Clone, Copy, Debug)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, `left` bytes to go.
    Data { left: u64 },
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
}

impl Receiver {
    pub(crate) const fn new(head_request: bool) -> Self {
        let head = Head { status: 0, persistent: false, len: 0 };
        Self { filled: 0, head_request, interim: 0, head, framing: Framing::Head }
    }

    /// Where the next bytes go. Empty only when a close-delimited body has filled the buffer:
    /// the driver then checks whether the stream has ended (see [`on_eof`](Self::on_eof)).
    pub(crate) fn spare<'b>(&self, buf: &'b mut [u8]) -> &'b mut [u8] {
        buf.get_mut(self.filled..).unwrap_or_default()
    }

    /// True once the head says that the body ends with the connection.
    pub(crate) const fn close_delimited(&self) -> bool {
        matches!(self.framing, Framing::Close)
    }

    /// True once the head of the final (non-interim) response is complete.
    pub(crate) const fn has_head(&self) -> bool {
        !matches!(self.framing, Framing::Head)
    }

    /// `n` bytes were received into [`spare`](Self::spare). Returns the answer once complete.
    // Out of line (with `dechunk`), measured smaller on thumbv7em than inlined into the exchange.
    #[inline(never)]
    pub(crate) fn on_data(
        &mut self,
        buf: &mut [u8],
        n: usize,
    ) -> Result<Option<Answer>, RecvError> {
        self.filled = self.filled.saturating_add(n).min(buf.len());
        if let Framing::Head = self.framing {
            // Interim responses (100 Continue, 103 Early Hints) ahead of the final one are
            // stepped over, at most `MAX_INTERIM` per exchange, then dropped together with one
            // move: the work is linear in the bytes received, whatever the server sends.
            let mut skip = 0;
            let found = loop {
                let data = buf.get(skip..self.filled).unwrap_or(&[]);
                match parse_head(data, self.head_request)? {
                    Some((head, _)) if (100..200).contains(&head.status) => {
                        if self.interim >= MAX_INTERIM {
                            return Err(RecvError::Http(HttpError::TooManyInterimResponses));
                        }
                        self.interim += 1;
                        skip += head.len;
                    }
                    found => break found,
                }
            };
            if skip > 0 {
                move_within(buf, skip..self.filled, 0);
                self.filled -= skip;
            }
            let Some((head, framing)) = found else {
                return if self.filled >= buf.len() { Err(RecvError::TooLarge) } else { Ok(None) };
            };
            if matches!(framing, Framing::Length { end } if end > buf.len()) {
                return Err(RecvError::TooLarge);
            }
            self.head = head;
            self.framing = framing;
        }
        // Anything past a declared length is not ours (the connection closes after this
        // response anyway).
        let body_end = match &mut self.framing {
            Framing::Head | Framing::Close => None,
            Framing::Length { end } => (self.filled >= *end).then_some(*end),
            Framing::Chunked { out, raw, chunk } => {
                dechunk(buf, &mut self.filled, out, raw, chunk)?.then_some(*out)
            }
        };
        Ok(body_end.map(|body_end| Answer { head: self.head, body_end }))
    }

    /// Once the answer is complete: whether its connection can carry another exchange. The
    /// server keeps it open, the body's end was known from its framing, and nothing came after.
    pub(crate) const fn reusable(&self) -> bool {
        self.head.persistent
            && match self.framing {
                Framing::Length { end } => self.filled == end,
                Framing::Chunked { raw, .. } => raw == self.filled,
                Framing::Head | Framing::Close => false,
            }
    }

    /// The peer closed the connection: a close-delimited body is complete, anything else was
    /// cut short.
    pub(crate) const fn on_eof(&self) -> Result<Answer, RecvError> {
        match self.framing {
            Framing::Close => Ok(Answer { head: self.head, body_end: self.filled }),
            _ => Err(RecvError::Truncated),
        }
    }
}

/// Parses a complete head from `data`; `Ok(None)` if more bytes are needed.
///
/// The grammar is httparse 1.10's with its default settings, byte for byte (the tests run both
/// side by side on generated heads): empty lines before the status line are skipped;
/// `HTTP/1.0` or `HTTP/1.1`, one space, three digits, then nothing or a space and a reason of
/// tabs, spaces, visible ASCII and obs-text; header lines `token ":" value` whose value has no
/// control character but tab; lines end with CRLF or a bare LF. It is written here rather than
/// taken from httparse because httparse took 1.8 KiB more flash on thumbv7em (its header tables
/// and macro-expanded loops), and this client only looks at two headers. The one difference: a line is checked once it is complete, so a malformed line is
/// reported when its line end arrives, not at its first bad byte.
fn parse_head(data: &[u8], head_request: bool) -> Result<Option<(Head, Framing)>, HttpError> {
    let mut rest = data;
    let status_line = loop {
        let Some((line, after)) = next_line(rest)? else {
            return Ok(None);
        };
        rest = after;
        if !line.is_empty() {
            break line;
        }
    };
    let (status, http11) = parse_status_line(status_line).ok_or(HttpError::InvalidHead)?;
    let mut persistent = http11;
    let mut content_length = None;
    let mut chunked = None;
    let mut count = 0;
    loop {
        let Some((line, after)) = next_line(rest)? else {
            return Ok(None);
        };
        rest = after;
        if line.is_empty() {
            break;
        }
        let (name, value) = parse_header_line(line).ok_or(HttpError::InvalidHead)?;
        count += 1;
        if count > MAX_HEADERS {
            return Err(HttpError::TooManyHeaders);
        }
        if same_name(name, b"content-length") {
            let n = parse_decimal(value).ok_or(HttpError::InvalidContentLength)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(HttpError::InvalidContentLength);
            }
            content_length = Some(n);
        } else if same_name(name, b"transfer-encoding") {
            // Only the last coding decides (RFC 9112 §6.3); a later header overrides.
            let last = value.rsplit(|&b| b == b',').next().map(trim).unwrap_or(&[]);
            chunked = Some(same_name(last, b"chunked"));
        } else if cfg!(feature = "keep-alive")
            && same_name(name, b"connection")
            // `close` anywhere in the value: the only option RFC 9110 §7.6.1 defines, and an
            // unknown option containing it only costs a kept connection.
            && value.windows(5).any(|w| same_name(w, b"close"))
        {
            persistent = false;
        }
    }
    let len = data.len() - rest.len();
    let head = Head { status, persistent, len };
    let no_body = head_request || status == 204 || status == 304 || (100..200).contains(&status);
    let framing = match (no_body, chunked, content_length) {
        (true, _, _) => Framing::Length { end: len },
        // Chunked wins over Content-Length (RFC 9112 §6.3).
        (false, Some(true), _) => Framing::Chunked { out: len, raw: len, chunk: Chunk::Size },
        (false, Some(false), _) => return Err(HttpError::UnsupportedTransferEncoding),
        (false, None, Some(n)) => Framing::Length { end: len.saturating_add(n) },
        (false, None, None) => Framing::Close,
    };
    Ok(Some((head, framing)))
}

/// A line without its end, and the bytes after it.
type LineAndRest<'a> = (&'a [u8], &'a [u8]);

/// Splits off the first line of `data`: the line without its end (LF, or CRLF), and what
/// follows it. `Ok(None)` if its end has not arrived; a CR anywhere else is an error.
fn next_line(data: &[u8]) -> Result<Option<LineAndRest<'_>>, HttpError> {
    let Some(end) = data.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let (line, rest) = data.split_at(end);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // `any`, not `contains`, which links `memchr` (148 bytes).
    #[allow(clippy::manual_contains)]
    if line.iter().any(|&b| b == b'\r') {
        return Err(HttpError::InvalidHead);
    }
    Ok(Some((line, rest.get(1..).unwrap_or_default())))
}

/// The status code of `HTTP/1.x SP 3DIGIT [SP reason]`, and whether `x` is 1.
fn parse_status_line(line: &[u8]) -> Option<(u16, bool)> {
    let (version, rest) = line.split_at_checked(8)?;
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return None;
    }
    let [b' ', digits @ ..] = rest else {
        return None;
    };
    let (code, reason) = digits.split_at_checked(3)?;
    let reason_ok = match reason {
        [] => true,
        [b' ', text @ ..] => text.iter().all(|&b| is_field_byte(b)),
        _ => false,
    };
    let status = code
        .iter()
        .try_fold(0u16, |n, &d| d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0')))?;
    reason_ok.then_some((status, version == b"HTTP/1.1"))
}

/// The name and the trimmed value of `token ":" value`.
fn parse_header_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = line.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    let valid = !name.is_empty()
        && name.iter().all(|&b| is_tchar(b))
        && value.iter().all(|&b| is_field_byte(b));
    valid.then(|| (name, trim(value)))
}

/// Parses a chunk-size line as httparse 1.10 does: up to 16 hex digits (none reads as 0),
/// optional spaces or tabs, an optional `;` extension of any bytes, CRLF. Returns the bytes the
/// line takes and the size; `Ok(None)` if the line is not complete.
fn parse_chunk_size(data: &[u8]) -> Result<Option<(usize, u64)>, HttpError> {
    let mut size: u64 = 0;
    let mut digits = 0;
    let mut in_size = true;
    let mut in_extension = false;
    for (at, &b) in data.iter().enumerate() {
        let digit = match b {
            b'\r' => {
                return match data.get(at + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((at + 2, size))),
                    Some(_) => Err(HttpError::InvalidChunk),
                };
            }
            _ if in_extension => continue,
            b';' => {
                in_extension = true;
                continue;
            }
            b' ' | b'\t' => {
                in_size = false;
                continue;
            }
            b'0'..=b'9' if in_size => b - b'0',
            b'a'..=b'f' if in_size => b - b'a' + 10,
            b'A'..=b'F' if in_size => b - b'A' + 10,
            _ => return Err(HttpError::InvalidChunk),
        };
        digits += 1;
        if digits > 16 {
            return Err(HttpError::InvalidChunk);
        }
        size = size << 4 | u64::from(digit);
    }
    Ok(None)
}

/// Decodes as much of a chunked body as has arrived, in place. Returns true at the end of the
/// body; otherwise the undecoded framing has been moved down to `out` so that the free room after
/// `filled` is as large as it can be.
// Out of line, with `on_data`: measured smaller on thumbv7em than inlined.
#[inline(never)]
fn dechunk(
    buf: &mut [u8],
    filled: &mut usize,
    out: &mut usize,
    raw: &mut usize,
    chunk: &mut Chunk,
) -> Result<bool, RecvError> {
    loop {
        let avail = buf.get(*raw..*filled).unwrap_or(&[]);
        match *chunk {
            Chunk::Size => match parse_chunk_size(avail)? {
                Some((used, 0)) => {
                    *raw += used;
                    *chunk = Chunk::Trailer;
                }
                Some((used, size)) => {
                    let room = buf.len().saturating_sub(*out);
                    if size > u64::try_from(room).unwrap_or(u64::MAX) {
                        return Err(RecvError::TooLarge);
                    }
                    *raw += used;
                    *chunk = Chunk::Data { left: size };
                }
                None => break,
            },
            Chunk::Data { left } => {
                if avail.is_empty() {
                    break;
                }
                let take = usize::try_from(left).map_or(avail.len(), |left| left.min(avail.len()));
                // In range: `raw + take <= filled <= buf.len()`, and `out <= raw`.
                move_within(buf, *raw..*raw + take, *out);
                *out += take;
                *raw += take;
                let left = left - take as u64;
                *chunk = if left == 0 { Chunk::DataEnd } else { Chunk::Data { left } };
            }
            Chunk::DataEnd => match avail.get(..2) {
                None => break,
                Some(b"\r\n") => {
                    *raw += 2;
                    *chunk = Chunk::Size;
                }
                Some(_) => return Err(HttpError::InvalidChunk.into()),
            },
            Chunk::Trailer => match avail.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    *raw += 2;
                    return Ok(true);
                }
                // A trailer field: nothing the client uses.
                Some(at) => *raw += at + 2,
                None => break,
            },
        }
    }
    if *raw > *out {
        // In range: `out < raw <= filled <= buf.len()`.
        move_within(buf, *raw..*filled, *out);
        *filled = *out + (*filled - *raw);
        *raw = *out;
    }
    if *filled >= buf.len() {
        // No room left and the body is not complete: it does not fit.
        return Err(RecvError::TooLarge);
    }
    Ok(false)
}

/// `buf.copy_within(src, dst)` for the moves this crate makes (dropping an interim response head,
/// decoding chunks in place, making room for the `Authorization` line), one byte at a time.
///
/// `copy_within` links the target's `memmove`, which on thumbv7em is 1.5 KiB of flash (it is
/// prebuilt at `opt-level = 3`, unrolled); these moves are a few hundred bytes at most, once per
/// response. Out-of-range bytes are skipped rather than panicking; callers pass ranges inside
/// `buf`.
pub(crate) fn move_within(buf: &mut [u8], src: Range<usize>, dst: usize) {
    let len = src.len();
    let mut step = |i: usize| {
        if let Some(&byte) = buf.get(src.start + i)
            && let Some(to) = buf.get_mut(dst + i)
        {
            *to = byte;
        }
    };
    // Front to back when moving down, back to front when moving up, so that no byte is
    // overwritten before it is read.
    if dst <= src.start {
        (0..len).for_each(&mut step);
    } else {
        (0..len).rev().for_each(&mut step);
    }
}

/// Zeroes a buffer that held a token, in a way the optimizer cannot skip. One shared copy for
/// every buffer size, instead of one inlined loop per call site.
///
/// Byte by byte (one volatile store each) rather than `buf.zeroize()`, whose `fill` of a slice
/// of unknown alignment links `__aeabi_memclr`: nothing else in the example firmware needs that
/// routine, and dropping it saved 204 bytes (keep-alive image). The price is time: about three
/// cycles a byte, some 4,600 cycles for a released 512 + 1,024-byte slot.
#[inline(never)]
pub(crate) fn wipe(buf: &mut [u8]) {
    buf.iter_mut().for_each(Zeroize::zeroize);
}

/// Parses ASCII digits into a `usize`; `None` for anything else or an overflow.
// Used for `Content-Length` and `Retry-After`: one shared copy (the overflow checks are long).
#[inline(never)]
fn parse_decimal(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        d.is_ascii_digit().then_some(())?;
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Header names and codings compare case-insensitively (ASCII only). One shared copy: it is
/// used five times.
#[inline(never)]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// RFC 9110 `token`: a method or a header name.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    // `matches!` rather than `contains` on a byte list, which links `memchr` (148 bytes).
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// A byte of a header value or a reason phrase in a response (RFC 9110 `field-vchar`, space,
/// tab, and obs-text, as httparse accepts them): anything but a control character or DEL.
const fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7F)
}

/// Visible ASCII without spaces: a request target or a host.
fn is_visible(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A header value: visible ASCII, spaces and tabs, never a line break.
fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Feeds `wire` to a receiver `step` bytes at a time through a buffer of `cap` bytes.
    fn read(wire: &[u8], cap: usize, step: usize) -> Result<(Answer, Vec<u8>), RecvError> {
        let mut buf = std::vec![0u8; cap];
        let mut r = Receiver::new(false);
        let mut at = 0;
        loop {
            let spare = r.spare(&mut buf);
            if at == wire.len() || spare.is_empty() {
                let answer = r.on_eof()?;
                return Ok((answer, buf));
            }
            let n = step.min(spare.len()).min(wire.len() - at);
            spare[..n].copy_from_slice(&wire[at..at + n]);
            at += n;
            if let Some(answer) = r.on_data(&mut buf, n)? {
                return Ok((answer, buf));
            }
        }
    }

    fn body(wire: &[u8], cap: usize, step: usize) -> Result<(u16, Vec<u8>), RecvError> {
        let (answer, buf) = read(wire, cap, step)?;
        let view = answer.view(&buf);
        Ok((view.status(), view.body().to_vec()))
    }

    #[test]
    fn content_length_body_at_every_step_size() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
        for step in 1..=wire.len() {
            assert_eq!(body(wire, 128, step), Ok((200, b"hello".to_vec())), "step {step}");
        }
    }

    #[test]
    fn chunked_body_is_decoded_in_place_at_every_step_size() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     4\r\nRust\r\n6;ext=1\r\n is ok\r\n0\r\nTrailer: x\r\n\r\n";
        for step in 1..=wire.len() {
            assert_eq!(body(wire, 128, step), Ok((200, b"Rust is ok".to_vec())), "step {step}");
        }
    }

    #[test]
    fn chunked_body_needs_only_room_for_head_body_and_a_little_framing() {
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let head_len = wire.len();
        for _ in 0..20 {
            wire.extend_from_slice(b"5\r\nabcde\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        // 100 decoded bytes; the raw body is 205 bytes.
        let (status, body) = body(&wire, head_len + 100 + 8, 7).unwrap();
        assert_eq!((status, body.len()), (200, 100));
        assert_eq!(read(&wire, head_len + 90, 7).err(), Some(RecvError::TooLarge));
    }

    #[test]
    fn close_delimited_body_ends_with_the_stream() {
        let wire = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        assert_eq!(body(wire, 64, 3), Ok((200, b"until close".to_vec())));
    }

    #[test]
    fn oversized_responses_are_errors() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
        assert_eq!(read(wire, 60, 4).err(), Some(RecvError::TooLarge));
        let head = b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        assert_eq!(read(head, 30, 4).err(), Some(RecvError::TooLarge));
        let chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n";
        assert_eq!(read(chunk, 80, 4).err(), Some(RecvError::TooLarge));
    }

    #[test]
    fn truncated_and_malformed_responses_are_errors() {
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(read(short, 64, 64).err(), Some(RecvError::Truncated));
        assert_eq!(read(b"HTTP/1.1 200 OK\r\nContent-", 64, 64).err(), Some(RecvError::Truncated));
        let cases: [(&[u8], HttpError); 5] = [
            (b"HTTP/1.1 2x0 OK\r\n\r\n", HttpError::InvalidHead),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", HttpError::InvalidContentLength),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                HttpError::InvalidContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                HttpError::UnsupportedTransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                HttpError::InvalidChunk,
            ),
        ];
        for (wire, expected) in cases {
            assert_eq!(read(wire, 128, 5).err(), Some(RecvError::Http(expected)));
        }
        let bad_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY";
        assert_eq!(read(bad_crlf, 128, 5).err(), Some(RecvError::Http(HttpError::InvalidChunk)));
    }

    #[test]
    fn interim_responses_beyond_the_cap_are_an_error_whatever_the_piece_sizes() {
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        let last = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for count in [MAX_INTERIM, MAX_INTERIM + 1, 200] {
            let mut wire = interim.repeat(usize::from(count));
            wire.extend_from_slice(last);
            for step in [1, 7, 64, wire.len()] {
                let got = body(&wire, wire.len(), step);
                if count <= MAX_INTERIM {
                    assert_eq!(got, Ok((200, b"ok".to_vec())), "{count} {step}");
                } else {
                    let error = RecvError::Http(HttpError::TooManyInterimResponses);
                    assert_eq!(got, Err(error), "{count} {step}");
                }
            }
        }
    }

    #[test]
    fn interim_responses_are_skipped_and_bodyless_statuses_end_at_the_head() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n";
        let (answer, buf) = read(wire, 128, 6).unwrap();
        let view = answer.view(&buf);
        assert_eq!((view.status(), view.body()), (204, &b""[..]));
        assert_eq!(view.header("x"), Some(&b"y"[..]));
        let mut r = Receiver::new(true);
        let mut buf = [0u8; 64];
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
        r.spare(&mut buf)[..wire.len()].copy_from_slice(wire);
        let answer = r.on_data(&mut buf, wire.len()).unwrap().unwrap();
        assert_eq!(answer.view(&buf).body(), b"");
    }

    #[test]
    fn headers_are_found_case_insensitively_and_retry_after_is_parsed() {
        let wire = b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\ncontent-type:  text/plain \r\n\
                     Content-Length: 0\r\n\r\n";
        let (answer, buf) = read(wire, 128, 128).unwrap();
        let view = answer.view(&buf);
        assert_eq!(view.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(view.header("Content-Type"), Some(&b"text/plain"[..]));
        assert_eq!(view.header("missing"), None);
    }

    /// A small deterministic generator (xorshift64*), so a failure names a reproducible case.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, options: &[&'a [u8]]) -> &'a [u8] {
            options[self.below(options.len())]
        }
    }

    /// httparse's verdict on `data`: `None` while partial, else the head's length and status or
    /// the error as this crate names it.
    fn httparse_head(data: &[u8]) -> Option<Result<(usize, u16), HttpError>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(data) {
            Ok(httparse::Status::Complete(len)) => Some(Ok((len, response.code.unwrap()))),
            Ok(httparse::Status::Partial) => None,
            Err(httparse::Error::TooManyHeaders) => Some(Err(HttpError::TooManyHeaders)),
            Err(_) => Some(Err(HttpError::InvalidHead)),
        }
    }

    fn our_head(data: &[u8]) -> Option<Result<(usize, u16), HttpError>> {
        // A `HEAD` answer, so that the framing headers (never generated) cannot matter.
        parse_head(data, true).transpose().map(|r| r.map(|(head, _)| (head.len, head.status)))
    }

    /// Same verdict, except that httparse may report a malformed line before its end arrives.
    /// Returns the verdict, so that a test can check it covers every outcome.
    fn assert_same_head(data: &[u8]) -> Option<Result<(usize, u16), HttpError>> {
        let (ours, theirs) = (our_head(data), httparse_head(data));
        let early_error = ours.is_none() && matches!(theirs, Some(Err(_)));
        assert!(
            ours == theirs || early_error,
            "\"{}\": ours {ours:?}, httparse {theirs:?}",
            data.escape_ascii()
        );
        ours
    }

    /// Counts complete heads, errors and partial ones, to show a generator reaches all three.
    #[derive(Default, Debug)]
    struct Tally([usize; 3]);

    impl Tally {
        fn add(&mut self, verdict: Option<Result<(usize, u16), HttpError>>) {
            self.0[match verdict {
                Some(Ok(_)) => 0,
                Some(Err(_)) => 1,
                None => 2,
            }] += 1;
        }

        fn assert_each_at_least(&self, n: usize) {
            assert!(self.0.iter().all(|&count| count >= n), "complete, error, partial: {self:?}");
        }
    }

    /// A head built from valid pieces, each one swapped for a malformed one now and then.
    fn generated_head(rng: &mut Rng) -> Vec<u8> {
        let mut head = Vec::new();
        let mut put = |rng: &mut Rng, valid: &[&[u8]], invalid: &[&[u8]]| {
            let options = if rng.below(16) == 0 { invalid } else { valid };
            head.extend_from_slice(rng.pick(options));
        };
        let eol: [&[&[u8]]; 2] = [&[b"\r\n", b"\n"], &[b"\r", b"\r\r\n", b"\n\r", b""]];
        put(rng, &[b"", b"", b"", b"\r\n", b"\n"], &[b"\r", b" "]);
        put(
            rng,
            &[b"HTTP/1.1", b"HTTP/1.0"],
            &[b"HTTP/2.0", b"http/1.1", b"HTTP/1.", b"HTTP/1.1x"],
        );
        put(rng, &[b" "], &[b"  ", b"", b"\t"]);
        put(rng, &[b"200", b"404", b"101", b"099"], &[b"20", b"2000", b"2a0"]);
        put(
            rng,
            &[b"", b" OK", b" Not Found", b" ", b" \tx", b" caf\xC3\xA9"],
            &[b" a\x01b", b" \x7F", b"x"],
        );
        put(rng, eol[0], eol[1]);
        let count = if rng.below(8) == 0 { 28 + rng.below(8) } else { rng.below(5) };
        for _ in 0..count {
            put(
                rng,
                &[b"X-A", b"Content-Type", b"a", b"!#$%&'*+-.^_`|~"],
                &[b"x y", b"", b"X\"", b"\xC3\xBC", b" X-Folded"],
            );
            put(rng, &[b":", b": ", b":\t", b":  "], &[b" :", b""]);
            put(
                rng,
                &[b"v", b"  spaced  ", b"", b"tab\there", b"obs\xFF", b"a:b"],
                &[b"ctl\x01", b"del\x7F", b"a\rb"],
            );
            put(rng, eol[0], eol[1]);
        }
        put(rng, eol[0], &[b"\r", b""]);
        head.extend_from_slice(b"body");
        head
    }

    #[test]
    fn head_parser_agrees_with_httparse_on_generated_heads() {
        let mut rng = Rng(0x005E_ED0F_4EAD);
        let mut tally = Tally::default();
        for _ in 0..20_000 {
            let head = generated_head(&mut rng);
            tally.add(assert_same_head(&head));
            tally.add(assert_same_head(&head[..rng.below(head.len() + 1)]));
        }
        tally.assert_each_at_least(4_000);
    }

    #[test]
    fn head_parser_agrees_with_httparse_on_mutated_heads() {
        let valid =
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\n\
                      Content-Type: x/y\r\nX-Empty:\r\n\r\n{}";
        let bytes = b"\r\n\t :\x00\x01\x7F\x80\xFFaZ0/.;\"";
        let mut rng = Rng(0xBAD_C0DE);
        let mut tally = Tally::default();
        for _ in 0..40_000 {
            let mut head = valid.to_vec();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(head.len());
                let byte = bytes[rng.below(bytes.len())];
                match rng.below(3) {
                    0 => head[at] = byte,
                    1 => head.insert(at, byte),
                    _ => drop(head.remove(at)),
                }
            }
            tally.add(assert_same_head(&head));
        }
        tally.assert_each_at_least(200);
    }

    #[test]
    fn chunk_size_parser_agrees_with_httparse() {
        let alphabet = b"0123456789abcdefABCDEFgG;= \t\r\n\x00";
        let mut rng = Rng(0xC40C4);
        for _ in 0..50_000 {
            let len = rng.below(22);
            let line: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
            let theirs = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete(done)) => Ok(Some(done)),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(_) => Err(HttpError::InvalidChunk),
            };
            assert_eq!(parse_chunk_size(&line), theirs, "\"{}\"", line.escape_ascii());
        }
        assert_eq!(parse_chunk_size(b"ffffffffffffffff\r\n"), Ok(Some((18, u64::MAX))));
        assert_eq!(parse_chunk_size(b"1ffffffffffffffff\r\n"), Err(HttpError::InvalidChunk));
    }

    #[test]
    fn request_is_written_with_a_gap_for_the_authorization_line() {
        let mut buf = [0u8; 256];
        let request = Request {
            method: "POST",
            path: "/api/x?y=1",
            headers: &[("Content-Type", "application/json")],
            body: b"{}",
        };
        let layout = write_request(&mut buf, &request, "example.com:8080", false, true).unwrap();
        let head = &buf[..layout.auth_at];
        assert_eq!(
            head,
            b"POST /api/x?y=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\
              Content-Length: 2\r\nContent-Type: application/json\r\n"
        );
        assert_eq!(&buf[layout.auth_at..layout.auth_at + layout.tail_len], b"\r\n{}");
        assert_eq!(
            write_request(&mut buf[..20], &request, "h", false, true),
            Err(Some(layout.auth_at + 4 - 15))
        );
    }

    #[test]
    fn invalid_requests_are_refused() {
        let mut buf = [0u8; 256];
        let bad = [
            Request::get("/a b"),
            Request::get("no-slash"),
            Request { method: "GE T", ..Request::get("/") },
            Request { headers: &[("X", "a\r\nInjected: 1")], ..Request::get("/") },
            Request { headers: &[("authorization", "Bearer x")], ..Request::get("/") },
            Request { headers: &[("Bad Name", "v")], ..Request::get("/") },
        ];
        for request in bad {
            assert_eq!(
                write_request(&mut buf, &request, "h", true, true),
                Err(None),
                "{request:?}"
            );
        }
        assert_eq!(write_request(&mut buf, &Request::get("/"), "bad host", true, true), Err(None));
    }

    /// xorshift64*: a deterministic stream of test inputs.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[test]
    fn arbitrary_and_mutated_input_never_panics() {
        let seeds: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nRust\r\n0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nbody",
        ];
        let alphabet = b"0123456789abcdefHTP/. \r\n:;chunkedContent-Length";
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for round in 0..20_000 {
            let mut wire = seeds[round % seeds.len()].to_vec();
            for _ in 0..(rng(&mut state) % 6) {
                let at = (rng(&mut state) as usize) % (wire.len() + 1);
                let byte = alphabet[(rng(&mut state) as usize) % alphabet.len()];
                match rng(&mut state) % 3 {
                    0 if at < wire.len() => wire[at] = byte,
                    1 => wire.insert(at, byte),
                    _ if at < wire.len() => {
                        wire.remove(at);
                    }
                    _ => {}
                }
            }
            if round % 7 == 0 {
                wire = (0..rng(&mut state) % 80).map(|_| rng(&mut state) as u8).collect();
            }
            let cap = 1 + (rng(&mut state) as usize) % 96;
            let step = 1 + (rng(&mut state) as usize) % 9;
            // Any outcome is fine; a panic fails the test.
            let _ = read(&wire, cap, step);
        }
    }

    #[test]
    fn decimal_writing_and_parsing() {
        let mut buf = [0u8; 32];
        let mut c = Cursor::new(&mut buf);
        c.put_decimal(0);
        c.put(b",");
        c.put_decimal(usize::MAX);
        let n = c.finish().unwrap();
        assert_eq!(core::str::from_utf8(&buf[..n]).unwrap(), std::format!("0,{}", usize::MAX));
        assert_eq!(parse_decimal(b"0012"), Some(12));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
        assert_eq!(parse_decimal(b"+1"), None);
    }
}
