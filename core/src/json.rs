//! A one-pass, allocation-free JSON scanner for the few documents the core reads: the token
//! response, the error response and an API's expiry code. It walks the members of one top-level
//! object, hands each key and value to the caller still JSON-escaped, checks the whole document
//! against RFC 8259 (UTF-8 included) and skips values the caller does not want.
//!
//! Why hand-written: flash. With serde + serde-json-core, the three parsers took 7,124 bytes of
//! the example firmware (thumbv7em, opt-level "s"; measured by stubbing them out), partly because
//! serde-json-core has no `deserialize_any`, so a token response whose `expires_in` may be a
//! number or a string was parsed twice. With this scanner they take 2,616 bytes, and decoding a
//! token's escapes 216 more. The callers need no more than a flat list of members: no value is
//! ever built, so there is nothing for serde to do.
//!
//! Keys and strings are handed over raw. Callers compare keys, `token_type`, `error` and
//! `expires_in` as written (an escaped character never matches), as serde-json-core did; only
//! tokens are decoded, by [`Unescape`], straight into their buffers.
//!
//! Nested objects and arrays are skipped iteratively, with one bit per level, so no input can
//! overflow the stack; deeper than [`MAX_DEPTH`] is an error.

use core::fmt;

/// How deep objects and arrays may nest inside a member's value. Token responses carry flat
/// values; the limit only bounds what an `id_token`-like extension may nest, and it is the
/// number of bits of the nesting record.
pub(crate) const MAX_DEPTH: u32 = 32;

/// Why a body is not the JSON document a parser wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonError {
    /// The body is not JSON: a byte the grammar does not allow there, an unterminated string, a
    /// malformed escape (a lone surrogate included), invalid UTF-8, a control character inside a
    /// string, or anything but whitespace after the document.
    Syntax,
    /// The body does not start with `{`: it is another JSON value, or not JSON at all.
    NotAnObject,
    /// Objects or arrays nest deeper than 32 levels inside a member.
    TooDeep,
    /// A required member is missing.
    MissingField,
    /// A known member has a value of the wrong JSON type.
    WrongType,
    /// A known member appears twice.
    DuplicateField,
}

/// A member's value as the callers need it: strings and numbers as written, the rest by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// A string, without its quotes and still escaped; known to be well-formed (see
    /// [`Unescape`]).
    Str(&'a [u8]),
    /// A number as written; known to follow the JSON grammar.
    Num(&'a [u8]),
    /// `null`.
    Null,
    /// `true`, `false`, an object or an array: checked, then skipped.
    Other,
}

/// The members of a body's top-level object, one per [`next`](Self::next) call, in document
/// order. Duplicate keys are all returned: what they mean is the caller's business.
pub(crate) struct Members<'a> {
    at: Cursor<'a>,
    /// `{` is read (else the next call starts the object).
    open: bool,
}

/// Decodes a string's escapes, for tokens: yields each byte of the text as it is (so non-ASCII
/// text comes out as its UTF-8 bytes, all `>= 0x80`) and each escape as its code point, a
/// surrogate pair as one. Tokens accept visible ASCII only, so they need not tell the two apart.
pub(crate) struct Unescape<'a> {
    at: Cursor<'a>,
}

/// A read position in a body. Reading past the end gives the byte 0, which JSON allows nowhere
/// outside a string and not raw inside one either, so the end needs no case of its own.
struct Cursor<'a> {
    bytes: &'a [u8],
    /// Index of the next byte; at most `bytes.len() + 1`, since reading a 0 ends every scan.
    pos: usize,
}

impl<'a> Members<'a> {
    pub(crate) const fn new(body: &'a [u8]) -> Self {
        Self { at: Cursor { bytes: body, pos: 0 }, open: false }
    }

    /// The next member's key (raw, still escaped) and value, or `None` after the closing `}`
    /// when only whitespace follows it.
    ///
    /// # Errors
    /// [`JsonError`] for the first flaw found; the caller should stop there (the calls after
    /// an error or after `None` return nonsense, though never panic).
    pub(crate) fn next(&mut self) -> Result<Option<(&'a [u8], Value<'a>)>, JsonError> {
        let at = &mut self.at;
        let close = if self.open {
            match at.token() {
                b',' => false,
                b'}' => true,
                _ => return Err(JsonError::Syntax),
            }
        } else {
            if at.token() != b'{' {
                return Err(JsonError::NotAnObject);
            }
            self.open = true;
            at.skip_whitespace() == b'}' && {
                at.pos += 1;
                true
            }
        };
        if close {
            return match at.skip_whitespace() {
                0 if at.pos >= at.bytes.len() => Ok(None),
                _ => Err(JsonError::Syntax),
            };
        }
        let key = at.key()?;
        let value = at.value()?;
        Ok(Some((key, value)))
    }
}

impl<'a> Cursor<'a> {
    /// Reads `"key" :`, leaving the cursor before the value.
    fn key(&mut self) -> Result<&'a [u8], JsonError> {
        if self.token() != b'"' {
            return Err(JsonError::Syntax);
        }
        let key = self.string()?;
        if self.token() != b':' {
            return Err(JsonError::Syntax);
        }
        Ok(key)
    }

    /// Reads one value. Objects and arrays are walked without recursion: bit `i` of `open` says
    /// whether the container at depth `i + 1` (counted from the innermost) is an object.
    fn value(&mut self) -> Result<Value<'a>, JsonError> {
        let mut open: u32 = 0;
        let mut depth: u32 = 0;
        loop {
            self.skip_whitespace();
            let start = self.pos;
            let mut value = match self.bump() {
                b @ (b'{' | b'[') => {
                    if depth == MAX_DEPTH {
                        return Err(JsonError::TooDeep);
                    }
                    depth += 1;
                    open = open << 1 | u32::from(b == b'{');
                    // `}` and `]` are two past `{` and `[` in ASCII.
                    if self.skip_whitespace() != b + 2 {
                        if b == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                    Value::Other
                }
                b'"' => Value::Str(self.string()?),
                b @ (b'n' | b't' | b'f') => {
                    let (tail, value): (&[u8], _) = match b {
                        b'n' => (b"ull", Value::Null),
                        b't' => (b"rue", Value::Other),
                        _ => (b"alse", Value::Other),
                    };
                    for &expected in tail {
                        if self.bump() != expected {
                            return Err(JsonError::Syntax);
                        }
                    }
                    value
                }
                _ => Value::Num(self.number(start)?),
            };
            // After a value: close containers until one continues with `,`.
            loop {
                if depth == 0 {
                    return Ok(value);
                }
                let in_object = open & 1 == 1;
                match self.token() {
                    b',' => {
                        if in_object {
                            self.key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return Err(JsonError::Syntax),
                }
                open >>= 1;
                depth -= 1;
                value = Value::Other;
            }
        }
    }

    /// Reads a string whose opening quote was just read; returns its raw text.
    fn string(&mut self) -> Result<&'a [u8], JsonError> {
        let start = self.pos;
        loop {
            match self.bump() {
                b'"' => return Ok(self.bytes.get(start..self.pos - 1).unwrap_or_default()),
                b'\\' => {
                    self.escape()?;
                }
                0..=0x1F => return Err(JsonError::Syntax),
                lead @ 0x80.. => {
                    // UTF-8 (RFC 3629 §4): C2..F4 lead 1 to 3 continuation bytes; `low..=high`
                    // bounds the first one, narrower after E0, ED, F0 and F4 so that no
                    // overlong form, surrogate or code point above U+10FFFF passes.
                    if !(0xC2..=0xF4).contains(&lead) {
                        return Err(JsonError::Syntax);
                    }
                    let tail = 1 + u8::from(lead >= 0xE0) + u8::from(lead >= 0xF0);
                    let (mut low, mut high) = match lead {
                        0xE0 => (0xA0, 0xBF),
                        0xED => (0x80, 0x9F),
                        0xF0 => (0x90, 0xBF),
                        0xF4 => (0x80, 0x8F),
                        _ => (0x80, 0xBF),
                    };
                    for _ in 0..tail {
                        if !(low..=high).contains(&self.bump()) {
                            return Err(JsonError::Syntax);
                        }
                        (low, high) = (0x80, 0xBF);
                    }
                }
                _ => {}
            }
        }
    }

    /// Reads a number whose first byte (at `start`) was just read; returns it as written.
    fn number(&mut self, start: usize) -> Result<&'a [u8], JsonError> {
        self.pos = start;
        if self.peek() == b'-' {
            self.pos += 1;
        }
        let zero = self.peek() == b'0';
        let int = self.digits();
        let bad_int = int == 0 || zero && int > 1;
        let bad_fraction = self.peek() == b'.' && {
            self.pos += 1;
            self.digits() == 0
        };
        let bad_exponent = self.peek() | 0x20 == b'e' && {
            self.pos += 1;
            if matches!(self.peek(), b'+' | b'-') {
                self.pos += 1;
            }
            self.digits() == 0
        };
        if bad_int || bad_fraction || bad_exponent {
            return Err(JsonError::Syntax);
        }
        Ok(self.bytes.get(start..self.pos).unwrap_or_default())
    }

    /// Decodes one escape whose backslash was just read.
    fn escape(&mut self) -> Result<u32, JsonError> {
        // Pairs of (escape letter, what it stands for); a table is smaller than a `match`.
        const SHORT: &[u8; 16] = b"\"\"\\\\//b\x08f\x0Cn\nr\rt\t";
        let letter = self.bump();
        if letter != b'u' {
            let mut pairs = SHORT.chunks_exact(2);
            let pair = pairs.find(|pair| pair.first() == Some(&letter));
            return pair
                .and_then(|pair| pair.get(1))
                .map(|&b| u32::from(b))
                .ok_or(JsonError::Syntax);
        }
        let high = self.hex4()?;
        if !(0xD800..0xE000).contains(&high) {
            return Ok(high);
        }
        // UTF-16: a high surrogate, then `\u` and a low one; anything else is malformed.
        if high >= 0xDC00 || self.bump() != b'\\' || self.bump() != b'u' {
            return Err(JsonError::Syntax);
        }
        let low = self.hex4()?.wrapping_sub(0xDC00);
        if low >= 0x400 {
            return Err(JsonError::Syntax);
        }
        Ok(0x10000 + ((high - 0xD800) << 10) + low)
    }

    /// Reads the four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut n = 0;
        for _ in 0..4 {
            let b = self.bump();
            let digit = match b | 0x20 {
                b'0'..=b'9' if b >= b'0' => b - b'0',
                l @ b'a'..=b'f' => l - b'a' + 10,
                _ => return Err(JsonError::Syntax),
            };
            n = n << 4 | u32::from(digit);
        }
        Ok(n)
    }

    /// Consumes ASCII digits; returns how many.
    #[inline(never)] // Flash: called from three places.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_ascii_digit() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// The next byte after whitespace, consumed.
    fn token(&mut self) -> u8 {
        self.skip_whitespace();
        self.bump()
    }

    /// Skips whitespace; returns the byte after it, not consumed.
    #[inline(never)] // Flash: called from five places.
    fn skip_whitespace(&mut self) -> u8 {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        self.peek()
    }

    /// The next byte, consumed; 0 past the end.
    // Out of line on microcontrollers only: inlined at its nine call sites it costs 120 bytes
    // of flash there, while on a desktop the call would slow every byte down.
    #[cfg_attr(target_os = "none", inline(never))]
    fn bump(&mut self) -> u8 {
        let b = self.peek();
        self.pos += 1;
        b
    }

    /// The next byte, not consumed; 0 past the end.
    fn peek(&self) -> u8 {
        self.bytes.get(self.pos).copied().unwrap_or(0)
    }
}

impl Iterator for Unescape<'_> {
    /// A byte of text or an escape's code point; an error for a malformed escape.
    type Item = Result<u32, JsonError>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = *self.at.bytes.get(self.at.pos)?;
        self.at.pos += 1;
        Some(if b == b'\\' { self.at.escape() } else { Ok(u32::from(b)) })
    }
}

impl<'a> Unescape<'a> {
    /// Decodes `raw`, the text of a string as [`Value::Str`] holds it.
    pub(crate) const fn new(raw: &'a [u8]) -> Self {
        Self { at: Cursor { bytes: raw, pos: 0 } }
    }
}

/// Parses a run of ASCII digits (nothing else, not empty) as a `u64`; `None` on overflow.
/// `a == b`, for keys and values as written. A byte loop rather than the slice `==`, which links
/// `memcmp` (116 bytes that nothing else in the example firmware needs). With reauth-nal's
/// method checks done the same way, the firmware lost 188 bytes of flash.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline(never)] // Flash: one copy for `expires_in` and the body code.
pub(crate) fn unsigned(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let digit = char::from(d).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Parses a [`Value::Num`] as an `i64` if it is an integer that fits (no fraction, no exponent).
pub(crate) fn integer(number: &[u8]) -> Option<i64> {
    let magnitude = number.strip_prefix(b"-");
    let magnitude = unsigned(magnitude.unwrap_or(number))?;
    match number.first() {
        Some(b'-') => 0i64.checked_sub_unsigned(magnitude),
        _ => i64::try_from(magnitude).ok(),
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Syntax => "malformed JSON",
            Self::NotAnObject => "not a JSON object",
            Self::TooDeep => "JSON nested too deep",
            Self::MissingField => "a required field is missing",
            Self::WrongType => "a field has the wrong JSON type",
            Self::DuplicateField => "a field appears twice",
        })
    }
}

impl core::error::Error for JsonError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Every member of `body`, or the first error.
    fn members(body: &str) -> Result<Vec<(&[u8], Value<'_>)>, JsonError> {
        let mut members = Members::new(body.as_bytes());
        let mut all = Vec::new();
        while let Some(member) = members.next()? {
            all.push(member);
        }
        Ok(all)
    }

    fn unescape(raw: &str) -> Result<Vec<u32>, JsonError> {
        Unescape::new(raw.as_bytes()).collect()
    }

    #[test]
    fn members_come_raw_in_document_order() {
        let all = members(
            r#" { "a" : "x\"y" , "n":-1.5e+3,"z":null,"t":true,"f":false,"o":{},"l":[],"a":1 } "#,
        )
        .unwrap();
        let expected: [(&[u8], Value<'_>); 8] = [
            (b"a", Value::Str(br#"x\"y"#)),
            (b"n", Value::Num(b"-1.5e+3")),
            (b"z", Value::Null),
            (b"t", Value::Other),
            (b"f", Value::Other),
            (b"o", Value::Other),
            (b"l", Value::Other),
            (b"a", Value::Num(b"1")),
        ];
        assert_eq!(all, expected);
        assert_eq!(members("{}"), Ok(Vec::new()));
        assert_eq!(members("\t{\r\n}\n"), Ok(Vec::new()));
    }

    #[test]
    fn nested_values_are_skipped() {
        let all = members(r#"{"x":{"a":[1,{"b":[[],{}]},"]}"],"c":{"d":null}},"y":2}"#).unwrap();
        assert_eq!(all, [(&b"x"[..], Value::Other), (b"y", Value::Num(b"2"))]);
    }

    #[test]
    fn malformed_documents_are_rejected() {
        for body in [
            r#"{"a":1"#,
            r#"{"a":1,}"#,
            r#"{"a":1}x"#,
            r#"{"a":1}{}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":}"#,
            r#"{,"a":1}"#,
            r#"{"a":"x}"#,
            r#"{"a":"\q"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":"\udc00\ud800"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":True}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":[}"#,
        ] {
            assert_eq!(members(body), Err(JsonError::Syntax), "{body}");
        }
        for body in ["", "  ", "[]", r#""{}""#, "409", "<html>"] {
            assert_eq!(members(body), Err(JsonError::NotAnObject), "{body}");
        }
    }

    #[test]
    fn strings_must_be_utf8() {
        let body = |text: &[u8]| {
            let mut body = br#"{"a":""#.to_vec();
            body.extend_from_slice(text);
            body.extend_from_slice(br#""}"#);
            body
        };
        for good in ["é", "€", "𝄞", "\u{7FF}", "\u{FFFF}", "\u{10FFFF}"] {
            let raw = body(good.as_bytes());
            assert!(Members::new(&raw).next().is_ok(), "{good}");
        }
        for bad in [
            &b"\x80"[..],
            b"\xC0\xAF",     // overlong '/'
            b"\xC1\xBF",     // overlong
            b"\xE0\x80\xAF", // overlong
            b"\xED\xA0\x80", // surrogate
            b"\xF0\x80\x80\xAF",
            b"\xF4\x90\x80\x80", // above U+10FFFF
            b"\xF5\x80\x80\x80",
            b"\xE2\x82",     // truncated
            b"\xE2\x28\xA1", // bad continuation
            b"\xFF",
        ] {
            let raw = body(bad);
            assert_eq!(Members::new(&raw).next(), Err(JsonError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let depth = |n: usize| std::format!(r#"{{"a":{}1{}}}"#, "[".repeat(n), "]".repeat(n));
        let max = usize::try_from(MAX_DEPTH).unwrap();
        assert!(members(&depth(max)).is_ok());
        assert_eq!(members(&depth(max + 1)), Err(JsonError::TooDeep));
        // Far beyond any stack: still an error, not a crash.
        assert_eq!(members(&depth(100_000)), Err(JsonError::TooDeep));
        let objects = std::format!(r#"{{"a":{}1{}}}"#, r#"{"b":"#.repeat(max), "}".repeat(max));
        assert!(members(&objects).is_ok());
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(
            unescape(r#"a\"\\\/\b\f\n\r\t\u0041\u00e9"#),
            Ok(std::vec![0x61, 0x22, 0x5C, 0x2F, 0x08, 0x0C, 0x0A, 0x0D, 0x09, 0x41, 0xE9])
        );
        assert_eq!(unescape(r"\uD834\uDD1E\uFFFF"), Ok(std::vec![0x1D11E, 0xFFFF]));
        assert_eq!(unescape("é"), Ok(std::vec![0xC3, 0xA9]));
        for bad in [r"\", r"\x", r"\u", r"\u00", r"\uD834", r"\uD834\n", r"\uDD1E", r"\uD834\uD834"]
        {
            assert_eq!(unescape(bad).map_err(|_| ()), Err(()), "{bad}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(unsigned(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(unsigned(b"18446744073709551616"), None);
        assert_eq!(unsigned(b"007"), Some(7));
        for bad in [&b""[..], b"-1", b"+1", b"1.0", b"1e3", b" 1"] {
            assert_eq!(unsigned(bad), None);
        }
        assert_eq!(integer(b"409"), Some(409));
        assert_eq!(integer(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(integer(b"9223372036854775808"), None);
        assert_eq!(integer(b"-9223372036854775809"), None);
        assert_eq!(integer(b"409.0"), None);
        assert_eq!(integer(b"-0"), Some(0));
    }

    #[test]
    fn any_bytes_are_safe() {
        // A cheap stand-in for the fuzzer: every prefix and every one-byte change of a
        // document that uses every construct.
        let doc =
            br#"{"a":[1,-2.5e-3,{"b":"\u00e9\ud834\udd1e\n"}],"c":true,"d":null,"e":"\u0041"}"#;
        for end in 0..=doc.len() {
            let _ = members(core::str::from_utf8(&doc[..end]).unwrap_or(""));
            let _ = Unescape::new(&doc[..end]).count();
        }
        for at in 0..doc.len() {
            for b in [0, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'u', b'0', 0xFF] {
                let mut changed = doc.to_vec();
                changed[at] = b;
                let mut m = Members::new(&changed);
                while let Ok(Some(_)) = m.next() {}
                let _ = Unescape::new(&changed).count();
            }
        }
    }
}
