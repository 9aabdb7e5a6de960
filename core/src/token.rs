//! Secret storage: fixed-capacity token buffers that never print their bytes and are wiped on
//! drop and on overwrite.
//!
//! heapless buffers live inline, so every move of one is a copy that is not wiped. That is why
//! neither type here is `Clone` and why callers lend tokens out as `&str` instead of returning
//! them: keep one `TokenSet` in one place for the life of the program.

use core::fmt;

use heapless::string::StringView;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ticket::Generation;

/// One secret (an access or refresh token) of at most `N` bytes.
///
/// Holds only visible ASCII (`0x20..=0x7E`, RFC 6749 `VSCHAR`), so a token can never smuggle a
/// line break into an HTTP header. `Debug` and `Display` show the length, never the bytes.
#[derive(Default)]
pub struct Token<const N: usize> {
    bytes: heapless::String<N>,
}

/// An access token and a refresh token, and the generation of the access token.
///
/// `A` and `R` are the capacities in bytes. A JWT access token is often 1 to 2 KiB; an opaque
/// one, or a refresh token, is usually under 256 bytes.
#[derive(Default)]
pub struct TokenSet<const A: usize, const R: usize> {
    access: Token<A>,
    refresh: Token<R>,
    generation: Generation,
}

/// Why a token was not stored. The old value is kept whole in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is longer than its buffer; it was not truncated.
    TooLong {
        /// Length of the token in bytes.
        len: usize,
        /// Capacity of the buffer in bytes.
        capacity: usize,
    },
    /// The token is empty.
    Empty,
    /// The byte at `position` is not visible ASCII (a control character, a line break, or
    /// non-ASCII text).
    InvalidByte {
        /// Offset of the first offending byte in the (decoded) token.
        position: usize,
    },
    /// A JSON escape in the token is malformed.
    InvalidEscape,
}

impl<const N: usize> Token<N> {
    /// An empty token buffer.
    #[must_use]
    pub const fn new() -> Self {
        Self { bytes: heapless::String::new() }
    }

    /// Replaces the token with `value`, wiping the old bytes first.
    ///
    /// # Errors
    /// [`TokenError`] if `value` is empty, too long or not visible ASCII; the old value is kept.
    pub fn set(&mut self, value: &str) -> Result<(), TokenError> {
        store(self.bytes.as_mut_view(), value)
    }

    /// The token text, lent out for the moment it is written to the wire.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.bytes
    }

    /// True if no token is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Length of the stored token in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The buffer, for parsers that decode straight into it.
    pub(crate) fn view_mut(&mut self) -> &mut StringView {
        self.bytes.as_mut_view()
    }

    /// Wipes the token.
    pub fn clear(&mut self) {
        self.bytes.as_mut_view().zeroize();
    }
}

// Written out rather than derived so that every capacity shares one wipe (through the unsized
// `StringView`) instead of getting its own copy of the code.
impl<const N: usize> Zeroize for Token<N> {
    fn zeroize(&mut self) {
        self.clear();
    }
}

impl<const N: usize> Drop for Token<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> ZeroizeOnDrop for Token<N> {}

impl<const A: usize, const R: usize> TokenSet<A, R> {
    /// An empty token set.
    #[must_use]
    pub const fn new() -> Self {
        Self { access: Token::new(), refresh: Token::new(), generation: Generation::NONE }
    }

    /// Installs an access token of `generation` and, if given, a new refresh token (`None` keeps
    /// the old one, as RFC 6749 §6 allows). All or nothing.
    ///
    /// # Errors
    /// [`TokenError`] if either token is unusable; nothing is changed then.
    pub fn install(
        &mut self,
        generation: Generation,
        access: &str,
        refresh: Option<&str>,
    ) -> Result<(), TokenError> {
        check(access.len(), A, access.as_bytes())?;
        if let Some(refresh) = refresh {
            check(refresh.len(), R, refresh.as_bytes())?;
            self.refresh.set(refresh)?;
        }
        self.access.set(access)?;
        self.generation = generation;
        Ok(())
    }

    /// Installs a refresh token alone (restored from storage); the access token is wiped.
    ///
    /// # Errors
    /// [`TokenError`] if the token is unusable; nothing is changed then.
    pub fn restore(&mut self, refresh: &str) -> Result<(), TokenError> {
        self.refresh.set(refresh)?;
        self.access.clear();
        Ok(())
    }

    /// The access token, if one is installed.
    #[must_use]
    pub fn access(&self) -> Option<&str> {
        (!self.access.is_empty()).then(|| self.access.expose())
    }

    /// The refresh token, if one is installed.
    #[must_use]
    pub fn refresh(&self) -> Option<&str> {
        (!self.refresh.is_empty()).then(|| self.refresh.expose())
    }

    /// The generation of the installed access token.
    #[must_use]
    pub const fn generation(&self) -> Generation {
        self.generation
    }

    /// Mutable access to both buffers, for parsers that decode straight into them.
    pub(crate) fn parts_mut(&mut self) -> (&mut Token<A>, &mut Token<R>, &mut Generation) {
        (&mut self.access, &mut self.refresh, &mut self.generation)
    }

    /// Wipes both tokens (logout).
    pub fn clear(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }
}

/// [`Token::set`] for every capacity: checks `value`, then wipes `bytes` and stores it.
fn store(bytes: &mut StringView, value: &str) -> Result<(), TokenError> {
    check(value.len(), bytes.capacity(), value.as_bytes())?;
    bytes.zeroize();
    // Cannot fail after `check`; mapped anyway so that no path can panic.
    bytes
        .push_str(value)
        .map_err(|_| TokenError::TooLong { len: value.len(), capacity: bytes.capacity() })
}

/// Checks a token's length and bytes before anything is overwritten (also used by
/// [`oauth`](crate::oauth) on the decoded length of a token it decodes itself).
pub(crate) fn check(len: usize, capacity: usize, bytes: &[u8]) -> Result<(), TokenError> {
    if len == 0 {
        return Err(TokenError::Empty);
    }
    if len > capacity {
        return Err(TokenError::TooLong { len, capacity });
    }
    match bytes.iter().position(|b| !(0x20..=0x7E).contains(b)) {
        Some(position) => Err(TokenError::InvalidByte { position }),
        None => Ok(()),
    }
}

impl<const N: usize> fmt::Debug for Token<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<redacted, {} bytes>)", self.bytes.len())
    }
}

impl<const N: usize> fmt::Display for Token<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<const A: usize, const R: usize> fmt::Debug for TokenSet<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access", &self.access)
            .field("refresh", &self.refresh)
            .field("generation", &self.generation)
            .finish()
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len, capacity } => {
                write!(f, "token of {len} bytes does not fit its {capacity}-byte buffer")
            }
            Self::Empty => f.write_str("token is empty"),
            Self::InvalidByte { position } => {
                write!(f, "token has a byte that is not visible ASCII at offset {position}")
            }
            Self::InvalidEscape => f.write_str("token has a malformed JSON escape"),
        }
    }
}

impl core::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn too_long_is_an_error_and_keeps_the_old_value() {
        let mut t = Token::<4>::new();
        t.set("abcd").unwrap();
        assert_eq!(t.set("abcde"), Err(TokenError::TooLong { len: 5, capacity: 4 }));
        assert_eq!(t.expose(), "abcd");
    }

    #[test]
    fn control_characters_and_empty_tokens_are_refused() {
        let mut t = Token::<16>::new();
        assert_eq!(t.set("ab\r\nX: y"), Err(TokenError::InvalidByte { position: 2 }));
        assert_eq!(t.set(""), Err(TokenError::Empty));
        assert_eq!(t.set("héllo"), Err(TokenError::InvalidByte { position: 1 }));
        assert!(t.is_empty());
    }

    #[test]
    fn plain_backslashes_are_kept_as_text() {
        let mut t = Token::<16>::new();
        t.set(r"a\/b\u0041").unwrap();
        assert_eq!(t.expose(), r"a\/b\u0041");
        t.set(r"ends\").unwrap();
        assert_eq!(t.expose(), r"ends\");
    }

    #[test]
    fn debug_and_display_never_show_the_bytes() {
        let mut set = TokenSet::<32, 32>::new();
        set.install(Generation(3), "SENTINEL-ACCESS", Some("SENTINEL-REFRESH")).unwrap();
        let shown = format!("{set:?} {} {:?}", set.access, set.refresh);
        assert!(!shown.contains("SENTINEL"), "{shown}");
        assert!(shown.contains("15 bytes"), "{shown}");
    }

    #[test]
    fn tokens_wipe_on_request_and_on_drop() {
        fn wipes<T: Zeroize + ZeroizeOnDrop>() {}
        wipes::<Token<8>>();
        let mut t = Token::<8>::new();
        t.set("abc").unwrap();
        t.zeroize();
        assert!(t.is_empty());
        t.set("abcdefgh").unwrap();
        assert_eq!(t.expose(), "abcdefgh", "a wiped buffer holds its full capacity again");
    }

    #[test]
    fn install_is_all_or_nothing() {
        let mut set = TokenSet::<8, 8>::new();
        set.install(Generation(1), "access1", Some("refresh1")).unwrap();
        assert!(set.install(Generation(2), "access2", Some("refresh-too-long")).is_err());
        assert!(set.install(Generation(2), "access-too-long", Some("r2")).is_err());
        assert_eq!((set.access(), set.refresh()), (Some("access1"), Some("refresh1")));
        assert_eq!(set.generation(), Generation(1));
        set.install(Generation(2), "access2", None).unwrap();
        assert_eq!((set.access(), set.refresh()), (Some("access2"), Some("refresh1")));
        set.restore("refresh3").unwrap();
        assert_eq!((set.access(), set.refresh()), (None, Some("refresh3")));
        set.clear();
        assert_eq!((set.access(), set.refresh()), (None, None));
    }
}
