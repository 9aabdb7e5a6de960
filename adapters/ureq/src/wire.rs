//! Keeping secrets out of ureq's wire trace.
//!
//! At the `trace` log level, ureq-proto hex-dumps every request head it writes and every
//! response head and body it reads (`ureq_proto::util::log_data`); no ureq feature or setting
//! turns that off, and a library cannot filter its users' logger. What ureq-proto never sees,
//! it cannot log, so this module sits between ureq and the connection (a [`Connector`] last in
//! ureq's chain, after TLS) as a byte filter:
//!
//! - **Outgoing**: a secret header value (`Authorization: Bearer <token>`, `Basic <id:secret>`)
//!   is handed to ureq as a random placeholder of the same length ([`Masks::mask`]); the
//!   filter swaps the placeholder for the secret in the bytes it passes to the connection, then
//!   wipes its copy. Request bodies need nothing: ureq writes a sized body straight into the
//!   output buffer without logging it (ureq 3.5 `run.rs` `send_body`, `consume_direct_write`).
//! - **Incoming**, for the token endpoint only ([`Capture`]): the response body (the new tokens)
//!   is moved aside into a wiped buffer and ureq gets the same number of `*` instead, with the
//!   framing (head, chunk sizes) untouched so that it still reads a well-formed response. The
//!   exchange then takes the real body from the capture.
//!
//! What remains: the secrets pass through the TLS layer's own buffers (rustls, ureq's TLS
//! transport), which are not wiped; the response heads are still logged (they hold no token
//! from a token endpoint); a request built around the token by the application
//! ([`Client::send_with`](crate::Client::send_with)) goes out as built and is logged as is.

use core::fmt;
use core::hash::{BuildHasher, Hasher};
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::hash_map::RandomState;
use std::sync::{Arc, Mutex, PoisonError};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};
use zeroize::{Zeroize, Zeroizing};

/// The secrets currently handed to ureq as placeholders, shared by an agent's connections.
#[derive(Default)]
pub(crate) struct Masks {
    next_id: AtomicU64,
    entries: Mutex<Vec<Arc<Entry>>>,
    /// Bumped on every change of `entries`, so that a connection re-reads them only then and
    /// otherwise works from its own copy without taking the lock (it is on every request's path).
    version: AtomicU64,
}

struct Entry {
    id: u64,
    placeholder: Vec<u8>,
    secret: Zeroizing<Vec<u8>>,
}

/// A placeholder standing in for a secret until dropped.
pub(crate) struct Masked {
    masks: Arc<Masks>,
    id: u64,
    placeholder: String,
}

/// Shortest secret worth a placeholder: shorter random placeholders could turn up in other
/// bytes of a request by chance. Shorter secrets go out as they are (and are logged at trace).
const MIN_MASKED_LEN: usize = 12;

impl Masks {
    /// A placeholder for `secret`: same length, random letters and digits (valid wherever the
    /// secret is, in a header value or a form). Until the [`Masked`] is dropped, the filter
    /// sends `secret` wherever ureq writes the placeholder.
    pub(crate) fn mask(self: &Arc<Self>, secret: &str) -> Masked {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if secret.len() < MIN_MASKED_LEN {
            return Masked { masks: Arc::clone(self), id, placeholder: secret.to_owned() };
        }
        let placeholder = random_alphanumeric(secret.len());
        let mut entries = self.lock();
        entries.push(Arc::new(Entry {
            id,
            placeholder: placeholder.as_bytes().to_vec(),
            secret: Zeroizing::new(secret.as_bytes().to_vec()),
        }));
        // Before the placeholder is handed out: whoever sends it sees the new version.
        self.version.fetch_add(1, Ordering::Release);
        drop(entries);
        Masked { masks: Arc::clone(self), id, placeholder }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings a connection's copy of the entries up to date.
    fn refresh(&self, cache: &mut Cache) {
        let version = self.version.load(Ordering::Acquire);
        if version != cache.version {
            cache.entries = self.lock().clone();
            cache.version = version;
        }
    }
}

/// A connection's copy of the entries, and the version it was taken at.
#[derive(Default)]
struct Cache {
    version: u64,
    entries: Vec<Arc<Entry>>,
}

impl Cache {
    /// Replaces every placeholder in the request head at the start of `data` with its secret,
    /// in place; returns whether it replaced any. Only a head can hold one (the headers are what ureq-proto logs); a body, which
    /// may be large, is not searched.
    fn unmask(&self, data: &mut [u8]) -> bool {
        let mut swapped = false;
        if self.entries.is_empty() {
            return swapped;
        }
        let head = head_len(data);
        let data = &mut data[..head];
        for entry in &self.entries {
            let len = entry.placeholder.len();
            let mut at = 0;
            while at + len <= data.len() {
                if data[at..at + len] == entry.placeholder[..] {
                    data[at..at + len].copy_from_slice(&entry.secret);
                    swapped = true;
                    at += len;
                } else {
                    at += 1;
                }
            }
        }
        swapped
    }
}

impl Masked {
    /// The placeholder, to hand to ureq.
    pub(crate) fn as_str(&self) -> &str {
        &self.placeholder
    }
}

impl Drop for Masked {
    fn drop(&mut self) {
        let mut entries = self.masks.lock();
        entries.retain(|entry| entry.id != self.id);
        self.masks.version.fetch_add(1, Ordering::Release);
        drop(entries);
        self.placeholder.zeroize();
    }
}

/// The length of the request head `data` starts with (through its blank line, or all of `data`
/// if it has none), or 0 if `data` does not start with a request line (`METHOD `): a transmit
/// of ureq holds either a head or body bytes.
fn head_len(data: &[u8]) -> usize {
    let method = data.iter().take(17).take_while(|b| b.is_ascii_uppercase()).count();
    if method == 0 || data.get(method) != Some(&b' ') {
        return 0;
    }
    data.windows(4).position(|w| w == b"\r\n\r\n").map_or(data.len(), |at| at + 4)
}

/// `len` random ASCII letters and digits, from the standard library's randomly keyed hasher
/// (placeholders need to be unlikely to occur elsewhere, not secret).
fn random_alphanumeric(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let state = RandomState::new();
    (0..len)
        .map(|i| {
            let mut hasher = state.build_hasher();
            hasher.write_usize(i);
            let index = usize::try_from(hasher.finish() % CHARS.len() as u64).unwrap_or(0);
            char::from(CHARS[index])
        })
        .collect()
}

/// The response body of the token endpoint, taken out of the byte stream before ureq saw it.
pub(crate) struct Capture {
    body: Mutex<Zeroizing<Vec<u8>>>,
    /// The largest body kept.
    limit: usize,
}

impl Capture {
    /// Keeps bodies up to `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self { body: Mutex::default(), limit }
    }

    /// Forgets what an earlier exchange left.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The captured body, wiped on drop.
    pub(crate) fn take(&self) -> Zeroizing<Vec<u8>> {
        core::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Zeroizing<Vec<u8>>> {
        self.body.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Puts [`Filtered`] on every connection of an agent.
pub(crate) struct WireConnector {
    pub(crate) masks: Arc<Masks>,
    /// Where response bodies go (the token endpoint); `None` passes them through (the API).
    pub(crate) capture: Option<Arc<Capture>>,
}

impl Connector<Box<dyn Transport>> for WireConnector {
    type Out = Filtered;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Filtered {
            inner,
            // Buffers of its own only where the input is rewritten (the token endpoint); API
            // connections work in the connection's buffers, saving a copy of every byte and
            // two buffers per connection.
            buffers: self.capture.as_ref().map(|_| {
                LazyBuffers::new(
                    details.config.input_buffer_size(),
                    details.config.output_buffer_size(),
                )
            }),
            masks: Arc::clone(&self.masks),
            cache: Cache::default(),
            capture: self.capture.as_ref().map(|c| (Arc::clone(c), Framing::Head(Vec::new()))),
        }))
    }
}

/// One filtered connection.
pub(crate) struct Filtered {
    inner: Box<dyn Transport>,
    /// What ureq reads and writes, when the input is rewritten (masked bodies in); `None`:
    /// ureq works in the inner transport's buffers and placeholders are swapped there.
    buffers: Option<LazyBuffers>,
    masks: Arc<Masks>,
    /// This connection's copy of `masks`' entries.
    cache: Cache,
    capture: Option<(Arc<Capture>, Framing)>,
}

impl Transport for Filtered {
    fn buffers(&mut self) -> &mut dyn Buffers {
        match &mut self.buffers {
            Some(own) => own,
            None => self.inner.buffers(),
        }
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.masks.refresh(&mut self.cache);
        let Some(own) = &mut self.buffers else {
            // In place: ureq-proto has logged the head already, with the placeholders.
            let swapped = self.cache.unmask(&mut self.inner.buffers().output()[..amount]);
            let result = self.inner.transmit_output(amount, timeout);
            if swapped {
                // The plaintext does not outlive its transmission.
                self.inner.buffers().output()[..amount].zeroize();
            }
            return result;
        };
        let mut sent = 0;
        while sent < amount {
            let out = self.inner.buffers().output();
            let n = out.len().min(amount - sent);
            out[..n].copy_from_slice(&own.output()[sent..sent + n]);
            // A secret header lies in the head, which ureq writes whole in one call; so it is
            // whole in `out` unless the head is larger than the buffer (ureq refuses that).
            self.cache.unmask(&mut out[..n]);
            let result = self.inner.transmit_output(n, timeout);
            // Neither copy of the plaintext outlives its transmission.
            self.inner.buffers().output()[..n].zeroize();
            result?;
            sent += n;
        }
        own.output()[..amount].zeroize();
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let Some(own) = &mut self.buffers else {
            return self.inner.await_input(timeout);
        };
        if self.inner.buffers().input().is_empty() && !self.inner.await_input(timeout)? {
            return Ok(false);
        }
        let available = self.inner.buffers().input().len();
        let room = own.input_append_buf();
        let n = available.min(room.len());
        room[..n].copy_from_slice(&self.inner.buffers().input()[..n]);
        if let Some((capture, framing)) = &mut self.capture {
            framing.divert(&mut room[..n], capture);
        }
        own.input_appended(n);
        self.inner.buffers().input_consume(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// Where the response stream stands, to tell body bytes from framing.
enum Framing {
    /// Reading the head (kept until its blank line).
    Head(Vec<u8>),
    /// This many body bytes left.
    Length(u64),
    /// A chunked body.
    Chunked(Chunk),
    /// Every byte until the connection closes.
    UntilClose,
    /// A head this filter cannot read: the rest of the connection passes untouched (ureq
    /// reports the response as malformed).
    Passthrough,
}

/// Where a chunked body stands.
enum Chunk {
    /// In a chunk-size line (with any extension), the size so far.
    Size(u64, bool),
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; `true` at the start of a line.
    Trailer(bool),
}

impl Framing {
    /// Moves the body bytes of `data` into `capture`, leaving `*` in their place.
    fn divert(&mut self, data: &mut [u8], capture: &Capture) {
        let mut i = 0;
        while i < data.len() {
            match self {
                Self::Head(head) => {
                    head.push(data[i]);
                    i += 1;
                    if head.ends_with(b"\r\n\r\n") {
                        *self = body_framing(head);
                    }
                }
                // The response is over; a kept-alive connection's next one starts with a head.
                Self::Length(0) => *self = Self::Head(Vec::new()),
                Self::Passthrough => return,
                Self::Length(left) => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len() - i);
                    take(&mut data[i..i + n], capture);
                    *left -= n as u64;
                    i += n;
                }
                Self::UntilClose => {
                    take(&mut data[i..], capture);
                    return;
                }
                Self::Chunked(chunk) => {
                    let byte = data[i];
                    match chunk {
                        Chunk::Size(size, in_extension) => {
                            match (byte, char::from(byte).to_digit(16)) {
                                (b'\n', _) if *size == 0 => *chunk = Chunk::Trailer(true),
                                (b'\n', _) => *chunk = Chunk::Data(*size),
                                (_, Some(digit)) if !*in_extension => {
                                    *size =
                                        size.saturating_mul(16).saturating_add(u64::from(digit));
                                }
                                (b'\r', _) => {}
                                _ => *in_extension = true,
                            }
                            i += 1;
                        }
                        Chunk::Data(0) => *chunk = Chunk::DataEnd,
                        Chunk::Data(left) => {
                            let n =
                                usize::try_from(*left).unwrap_or(usize::MAX).min(data.len() - i);
                            take(&mut data[i..i + n], capture);
                            *left -= n as u64;
                            i += n;
                        }
                        Chunk::DataEnd => {
                            if byte == b'\n' {
                                *chunk = Chunk::Size(0, false);
                            }
                            i += 1;
                        }
                        Chunk::Trailer(line_start) => {
                            match byte {
                                b'\n' if *line_start => {
                                    *self = Self::Head(Vec::new());
                                    i += 1;
                                    continue;
                                }
                                b'\n' => *line_start = true,
                                b'\r' => {}
                                _ => *line_start = false,
                            }
                            i += 1;
                        }
                    }
                }
            }
        }
    }
}

/// Appends `bytes` to the capture and masks them.
fn take(bytes: &mut [u8], capture: &Capture) {
    let mut body = capture.lock();
    // Sized once for the largest answer the owner accepts, so that it never grows (a grown
    // buffer leaves unwiped copies behind); more than that is cut, and the owner, which sees the
    // length ureq read, refuses the answer.
    if body.capacity() == 0 {
        body.reserve(capture.limit.saturating_add(1));
    }
    let room = body.capacity() - body.len();
    body.extend_from_slice(&bytes[..bytes.len().min(room)]);
    bytes.fill(b'*');
}

/// How the body after `head` is framed (RFC 9112 §6.3, for the answers a token endpoint
/// gives: no body for 1xx, 204 and 304, chunked, a length, or until close).
fn body_framing(head: &[u8]) -> Framing {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    // Unparseable: let ureq report it; nothing after it is masked.
    let Ok(httparse::Status::Complete(_)) = response.parse(head) else {
        return Framing::Passthrough;
    };
    let code = response.code.unwrap_or(0);
    // An interim response (the real one follows), or one that never has a body.
    if code < 200 || code == 204 || code == 304 {
        return Framing::Head(Vec::new());
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| core::str::from_utf8(h.value).ok())
    };
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Framing::Chunked(Chunk::Size(0, false));
    }
    match header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(len) => Framing::Length(len),
        None => Framing::UntilClose,
    }
}

impl fmt::Debug for Filtered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filtered").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl fmt::Debug for WireConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireConnector")
            .field("captures_bodies", &self.capture.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_swapped_for_their_secrets_until_dropped() {
        let masks = Arc::new(Masks::default());
        let secret = "Bearer very-secret-token-123";
        let masked = masks.mask(secret);
        assert_eq!(masked.as_str().len(), secret.len());
        assert_ne!(masked.as_str(), secret);
        let mut head = format!("GET / HTTP/1.1\r\nauthorization: {}\r\n\r\n", masked.as_str());
        let mut bytes = core::mem::take(&mut head).into_bytes();
        let mut cache = Cache::default();
        masks.refresh(&mut cache);
        cache.unmask(&mut bytes);
        assert!(String::from_utf8_lossy(&bytes).contains(secret));
        // A body is not searched.
        let mut body = masked.as_str().as_bytes().to_vec();
        cache.unmask(&mut body);
        assert_eq!(body, masked.as_str().as_bytes());
        let placeholder = masked.as_str().to_owned();
        drop(masked);
        masks.refresh(&mut cache);
        let mut again = format!("GET / HTTP/1.1\r\nx: {placeholder}\r\n\r\n").into_bytes();
        cache.unmask(&mut again);
        assert!(
            String::from_utf8_lossy(&again).contains(&placeholder),
            "a dropped mask no longer applies"
        );
    }

    fn diverted(chunks: &[&[u8]]) -> (String, Vec<u8>) {
        let capture = Capture::new(1024);
        let mut framing = Framing::Head(Vec::new());
        let mut seen = Vec::new();
        for chunk in chunks {
            let mut data = chunk.to_vec();
            framing.divert(&mut data, &capture);
            seen.extend_from_slice(&data);
        }
        (String::from_utf8(seen).unwrap(), capture.take().to_vec())
    }

    #[test]
    fn a_sized_body_is_captured_and_masked_across_reads() {
        let (seen, body) = diverted(&[
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n",
            b"\r\n{\"a\":",
            b"\"xyz\"}HTTP/1.1 200 OK\r\n",
        ]);
        assert_eq!(
            seen,
            "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n***********HTTP/1.1 200 OK\r\n"
        );
        assert_eq!(body, b"{\"a\":\"xyz\"}");
    }

    #[test]
    fn a_chunked_body_keeps_its_framing() {
        let wire: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n{\"a\"\r\nA\r\n:\"012345\"}\r\n0\r\nX: 1\r\n\r\n";
        for split in 1..wire.len() {
            let (seen, body) = diverted(&[&wire[..split], &wire[split..]]);
            assert_eq!(
                seen,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n****\r\nA\r\n**********\r\n0\r\nX: 1\r\n\r\n",
                "split at {split}"
            );
            assert_eq!(body, b"{\"a\":\"012345\"}", "split at {split}");
        }
    }

    #[test]
    fn a_body_until_close_and_an_interim_response() {
        let (seen, body) =
            diverted(&[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nsecret"]);
        assert_eq!(seen, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n******");
        assert_eq!(body, b"secret");
    }
}
