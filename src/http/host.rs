//! `Host` and `Origin` checks with access control off, so that a web page
//! can neither read nor write a tailcast on localhost or a private
//! network (DNS rebinding, cross-site POSTs).
//!
//! [`HostCheck::check`] runs in `Connections::route`, the one entry of
//! every request (lean SSE path, hyper, HTTP/2), before the router: a
//! refused request is answered without being routed.
//!
//! - `Host` (or the URI authority: HTTP/2's `:authority`) must be a
//!   loopback name (`localhost`, `*.localhost`, 127.0.0.0/8, `::1`), an
//!   address the server listens on (any IP address when it listens on
//!   all of them: a page whose name was rebound to this server sends its
//!   own name, never an address), or a name given with `--allowed-host`;
//!   else 421. A request with no host at all (HTTP/1.0) comes from no
//!   browser and passes.
//! - A request that may change something (any method but `GET`, `HEAD`
//!   and `OPTIONS`) whose `Origin` is present must come from the server's
//!   own origin (same host and port as the request's host) or an origin
//!   given with `--cors-origin` (`*`: any); else 403.
//!
//! With access control on, none of this applies: every request that is
//! not public carries a token, a web page of another origin has none
//! (the cookie is honoured only from the server's own origin or an
//! explicit `--cors-origin`, see `auth`), and a bearer token sent by a
//! page is its holder's choice.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, Method, StatusCode, Uri};

use super::ApiError;
use crate::auth::{is_loopback_name, request_host, same_origin, split_authority};
use crate::config::ServeConfig;

/// The host and origin rules of one server (see the module header).
#[derive(Debug, Clone)]
pub(crate) struct HostCheck {
    /// Off when access control is on.
    active: bool,
    /// `--allowed-host`, lowercased.
    allowed: Vec<String>,
    /// The address the server listens on; `None` when it listens on every
    /// address (then any IP address is one of the server's).
    listening: Option<IpAddr>,
    /// `--cors-origin` holds `*`.
    any_origin: bool,
    /// The explicit `--cors-origin` values.
    origins: Vec<String>,
}

impl HostCheck {
    /// The rules of `config`; inactive when `auth_enabled`. `listening`:
    /// the address the server listens on (unspecified or `None`: all).
    pub(crate) fn new(
        config: &ServeConfig,
        auth_enabled: bool,
        listening: Option<IpAddr>,
    ) -> HostCheck {
        HostCheck {
            active: !auth_enabled,
            allowed: config
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            listening: listening.filter(|ip| !ip.is_unspecified()),
            any_origin: config.cors_origins.iter().any(|o| o == "*"),
            origins: config.cors_origins.clone(),
        }
    }

    /// Checks one request's host and origin.
    ///
    /// # Errors
    /// 421 for a host that is not this server's, 403 for a write from
    /// another origin.
    pub(crate) fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        if !self.active {
            return Ok(());
        }
        let host = request_host(uri, headers);
        if let Some(host) = host {
            if !self.host_allowed(host) {
                return Err(ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "unknown host",
                    format!(
                        "{:?} is not a name of this server (access control is off, so only \
                         loopback names, the server's addresses and --allowed-host names \
                         are answered); start it with --allowed-host NAME to use this name",
                        truncate(host)
                    ),
                ));
            }
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = String::from_utf8_lossy(origin.as_bytes());
        let own = host.is_some_and(|h| same_origin(&origin, h));
        if own || self.any_origin || self.origins.iter().any(|o| *o == origin) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin request refused",
            format!(
                "a {method} from origin {:?} is refused: with access control off only this \
                 server's own pages and --cors-origin origins may write to it",
                truncate(&origin)
            ),
        ))
    }

    /// Whether `authority` (`host[:port]`) names this server.
    fn host_allowed(&self, authority: &str) -> bool {
        let Some((host, _)) = split_authority(authority, 0) else {
            return false;
        };
        if is_loopback_name(host) {
            return true;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.listening.is_none_or(|l| l == ip.to_canonical())
                || self.allowed.iter().any(|a| a.parse() == Ok(ip));
        }
        self.allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
    }
}

/// At most 100 characters of a client's value, for an error message.
fn truncate(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(listening: Option<&str>, extra: &[&str]) -> HostCheck {
        let mut args = vec!["/nonexistent.log"];
        args.extend_from_slice(extra);
        let config = ServeConfig::from_args(args).unwrap();
        HostCheck::new(&config, false, listening.map(|l| l.parse().unwrap()))
    }

    fn request(
        method: Method,
        uri: &str,
        host: Option<&str>,
        origin: Option<&str>,
    ) -> (Method, Uri, HeaderMap) {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(header::HOST, h.parse().unwrap());
        }
        if let Some(o) = origin {
            headers.insert(header::ORIGIN, o.parse().unwrap());
        }
        (method, uri.parse().unwrap(), headers)
    }

    fn status(c: &HostCheck, r: (Method, Uri, HeaderMap)) -> u16 {
        match c.check(&r.0, &r.1, &r.2) {
            Ok(()) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn hosts() {
        let c = check(Some("192.168.1.5"), &["--allowed-host", "logs.example"]);
        for (host, want) in [
            ("localhost:8000", 200),
            ("x.localhost", 200),
            ("127.1.2.3:80", 200),
            ("[::1]:8000", 200),
            ("192.168.1.5:8000", 200),
            ("LOGS.example.:1", 200),
            ("192.168.1.6:8000", 421),
            ("evil.example", 421),
            ("localhost.evil.example", 421),
            ("evil.example:notaport", 421),
        ] {
            assert_eq!(
                status(&c, request(Method::GET, "/", Some(host), None)),
                want,
                "{host}"
            );
        }
        // HTTP/2: the URI authority, no Host.
        assert_eq!(
            status(&c, request(Method::GET, "http://evil.example/", None, None)),
            421
        );
        assert_eq!(
            status(&c, request(Method::GET, "http://localhost:9/", None, None)),
            200
        );
        assert_eq!(status(&c, request(Method::GET, "/", None, None)), 200);
        // Listening on every address: any address is the server's.
        let all = check(Some("0.0.0.0"), &[]);
        assert_eq!(
            status(&all, request(Method::GET, "/", Some("10.1.2.3:8000"), None)),
            200
        );
        assert_eq!(
            status(&all, request(Method::GET, "/", Some("evil.example"), None)),
            421
        );
    }

    #[test]
    fn origins() {
        let c = check(None, &["--cors-origin", "https://ops.example"]);
        let post = |origin| {
            status(
                &c,
                request(Method::POST, "/channels/a", Some("localhost:8000"), origin),
            )
        };
        assert_eq!(post(None), 200);
        assert_eq!(post(Some("http://localhost:8000")), 200);
        assert_eq!(post(Some("https://ops.example")), 200);
        assert_eq!(post(Some("http://evil.example")), 403);
        assert_eq!(post(Some("http://localhost:8001")), 403);
        assert_eq!(post(Some("null")), 403);
        let get = status(
            &c,
            request(
                Method::GET,
                "/events",
                Some("localhost"),
                Some("http://evil.example"),
            ),
        );
        assert_eq!(get, 200);
        let any = check(None, &["--cors-origin", "*"]);
        assert_eq!(
            status(
                &any,
                request(
                    Method::DELETE,
                    "/api/session",
                    Some("localhost"),
                    Some("http://a.example")
                )
            ),
            200
        );
    }

    #[test]
    fn nothing_is_checked_with_access_control_on() {
        let config = ServeConfig::from_args(["/nonexistent.log"]).unwrap();
        let on = HostCheck::new(&config, true, None);
        let r = request(
            Method::POST,
            "/channels/a",
            Some("evil.example"),
            Some("http://evil.example"),
        );
        assert_eq!(status(&on, r), 200);
    }
}
