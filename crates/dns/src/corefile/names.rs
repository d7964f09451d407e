//! Domain names as the Corefile and the plugins compare them: lower case, fully qualified
//! (`example.org.`), the root written `.`; reverse zones from CIDRs.

use std::net::IpAddr;

/// Lower-cases `name` and adds the final dot (`Example.ORG` → `example.org.`; `` → `.`).
pub fn normalize(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    if lower.is_empty() || lower == "." {
        ".".to_string()
    } else if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

/// Checks a normalized name's labels (none empty, at most 63 bytes, 255 in all).
pub fn validate(name: &str) -> Result<(), String> {
    if name == "." {
        return Ok(());
    }
    if name.len() > 255 {
        return Err("name longer than 255 bytes".into());
    }
    let body = name.strip_suffix('.').unwrap_or(name);
    for label in body.split('.') {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} longer than 63 bytes"));
        }
        if label.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("bad character in label {label:?}"));
        }
    }
    Ok(())
}

/// Whether normalized `name` is `zone` or below it.
pub fn in_zone(name: &str, zone: &str) -> bool {
    if zone == "." {
        return true;
    }
    name == zone
        || (name.len() > zone.len() && name.ends_with(zone) && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

/// The longest of `zones` that holds `name`, as CoreDNS's `plugin.Zones.Matches`.
pub fn matching_zone<'z>(name: &str, zones: &'z [String]) -> Option<&'z str> {
    zones.iter().filter(|z| in_zone(name, z)).max_by_key(|z| z.len()).map(String::as_str)
}

/// The reverse zones that serve `addr/prefix`, split on label boundaries as CoreDNS does:
/// `10.0.0.0/24` → `0.0.10.in-addr.arpa.`, `10.0.0.0/23` → two /24 zones, `fd00::/8` →
/// `d.f.ip6.arpa.` and `c.f.ip6.arpa.` … (a /7 becomes two nibble zones).
pub fn reverse_zones(addr: IpAddr, prefix: u8) -> Result<Vec<String>, String> {
    let (bits, step, max): (Vec<u8>, u8, u8) = match addr {
        IpAddr::V4(a) => (a.octets().to_vec(), 8, 32),
        IpAddr::V6(a) => (a.octets().iter().flat_map(|b| [b >> 4, b & 0xf]).collect(), 4, 128),
    };
    if prefix > max {
        return Err(format!("prefix /{prefix} longer than {max} bits"));
    }
    let boundary = prefix.div_ceil(step) * step;
    let labels = usize::from(boundary / step);
    let extra = boundary - prefix;
    if extra > 7 {
        return Err("too many reverse zones".into());
    }
    let suffix = if step == 8 { "in-addr.arpa." } else { "ip6.arpa." };
    let mut zones = Vec::new();
    for i in 0..(1u16 << extra) {
        let mut units: Vec<u8> = bits[..labels].to_vec();
        if let Some(last) = units.last_mut() {
            let keep_mask: u16 = !((1u16 << extra) - 1) & ((1 << step) - 1);
            *last = ((u16::from(*last) & keep_mask) | i) as u8;
        }
        let mut zone = String::new();
        for u in units.iter().rev() {
            if step == 8 {
                zone.push_str(&format!("{u}."));
            } else {
                zone.push_str(&format!("{u:x}."));
            }
        }
        zone.push_str(suffix);
        zones.push(zone);
    }
    Ok(zones)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_matches() {
        assert_eq!(normalize("Example.ORG"), "example.org.");
        assert_eq!(normalize("."), ".");
        assert!(in_zone("a.example.org.", "example.org."));
        assert!(in_zone("example.org.", "example.org."));
        assert!(!in_zone("aexample.org.", "example.org."));
        assert!(in_zone("anything.", "."));
        let zones = vec![".".to_string(), "cluster.local.".to_string()];
        assert_eq!(matching_zone("a.svc.cluster.local.", &zones), Some("cluster.local."));
        assert_eq!(matching_zone("example.com.", &zones), Some("."));
        assert!(validate("a..b.").is_err());
    }

    #[test]
    fn reverse_zones_from_cidrs() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(reverse_zones(v4("10.0.0.0"), 24).unwrap(), ["0.0.10.in-addr.arpa."]);
        assert_eq!(reverse_zones(v4("10.0.0.0"), 8).unwrap(), ["10.in-addr.arpa."]);
        assert_eq!(reverse_zones(v4("0.0.0.0"), 0).unwrap(), ["in-addr.arpa."]);
        assert_eq!(reverse_zones(v4("10.1.2.0"), 23).unwrap(), ["2.1.10.in-addr.arpa.", "3.1.10.in-addr.arpa."]);
        assert_eq!(reverse_zones(v4("10.1.2.0"), 30).unwrap().len(), 4);
        assert_eq!(reverse_zones(v4("fd00::"), 8).unwrap(), ["d.f.ip6.arpa."]);
        assert_eq!(reverse_zones(v4("fd00::"), 7).unwrap(), ["c.f.ip6.arpa.", "d.f.ip6.arpa."]);
        assert!(reverse_zones(v4("10.0.0.0"), 33).is_err());
    }
}
