//! nftables over netlink (`NETLINK_NETFILTER`), without running the `nft` program: what the
//! plugin's hot path (ipMasq on every ADD and DEL) needs — tables, base chains, rules made of a
//! few expressions (meta, payload, bitwise, cmp, masq) with a comment, listing the rules of a
//! table, deleting rules by handle. Changes go in one batch (`NFNL_MSG_BATCH_BEGIN` … `END`), which
//! the kernel applies atomically, as `nft -f` does. The rules are encoded exactly as `nft` 1.0
//! encodes the same rule text (see [`match_addr`]), so `nft list ruleset` shows them as if they
//! had been added with `nft`, and the comment is libnftnl's user data (`NFTNL_UDATA_RULE_COMMENT`).
//!
//! Running `nft` costs a process start and a dump of the ruleset into its cache per call (once per
//! ADD, twice per DEL); this is one socket and one or two round trips.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{CniError, CniResult};
use crate::nft::RuleRef;

// Netlink.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
/// `NLM_F_ACK_TLVS` on an error message: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLM_F_CAPPED`: the error message carries only the request's header.
const NLM_F_CAPPED: u16 = 0x100;
const MSG_DONTWAIT: i32 = 0x40;

// nfnetlink.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;

/// One netlink message read back: (type, flags, sequence number, payload).
type Message = (u16, u16, u32, Vec<u8>);

/// `NFPROTO_INET`.
pub const FAMILY_INET: u8 = 1;
/// `NF_INET_POST_ROUTING`.
pub const HOOK_POSTROUTING: u32 = 4;
/// `NF_ACCEPT`.
const POLICY_ACCEPT: u32 = 1;

// Attributes.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
/// libnftnl's user-data type of a rule comment.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// `NFT_REG_1`, the register `nft` uses for these matches.
const REG_1: u32 = 1;
/// `NFT_META_NFPROTO`.
const META_NFPROTO: u32 = 15;
/// `NFT_PAYLOAD_NETWORK_HEADER`.
const PAYLOAD_NETWORK: u32 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
}

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load nfproto => reg 1`.
    MetaNfproto,
    /// `payload load LEN @ network header + OFFSET => reg 1`.
    Payload { offset: u32, len: u32 },
    /// `bitwise reg 1 = (reg 1 & MASK) ^ 0`.
    Bitwise { mask: Vec<u8> },
    /// `cmp OP reg 1 DATA`.
    Cmp { op: CmpOp, data: Vec<u8> },
    /// `masq`.
    Masq,
}

fn addr_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `ip saddr A` / `ip6 saddr A` in an inet table: the family check, then the address.
pub fn match_family(ip: IpAddr) -> Vec<Expr> {
    let proto = if ip.is_ipv4() { NFPROTO_IPV4 } else { NFPROTO_IPV6 };
    vec![Expr::MetaNfproto, Expr::Cmp { op: CmpOp::Eq, data: vec![proto] }]
}

/// The source (`source` true) or destination address against `net`, as `nft` encodes
/// `ip saddr 10.1.2.5`, `ip daddr != 10.1.2.0/24` or `ip daddr != 224.0.0.0/4`: a prefix on a
/// byte boundary loads and compares only its bytes; any other prefix loads the whole address and
/// masks it. (The family check of [`match_family`] must come first.)
pub fn match_addr(source: bool, net: IpNet, op: CmpOp) -> Vec<Expr> {
    let v4 = net.addr().is_ipv4();
    let offset = match (v4, source) {
        (true, true) => 12,
        (true, false) => 16,
        (false, true) => 8,
        (false, false) => 24,
    };
    let bytes = addr_bytes(net.trunc().addr());
    let prefix = net.prefix_len() as usize;
    if prefix.is_multiple_of(8) && prefix > 0 {
        let n = prefix / 8;
        return vec![Expr::Payload { offset, len: n as u32 }, Expr::Cmp { op, data: bytes[..n].to_vec() }];
    }
    vec![
        Expr::Payload { offset, len: bytes.len() as u32 },
        Expr::Bitwise { mask: addr_bytes(net.netmask()) },
        Expr::Cmp { op, data: bytes },
    ]
}

/// A netlink message under construction: attributes are appended to `buf`.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    /// Header (length filled in by [`Msg::finish`]) and `nfgenmsg`.
    fn new(ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Msg { buf }
    }

    fn nft(msg: u16, flags: u16, seq: u32, family: u8) -> Msg {
        Msg::new((NFNL_SUBSYS_NFTABLES << 8) | msg, flags, seq, family, 0)
    }

    fn attr(&mut self, ty: u16, value: &[u8]) -> &mut Self {
        put_attr(&mut self.buf, ty, value);
        self
    }

    fn str(&mut self, ty: u16, value: &str) -> &mut Self {
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v)
    }

    fn u32(&mut self, ty: u16, value: u32) -> &mut Self {
        self.attr(ty, &value.to_be_bytes())
    }

    fn nested(&mut self, ty: u16, inner: &[u8]) -> &mut Self {
        put_attr(&mut self.buf, ty | NLA_F_NESTED, inner);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn put_attr(buf: &mut Vec<u8>, ty: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(value);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn nested(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    build(&mut v);
    v
}

fn str_bytes(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn data_value(bytes: &[u8]) -> Vec<u8> {
    nested(|b| put_attr(b, NFTA_DATA_VALUE, bytes))
}

/// The `NFTA_EXPR_DATA` of an expression.
fn expr_data(e: &Expr) -> (&'static str, Vec<u8>) {
    let be = |v: u32| v.to_be_bytes();
    match e {
        Expr::MetaNfproto => (
            "meta",
            nested(|b| {
                put_attr(b, 2, &be(META_NFPROTO)); // NFTA_META_KEY
                put_attr(b, 1, &be(REG_1)); // NFTA_META_DREG
            }),
        ),
        Expr::Payload { offset, len } => (
            "payload",
            nested(|b| {
                put_attr(b, 1, &be(REG_1)); // NFTA_PAYLOAD_DREG
                put_attr(b, 2, &be(PAYLOAD_NETWORK)); // NFTA_PAYLOAD_BASE
                put_attr(b, 3, &be(*offset)); // NFTA_PAYLOAD_OFFSET
                put_attr(b, 4, &be(*len)); // NFTA_PAYLOAD_LEN
            }),
        ),
        Expr::Bitwise { mask } => (
            "bitwise",
            nested(|b| {
                put_attr(b, 1, &be(REG_1)); // NFTA_BITWISE_SREG
                put_attr(b, 2, &be(REG_1)); // NFTA_BITWISE_DREG
                put_attr(b, 3, &be(mask.len() as u32)); // NFTA_BITWISE_LEN
                put_attr(b, 4 | NLA_F_NESTED, &data_value(mask)); // NFTA_BITWISE_MASK
                let xor = vec![0; mask.len()];
                put_attr(b, 5 | NLA_F_NESTED, &data_value(&xor)); // NFTA_BITWISE_XOR
            }),
        ),
        Expr::Cmp { op, data } => (
            "cmp",
            nested(|b| {
                put_attr(b, 1, &be(REG_1)); // NFTA_CMP_SREG
                put_attr(b, 2, &be(if *op == CmpOp::Eq { 0 } else { 1 })); // NFTA_CMP_OP
                put_attr(b, 3 | NLA_F_NESTED, &data_value(data)); // NFTA_CMP_DATA
            }),
        ),
        Expr::Masq => ("masq", Vec::new()),
    }
}

fn expressions(exprs: &[Expr]) -> Vec<u8> {
    nested(|list| {
        for e in exprs {
            let (name, data) = expr_data(e);
            let elem = nested(|b| {
                put_attr(b, NFTA_EXPR_NAME, &str_bytes(name));
                put_attr(b, NFTA_EXPR_DATA | NLA_F_NESTED, &data);
            });
            put_attr(list, NFTA_LIST_ELEM | NLA_F_NESTED, &elem);
        }
    })
}

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `add table FAMILY NAME` (no error if it exists).
    AddTable { family: u8, name: String },
    /// `add chain FAMILY TABLE NAME { type TYPE hook HOOK priority PRIORITY; policy accept; }`.
    AddBaseChain { family: u8, table: String, name: String, chain_type: String, hook: u32, priority: i32 },
    /// `add rule FAMILY TABLE CHAIN EXPRS comment "COMMENT"`.
    AddRule { family: u8, table: String, chain: String, exprs: Vec<Expr>, comment: String },
    /// `delete rule FAMILY TABLE CHAIN handle HANDLE`.
    DeleteRule { family: u8, table: String, chain: String, handle: u64 },
}

impl Change {
    fn message(&self, seq: u32, ack: bool) -> Vec<u8> {
        let base = if ack { NLM_F_REQUEST | NLM_F_ACK } else { NLM_F_REQUEST };
        match self {
            Change::AddTable { family, name } => {
                let mut m = Msg::nft(NFT_MSG_NEWTABLE, base | NLM_F_CREATE, seq, *family);
                m.str(NFTA_TABLE_NAME, name).u32(NFTA_TABLE_FLAGS, 0);
                m.finish()
            }
            Change::AddBaseChain { family, table, name, chain_type, hook, priority } => {
                let mut m = Msg::nft(NFT_MSG_NEWCHAIN, base | NLM_F_CREATE, seq, *family);
                let hook = nested(|b| {
                    put_attr(b, NFTA_HOOK_HOOKNUM, &hook.to_be_bytes());
                    put_attr(b, NFTA_HOOK_PRIORITY, &priority.to_be_bytes());
                });
                m.str(NFTA_CHAIN_TABLE, table)
                    .str(NFTA_CHAIN_NAME, name)
                    .str(NFTA_CHAIN_TYPE, chain_type)
                    .u32(NFTA_CHAIN_POLICY, POLICY_ACCEPT)
                    .nested(NFTA_CHAIN_HOOK, &hook);
                m.finish()
            }
            Change::AddRule { family, table, chain, exprs, comment } => {
                let mut m = Msg::nft(NFT_MSG_NEWRULE, base | NLM_F_CREATE | NLM_F_APPEND, seq, *family);
                m.str(NFTA_RULE_TABLE, table)
                    .str(NFTA_RULE_CHAIN, chain)
                    .nested(NFTA_RULE_EXPRESSIONS, &expressions(exprs));
                if !comment.is_empty() {
                    let c = str_bytes(comment);
                    let mut udata = vec![NFTNL_UDATA_RULE_COMMENT, c.len().min(255) as u8];
                    udata.extend_from_slice(&c[..c.len().min(255)]);
                    m.attr(NFTA_RULE_USERDATA, &udata);
                }
                m.finish()
            }
            Change::DeleteRule { family, table, chain, handle } => {
                let mut m = Msg::nft(NFT_MSG_DELRULE, base, seq, *family);
                m.str(NFTA_RULE_TABLE, table).str(NFTA_RULE_CHAIN, chain).attr(NFTA_RULE_HANDLE, &handle.to_be_bytes());
                m.finish()
            }
        }
    }
}

/// The family's name as `nft` prints it.
pub fn family_name(family: u8) -> &'static str {
    match family {
        1 => "inet",
        2 => "ip",
        10 => "ip6",
        3 => "arp",
        7 => "bridge",
        5 => "netdev",
        _ => "unknown",
    }
}

/// A `NETLINK_NETFILTER` socket.
pub struct Nft {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn io_err(what: &str, e: io::Error) -> CniError {
    CniError::Nftables(format!("nftables: {what}: {e}"))
}

impl Nft {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> CniResult<Nft> {
        let mut socket =
            Socket::new(NETLINK_NETFILTER).map_err(|e| io_err("cannot open a netfilter netlink socket", e))?;
        socket.bind_auto().map_err(|e| io_err("bind", e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| io_err("connect", e))?;
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        Ok(Nft { socket, seq: std::process::id().wrapping_mul(1000), buf: Vec::with_capacity(64 * 1024) })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Applies `changes` in one transaction: all of them, or none and the first error.
    pub fn apply(&mut self, changes: &[Change]) -> CniResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let begin_seq = self.next_seq();
        let mut out = Msg::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin_seq, 0, NFNL_SUBSYS_NFTABLES).finish();
        let first = begin_seq.wrapping_add(1);
        for (i, c) in changes.iter().enumerate() {
            let seq = self.next_seq();
            out.extend(c.message(seq, i == changes.len() - 1));
        }
        let end_seq = self.next_seq();
        out.extend(Msg::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end_seq, 0, NFNL_SUBSYS_NFTABLES).finish());
        self.send(&out)?;
        // The kernel handles the whole batch inside the send, so every answer is queued when it
        // returns: an error for each change that failed (whatever its flags), the ack of the last
        // change (the only one asking for an ack, so that a big batch cannot overflow the
        // socket's buffer with acks), and an error for the batch if the commit failed.
        let mut last_answered = false;
        let mut error: Option<(usize, String)> = None;
        loop {
            let msgs = self.recv(true)?;
            if msgs.is_empty() {
                break;
            }
            for (ty, flags, seq, payload) in msgs {
                if ty != NLMSG_ERROR || payload.len() < 4 {
                    continue;
                }
                let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let idx = if seq == begin_seq || seq == end_seq {
                    usize::MAX
                } else {
                    match seq.wrapping_sub(first) as usize {
                        i if i < changes.len() => i,
                        _ => continue,
                    }
                };
                if idx == changes.len() - 1 {
                    last_answered = true;
                }
                if code != 0 && error.as_ref().is_none_or(|(i, _)| idx < *i) {
                    error = Some((idx, describe(code, flags, &payload[4..])));
                }
            }
        }
        match error {
            Some((idx, msg)) => Err(CniError::Nftables(match changes.get(idx) {
                Some(c) => format!("nftables: {}: {msg}", change_text(c)),
                None => format!("nftables: the transaction failed: {msg}"),
            })),
            None if !last_answered => {
                Err(CniError::Nftables("nftables: the kernel did not answer the transaction".into()))
            }
            None => Ok(()),
        }
    }

    /// The rules of table `table` of `family` (none when the table does not exist).
    pub fn rules(&mut self, family: u8, table: &str) -> CniResult<Vec<RuleRef>> {
        let seq = self.next_seq();
        let mut m = Msg::nft(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq, family);
        m.str(NFTA_RULE_TABLE, table);
        self.send(&m.finish())?;
        let mut out = Vec::new();
        loop {
            let msgs = self.recv(false)?;
            for (ty, flags, mseq, payload) in msgs {
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = payload.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if code == 0 {
                            return Ok(out);
                        }
                        // ENOENT: no such table.
                        if code == -2 {
                            return Ok(Vec::new());
                        }
                        return Err(CniError::Nftables(format!(
                            "nftables: list rules of table {} {table}: {}",
                            family_name(family),
                            describe(code, flags, &payload[4..])
                        )));
                    }
                    _ if payload.len() >= 4 => {
                        let fam = payload[0];
                        if let Some(r) = parse_rule(fam, &payload[4..]) {
                            if r.table == table {
                                out.push(r);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn send(&mut self, buf: &[u8]) -> CniResult<()> {
        loop {
            match self.socket.send(buf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("send", e)),
            }
        }
    }

    /// Reads one datagram: its messages as (type, flags, seq, payload). With `nowait`, an empty
    /// list when nothing is queued.
    fn recv(&mut self, nowait: bool) -> CniResult<Vec<Message>> {
        self.buf.clear();
        let len = loop {
            match self.socket.recv(&mut self.buf, if nowait { MSG_DONTWAIT } else { 0 }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Vec::new()),
                Err(e) => return Err(io_err("receive", e)),
            }
        };
        let mut rest = &self.buf[..len.min(self.buf.len())];
        let mut out = Vec::new();
        while rest.len() >= 16 {
            let mlen = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if mlen < 16 || mlen > rest.len() {
                break;
            }
            let ty = u16::from_ne_bytes([rest[4], rest[5]]);
            let flags = u16::from_ne_bytes([rest[6], rest[7]]);
            let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
            out.push((ty, flags, seq, rest[16..mlen].to_vec()));
            rest = &rest[((mlen + 3) & !3).min(rest.len())..];
        }
        Ok(out)
    }
}

/// Attributes of a message payload: (type without flags, value).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

fn c_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
}

/// A rule message (after `nfgenmsg`).
fn parse_rule(family: u8, payload: &[u8]) -> Option<RuleRef> {
    let (mut table, mut chain, mut handle, mut comment) = (None, None, None, String::new());
    for (ty, v) in attrs(payload) {
        match ty {
            NFTA_RULE_TABLE => table = Some(c_string(v)),
            NFTA_RULE_CHAIN => chain = Some(c_string(v)),
            NFTA_RULE_HANDLE if v.len() == 8 => handle = Some(u64::from_be_bytes(v.try_into().ok()?)),
            NFTA_RULE_USERDATA => {
                let mut u = v;
                while u.len() >= 2 {
                    let (t, l) = (u[0], u[1] as usize);
                    if 2 + l > u.len() {
                        break;
                    }
                    if t == NFTNL_UDATA_RULE_COMMENT {
                        comment = c_string(&u[2..2 + l]);
                    }
                    u = &u[2 + l..];
                }
            }
            _ => {}
        }
    }
    Some(RuleRef { family: family_name(family).into(), table: table?, chain: chain?, handle: handle?, comment })
}

/// An error answer: errno text and the kernel's extended-ack message, if any.
fn describe(code: i32, flags: u16, rest: &[u8]) -> String {
    let errno = io::Error::from_raw_os_error(code.abs());
    let mut msg = errno.to_string();
    if flags & NLM_F_ACK_TLVS != 0 && rest.len() >= 16 {
        let req_len = if flags & NLM_F_CAPPED != 0 {
            16
        } else {
            u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize
        };
        if let Some(tlvs) = rest.get(((req_len + 3) & !3)..) {
            if let Some((_, m)) = attrs(tlvs).into_iter().find(|(t, _)| *t == 1) {
                msg += &format!(" ({})", c_string(m));
            }
        }
    }
    msg
}

/// A change as `nft` syntax, for error messages.
fn change_text(c: &Change) -> String {
    match c {
        Change::AddTable { family, name } => format!("add table {} {name}", family_name(*family)),
        Change::AddBaseChain { family, table, name, .. } => {
            format!("add chain {} {table} {name}", family_name(*family))
        }
        Change::AddRule { family, table, chain, comment, .. } => {
            format!("add rule {} {table} {chain} … comment {comment:?}", family_name(*family))
        }
        Change::DeleteRule { family, table, chain, handle } => {
            format!("delete rule {} {table} {chain} handle {handle}", family_name(*family))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_matches_are_encoded_as_nft_does() {
        // ip saddr 10.1.2.5
        assert_eq!(
            match_addr(true, "10.1.2.5/32".parse().unwrap(), CmpOp::Eq),
            vec![Expr::Payload { offset: 12, len: 4 }, Expr::Cmp { op: CmpOp::Eq, data: vec![10, 1, 2, 5] }]
        );
        // ip daddr != 10.1.2.0/24: three bytes.
        assert_eq!(
            match_addr(false, "10.1.2.5/24".parse().unwrap(), CmpOp::Neq),
            vec![Expr::Payload { offset: 16, len: 3 }, Expr::Cmp { op: CmpOp::Neq, data: vec![10, 1, 2] }]
        );
        // ip daddr != 224.0.0.0/4: the whole address, masked.
        assert_eq!(
            match_addr(false, "224.0.0.0/4".parse().unwrap(), CmpOp::Neq),
            vec![
                Expr::Payload { offset: 16, len: 4 },
                Expr::Bitwise { mask: vec![0xf0, 0, 0, 0] },
                Expr::Cmp { op: CmpOp::Neq, data: vec![0xe0, 0, 0, 0] }
            ]
        );
        // ip6 daddr != fd00::/64, ip6 saddr fd00::5, ip6 daddr != ff00::/8.
        let v6 = match_addr(false, "fd00::5/64".parse().unwrap(), CmpOp::Neq);
        assert_eq!(v6[0], Expr::Payload { offset: 24, len: 8 });
        assert_eq!(v6[1], Expr::Cmp { op: CmpOp::Neq, data: vec![0xfd, 0, 0, 0, 0, 0, 0, 0] });
        assert_eq!(
            match_addr(true, "fd00::5/128".parse().unwrap(), CmpOp::Eq)[0],
            Expr::Payload { offset: 8, len: 16 }
        );
        assert_eq!(
            match_addr(false, "ff00::/8".parse().unwrap(), CmpOp::Neq),
            vec![Expr::Payload { offset: 24, len: 1 }, Expr::Cmp { op: CmpOp::Neq, data: vec![0xff] }]
        );
        // A /0 is masked too (as nft does).
        assert_eq!(match_addr(false, "0.0.0.0/0".parse().unwrap(), CmpOp::Neq).len(), 3);
    }

    #[test]
    fn rule_message_layout() {
        let c = Change::AddRule {
            family: FAMILY_INET,
            table: "podnet_masq".into(),
            chain: "postrouting".into(),
            exprs: vec![Expr::Masq],
            comment: "podnet:x:y".into(),
        };
        let m = c.message(7, true);
        assert_eq!(u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), (10 << 8) | 6);
        assert_eq!(m[16], FAMILY_INET);
        // The comment is libnftnl's user data: type 0, length with the NUL, the text.
        let attrs = attrs(&m[20..]);
        let udata = attrs.iter().find(|(t, _)| *t == NFTA_RULE_USERDATA).unwrap().1;
        assert_eq!(udata, b"\x00\x0bpodnet:x:y\x00");
        // Parsing a rule back (as the kernel sends it, with a handle).
        let mut back = m[20..].to_vec();
        put_attr(&mut back, NFTA_RULE_HANDLE, &42u64.to_be_bytes());
        let r = parse_rule(FAMILY_INET, &back).unwrap();
        assert_eq!((r.family.as_str(), r.table.as_str(), r.chain.as_str()), ("inet", "podnet_masq", "postrouting"));
        assert_eq!((r.handle, r.comment.as_str()), (42, "podnet:x:y"));
    }

    #[test]
    fn error_text() {
        assert!(describe(-2, 0, &[]).contains("No such file or directory"));
        let mut rest = vec![0u8; 16];
        put_attr(&mut rest, 1, b"Unknown chain\0");
        assert!(describe(-2, NLM_F_ACK_TLVS | NLM_F_CAPPED, &rest).contains("(Unknown chain)"));
    }
}
