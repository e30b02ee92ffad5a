//! Who is reporting, and from where: the client's address (the socket's
//! peer, or, when the peer is a trusted proxy, the last hop of
//! `X-Forwarded-For` that is not one), the region a trusted proxy names in
//! the configured header, and the User-Agent. The address only ever goes
//! into the reporter key.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;

use super::config::{ReportsConfig, canonical};

/// The `X-Forwarded-For` header.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// A request's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    /// Its address.
    pub(crate) address: IpAddr,
    /// Its User-Agent, as sent (empty when none).
    pub(crate) user_agent: Vec<u8>,
    /// The region the trusted proxy's header names, if any.
    pub(crate) region: Option<String>,
}

/// Why a request's client cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("X-Forwarded-For from a trusted proxy holds `{0}`, not an address")]
pub(crate) struct BadForwardedFor(String);

/// The client of a request from `peer` with `headers`.
pub(crate) fn client(
    config: &ReportsConfig,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Client, BadForwardedFor> {
    let peer = canonical(peer.ip());
    let trusted = config.is_trusted(peer);
    let address = match trusted {
        true => forwarded_client(config, peer, headers)?,
        false => peer,
    };
    let region = match (trusted, &config.region_header) {
        (true, Some(header)) => headers
            .get(header.as_str())
            .and_then(|value| value.to_str().ok())
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty()),
        _ => None,
    };
    let user_agent = headers
        .get(USER_AGENT)
        .map(|value| value.as_bytes().to_vec())
        .unwrap_or_default();
    Ok(Client {
        address,
        user_agent,
        region,
    })
}

/// The last hop of `X-Forwarded-For` (all its headers, in order) that is not
/// a trusted proxy; the first hop when all are; `peer` when there is none.
fn forwarded_client(
    config: &ReportsConfig,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Result<IpAddr, BadForwardedFor> {
    let mut hops = Vec::new();
    for value in headers.get_all(FORWARDED_FOR) {
        let text = value
            .to_str()
            .map_err(|_| BadForwardedFor(String::from_utf8_lossy(value.as_bytes()).into_owned()))?;
        hops.extend(text.split(',').map(str::trim).filter(|hop| !hop.is_empty()));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = canonical(
            parse_hop(hop).ok_or_else(|| BadForwardedFor(hop.chars().take(64).collect()))?,
        );
        if !config.is_trusted(client) {
            break;
        }
    }
    Ok(client)
}

/// One hop: an address, with or without a port (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn config(trusted: &str) -> ReportsConfig {
        let text = format!("trusted_proxies: [{trusted}]\nregion_header: x-region\n");
        let section: super::super::config::ReportsSection =
            crate::yaml::parse(std::path::Path::new("r.yaml"), &text).expect("a readable section");
        section.check().expect("a valid section")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
    }

    fn peer(address: &str) -> SocketAddr {
        SocketAddr::new(address.parse().expect("an address"), 40000)
    }

    #[test]
    fn forwarded_for_and_the_region_header_count_only_from_a_trusted_proxy() {
        let config = config("10.0.0.0/8");
        let sent = headers(&[
            ("x-forwarded-for", "198.51.100.9"),
            ("x-region", "eu-west"),
            ("user-agent", "UA"),
        ]);
        let via_proxy = client(&config, peer("10.0.0.2"), &sent).expect("a client");
        assert_eq!(
            via_proxy.address,
            "198.51.100.9".parse::<IpAddr>().expect("an address")
        );
        assert_eq!(via_proxy.region.as_deref(), Some("eu-west"));
        assert_eq!(via_proxy.user_agent, b"UA");
        let direct = client(&config, peer("203.0.113.5"), &sent).expect("a client");
        assert_eq!(
            direct.address,
            "203.0.113.5".parse::<IpAddr>().expect("an address")
        );
        assert_eq!(direct.region, None);
    }

    #[test]
    fn the_last_untrusted_hop_is_the_client() {
        let config = config("10.0.0.0/8");
        let at = |pairs: &[(&'static str, &str)]| {
            client(&config, peer("10.0.0.2"), &headers(pairs)).map(|c| c.address.to_string())
        };
        // A forged first hop is ignored: the proxies appended the real one.
        assert_eq!(
            at(&[("x-forwarded-for", "1.1.1.1, 198.51.100.9, 10.0.0.7")])
                .ok()
                .as_deref(),
            Some("198.51.100.9")
        );
        assert_eq!(
            at(&[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "198.51.100.9:443")
            ])
            .ok()
            .as_deref(),
            Some("198.51.100.9")
        );
        assert_eq!(
            at(&[("x-forwarded-for", "10.0.0.9, 10.0.0.8")])
                .ok()
                .as_deref(),
            Some("10.0.0.9")
        );
        assert_eq!(at(&[]).ok().as_deref(), Some("10.0.0.2"));
        assert_eq!(
            at(&[("x-forwarded-for", "[2001:db8::1]:8443")])
                .ok()
                .as_deref(),
            Some("2001:db8::1")
        );
        assert!(at(&[("x-forwarded-for", "not-an-address")]).is_err());
        // Garbage left of the client does not matter.
        assert_eq!(
            at(&[("x-forwarded-for", "garbage, 198.51.100.9")])
                .ok()
                .as_deref(),
            Some("198.51.100.9")
        );
    }
}
