//! Routes: add (`ip route add`), replace, delete, dump.
//!
//! A [`Route`] carries the fields CNI 1.1 results can hold (dst, gw, mtu, advmss, priority,
//! table, scope) and the few more a node needs (output device, preferred source, on-link gateway,
//! protocol, type). Build one with [`Route::new`] and its chained setters:
//!
//! ```no_run
//! # use podnet_netlink::{Handle, Route};
//! # fn f(h: &mut Handle, eth0: u32) -> podnet_netlink::Result<()> {
//! h.add_route(&Route::default_via("10.244.1.1".parse().unwrap()))?;
//! h.add_route(&Route::new("10.96.0.0/12".parse().unwrap()).dev(eth0))?;
//! # Ok(()) }
//! ```
//!
//! Without an explicit scope, a route with neither gateway nor special type gets scope link (as
//! `ip route add … dev X` does), a `local` route scope host, anything else scope global.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::handle::Handle;

/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;
/// The local routing table (addresses of this host, broadcasts).
pub const RT_TABLE_LOCAL: u32 = 255;
/// Scope global.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// Scope link: the destination is directly attached.
pub const RT_SCOPE_LINK: u8 = 253;
/// Scope host: the destination is this host.
pub const RT_SCOPE_HOST: u8 = 254;
/// Protocol `kernel`: added by the kernel (prefix routes of addresses).
pub const RTPROT_KERNEL: u8 = 2;
/// Protocol `boot`: the default of `ip route add`.
pub const RTPROT_BOOT: u8 = 3;
/// Protocol `static`.
pub const RTPROT_STATIC: u8 = 4;

/// The type of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouteKind {
    /// A normal route.
    #[default]
    Unicast,
    /// A local address of this host.
    Local,
    /// A broadcast address.
    Broadcast,
    /// A multicast route.
    Multicast,
    /// Silently drop.
    Blackhole,
    /// Reject with "network unreachable".
    Unreachable,
    /// Reject with "prohibited".
    Prohibit,
    /// Anything else (`RTN_*` number).
    Other(u8),
}

impl RouteKind {
    fn to_netlink(self) -> RouteType {
        match self {
            RouteKind::Unicast => RouteType::Unicast,
            RouteKind::Local => RouteType::Local,
            RouteKind::Broadcast => RouteType::Broadcast,
            RouteKind::Multicast => RouteType::Multicast,
            RouteKind::Blackhole => RouteType::BlackHole,
            RouteKind::Unreachable => RouteType::Unreachable,
            RouteKind::Prohibit => RouteType::Prohibit,
            RouteKind::Other(n) => RouteType::from(n),
        }
    }

    fn from_netlink(t: RouteType) -> RouteKind {
        match t {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::Broadcast => RouteKind::Broadcast,
            RouteType::Multicast => RouteKind::Multicast,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unreachable => RouteKind::Unreachable,
            RouteType::Prohibit => RouteKind::Prohibit,
            other => RouteKind::Other(u8::from(other)),
        }
    }
}

/// A route, to add or as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNet,
    /// The next hop.
    pub gateway: Option<IpAddr>,
    /// The output device's index.
    pub oif: Option<u32>,
    /// The preferred source address (`src`).
    pub src: Option<IpAddr>,
    /// The routing table ([`RT_TABLE_MAIN`] by default).
    pub table: u32,
    /// The metric (`metric`/`priority`).
    pub metric: Option<u32>,
    /// The scope; `None` picks one as `ip route` does (see the module documentation).
    pub scope: Option<u8>,
    /// The protocol that installed it ([`RTPROT_BOOT`] by default, as `ip route add`).
    pub protocol: u8,
    /// The type.
    pub kind: RouteKind,
    /// The gateway is on the link even if no address's subnet covers it (`onlink`).
    pub onlink: bool,
    /// Path MTU (`mtu`).
    pub mtu: Option<u32>,
    /// Advertised TCP MSS (`advmss`).
    pub advmss: Option<u32>,
}

impl Route {
    /// A unicast route to `dst` in the main table, with nothing else set yet.
    pub fn new(dst: IpNet) -> Route {
        Route {
            dst: dst.trunc(),
            gateway: None,
            oif: None,
            src: None,
            table: RT_TABLE_MAIN,
            metric: None,
            scope: None,
            protocol: RTPROT_BOOT,
            kind: RouteKind::Unicast,
            onlink: false,
            mtu: None,
            advmss: None,
        }
    }

    /// The default route (`0.0.0.0/0` or `::/0`, after the gateway's family) via `gateway`.
    pub fn default_via(gateway: IpAddr) -> Route {
        Route::new(default_dst(&gateway)).via(gateway)
    }

    /// Sets the gateway (`via`).
    pub fn via(mut self, gateway: IpAddr) -> Route {
        self.gateway = Some(gateway);
        self
    }

    /// Sets the output device (`dev`).
    pub fn dev(mut self, index: u32) -> Route {
        self.oif = Some(index);
        self
    }

    /// Sets the preferred source address (`src`).
    pub fn src(mut self, src: IpAddr) -> Route {
        self.src = Some(src);
        self
    }

    /// Sets the table.
    pub fn table(mut self, table: u32) -> Route {
        self.table = table;
        self
    }

    /// Sets the metric.
    pub fn metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: u8) -> Route {
        self.scope = Some(scope);
        self
    }

    /// Sets the type.
    pub fn kind(mut self, kind: RouteKind) -> Route {
        self.kind = kind;
        self
    }

    /// Marks the gateway as on-link.
    pub fn onlink(mut self) -> Route {
        self.onlink = true;
        self
    }

    /// Sets the path MTU.
    pub fn mtu(mut self, mtu: u32) -> Route {
        self.mtu = Some(mtu);
        self
    }

    /// Whether this is a default route.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }

    /// The scope the route is installed with.
    pub fn effective_scope(&self) -> u8 {
        self.scope.unwrap_or(match self.kind {
            RouteKind::Local => RT_SCOPE_HOST,
            RouteKind::Unicast if self.gateway.is_none() && self.oif.is_some() => RT_SCOPE_LINK,
            _ => RT_SCOPE_UNIVERSE,
        })
    }

    fn describe(&self) -> String {
        let mut s = self.dst.to_string();
        if let Some(gw) = self.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        if let Some(oif) = self.oif {
            s.push_str(&format!(" dev #{oif}"));
        }
        if self.table != RT_TABLE_MAIN {
            s.push_str(&format!(" table {}", self.table));
        }
        s
    }

    /// The `RTM_NEWROUTE`/`RTM_DELROUTE` message. For a delete the scope, protocol and type are
    /// left open (as `ip route del` does), so they match any.
    pub(crate) fn message(&self, delete: bool) -> RouteMessage {
        let mut msg = RouteMessage::default();
        let v4 = matches!(self.dst, IpNet::V4(_));
        msg.header.address_family = if v4 { AddressFamily::Inet } else { AddressFamily::Inet6 };
        msg.header.destination_prefix_length = self.dst.prefix_len();
        msg.header.table = u8::try_from(self.table).unwrap_or(252);
        if delete {
            msg.header.scope = RouteScope::NoWhere;
            msg.header.protocol = RouteProtocol::Unspec;
            msg.header.kind = if self.kind == RouteKind::Unicast { RouteType::Unspec } else { self.kind.to_netlink() };
        } else {
            msg.header.scope = RouteScope::from(self.effective_scope());
            msg.header.protocol = RouteProtocol::from(self.protocol);
            msg.header.kind = self.kind.to_netlink();
        }
        if self.onlink {
            msg.header.flags = RouteFlags::Onlink;
        }
        if self.dst.prefix_len() > 0 {
            msg.attributes.push(RouteAttribute::Destination(route_address(self.dst.network())));
        }
        if let Some(gw) = self.gateway {
            msg.attributes.push(RouteAttribute::Gateway(route_address(gw)));
        }
        if let Some(oif) = self.oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        if let Some(src) = self.src {
            msg.attributes.push(RouteAttribute::PrefSource(route_address(src)));
        }
        if let Some(metric) = self.metric {
            msg.attributes.push(RouteAttribute::Priority(metric));
        }
        msg.attributes.push(RouteAttribute::Table(self.table));
        let mut metrics = Vec::new();
        if let Some(mtu) = self.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(advmss) = self.advmss {
            metrics.push(RouteMetric::Advmss(advmss));
        }
        if !metrics.is_empty() {
            msg.attributes.push(RouteAttribute::Metrics(metrics));
        }
        msg
    }
}

/// `0.0.0.0/0` or `::/0`, in the family of `ip`.
pub fn default_dst(ip: &IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(_) => "0.0.0.0/0".parse().expect("valid"),
        IpAddr::V6(_) => "::/0".parse().expect("valid"),
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn ip_of(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(a.into()),
        RouteAddress::Inet6(a) => Some(a.into()),
        _ => None,
    }
}

/// Decodes a route message (`None` for families other than IPv4/IPv6).
pub(crate) fn parse_route(msg: RouteMessage) -> Option<Route> {
    let h = &msg.header;
    let unspecified: IpAddr = match h.address_family {
        AddressFamily::Inet => std::net::Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    let mut route = Route::new(IpNet::new(unspecified, 0).ok()?);
    route.table = u32::from(h.table);
    route.scope = Some(u8::from(h.scope));
    route.protocol = u8::from(h.protocol);
    route.kind = RouteKind::from_netlink(h.kind);
    route.onlink = h.flags.contains(RouteFlags::Onlink);
    let prefix = h.destination_prefix_length;
    for attr in msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => route.dst = IpNet::new(ip_of(a)?, prefix).ok()?,
            RouteAttribute::Gateway(a) => route.gateway = ip_of(a),
            RouteAttribute::Oif(i) => route.oif = Some(i),
            RouteAttribute::PrefSource(a) => route.src = ip_of(a),
            RouteAttribute::Priority(p) => route.metric = Some(p),
            RouteAttribute::Table(t) => route.table = t,
            RouteAttribute::Metrics(metrics) => {
                for m in metrics {
                    match m {
                        RouteMetric::Mtu(v) => route.mtu = Some(v),
                        RouteMetric::Advmss(v) => route.advmss = Some(v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(route)
}

impl Handle {
    /// Adds a route (`ip route add`). Fails with [`crate::ErrorKind::AlreadyExists`] if an equal
    /// route exists.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        self.route_request(route, NLM_F_CREATE | NLM_F_EXCL, "add")
    }

    /// Adds a route or replaces the one to the same destination (`ip route replace`).
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        self.route_request(route, NLM_F_CREATE | NLM_F_REPLACE, "replace")
    }

    fn route_request(&mut self, route: &Route, flags: u16, verb: &str) -> Result<()> {
        check_families(route).map_err(|m| Error::invalid(format!("{verb} route {}", route.describe()), m))?;
        self.execute(RouteNetlinkMessage::NewRoute(route.message(false)), flags)
            .map_err(|e| e.op(format!("{verb} route {}", route.describe())))
    }

    /// Deletes a route (`ip route del`): the first one matching the destination, table and those
    /// of gateway, device, metric that are set. Fails with [`crate::ErrorKind::NotFound`]
    /// (`ESRCH`) if none matches.
    pub fn del_route(&mut self, route: &Route) -> Result<()> {
        self.execute(RouteNetlinkMessage::DelRoute(route.message(true)), 0)
            .map_err(|e| e.op(format!("delete route {}", route.describe())))
    }

    /// Every IPv4 and IPv6 route of every table (`ip route show table all` and `ip -6 …`).
    pub fn dump_routes(&mut self) -> Result<Vec<Route>> {
        let answers =
            self.dump(RouteNetlinkMessage::GetRoute(RouteMessage::default())).map_err(|e| e.op("dump routes"))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(m) => parse_route(m),
                _ => None,
            })
            .collect())
    }

    /// The routes of one table (e.g. [`RT_TABLE_MAIN`]).
    pub fn table_routes(&mut self, table: u32) -> Result<Vec<Route>> {
        Ok(self.dump_routes()?.into_iter().filter(|r| r.table == table).collect())
    }
}

/// The gateway and source must be of the destination's family.
fn check_families(route: &Route) -> std::result::Result<(), String> {
    let v4 = matches!(route.dst, IpNet::V4(_));
    for ip in [route.gateway, route.src].into_iter().flatten() {
        if ip.is_ipv4() != v4 {
            return Err(format!("{ip} is not of the family of {}", route.dst));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn round_trip(route: &Route, delete: bool) -> RouteMessage {
        let msg = route.message(delete);
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        RouteMessage::parse(&buf[..]).unwrap()
    }

    #[test]
    fn default_route() {
        let r = Route::default_via("10.244.1.1".parse().unwrap());
        assert!(r.is_default());
        assert_eq!(r.dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.effective_scope(), RT_SCOPE_UNIVERSE);
        let parsed = parse_route(round_trip(&r, false)).unwrap();
        assert_eq!(parsed.dst, r.dst);
        assert_eq!(parsed.gateway, r.gateway);
        assert_eq!(parsed.table, RT_TABLE_MAIN);
        assert_eq!(parsed.protocol, RTPROT_BOOT);
        assert_eq!(parsed.kind, RouteKind::Unicast);
        let v6 = Route::default_via("fd00::1".parse().unwrap());
        assert_eq!(v6.dst.to_string(), "::/0");
    }

    #[test]
    fn dev_route_gets_scope_link_and_truncated_dst() {
        let r = Route::new("10.96.3.4/12".parse().unwrap()).dev(4).metric(100).mtu(1400);
        assert_eq!(r.dst.to_string(), "10.96.0.0/12");
        assert_eq!(r.effective_scope(), RT_SCOPE_LINK);
        let parsed = parse_route(round_trip(&r, false)).unwrap();
        assert_eq!(parsed.dst, r.dst);
        assert_eq!(parsed.oif, Some(4));
        assert_eq!(parsed.metric, Some(100));
        assert_eq!(parsed.mtu, Some(1400));
        assert_eq!(parsed.scope, Some(RT_SCOPE_LINK));
    }

    #[test]
    fn delete_leaves_scope_open() {
        let r = Route::new("10.1.0.0/16".parse().unwrap()).via("10.0.0.1".parse().unwrap()).table(1000).onlink();
        let msg = round_trip(&r, true);
        assert_eq!(msg.header.scope, RouteScope::NoWhere);
        assert_eq!(msg.header.protocol, RouteProtocol::Unspec);
        assert_eq!(msg.header.table, 252);
        let parsed = parse_route(msg).unwrap();
        assert_eq!(parsed.table, 1000);
        assert!(parsed.onlink);
    }

    #[test]
    fn families_must_match() {
        let r = Route::new("10.0.0.0/8".parse().unwrap()).via("fd00::1".parse().unwrap());
        assert!(check_families(&r).is_err());
        assert!(check_families(&Route::default_via("fd00::1".parse().unwrap())).is_ok());
    }
}
