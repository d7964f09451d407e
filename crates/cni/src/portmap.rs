//! The `portmap` plugin (type `portmap` or `podnet-portmap`), chained after the bridge plugin:
//! host ports forwarded to the pod with nftables, as the reference plugin's nftables backend
//! does. Tables `ip podnet_hostport` and `ip6 podnet_hostport`: base chains `prerouting` and
//! `output` (dstnat) jump to `hostip_hostports` (mappings with a `hostIP`) and `hostports` (the
//! others; from `output` only for local destinations); one DNAT rule per mapping; with `snat`
//! (default on) the base chain `masquerading` (srcnat) masquerades hairpin traffic (pod to its own
//! host port) and, for IPv4, traffic from 127.0.0.1 (with `route_localnet` on the host interface
//! of the chain, so `localhost:hostPort` works). Rules carry the attachment's tag as comment.
//!
//! Configuration: `snat`, `conditionsV4`/`conditionsV6` (nft expressions put before the jumps),
//! `markMasqBit`/`externalSetMarkChain` (checked as the reference does; unused: podnet
//! masquerades directly), `runtimeConfig.portMappings` (`hostPort`, `containerPort`, `protocol`
//! tcp/udp/sctp, `hostIP`).

use std::collections::HashSet;
use std::net::IpAddr;

use crate::error::{CniError, CniResult};
use crate::fields::{invalid, Obj};
use crate::netconf::NetConf;
use crate::nft;
use crate::types::AddResult;

pub const TABLE: &str = "podnet_hostport";
const CHAINS: [&str; 3] = ["hostports", "hostip_hostports", "masquerading"];

/// One port mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
}

/// The portmap plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortmapConf {
    pub snat: bool,
    pub conditions_v4: Vec<String>,
    pub conditions_v6: Vec<String>,
    pub mappings: Vec<PortMapping>,
}

impl PortmapConf {
    pub fn parse(conf: &NetConf) -> CniResult<PortmapConf> {
        let root = conf.root();
        let mark_bit = root.int("markMasqBit")?;
        if mark_bit.is_some() && root.get("externalSetMarkChain").is_some() {
            return Err(CniError::InvalidConfig("cannot specify both externalSetMarkChain and markMasqBit".into()));
        }
        if let Some(b) = mark_bit {
            if !(0..=31).contains(&b) {
                return Err(invalid("markMasqBit", format!("{b} is not between 0 and 31")));
            }
        }
        let mut mappings = Vec::new();
        if let Some(rc) = root.obj("runtimeConfig")? {
            if let Some(list) = rc.array("portMappings")? {
                for (i, item) in list.iter().enumerate() {
                    let o = Obj::at(format!("{}[{i}]", rc.path_of("portMappings")), item)?;
                    let port = |key: &str| -> CniResult<u16> {
                        match o.int(key)? {
                            Some(p) if (1..=65535).contains(&p) => Ok(p as u16),
                            Some(p) => Err(invalid(&o.path_of(key), format!("invalid port number {p}"))),
                            None => Err(invalid(&o.path_of(key), "missing")),
                        }
                    };
                    let protocol = o.str("protocol")?.unwrap_or("tcp").to_ascii_lowercase();
                    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
                        return Err(invalid(&o.path_of("protocol"), format!("{protocol:?} is not tcp, udp or sctp")));
                    }
                    let host_ip = match o.str("hostIP")?.filter(|s| !s.is_empty()) {
                        None => None,
                        Some(s) => Some(
                            s.parse::<IpAddr>()
                                .map_err(|_| invalid(&o.path_of("hostIP"), format!("{s:?} is not an IP address")))?,
                        ),
                    };
                    mappings.push(PortMapping {
                        host_port: port("hostPort")?,
                        container_port: port("containerPort")?,
                        protocol,
                        host_ip,
                    });
                }
            }
        }
        Ok(PortmapConf {
            snat: root.bool("snat")?.unwrap_or(true),
            conditions_v4: root.strings("conditionsV4")?,
            conditions_v6: root.strings("conditionsV6")?,
            mappings,
        })
    }
}

/// The container addresses of `prev` for interface `ifname`: at most one per family, skipping
/// addresses of host interfaces.
pub fn container_ips(prev: &AddResult, ifname: &str) -> Vec<IpAddr> {
    let mut v4 = None;
    let mut v6 = None;
    for ip in &prev.ips {
        if let Some(i) = ip.interface {
            match prev.interfaces.get(i) {
                Some(iface) if iface.name != ifname || iface.sandbox.is_empty() => continue,
                _ => {}
            }
        }
        let slot = if ip.address.addr().is_ipv4() { &mut v4 } else { &mut v6 };
        if slot.is_none() {
            *slot = Some(ip.address.addr());
        }
    }
    v4.into_iter().chain(v6).collect()
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

/// The script adding the mappings of one attachment towards `container` (one family).
pub fn add_script(conf: &PortmapConf, tag: &str, container: IpAddr) -> String {
    let fam = family(&container);
    let t = format!("{fam} {TABLE}");
    let cond = if container.is_ipv4() { conf.conditions_v4.join(" ") } else { conf.conditions_v6.join(" ") };
    let cond = if cond.is_empty() { String::new() } else { format!("{cond} ") };
    let mut s = format!("add table {t}\nadd chain {t} hostports\nadd chain {t} hostip_hostports\n");
    s += &format!("add chain {t} prerouting {{ type nat hook prerouting priority -100; policy accept; }}\n");
    s += &format!("flush chain {t} prerouting\n");
    s += &format!("add rule {t} prerouting {cond}jump hostip_hostports\n");
    s += &format!("add rule {t} prerouting {cond}jump hostports\n");
    s += &format!("add chain {t} output {{ type nat hook output priority -100; policy accept; }}\n");
    s += &format!("flush chain {t} output\n");
    s += &format!("add rule {t} output {cond}jump hostip_hostports\n");
    s += &format!("add rule {t} output {cond}fib daddr type local jump hostports\n");
    if conf.snat {
        s += &format!("add chain {t} masquerading {{ type nat hook postrouting priority 100; policy accept; }}\n");
    }
    let dest = match container {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    for m in &conf.mappings {
        let (chain, match_ip) = match m.host_ip {
            // A hostIP of the other family belongs to the other family's table.
            Some(h) if h.is_ipv4() != container.is_ipv4() => continue,
            Some(h) if !h.is_unspecified() => ("hostip_hostports", format!("{fam} daddr {h} ")),
            _ => ("hostports", String::new()),
        };
        s += &format!(
            "add rule {t} {chain} {match_ip}{proto} dport {hp} dnat to {dest}:{cp} comment \"{tag}\"\n",
            proto = m.protocol,
            hp = m.host_port,
            cp = m.container_port
        );
    }
    if conf.snat {
        s += &format!(
            "add rule {t} masquerading {fam} saddr {container} {fam} daddr {container} masquerade comment \"{tag}\"\n"
        );
        if container.is_ipv4() {
            s += &format!(
                "add rule {t} masquerading ip saddr 127.0.0.1 ip daddr {container} masquerade comment \"{tag}\"\n"
            );
        }
    }
    s
}

/// ADD: installs the mappings for each container address; on failure removes what was added.
pub fn add(conf: &PortmapConf, tag: &str, containers: &[IpAddr]) -> CniResult<()> {
    for ip in containers {
        if let Err(e) = nft::apply(&add_script(conf, tag, *ip)) {
            let _ = del(tag);
            return Err(e.context("cannot set up port mappings"));
        }
    }
    Ok(())
}

/// DEL: removes every rule of the attachment, in both families.
pub fn del(tag: &str) -> CniResult<()> {
    for fam in ["ip", "ip6"] {
        nft::delete_rules_where(fam, TABLE, |r| CHAINS.contains(&r.chain.as_str()) && r.comment == tag)?;
    }
    Ok(())
}

/// CHECK: the expected number of rules of the attachment is there, per family.
pub fn check(conf: &PortmapConf, tag: &str, containers: &[IpAddr]) -> CniResult<()> {
    for ip in containers {
        let expected = add_script(conf, tag, *ip).lines().filter(|l| l.contains(tag)).count();
        let found = match nft::list(&["table", family(ip), TABLE])? {
            Some(l) => nft::rules(&l).iter().filter(|r| r.comment == tag).count(),
            None => 0,
        };
        if found < expected {
            return Err(CniError::CheckFailed(format!(
                "port mappings for {ip}: {found} of {expected} nftables rules are in table {} {TABLE}",
                family(ip)
            )));
        }
    }
    Ok(())
}

/// GC: removes the rules of `network` whose tag is not in `valid_tags`.
pub fn gc(network: &str, valid_tags: &HashSet<String>) -> CniResult<()> {
    let prefix = nft::network_tag(network);
    for fam in ["ip", "ip6"] {
        nft::delete_rules_where(fam, TABLE, |r| r.comment.starts_with(&prefix) && !valid_tags.contains(&r.comment))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::{Interface, IpConfig};

    fn conf(extra: serde_json::Value) -> CniResult<PortmapConf> {
        let mut v = json!({"cniVersion": "1.0.0", "name": "n", "type": "portmap"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        PortmapConf::parse(&NetConf::parse(v)?)
    }

    #[test]
    fn parses_mappings() {
        let c = conf(json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.1"}
        ]}}))
        .unwrap();
        assert!(c.snat);
        assert_eq!(
            c.mappings[0],
            PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: None }
        );
        assert_eq!(c.mappings[1].host_ip, Some("192.0.2.1".parse().unwrap()));
        let e = conf(json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}})).unwrap_err();
        assert_eq!(e.to_string(), "runtimeConfig.portMappings[0].hostPort: invalid port number 0");
        let e = conf(
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80, "protocol": "icmp"}]}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("icmp"));
        assert!(conf(json!({"markMasqBit": 40})).is_err());
        assert!(conf(json!({"markMasqBit": 4, "externalSetMarkChain": "X"})).is_err());
    }

    #[test]
    fn scripts() {
        let c = conf(json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80},
            {"hostPort": 8443, "containerPort": 443, "hostIP": "192.0.2.1"},
            {"hostPort": 9000, "containerPort": 90, "hostIP": "fd00::1"}
        ]}}))
        .unwrap();
        let s = add_script(&c, "T", "10.1.0.5".parse().unwrap());
        assert!(s.contains("add rule ip podnet_hostport hostports tcp dport 8080 dnat to 10.1.0.5:80 comment \"T\"\n"));
        assert!(s.contains(
            "add rule ip podnet_hostport hostip_hostports ip daddr 192.0.2.1 tcp dport 8443 dnat to 10.1.0.5:443 comment \"T\"\n"
        ));
        assert!(!s.contains("9000"));
        assert!(s.contains("ip saddr 127.0.0.1 ip daddr 10.1.0.5 masquerade"));
        assert!(s.contains("add rule ip podnet_hostport output fib daddr type local jump hostports\n"));
        let s6 = add_script(&c, "T", "fd00::5".parse().unwrap());
        assert!(s6.contains("add rule ip6 podnet_hostport hostports tcp dport 8080 dnat to [fd00::5]:80"));
        assert!(s6.contains("ip6 daddr fd00::1 tcp dport 9000 dnat to [fd00::5]:90"));
        assert!(!s6.contains("127.0.0.1"));
    }

    #[test]
    fn picks_container_addresses() {
        let prev = AddResult {
            interfaces: vec![
                Interface { name: "cni0".into(), ..Default::default() },
                Interface { name: "eth0".into(), sandbox: "/run/netns/p".into(), ..Default::default() },
            ],
            ips: vec![
                IpConfig { interface: Some(0), address: "10.1.0.1/24".parse().unwrap(), gateway: None },
                IpConfig { interface: Some(1), address: "10.1.0.5/24".parse().unwrap(), gateway: None },
                IpConfig { interface: Some(1), address: "fd00::5/64".parse().unwrap(), gateway: None },
            ],
            ..Default::default()
        };
        let ips: Vec<String> = container_ips(&prev, "eth0").iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["10.1.0.5", "fd00::5"]);
    }
}
