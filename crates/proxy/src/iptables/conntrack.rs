//! Conntrack entries over ctnetlink (`NETLINK_NETFILTER`), without the `conntrack` tool: dump the
//! entries of one family, delete one by its original tuple. Used to forget UDP flows that a
//! service's rules no longer send where they went (see [`super::stale`]). The socket acts on the
//! network namespace of the thread that opens it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::Error;

use super::Family;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// IANA protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

const RECV_BUF: usize = 64 * 1024;

/// One direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IANA protocol number.
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// A conntrack entry: the original tuple (as the client sent it) and the reply tuple (after NAT:
/// its source is the endpoint a service DNATed to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub orig: Tuple,
    pub reply: Tuple,
    pub zone: Option<u16>,
    pub id: Option<u32>,
}

/// A ctnetlink socket.
pub struct Conntrack {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn io_error(what: &str, e: io::Error) -> Error {
    Error::Io { what: format!("conntrack: {what}"), source: e }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl Conntrack {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Conntrack, Error> {
        let op = "open ctnetlink socket";
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| io_error(op, e))?;
        socket.bind_auto().map_err(|e| io_error(op, e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| io_error(op, e))?;
        Ok(Conntrack { socket, seq: 0, buf: Vec::with_capacity(RECV_BUF) })
    }

    /// Every entry of `family`.
    pub fn dump(&mut self, family: Family) -> Result<Vec<Flow>, Error> {
        let msg = self.message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, family);
        let seq = self.send(msg, "dump entries")?;
        let mut flows = Vec::new();
        self.receive(seq, "dump entries", |ty, payload| {
            if ty == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW && payload.len() >= 4 {
                flows.extend(parse_flow(&payload[4..]));
            }
        })?;
        Ok(flows)
    }

    /// Deletes the entry of `flow` (by its original tuple, zone and id). `Ok(false)` if it was
    /// already gone.
    pub fn delete(&mut self, flow: &Flow) -> Result<bool, Error> {
        let family = if flow.orig.src.is_ipv4() { Family::V4 } else { Family::V6 };
        let mut msg = self.message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, family);
        nested(&mut msg, CTA_TUPLE_ORIG, |m| put_tuple(m, &flow.orig));
        if let Some(zone) = flow.zone.filter(|z| *z != 0) {
            attr(&mut msg, CTA_ZONE, &zone.to_be_bytes());
        }
        if let Some(id) = flow.id {
            attr(&mut msg, CTA_ID, &id.to_be_bytes());
        }
        let seq = self.send(msg, "delete entry")?;
        match self.receive(seq, "delete entry", |_, _| {}) {
            Ok(()) => Ok(true),
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(2) => Ok(false), // ENOENT
            Err(e) => Err(e),
        }
    }

    /// A message header and the nfgenmsg of `family`.
    fn message(&mut self, kind: u16, flags: u16, family: Family) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut m = Vec::with_capacity(128);
        m.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `send`
        m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | kind).to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.push(match family {
            Family::V4 => 2,  // AF_INET
            Family::V6 => 10, // AF_INET6
        });
        m.push(0); // NFNETLINK_V0
        m.extend_from_slice(&0u16.to_be_bytes());
        m
    }

    fn send(&mut self, mut msg: Vec<u8>, what: &str) -> Result<u32, Error> {
        let len = msg.len() as u32;
        msg[..4].copy_from_slice(&len.to_ne_bytes());
        loop {
            match self.socket.send(&msg, 0) {
                Ok(_) => return Ok(self.seq),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(what, e)),
            }
        }
    }

    /// Reads the answers to `seq` until `NLMSG_DONE` or an acknowledgement, handing every other
    /// message (type, payload) to `each`.
    fn receive(&mut self, seq: u32, what: &str, mut each: impl FnMut(u16, &[u8])) -> Result<(), Error> {
        loop {
            self.buf.clear();
            loop {
                match self.socket.recv(&mut self.buf, 0) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_error(what, e)),
                }
            }
            let mut off = 0;
            while off + 16 <= self.buf.len() {
                let b = &self.buf[off..];
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < 16 || len > b.len() {
                    break;
                }
                let ty = u16::from_ne_bytes([b[4], b[5]]);
                let msg_seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                let payload = &b[16..len];
                off += align4(len);
                if msg_seq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR if payload.len() >= 4 => {
                        let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        if code == 0 {
                            return Ok(());
                        }
                        return Err(io_error(what, io::Error::from_raw_os_error(-code)));
                    }
                    _ => each(ty, payload),
                }
            }
        }
    }
}

/// Appends an attribute (padded to 4 bytes).
fn attr(m: &mut Vec<u8>, ty: u16, data: &[u8]) {
    m.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(data);
    m.resize(align4(m.len()), 0);
}

/// Appends a nested attribute whose content `f` writes.
fn nested(m: &mut Vec<u8>, ty: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let start = m.len();
    m.extend_from_slice(&[0; 4]);
    f(m);
    let len = (m.len() - start) as u16;
    m[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    m[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
}

fn put_tuple(m: &mut Vec<u8>, t: &Tuple) {
    nested(m, CTA_TUPLE_IP, |m| match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            attr(m, CTA_IP_V4_SRC, &s.octets());
            attr(m, CTA_IP_V4_DST, &d.octets());
        }
        (s, d) => {
            attr(m, CTA_IP_V6_SRC, &v6(s).octets());
            attr(m, CTA_IP_V6_DST, &v6(d).octets());
        }
    });
    nested(m, CTA_TUPLE_PROTO, |m| {
        attr(m, CTA_PROTO_NUM, &[t.proto]);
        attr(m, CTA_PROTO_SRC_PORT, &t.src_port.to_be_bytes());
        attr(m, CTA_PROTO_DST_PORT, &t.dst_port.to_be_bytes());
    });
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The attributes in `data`: (type without flags, payload).
fn attrs(data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= data.len() {
        let len = u16::from_ne_bytes([data[off], data[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([data[off + 2], data[off + 3]]) & NLA_TYPE_MASK;
        if len < 4 || off + len > data.len() {
            break;
        }
        out.push((ty, &data[off + 4..off + len]));
        off += align4(len);
    }
    out
}

fn ip_of(data: &[u8]) -> Option<IpAddr> {
    match data.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?))),
        _ => None,
    }
}

fn be16(data: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(..2)?.try_into().ok()?))
}

fn parse_tuple(data: &[u8]) -> Option<Tuple> {
    let (mut src, mut dst, mut proto, mut src_port, mut dst_port) = (None, None, None, 0, 0);
    for (ty, payload) in attrs(data) {
        match ty {
            CTA_TUPLE_IP => {
                for (ty, p) in attrs(payload) {
                    match ty {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = ip_of(p),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = ip_of(p),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (ty, p) in attrs(payload) {
                    match ty {
                        CTA_PROTO_NUM => proto = p.first().copied(),
                        CTA_PROTO_SRC_PORT => src_port = be16(p).unwrap_or(0),
                        CTA_PROTO_DST_PORT => dst_port = be16(p).unwrap_or(0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Tuple { src: src?, dst: dst?, proto: proto?, src_port, dst_port })
}

/// A conntrack entry from the attributes of an `IPCTNL_MSG_CT_NEW` message.
fn parse_flow(data: &[u8]) -> Option<Flow> {
    let (mut orig, mut reply, mut zone, mut id) = (None, None, None, None);
    for (ty, payload) in attrs(data) {
        match ty {
            CTA_TUPLE_ORIG => orig = parse_tuple(payload),
            CTA_TUPLE_REPLY => reply = parse_tuple(payload),
            CTA_ZONE => zone = be16(payload),
            CTA_ID => id = payload.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes),
            _ => {}
        }
    }
    Some(Flow { orig: orig?, reply: reply?, zone, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        let t = |s: &str, d: &str, sp, dp| Tuple {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            proto: IPPROTO_UDP,
            src_port: sp,
            dst_port: dp,
        };
        Flow {
            orig: t("10.250.2.2", "10.96.0.53", 40000, 53),
            reply: t("10.250.1.5", "10.250.2.2", 5353, 40000),
            zone: Some(7),
            id: Some(0xdeadbeef),
        }
    }

    #[test]
    fn tuples_round_trip_through_attributes() {
        let f = flow();
        let mut m = Vec::new();
        nested(&mut m, CTA_TUPLE_ORIG, |m| put_tuple(m, &f.orig));
        nested(&mut m, CTA_TUPLE_REPLY, |m| put_tuple(m, &f.reply));
        attr(&mut m, CTA_ZONE, &7u16.to_be_bytes());
        attr(&mut m, CTA_ID, &0xdeadbeefu32.to_be_bytes());
        assert_eq!(m.len() % 4, 0);
        assert_eq!(parse_flow(&m), Some(f));
        // The protocol number is one byte padded to four: 4 (header) + 1, aligned to 8.
        let mut p = Vec::new();
        attr(&mut p, CTA_PROTO_NUM, &[17]);
        assert_eq!((p.len(), u16::from_ne_bytes([p[0], p[1]]), p[4]), (8, 5, 17));
    }

    #[test]
    fn ipv6_tuples() {
        let t = Tuple {
            src: "fd00::2".parse().unwrap(),
            dst: "fd00:96::a".parse().unwrap(),
            proto: IPPROTO_UDP,
            src_port: 1,
            dst_port: 2,
        };
        let mut m = Vec::new();
        put_tuple(&mut m, &t);
        assert_eq!(parse_tuple(&m), Some(t));
    }
}
