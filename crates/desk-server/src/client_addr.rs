//! Which client a request comes from, as the login throttle counts it (issue 9, item 5).
//!
//! By default the socket's peer address: `X-Forwarded-For` is written by whoever sends the
//! request, so trusting it would let an attacker pick a fresh address for every guess.
//! Behind a reverse proxy every request comes from the proxy's address; list the proxy in
//! `--trusted-proxy` (`LINEDESK_TRUSTED_PROXIES`) and, for requests from it, the address
//! the proxy appended to `X-Forwarded-For` is used (the right-most one that is not itself
//! a trusted proxy). IPv6 clients are counted by their /64 network, since one host
//! commonly holds a whole /64.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;

/// The client's address as a throttle key: `203.0.113.7`, `2001:db8:1:2::/64`, or
/// `unknown` (no socket address: a request built in a test).
pub fn client_key(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: &[IpAddr]) -> String {
    let Some(peer) = peer.map(|p| canonical(p.ip())) else {
        return "unknown".into();
    };
    let ip = if trusted.contains(&peer) {
        forwarded_client(headers, trusted).unwrap_or(peer)
    } else {
        peer
    };
    key_of(ip)
}

/// The right-most `X-Forwarded-For` address that is not a trusted proxy.
fn forwarded_client(headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| parse_hop(hop.trim()))
        .collect::<Option<Vec<_>>>()?;
    hops.into_iter()
        .rev()
        .map(canonical)
        .find(|ip| !trusted.contains(ip))
}

/// `203.0.113.7`, `203.0.113.7:5000`, `2001:db8::1` or `[2001:db8::1]:5000`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn key_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// Parses `--trusted-proxy` values: addresses separated by commas or spaces.
pub fn parse_trusted(list: &str) -> Result<Vec<IpAddr>, String> {
    list.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>()
                .map(canonical)
                .map_err(|_| format!("not an IP address: {s:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ext(peer: &str) -> Option<SocketAddr> {
        Some(peer.parse().unwrap())
    }

    #[test]
    fn the_peer_unless_it_is_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.9"));
        assert_eq!(client_key(&h, ext("203.0.113.7:4000"), &[]), "203.0.113.7");
        let proxy = parse_trusted("127.0.0.1, 10.0.0.2").unwrap();
        assert_eq!(
            client_key(&h, ext("203.0.113.7:4000"), &proxy),
            "203.0.113.7",
            "only trusted proxies are believed"
        );
        assert_eq!(
            client_key(&h, ext("127.0.0.1:4000"), &proxy),
            "198.51.100.9"
        );
        // A client's own X-Forwarded-For entries are to the left of what the proxy added.
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 198.51.100.9, 10.0.0.2"),
        );
        assert_eq!(
            client_key(&h, ext("127.0.0.1:4000"), &proxy),
            "198.51.100.9"
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_key(&h, ext("127.0.0.1:4000"), &proxy), "127.0.0.1");
        assert_eq!(client_key(&h, None, &proxy), "unknown");
    }

    #[test]
    fn ipv6_by_network() {
        let h = HeaderMap::new();
        assert_eq!(
            client_key(&h, ext("[2001:db8:1:2:aaaa::1]:80"), &[]),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_key(&h, ext("[::ffff:192.0.2.1]:80"), &[]),
            "192.0.2.1"
        );
        assert!(parse_trusted("nope").is_err());
    }
}
