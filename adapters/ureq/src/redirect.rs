//! Following redirects by hand, so that the `Authorization` header goes only to the origin the
//! application addressed. ureq's own `SameHost` policy compares host names but not ports, and its
//! `Never` policy drops the header even on a same-origin redirect (whose 401 would then look like
//! an expired token); this module compares scheme, host and port (RFC 6454 origins).

use http::Uri;
use http::uri::{Authority, Scheme};

/// The origin of a URL: scheme, lowercase host, and port (the scheme's default if absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// The origin of `uri`; `None` for a URL without scheme or host.
    pub(crate) fn of(uri: &Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let host = uri.host()?.to_ascii_lowercase();
        let port = uri.port_u16().or(match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        Some(Self { scheme, host, port })
    }
}

/// Where a redirect from `base` with this `Location` leads (RFC 3986 §5.2, for the forms
/// servers send: absolute, scheme-relative, absolute-path, and relative-path references).
/// `None` if the result is not a usable URL.
pub(crate) fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.trim();
    if location.is_empty() {
        return None;
    }
    if let Ok(uri) = location.parse::<Uri>()
        && uri.scheme().is_some()
        && uri.authority().is_some()
    {
        return Some(uri);
    }
    let scheme = base.scheme().cloned().unwrap_or(Scheme::HTTP);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let authority: &Authority = base.authority()?;
    // Fragments are for the client side; they never go on the wire.
    let location = location.split('#').next().unwrap_or_default();
    let path_and_query = if location.starts_with('/') {
        location.to_owned()
    } else if location.starts_with('?') {
        format!("{}{location}", base.path())
    } else {
        let path = base.path();
        let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        format!("{dir}{location}")
    };
    format!("{scheme}://{authority}{path_and_query}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = Origin::of(&uri("http://127.0.0.1:8080/x")).unwrap();
        assert_eq!(Some(a.clone()), Origin::of(&uri("http://127.0.0.1:8080/y?q")));
        assert_ne!(Some(a.clone()), Origin::of(&uri("http://127.0.0.1:8081/x")));
        assert_ne!(Some(a), Origin::of(&uri("https://127.0.0.1:8080/x")));
        assert_eq!(Origin::of(&uri("http://EX.com/")), Origin::of(&uri("http://ex.com:80/")));
    }

    #[test]
    fn locations_resolve_against_the_base() {
        let base = uri("http://h:1/a/b?x=1");
        assert_eq!(resolve(&base, "http://o:2/p").unwrap(), uri("http://o:2/p"));
        assert_eq!(resolve(&base, "//o:3/p").unwrap(), uri("http://o:3/p"));
        assert_eq!(resolve(&base, "/c?d").unwrap(), uri("http://h:1/c?d"));
        assert_eq!(resolve(&base, "c").unwrap(), uri("http://h:1/a/c"));
        assert_eq!(resolve(&base, "?y=2").unwrap(), uri("http://h:1/a/b?y=2"));
        assert_eq!(resolve(&base, "/c#frag").unwrap(), uri("http://h:1/c"));
        assert!(resolve(&base, "").is_none());
        assert!(resolve(&base, "/bad path").is_none());
    }
}
