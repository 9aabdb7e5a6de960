//! The persistence hook: where the firmware keeps the refresh token across reboots, so that a
//! rotated token is written to flash before it is ever used.

use core::convert::Infallible;

use reauth_core::Generation;

/// Persists the refresh token, typically to flash or EEPROM.
///
/// With rotating refresh tokens every successful refresh consumes the old token; a device that
/// reboots with only the old one in flash is logged out. The client therefore calls
/// [`save`](Self::save) with the new token after it was received and before anything can use it
/// (the next refresh), and before requests go out with the new access token.
///
/// A failed save is reported as [`Event::PersistFailed`](crate::Event::PersistFailed); the new
/// tokens stay installed in memory, so nothing is lost while the device keeps running.
///
/// # Examples
///
/// ```
/// use reauth_nal::TokenStore;
/// use reauth_nal::reauth_core::Generation;
///
/// /// A flash page: one length byte, then the token.
/// struct FlashPage {
///     page: [u8; 256],
/// }
///
/// impl TokenStore for FlashPage {
///     type Error = ();
///
///     fn save(&mut self, refresh_token: &str, _generation: Generation) -> Result<(), ()> {
///         let len = u8::try_from(refresh_token.len()).map_err(|_| ())?;
///         let (head, body) = self.page.split_at_mut(1);
///         let slot = body.get_mut(..refresh_token.len()).ok_or(())?;
///         slot.copy_from_slice(refresh_token.as_bytes());
///         head[0] = len;
///         Ok(())
///     }
/// }
///
/// let mut flash = FlashPage { page: [0; 256] };
/// flash.save("rotated-refresh-token", Generation(2)).unwrap();
/// assert_eq!(flash.page[0], 21);
/// ```
pub trait TokenStore {
    /// Why saving failed (a flash write error, a full log).
    type Error: core::fmt::Debug;

    /// Stores `refresh_token`, replacing the one stored before. `generation` is the generation
    /// of the access token issued with it, for the firmware's own records.
    ///
    /// The token is lent for the duration of the call: the implementation MUST NOT log it.
    ///
    /// # Errors
    /// The token could not be stored.
    fn save(&mut self, refresh_token: &str, generation: Generation) -> Result<(), Self::Error>;

    /// Forgets the stored token (logout). The default does nothing.
    ///
    /// # Errors
    /// The token could not be erased.
    fn clear(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A store that keeps nothing: for devices that log in at every boot, and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoStore;

impl TokenStore for NoStore {
    type Error = Infallible;

    fn save(&mut self, _refresh_token: &str, _generation: Generation) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<S: TokenStore + ?Sized> TokenStore for &mut S {
    type Error = S::Error;

    fn save(&mut self, refresh_token: &str, generation: Generation) -> Result<(), Self::Error> {
        S::save(self, refresh_token, generation)
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        S::clear(self)
    }
}
