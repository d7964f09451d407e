//! Links (network interfaces): create veth pairs, bridges, VXLAN and dummy devices; look them
//! up, dump them, delete them; set them up or down, their MTU, MAC, name, master, namespace,
//! promiscuous mode; bridge-port hairpin and learning; VLAN filtering on a bridge and the VLANs
//! of its ports.
//!
//! Links are named with a [`LinkId`] — an index or a name; every verb takes
//! `impl Into<LinkId>`, so `h.set_up("eth0")`, `h.set_up(5)` and `h.set_up(&link)` all work.
//! Looking a link up by name is done by the kernel (`IFLA_IFNAME`), not by a dump. A missing link
//! is an error of kind [`crate::ErrorKind::NotFound`] (`ENODEV`), a taken name one of kind
//! [`crate::ErrorKind::AlreadyExists`] (`EEXIST`).

use std::fmt;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort, InfoData, InfoKind,
    InfoPortData, InfoPortKind, InfoVeth, InfoVxlan, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
    State,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::mac::MacAddr;
use crate::netns::Netns;

/// The longest interface name the kernel accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

/// `IFF_UP`.
pub const IFF_UP: u32 = libc::IFF_UP as u32;
/// `IFF_RUNNING`.
pub const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
/// `IFF_PROMISC`.
pub const IFF_PROMISC: u32 = libc::IFF_PROMISC as u32;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;

/// A link, named by index or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkId {
    /// The interface index.
    Index(u32),
    /// The interface name.
    Name(String),
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkId::Index(i) => write!(f, "link index {i}"),
            LinkId::Name(n) => write!(f, "link {n}"),
        }
    }
}

impl From<u32> for LinkId {
    fn from(i: u32) -> Self {
        LinkId::Index(i)
    }
}

impl From<&str> for LinkId {
    fn from(n: &str) -> Self {
        LinkId::Name(n.to_string())
    }
}

impl From<String> for LinkId {
    fn from(n: String) -> Self {
        LinkId::Name(n)
    }
}

impl From<&String> for LinkId {
    fn from(n: &String) -> Self {
        LinkId::Name(n.clone())
    }
}

impl From<&Link> for LinkId {
    fn from(l: &Link) -> Self {
        LinkId::Index(l.index)
    }
}

impl From<&LinkId> for LinkId {
    fn from(l: &LinkId) -> Self {
        l.clone()
    }
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// The device kind (`veth`, `bridge`, `vxlan`, `dummy`, …); `None` for physical devices and
    /// loopback.
    pub kind: Option<String>,
    /// The hardware address.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: u32,
    /// `IFF_*` flags (see [`IFF_UP`], …).
    pub flags: u32,
    /// Operational state as `ip link` prints it (`UP`, `DOWN`, `LOWERLAYERDOWN`, `UNKNOWN`, …).
    pub oper_state: String,
    /// The index of the master (the bridge this link is a port of).
    pub master: Option<u32>,
    /// `IFLA_LINK`: for a veth, the index of its peer (in the namespace [`Link::link_netnsid`]
    /// names, or this one if `None`); for a VLAN, its parent.
    pub parent: Option<u32>,
    /// The namespace id (as this namespace knows it) of the namespace [`Link::parent`] is in.
    pub link_netnsid: Option<i32>,
    /// Bridge-port settings, if this link is a bridge port.
    pub bridge_port: Option<BridgePortInfo>,
    /// Bridge settings, if this link is a bridge.
    pub bridge: Option<BridgeInfo>,
    /// VXLAN settings, if this link is a VXLAN device.
    pub vxlan: Option<VxlanInfo>,
}

impl Link {
    /// Administratively up (`IFF_UP`).
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    /// Promiscuous mode set by a user (`IFF_PROMISC`).
    pub fn is_promisc(&self) -> bool {
        self.flags & IFF_PROMISC != 0
    }
}

/// Settings of a bridge port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BridgePortInfo {
    /// Hairpin mode (`IFLA_BRPORT_MODE`): frames may be sent back out of the port they came in.
    pub hairpin: bool,
    /// Whether the bridge learns source addresses on this port.
    pub learning: bool,
}

/// Settings of a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BridgeInfo {
    /// VLAN filtering.
    pub vlan_filtering: bool,
    /// The default PVID of new ports.
    pub vlan_default_pvid: Option<u16>,
}

/// Settings of a VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VxlanInfo {
    /// The VXLAN network identifier.
    pub vni: u32,
    /// Local (source) address.
    pub local: Option<IpAddr>,
    /// Remote or multicast group address.
    pub remote: Option<IpAddr>,
    /// UDP destination port.
    pub port: Option<u16>,
    /// Whether the device learns remote MACs from received packets.
    pub learning: bool,
    /// Index of the underlay device.
    pub underlay: Option<u32>,
}

/// What kind of link to create.
#[derive(Debug, Clone)]
pub enum LinkKind<'a> {
    /// A veth pair; the other end is described by [`VethPeer`].
    Veth(VethPeer<'a>),
    /// A bridge.
    Bridge(BridgeOptions),
    /// A VXLAN device.
    Vxlan(VxlanOptions),
    /// A dummy device.
    Dummy,
}

/// The other end of a veth pair.
#[derive(Debug, Clone, Default)]
pub struct VethPeer<'a> {
    /// Its name.
    pub name: String,
    /// Its MAC (else the kernel picks a random one).
    pub mac: Option<MacAddr>,
    /// Its MTU (else the MTU of the pair, [`NewLink::mtu`]).
    pub mtu: Option<u32>,
    /// The namespace to create it in (else the handle's namespace).
    pub netns: Option<&'a Netns>,
}

/// Options of a new bridge.
#[derive(Debug, Clone, Default)]
pub struct BridgeOptions {
    /// Enable VLAN filtering.
    pub vlan_filtering: Option<bool>,
    /// The PVID new ports get (1 by default; 0 for none).
    pub vlan_default_pvid: Option<u16>,
}

/// Options of a new VXLAN device.
#[derive(Debug, Clone, Default)]
pub struct VxlanOptions {
    /// The VXLAN network identifier.
    pub vni: u32,
    /// Local (source) address.
    pub local: Option<IpAddr>,
    /// Remote unicast or multicast group address (leave empty and use FDB entries for
    /// point-to-multipoint overlays).
    pub remote: Option<IpAddr>,
    /// UDP destination port (the kernel's default is 8472; IANA's is 4789).
    pub port: Option<u16>,
    /// Learn remote MACs from received packets (the kernel's default is on).
    pub learning: Option<bool>,
    /// Index of the underlay device.
    pub underlay: Option<u32>,
    /// TTL of the outer packets.
    pub ttl: Option<u8>,
}

/// A link to create with [`Handle::create_link`].
///
/// ```no_run
/// # use podnet_netlink::{Handle, NewLink, Netns};
/// # fn f(h: &mut Handle, pod: &Netns) -> podnet_netlink::Result<()> {
/// let host = h.create_link(&NewLink::veth("veth1234", "eth0").peer_netns(pod).mtu(1450).up())?;
/// h.set_master(host.index, "cni0")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NewLink<'a> {
    /// Its name.
    pub name: String,
    /// Its kind and kind-specific options.
    pub kind: LinkKind<'a>,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// Make it a port of this master (bridge) at once.
    pub master: Option<u32>,
    /// Bring it up at once.
    pub up: bool,
}

impl<'a> NewLink<'a> {
    /// A link of any kind.
    pub fn new(name: impl Into<String>, kind: LinkKind<'a>) -> NewLink<'a> {
        NewLink { name: name.into(), kind, mtu: None, mac: None, master: None, up: false }
    }

    /// A veth pair `name` ↔ `peer`.
    pub fn veth(name: impl Into<String>, peer: impl Into<String>) -> NewLink<'a> {
        NewLink::new(name, LinkKind::Veth(VethPeer { name: peer.into(), ..VethPeer::default() }))
    }

    /// A bridge with the kernel's defaults.
    pub fn bridge(name: impl Into<String>) -> NewLink<'a> {
        NewLink::new(name, LinkKind::Bridge(BridgeOptions::default()))
    }

    /// A VXLAN device.
    pub fn vxlan(name: impl Into<String>, options: VxlanOptions) -> NewLink<'a> {
        NewLink::new(name, LinkKind::Vxlan(options))
    }

    /// A dummy device.
    pub fn dummy(name: impl Into<String>) -> NewLink<'a> {
        NewLink::new(name, LinkKind::Dummy)
    }

    /// Sets the MTU (of both ends, for a veth pair, unless the peer has its own).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Sets the MAC address.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Makes it a port of the master with this index.
    pub fn master(mut self, index: u32) -> Self {
        self.master = Some(index);
        self
    }

    /// Brings it up at once.
    pub fn up(mut self) -> Self {
        self.up = true;
        self
    }

    /// For a veth pair: creates the peer in `netns`. Ignored for other kinds.
    pub fn peer_netns(mut self, netns: &'a Netns) -> Self {
        if let LinkKind::Veth(peer) = &mut self.kind {
            peer.netns = Some(netns);
        }
        self
    }

    /// For a veth pair: the peer's MAC address. Ignored for other kinds.
    pub fn peer_mac(mut self, mac: MacAddr) -> Self {
        if let LinkKind::Veth(peer) = &mut self.kind {
            peer.mac = Some(mac);
        }
        self
    }

    /// For a bridge: VLAN filtering on or off. Ignored for other kinds.
    pub fn vlan_filtering(mut self, on: bool) -> Self {
        if let LinkKind::Bridge(options) = &mut self.kind {
            options.vlan_filtering = Some(on);
        }
        self
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            LinkKind::Veth(_) => "veth",
            LinkKind::Bridge(_) => "bridge",
            LinkKind::Vxlan(_) => "vxlan",
            LinkKind::Dummy => "dummy",
        }
    }

    /// The `RTM_NEWLINK` message.
    pub(crate) fn message(&self) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(self.name.clone()));
        if let Some(mtu) = self.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = self.mac {
            msg.attributes.push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        if let Some(master) = self.master {
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        if self.up {
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
        }
        let info = match &self.kind {
            LinkKind::Veth(peer) => {
                let mut p = LinkMessage::default();
                p.attributes.push(LinkAttribute::IfName(peer.name.clone()));
                if let Some(mtu) = peer.mtu.or(self.mtu) {
                    p.attributes.push(LinkAttribute::Mtu(mtu));
                }
                if let Some(mac) = peer.mac {
                    p.attributes.push(LinkAttribute::Address(mac.octets().to_vec()));
                }
                if let Some(netns) = peer.netns {
                    p.attributes.push(LinkAttribute::NetNsFd(netns.as_fd().as_raw_fd()));
                }
                vec![LinkInfo::Kind(InfoKind::Veth), LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p)))]
            }
            LinkKind::Bridge(options) => {
                let mut data = Vec::new();
                if let Some(on) = options.vlan_filtering {
                    data.push(InfoBridge::VlanFiltering(on));
                }
                if let Some(pvid) = options.vlan_default_pvid {
                    data.push(InfoBridge::VlanDefaultPvid(pvid));
                }
                let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
                if !data.is_empty() {
                    info.push(LinkInfo::Data(InfoData::Bridge(data)));
                }
                info
            }
            LinkKind::Vxlan(o) => {
                let mut data = vec![InfoVxlan::Id(o.vni)];
                match o.local {
                    Some(IpAddr::V4(a)) => data.push(InfoVxlan::Local(a)),
                    Some(IpAddr::V6(a)) => data.push(InfoVxlan::Local6(a)),
                    None => {}
                }
                match o.remote {
                    Some(IpAddr::V4(a)) => data.push(InfoVxlan::Group(a)),
                    Some(IpAddr::V6(a)) => data.push(InfoVxlan::Group6(a)),
                    None => {}
                }
                if let Some(port) = o.port {
                    data.push(InfoVxlan::Port(port));
                }
                if let Some(learning) = o.learning {
                    data.push(InfoVxlan::Learning(learning));
                }
                if let Some(dev) = o.underlay {
                    data.push(InfoVxlan::Link(dev));
                }
                if let Some(ttl) = o.ttl {
                    data.push(InfoVxlan::Ttl(ttl));
                }
                vec![LinkInfo::Kind(InfoKind::Vxlan), LinkInfo::Data(InfoData::Vxlan(data))]
            }
            LinkKind::Dummy => vec![LinkInfo::Kind(InfoKind::Dummy)],
        };
        msg.attributes.push(LinkAttribute::LinkInfo(info));
        msg
    }
}

/// A VLAN of a bridge port (or of the bridge itself), as `bridge vlan` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeVlan {
    /// The VLAN id.
    pub vid: u16,
    /// The port's PVID: untagged incoming frames belong to this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

/// The `RTM_SETLINK`/`RTM_DELLINK` message (family `AF_BRIDGE`) of `bridge vlan add|del`: for a
/// port as is (the bridge's own table), for the bridge itself with `BRIDGE_FLAGS_SELF`.
fn bridge_vlan_message(index: u32, is_bridge: bool, vlan: BridgeVlan) -> LinkMessage {
    let mut flags = BridgeVlanInfoFlags::empty();
    if vlan.pvid {
        flags |= BridgeVlanInfoFlags::Pvid;
    }
    if vlan.untagged {
        flags |= BridgeVlanInfoFlags::Untagged;
    }
    let mut msg = LinkMessage::default();
    msg.header.interface_family = AddressFamily::Bridge;
    msg.header.index = index;
    let mut spec = Vec::new();
    if is_bridge {
        spec.push(AfSpecBridge::Flags(BridgeFlag::LowerDev));
    }
    spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid: vlan.vid }));
    msg.attributes.push(LinkAttribute::AfSpecBridge(spec));
    msg
}

/// Checks an interface name as the kernel will (`dev_valid_name`).
pub fn validate_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty interface name".into());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(format!("interface name {name:?} is longer than {MAX_IFNAME_LEN} bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0') {
        return Err(format!("interface name {name:?} contains '/', ':' or whitespace"));
    }
    Ok(())
}

/// A message addressed to `id`: by index in the header or by name in `IFLA_IFNAME`.
fn addressed(id: &LinkId) -> LinkMessage {
    let mut msg = LinkMessage::default();
    match id {
        LinkId::Index(i) => msg.header.index = *i,
        LinkId::Name(n) => msg.attributes.push(LinkAttribute::IfName(n.clone())),
    }
    msg
}

/// Decodes a link message.
pub(crate) fn parse_link(msg: LinkMessage) -> Link {
    let mut link = Link { index: msg.header.index, flags: msg.header.flags.bits(), ..Link::default() };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(a) => link.mac = MacAddr::from_slice(&a),
            LinkAttribute::Mtu(m) => link.mtu = m,
            LinkAttribute::Controller(m) => link.master = Some(m),
            LinkAttribute::Link(l) => link.parent = Some(l),
            LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
            LinkAttribute::OperState(s) => link.oper_state = oper_state_name(s),
            LinkAttribute::LinkInfo(infos) => parse_link_info(&mut link, infos),
            _ => {}
        }
    }
    link
}

fn oper_state_name(s: State) -> String {
    match s {
        State::Unknown => "UNKNOWN".into(),
        State::NotPresent => "NOTPRESENT".into(),
        State::Down => "DOWN".into(),
        State::LowerLayerDown => "LOWERLAYERDOWN".into(),
        State::Testing => "TESTING".into(),
        State::Dormant => "DORMANT".into(),
        State::Up => "UP".into(),
        State::Other(n) => format!("STATE{n}"),
        _ => "UNKNOWN".into(),
    }
}

fn parse_link_info(link: &mut Link, infos: Vec<LinkInfo>) {
    for info in infos {
        match info {
            LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
            LinkInfo::Data(InfoData::Bridge(data)) => {
                let mut b = BridgeInfo::default();
                for d in data {
                    match d {
                        InfoBridge::VlanFiltering(on) => b.vlan_filtering = on,
                        InfoBridge::VlanDefaultPvid(p) => b.vlan_default_pvid = Some(p),
                        _ => {}
                    }
                }
                link.bridge = Some(b);
            }
            LinkInfo::Data(InfoData::Vxlan(data)) => {
                let mut v = VxlanInfo::default();
                for d in data {
                    match d {
                        InfoVxlan::Id(id) => v.vni = id,
                        InfoVxlan::Local(a) => v.local = Some(a.into()),
                        InfoVxlan::Local6(a) => v.local = Some(a.into()),
                        InfoVxlan::Group(a) => v.remote = Some(a.into()),
                        InfoVxlan::Group6(a) => v.remote = Some(a.into()),
                        InfoVxlan::Port(p) => v.port = Some(p),
                        InfoVxlan::Learning(l) => v.learning = l,
                        InfoVxlan::Link(l) => v.underlay = Some(l),
                        _ => {}
                    }
                }
                link.vxlan = Some(v);
            }
            LinkInfo::PortData(InfoPortData::BridgePort(data)) => {
                let mut p = BridgePortInfo::default();
                for d in data {
                    match d {
                        InfoBridgePort::HairpinMode(h) => p.hairpin = h,
                        InfoBridgePort::Learning(l) => p.learning = l,
                        _ => {}
                    }
                }
                link.bridge_port = Some(p);
            }
            _ => {}
        }
    }
}

impl Handle {
    /// Creates a link (`ip link add`) and returns it as the kernel reports it. For a veth pair
    /// the returned link is this end; the peer may be in another namespace.
    pub fn create_link(&mut self, new: &NewLink<'_>) -> Result<Link> {
        let op = || format!("create link {} ({})", new.name, new.kind_name());
        validate_ifname(&new.name).map_err(|m| Error::invalid(op(), m))?;
        if let LinkKind::Veth(peer) = &new.kind {
            validate_ifname(&peer.name).map_err(|m| Error::invalid(op(), m))?;
        }
        self.execute(RouteNetlinkMessage::NewLink(new.message()), NLM_F_CREATE | NLM_F_EXCL).map_err(|e| e.op(op()))?;
        self.get_link(new.name.as_str())
    }

    /// Looks a link up by index or name (`ip link show`).
    pub fn get_link(&mut self, id: impl Into<LinkId>) -> Result<Link> {
        let id = id.into();
        let mut msg = addressed(&id);
        msg.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        match self.get(RouteNetlinkMessage::GetLink(msg)) {
            Ok(RouteNetlinkMessage::NewLink(m)) => Ok(parse_link(m)),
            Ok(other) => Err(Error::Protocol { op: format!("get {id}"), message: format!("unexpected {other:?}") }),
            Err(e) => Err(e.op(format!("get {id}"))),
        }
    }

    /// The index of a link (no round trip for [`LinkId::Index`]).
    pub fn link_index(&mut self, id: impl Into<LinkId>) -> Result<u32> {
        match id.into() {
            LinkId::Index(i) => Ok(i),
            name => Ok(self.get_link(name)?.index),
        }
    }

    /// Every link of the namespace (`ip link show`).
    pub fn dump_links(&mut self) -> Result<Vec<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let answers = self.dump(RouteNetlinkMessage::GetLink(msg)).map_err(|e| e.op("dump links"))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(m) => Some(parse_link(m)),
                _ => None,
            })
            .collect())
    }

    /// Deletes a link (`ip link del`); deleting one end of a veth pair deletes both.
    pub fn del_link(&mut self, id: impl Into<LinkId>) -> Result<()> {
        let id = id.into();
        self.execute(RouteNetlinkMessage::DelLink(addressed(&id)), 0).map_err(|e| e.op(format!("delete {id}")))
    }

    /// Sets a link up (`ip link set … up`).
    pub fn set_up(&mut self, id: impl Into<LinkId>) -> Result<()> {
        self.set_flag(id.into(), LinkFlags::Up, true, "set up")
    }

    /// Sets a link down (`ip link set … down`).
    pub fn set_down(&mut self, id: impl Into<LinkId>) -> Result<()> {
        self.set_flag(id.into(), LinkFlags::Up, false, "set down")
    }

    /// Turns promiscuous mode on or off (`ip link set … promisc on|off`).
    pub fn set_promisc(&mut self, id: impl Into<LinkId>, on: bool) -> Result<()> {
        self.set_flag(id.into(), LinkFlags::Promisc, on, if on { "set promisc on" } else { "set promisc off" })
    }

    fn set_flag(&mut self, id: LinkId, flag: LinkFlags, on: bool, what: &str) -> Result<()> {
        let mut msg = addressed(&id);
        msg.header.flags = if on { flag } else { LinkFlags::empty() };
        msg.header.change_mask = flag;
        self.execute(RouteNetlinkMessage::SetLink(msg), 0).map_err(|e| e.op(format!("{what} {id}")))
    }

    /// Sets the MTU (`ip link set … mtu`).
    pub fn set_mtu(&mut self, id: impl Into<LinkId>, mtu: u32) -> Result<()> {
        let id = id.into();
        self.set_attr(&id, LinkAttribute::Mtu(mtu), || format!("set mtu {mtu} on {id}"))
    }

    /// Sets the MAC address (`ip link set … address`).
    pub fn set_mac(&mut self, id: impl Into<LinkId>, mac: MacAddr) -> Result<()> {
        let id = id.into();
        self.set_attr(&id, LinkAttribute::Address(mac.octets().to_vec()), || format!("set address {mac} on {id}"))
    }

    /// Renames a link (`ip link set … name`); the link must be down.
    pub fn set_name(&mut self, id: impl Into<LinkId>, name: &str) -> Result<()> {
        let id = id.into();
        let op = || format!("rename {id} to {name}");
        validate_ifname(name).map_err(|m| Error::invalid(op(), m))?;
        let index = self.link_index(&id).map_err(|e| e.with_context(op()))?;
        self.set_attr(&LinkId::Index(index), LinkAttribute::IfName(name.to_string()), op)
    }

    /// Makes a link a port of `master` (`ip link set … master`).
    pub fn set_master(&mut self, id: impl Into<LinkId>, master: impl Into<LinkId>) -> Result<()> {
        let (id, master) = (id.into(), master.into());
        let op = || format!("set master of {id} to {master}");
        let master_index = self.link_index(&master).map_err(|e| e.with_context(op()))?;
        self.set_attr(&id, LinkAttribute::Controller(master_index), op)
    }

    /// Releases a link from its master (`ip link set … nomaster`).
    pub fn set_nomaster(&mut self, id: impl Into<LinkId>) -> Result<()> {
        let id = id.into();
        self.set_attr(&id, LinkAttribute::Controller(0), || format!("set nomaster on {id}"))
    }

    /// Moves a link into another namespace (`ip link set … netns`). It keeps its name, but is
    /// down there; a handle in that namespace finds it.
    pub fn set_netns(&mut self, id: impl Into<LinkId>, netns: &Netns) -> Result<()> {
        let id = id.into();
        let fd = netns.as_fd().as_raw_fd();
        self.set_attr(&id, LinkAttribute::NetNsFd(fd), || format!("move {id} to {}", netns.path().display()))
    }

    fn set_attr(&mut self, id: &LinkId, attr: LinkAttribute, op: impl FnOnce() -> String) -> Result<()> {
        let mut msg = addressed(id);
        msg.attributes.push(attr);
        self.execute(RouteNetlinkMessage::SetLink(msg), 0).map_err(|e| e.op(op()))
    }

    /// Sets hairpin mode on a bridge port (`ip link set … type bridge_slave hairpin on|off`).
    pub fn set_hairpin(&mut self, id: impl Into<LinkId>, on: bool) -> Result<()> {
        let id = id.into();
        self.set_bridge_port(&id, InfoBridgePort::HairpinMode(on), || format!("set hairpin {on} on {id}"))
    }

    /// Turns address learning on a bridge port on or off (`… type bridge_slave learning on|off`).
    pub fn set_learning(&mut self, id: impl Into<LinkId>, on: bool) -> Result<()> {
        let id = id.into();
        self.set_bridge_port(&id, InfoBridgePort::Learning(on), || format!("set learning {on} on {id}"))
    }

    fn set_bridge_port(&mut self, id: &LinkId, attr: InfoBridgePort, op: impl FnOnce() -> String) -> Result<()> {
        let mut msg = addressed(id);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![attr])),
        ]));
        self.execute(RouteNetlinkMessage::NewLink(msg), 0).map_err(|e| e.op(op()))
    }

    /// Turns VLAN filtering on a bridge on or off (`ip link set … type bridge vlan_filtering`).
    pub fn set_vlan_filtering(&mut self, id: impl Into<LinkId>, on: bool) -> Result<()> {
        let id = id.into();
        let mut msg = addressed(&id);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(on)])),
        ]));
        self.execute(RouteNetlinkMessage::NewLink(msg), 0).map_err(|e| e.op(format!("set vlan_filtering {on} on {id}")))
    }

    /// Adds a VLAN to a bridge port (`bridge vlan add dev PORT vid VID [pvid] [untagged]`), or to
    /// the bridge itself when `id` is the bridge (`… self`).
    pub fn add_bridge_vlan(&mut self, id: impl Into<LinkId>, vlan: BridgeVlan) -> Result<()> {
        let id = id.into();
        let op = || format!("add vlan {} to {id}", vlan.vid);
        let msg = self.bridge_vlan_message(&id, vlan).map_err(|e| e.with_context(op()))?;
        self.execute(RouteNetlinkMessage::SetLink(msg), 0).map_err(|e| e.op(op()))
    }

    /// Removes a VLAN from a bridge port or the bridge itself (`bridge vlan del`).
    pub fn del_bridge_vlan(&mut self, id: impl Into<LinkId>, vid: u16) -> Result<()> {
        let id = id.into();
        let op = || format!("delete vlan {vid} from {id}");
        let vlan = BridgeVlan { vid, pvid: false, untagged: false };
        let msg = self.bridge_vlan_message(&id, vlan).map_err(|e| e.with_context(op()))?;
        self.execute(RouteNetlinkMessage::DelLink(msg), 0).map_err(|e| e.op(op()))
    }

    fn bridge_vlan_message(&mut self, id: &LinkId, vlan: BridgeVlan) -> Result<LinkMessage> {
        let link = self.get_link(id)?;
        Ok(bridge_vlan_message(link.index, link.kind.as_deref() == Some("bridge"), vlan))
    }

    /// The VLANs of every bridge port and bridge (`bridge vlan show`), by link index.
    pub fn dump_bridge_vlans(&mut self) -> Result<Vec<(u32, BridgeVlan)>> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        let answers = self.dump(RouteNetlinkMessage::GetLink(msg)).map_err(|e| e.op("dump bridge vlans"))?;
        let mut out = Vec::new();
        for answer in answers {
            let RouteNetlinkMessage::NewLink(m) = answer else { continue };
            for attr in m.attributes {
                let LinkAttribute::AfSpecBridge(spec) = attr else { continue };
                for s in spec {
                    if let AfSpecBridge::VlanInfo(v) = s {
                        let vlan = BridgeVlan {
                            vid: v.vid,
                            pvid: v.flags.contains(BridgeVlanInfoFlags::Pvid),
                            untagged: v.flags.contains(BridgeVlanInfoFlags::Untagged),
                        };
                        out.push((m.header.index, vlan));
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    #[test]
    fn ifnames() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("veth0123456789a").is_ok());
        for bad in ["", "veth0123456789ab", ".", "..", "a/b", "a:b", "a b"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_ids() {
        assert_eq!(LinkId::from(5).to_string(), "link index 5");
        assert_eq!(LinkId::from("eth0").to_string(), "link eth0");
        let link = Link { index: 7, name: "x".into(), ..Link::default() };
        assert_eq!(LinkId::from(&link), LinkId::Index(7));
        assert_eq!(addressed(&LinkId::Index(3)).header.index, 3);
        assert_eq!(addressed(&"eth0".into()).attributes, vec![LinkAttribute::IfName("eth0".into())]);
    }

    /// Emits a message and parses it back, as the kernel would see it.
    fn round_trip(msg: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(&buf[..]).unwrap()
    }

    #[test]
    fn veth_message() {
        let new = NewLink::veth("vethabc", "eth0").mtu(1450).mac("0a:58:0a:f4:00:01".parse().unwrap()).up();
        let msg = new.message();
        assert!(msg.header.flags.contains(LinkFlags::Up));
        let parsed = round_trip(&msg);
        assert!(parsed.attributes.contains(&LinkAttribute::IfName("vethabc".into())));
        assert!(parsed.attributes.contains(&LinkAttribute::Mtu(1450)));
        assert!(parsed.attributes.contains(&LinkAttribute::Address(vec![0x0a, 0x58, 0x0a, 0xf4, 0, 1])));
        let info = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i.clone()),
            _ => None,
        });
        let info = info.unwrap();
        assert_eq!(info[0], LinkInfo::Kind(InfoKind::Veth));
        let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &info[1] else { panic!("{info:?}") };
        assert!(peer.attributes.contains(&LinkAttribute::IfName("eth0".into())));
        assert!(peer.attributes.contains(&LinkAttribute::Mtu(1450)), "the peer inherits the MTU");
    }

    #[test]
    fn vxlan_and_bridge_messages() {
        let new = NewLink::vxlan(
            "vxlan0",
            VxlanOptions {
                vni: 42,
                local: Some("192.0.2.1".parse().unwrap()),
                port: Some(4789),
                learning: Some(false),
                ..VxlanOptions::default()
            },
        );
        let parsed = parse_link(round_trip(&new.message()));
        assert_eq!(parsed.name, "vxlan0");
        assert_eq!(parsed.kind.as_deref(), Some("vxlan"));
        let v = parsed.vxlan.unwrap();
        assert_eq!((v.vni, v.local, v.port, v.learning), (42, Some("192.0.2.1".parse().unwrap()), Some(4789), false));

        let parsed = parse_link(round_trip(&NewLink::bridge("cni0").vlan_filtering(true).message()));
        assert_eq!(parsed.kind.as_deref(), Some("bridge"));
        assert!(parsed.bridge.unwrap().vlan_filtering);
        assert_eq!(parse_link(round_trip(&NewLink::dummy("d0").message())).kind.as_deref(), Some("dummy"));
    }

    #[test]
    fn bridge_vlan_messages() {
        let vlan = BridgeVlan { vid: 100, pvid: true, untagged: true };
        let port = bridge_vlan_message(5, false, vlan);
        let mut buf = vec![0; port.buffer_len()];
        port.emit(&mut buf);
        // ifinfomsg: family AF_BRIDGE, index 5; then IFLA_AF_SPEC { IFLA_BRIDGE_VLAN_INFO {flags, vid} }.
        assert_eq!(buf[0], libc::AF_BRIDGE as u8);
        assert_eq!(u32::from_ne_bytes(buf[4..8].try_into().unwrap()), 5);
        let spec = &buf[16..];
        assert_eq!(u16::from_ne_bytes([spec[2], spec[3]]) & 0x3fff, 26, "IFLA_AF_SPEC");
        let info = &spec[4..];
        assert_eq!(u16::from_ne_bytes([info[2], info[3]]), 2, "IFLA_BRIDGE_VLAN_INFO");
        assert_eq!(u16::from_ne_bytes([info[4], info[5]]), 0x2 | 0x4, "PVID | UNTAGGED");
        assert_eq!(u16::from_ne_bytes([info[6], info[7]]), 100);

        let bridge = bridge_vlan_message(3, true, BridgeVlan { vid: 7, pvid: false, untagged: false });
        let LinkAttribute::AfSpecBridge(spec) = &bridge.attributes[0] else { panic!() };
        assert_eq!(spec[0], AfSpecBridge::Flags(BridgeFlag::LowerDev), "BRIDGE_FLAGS_SELF");
    }

    #[test]
    fn nested_errors_keep_both_descriptions() {
        let inner =
            crate::error::RawError::Kernel { errno: nix::errno::Errno::ENODEV, message: None }.op("get link cni0");
        let e = inner.with_context("set master of link veth0 to link cni0");
        assert_eq!(e.to_string(), "set master of link veth0 to link cni0: get link cni0: ENODEV (No such device)");
        assert!(e.is_not_found());
    }
}
