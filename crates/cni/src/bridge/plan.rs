//! The pure decisions of the bridge plugin's ADD: which interface each address belongs to, which
//! gateway each address gets and which addresses the bridge gets (`isGateway`), which default
//! routes are added (`isDefaultGateway`), which gateway a route without one uses, and the name of
//! the host end of the veth pair.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::config::BridgeConf;
use crate::types::{AddResult, Route};

/// The index of the container interface in the result (bridge, host veth, container).
pub const CONTAINER_IFACE: usize = 2;

/// The bridge addresses to ensure, per family.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gateways {
    pub v4: Vec<IpNet>,
    pub v6: Vec<IpNet>,
}

/// The first address of `addr`'s subnet after the network address.
pub fn gateway_of(addr: &IpNet) -> IpAddr {
    super::super::ipam::range::first_host(&addr.trunc())
}

/// Points every address at the container interface, fills in gateways and default routes as the
/// reference plugin does, and returns the addresses the bridge must carry.
pub fn calc_gateways(result: &mut AddResult, conf: &BridgeConf) -> Gateways {
    let mut gws = Gateways::default();
    let (mut default_v4, mut default_v6) = (false, false);
    for i in 0..result.ips.len() {
        let ipc = &mut result.ips[i];
        ipc.interface = Some(CONTAINER_IFACE);
        let v4 = ipc.address.addr().is_ipv4();
        if ipc.gateway.is_none() && conf.is_gateway {
            ipc.gateway = Some(gateway_of(&ipc.address));
        }
        let gateway = ipc.gateway;
        let prefix = ipc.address.prefix_len();
        let found = if v4 { &mut default_v4 } else { &mut default_v6 };
        if conf.is_default_gateway && !*found {
            let dst: IpNet = if v4 {
                IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("/0")
            } else {
                IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).expect("/0")
            };
            if !result.routes.iter().any(|r| r.gw.is_some() && r.dst == dst) {
                result.routes.push(Route::new(dst, gateway));
            }
            *found = true;
        }
        if conf.is_gateway {
            if let Some(gw) = gateway {
                let net = IpNet::new(gw, prefix).expect("prefix of the same family");
                if v4 {
                    gws.v4.push(net);
                } else {
                    gws.v6.push(net);
                }
            }
        }
    }
    gws
}

/// The gateway a route without one goes through: the gateway of the first address of its
/// family that has one.
pub fn route_gateway(result: &AddResult, route: &Route) -> Option<IpAddr> {
    route.gw.or_else(|| {
        result.ips.iter().filter(|i| i.address.addr().is_ipv4() == route.dst.addr().is_ipv4()).find_map(|i| i.gateway)
    })
}

/// The sysctls of the container interface `ifname`, as paths under `/proc/sys`.
pub fn container_sysctls(ifname: &str, enable_dad: bool, ipv6: bool) -> Vec<(String, &'static str)> {
    let mut v = vec![(format!("net/ipv4/conf/{ifname}/arp_notify"), "1")];
    if ipv6 {
        v.push((format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0"));
    }
    if enable_dad {
        v.push((format!("net/ipv6/conf/{ifname}/enhanced_dad"), "0"));
        v.push((format!("net/ipv6/conf/{ifname}/accept_dad"), "1"));
    } else {
        v.push((format!("net/ipv6/conf/{ifname}/accept_dad"), "0"));
    }
    v
}

/// The name of a host veth from four random bytes: `veth` and eight hex digits.
pub fn veth_name(random: [u8; 4]) -> String {
    format!("veth{:02x}{:02x}{:02x}{:02x}", random[0], random[1], random[2], random[3])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::netconf::NetConf;
    use crate::types::IpConfig;

    fn conf(extra: serde_json::Value) -> BridgeConf {
        let mut v = json!({"cniVersion": "1.0.0", "name": "n", "type": "podnet"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        BridgeConf::parse(&NetConf::parse(v).unwrap(), &[]).unwrap()
    }

    fn ipam_result() -> AddResult {
        AddResult {
            ips: vec![
                IpConfig { interface: None, address: "10.1.2.5/24".parse().unwrap(), gateway: None },
                IpConfig {
                    interface: None,
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: Some("fd00::1".parse().unwrap()),
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn default_gateway() {
        let mut r = ipam_result();
        let g = calc_gateways(&mut r, &conf(json!({"isDefaultGateway": true})));
        assert_eq!(r.ips[0].interface, Some(2));
        assert_eq!(r.ips[0].gateway, Some("10.1.2.1".parse().unwrap()));
        assert_eq!(g.v4, vec!["10.1.2.1/24".parse::<IpNet>().unwrap()]);
        assert_eq!(g.v6, vec!["fd00::1/64".parse::<IpNet>().unwrap()]);
        let routes: Vec<String> = r.routes.iter().map(|r| format!("{} {:?}", r.dst, r.gw)).collect();
        assert_eq!(routes, ["0.0.0.0/0 Some(10.1.2.1)", "::/0 Some(fd00::1)"]);
    }

    #[test]
    fn no_gateway_leaves_ipam_gateways() {
        let mut r = ipam_result();
        let g = calc_gateways(&mut r, &conf(json!({})));
        assert_eq!(r.ips[0].gateway, None);
        assert!(g.v4.is_empty() && g.v6.is_empty() && r.routes.is_empty());
    }

    #[test]
    fn existing_default_route_is_kept() {
        let mut r = ipam_result();
        r.routes.push(Route::new("0.0.0.0/0".parse().unwrap(), Some("10.1.2.254".parse().unwrap())));
        calc_gateways(&mut r, &conf(json!({"isDefaultGateway": true})));
        assert_eq!(r.routes.iter().filter(|x| x.dst.addr().is_ipv4()).count(), 1);
        let route = Route::new("192.168.0.0/16".parse().unwrap(), None);
        assert_eq!(route_gateway(&r, &route), Some("10.1.2.1".parse().unwrap()));
    }

    #[test]
    fn sysctls() {
        let s = container_sysctls("eth0.5", false, true);
        assert_eq!(s[0], ("net/ipv4/conf/eth0.5/arp_notify".to_string(), "1"));
        assert!(s.contains(&("net/ipv6/conf/eth0.5/accept_dad".to_string(), "0")));
        assert!(container_sysctls("eth0", true, false).contains(&("net/ipv6/conf/eth0/accept_dad".to_string(), "1")));
    }

    #[test]
    fn veth_names() {
        assert_eq!(veth_name([0xde, 0xad, 0x0b, 0x1]), "vethdead0b01");
    }
}
