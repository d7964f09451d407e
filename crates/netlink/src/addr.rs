//! IP addresses on links: add (`ip addr add`), delete, dump.
//!
//! An address is an [`IpNet`] that keeps its host bits: `10.244.1.5/24` is the address
//! `10.244.1.5` on the subnet `10.244.1.0/24`. As the reference CNI plugins do (through
//! vishvananda/netlink), an IPv4 address on a subnet of /30 or larger gets its broadcast address
//! set automatically.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::handle::Handle;
use crate::link::LinkId;

/// `IFA_F_SECONDARY`.
pub const IFA_F_SECONDARY: u32 = 0x01;
/// `IFA_F_NODAD`.
pub const IFA_F_NODAD: u32 = 0x02;
/// `IFA_F_DADFAILED`.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_TENTATIVE`: IPv6 duplicate address detection has not finished.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFA_F_PERMANENT`: configured, not learnt.
pub const IFA_F_PERMANENT: u32 = 0x80;
/// `IFA_F_NOPREFIXROUTE`.
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Index of the link it is on.
    pub index: u32,
    /// The address with its prefix length.
    pub addr: IpNet,
    /// The peer address of a point-to-point address (`IFA_ADDRESS` when it differs from
    /// `IFA_LOCAL`).
    pub peer: Option<IpAddr>,
    /// IPv4 broadcast address.
    pub broadcast: Option<Ipv4Addr>,
    /// Scope: 0 global, 253 link, 254 host.
    pub scope: u8,
    /// `IFA_F_*` flags.
    pub flags: u32,
    /// The label (`eth0`, `eth0:1`, …; IPv4 only).
    pub label: Option<String>,
}

impl Address {
    /// Whether IPv6 duplicate address detection is still running.
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }

    /// Whether IPv6 duplicate address detection failed.
    pub fn is_dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }
}

/// Options of [`Handle::add_addr_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOptions {
    /// Skip IPv6 duplicate address detection (`nodad`): the address is usable at once.
    pub nodad: bool,
    /// Do not add the prefix route of the address's subnet (`noprefixroute`).
    pub noprefixroute: bool,
    /// Replace an existing equal address instead of failing with `EEXIST` (`ip addr replace`).
    pub replace: bool,
    /// Scope (default global; 253 for link, 254 for host).
    pub scope: Option<u8>,
}

/// The broadcast address the reference plugins give an IPv4 address: the subnet's last address
/// for prefixes up to /30, none for /31 and /32 (RFC 3021).
pub fn default_broadcast(addr: &IpNet) -> Option<Ipv4Addr> {
    match addr {
        IpNet::V4(net) if net.prefix_len() < 31 => Some(net.broadcast()),
        _ => None,
    }
}

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The `RTM_NEWADDR`/`RTM_DELADDR` message for `addr` on link `index`.
pub(crate) fn address_message(index: u32, addr: &IpNet, options: &AddrOptions, with_broadcast: bool) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(&addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    msg.header.scope = AddressScope::from(options.scope.unwrap_or(0));
    msg.attributes.push(AddressAttribute::Local(addr.addr()));
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    if with_broadcast {
        if let Some(brd) = default_broadcast(addr) {
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
    }
    let mut flags = AddressFlags::empty();
    if options.nodad {
        flags |= AddressFlags::Nodad;
    }
    if options.noprefixroute {
        flags |= AddressFlags::Noprefixroute;
    }
    if !flags.is_empty() {
        msg.attributes.push(AddressAttribute::Flags(flags));
    }
    msg
}

/// Decodes an address message (`None` for families other than IPv4/IPv6).
pub(crate) fn parse_address(msg: AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut broadcast = None;
    let mut label = None;
    let mut flags = u32::from(msg.header.flags.bits());
    for attr in msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(a),
            AddressAttribute::Address(a) => address = Some(a),
            AddressAttribute::Broadcast(b) => broadcast = Some(b),
            AddressAttribute::Label(l) => label = Some(l),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let peer = match (local, address) {
        (Some(l), Some(a)) if l != a => Some(a),
        _ => None,
    };
    let addr = IpNet::new(ip, msg.header.prefix_len).ok()?;
    Some(Address { index: msg.header.index, addr, peer, broadcast, scope: u8::from(msg.header.scope), flags, label })
}

impl Handle {
    /// Adds an address to a link (`ip addr add ADDR/LEN dev LINK`). Fails with
    /// [`crate::ErrorKind::AlreadyExists`] if the link has it already.
    pub fn add_addr(&mut self, link: impl Into<LinkId>, addr: IpNet) -> Result<()> {
        self.add_addr_with(link, addr, &AddrOptions::default())
    }

    /// Adds an address with options (see [`AddrOptions`]).
    pub fn add_addr_with(&mut self, link: impl Into<LinkId>, addr: IpNet, options: &AddrOptions) -> Result<()> {
        let link = link.into();
        let op = || format!("add address {addr} to {link}");
        let index = self.link_index(&link).map_err(|e| e.with_context(op()))?;
        let msg = address_message(index, &addr, options, true);
        let flags = if options.replace { NLM_F_CREATE | NLM_F_REPLACE } else { NLM_F_CREATE | NLM_F_EXCL };
        self.execute(RouteNetlinkMessage::NewAddress(msg), flags).map_err(|e| e.op(op()))
    }

    /// Removes an address from a link (`ip addr del`). Fails with
    /// [`crate::ErrorKind::NotFound`] if the link does not have it.
    pub fn del_addr(&mut self, link: impl Into<LinkId>, addr: IpNet) -> Result<()> {
        let link = link.into();
        let op = || format!("delete address {addr} from {link}");
        let index = self.link_index(&link).map_err(|e| e.with_context(op()))?;
        let msg = address_message(index, &addr, &AddrOptions::default(), false);
        self.execute(RouteNetlinkMessage::DelAddress(msg), 0).map_err(|e| e.op(op()))
    }

    /// Every IPv4 and IPv6 address of the namespace (`ip addr show`).
    pub fn dump_addresses(&mut self) -> Result<Vec<Address>> {
        let answers = self
            .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .map_err(|e| e.op("dump addresses"))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(m) => parse_address(m),
                _ => None,
            })
            .collect())
    }

    /// The addresses of one link (`ip addr show dev LINK`).
    pub fn link_addresses(&mut self, link: impl Into<LinkId>) -> Result<Vec<Address>> {
        let link = link.into();
        let index = self.link_index(&link)?;
        Ok(self.dump_addresses()?.into_iter().filter(|a| a.index == index).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn round_trip(msg: &AddressMessage) -> AddressMessage {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        AddressMessage::parse(&buf[..]).unwrap()
    }

    #[test]
    fn broadcast() {
        assert_eq!(default_broadcast(&"10.244.1.5/24".parse().unwrap()), Some("10.244.1.255".parse().unwrap()));
        assert_eq!(default_broadcast(&"10.0.0.1/30".parse().unwrap()), Some("10.0.0.3".parse().unwrap()));
        assert_eq!(default_broadcast(&"10.0.0.1/31".parse().unwrap()), None);
        assert_eq!(default_broadcast(&"10.0.0.1/32".parse().unwrap()), None);
        assert_eq!(default_broadcast(&"fd00::1/64".parse().unwrap()), None);
    }

    #[test]
    fn v4_message() {
        let addr: IpNet = "10.244.1.5/24".parse().unwrap();
        let msg = address_message(7, &addr, &AddrOptions::default(), true);
        let parsed = parse_address(round_trip(&msg)).unwrap();
        assert_eq!(parsed.index, 7);
        assert_eq!(parsed.addr, addr);
        assert_eq!(parsed.broadcast, Some("10.244.1.255".parse().unwrap()));
        assert_eq!(parsed.peer, None);
        assert_eq!(parsed.scope, 0);
    }

    #[test]
    fn v6_message_with_flags() {
        let addr: IpNet = "fd00:10:244::5/64".parse().unwrap();
        let options = AddrOptions { nodad: true, noprefixroute: true, ..AddrOptions::default() };
        let parsed = parse_address(round_trip(&address_message(3, &addr, &options, true))).unwrap();
        assert_eq!(parsed.addr, addr);
        assert_eq!(parsed.broadcast, None);
        assert_eq!(parsed.flags & (IFA_F_NODAD | IFA_F_NOPREFIXROUTE), IFA_F_NODAD | IFA_F_NOPREFIXROUTE);
        assert!(!parsed.is_tentative());
    }
}
