//! Server block keys: `[dns://]ZONE[:PORT]`, where ZONE is a domain (`.`, `cluster.local`) or a
//! CIDR standing for its reverse zones (`10.0.0.0/24` → `0.0.10.in-addr.arpa.`). Listening
//! addresses of the HTTP plugins (`:8080`, `localhost:9153`) live here too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::names;

/// CoreDNS's port when a key names none.
pub const DEFAULT_PORT: u16 = 53;

/// Parses one key into its zones and port.
pub(crate) fn parse_key(key: &str) -> Result<(Vec<String>, u16), String> {
    let key = key.trim_end_matches(',');
    let rest = match key.split_once("://") {
        Some(("dns", rest)) => rest,
        Some((scheme, _)) => return Err(format!("scheme {scheme}:// is not supported")),
        None => key,
    };
    let (host, port) = split_port(rest)?;
    if host.is_empty() {
        return Err("missing zone".into());
    }
    let zones = match host.split_once('/') {
        Some((ip, prefix)) => {
            let ip: IpAddr = ip.parse().map_err(|_| format!("bad CIDR address {ip:?}"))?;
            let prefix: u8 = prefix.parse().map_err(|_| format!("bad CIDR prefix {prefix:?}"))?;
            names::reverse_zones(ip, prefix)?
        }
        None => {
            let zone = names::normalize(host);
            names::validate(&zone)?;
            vec![zone]
        }
    };
    Ok((zones, port.unwrap_or(DEFAULT_PORT)))
}

/// Splits a trailing `:PORT` (digits after the last colon) as CoreDNS's `SplitHostPort`, so that
/// an IPv6 CIDR's colons stay in the host.
fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    match s.rsplit_once(':') {
        Some((_, "")) => Err("expecting a port after the last colon".into()),
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            let port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
            Ok((host, Some(port)))
        }
        _ => Ok((s, None)),
    }
}

/// Parses an HTTP plugin's listening address: `:8080` (every interface), `localhost:9153`,
/// `127.0.0.1:8181`, `[::1]:8080`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("address {s:?} has no port"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port in address {s:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| format!("bad host {h:?} in address {s:?}"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(parse_key(".:53").unwrap(), (vec![".".into()], 53));
        assert_eq!(parse_key(".").unwrap(), (vec![".".into()], 53));
        assert_eq!(parse_key("dns://Example.org:1053").unwrap(), (vec!["example.org.".into()], 1053));
        assert_eq!(parse_key("10.0.0.0/24:53").unwrap(), (vec!["0.0.10.in-addr.arpa.".into()], 53));
        assert_eq!(parse_key("fd00::/8").unwrap(), (vec!["d.f.ip6.arpa.".into()], 53));
        assert!(parse_key("tls://.:853").is_err());
        assert!(parse_key(".:").is_err());
        assert!(parse_key(":53").is_err());
        assert!(parse_key(".:99999").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen(":8080").unwrap(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(parse_listen("localhost:9153").unwrap(), "127.0.0.1:9153".parse().unwrap());
        assert_eq!(parse_listen("[::1]:8181").unwrap(), "[::1]:8181".parse().unwrap());
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("example.org:80").is_err());
    }
}
