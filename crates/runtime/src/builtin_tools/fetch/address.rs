//! Which URLs and addresses `fetch_url` may reach: http and https only, and by default public
//! addresses only, checked in the URL, in every redirect, and where a name resolves.

use reqwest::Url;
use std::net::{IpAddr, SocketAddr};

/// Why `url` may not be fetched, if it may not: the scheme, or a host that is plainly local.
pub(super) fn check_url(url: &Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "uses the scheme '{}'; fetch_url fetches only http:// and https:// URLs",
            url.scheme()
        ));
    }
    if allow_private {
        return Ok(());
    }
    let Some(host) = url.host_str() else {
        return Err("has no host".to_owned());
    };
    // IPv6 literals come in brackets; names are left for the resolver to check.
    let local = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => !is_public(ip),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if local {
        return Err(format!(
            "points to a local or private address ({host}), which fetch_url does not reach"
        ));
    }
    Ok(())
}

/// Whether `ip` is a public unicast address.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                return false;
            }
            if let Some(v4) = v6.to_ipv4() {
                return is_public(IpAddr::V4(v4));
            }
            let [first, second, ..] = v6.segments();
            !(v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || (first == 0x2001 && second == 0x0db8) // documentation
                || (first == 0x0064 && second == 0xff9b)) // NAT64, which reaches IPv4 space
        }
    }
}

/// A resolver that answers only public addresses, so a name cannot lead to a local one.
pub(super) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| is_public(address.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} has no public address (fetch_url does not reach local or private ones)"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(local.parse().unwrap()), "{local}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_and_local_hosts() {
        let check = |url: &str, allow| check_url(&Url::parse(url).unwrap(), allow);
        assert!(check("https://example.com/a", false).is_ok());
        assert!(
            check("file:///etc/passwd", true)
                .unwrap_err()
                .contains("scheme 'file'")
        );
        assert!(check("ftp://example.com", true).is_err());
        assert!(check("http://localhost:8080/", false).is_err());
        assert!(check("http://127.0.0.1:8080/", false).is_err());
        assert!(check("http://[::1]/", false).is_err());
        assert!(check("http://127.0.0.1:8080/", true).is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_locally_are_refused() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let error = PublicOnly.resolve(name).await.err().unwrap();
        assert!(error.to_string().contains("no public address"), "{error}");
    }
}
