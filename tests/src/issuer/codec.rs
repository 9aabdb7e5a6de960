//! The small text codecs the issuer needs and that std lacks: form-urlencoded decoding, a lenient
//! reader for one string field of a flat JSON object, JSON string escaping and base64 (for HTTP
//! Basic client credentials). None of them panics on any input.

/// Decodes `application/x-www-form-urlencoded` text (`%XX` and `+`) into key-value pairs, in
/// order. Invalid escapes are kept literally, invalid UTF-8 is replaced.
pub(super) fn parse_form(text: &[u8]) -> Vec<(String, String)> {
    text.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// The value of `key` in decoded form pairs: `Ok(None)` when absent, `Err(())` when repeated
/// (RFC 6749 §3.2 forbids repeating a parameter).
pub(super) fn form_field<'a>(
    pairs: &'a [(String, String)],
    key: &str,
) -> Result<Option<&'a str>, ()> {
    let mut found = pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let first = found.next();
    if found.next().is_some() { Err(()) } else { Ok(first) }
}

/// Percent-decodes one form component, `+` meaning a space.
pub(super) fn percent_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = text.get(i + 1).and_then(|&h| hex_value(h));
                let lo = text.get(i + 2).and_then(|&l| hex_value(l));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of one hex digit.
const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Reads the string value of `key` from a JSON object, such as `{"refreshToken":"..."}`.
///
/// Top-level members only; values of other types and nested values are skipped. `Err(())` when
/// the text is not an object this reader understands, `Ok(None)` when the key is absent or its
/// value is not a string.
pub(super) fn json_string_field(text: &[u8], key: &str) -> Result<Option<String>, ()> {
    let mut reader = JsonReader { text, pos: 0 };
    reader.expect(b'{')?;
    let mut found = None;
    if reader.peek() == Some(b'}') {
        return Ok(None);
    }
    loop {
        let member = reader.string()?;
        reader.expect(b':')?;
        if reader.peek() == Some(b'"') {
            let value = reader.string()?;
            if member == key && found.is_none() {
                found = Some(value);
            }
        } else {
            reader.skip_value()?;
        }
        match reader.next_byte() {
            Some(b',') => {}
            Some(b'}') => return Ok(found),
            _ => return Err(()),
        }
    }
}

/// A cursor over JSON text.
struct JsonReader<'a> {
    /// The whole text.
    text: &'a [u8],
    /// Index of the next unread byte.
    pos: usize,
}

impl JsonReader<'_> {
    /// The next non-whitespace byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.text.get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// The next non-whitespace byte, consumed.
    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    /// Consumes `want` or fails.
    fn expect(&mut self, want: u8) -> Result<(), ()> {
        if self.next_byte() == Some(want) { Ok(()) } else { Err(()) }
    }

    /// Reads a string literal, escapes decoded (a lone surrogate becomes U+FFFD).
    fn string(&mut self) -> Result<String, ()> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let &b = self.text.get(self.pos).ok_or(())?;
            self.pos += 1;
            match b {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let &e = self.text.get(self.pos).ok_or(())?;
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let digits = self.text.get(self.pos..self.pos + 4).ok_or(())?;
                            self.pos += 4;
                            let code = digits
                                .iter()
                                .try_fold(0_u32, |acc, &d| {
                                    Some(acc << 4 | u32::from(hex_value(d)?))
                                })
                                .ok_or(())?;
                            char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
                        }
                        _ => return Err(()),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => return Err(()),
                _ => out.push(b),
            }
        }
    }

    /// Skips one non-string value: a number, literal, array or object. Lenient: it stops at the
    /// first `,` or closing bracket outside nested values, without checking the value's grammar.
    fn skip_value(&mut self) -> Result<(), ()> {
        let mut depth = 0_usize;
        loop {
            match self.peek().ok_or(())? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.pos += 1;
                }
                b'}' | b']' if depth == 0 => return Ok(()),
                b'}' | b']' => {
                    depth -= 1;
                    self.pos += 1;
                }
                b',' if depth == 0 => return Ok(()),
                _ => self.pos += 1,
            }
        }
    }
}

/// `text` as a JSON string literal, quotes included.
pub(super) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Decodes standard base64 (padding optional); `None` on any invalid character.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0_u32;
    let mut bits = 0;
    for b in text.bytes() {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Truncation keeps exactly the 8 bits just completed.
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_escapes_plus_and_bad_escapes() {
        let pairs = parse_form(b"a=x%2By+z&b=%zz&c&d=%41");
        assert_eq!(pairs[0], ("a".into(), "x+y z".into()));
        assert_eq!(pairs[1], ("b".into(), "%zz".into()));
        assert_eq!(pairs[2], ("c".into(), String::new()));
        assert_eq!(pairs[3], ("d".into(), "A".into()));
        assert_eq!(form_field(&pairs, "a"), Ok(Some("x+y z")));
        assert_eq!(form_field(&pairs, "q"), Ok(None));
        assert_eq!(form_field(&parse_form(b"a=1&a=2"), "a"), Err(()));
        assert_eq!(percent_decode(b"%"), "%");
        assert_eq!(percent_decode(b"%4"), "%4");
    }

    #[test]
    fn json_field_reader_finds_top_level_strings() {
        let text = concat!(
            r#" { "n": 1, "o": {"refreshToken": "no", "a": [1, "}"]}, "#,
            r#""refreshToken" : "r\"t\u0041" } "#
        )
        .as_bytes();
        assert_eq!(json_string_field(text, "refreshToken"), Ok(Some("r\"tA".into())));
        assert_eq!(json_string_field(b"{}", "x"), Ok(None));
        assert_eq!(json_string_field(b"{\"x\":true}", "x"), Ok(None));
        assert_eq!(json_string_field(b"{\"x\":\"a\"", "x"), Err(()));
        assert_eq!(json_string_field(b"[1]", "x"), Err(()));
        assert_eq!(json_string_field(b"{\"x\":{", "x"), Err(()));
        assert_eq!(json_string_field(b"", "x"), Err(()));
    }

    #[test]
    fn json_string_escapes() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
    }

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(base64_decode("YWxhZGRpbjpvcGVuc2VzYW1l").unwrap(), b"aladdin:opensesame");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("Y*"), None);
    }
}
