//! Helpers for the secrets tests of both adapters: everything a test formats goes through
//! [`assert_hidden`], which fails if a token shows, however it is shown.

/// `error`'s `Debug`, its `Display`, and the `Display` and `Debug` of every error in its
/// `source()` chain (at most 16 deep), in one string.
#[must_use]
pub fn error_chain(error: &(dyn core::error::Error + 'static)) -> String {
    let mut text = format!("{error:?} / {error}");
    let mut source = error.source();
    for _ in 0..16 {
        let Some(e) = source else { break };
        text.push_str(&format!(" <- {e:?} / {e}"));
        source = e.source();
    }
    text
}

/// True if `text` holds something shaped like a token of the mock issuer (`at.<digits>.` or
/// `rt.<digits>.`), including ones a test never got to see (a padded oversized token).
#[must_use]
pub fn has_issuer_token(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len()).any(|i| {
        let rest = &bytes[i..];
        let digits = rest.iter().skip(3).take_while(|b| b.is_ascii_digit()).count();
        (rest.starts_with(b"at.") || rest.starts_with(b"rt."))
            && digits > 0
            && rest.get(3 + digits) == Some(&b'.')
    })
}

/// Fails if any of `shown` holds one of `secrets` (as text, or as the `Debug` of its bytes, the
/// way a derived `Debug` shows a byte buffer) or an issuer-shaped token.
///
/// # Panics
/// That is its purpose; also if a secret is shorter than 8 bytes (too short to search for).
pub fn assert_hidden<S: AsRef<str>>(shown: &[String], secrets: &[S]) {
    assert!(secrets.iter().all(|s| s.as_ref().len() >= 8), "a secret too short to search for");
    for text in shown {
        for secret in secrets {
            let secret = secret.as_ref();
            let bytes = format!("{:?}", secret.as_bytes());
            let bytes = bytes.trim_start_matches('[').trim_end_matches(']');
            assert!(!text.contains(secret) && !text.contains(bytes), "a token is shown: {text}");
        }
        assert!(!has_issuer_token(text), "an issuer token is shown: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_shape_check_finds_issuer_tokens() {
        // The detector behind `assert_hidden` must be able to fail.
        assert!(has_issuer_token("x at.12.0123456789abcdef y"));
        assert!(has_issuer_token("\"rt.3.fedcba9876543210.xxxx\""));
        assert!(!has_issuer_token("retry at 3 s, rt.x, at.5"));
    }

    #[test]
    #[should_panic(expected = "a token is shown")]
    fn a_shown_secret_fails_even_as_debug_bytes() {
        let shown = [format!("{:?}", b"secret-1234".as_slice())];
        assert_hidden(&shown, &["secret-1234"]);
    }
}
