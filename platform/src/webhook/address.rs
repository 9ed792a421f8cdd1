//! The SSRF guard of webhooks: [`AddressPolicy`] says which URLs and addresses a webhook
//! may reach. The URL's host is resolved once, every address is checked (loopback,
//! private, link-local incl. cloud metadata, unique-local, multicast, unspecified, shared
//! and documentation ranges are refused unless the operator's allow-list names the host
//! or a network), and the caller pins its connection to the checked address it returns,
//! so a second DNS answer cannot slip through. No Redis and no HTTP here.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

/// How long resolving a webhook's host may take.
pub(super) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_URL_LEN: usize = 2048;

/// Which webhook targets the operator allows (`MTA_WEBHOOK_ALLOW`, `MTA_WEBHOOK_ALLOW_HTTP`).
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Host names allowed whatever they resolve to.
    pub hosts: Vec<String>,
    /// Networks allowed even when private or loopback.
    pub networks: Vec<IpNet>,
    pub allow_http: bool,
}

impl AddressPolicy {
    /// Parses `MTA_WEBHOOK_ALLOW`: comma-separated host names and CIDR networks.
    pub fn parse(allow: &str, allow_http: bool) -> Result<AddressPolicy, String> {
        let mut policy = AddressPolicy { allow_http, ..AddressPolicy::default() };
        for entry in allow.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.networks.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.networks.push(IpNet::from(ip));
            } else if entry.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                policy.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!("`{entry}` is neither a host name nor a network"));
            }
        }
        Ok(policy)
    }

    /// Checks what can be checked without DNS: the URL's shape and scheme, and a literal IP.
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        if text.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        let url = Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("must use https (plain http is not allowed by the operator)".to_owned()),
            other => return Err(format!("scheme `{other}` is not https")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        let host = url.host_str().ok_or("has no host")?;
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            self.check_address(host, ip)?;
        }
        Ok(url)
    }

    /// Whether `ip` (which `host` resolved to) may be called.
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) || self.networks.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match forbidden_class(ip) {
            Some(class) => Err(format!("resolves to {ip}, a {class} address, which is refused")),
            None => Ok(()),
        }
    }

    /// Resolves the URL's host once and returns a checked address to pin the connection to.
    pub async fn resolve(&self, url: &Url) -> Result<SocketAddr, Unreachable> {
        let host = url.host_str().ok_or_else(|| Unreachable::Refused("the URL has no host".to_owned()))?;
        let port = url.port_or_known_default().ok_or_else(|| Unreachable::Refused("the URL has no port".to_owned()))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(Unreachable::Lookup(format!("cannot resolve {host}: {e}"))),
                Err(_) => return Err(Unreachable::Lookup(format!("resolving {host} timed out"))),
            },
        };
        if addresses.is_empty() {
            return Err(Unreachable::Lookup(format!("{host} resolves to no address")));
        }
        // Every answer must pass: a mixed answer is how rebinding attacks start.
        for address in &addresses {
            self.check_address(bare, address.ip()).map_err(Unreachable::Refused)?;
        }
        Ok(addresses[0])
    }
}

/// Why a webhook target cannot be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// The address policy refuses it: no retry can help.
    Refused(String),
    /// DNS failed or gave nothing: worth retrying.
    Lookup(String),
}

/// IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| IpAddr::V4(std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    if let Some(v4) = v6.to_ipv4_mapped() {
        IpAddr::V4(v4)
    } else if (s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        embedded(s[6], s[7])
    } else if s[0] == 0x2002 {
        embedded(s[1], s[2])
    } else {
        ip
    }
}

/// The class of an address no webhook may reach, if it is one.
pub fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_unspecified() || v4.is_broadcast() || a == 0 {
                Some("unspecified or broadcast")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_documentation() || a >= 240 || (a == 198 && (18..20).contains(&b)) {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified or broadcast")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local (cloud metadata lives here)")
            } else if first & 0xffc0 == 0xfec0 {
                Some("unique-local")
            } else if first == 0x2001 && v6.segments()[1] == 0x0db8 {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refused_address_class_is_refused() {
        for (ip, class) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("100.64.0.1", "shared"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.5", "private"),
            ("64:ff9b::a00:5", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:a9fe:a9fe::1", "link-local"),
            ("fec0::1", "unique-local"),
            ("198.18.0.1", "reserved"),
        ] {
            let found = forbidden_class(ip.parse().unwrap());
            assert!(found.is_some_and(|c| c.starts_with(class)), "{ip}: {found:?}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"] {
            assert_eq!(forbidden_class(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn the_allow_list_opens_named_hosts_and_networks_only() {
        let policy = AddressPolicy::parse("127.0.0.1/32, hooks.internal", true).unwrap();
        assert!(policy.check_address("x", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_address("x", "127.0.0.2".parse().unwrap()).is_err());
        assert!(policy.check_address("hooks.internal", "10.0.0.5".parse().unwrap()).is_ok());
        assert!(AddressPolicy::parse("a b", false).is_err());
    }

    #[test]
    fn urls_are_checked_before_any_lookup() {
        let strict = AddressPolicy::default();
        assert!(strict.check_url("https://example.com/hook").is_ok());
        for bad in [
            "http://example.com/hook",
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "not a url",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad}");
        }
    }
}
