//! The client's address: the TCP peer, or — when the peer is a trusted
//! proxy — the first untrusted address in `X-Forwarded-For` / `Forwarded`,
//! read right to left (nginx's `real_ip_recursive on`).

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;
use rampart_core::addr::normalize_addr;

/// Which peers' forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// From addresses and CIDRs already parsed.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `addr` is a trusted proxy.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = normalize_addr(addr);
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// The client a request comes from. Headers are only read when `peer`
    /// is trusted; then the rightmost address that is not a trusted proxy
    /// wins (`Forwarded` first, then `X-Forwarded-For`). A malformed entry
    /// stops the walk: the last trusted hop before it is the client.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = normalize_addr(peer);
        if self.nets.is_empty() || !self.contains(peer) {
            return peer;
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        let forwarded: Vec<&str> = headers
            .get_all(http::header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if forwarded.is_empty() {
            for value in headers.get_all("x-forwarded-for").iter() {
                let Ok(text) = value.to_str() else {
                    hops.push(None);
                    continue;
                };
                hops.extend(text.split(',').map(|s| parse_hop(s.trim())));
            }
        } else {
            for text in forwarded {
                for element in text.split(',') {
                    let for_value = element.split(';').find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
                    });
                    hops.push(for_value.and_then(parse_forwarded_node));
                }
            }
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(addr) = hop else { break };
            client = normalize_addr(addr);
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly `[v6]` or `v4:port`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    if let Some(inner) = text.strip_prefix('[') {
        return inner.split(']').next()?.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

/// A `Forwarded: for=` node (RFC 7239): `192.0.2.1`, `"[2001:db8::1]:443"`,
/// `unknown` or an obfuscated name (neither is an address).
fn parse_forwarded_node(text: &str) -> Option<IpAddr> {
    let text = text.trim_matches('"');
    parse_hop(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().expect("net")).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(t.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_peer_rightmost_untrusted_wins() {
        let t = trusted(&["10.0.0.0/8"]);
        // A client forging its own XFF entry: the forged part is to the left.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5")]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("198.51.100.7"));
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.8:5555"),
        ]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("198.51.100.8"));
    }

    #[test]
    fn forwarded_header_takes_precedence_and_understands_v6() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::7]:443\";proto=https, for=10.0.0.9",
            ),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("2001:db8::7"));
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4, garbage, 10.0.0.3")]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn mapped_addresses_are_normalised() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.1")]);
        assert_eq!(t.client(ip("::ffff:10.0.0.1"), &h), ip("198.51.100.1"));
    }
}
