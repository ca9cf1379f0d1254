//! Addresses and prefixes that are never banned.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::normalize_addr;

/// A set of networks that must never be banned. Loopback is always in it.
#[derive(Debug, Clone)]
pub struct Whitelist {
    nets: Vec<IpNet>,
}

impl Default for Whitelist {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Whitelist {
    /// The given networks plus loopback (127.0.0.0/8, ::1).
    pub fn new(mut nets: Vec<IpNet>) -> Self {
        for always in ["127.0.0.0/8", "::1/128"] {
            if let Ok(net) = always.parse::<IpNet>() {
                nets.push(net);
            }
        }
        Self { nets }
    }

    /// Exactly the given networks, loopback not implied (for the gateway,
    /// whose clients may legitimately be local and which cannot lock the
    /// host out).
    pub fn exactly(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Adds the host's own addresses (as host networks).
    pub fn with_host_addresses(mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.nets
            .extend(addrs.into_iter().map(normalize_addr).map(IpNet::from));
        self
    }

    /// Whether `addr` is whitelisted.
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        let addr = normalize_addr(addr);
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// Whether banning `net` would touch a whitelisted address: true when
    /// `net` lies inside a whitelisted network or contains one.
    pub fn overlaps(&self, net: &IpNet) -> bool {
        self.nets.iter().any(|w| w.contains(net) || net.contains(w))
    }

    /// The networks, loopback included.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_networks_are_whitelisted() {
        let wl = Whitelist::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(wl.contains_addr("127.0.0.1".parse().unwrap()));
        assert!(wl.contains_addr("::1".parse().unwrap()));
        assert!(wl.contains_addr("10.2.3.4".parse().unwrap()));
        assert!(wl.contains_addr("::ffff:10.2.3.4".parse().unwrap()));
        assert!(!wl.contains_addr("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn a_prefix_that_covers_a_whitelisted_address_overlaps() {
        let wl = Whitelist::new(vec![]).with_host_addresses(["2001:db8::5".parse().unwrap()]);
        assert!(wl.overlaps(&"2001:db8::/64".parse().unwrap()));
        assert!(!wl.overlaps(&"2001:db8:1::/64".parse().unwrap()));
    }
}
