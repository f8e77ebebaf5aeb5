//! Which addresses Wharf may send to (the SSRF guard's rules; the engine's HTTP client applies
//! them to every address it would connect to).
//!
//! By default every non-public range is blocked: loopback, private, link-local (with the cloud
//! metadata address), CGNAT, multicast, documentation, benchmarking, reserved and unspecified,
//! for IPv4 and IPv6. IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible,
//! 6to4, NAT64, Teredo, SIIT's IPv4-translated `::ffff:0:a.b.c.d`) are judged by the address
//! they embed or blocked whole. Operators open
//! ranges with `--allow-network CIDR`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// A blocked address: which one, why, and how to allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the address {addr} is in a blocked range ({range}); Wharf does not send to non-public networks by default. \
     To allow it, start Wharf with --allow-network {suggestion} (or WHARF_ALLOW_NETWORK)"
)]
pub struct Blocked {
    pub addr: IpAddr,
    pub range: &'static str,
    /// The narrowest CIDR that would allow this address.
    pub suggestion: String,
}

/// The address rules: blocked ranges minus what the operator allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    allowed: Vec<IpNet>,
}

impl NetworkPolicy {
    /// The default rules plus `allowed` ranges.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Reads `--allow-network` values: CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses.
    pub fn parse_allowed(values: &[String]) -> Result<Vec<IpNet>, String> {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|value| {
                value
                    .parse::<IpNet>()
                    .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{value}` is not a CIDR range (e.g. 127.0.0.0/8) or an IP address"))
            })
            .collect()
    }

    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether Wharf may connect to `addr`.
    pub fn check(&self, addr: IpAddr) -> Result<(), Blocked> {
        let canonical = canonical(addr);
        if self.allowed.iter().any(|net| net.contains(&addr) || net.contains(&canonical)) {
            return Ok(());
        }
        match blocked_range(addr) {
            None => Ok(()),
            Some(range) => Err(Blocked { addr, range, suggestion: IpNet::from(addr).to_string() }),
        }
    }
}

/// An IPv4-mapped or IPv4-compatible IPv6 address as the IPv4 address it stands for.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        v4 => v4,
    }
}

/// `::ffff:a.b.c.d` (mapped) and `::a.b.c.d` (compatible, deprecated but still routed by some
/// stacks).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s[..6] {
        [0, 0, 0, 0, 0, 0xffff] => Some(v4),
        [0, 0, 0, 0, 0, 0] if s[6] != 0 => Some(v4),
        _ => None,
    }
}

/// The name of the blocked range `addr` falls in, if any.
pub fn blocked_range(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => blocked_v4(v4).map(|_| "IPv4-mapped IPv6 of a blocked IPv4 address"),
            None => blocked_v6(v6),
        },
    }
}

const V4_BLOCKED: &[(u32, u8, &str)] = &[
    (0x0000_0000, 8, "\"this network\" 0.0.0.0/8"),
    (0x0a00_0000, 8, "private 10.0.0.0/8"),
    (0x6440_0000, 10, "carrier-grade NAT 100.64.0.0/10"),
    (0x7f00_0000, 8, "loopback 127.0.0.0/8"),
    (0xa9fe_0000, 16, "link-local 169.254.0.0/16 (includes cloud metadata 169.254.169.254)"),
    (0xac10_0000, 12, "private 172.16.0.0/12"),
    (0xc000_0000, 24, "IETF protocol assignments 192.0.0.0/24"),
    (0xc000_0200, 24, "documentation 192.0.2.0/24"),
    (0xc058_6300, 24, "6to4 relay anycast 192.88.99.0/24"),
    (0xc0a8_0000, 16, "private 192.168.0.0/16"),
    (0xc612_0000, 15, "benchmarking 198.18.0.0/15"),
    (0xc633_6400, 24, "documentation 198.51.100.0/24"),
    (0xcb00_7100, 24, "documentation 203.0.113.0/24"),
    (0xe000_0000, 4, "multicast 224.0.0.0/4"),
    (0xf000_0000, 4, "reserved 240.0.0.0/4 (and broadcast)"),
];

fn blocked_v4(addr: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(addr);
    V4_BLOCKED.iter().find(|(net, len, _)| bits >> (32 - len) == net >> (32 - len)).map(|(_, _, name)| *name)
}

const V6_BLOCKED: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified ::"),
    (1, 128, "loopback ::1"),
    // What `embedded_v4` does not judge by its IPv4 address: `::0.0.x.y`.
    (0, 96, "IPv4-compatible ::/96"),
    // SIIT's IPv4-translated form (RFC 2765, RFC 6145): a translator on the path would turn
    // it into any IPv4 address, private ones included, and no public service is reached by it.
    (0x0000_0000_0000_0000_ffff_0000_0000_0000, 96, "IPv4-translated ::ffff:0:0:0/96"),
    (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96, "NAT64 64:ff9b::/96"),
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48, "local NAT64 64:ff9b:1::/48"),
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64, "discard 100::/64"),
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23, "IETF protocol assignments 2001::/23 (includes Teredo)"),
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32, "documentation 2001:db8::/32"),
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16, "6to4 2002::/16"),
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20, "documentation 3fff::/20"),
    (0x5f00_0000_0000_0000_0000_0000_0000_0000, 16, "segment routing 5f00::/16"),
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7, "unique local fc00::/7"),
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10, "link-local fe80::/10"),
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10, "site-local fec0::/10"),
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8, "multicast ff00::/8"),
];

fn blocked_v6(addr: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(addr);
    V6_BLOCKED
        .iter()
        .find(|(net, len, _)| if *len == 128 { bits == *net } else { bits >> (128 - len) == net >> (128 - len) })
        .map(|(_, _, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> bool {
        NetworkPolicy::default().check(text.parse().unwrap()).is_err()
    }

    #[test]
    fn non_public_ranges_are_blocked() {
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "2001::1",
            // IPv4-translated (RFC 6145), whatever it embeds, and the rest of IPv4-compatible.
            "::ffff:0:127.0.0.1",
            "::ffff:0:8.8.8.8",
            "::ffff:0:0",
            "0:0:0:0:ffff:0:a9fe:a9fe",
            "::2",
            "::0.0.255.255",
        ] {
            assert!(blocked(addr), "{addr} should be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!blocked(addr), "{addr} should pass");
        }
    }

    #[test]
    fn allowed_ranges_open_blocked_ones_and_say_how() {
        let err = NetworkPolicy::default().check("127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("--allow-network 127.0.0.1/32"), "{err}");
        assert!(err.to_string().contains("loopback"), "{err}");
        let allowed = NetworkPolicy::parse_allowed(&["127.0.0.0/8".into(), "fd00::1".into()]).unwrap();
        let policy = NetworkPolicy::new(allowed);
        assert_eq!(policy.check("127.0.0.2".parse().unwrap()), Ok(()));
        assert_eq!(policy.check("::ffff:127.0.0.2".parse().unwrap()), Ok(()));
        assert_eq!(policy.check("fd00::1".parse().unwrap()), Ok(()));
        assert!(policy.check("fd00::2".parse().unwrap()).is_err());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(NetworkPolicy::parse_allowed(&["nope".into()]).is_err());
    }

    #[test]
    fn ip_literals_in_every_notation_parse_to_the_address() {
        // The URL parser (WHATWG) normalizes decimal, octal, hex and short IPv4 forms, so the
        // guard sees the address the socket would connect to.
        for url in ["http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/", "http://127.1/", "http://[::ffff:7f00:1]/"] {
            let host = url::Url::parse(url).unwrap();
            let addr: IpAddr = match host.host().unwrap() {
                url::Host::Ipv4(v4) => v4.into(),
                url::Host::Ipv6(v6) => v6.into(),
                url::Host::Domain(d) => panic!("{url} parsed as the domain {d}"),
            };
            assert!(blocked(&addr.to_string()), "{url} → {addr}");
        }
    }
}
