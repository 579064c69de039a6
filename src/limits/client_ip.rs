//! The client's address. Behind a reverse proxy the peer is the proxy, and the client's address is
//! in a forwarding header that anyone can also write themselves: it is believed only when the peer
//! is a configured trusted proxy, and then read from the right (the hop the nearest proxy added)
//! leftwards, skipping hops that are themselves trusted proxies. The first untrusted hop is the
//! client; everything left of it is whatever the client claimed.

use std::fmt;
use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::web::Data;
use ipnet::IpNet;

use crate::state::AppState;

/// Hops further left than this are not looked at.
const MAX_HOPS: usize = 32;

/// Which header the trusted proxies append to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(format!(
                "`{raw}` is not a forwarding header (use x-forwarded-for or forwarded)"
            )),
        }
    }

    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            Self::Forwarded => header::FORWARDED,
        }
    }
}

impl fmt::Display for ForwardedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        })
    }
}

/// The proxies whose forwarding headers are believed, and which header they write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    pub networks: Vec<IpNet>,
    pub header: ForwardedHeader,
}

impl TrustedProxies {
    /// `10.0.0.0/8,127.0.0.1` (a bare address is a single host); empty = trust no proxy.
    pub fn parse_networks(raw: &str) -> Result<Vec<IpNet>, String> {
        raw.split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{s}` is not an address or a CIDR range"))
            })
            .collect()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers, self.header.name()),
            ForwardedHeader::Forwarded => forwarded_for(headers),
        };
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(client) {
                        return client;
                    }
                }
                // `unknown`, an obfuscated name or garbage: nothing further left can be trusted,
                // and the last trusted hop is the best address known.
                None => return client,
            }
        }
        client
    }
}

/// The client address of a request to this server (`None` only without a peer address, as in
/// some unit tests).
pub fn of(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(match req.app_data::<Data<AppState>>() {
        Some(state) => state
            .settings
            .limits
            .trusted_proxies
            .client_address(peer, req.headers()),
        None => peer.to_canonical(),
    })
}

/// `X-Forwarded-For` entries, left to right, over all header lines.
fn x_forwarded_for(headers: &HeaderMap, name: HeaderName) -> Vec<Option<IpAddr>> {
    headers
        .get_all(name)
        .flat_map(|v| v.to_str().unwrap_or("garbage").split(','))
        .map(node_address)
        .collect()
}

/// The `for=` node of each `Forwarded` element (RFC 7239 §4), left to right. An element without
/// `for=` counts as an unknown hop.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        let Ok(text) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in split_outside_quotes(text, ',') {
            let node = split_outside_quotes(element, ';')
                .into_iter()
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .map(|(_, value)| unquote(value.trim()));
            hops.push(node.as_deref().and_then(node_address));
        }
    }
    hops
}

/// Split on `sep` except inside a quoted-string.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A token, or a quoted-string with its backslash escapes undone (RFC 7230 §3.2.6).
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            c
        });
    }
    out
}

/// `192.0.2.43`, `192.0.2.43:47011`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`;
/// anything else (`unknown`, `_hidden`) is not an address.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let host = match node.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => node.rsplit_once(':')?.0,
    };
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn proxies(networks: &str, header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies {
            networks: TrustedProxies::parse_networks(networks).unwrap_or_default(),
            header,
        }
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            if let (Ok(n), Ok(v)) = (name.parse::<HeaderName>(), HeaderValue::from_str(v)) {
                map.append(n, v);
            }
        }
        map
    }

    #[test]
    fn networks_parse_and_bad_ones_are_named() {
        let nets = TrustedProxies::parse_networks("10.0.0.0/8, 127.0.0.1,::1,fd00::/8");
        assert_eq!(nets.map(|n| n.len()), Ok(4));
        let err = TrustedProxies::parse_networks("10.0.0.0/8,proxy.internal");
        assert!(err.is_err_and(|e| e.contains("proxy.internal")));
        assert_eq!(TrustedProxies::parse_networks(""), Ok(vec![]));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["198.51.100.7"]);
        assert_eq!(p.client_address(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let none = proxies("", ForwardedHeader::XForwardedFor);
        assert_eq!(none.client_address(ip("10.1.1.1"), &h), ip("10.1.1.1"));
    }

    #[test]
    fn the_chain_is_walked_from_the_right_skipping_trusted_hops() {
        let p = proxies("127.0.0.1/32,10.0.0.0/8", ForwardedHeader::XForwardedFor);
        // The client forged the first entry; the edge proxy 10.1.2.3 added 203.0.113.9.
        let h = headers(
            "x-forwarded-for",
            &["198.51.100.7, 203.0.113.9", "10.1.2.3"],
        );
        assert_eq!(p.client_address(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        // Every hop trusted: the leftmost is as far as the chain goes.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.2.3"]);
        assert_eq!(p.client_address(ip("127.0.0.1"), &h), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(
            p.client_address(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        // Garbage right of the client stops the walk at the last trusted hop.
        let h = headers("x-forwarded-for", &["203.0.113.9, garbage"]);
        assert_eq!(p.client_address(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn rfc_7239_forwarded_nodes() {
        let p = proxies("127.0.0.1/32", ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[r#"for=198.51.100.7;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.1"#],
        );
        assert_eq!(
            p.client_address(ip("127.0.0.1"), &h),
            ip("2001:db8:cafe::17")
        );
        let h = headers("forwarded", &[r#"For="192.0.2.43:47011""#]);
        assert_eq!(p.client_address(ip("127.0.0.1"), &h), ip("192.0.2.43"));
        let h = headers("forwarded", &["for=unknown"]);
        assert_eq!(p.client_address(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        // With Forwarded configured, X-Forwarded-For is not read at all.
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(p.client_address(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let p = proxies("127.0.0.1/32", ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["::ffff:203.0.113.9"]);
        assert_eq!(
            p.client_address(ip("::ffff:127.0.0.1"), &h),
            ip("203.0.113.9")
        );
    }
}
