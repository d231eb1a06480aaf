//! Where a node may send calls: another node's API URL, read from the
//! directory, is `http://host:port` with an IP literal or a plain host name
//! and nothing else (no user, path, query or odd host spelling), and, when
//! `--cluster-peers` is set, an address that list admits.
//!
//! Where it sits: `trust` refuses node records whose URL this refuses;
//! `http` connects only to an [`ApiUrl`]'s authority.

use std::net::IpAddr;

/// The longest API URL accepted.
pub const MAX_API_URL: usize = 256;

/// A node's API base URL, checked: `http://host:port` (a trailing `/`
/// allowed), where host is an IPv4 literal, a bracketed IPv6 literal or a
/// host name of letters, digits, `-` and `.` whose last label starts with a
/// letter (so that no spelling of a number reaches the resolver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl {
    host: Host,
    port: u16,
    /// `host:port`, as written.
    authority: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Why an API URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an http://host:port URL of at most {MAX_API_URL} bytes: {0:?}")]
pub struct UrlError(pub String);

impl ApiUrl {
    /// Checks `url`.
    pub fn parse(url: &str) -> Result<ApiUrl, UrlError> {
        let refuse = || UrlError(url.chars().take(MAX_API_URL).collect());
        if url.len() > MAX_API_URL {
            return Err(refuse());
        }
        let authority = url
            .strip_prefix("http://")
            .map(|a| a.strip_suffix('/').unwrap_or(a))
            .ok_or_else(refuse)?;
        let (host, port) = authority.rsplit_once(':').ok_or_else(refuse)?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(refuse)?;
        let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Host::Ip(IpAddr::V6(v6.parse().map_err(|_| refuse())?))
        } else if let Ok(v4) = host.parse() {
            Host::Ip(IpAddr::V4(v4))
        } else if is_host_name(host) {
            Host::Name(host.to_ascii_lowercase())
        } else {
            return Err(refuse());
        };
        if let Host::Ip(ip) = host {
            // None of these names a peer.
            let never = ip.is_unspecified()
                || ip.is_multicast()
                || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
            if never {
                return Err(refuse());
            }
        }
        Ok(ApiUrl {
            host,
            port,
            authority: authority.to_owned(),
        })
    }

    /// `host:port`, to connect to.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// A plain host name: labels of 1 to 63 letters, digits and inner `-`, at
/// most 253 bytes, the last label starting with a letter.
fn is_host_name(host: &str) -> bool {
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    let last_is_a_name = host
        .rsplit('.')
        .next()
        .and_then(|l| l.bytes().next())
        .is_some_and(|b| b.is_ascii_alphabetic());
    host.len() <= 253 && labels_ok && last_is_a_name
}

/// The API addresses other nodes may have (`--cluster-peers`): networks
/// (`10.0.0.0/24`, an address alone is a /32 or /128) and `host:port`
/// pairs. Empty: any address an [`ApiUrl`] accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers {
    entries: Vec<Peer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Peer {
    /// A network: an IP literal host inside it is admitted, any port.
    Net(IpAddr, u8),
    /// One `host:port` (lower case), admitted as written.
    Authority(Host, u16),
}

/// A `--cluster-peers` entry that is neither a network nor `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--cluster-peers: {0:?} is neither a network (10.0.0.0/24, fd00::/64, 10.0.0.5) nor host:port"
)]
pub struct PeersError(pub String);

impl Peers {
    /// No list: every acceptable URL.
    pub fn any() -> Peers {
        Peers::default()
    }

    /// The list's entries.
    pub fn parse(entries: &[String]) -> Result<Peers, PeersError> {
        let entries = entries
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| parse_peer(e).ok_or_else(|| PeersError(e.to_owned())))
            .collect::<Result<_, _>>()?;
        Ok(Peers { entries })
    }

    /// Whether calls may go to `url`.
    pub fn admits(&self, url: &ApiUrl) -> bool {
        self.entries.is_empty()
            || self.entries.iter().any(|e| match (e, &url.host) {
                (Peer::Net(net, bits), Host::Ip(ip)) => in_network(*ip, *net, *bits),
                (Peer::Authority(host, port), h) => host == h && *port == url.port,
                (Peer::Net(..), Host::Name(_)) => false,
            })
    }
}

fn parse_peer(entry: &str) -> Option<Peer> {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (entry, None),
    };
    if let Ok(ip) = addr.parse::<IpAddr>() {
        let ip = ip.to_canonical();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        return (bits <= max).then_some(Peer::Net(ip, bits));
    }
    if bits.is_some() {
        return None;
    }
    let url = ApiUrl::parse(&format!("http://{entry}")).ok()?;
    Some(Peer::Authority(url.host, url.port))
}

/// Whether `ip` is inside `net`/`bits`.
fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_http_host_port_only() {
        for ok in [
            "http://10.0.0.1:8080",
            "http://10.0.0.1:8080/",
            "http://[fd00::1]:80",
            "http://sfu-2.internal:8080",
            "http://localhost:1",
        ] {
            assert!(ApiUrl::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("http://{}.example:80", "a".repeat(250));
        for bad in [
            "https://10.0.0.1:8080",
            "http://10.0.0.1",
            "http://10.0.0.1:0",
            "http://10.0.0.1:+80",
            "http://10.0.0.1:65536",
            "http://10.0.0.1:8080/path",
            "http://10.0.0.1:8080?x",
            "http://user@10.0.0.1:8080",
            "http://0.0.0.0:8080",
            "http://[::]:8080",
            "http://224.0.0.1:8080",
            "http://255.255.255.255:8080",
            "http://[fe80::1%eth0]:80",
            "http://127.1:8080",
            "http://0x7f000001:8080",
            "http://2130706433:8080",
            "http://a..b:80",
            "http://-a.b:80",
            "http://a_b:80",
            "http://:80",
            long.as_str(),
        ] {
            assert!(ApiUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ApiUrl::parse("http://10.0.0.1:8080/").unwrap().authority(),
            "10.0.0.1:8080"
        );
    }

    #[test]
    fn peers_admit_their_networks_and_authorities() {
        let peers = Peers::parse(&[
            "10.0.0.0/24".into(),
            "fd00::/64".into(),
            "192.168.1.7".into(),
            "sfu-3.internal:8080".into(),
        ])
        .unwrap();
        let admits = |u: &str| peers.admits(&ApiUrl::parse(u).unwrap());
        assert!(admits("http://10.0.0.200:8080"));
        assert!(!admits("http://10.0.1.1:8080"));
        assert!(admits("http://[fd00::5]:80"));
        assert!(!admits("http://[fd01::5]:80"));
        assert!(admits("http://192.168.1.7:1"));
        assert!(!admits("http://192.168.1.8:1"));
        assert!(admits("http://SFU-3.internal:8080"));
        assert!(!admits("http://sfu-3.internal:8081"));
        assert!(!admits("http://sfu-4.internal:8080"));
        assert!(Peers::any().admits(&ApiUrl::parse("http://1.2.3.4:5").unwrap()));
        let all = Peers::parse(&["0.0.0.0/0".into()]).unwrap();
        assert!(all.admits(&ApiUrl::parse("http://1.2.3.4:5").unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0.0/x", "host", "host:0", "a/8"] {
            assert!(Peers::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
