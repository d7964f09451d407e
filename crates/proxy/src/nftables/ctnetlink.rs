//! Reading and deleting conntrack entries over ctnetlink (`NETLINK_NETFILTER`, subsystem
//! `CTNETLINK`), what `conntrack -L` and `conntrack -D` do: a dump of one address family's
//! table, then one delete request per entry, naming it by its original tuple, zone and id (so an
//! entry replaced in the meantime is left alone). The socket is opened in the calling thread's
//! network namespace.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr as NetlinkAddr};

use super::conntrack::Flow;
use super::family::Family;
use crate::Error;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const ENOENT: i32 = 2;

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

/// One conntrack entry: what decides whether it is stale, and how to name it in a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtEntry {
    pub flow: Flow,
    /// The address family (`AF_INET`, `AF_INET6`).
    family: u8,
    /// The attributes that name it in a delete request (original tuple, zone, id), as dumped.
    key: Vec<u8>,
}

/// The netlink attributes of `buf`: (type without flags, payload, the whole attribute).
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8], &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        let (whole, rest) = buf.split_at(((len + 3) & !3).min(buf.len()));
        buf = rest;
        Some((kind, &whole[4..len], &whole[..len]))
    })
}

fn find(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(buf).find(|(k, _, _)| *k == kind).map(|(_, payload, _)| payload)
}

/// Appends an attribute (padded to 4 bytes).
#[cfg(test)]
fn push_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize((out.len() + 3) & !3, 0);
}

/// (source, destination, protocol) of a `CTA_TUPLE_*` payload.
fn tuple(buf: &[u8]) -> Option<(SocketAddr, SocketAddr, u8)> {
    let ip = find(buf, CTA_TUPLE_IP)?;
    let (src, dst): (IpAddr, IpAddr) = if let (Some(s), Some(d)) = (find(ip, CTA_IP_V4_SRC), find(ip, CTA_IP_V4_DST)) {
        let v4 = |b: &[u8]| -> Option<IpAddr> { Some(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).into()) };
        (v4(s)?, v4(d)?)
    } else {
        let v6 = |b: &[u8]| -> Option<IpAddr> { Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).into()) };
        (v6(find(ip, CTA_IP_V6_SRC)?)?, v6(find(ip, CTA_IP_V6_DST)?)?)
    };
    let proto = find(buf, CTA_TUPLE_PROTO)?;
    let num = *find(proto, CTA_PROTO_NUM)?.first()?;
    let port = |kind| -> u16 {
        find(proto, kind).and_then(|b| <[u8; 2]>::try_from(b).ok()).map(u16::from_be_bytes).unwrap_or(0)
    };
    Some((SocketAddr::new(src, port(CTA_PROTO_SRC_PORT)), SocketAddr::new(dst, port(CTA_PROTO_DST_PORT)), num))
}

/// Reads one entry from the payload of a ctnetlink message (after its `nfgenmsg`).
fn parse_entry(family: u8, payload: &[u8]) -> Option<CtEntry> {
    let (_, orig_dst, proto) = tuple(find(payload, CTA_TUPLE_ORIG)?)?;
    let (reply_src, _, _) = tuple(find(payload, CTA_TUPLE_REPLY)?)?;
    let mut key = Vec::new();
    for (kind, _, whole) in attrs(payload) {
        if matches!(kind, CTA_TUPLE_ORIG | CTA_ZONE | CTA_ID) {
            key.extend_from_slice(whole);
            key.resize((key.len() + 3) & !3, 0);
        }
    }
    Some(CtEntry { flow: Flow { proto, orig_dst, reply_src }, family, key })
}

/// A ctnetlink request: netlink header, `nfgenmsg` for `family`, attributes.
fn request(kind: u16, flags: u16, seq: u32, family: u8, attributes: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + attributes.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | kind).to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0, 0, 0]);
    out.extend_from_slice(attributes);
    out
}

/// The netlink messages of a datagram: (type, flags, sequence number, payload after the netlink
/// header).
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let flags = u16::from_ne_bytes([buf[6], buf[7]]);
        let seq = u32::from_ne_bytes(buf[8..12].try_into().ok()?);
        let (whole, rest) = buf.split_at(((len + 3) & !3).min(buf.len()));
        buf = rest;
        Some((kind, flags, seq, &whole[NLMSG_HDRLEN..len]))
    })
}

/// The errno of an `NLMSG_ERROR` payload (0 for an acknowledgement).
fn error_code(payload: &[u8]) -> i32 {
    payload.get(..4).map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes"))).unwrap_or(0)
}

/// A ctnetlink socket in the calling thread's network namespace.
pub struct Conntrack {
    socket: Socket,
    seq: u32,
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

impl Conntrack {
    /// Opens the socket.
    pub fn open() -> Result<Conntrack, Error> {
        let what = "open a ctnetlink socket";
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io_error(what))?;
        socket.bind_auto().map_err(io_error(what))?;
        socket.connect(&NetlinkAddr::new(0, 0)).map_err(io_error(what))?;
        Ok(Conntrack { socket, seq: 0 })
    }

    fn send(&mut self, kind: u16, flags: u16, family: u8, attributes: &[u8], what: &str) -> Result<u32, Error> {
        self.seq = self.seq.wrapping_add(1);
        let msg = request(kind, flags, self.seq, family, attributes);
        self.socket.send(&msg, 0).map_err(io_error(what))?;
        Ok(self.seq)
    }

    /// All entries of `family`.
    pub fn dump(&mut self, family: Family) -> Result<Vec<CtEntry>, Error> {
        let what = format!("list the {family} conntrack table");
        self.send(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, family.af(), &[], &what)?;
        let mut entries = Vec::new();
        loop {
            let (buf, _) = self.socket.recv_from_full().map_err(io_error(what.as_str()))?;
            if buf.is_empty() {
                return Ok(entries);
            }
            for (kind, flags, _, payload) in messages(&buf) {
                match kind {
                    NLMSG_DONE => return Ok(entries),
                    NLMSG_ERROR => {
                        let code = error_code(payload);
                        if code != 0 {
                            return Err(Error::Io { what, source: io::Error::from_raw_os_error(-code) });
                        }
                        return Ok(entries);
                    }
                    _ if kind >> 8 == NFNL_SUBSYS_CTNETLINK && payload.len() >= NFGENMSG_LEN => {
                        entries.extend(parse_entry(payload[0], &payload[NFGENMSG_LEN..]));
                        if flags & NLM_F_MULTI == 0 {
                            return Ok(entries);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Deletes `entry`; an entry already gone is not an error. Returns whether it was deleted.
    pub fn delete(&mut self, entry: &CtEntry) -> Result<bool, Error> {
        let what = format!("delete conntrack entry to {} from {}", entry.flow.orig_dst, entry.flow.reply_src);
        let seq = self.send(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, entry.family, &entry.key, &what)?;
        loop {
            let (buf, _) = self.socket.recv_from_full().map_err(io_error(what.as_str()))?;
            for (kind, _, msg_seq, payload) in messages(&buf) {
                if kind != NLMSG_ERROR || msg_seq != seq {
                    continue;
                }
                return match -error_code(payload) {
                    0 => Ok(true),
                    ENOENT => Ok(false),
                    errno => Err(Error::Io { what, source: io::Error::from_raw_os_error(errno) }),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NLA_F_NESTED: u16 = 0x8000;

    fn nested(kind: u16, inner: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_attr(&mut out, kind | NLA_F_NESTED, inner);
        out
    }

    fn tuple_attr(kind: u16, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut ip = Vec::new();
        push_attr(&mut ip, CTA_IP_V4_SRC, &src);
        push_attr(&mut ip, CTA_IP_V4_DST, &dst);
        let mut proto = Vec::new();
        push_attr(&mut proto, CTA_PROTO_NUM, &[17]);
        push_attr(&mut proto, CTA_PROTO_SRC_PORT, &sport.to_be_bytes());
        push_attr(&mut proto, CTA_PROTO_DST_PORT, &dport.to_be_bytes());
        let mut inner = nested(CTA_TUPLE_IP, &ip);
        inner.extend(nested(CTA_TUPLE_PROTO, &proto));
        nested(kind, &inner)
    }

    #[test]
    fn parses_a_dumped_entry_and_keeps_its_key() {
        let orig = tuple_attr(CTA_TUPLE_ORIG, [10, 250, 0, 20], [10, 96, 0, 10], 40000, 53);
        let reply = tuple_attr(CTA_TUPLE_REPLY, [10, 250, 0, 11], [10, 250, 0, 20], 5353, 40000);
        let mut payload = orig.clone();
        payload.extend(&reply);
        push_attr(&mut payload, CTA_ID, &7u32.to_be_bytes());
        push_attr(&mut payload, 3 /* CTA_STATUS */, &0u32.to_be_bytes());
        let mut msg = request(IPCTNL_MSG_CT_GET, NLM_F_MULTI, 1, 2, &payload);
        msg.extend(request(0, 0, 1, 0, &[])[..NLMSG_HDRLEN].iter().enumerate().map(|(i, b)| match i {
            0..=3 => (NLMSG_HDRLEN as u32).to_ne_bytes()[i],
            4 | 5 => NLMSG_DONE.to_ne_bytes()[i - 4],
            _ => *b,
        }));
        let msgs: Vec<_> = messages(&msg).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].0, NLMSG_DONE);
        let (kind, _, _, body) = msgs[0];
        assert_eq!(kind, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET);
        let entry = parse_entry(body[0], &body[NFGENMSG_LEN..]).unwrap();
        assert_eq!(entry.family, 2);
        assert_eq!(entry.flow.proto, 17);
        assert_eq!(entry.flow.orig_dst, "10.96.0.10:53".parse().unwrap());
        assert_eq!(entry.flow.reply_src, "10.250.0.11:5353".parse().unwrap());
        // The delete names the entry by its original tuple and id, not its reply or status.
        let mut key = orig;
        push_attr(&mut key, CTA_ID, &7u32.to_be_bytes());
        assert_eq!(entry.key, key);
    }

    #[test]
    fn truncated_input_is_ignored() {
        assert_eq!(attrs(&[8, 0, 1]).count(), 0);
        assert_eq!(attrs(&[200, 0, 1, 0, 0, 0, 0, 0]).count(), 0);
        assert_eq!(messages(&[0; 8]).count(), 0);
        assert!(parse_entry(2, &[]).is_none());
    }
}
