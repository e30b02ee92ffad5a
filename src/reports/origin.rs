//! Same-origin checks for posts made by browsers: `Sec-Fetch-Site` when the
//! browser sends it (only `same-origin` passes), else `Origin` against the
//! request's own host (`X-Forwarded-Host` when a trusted proxy sets it).
//! A request with neither comes from no browser (an app, curl) and passes:
//! every current browser sends one of them with a POST.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// Whether a post with `headers` comes from this site (`trusted`: the peer
/// is a trusted proxy, whose `X-Forwarded-Host` names the site).
pub(crate) fn same_origin(headers: &HeaderMap, trusted: bool) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes().eq_ignore_ascii_case(b"same-origin");
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let forwarded_host = headers.get("x-forwarded-host").filter(|_| trusted);
    let Some(host) = forwarded_host.or_else(|| headers.get(HOST)) else {
        return false;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, authority)| authority);
    match (origin_host, host.to_str()) {
        (Some(origin_host), Ok(host)) => origin_host.eq_ignore_ascii_case(host.trim()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn check(pairs: &[(&'static str, &str)], trusted: bool) -> bool {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        same_origin(&headers, trusted)
    }

    #[test]
    fn only_same_origin_posts_pass() {
        assert!(check(&[("sec-fetch-site", "same-origin")], false));
        for site in ["cross-site", "same-site", "none"] {
            assert!(
                !check(
                    &[
                        ("sec-fetch-site", site),
                        ("origin", "http://h:1"),
                        ("host", "h:1")
                    ],
                    false
                ),
                "{site}"
            );
        }
        assert!(check(
            &[
                ("origin", "http://status.example:9465"),
                ("host", "status.example:9465")
            ],
            false
        ));
        assert!(!check(
            &[
                ("origin", "https://evil.example"),
                ("host", "status.example")
            ],
            false
        ));
        assert!(!check(
            &[("origin", "null"), ("host", "status.example")],
            false
        ));
        assert!(!check(&[("origin", "https://status.example")], false));
        let proxied = [
            ("origin", "https://status.example"),
            ("host", "10.0.0.5:9465"),
            ("x-forwarded-host", "status.example"),
        ];
        assert!(check(&proxied, true));
        assert!(!check(&proxied, false));
        assert!(check(&[], false));
    }
}
