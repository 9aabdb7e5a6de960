//! A one-pass, allocation-free JSON scanner for the few documents the core reads: the token
//! response, the error response and an API's expiry code. It walks the members of one top-level
//! object, hands each key and value to the caller still JSON-escaped, checks the whole document
//! against RFC 8259 (UTF-8 included) and skips values the caller does not want.
//!
//! Why hand-written: flash. serde + serde-json-core cost about 6.5 KiB of the example firmware
//! on thumbv7em at opt-level "s" (the token response alone was parsed twice, because
//! serde-json-core has no `deserialize_any` for "a number or a string"), while this scanner and
//! its three callers take about 1.5 KiB. The three callers need no more than a flat list of
//! members: no value is ever built, so there is nothing for serde to do.
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
    /// The bytes not read yet.
    rest: &'a [u8],
    /// Where in the object the scanner stands: before `{`, after `{`, or after a member.
    at: Position,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Start,
    AfterMember,
    End,
}

/// Decodes a string's escapes, for tokens: yields each byte of the text as it is (so non-ASCII
/// text comes out as its UTF-8 bytes, all `>= 0x80`) and each escape as its code point, a
/// surrogate pair as one. Tokens accept visible ASCII only, so they need not tell the two apart.
pub(crate) struct Unescape<'a> {
    rest: &'a [u8],
}

impl<'a> Members<'a> {
    pub(crate) const fn new(body: &'a [u8]) -> Self {
        Self { rest: body, at: Position::Start }
    }

    /// The next member's key (raw, still escaped) and value, or `None` after the closing `}`
    /// when only whitespace follows it.
    ///
    /// # Errors
    /// [`JsonError`] for the first flaw found; the caller should stop there.
    pub(crate) fn next(&mut self) -> Result<Option<(&'a [u8], Value<'a>)>, JsonError> {
        match self.at {
            Position::Start => {
                if self.byte()? != b'{' {
                    return Err(JsonError::NotAnObject);
                }
                if self.peek() == Some(b'}') {
                    return self.close();
                }
            }
            Position::AfterMember => match self.byte()? {
                b',' => {}
                b'}' => return self.close(),
                _ => return Err(JsonError::Syntax),
            },
            Position::End => return Ok(None),
        }
        let key = self.key()?;
        let value = self.value()?;
        self.at = Position::AfterMember;
        Ok(Some((key, value)))
    }

    /// Consumes the `}` that [`peek`](Self::peek) saw, then checks that only whitespace follows.
    fn close(&mut self) -> Result<Option<(&'a [u8], Value<'a>)>, JsonError> {
        self.rest = self.rest.get(1..).unwrap_or_default();
        if self.peek().is_some() {
            return Err(JsonError::Syntax);
        }
        self.at = Position::End;
        Ok(None)
    }

    /// Reads `"key" :`, leaving the scanner before the value.
    fn key(&mut self) -> Result<&'a [u8], JsonError> {
        if self.byte()? != b'"' {
            return Err(JsonError::Syntax);
        }
        let key = self.string()?;
        if self.byte()? != b':' {
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
            let start = self.rest;
            let mut value = match self.take().ok_or(JsonError::Syntax)? {
                b @ (b'{' | b'[') => {
                    if depth == MAX_DEPTH {
                        return Err(JsonError::TooDeep);
                    }
                    depth += 1;
                    open = open << 1 | u32::from(b == b'{');
                    // `}` and `]` are two past `{` and `[` in ASCII.
                    if self.peek() != Some(b + 2) {
                        if b == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                    Value::Other
                }
                b'"' => Value::Str(self.string()?),
                b'n' => self.literal(b"ull", Value::Null)?,
                b't' => self.literal(b"rue", Value::Other)?,
                b'f' => self.literal(b"alse", Value::Other)?,
                _ => Value::Num(self.number(start)?),
            };
            // After a value: close containers until one continues with `,`.
            loop {
                if depth == 0 {
                    return Ok(value);
                }
                let in_object = open & 1 == 1;
                match self.byte()? {
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
        let start = self.rest;
        loop {
            let (&b, rest) = self.rest.split_first().ok_or(JsonError::Syntax)?;
            self.rest = rest;
            match b {
                b'"' => return start.get(..start.len() - rest.len() - 1).ok_or(JsonError::Syntax),
                b'\\' => {
                    escape(&mut self.rest)?;
                }
                0..=0x1F => return Err(JsonError::Syntax),
                0x80.. => self.utf8_tail(b)?,
                _ => {}
            }
        }
    }

    /// Checks the continuation bytes of a UTF-8 sequence that starts with `lead` (RFC 3629 §4:
    /// no overlong forms, no surrogates, nothing above U+10FFFF).
    fn utf8_tail(&mut self, lead: u8) -> Result<(), JsonError> {
        let (tail, mut low, mut high) = match lead {
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(JsonError::Syntax),
        };
        for _ in 0..tail {
            let (&b, rest) = self.rest.split_first().ok_or(JsonError::Syntax)?;
            if !(low..=high).contains(&b) {
                return Err(JsonError::Syntax);
            }
            self.rest = rest;
            (low, high) = (0x80, 0xBF);
        }
        Ok(())
    }

    /// Reads a number that starts at `start` (its first byte was just read); returns it as
    /// written.
    fn number(&mut self, start: &'a [u8]) -> Result<&'a [u8], JsonError> {
        self.rest = start;
        self.eat(b'-');
        match self.take() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::Syntax),
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(JsonError::Syntax);
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        start.get(..start.len() - self.rest.len()).ok_or(JsonError::Syntax)
    }

    fn literal(&mut self, tail: &[u8], value: Value<'a>) -> Result<Value<'a>, JsonError> {
        self.rest = self.rest.strip_prefix(tail).ok_or(JsonError::Syntax)?;
        Ok(value)
    }

    /// Consumes ASCII digits; returns how many.
    fn digits(&mut self) -> usize {
        let n = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        self.rest = self.rest.get(n..).unwrap_or_default();
        n
    }

    /// Consumes `b` if it comes next.
    fn eat(&mut self, b: u8) -> bool {
        match self.rest.strip_prefix(&[b]) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn take(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    /// The next byte after whitespace, consumed.
    fn byte(&mut self) -> Result<u8, JsonError> {
        self.skip_whitespace();
        self.take().ok_or(JsonError::Syntax)
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.rest.first().copied()
    }

    fn skip_whitespace(&mut self) {
        let n = self.rest.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).count();
        self.rest = self.rest.get(n..).unwrap_or_default();
    }
}

impl Iterator for Unescape<'_> {
    /// A byte of text or an escape's code point; an error for a malformed escape.
    type Item = Result<u32, JsonError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(if b == b'\\' { escape(&mut self.rest) } else { Ok(u32::from(b)) })
    }
}

impl<'a> Unescape<'a> {
    /// Decodes `raw`, the text of a string as [`Value::Str`] holds it.
    pub(crate) const fn new(raw: &'a [u8]) -> Self {
        Self { rest: raw }
    }
}

/// Parses a run of ASCII digits (nothing else, not empty) as a `u64`; `None` on overflow.
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
    match number.strip_prefix(b"-") {
        Some(magnitude) => 0i64.checked_sub_unsigned(unsigned(magnitude)?),
        None => i64::try_from(unsigned(number)?).ok(),
    }
}

/// Decodes one escape; `rest` starts after the backslash and ends up after the escape.
fn escape(rest: &mut &[u8]) -> Result<u32, JsonError> {
    let (&b, tail) = rest.split_first().ok_or(JsonError::Syntax)?;
    *rest = tail;
    let short = match b {
        b'"' | b'\\' | b'/' => b,
        b'b' => 0x08,
        b'f' => 0x0C,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let high = hex4(rest)?;
            if !(0xD800..0xE000).contains(&high) {
                return Ok(high);
            }
            // UTF-16: a high surrogate, then `\u` and a low one; anything else is malformed.
            *rest = rest.strip_prefix(b"\\u").ok_or(JsonError::Syntax)?;
            let low = hex4(rest)?;
            if high >= 0xDC00 || !(0xDC00..0xE000).contains(&low) {
                return Err(JsonError::Syntax);
            }
            return Ok(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00));
        }
        _ => return Err(JsonError::Syntax),
    };
    Ok(u32::from(short))
}

/// Reads the four hex digits of a `\u` escape.
fn hex4(rest: &mut &[u8]) -> Result<u32, JsonError> {
    let (digits, tail) = rest.split_at_checked(4).ok_or(JsonError::Syntax)?;
    *rest = tail;
    digits
        .iter()
        .try_fold(0, |n, &d| Some(n << 4 | char::from(d).to_digit(16)?))
        .ok_or(JsonError::Syntax)
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
