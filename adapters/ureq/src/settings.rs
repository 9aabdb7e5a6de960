//! The setters every builder that talks to the authorization server shares:
//! [`ClientBuilder`](crate::ClientBuilder), [`DeviceLogin`](crate::DeviceLogin) and
//! [`AuthorizationCodeLogin`](crate::AuthorizationCodeLogin). Each keeps a
//! [`Credentials`](crate::credentials::Credentials) in a field `credentials` and a
//! [`TlsSettings`](crate::tls::TlsSettings) in a field `tls`; these macros write the setters of
//! both into the builder's own `impl`, so that a user meets the same methods with the same
//! meaning on all three (inherent methods: no trait to import), and a fix lands in all three.

/// The client's identity and proof: `client_secret`, `client_auth`, `private_key_jwt` (feature
/// `private-key-jwt`) and `scope`; with `client_id`, a `client_id` setter too (the authorization
/// code login takes the id in its constructor instead).
macro_rules! credential_setters {
    (client_id) => {
        /// Sets `client_id`, which names the client in every request to the authorization
        /// server.
        #[must_use]
        pub fn client_id(mut self, id: impl Into<String>) -> Self {
            self.credentials.client_id = Some(id.into());
            self
        }

        $crate::settings::credential_setters!();
    };
    () => {
        /// The client secret of a confidential client, wiped from memory when dropped. It
        /// authenticates every request to the token endpoint the way
        /// [`client_auth`](Self::client_auth) says: by default HTTP Basic
        /// (`client_secret_basic`, RFC 6749 §2.3.1, which every server must support).
        #[must_use]
        pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
            self.credentials.secret = Some(zeroize::Zeroizing::new(secret.into()));
            self
        }

        /// How the client authenticates to the token endpoint (default
        /// [`ClientAuth::Basic`](reauth_core::oauth::ClientAuth::Basic) when a secret is given;
        /// without a secret the client is public and sends only `client_id` in the body).
        /// [`ClientAuth::Post`](reauth_core::oauth::ClientAuth::Post) puts id and secret in the
        /// form body instead, for servers registered that way.
        #[must_use]
        pub const fn client_auth(mut self, auth: reauth_core::oauth::ClientAuth) -> Self {
            self.credentials.method = Some(auth);
            self
        }

        /// Authenticates with `private_key_jwt` (RFC 7523 §2.2, the method of OpenID Connect
        /// Core §9): every request to the token endpoint carries a client assertion signed with
        /// `key` (`iss` = `sub` = the client id, `aud` = the token endpoint, a random `jti`,
        /// valid 60 s) instead of a secret. Takes precedence over
        /// [`client_secret`](Self::client_secret).
        #[cfg(feature = "private-key-jwt")]
        #[must_use]
        pub fn private_key_jwt(mut self, key: $crate::ClientAssertionKey) -> Self {
            self.credentials.key = Some(std::sync::Arc::new(key));
            self
        }

        /// The `scope` asked for.
        #[must_use]
        pub fn scope(mut self, scope: impl Into<String>) -> Self {
            self.credentials.scope = Some(scope.into());
            self
        }
    };
}

/// How servers are verified and whether plain `http` may leave the machine:
/// `root_certificates_pem`, `root_certificates_file`, `platform_verifier` (feature
/// `platform-verifier`) and `allow_insecure_http`. `refused` says, for the docs, what happens to
/// an `http` URL off loopback when it is not allowed.
macro_rules! tls_setters {
    (refused: $refused:literal) => {
        /// Trusts the CA certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----`
        /// blocks), for servers behind a private CA. Every server is then verified against
        /// these roots only (ureq's bundled Mozilla roots are no longer trusted); call it again,
        /// or give a bundle, for more than one. Checked before anything is sent.
        #[must_use]
        pub fn root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
            self.tls.add_pem(pem.as_ref());
            self
        }

        /// As [`root_certificates_pem`](Self::root_certificates_pem), with the PEM read from a
        /// file before anything is sent.
        #[must_use]
        pub fn root_certificates_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.tls.add_file(path.into());
            self
        }

        /// Verifies servers with the operating system's verifier and trust store
        /// (rustls-platform-verifier: the system's CA store on Linux, the Keychain on macOS,
        /// the Windows certificate store), where an enterprise CA usually already is, instead
        /// of the bundled Mozilla roots. Excludes
        /// [`root_certificates_pem`](Self::root_certificates_pem).
        #[cfg(feature = "platform-verifier")]
        #[must_use]
        pub const fn platform_verifier(mut self, enabled: bool) -> Self {
            self.tls.use_platform_verifier(enabled);
            self
        }

        #[doc = concat!(
            "Allows plain `http` to hosts other than loopback (default `false`: ",
            $refused,
            ", as a token, a code or a secret would cross the network in the clear). `http` to ",
            "`localhost`, 127.0.0.0/8 and `::1` is always allowed. Turn it on only for a network ",
            "you trust end to end (a service mesh that encrypts between sidecars, for example).",
        )]
        #[must_use]
        pub const fn allow_insecure_http(mut self, allowed: bool) -> Self {
            self.tls.allow_insecure_http = allowed;
            self
        }
    };
}

pub(crate) use {credential_setters, tls_setters};
