//! Encoding: [`MsgBuf`], a buffer of nf_tables netlink messages written in place — message
//! headers with `nfgenmsg`, attributes (strings, big-endian numbers, nests, data values,
//! verdicts), the expressions of a rule as `nft` 1.0 encodes them, and the messages for tables,
//! chains, rules, sets and set elements. Pure: nothing here touches a socket.
//!
//! Messages of a batch are appended one after the other between [`MsgBuf::batch_begin`] and
//! [`MsgBuf::batch_end`]; a rule's expressions are written into a buffer of their own (one
//! `NFTA_LIST_ELEM` each) and handed to [`MsgBuf::new_rule`].

use std::net::IpAddr;

use ipnet::IpNet;

use super::consts::*;

/// A netlink attribute's payload is at most this long (its length is 16 bits): longer element
/// lists are written in several messages.
pub const MAX_ATTR: usize = 60_000;

/// A comparison of a `cmp` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `NFT_CMP_EQ`.
    Eq,
    /// `NFT_CMP_NEQ`.
    Neq,
}

/// A verdict, as a rule's `immediate` or a verdict map's element carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
    /// Any other code (read back from the kernel).
    Other(i32),
}

impl Verdict {
    /// The verdict code and chain.
    pub fn code(&self) -> (i32, Option<&str>) {
        match self {
            Verdict::Accept => (NF_ACCEPT, None),
            Verdict::Drop => (NF_DROP, None),
            Verdict::Return => (NFT_RETURN, None),
            Verdict::Jump(c) => (NFT_JUMP, Some(c)),
            Verdict::Goto(c) => (NFT_GOTO, Some(c)),
            Verdict::Other(code) => (*code, None),
        }
    }

    /// The verdict of a code and chain (a jump or goto without a chain is [`Verdict::Other`]).
    pub fn from_code(code: i32, chain: Option<String>) -> Verdict {
        match (code, chain) {
            (NF_ACCEPT, _) => Verdict::Accept,
            (NF_DROP, _) => Verdict::Drop,
            (NFT_RETURN, _) => Verdict::Return,
            (NFT_JUMP, Some(c)) => Verdict::Jump(c),
            (NFT_GOTO, Some(c)) => Verdict::Goto(c),
            (code, _) => Verdict::Other(code),
        }
    }
}

/// What a base chain hooks into (`type TYPE hook HOOK priority PRIORITY; policy accept;`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseHook<'a> {
    /// `filter`, `nat`, `route`.
    pub chain_type: &'a str,
    /// `NF_INET_*` ([`HOOK_PREROUTING`], …).
    pub hook: u32,
    /// The priority.
    pub priority: i32,
}

/// The hook number of a hook name (`prerouting`, `input`, `forward`, `output`, `postrouting`).
pub fn hook_number(name: &str) -> Option<u32> {
    Some(match name {
        "prerouting" => HOOK_PREROUTING,
        "input" => HOOK_INPUT,
        "forward" => HOOK_FORWARD,
        "output" => HOOK_OUTPUT,
        "postrouting" => HOOK_POSTROUTING,
        _ => return None,
    })
}

/// A set or map to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec<'a> {
    /// Its table.
    pub table: &'a str,
    /// Its name (for an anonymous set, a name unique in the table: `__set%d` lets the kernel
    /// pick one, at the price of a search).
    pub name: &'a str,
    /// `NFT_SET_*` flags.
    pub flags: u32,
    /// The key's data type (nft's `TYPE_*`, concatenations shifted by 6 bits each).
    pub key_type: u32,
    /// The key's length in bytes (each part of a concatenation padded to 4).
    pub key_len: u32,
    /// For a map: the data type and length ([`NFT_DATA_VERDICT`], 0 for a verdict map).
    pub data: Option<(u32, u32)>,
    /// The id that messages of the same batch may name it by.
    pub id: u32,
    /// The default timeout of elements, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The expected number of elements (`NFTA_SET_DESC_SIZE`).
    pub size: Option<u32>,
    /// libnftnl's user data (byte order, merging, concatenation types), as `nft` writes it.
    pub userdata: &'a [u8],
}

/// How set element messages name their set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetRef<'a> {
    /// By name.
    Name(&'a str),
    /// By the id of a set created in the same batch (the kernel then finds it among the sets of
    /// the transaction, without comparing names with every set of the table).
    Id(u32),
}

/// How `nft` matches an address against a prefix: a prefix on a byte boundary loads and compares
/// only its bytes; any other (and `/0`) loads the whole address and masks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixMatch {
    /// How many bytes of the address to load.
    pub load_len: u32,
    /// The mask to apply (the netmask), if any.
    pub mask: Option<Vec<u8>>,
    /// The bytes to compare with.
    pub data: Vec<u8>,
}

/// The bytes of an address.
pub fn addr_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl PrefixMatch {
    /// The match of `net` (a host prefix compares the whole address).
    pub fn of(net: &IpNet) -> PrefixMatch {
        let bytes = addr_bytes(&net.trunc().addr());
        let prefix = usize::from(net.prefix_len());
        if prefix.is_multiple_of(8) && prefix > 0 {
            let n = prefix / 8;
            return PrefixMatch { load_len: n as u32, mask: None, data: bytes[..n].to_vec() };
        }
        PrefixMatch { load_len: bytes.len() as u32, mask: Some(addr_bytes(&net.netmask())), data: bytes }
    }
}

/// The offset of the source (`source`) or destination address in an IPv4 or IPv6 header.
pub fn addr_offset(v4: bool, source: bool) -> u32 {
    match (v4, source) {
        (true, true) => 12,
        (true, false) => 16,
        (false, true) => 8,
        (false, false) => 24,
    }
}

/// A rule comment as libnftnl's user data (`NFTNL_UDATA_RULE_COMMENT`, the text with its NUL,
/// at most 255 bytes).
pub fn comment_udata(comment: &str) -> Vec<u8> {
    let mut c = comment.as_bytes().to_vec();
    c.push(0);
    c.truncate(255);
    let mut out = vec![NFTNL_UDATA_RULE_COMMENT, c.len() as u8];
    out.extend_from_slice(&c);
    out
}

/// A buffer of netlink messages under construction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MsgBuf {
    b: Vec<u8>,
}

impl MsgBuf {
    /// An empty buffer.
    pub fn new() -> MsgBuf {
        MsgBuf::default()
    }

    /// An empty buffer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> MsgBuf {
        MsgBuf { b: Vec::with_capacity(n) }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.b.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    /// The bytes written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.b
    }

    /// Forgets what was written (keeps the allocation).
    pub fn clear(&mut self) {
        self.b.clear();
    }

    /// Appends what `other` holds.
    pub fn append(&mut self, other: &MsgBuf) {
        self.b.extend_from_slice(&other.b);
    }

    /// Starts a message (netlink header, `nfgenmsg`); returns its offset, for [`MsgBuf::end`].
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.b.len();
        self.b.extend_from_slice(&0u32.to_ne_bytes());
        self.b.extend_from_slice(&ty.to_ne_bytes());
        self.b.extend_from_slice(&flags.to_ne_bytes());
        self.b.extend_from_slice(&seq.to_ne_bytes());
        self.b.extend_from_slice(&0u32.to_ne_bytes());
        self.b.push(family);
        self.b.push(0); // NFNETLINK_V0
        self.b.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    /// Starts an nf_tables request `msg` (`NFT_MSG_*`) with `NLM_F_REQUEST | flags`.
    pub fn nft(&mut self, msg: u16, flags: u16, seq: u32, family: u8) -> usize {
        self.begin((NFNL_SUBSYS_NFTABLES << 8) | msg, NLM_F_REQUEST | flags, seq, family, 0)
    }

    /// Ends the message started at `start` (writes its length).
    pub fn end(&mut self, start: usize) {
        let len = (self.b.len() - start) as u32;
        self.b[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// `NFNL_MSG_BATCH_BEGIN` for nf_tables.
    pub fn batch_begin(&mut self, seq: u32) {
        let m = self.begin(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES);
        self.end(m);
    }

    /// `NFNL_MSG_BATCH_END` for nf_tables.
    pub fn batch_end(&mut self, seq: u32) {
        let m = self.begin(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES);
        self.end(m);
    }

    /// The offset of the last complete message.
    pub fn last_message(&self) -> Option<usize> {
        let b = &self.b;
        let (mut at, mut last) = (0, None);
        while at + 16 <= b.len() {
            let len = u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
            if len < 16 {
                break;
            }
            last = Some(at);
            at += (len + 3) & !3;
        }
        last
    }

    /// Adds `flags` to the flags of the message at `at`; returns its sequence number.
    pub fn add_flags(&mut self, at: usize, flags: u16) -> u32 {
        let f = u16::from_ne_bytes([self.b[at + 6], self.b[at + 7]]) | flags;
        self.b[at + 6..at + 8].copy_from_slice(&f.to_ne_bytes());
        u32::from_ne_bytes([self.b[at + 8], self.b[at + 9], self.b[at + 10], self.b[at + 11]])
    }

    /// An attribute.
    pub fn attr(&mut self, ty: u16, value: &[u8]) {
        self.b.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        self.b.extend_from_slice(&ty.to_ne_bytes());
        self.b.extend_from_slice(value);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.b.len().is_multiple_of(4) {
            self.b.push(0);
        }
    }

    /// A string attribute (with its NUL).
    pub fn str(&mut self, ty: u16, s: &str) {
        self.b.extend_from_slice(&((5 + s.len()) as u16).to_ne_bytes());
        self.b.extend_from_slice(&ty.to_ne_bytes());
        self.b.extend_from_slice(s.as_bytes());
        self.b.push(0);
        self.pad();
    }

    /// A big-endian 32-bit attribute.
    pub fn u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// A big-endian 64-bit attribute.
    pub fn u64(&mut self, ty: u16, v: u64) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// Starts a nested attribute; returns its offset, for [`MsgBuf::nest_end`].
    pub fn nest(&mut self, ty: u16) -> usize {
        let start = self.b.len();
        self.b.extend_from_slice(&[0, 0]);
        self.b.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    /// Ends the nested attribute started at `start`.
    pub fn nest_end(&mut self, start: usize) {
        let len = (self.b.len() - start) as u16;
        self.b[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// A nested `NFTA_DATA_VALUE`.
    pub fn value(&mut self, ty: u16, bytes: &[u8]) {
        let n = self.nest(ty);
        self.attr(NFTA_DATA_VALUE, bytes);
        self.nest_end(n);
    }

    /// A nested `NFTA_DATA_VERDICT`.
    pub fn verdict(&mut self, ty: u16, v: &Verdict) {
        let (code, chain) = v.code();
        self.verdict_code(ty, code, chain);
    }

    /// A nested `NFTA_DATA_VERDICT` from its code and chain.
    pub fn verdict_code(&mut self, ty: u16, code: i32, chain: Option<&str>) {
        let n = self.nest(ty);
        let v = self.nest(NFTA_DATA_VERDICT);
        self.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
        if let Some(c) = chain {
            self.str(NFTA_VERDICT_CHAIN, c);
        }
        self.nest_end(v);
        self.nest_end(n);
    }

    // --- expressions (in a buffer of a rule's expressions) -----------------------------------

    /// One expression: `NFTA_LIST_ELEM { NAME, DATA { … } }`.
    pub fn expr(&mut self, name: &str, data: impl FnOnce(&mut MsgBuf)) {
        let e = self.nest(NFTA_LIST_ELEM);
        self.str(NFTA_EXPR_NAME, name);
        let d = self.nest(NFTA_EXPR_DATA);
        data(self);
        self.nest_end(d);
        self.nest_end(e);
    }

    /// `payload load LEN @ BASE + OFFSET => reg DREG`.
    pub fn payload(&mut self, dreg: u32, base: u32, offset: u32, len: u32) {
        self.expr("payload", |b| {
            b.u32(1, dreg); // NFTA_PAYLOAD_DREG
            b.u32(2, base); // NFTA_PAYLOAD_BASE
            b.u32(3, offset); // NFTA_PAYLOAD_OFFSET
            b.u32(4, len); // NFTA_PAYLOAD_LEN
        });
    }

    /// `cmp OP reg SREG DATA`.
    pub fn cmp(&mut self, sreg: u32, op: CmpOp, data: &[u8]) {
        self.expr("cmp", |b| {
            b.u32(1, sreg); // NFTA_CMP_SREG
            b.u32(2, if op == CmpOp::Eq { 0 } else { 1 }); // NFTA_CMP_OP
            b.value(3, data); // NFTA_CMP_DATA
        });
    }

    /// `meta load KEY => reg DREG`.
    pub fn meta_load(&mut self, key: u32, dreg: u32) {
        self.expr("meta", |b| {
            b.u32(2, key); // NFTA_META_KEY
            b.u32(1, dreg); // NFTA_META_DREG
        });
    }

    /// `meta set KEY with reg SREG`.
    pub fn meta_set(&mut self, key: u32, sreg: u32) {
        self.expr("meta", |b| {
            b.u32(2, key); // NFTA_META_KEY
            b.u32(3, sreg); // NFTA_META_SREG
        });
    }

    /// `bitwise reg REG = (reg REG & MASK) ^ XOR`.
    pub fn bitwise(&mut self, reg: u32, mask: &[u8], xor: &[u8]) {
        self.expr("bitwise", |b| {
            b.u32(1, reg); // NFTA_BITWISE_SREG
            b.u32(2, reg); // NFTA_BITWISE_DREG
            b.u32(6, 0); // NFTA_BITWISE_OP: NFT_BITWISE_BOOL (mask and xor)
            b.u32(3, mask.len() as u32); // NFTA_BITWISE_LEN
            b.value(4, mask); // NFTA_BITWISE_MASK
            b.value(5, xor); // NFTA_BITWISE_XOR
        });
    }

    /// `lookup reg SREG set SET [dreg DREG] [inverted]`; `set_id` for a set of the same batch.
    pub fn lookup(&mut self, sreg: u32, set: &str, set_id: Option<u32>, dreg: Option<u32>, invert: bool) {
        self.expr("lookup", |b| {
            b.u32(2, sreg); // NFTA_LOOKUP_SREG
            if let Some(d) = dreg {
                b.u32(3, d); // NFTA_LOOKUP_DREG
            }
            b.str(1, set); // NFTA_LOOKUP_SET
            if let Some(id) = set_id {
                b.u32(4, id); // NFTA_LOOKUP_SET_ID
            }
            if invert {
                b.u32(5, 1); // NFTA_LOOKUP_FLAGS: NFT_LOOKUP_F_INV
            }
        });
    }

    /// `immediate reg 0 VERDICT` (a verdict code and, for a jump or goto, its chain).
    pub fn immediate_verdict(&mut self, code: i32, chain: Option<&str>) {
        self.expr("immediate", |b| {
            b.u32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
            b.verdict_code(2, code, chain); // NFTA_IMMEDIATE_DATA
        });
    }

    /// `immediate reg DREG DATA`.
    pub fn immediate_data(&mut self, dreg: u32, data: &[u8]) {
        self.expr("immediate", |b| {
            b.u32(1, dreg); // NFTA_IMMEDIATE_DREG
            b.value(2, data); // NFTA_IMMEDIATE_DATA
        });
    }

    /// `ct load KEY => reg DREG`.
    pub fn ct_load(&mut self, key: u32, dreg: u32) {
        self.expr("ct", |b| {
            b.u32(2, key); // NFTA_CT_KEY
            b.u32(1, dreg); // NFTA_CT_DREG
        });
    }

    /// `fib FLAGS RESULT => reg DREG`.
    pub fn fib(&mut self, flags: u32, result: u32, dreg: u32) {
        self.expr("fib", |b| {
            b.u32(3, flags); // NFTA_FIB_FLAGS
            b.u32(2, result); // NFTA_FIB_RESULT
            b.u32(1, dreg); // NFTA_FIB_DREG
        });
    }

    /// `numgen reg DREG = TYPE mod MODULUS offset OFFSET`.
    pub fn numgen(&mut self, dreg: u32, modulus: u32, kind: u32, offset: u32) {
        self.expr("numgen", |b| {
            b.u32(1, dreg); // NFTA_NG_DREG
            b.u32(2, modulus); // NFTA_NG_MODULUS
            b.u32(3, kind); // NFTA_NG_TYPE
            b.u32(4, offset); // NFTA_NG_OFFSET
        });
    }

    /// `masq [FLAGS]` (`NF_NAT_RANGE_*`).
    pub fn masq(&mut self, flags: Option<u32>) {
        self.expr("masq", |b| {
            if let Some(f) = flags {
                b.u32(1, f); // NFTA_MASQ_FLAGS
            }
        });
    }

    /// `reject type KIND code CODE`.
    pub fn reject(&mut self, kind: u32, code: u8) {
        self.expr("reject", |b| {
            b.u32(1, kind); // NFTA_REJECT_TYPE
            b.attr(2, &[code]); // NFTA_REJECT_ICMP_CODE
        });
    }

    /// `nat TYPE FAMILY addr reg ADDR proto reg PROTO flags FLAGS`.
    pub fn nat(&mut self, kind: u32, family: u8, addr_reg: u32, proto_reg: Option<u32>, flags: u32) {
        self.expr("nat", |b| {
            b.u32(1, kind); // NFTA_NAT_TYPE
            b.u32(2, u32::from(family)); // NFTA_NAT_FAMILY
            b.u32(3, addr_reg); // NFTA_NAT_REG_ADDR_MIN
            if let Some(p) = proto_reg {
                b.u32(5, p); // NFTA_NAT_REG_PROTO_MIN
            }
            b.u32(7, flags); // NFTA_NAT_FLAGS
        });
    }

    /// `dynset update reg SREG @SET`.
    pub fn dynset_update(&mut self, sreg: u32, set: &str) {
        self.expr("dynset", |b| {
            b.u32(4, sreg); // NFTA_DYNSET_SREG_KEY
            b.u32(3, 1); // NFTA_DYNSET_OP: NFT_DYNSET_OP_UPDATE
            b.str(1, set); // NFTA_DYNSET_SET_NAME
        });
    }

    /// An address at `offset` of the network header against a prefix, as `nft` encodes
    /// `ip saddr 10.1.2.5` or `ip daddr != 10.1.2.0/24` (see [`PrefixMatch`]), in `REG_1`.
    pub fn prefix_match(&mut self, offset: u32, net: &IpNet, op: CmpOp) {
        let m = PrefixMatch::of(net);
        self.payload(REG_1, PAYLOAD_NETWORK, offset, m.load_len);
        if let Some(mask) = &m.mask {
            self.bitwise(REG_1, mask, &vec![0; mask.len()]);
        }
        self.cmp(REG_1, op, &m.data);
    }

    // --- object messages (in a batch) ---------------------------------------------------------

    /// `add table FAMILY NAME` (no error if it exists).
    pub fn new_table(&mut self, seq: u32, family: u8, name: &str) {
        let m = self.nft(NFT_MSG_NEWTABLE, NLM_F_CREATE, seq, family);
        self.str(NFTA_TABLE_NAME, name);
        self.u32(NFTA_TABLE_FLAGS, 0);
        self.end(m);
    }

    /// `delete table FAMILY NAME`.
    pub fn del_table(&mut self, seq: u32, family: u8, name: &str) {
        let m = self.nft(NFT_MSG_DELTABLE, 0, seq, family);
        self.str(NFTA_TABLE_NAME, name);
        self.end(m);
    }

    /// `add chain FAMILY TABLE NAME [{ type … hook … priority …; policy accept; }]`.
    pub fn new_chain(&mut self, seq: u32, family: u8, table: &str, name: &str, base: Option<BaseHook<'_>>) {
        let m = self.nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE, seq, family);
        self.str(NFTA_CHAIN_TABLE, table);
        self.str(NFTA_CHAIN_NAME, name);
        if let Some(BaseHook { chain_type, hook, priority }) = base {
            self.str(NFTA_CHAIN_TYPE, chain_type);
            self.u32(NFTA_CHAIN_POLICY, NF_ACCEPT as u32);
            let h = self.nest(NFTA_CHAIN_HOOK);
            self.u32(NFTA_HOOK_HOOKNUM, hook);
            self.attr(NFTA_HOOK_PRIORITY, &priority.to_be_bytes());
            self.nest_end(h);
        }
        self.end(m);
    }

    /// `delete chain FAMILY TABLE NAME`.
    pub fn del_chain(&mut self, seq: u32, family: u8, table: &str, name: &str) {
        let m = self.nft(NFT_MSG_DELCHAIN, 0, seq, family);
        self.str(NFTA_CHAIN_TABLE, table);
        self.str(NFTA_CHAIN_NAME, name);
        self.end(m);
    }

    /// `flush chain FAMILY TABLE CHAIN` (a `DELRULE` without a handle).
    pub fn flush_chain(&mut self, seq: u32, family: u8, table: &str, chain: &str) {
        let m = self.nft(NFT_MSG_DELRULE, 0, seq, family);
        self.str(NFTA_RULE_TABLE, table);
        self.str(NFTA_RULE_CHAIN, chain);
        self.end(m);
    }

    /// `delete rule FAMILY TABLE CHAIN handle HANDLE`.
    pub fn del_rule(&mut self, seq: u32, family: u8, table: &str, chain: &str, handle: u64) {
        let m = self.nft(NFT_MSG_DELRULE, 0, seq, family);
        self.str(NFTA_RULE_TABLE, table);
        self.str(NFTA_RULE_CHAIN, chain);
        self.u64(NFTA_RULE_HANDLE, handle);
        self.end(m);
    }

    /// `add rule FAMILY TABLE CHAIN EXPRS [comment "COMMENT"]`: `exprs` holds the expressions
    /// (written with the expression methods); an empty comment is none.
    pub fn new_rule(&mut self, seq: u32, family: u8, table: &str, chain: &str, exprs: &MsgBuf, comment: &str) {
        let m = self.nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, seq, family);
        self.str(NFTA_RULE_TABLE, table);
        self.str(NFTA_RULE_CHAIN, chain);
        let e = self.nest(NFTA_RULE_EXPRESSIONS);
        self.b.extend_from_slice(&exprs.b);
        self.nest_end(e);
        if !comment.is_empty() {
            self.attr(NFTA_RULE_USERDATA, &comment_udata(comment));
        }
        self.end(m);
    }

    /// `add set` / `add map` (also an anonymous one, before the rule that binds it).
    pub fn new_set(&mut self, seq: u32, family: u8, set: &SetSpec<'_>) {
        let m = self.nft(NFT_MSG_NEWSET, NLM_F_CREATE, seq, family);
        self.str(NFTA_SET_TABLE, set.table);
        self.str(NFTA_SET_NAME, set.name);
        self.u32(NFTA_SET_FLAGS, set.flags);
        self.u32(NFTA_SET_KEY_TYPE, set.key_type);
        self.u32(NFTA_SET_KEY_LEN, set.key_len);
        if let Some((data_type, data_len)) = set.data {
            self.u32(NFTA_SET_DATA_TYPE, data_type);
            self.u32(NFTA_SET_DATA_LEN, data_len);
        }
        self.u32(NFTA_SET_ID, set.id);
        if let Some(t) = set.timeout_ms {
            self.u64(NFTA_SET_TIMEOUT, t);
        }
        if let Some(size) = set.size {
            let d = self.nest(NFTA_SET_DESC);
            self.u32(NFTA_SET_DESC_SIZE, size);
            self.nest_end(d);
        }
        if !set.userdata.is_empty() {
            self.attr(NFTA_SET_USERDATA, set.userdata);
        }
        self.end(m);
    }

    /// `delete set FAMILY TABLE NAME`.
    pub fn del_set(&mut self, seq: u32, family: u8, table: &str, name: &str) {
        let m = self.nft(NFT_MSG_DELSET, 0, seq, family);
        self.str(NFTA_SET_TABLE, table);
        self.str(NFTA_SET_NAME, name);
        self.end(m);
    }

    /// `flush set FAMILY TABLE NAME` (a `DELSETELEM` without elements).
    pub fn flush_set(&mut self, seq: u32, family: u8, table: &str, name: &str) {
        let m = self.nft(NFT_MSG_DELSETELEM, 0, seq, family);
        self.str(NFTA_SET_ELEM_LIST_TABLE, table);
        self.str(NFTA_SET_ELEM_LIST_SET, name);
        self.end(m);
    }

    /// `add element` (`add`) or `delete element` of `count` elements, in as many messages as
    /// the attribute length allows; `each(buf, i)` writes element `i`'s attributes (key, data,
    /// flags) inside its `NFTA_LIST_ELEM`.
    #[allow(clippy::too_many_arguments)]
    pub fn set_elems<E>(
        &mut self,
        seq: u32,
        family: u8,
        table: &str,
        set: SetRef<'_>,
        add: bool,
        count: usize,
        mut each: impl FnMut(&mut MsgBuf, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let (msg, flags) = if add { (NFT_MSG_NEWSETELEM, NLM_F_CREATE) } else { (NFT_MSG_DELSETELEM, 0) };
        let mut i = 0;
        while i < count {
            let m = self.nft(msg, flags, seq, family);
            self.str(NFTA_SET_ELEM_LIST_TABLE, table);
            match set {
                SetRef::Name(name) => self.str(NFTA_SET_ELEM_LIST_SET, name),
                SetRef::Id(id) => self.u32(NFTA_SET_ELEM_LIST_SET_ID, id),
            }
            let list = self.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            let list_start = self.len();
            while i < count && self.len() - list_start < MAX_ATTR {
                let e = self.nest(NFTA_LIST_ELEM);
                each(self, i)?;
                self.nest_end(e);
                i += 1;
            }
            self.nest_end(list);
            self.end(m);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::attrs;
    use super::*;

    #[test]
    fn prefixes_are_matched_as_nft_does() {
        let m = |s: &str| PrefixMatch::of(&s.parse().unwrap());
        // ip saddr 10.1.2.5: the whole address.
        assert_eq!(m("10.1.2.5/32"), PrefixMatch { load_len: 4, mask: None, data: vec![10, 1, 2, 5] });
        // ip daddr != 10.1.2.0/24: three bytes.
        assert_eq!(m("10.1.2.5/24"), PrefixMatch { load_len: 3, mask: None, data: vec![10, 1, 2] });
        // ip daddr != 224.0.0.0/4: the whole address, masked.
        assert_eq!(
            m("224.0.0.0/4"),
            PrefixMatch { load_len: 4, mask: Some(vec![0xf0, 0, 0, 0]), data: vec![0xe0, 0, 0, 0] }
        );
        // A /0 is masked too (as nft does).
        assert_eq!(m("0.0.0.0/0").mask, Some(vec![0; 4]));
        assert_eq!(m("fd00::5/64").data, vec![0xfd, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(m("fd00::5/128").load_len, 16);
        assert_eq!(m("ff00::/8"), PrefixMatch { load_len: 1, mask: None, data: vec![0xff] });
        assert_eq!((addr_offset(true, true), addr_offset(true, false)), (12, 16));
        assert_eq!((addr_offset(false, true), addr_offset(false, false)), (8, 24));
    }

    #[test]
    fn messages_have_their_length_and_header() {
        let mut b = MsgBuf::new();
        b.batch_begin(1);
        b.new_table(2, FAMILY_INET, "t");
        let mut exprs = MsgBuf::new();
        exprs.masq(None);
        b.new_rule(3, FAMILY_INET, "t", "c", &exprs, "podnet:x:y");
        b.batch_end(4);
        let at = b.last_message().unwrap();
        let rule = b.as_bytes()[..at].to_vec();
        // The rule is the message before END: find it by walking.
        let mut offsets = Vec::new();
        let mut o = 0;
        while o < b.len() {
            offsets.push(o);
            o += u32::from_ne_bytes(b.as_bytes()[o..o + 4].try_into().unwrap()) as usize;
        }
        assert_eq!(offsets.len(), 4);
        assert_eq!(offsets[3], at);
        let r = &rule[offsets[2]..];
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), (10 << 8) | NFT_MSG_NEWRULE);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND);
        assert_eq!(r[16], FAMILY_INET);
        // The comment is libnftnl's user data: type 0, length with the NUL, the text.
        let a = attrs(&r[20..]);
        assert_eq!(a.iter().find(|(t, _)| *t == NFTA_RULE_USERDATA).unwrap().1, b"\x00\x0bpodnet:x:y\x00");
        // The END message's flags gain the ack asked of the last message.
        let mut b2 = b.clone();
        let seq = b2.add_flags(offsets[2], NLM_F_ACK);
        assert_eq!(seq, 3);
        assert_eq!(
            u16::from_ne_bytes([b2.as_bytes()[offsets[2] + 6], b2.as_bytes()[offsets[2] + 7]]) & NLM_F_ACK,
            NLM_F_ACK
        );
    }

    #[test]
    fn long_element_lists_are_split() {
        let mut b = MsgBuf::new();
        let n = 10_000;
        b.set_elems::<()>(1, FAMILY_IPV4, "t", SetRef::Name("s"), true, n, |b, i| {
            b.value(NFTA_SET_ELEM_KEY, &(i as u32).to_be_bytes());
            Ok(())
        })
        .unwrap();
        let mut count = 0;
        let mut messages = 0;
        let mut o = 0;
        while o < b.len() {
            let len = u32::from_ne_bytes(b.as_bytes()[o..o + 4].try_into().unwrap()) as usize;
            for (ty, list) in attrs(&b.as_bytes()[o + 20..o + len]) {
                if ty == NFTA_SET_ELEM_LIST_ELEMENTS {
                    count += attrs(list).len();
                }
            }
            messages += 1;
            o += len;
        }
        assert_eq!(count, n);
        assert!(messages > 1);
    }

    #[test]
    fn verdicts_round_trip() {
        for v in [Verdict::Accept, Verdict::Drop, Verdict::Return, Verdict::Jump("a".into()), Verdict::Goto("b".into())]
        {
            let (code, chain) = v.code();
            assert_eq!(Verdict::from_code(code, chain.map(String::from)), v);
        }
        assert_eq!(Verdict::from_code(NFT_GOTO, None), Verdict::Other(NFT_GOTO));
        assert_eq!(hook_number("postrouting"), Some(HOOK_POSTROUTING));
        assert_eq!(hook_number("nope"), None);
    }
}
