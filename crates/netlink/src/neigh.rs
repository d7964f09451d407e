//! Neighbours (the ARP / NDP table, `ip neigh`) and bridge forwarding entries (`bridge fdb`).
//!
//! Both are `RTM_NEWNEIGH` messages: a neighbour maps an IP address to a MAC on a link; an FDB
//! entry (family `AF_BRIDGE`) maps a MAC to a bridge port, or — on a VXLAN device — to the remote
//! VTEP (`dst`) that hosts it. An overlay in the style of flannel's vxlan backend adds, per
//! remote node, a permanent neighbour (remote gateway IP → remote VTEP MAC) and an FDB entry
//! (remote VTEP MAC → remote node IP) on the VXLAN device.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::handle::Handle;
use crate::link::LinkId;
use crate::mac::MacAddr;

/// `NUD_REACHABLE`.
pub const NUD_REACHABLE: u16 = 0x02;
/// `NUD_STALE`.
pub const NUD_STALE: u16 = 0x04;
/// `NUD_FAILED`.
pub const NUD_FAILED: u16 = 0x20;
/// `NUD_NOARP`: valid, never checked (`static` FDB entries).
pub const NUD_NOARP: u16 = 0x40;
/// `NUD_PERMANENT`: configured, never expires.
pub const NUD_PERMANENT: u16 = 0x80;

/// `NTF_SELF`: the FDB entry belongs to the device itself (a VXLAN device's own table).
pub const NTF_SELF: u8 = 0x02;
/// `NTF_MASTER`: the FDB entry belongs to the master bridge of the port.
pub const NTF_MASTER: u8 = 0x04;

/// A neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Index of the link.
    pub index: u32,
    /// The IP address.
    pub ip: IpAddr,
    /// The MAC it resolves to (none while incomplete).
    pub mac: Option<MacAddr>,
    /// `NUD_*` state bits.
    pub state: u16,
    /// `NTF_*` flags.
    pub flags: u8,
}

impl Neighbour {
    /// Whether the entry is permanent (configured, not learnt).
    pub fn is_permanent(&self) -> bool {
        self.state & NUD_PERMANENT != 0
    }
}

/// A bridge forwarding-database entry, to add or as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// Index of the port or device (ignored when adding: the link argument names it).
    pub index: u32,
    /// The MAC address (`00:00:00:00:00:00` on a VXLAN device: flood to `dst`).
    pub mac: MacAddr,
    /// The remote VTEP (VXLAN).
    pub dst: Option<IpAddr>,
    /// The VNI (VXLAN, when it differs from the device's).
    pub vni: Option<u32>,
    /// The remote UDP port (VXLAN).
    pub port: Option<u16>,
    /// The VLAN (bridges with VLAN filtering).
    pub vlan: Option<u16>,
    /// The master bridge (dumps only).
    pub master: Option<u32>,
    /// `NTF_*` flags: [`NTF_SELF`] for the device's own table (VXLAN), [`NTF_MASTER`] for the
    /// bridge's.
    pub flags: u8,
    /// `NUD_*` state: [`NUD_PERMANENT`] (`permanent`) or [`NUD_NOARP`] (`static`) for configured
    /// entries.
    pub state: u16,
}

impl FdbEntry {
    /// A permanent entry of a VXLAN device: `bridge fdb add MAC dev VXLAN dst DST self permanent`.
    pub fn vxlan(mac: MacAddr, dst: IpAddr) -> FdbEntry {
        FdbEntry {
            index: 0,
            mac,
            dst: Some(dst),
            vni: None,
            port: None,
            vlan: None,
            master: None,
            flags: NTF_SELF,
            state: NUD_PERMANENT,
        }
    }

    /// A static entry in the bridge's table for a port: `bridge fdb add MAC dev PORT master static`.
    pub fn bridge_port(mac: MacAddr) -> FdbEntry {
        FdbEntry { dst: None, flags: NTF_MASTER, state: NUD_NOARP, ..FdbEntry::vxlan(mac, [0u8; 4].into()) }
    }

    /// Whether the entry is permanent.
    pub fn is_permanent(&self) -> bool {
        self.state & NUD_PERMANENT != 0
    }

    fn describe(&self) -> String {
        match self.dst {
            Some(dst) => format!("{} dst {dst}", self.mac),
            None => self.mac.to_string(),
        }
    }
}

fn neighbour_address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

fn ip_of(a: NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(a) => Some(a.into()),
        NeighbourAddress::Inet6(a) => Some(a.into()),
        // In AF_BRIDGE messages (FDB entries) the remote's family is told only by its length.
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(&bytes[..]).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(&bytes[..]).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

/// The `RTM_NEWNEIGH`/`RTM_DELNEIGH` message of a neighbour.
pub(crate) fn neighbour_message(index: u32, ip: IpAddr, mac: Option<MacAddr>, state: u16) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::from(state);
    msg.attributes.push(NeighbourAttribute::Destination(neighbour_address(ip)));
    if let Some(mac) = mac {
        msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
    }
    msg
}

/// The `RTM_NEWNEIGH`/`RTM_DELNEIGH` message of an FDB entry.
pub(crate) fn fdb_message(index: u32, entry: &FdbEntry) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::from(entry.state);
    msg.header.flags = NeighbourFlags::from_bits_retain(if entry.flags == 0 { NTF_SELF } else { entry.flags });
    msg.attributes.push(NeighbourAttribute::LinkLayerAddress(entry.mac.octets().to_vec()));
    if let Some(dst) = entry.dst {
        msg.attributes.push(NeighbourAttribute::Destination(neighbour_address(dst)));
    }
    if let Some(vni) = entry.vni {
        msg.attributes.push(NeighbourAttribute::Vni(vni));
    }
    if let Some(port) = entry.port {
        msg.attributes.push(NeighbourAttribute::Port(port));
    }
    if let Some(vlan) = entry.vlan {
        msg.attributes.push(NeighbourAttribute::Vlan(vlan));
    }
    msg
}

pub(crate) fn parse_neighbour(msg: NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for attr in msg.attributes {
        match attr {
            NeighbourAttribute::Destination(a) => ip = ip_of(a),
            NeighbourAttribute::LinkLayerAddress(l) => mac = MacAddr::from_slice(&l),
            _ => {}
        }
    }
    Some(Neighbour {
        index: msg.header.ifindex,
        ip: ip?,
        mac,
        state: u16::from(msg.header.state),
        flags: msg.header.flags.bits(),
    })
}

pub(crate) fn parse_fdb(msg: NeighbourMessage) -> Option<FdbEntry> {
    let mut entry = FdbEntry {
        index: msg.header.ifindex,
        mac: MacAddr::ZERO,
        dst: None,
        vni: None,
        port: None,
        vlan: None,
        master: None,
        flags: msg.header.flags.bits(),
        state: u16::from(msg.header.state),
    };
    let mut has_mac = false;
    for attr in msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(l) => {
                entry.mac = MacAddr::from_slice(&l)?;
                has_mac = true;
            }
            NeighbourAttribute::Destination(a) => entry.dst = ip_of(a),
            NeighbourAttribute::Vni(v) => entry.vni = Some(v),
            NeighbourAttribute::Port(p) => entry.port = Some(p),
            NeighbourAttribute::Vlan(v) => entry.vlan = Some(v),
            NeighbourAttribute::Controller(m) => entry.master = Some(m),
            _ => {}
        }
    }
    has_mac.then_some(entry)
}

impl Handle {
    /// Adds a neighbour (`ip neigh add IP lladdr MAC dev LINK nud permanent|reachable`). Fails
    /// with [`crate::ErrorKind::AlreadyExists`] if the link has an entry for `ip`.
    pub fn add_neighbour(&mut self, link: impl Into<LinkId>, ip: IpAddr, mac: MacAddr, permanent: bool) -> Result<()> {
        self.neighbour_request(link.into(), ip, mac, permanent, NLM_F_CREATE | NLM_F_EXCL, "add")
    }

    /// Adds or replaces a neighbour (`ip neigh replace`).
    pub fn replace_neighbour(
        &mut self,
        link: impl Into<LinkId>,
        ip: IpAddr,
        mac: MacAddr,
        permanent: bool,
    ) -> Result<()> {
        self.neighbour_request(link.into(), ip, mac, permanent, NLM_F_CREATE | NLM_F_REPLACE, "replace")
    }

    fn neighbour_request(
        &mut self,
        link: LinkId,
        ip: IpAddr,
        mac: MacAddr,
        permanent: bool,
        flags: u16,
        verb: &str,
    ) -> Result<()> {
        let op = || format!("{verb} neighbour {ip} lladdr {mac} on {link}");
        let index = self.link_index(&link).map_err(|e| e.with_context(op()))?;
        let state = if permanent { NUD_PERMANENT } else { NUD_REACHABLE };
        let msg = neighbour_message(index, ip, Some(mac), state);
        self.execute(RouteNetlinkMessage::NewNeighbour(msg), flags).map_err(|e| e.op(op()))
    }

    /// Deletes the neighbour entry for `ip` on a link (`ip neigh del`). Fails with
    /// [`crate::ErrorKind::NotFound`] if there is none.
    pub fn del_neighbour(&mut self, link: impl Into<LinkId>, ip: IpAddr) -> Result<()> {
        let link = link.into();
        let op = || format!("delete neighbour {ip} on {link}");
        let index = self.link_index(&link).map_err(|e| e.with_context(op()))?;
        let msg = neighbour_message(index, ip, None, 0);
        self.execute(RouteNetlinkMessage::DelNeighbour(msg), 0).map_err(|e| e.op(op()))
    }

    /// Every IPv4 and IPv6 neighbour entry (`ip neigh show`).
    pub fn dump_neighbours(&mut self) -> Result<Vec<Neighbour>> {
        let answers = self
            .dump(RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()))
            .map_err(|e| e.op("dump neighbours"))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(m) if m.header.family != AddressFamily::Bridge => parse_neighbour(m),
                _ => None,
            })
            .collect())
    }

    /// Adds an FDB entry (`bridge fdb add`). Fails with [`crate::ErrorKind::AlreadyExists`] if
    /// the MAC has an entry already.
    pub fn add_fdb(&mut self, link: impl Into<LinkId>, entry: &FdbEntry) -> Result<()> {
        self.fdb_request(link.into(), entry, NLM_F_CREATE | NLM_F_EXCL, "add")
    }

    /// Appends an FDB entry (`bridge fdb append`): on a VXLAN device, another remote for the same
    /// MAC (typically `00:00:00:00:00:00`, one per remote node, for flooding).
    pub fn append_fdb(&mut self, link: impl Into<LinkId>, entry: &FdbEntry) -> Result<()> {
        self.fdb_request(link.into(), entry, NLM_F_CREATE | NLM_F_APPEND, "append")
    }

    /// Adds or replaces an FDB entry (`bridge fdb replace`).
    pub fn replace_fdb(&mut self, link: impl Into<LinkId>, entry: &FdbEntry) -> Result<()> {
        self.fdb_request(link.into(), entry, NLM_F_CREATE | NLM_F_REPLACE, "replace")
    }

    fn fdb_request(&mut self, link: LinkId, entry: &FdbEntry, flags: u16, verb: &str) -> Result<()> {
        let op = || format!("{verb} fdb entry {} on {link}", entry.describe());
        let index = self.link_index(&link).map_err(|e| e.with_context(op()))?;
        self.execute(RouteNetlinkMessage::NewNeighbour(fdb_message(index, entry)), flags).map_err(|e| e.op(op()))
    }

    /// Deletes an FDB entry (`bridge fdb del`): the MAC (and `dst`, on a VXLAN device with several
    /// remotes for it). Fails with [`crate::ErrorKind::NotFound`] if there is none.
    pub fn del_fdb(&mut self, link: impl Into<LinkId>, entry: &FdbEntry) -> Result<()> {
        let link = link.into();
        let op = || format!("delete fdb entry {} on {link}", entry.describe());
        let index = self.link_index(&link).map_err(|e| e.with_context(op()))?;
        self.execute(RouteNetlinkMessage::DelNeighbour(fdb_message(index, entry)), 0).map_err(|e| e.op(op()))
    }

    /// Every FDB entry of every bridge port and VXLAN device (`bridge fdb show`).
    pub fn dump_fdb(&mut self) -> Result<Vec<FdbEntry>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        let answers = self.dump(RouteNetlinkMessage::GetNeighbour(msg)).map_err(|e| e.op("dump fdb"))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(m) if m.header.family == AddressFamily::Bridge => parse_fdb(m),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn round_trip(msg: &NeighbourMessage) -> NeighbourMessage {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        NeighbourMessage::parse(&buf[..]).unwrap()
    }

    #[test]
    fn neighbour() {
        let mac: MacAddr = "0a:58:0a:f4:01:01".parse().unwrap();
        let msg = neighbour_message(4, "10.244.1.1".parse().unwrap(), Some(mac), NUD_PERMANENT);
        let n = parse_neighbour(round_trip(&msg)).unwrap();
        assert_eq!(n.index, 4);
        assert_eq!(n.ip, "10.244.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(n.mac, Some(mac));
        assert!(n.is_permanent());
        let msg = neighbour_message(4, "fd00::1".parse().unwrap(), None, 0);
        assert_eq!(msg.header.family, AddressFamily::Inet6);
        assert_eq!(parse_neighbour(round_trip(&msg)).unwrap().mac, None);
    }

    #[test]
    fn vxlan_fdb() {
        let mac: MacAddr = "66:77:88:99:aa:bb".parse().unwrap();
        let mut entry = FdbEntry::vxlan(mac, "192.0.2.7".parse().unwrap());
        entry.vni = Some(42);
        entry.port = Some(4789);
        let parsed = parse_fdb(round_trip(&fdb_message(9, &entry))).unwrap();
        assert_eq!(parsed, FdbEntry { index: 9, ..entry });
        assert!(parsed.is_permanent());
        assert_eq!(parsed.flags, NTF_SELF);
    }

    #[test]
    fn bridge_fdb() {
        let entry = FdbEntry::bridge_port("02:00:00:00:00:01".parse().unwrap());
        assert_eq!((entry.flags, entry.state, entry.dst), (NTF_MASTER, NUD_NOARP, None));
        let parsed = parse_fdb(round_trip(&fdb_message(3, &entry))).unwrap();
        assert_eq!(parsed.flags, NTF_MASTER);
        assert!(!parsed.is_permanent());
    }
}
