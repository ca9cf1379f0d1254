//! The gateway under test: a plain-HTTP URL whose host must be loopback.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why a `--target` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A checked target: where to connect, what to send as `Host`, and the
/// path prefix every request path is appended to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given, for reports.
    pub url: String,
    /// Loopback address and port connected to.
    pub addr: SocketAddr,
    /// `Host` header value (the URL's authority).
    pub authority: String,
    /// Path prefix without a trailing `/` (empty for the root).
    pub base: String,
}

impl Target {
    /// Parses `url`; only `http://` with a loopback host (127.0.0.0/8, `::1`
    /// or `localhost`, which always means 127.0.0.1 here: the resolver is
    /// not asked) is accepted. Nothing is sent.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let err = |reason: &str| TargetError(format!("--target {url:?}: {reason}"));
        let uri: http::Uri = url.parse().map_err(|e| err(&format!("not a URL ({e})")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(err(
                    "https is not supported; point it at a plain-HTTP listener on loopback",
                ));
            }
            _ => return Err(err("expected http://HOST:PORT/")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| err("no host"))?
            .as_str()
            .to_owned();
        if authority.contains('@') {
            return Err(err("user information is not supported"));
        }
        let host = uri.host().ok_or_else(|| err("no host"))?;
        let ip = loopback_ip(host).ok_or_else(|| {
            err(&format!(
                "host {host} is not a loopback address; the simulator only sends to 127.0.0.0/8, ::1 or localhost"
            ))
        })?;
        let port = uri.port_u16().unwrap_or(80);
        if port == 0 {
            return Err(err("port 0"));
        }
        if uri.query().is_some() {
            return Err(err("a query string is not supported in the target"));
        }
        let base = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            url: url.to_owned(),
            addr: SocketAddr::new(ip, port),
            authority,
            base,
        })
    }

    /// Whether clients connect over IPv4 (and so can each bind their own
    /// 127.0.0.0/8 source).
    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Origin-form request target: the base path followed by `path`
    /// (which starts with `/`).
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Absolute URL of `path`, as a browser sends in `Referer`.
    pub fn absolute(&self, path: &str) -> String {
        format!("http://{}{}{path}", self.authority, self.base)
    }
}

/// The loopback address `host` names, if it names one.
fn loopback_ip(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = bare.parse().ok()?;
    ip.is_loopback().then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.3.4.5:1/",
            "http://localhost:9000/app/",
            "http://LOCALHOST",
            "http://[::1]:8080/",
        ] {
            assert!(Target::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://192.0.2.1/",
            "http://example.com/",
            "http://0.0.0.0:8080/",
            "http://[::ffff:127.0.0.1]:80/",
            "http://localhost.example.com/",
            "http://127.1/",
            "https://127.0.0.1/",
            "ftp://127.0.0.1/",
            "127.0.0.1:8080",
            "http://u@127.0.0.1/",
            "http://127.0.0.1:0/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        let t = Target::parse("http://localhost:9000/app/").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(t.authority, "localhost:9000");
        assert_eq!(t.path("/x?y=1"), "/app/x?y=1");
        assert_eq!(t.absolute("/x"), "http://localhost:9000/app/x");
        let root = Target::parse("http://127.0.0.1:80").unwrap();
        assert_eq!(root.path("/"), "/");
    }
}
