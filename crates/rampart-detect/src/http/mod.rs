//! What the HTTP gateway asks on every request: how is this client behaving
//! ([`ClientTable`]), and is this request an attack ([`Signatures`])?
//!
//! Pure like the rest of the crate: no I/O, no clock. Time is a `u64` of
//! milliseconds on a monotonic clock, passed by the caller.
//!
//! The gateway's order, per request:
//!
//! ```text
//! request head ──► Signatures::check ──hit──► refuse (and ban: one attack is enough)
//!                        │ none
//!                        ▼
//!                  ClientTable::observe ──Block──► refuse and ban
//!                        │ Allow / Monitor
//!                        ▼
//!  form body? ──► Signatures::check_body_form ──hit──► refuse
//!                        ▼
//!                    upstream ──► ClientTable::observe_response(status)
//! ```
//!
//! - [`features`]: the per-client state, updated incrementally in bounded
//!   memory, and the [`Features`] snapshot read from it.
//! - [`score`]: behaviour signals, the [`Scorer`] trait and the default
//!   [`WeightedScorer`] (a logistic score whose weights come from config).
//! - [`client_table`]: the sharded, bounded, thread-safe [`ClientTable`].
//! - [`signature`]: the [`InjectionDetector`] trait, [`LibInjection`] and
//!   [`Signatures`].
//! - [`decode`]: percent-decoding and query splitting.

pub mod client_table;
pub mod decode;
pub mod features;
pub mod score;
pub mod signature;

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use client_table::{Assessment, ClientTable};
pub use features::Features;
pub use score::{Reason, Reasons, Scorer, Verdict, WeightedScorer};
pub use signature::{
    InjectionDetector, LibInjection, Location, SignatureError, SignatureHit, SignatureKind,
    Signatures,
};

/// What the gateway knows about a request when its head has arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    /// The method as sent (`GET`, `POST`…).
    pub method: &'a str,
    /// The path as sent (still percent-encoded), without the query.
    pub path: &'a str,
    /// The query string as sent, without the `?`.
    pub query: Option<&'a str>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<&'a str>,
    /// How many header fields the request has.
    pub header_count: usize,
    /// Whether it has a `Cookie` header.
    pub has_cookie: bool,
    /// Whether it has a `Referer` header.
    pub has_referer: bool,
    /// Whether it has an `Accept-Language` header.
    pub has_accept_language: bool,
    /// `Content-Length`, when known.
    pub body_len: Option<u64>,
}

/// The client an address belongs to: the address itself truncated to
/// `ipv4_prefix` or `ipv6_prefix` bits. An IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.1`) counts as IPv4. Prefixes beyond the family's width
/// are taken as the full width.
pub fn client_key(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(a) => Ipv4Net::new(a, ipv4_prefix.min(32))
            .map(|n| IpNet::V4(n.trunc()))
            .unwrap_or_else(|_| IpNet::from(IpAddr::V4(a))),
        IpAddr::V6(a) => Ipv6Net::new(a, ipv6_prefix.min(128))
            .map(|n| IpNet::V6(n.trunc()))
            .unwrap_or_else(|_| IpNet::from(IpAddr::V6(a))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_group_ipv6_by_prefix_and_unmap_ipv4() {
        let key = |s: &str| client_key(s.parse().unwrap(), 32, 64).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7/32");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(
            client_key("192.0.2.7".parse().unwrap(), 24, 48).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            client_key("192.0.2.7".parse().unwrap(), 99, 200).to_string(),
            "192.0.2.7/32"
        );
    }
}
