//! The SSRF guard: deliveries go only to globally routable addresses, unless the
//! configuration allows more (tests allow their loopback receiver).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// Any address at all (`--allow-private-targets`).
    pub allow_private: bool,
    /// Extra networks allowed although not global (`--allow-target CIDR`).
    pub allowed: Vec<IpNet>,
}

/// A delivery refused by the guard. What it displays goes into the owner's delivery log, so it
/// names neither the address nor what the URL's host resolved to (that would make the log a
/// probe of the internal network); [`TargetRefused::detail`] does, for the server's own log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("destination not allowed: not a public address")]
pub struct TargetRefused(pub IpAddr);

impl TargetRefused {
    /// The refusal with the address, for operators.
    pub fn detail(&self) -> String {
        format!(
            "{} is not a public address (allow it with --allow-target or --allow-private-targets)",
            self.0
        )
    }
}

impl TargetPolicy {
    pub fn check(&self, ip: IpAddr) -> Result<(), TargetRefused> {
        if self.allow_private || is_global(ip) || self.allowed.iter().any(|net| net.contains(&ip)) {
            Ok(())
        } else {
            Err(TargetRefused(ip))
        }
    }
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn v6_in(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

/// Whether `ip` is globally routable unicast (IANA special-purpose registries).
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    const NOT_GLOBAL: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network"
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // CGNAT
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, and broadcast
    ];
    !NOT_GLOBAL.iter().any(|(net, prefix)| v4_in(ip, *net, *prefix))
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped addresses (::ffff:0:0/96) reach the IPv4 address they carry: judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    const NOT_GLOBAL: &[([u16; 8], u32)] = &[
        ([0, 0, 0, 0, 0, 0, 0, 0], 128),         // unspecified
        ([0, 0, 0, 0, 0, 0, 0, 1], 128),         // loopback
        ([0, 0, 0, 0, 0, 0, 0, 0], 96),          // IPv4-compatible (deprecated)
        ([0, 0, 0, 0, 0xffff, 0, 0, 0], 96), // IPv4-translated (RFC 2765): SIIT forwards to the IPv4 inside
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use IPv4/IPv6 translation
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),  // discard-only
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, ORCHID, …)
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4: embeds an IPv4 address of any kind
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
        ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), // segment routing SIDs
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),  // unique local
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),  // multicast
    ];
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if v6_in(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        let [.., a, b] = ip.segments();
        return is_global_v4(Ipv4Addr::from((u32::from(a) << 16) | u32::from(b)));
    }
    // Only 2000::/3 is allocated to global unicast: anything outside it (reserved space
    // included) is refused, listed above or not.
    v6_in(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3)
        && !NOT_GLOBAL.iter().any(|(net, prefix)| v6_in(ip, *net, *prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_every_non_global_range() {
        for s in [
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
            "192.0.2.10",
            "198.51.100.1",
            "203.0.113.9",
            "198.18.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
            "2001::1",
            "::127.0.0.1",
            // IPv4-translated (::ffff:0:0:0/96), whatever the IPv4 address it carries.
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
            "::ffff:0:808:808",
            // Outside 2000::/3: reserved, not allocated to global unicast.
            "::1:0:0:1",
            "4000::1",
            "e000::1",
        ] {
            assert!(!is_global(ip(s)), "{s} should not be global");
            assert!(TargetPolicy::default().check(ip(s)).is_err(), "{s}");
        }
    }

    #[test]
    fn a_refusal_names_the_address_only_in_its_detail() {
        let refused = TargetPolicy::default().check(ip("10.1.2.3")).unwrap_err();
        assert_eq!(refused.to_string(), "destination not allowed: not a public address");
        assert!(refused.detail().contains("10.1.2.3"), "{}", refused.detail());
    }

    #[test]
    fn allows_public_addresses_and_configured_exceptions() {
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_global(ip(s)), "{s} should be global");
        }
        let policy = TargetPolicy { allow_private: false, allowed: vec!["127.0.0.0/8".parse().unwrap()] };
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("10.0.0.1")).is_err());
        assert!(TargetPolicy { allow_private: true, allowed: vec![] }.check(ip("10.0.0.1")).is_ok());
    }
}
