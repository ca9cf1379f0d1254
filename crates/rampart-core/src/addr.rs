//! Addresses and prefixes: what a ban or a bucket is keyed by.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Subject {
    /// An address or a prefix (a single address is a /32 or /128).
    Net(IpNet),
    /// A service on the host, by name.
    Service(String),
    /// The host itself.
    Host,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Net(net) => write!(f, "{}", display_net(net)),
            Subject::Service(name) => write!(f, "service:{name}"),
            Subject::Host => f.write_str("host"),
        }
    }
}

/// The network an address belongs to when keyed with the given prefix
/// lengths: IPv4 addresses are truncated to `v4_len` bits, IPv6 addresses to
/// `v6_len` bits. Lengths beyond the address width are clamped.
pub fn key_prefix(addr: IpAddr, v4_len: u8, v6_len: u8) -> IpNet {
    match addr {
        IpAddr::V4(a) => {
            let len = v4_len.min(32);
            // Length is clamped, so construction cannot fail.
            IpNet::V4(Ipv4Net::new(a, len).map_or_else(|_| Ipv4Net::from(a), |n| n.trunc()))
        }
        IpAddr::V6(a) => {
            // An IPv4-mapped IPv6 address is keyed as the IPv4 address it is.
            if let Some(v4) = a.to_ipv4_mapped() {
                return key_prefix(IpAddr::V4(v4), v4_len, v6_len);
            }
            let len = v6_len.min(128);
            IpNet::V6(Ipv6Net::new(a, len).map_or_else(|_| Ipv6Net::from(a), |n| n.trunc()))
        }
    }
}

/// Parses an address (`192.0.2.1`, `2001:db8::1`) or a prefix
/// (`192.0.2.0/24`, `2001:db8::/64`). A bare address becomes a host
/// network; a prefix is truncated to its network address.
pub fn parse_net(text: &str) -> Result<IpNet, AddrError> {
    let text = text.trim();
    if text.contains('/') {
        text.parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| AddrError(text.to_owned()))
    } else {
        text.parse::<IpAddr>()
            .map(normalize_addr)
            .map(IpNet::from)
            .map_err(|_| AddrError(text.to_owned()))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) becomes the IPv4 address.
pub fn normalize_addr(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Shows a host network as the bare address and a wider prefix with its length.
pub fn display_net(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// Text that is not an address or a prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or prefix: {0:?}")]
pub struct AddrError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(key_prefix(a, 32, 64).to_string(), "2001:db8:1:2::/64");
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(key_prefix(a, 32, 64), key_prefix(b, 32, 64));
    }

    #[test]
    fn ipv4_is_keyed_by_itself_by_default() {
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(key_prefix(a, 32, 64).to_string(), "192.0.2.7/32");
        assert_eq!(key_prefix(a, 24, 64).to_string(), "192.0.2.0/24");
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let a: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(key_prefix(a, 32, 64).to_string(), "192.0.2.7/32");
        assert_eq!(
            parse_net("::ffff:10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
    }

    #[test]
    fn parse_net_accepts_addresses_and_prefixes_and_rejects_the_rest() {
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            display_net(&parse_net("2001:db8::1").unwrap()),
            "2001:db8::1"
        );
        assert!(parse_net("10.0.0.1; rm -rf /").is_err());
        assert!(parse_net("300.1.1.1").is_err());
        assert!(parse_net("").is_err());
    }
}
