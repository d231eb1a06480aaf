//! Which addresses a third-party session's ICE checks may go to. An app
//! names them (the candidates of the SDP it sends), so without a filter the
//! server would send Binding requests wherever an app asks: to hosts on the
//! server's own network, to its own UDP services, or to a broadcast address.
//!
//! Where it sits: the control thread, between the SDP reader (which keeps
//! only addresses that name a peer at all, `sdp::udp_candidate`) and
//! [`super::peer_checks::PeerChecks`], which sends checks only to the
//! candidates this admits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The addresses checks may go to.
#[derive(Debug, Clone, Default)]
pub struct CheckTargets {
    /// Loopback and private ranges admitted (tests, LAN deployments and a
    /// cluster's relays, whose peers are nodes of one network).
    private: bool,
    /// Our own media sockets: a check there would talk to ourselves.
    own: Vec<SocketAddr>,
}

impl CheckTargets {
    /// For candidates an app or a client sends: public unicast addresses
    /// only, unless `private` (the `--third-party-private-candidates` flag)
    /// admits loopback and private ranges too. `own` are our media
    /// sockets (the announced host candidates); with `private` unset, every
    /// other port of their addresses is refused as well.
    pub fn new(private: bool, own: &[SocketAddr]) -> Self {
        CheckTargets {
            private,
            own: own.to_vec(),
        }
    }

    /// For a cluster's relays: the peer is a node named by the directory,
    /// on whatever network the nodes share.
    pub fn cluster(own: &[SocketAddr]) -> Self {
        Self::new(true, own)
    }

    /// Whether a check may go to `to`.
    pub fn admits(&self, to: SocketAddr) -> bool {
        let ip = to.ip().to_canonical();
        let to = SocketAddr::new(ip, to.port());
        if to.port() == 0
            || self
                .own
                .iter()
                .any(|o| o.ip().to_canonical() == ip && o.port() == to.port())
        {
            return false;
        }
        match classify(ip) {
            Range::Never => false,
            Range::Private => self.private,
            Range::Public if self.private => true,
            Range::Public => !self.own.iter().any(|o| o.ip().to_canonical() == ip),
        }
    }
}

/// What kind of address an IP is, for checks.
enum Range {
    /// Never a peer: unspecified, multicast, broadcast, link-local,
    /// reserved, documentation.
    Never,
    /// Loopback and private networks (RFC 1918, RFC 6598 shared, RFC 4193
    /// unique local).
    Private,
    /// Any other unicast address.
    Public,
}

impl Range {
    /// The range of an address that is `never` a peer, or `private`.
    fn of(never: bool, private: bool) -> Range {
        if never {
            Range::Never
        } else if private {
            Range::Private
        } else {
            Range::Public
        }
    }
}

fn classify(ip: IpAddr) -> Range {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Range {
    let [a, b, c, _] = ip.octets();
    let never = ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_link_local()
        || ip.is_documentation()
        || a == 0 // "this network" (RFC 791)
        || a >= 240 // reserved (RFC 1112)
        || (a == 192 && b == 0 && c == 0); // IETF protocol assignments (RFC 6890)
    let private = ip.is_loopback() || ip.is_private() || (a == 100 && (64..128).contains(&b));
    Range::of(never, private)
}

fn classify_v6(ip: Ipv6Addr) -> Range {
    let s = ip.segments();
    // NAT64: the well-known prefix (RFC 6052, /96) reaches the IPv4
    // address in its last 32 bits, which decides; the local-use prefix
    // (RFC 8215) is a network's own.
    if (s[0], s[1], s[2], s[3], s[4], s[5]) == (0x64, 0xff9b, 0, 0, 0, 0) {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if (s[0], s[1], s[2]) == (0x64, 0xff9b, 1) {
        return Range::Private;
    }
    let first = s[0];
    let never = ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8; // documentation
    let private = ip.is_loopback() || (first & 0xfe00) == 0xfc00; // unique local
    Range::of(never, private)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_unicast_only_by_default() {
        let own = [addr("203.0.113.7:40000")];
        let t = CheckTargets::new(false, &own);
        assert!(t.admits(addr("8.8.8.8:3478")));
        assert!(t.admits(addr("[2a00:1450::1]:3478")));
        assert!(
            t.admits(addr("[64:ff9b::808:808]:3478")),
            "NAT64 of a public address"
        );
        for refused in [
            "127.0.0.1:9",
            "10.1.2.3:40000",
            "172.16.0.1:40000",
            "192.168.1.1:40000",
            "100.64.0.1:40000",
            "169.254.1.1:40000",
            "255.255.255.255:40000",
            "224.0.0.1:40000",
            "0.1.2.3:40000",
            "240.0.0.1:40000",
            "[::1]:40000",
            "[fe80::1]:40000",
            "[fd00::1]:40000",
            "[ff02::1]:40000",
            "[::ffff:127.0.0.1]:40000",
            "[::ffff:10.0.0.1]:40000",
            "[64:ff9b::a00:1]:40000",
            "[64:ff9b::7f00:1]:40000",
            "[64:ff9b:1::1]:40000",
            "8.8.8.8:0",
            "198.51.100.9:5000",
        ] {
            assert!(!t.admits(addr(refused)), "{refused} must be refused");
        }
    }

    #[test]
    fn our_own_sockets_never_and_our_addresses_only_when_private_is_admitted() {
        let own = [addr("8.8.4.4:40000"), addr("127.0.0.1:40000")];
        let public = CheckTargets::new(false, &own);
        assert!(!public.admits(addr("8.8.4.4:40000")));
        assert!(
            !public.admits(addr("8.8.4.4:53")),
            "another service of ours"
        );
        let lan = CheckTargets::new(true, &own);
        assert!(!lan.admits(addr("127.0.0.1:40000")), "ourselves");
        assert!(
            !lan.admits(addr("[::ffff:127.0.0.1]:40000")),
            "ourselves, mapped"
        );
        assert!(lan.admits(addr("127.0.0.1:40001")));
        assert!(lan.admits(addr("10.0.0.5:40000")));
        assert!(
            !lan.admits(addr("169.254.0.5:40000")),
            "link-local is never a peer"
        );
        assert!(!lan.admits(addr("255.255.255.255:40000")));
    }
}
