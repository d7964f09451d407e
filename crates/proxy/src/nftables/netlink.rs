//! nftables over netlink (`NETLINK_NETFILTER`), without the `nft` program: the operations of a
//! sync ([`Op`]) encoded as the netlink messages `nft` 1.0 sends for the same text (so `nft list`
//! shows the same ruleset either way), sent in batches (`NFNL_MSG_BATCH_BEGIN` … `END`, one
//! atomic kernel transaction each) on one long-lived socket per network namespace, plus the
//! listings a full sync needs (chain and set names, set elements). The messages, the batch
//! commit and the listings themselves are podnet-netlink's [`podnet_netlink::nftables`] (shared
//! with the CNI plugin's ipMasq); this module holds what the proxy's operations, rules, map keys
//! and verdicts mean in them, and how a big sync is cut into transactions.
//!
//! Why not `nft -f`: the program reads the whole ruleset back from the kernel into its cache on
//! every run (0.8 s with 10,000 services), and closing its socket waits for the kernel's deferred
//! destroy work. And one kernel transaction with thousands of anonymous sets (kube-proxy's one
//! `numgen … vmap` per service) is quadratic in the kernel (binding an anonymous set walks the
//! transaction's whole commit list): 10,000 services took 90–130 s.
//!
//! A batch must fit in one `sendmsg` (the socket's send buffer, `net.core.wmem_default`: 208 KiB
//! by default). So a transaction that does not fit is split where [`Op::Cut`] allows it, in
//! this order: the skeleton and the service ports' chains, sets and rules (each port in one
//! transaction); then the map elements, one key at a time (a key's old value deleted and its new
//! one added in the same transaction, so that the key is never missing); then the flushes of
//! stale chains; then the deletions of sets. A port whose chains alone do not fit is written
//! chain by chain (its chains created first, each chain emptied and refilled in one
//! transaction). Small syncs (a changed service, a full sync of a few hundred services) are one
//! transaction, as with `nft -f`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;

use ipnet::IpNet;
use podnet_netlink::nftables::{
    self as nl, BaseHook, BatchError, CmpOp, MsgBuf, NftSocket, SetElem, SetRef, SetSpec, CT_STATE, META_L4PROTO,
    META_MARK, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY, NFT_DATA_VERDICT, NFT_GOTO, NFT_JUMP,
    NFT_RETURN, NFT_SET_ANONYMOUS, NFT_SET_CONSTANT, NFT_SET_ELEM_INTERVAL_END, NFT_SET_EVAL, NFT_SET_INTERVAL,
    NFT_SET_MAP, NFT_SET_TIMEOUT, NF_ACCEPT, NF_DROP, PAYLOAD_NETWORK, PAYLOAD_TRANSPORT, REG32_01, REG32_02, REG32_05,
    REG_1, REG_2, REG_VERDICT, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE, TYPE_IP6ADDR, TYPE_IPADDR,
};

use super::family::Family;
use super::names;
use super::rule::{AddrValue, Match, Rule, SetItem, Stmt, Verdict};
use super::rules::{
    FIREWALL_IPS, HAIRPIN, NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES, SERVICE_IPS, SERVICE_NODEPORTS,
};
use super::script::{BaseChain, Elem, Op, SetKind, TableState, NODEPORT_IPS};
use super::TABLE;
use crate::model::Protocol;
use crate::Error;

/// libnftnl's set user data: key byte order big endian.
const UDATA_KEY_BIG_ENDIAN: &[u8] = &[0, 4, 2, 0, 0, 0];
/// What `nft` 1.0.6 stores with a `type … : verdict` map of concatenated keys.
const UDATA_CONCAT_MAP: &[u8] = &[0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0];
/// Key byte order big endian, elements merged (an anonymous interval set).
const UDATA_INTERVALS: &[u8] = &[0, 4, 2, 0, 0, 0, 2, 4, 1, 0, 0, 0];
/// What `nft` 1.0.6 stores with `typeof numgen random mod 65536 : ip daddr . tcp dport`: the
/// key (host byte order, `numgen`), then the data's parts (the address, the port of `proto`).
fn endpoint_map_udata(family: Family, proto: Protocol) -> Vec<u8> {
    let mut out =
        vec![0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 26, 0, 4, 23, 0, 0, 0, 1, 18, 0, 4, 1, 0, 0, 0, 1, 4, 0, 0];
    out.extend_from_slice(&[1, 0, 2, 4, 0, 0, 0, 0, 4, 52, 0, 4, 13, 0, 0, 0, 1, 44, 0, 20, 0, 4, 7, 0, 0, 0, 1, 12]);
    // The address: payload of the network header (its description and field).
    out.extend_from_slice(match family {
        Family::Ipv4 => &[0, 4, 12, 0, 0, 0, 1, 4, 12, 0, 0, 0],
        Family::Ipv6 => &[0, 4, 13, 0, 0, 0, 1, 4, 9, 0, 0, 0],
    });
    // The port: the destination port field of the protocol's header description.
    let header = match proto {
        Protocol::Tcp => 8,
        Protocol::Udp => 6,
        Protocol::Sctp => 10,
    };
    out.extend_from_slice(&[1, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0, 4, header, 0, 0, 0, 1, 4, 2, 0, 0, 0, 6, 4, 0, 0, 0, 0]);
    out
}
/// … with `typeof ip saddr . ip daddr`.
const UDATA_PAIRS_V4: &[u8] = &[
    0, 4, 0, 0, 0, 0, 3, 52, 0, 4, 13, 0, 0, 0, 1, 44, 0, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0, 4, 12, 0, 0, 0, 1, 4, 11, 0,
    0, 0, 1, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0, 4, 12, 0, 0, 0, 1, 4, 12, 0, 0, 0,
];
/// … with `typeof ip6 saddr . ip6 daddr`.
const UDATA_PAIRS_V6: &[u8] = &[
    0, 4, 0, 0, 0, 0, 3, 52, 0, 4, 13, 0, 0, 0, 1, 44, 0, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0, 4, 13, 0, 0, 0, 1, 4, 8, 0,
    0, 0, 1, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0, 4, 13, 0, 0, 0, 1, 4, 9, 0, 0, 0,
];
/// `NFT_CT_STATUS`.
const CT_STATUS: u32 = 2;
/// nft's `TYPE_INTEGER` (a `numgen` result).
const TYPE_INTEGER: u32 = 4;

/// The size of the batches to send, if the socket's send buffer allows it: at 10,000 services,
/// 200 KiB batches made a full load take 11–23 s, 1 MiB 10 s, 3 MiB 7–9 s, 6 MiB 9 s.
const BATCH_TARGET: usize = 3 << 20;

fn nl_err(message: String) -> Error {
    Error::Program { program: "nftables netlink".into(), message }
}

fn netlink_err(e: podnet_netlink::Error) -> Error {
    nl_err(e.to_string())
}

/// `cmp` on `REG_1`: equal, or not equal with `negate`.
fn cmp(b: &mut MsgBuf, negate: bool, data: &[u8]) {
    b.cmp(REG_1, if negate { CmpOp::Neq } else { CmpOp::Eq }, data);
}

/// A verdict's code and chain.
fn verdict_code(v: &Verdict) -> (i32, Option<&str>) {
    match v {
        Verdict::Jump(c) => (NFT_JUMP, Some(c)),
        Verdict::Goto(c) => (NFT_GOTO, Some(c)),
        Verdict::Return => (NFT_RETURN, None),
        Verdict::Drop => (NF_DROP, None),
    }
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

fn proto_by_name(s: &str) -> Option<u8> {
    match s {
        "tcp" => Some(6),
        "udp" => Some(17),
        "sctp" => Some(132),
        _ => s.parse().ok(),
    }
}

fn proto_name(n: u8) -> String {
    match n {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        _ => n.to_string(),
    }
}

/// The key bytes of a map element written `10.96.0.10 . tcp . 80` or `tcp . 30080`: each part
/// padded to 4 bytes, as in a register.
fn map_key(key: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = key.split(" . ").collect();
    let (addr, proto, port) = match parts.as_slice() {
        [a, p, n] => (Some(a.parse::<IpAddr>().ok()?), *p, *n),
        [p, n] => (None, *p, *n),
        _ => return None,
    };
    let mut out = addr.map(|a| nl::addr_bytes(&a)).unwrap_or_default();
    out.extend_from_slice(&[proto_by_name(proto)?, 0, 0, 0]);
    let port: u16 = port.parse().ok()?;
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    Some(out)
}

/// A map element's verdict written `goto CHAIN`, `jump CHAIN`, `drop`, `accept`, `return`.
fn parse_verdict(s: &str) -> Option<(i32, Option<&str>)> {
    match s.split_once(' ') {
        Some(("goto", c)) => Some((NFT_GOTO, Some(c))),
        Some(("jump", c)) => Some((NFT_JUMP, Some(c))),
        None if s == "drop" => Some((NF_DROP, None)),
        None if s == "accept" => Some((NF_ACCEPT, None)),
        None if s == "return" => Some((NFT_RETURN, None)),
        _ => None,
    }
}

/// A verdict read back, written as the proxy writes it.
fn verdict_text(v: &nl::Verdict) -> String {
    match v {
        nl::Verdict::Goto(c) => format!("goto {c}"),
        nl::Verdict::Jump(c) => format!("jump {c}"),
        nl::Verdict::Drop => "drop".into(),
        nl::Verdict::Accept => "accept".into(),
        nl::Verdict::Return => "return".into(),
        nl::Verdict::Other(code) => format!("verdict {code}"),
    }
}

/// The address ranges of an anonymous set, merged (overlapping or adjacent), as inclusive
/// `[first, last]` numbers of `bits` bits.
fn merged_ranges(items: &[SetItem], bits: u32) -> Vec<(u128, u128)> {
    let num = |a: &IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    };
    let mut ranges: Vec<(u128, u128)> = items
        .iter()
        .map(|i| match i {
            SetItem::Addr(a) => (num(a), num(a)),
            SetItem::Net(n) => {
                let host_bits = bits - u32::from(n.prefix_len());
                let first = num(&n.trunc().addr());
                let span = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
                (first, first | span)
            }
        })
        .collect();
    ranges.sort();
    let mut out: Vec<(u128, u128)> = Vec::new();
    for (a, b) in ranges {
        match out.last_mut() {
            Some((_, last)) if a <= last.saturating_add(1) => *last = (*last).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

fn number_bytes(n: u128, family: Family) -> Vec<u8> {
    match family {
        Family::Ipv4 => (n as u32).to_be_bytes().to_vec(),
        Family::Ipv6 => n.to_be_bytes().to_vec(),
    }
}

/// Encodes operations into netlink messages (with podnet-netlink's [`MsgBuf`]). Anonymous sets
/// get names unique to this socket's life (`__set…`, `__map…` with a run id), so that the kernel
/// does not search for a free `%d` among every set of the table.
struct Encoder {
    run: u64,
    anon: u64,
}

impl Encoder {
    /// A name for an anonymous set: short (the kernel compares it with every set's name when
    /// the set is created and when a rule binds it) and unique to this socket's run.
    fn anon_name(&mut self, prefix: &str) -> (String, u32) {
        self.anon += 1;
        (format!("{prefix}{}.{}", base36(self.run), base36(self.anon)), self.anon as u32)
    }

    fn family_addr(family: Family) -> (u32, u32, u32, u32) {
        // (source offset, destination offset, length, key type)
        match family {
            Family::Ipv4 => (12, 16, 4, TYPE_IPADDR),
            Family::Ipv6 => (8, 24, 16, TYPE_IP6ADDR),
        }
    }

    /// The register right after an address in `REG_1` (`reg 9` after an IPv4 address, `reg 2`
    /// after an IPv6 one): where a concatenation's next part goes.
    fn after_addr(family: Family) -> u32 {
        match family {
            Family::Ipv4 => REG32_01,
            Family::Ipv6 => REG_2,
        }
    }

    fn l4proto(b: &mut MsgBuf, p: Protocol) {
        b.meta_load(META_L4PROTO, REG_1);
        cmp(b, false, &[proto_number(p)]);
    }

    /// An anonymous set (and its elements) of a rule, before the rule; returns its name and id.
    fn anon_set(&mut self, out: &mut MsgBuf, seq: u32, family: Family, table: &str, set: AnonSet) -> (String, u32) {
        let AnonSet { key_type, key_len, elems, intervals } = set;
        let (name, id) = self.anon_name("__set");
        let count = elems.len();
        let spec = SetSpec {
            table,
            name: &name,
            flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | if intervals { NFT_SET_INTERVAL } else { 0 },
            key_type,
            key_len,
            data: None,
            id,
            timeout_ms: None,
            size: Some(count as u32),
            userdata: if intervals { UDATA_INTERVALS } else { UDATA_KEY_BIG_ENDIAN },
        };
        out.new_set(seq, family.af(), &spec);
        // The elements name the set by its id only: the kernel then finds it among the sets of
        // this transaction (from the newest), not by comparing names with every set of the table.
        let _ = out.set_elems::<()>(seq, family.af(), table, SetRef::Id(id), true, count, |out, i| {
            let (bytes, end) = &elems[i];
            if *end {
                out.u32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
            }
            out.value(NFTA_SET_ELEM_KEY, bytes);
            Ok(())
        });
        (name, id)
    }

    /// The expressions of an address match (after the anonymous set it needs, if any).
    /// `m` must be a [`Match::Addr`].
    fn addr_match(&mut self, out: &mut MsgBuf, exprs: &mut MsgBuf, seq: u32, m: &Match) {
        let Match::Addr { family, source, negate, value } = m else { return };
        let (family, source, negate) = (*family, *source, *negate);
        let (soff, doff, len, key_type) = Self::family_addr(family);
        let offset = if source { soff } else { doff };
        let op = if negate { CmpOp::Neq } else { CmpOp::Eq };
        let bits = len * 8;
        match value {
            AddrValue::One(ip) => exprs.prefix_match(offset, &IpNet::from(*ip), op),
            AddrValue::Prefix(net) => exprs.prefix_match(offset, net, op),
            AddrValue::Set(items) if items.len() == 1 => match &items[0] {
                SetItem::Addr(ip) => exprs.prefix_match(offset, &IpNet::from(*ip), op),
                SetItem::Net(net) => exprs.prefix_match(offset, net, op),
            },
            AddrValue::Set(items) => {
                let intervals = items.iter().any(|i| matches!(i, SetItem::Net(n) if u32::from(n.prefix_len()) < bits));
                let elems: Vec<(Vec<u8>, bool)> = if intervals {
                    let ranges = merged_ranges(items, bits);
                    let max = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
                    let mut e = Vec::new();
                    if ranges.first().is_some_and(|(a, _)| *a != 0) {
                        e.push((number_bytes(0, family), true));
                    }
                    for (a, b) in ranges {
                        e.push((number_bytes(a, family), false));
                        if b != max {
                            e.push((number_bytes(b + 1, family), true));
                        }
                    }
                    e
                } else {
                    let addrs: BTreeSet<Vec<u8>> = items
                        .iter()
                        .map(|i| match i {
                            SetItem::Addr(a) => nl::addr_bytes(a),
                            SetItem::Net(n) => nl::addr_bytes(&n.addr()),
                        })
                        .collect();
                    addrs.into_iter().map(|a| (a, false)).collect()
                };
                let set = AnonSet { key_type, key_len: len, elems, intervals };
                let (name, id) = self.anon_set(out, seq, family, TABLE, set);
                exprs.payload(REG_1, PAYLOAD_NETWORK, offset, len);
                exprs.lookup(REG_1, &name, Some(id), None, negate);
            }
            AddrValue::Named(set) => {
                exprs.payload(REG_1, PAYLOAD_NETWORK, offset, len);
                exprs.lookup(REG_1, set, None, None, negate);
            }
        }
    }

    /// A rule: its anonymous sets, then `NEWRULE`.
    fn rule(&mut self, out: &mut MsgBuf, seq: u32, family: Family, chain: &str, rule: &Rule) {
        let mut exprs = MsgBuf::with_capacity(512);
        for m in &rule.matches {
            match m {
                Match::Addr { .. } => self.addr_match(out, &mut exprs, seq, m),
                Match::Dport { proto, port } => {
                    Self::l4proto(&mut exprs, *proto);
                    exprs.payload(REG_1, PAYLOAD_TRANSPORT, 2, 2);
                    cmp(&mut exprs, false, &port.to_be_bytes());
                }
                Match::L4proto(p) => Self::l4proto(&mut exprs, *p),
                Match::CtStateNew => {
                    exprs.ct_load(CT_STATE, REG_1);
                    exprs.bitwise(REG_1, &8u32.to_ne_bytes(), &[0; 4]); // IP_CT_NEW
                    cmp(&mut exprs, true, &[0; 4]);
                }
                Match::CtStatusDnat => {
                    exprs.ct_load(CT_STATUS, REG_1);
                    exprs.bitwise(REG_1, &0x20u32.to_ne_bytes(), &[0; 4]); // IPS_DST_NAT
                    cmp(&mut exprs, true, &[0; 4]);
                }
                Match::FibLocal { source } => {
                    // NFTA_FIB_F_SADDR or _DADDR, NFT_FIB_RESULT_ADDRTYPE
                    exprs.fib(if *source { 1 } else { 2 }, 3, REG_1);
                    cmp(&mut exprs, false, &2u32.to_ne_bytes()); // RTN_LOCAL
                }
                Match::MarkClear(mark) => {
                    exprs.meta_load(META_MARK, REG_1);
                    exprs.bitwise(REG_1, &mark.to_ne_bytes(), &[0; 4]);
                    cmp(&mut exprs, false, &[0; 4]);
                }
                Match::OneIn(n) => {
                    exprs.numgen(REG_1, *n, 1, 0); // NFT_NG_RANDOM
                    cmp(&mut exprs, false, &0u32.to_ne_bytes());
                }
                Match::AddrPairIn { family: f, set } => {
                    let (soff, doff, len, _) = Self::family_addr(*f);
                    exprs.payload(REG_1, PAYLOAD_NETWORK, soff, len);
                    exprs.payload(Self::after_addr(*f), PAYLOAD_NETWORK, doff, len);
                    exprs.lookup(REG_1, set, None, None, false);
                }
            }
        }
        match &rule.stmt {
            Stmt::Verdict(v) => {
                let (code, chain) = verdict_code(v);
                exprs.immediate_verdict(code, chain);
            }
            Stmt::DispatchAddr { family: f, map } => {
                let (_, doff, len, _) = Self::family_addr(*f);
                let (proto_reg, port_reg) = match f {
                    Family::Ipv4 => (REG32_01, REG32_02),
                    Family::Ipv6 => (REG_2, REG32_05),
                };
                exprs.payload(REG_1, PAYLOAD_NETWORK, doff, len);
                exprs.meta_load(META_L4PROTO, proto_reg);
                exprs.payload(port_reg, PAYLOAD_TRANSPORT, 2, 2);
                exprs.lookup(REG_1, map, None, Some(REG_VERDICT), false);
            }
            Stmt::DispatchPort { map } => {
                exprs.meta_load(META_L4PROTO, REG_1);
                exprs.payload(REG32_01, PAYLOAD_TRANSPORT, 2, 2);
                exprs.lookup(REG_1, map, None, Some(REG_VERDICT), false);
            }
            Stmt::MarkOr(mark) | Stmt::MarkXor(mark) => {
                let mask = if matches!(rule.stmt, Stmt::MarkOr(_)) { !mark } else { u32::MAX };
                exprs.meta_load(META_MARK, REG_1);
                exprs.bitwise(REG_1, &mask.to_ne_bytes(), &mark.to_ne_bytes());
                exprs.meta_set(META_MARK, REG_1);
            }
            Stmt::MasqueradeFullyRandom => exprs.masq(Some(0x10)), // NF_NAT_RANGE_PROTO_RANDOM_FULLY
            Stmt::RejectTcpReset => exprs.reject(1, 0),            // NFT_REJECT_TCP_RST
            // NFT_REJECT_ICMP_UNREACH, port unreachable
            Stmt::Reject => exprs.reject(0, if family == Family::Ipv4 { 3 } else { 4 }),
            Stmt::Dnat(to) => {
                let ip = to.ip();
                exprs.immediate_data(REG_1, &nl::addr_bytes(&ip));
                exprs.immediate_data(REG_2, &to.port().to_be_bytes());
                // NFT_NAT_DNAT, NF_NAT_RANGE_PROTO_SPECIFIED
                exprs.nat(1, Family::of(&ip).af(), REG_1, Some(REG_2), 2);
            }
            Stmt::DnatRandom { family: f, modulus, offset, map } => {
                exprs.numgen(REG_1, *modulus, 1, *offset); // NFT_NG_RANDOM
                exprs.lookup(REG_1, map, None, Some(REG_1), false);
                // NFT_NAT_DNAT, NF_NAT_RANGE_PROTO_SPECIFIED
                exprs.nat(1, f.af(), REG_1, Some(Self::after_addr(*f)), 2);
            }
            Stmt::UpdateSaddr { family: f, set } => {
                let (soff, _, len, _) = Self::family_addr(*f);
                exprs.payload(REG_1, PAYLOAD_NETWORK, soff, len);
                exprs.dynset_update(REG_1, set);
            }
        }
        out.new_rule(seq, family.af(), TABLE, chain, &exprs, "");
    }

    /// Elements of a named set or map, in as many messages as needed.
    fn elements(
        &self,
        out: &mut MsgBuf,
        seq: u32,
        family: Family,
        set: &str,
        elems: &[Elem],
        add: bool,
    ) -> Result<(), String> {
        out.set_elems(seq, family.af(), TABLE, SetRef::Name(set), add, elems.len(), |out, i| {
            match &elems[i] {
                Elem::Addr(a) => out.value(NFTA_SET_ELEM_KEY, &nl::addr_bytes(a)),
                Elem::Map { key, verdict } => {
                    let k = map_key(key).ok_or_else(|| format!("cannot encode the map key {key:?}"))?;
                    out.value(NFTA_SET_ELEM_KEY, &k);
                    if add {
                        let (code, chain) =
                            parse_verdict(verdict).ok_or_else(|| format!("cannot encode the verdict {verdict:?}"))?;
                        out.verdict_code(NFTA_SET_ELEM_DATA, code, chain);
                    }
                }
                Elem::Slot { key, to } => {
                    out.value(NFTA_SET_ELEM_KEY, &key.to_ne_bytes());
                    if add {
                        let mut data = nl::addr_bytes(&to.ip());
                        data.extend_from_slice(&to.port().to_be_bytes());
                        data.extend_from_slice(&[0, 0]);
                        out.value(NFTA_SET_ELEM_DATA, &data);
                    }
                }
                Elem::Pair(a) => out.value(NFTA_SET_ELEM_KEY, &[nl::addr_bytes(a), nl::addr_bytes(a)].concat()),
            }
            Ok(())
        })
    }

    /// Appends the messages of `op` (with sequence number `seq`) to `out`.
    fn op(&mut self, out: &mut MsgBuf, seq: u32, op: &Op) -> Result<(), String> {
        match op {
            Op::Cut => {}
            Op::AddTable(f) => out.new_table(seq, f.af(), TABLE),
            Op::DeleteTable(f) => out.del_table(seq, f.af(), TABLE),
            Op::AddChain { family, name, base } => {
                let base = match base {
                    Some(BaseChain { kind, hook, priority }) => {
                        let hook = nl::hook_number(hook).ok_or_else(|| format!("unknown hook {hook}"))?;
                        Some(BaseHook { chain_type: kind, hook, priority: *priority })
                    }
                    None => None,
                };
                out.new_chain(seq, family.af(), TABLE, name, base);
            }
            Op::FlushChain { family, name, .. } => out.flush_chain(seq, family.af(), TABLE, name),
            Op::DeleteChain { family, name } => out.del_chain(seq, family.af(), TABLE, name),
            Op::AddRule { family, chain, rule } => self.rule(out, seq, *family, chain, rule),
            Op::AddSet { family, name, kind } => {
                let (_, _, addr_len, addr_type) = Self::family_addr(*family);
                let endpoint_udata;
                let (flags, key_type, key_len, udata) = match kind {
                    SetKind::Addrs => (0, addr_type, addr_len, UDATA_KEY_BIG_ENDIAN),
                    SetKind::Affinity(_) => (NFT_SET_TIMEOUT | NFT_SET_EVAL, addr_type, addr_len, UDATA_KEY_BIG_ENDIAN),
                    SetKind::AddrMap => (
                        NFT_SET_MAP,
                        (addr_type << 12) | (TYPE_INET_PROTOCOL << 6) | TYPE_INET_SERVICE,
                        addr_len + 8,
                        UDATA_CONCAT_MAP,
                    ),
                    SetKind::PortMap => {
                        (NFT_SET_MAP, (TYPE_INET_PROTOCOL << 6) | TYPE_INET_SERVICE, 8, UDATA_CONCAT_MAP)
                    }
                    SetKind::EndpointMap(proto) => {
                        endpoint_udata = endpoint_map_udata(*family, *proto);
                        (NFT_SET_MAP, TYPE_INTEGER, 4, endpoint_udata.as_slice())
                    }
                    SetKind::Pairs => {
                        let udata = if *family == Family::Ipv4 { UDATA_PAIRS_V4 } else { UDATA_PAIRS_V6 };
                        (0, (addr_type << 6) | addr_type, 2 * addr_len, udata)
                    }
                };
                let data = match kind {
                    SetKind::EndpointMap(_) => Some(((addr_type << 6) | TYPE_INET_SERVICE, addr_len + 4)),
                    SetKind::AddrMap | SetKind::PortMap => Some((NFT_DATA_VERDICT, 0)),
                    _ => None,
                };
                // The kernel wants an id for every new set (rules of the same batch may name it).
                self.anon += 1;
                let spec = SetSpec {
                    table: TABLE,
                    name,
                    flags,
                    key_type,
                    key_len,
                    data,
                    id: self.anon as u32,
                    timeout_ms: match kind {
                        SetKind::Affinity(timeout) => Some(timeout * 1000),
                        _ => None,
                    },
                    size: None,
                    userdata: udata,
                };
                out.new_set(seq, family.af(), &spec);
            }
            Op::FlushSet { family, name, .. } => out.flush_set(seq, family.af(), TABLE, name),
            Op::DeleteSet { family, name } => out.del_set(seq, family.af(), TABLE, name),
            Op::AddElements { family, set, elems } => self.elements(out, seq, *family, set, elems, true)?,
            Op::DeleteElements { family, set, elems } => self.elements(out, seq, *family, set, elems, false)?,
        }
        Ok(())
    }
}

/// An anonymous set of addresses (or of interval bounds: bytes, whether it ends an interval).
struct AnonSet {
    key_type: u32,
    key_len: u32,
    elems: Vec<(Vec<u8>, bool)>,
    intervals: bool,
}

/// A unit of a transaction that must not be split: operations (by reference or made up).
type Unit<'a> = Vec<std::borrow::Cow<'a, Op>>;

/// Splits `ops` into the units they may be applied in, in order (see the module's doc).
fn units(ops: &[Op]) -> Vec<Unit<'_>> {
    use std::borrow::Cow;
    let mut main: Vec<Unit<'_>> = vec![Vec::new()];
    // (family, set, key) -> (delete, add)
    type ElemKey = (Family, String, String);
    let mut elements: BTreeMap<ElemKey, (Option<Elem>, Option<Elem>)> = BTreeMap::new();
    let mut stale: Vec<Unit<'_>> = Vec::new();
    let mut sets: Vec<Unit<'_>> = Vec::new();
    for op in ops {
        match op {
            Op::Cut => main.push(Vec::new()),
            // A port's endpoint-map elements change with its rules.
            Op::AddElements { set, .. } | Op::DeleteElements { set, .. }
                if names::endpoint_map_epoch(set).is_some() =>
            {
                main.last_mut().expect("a unit").push(Cow::Borrowed(op))
            }
            Op::AddElements { family, set, elems } | Op::DeleteElements { family, set, elems } => {
                let add = matches!(op, Op::AddElements { .. });
                for e in elems {
                    let entry = elements.entry((*family, set.clone(), e.key())).or_default();
                    if add {
                        entry.1 = Some(e.clone());
                    } else {
                        entry.0 = Some(e.clone());
                    }
                }
            }
            Op::FlushChain { stale: true, .. } => stale.push(vec![Cow::Borrowed(op)]),
            Op::DeleteSet { .. } => sets.push(vec![Cow::Borrowed(op)]),
            _ => main.last_mut().expect("a unit").push(Cow::Borrowed(op)),
        }
    }
    let mut out: Vec<Unit<'_>> = main.into_iter().filter(|u| !u.is_empty()).collect();
    for ((family, set, _), (delete, add)) in elements {
        let mut unit = Vec::new();
        if let Some(e) = delete {
            unit.push(Cow::Owned(Op::DeleteElements { family, set: set.clone(), elems: vec![e] }));
        }
        if let Some(e) = add {
            unit.push(Cow::Owned(Op::AddElements { family, set, elems: vec![e] }));
        }
        out.push(unit);
    }
    out.extend(stale);
    out.extend(sets);
    out
}

/// A unit too big for one transaction, in smaller ones: its chains and sets created first, then
/// each chain emptied and refilled in a transaction of its own.
fn split_unit<'a>(unit: &Unit<'a>) -> Vec<Unit<'a>> {
    let mut create: Unit<'a> = Vec::new();
    let mut chains: Vec<(String, Unit<'a>)> = Vec::new();
    let mut other: Vec<Unit<'a>> = Vec::new();
    for op in unit {
        match op.as_ref() {
            Op::AddChain { .. } | Op::AddSet { .. } | Op::AddTable(_) => create.push(op.clone()),
            Op::FlushChain { name, .. } => chains.push((name.clone(), vec![op.clone()])),
            Op::AddRule { chain, .. } => match chains.iter_mut().find(|(c, _)| c == chain) {
                Some((_, u)) => u.push(op.clone()),
                None => chains.push((chain.clone(), vec![op.clone()])),
            },
            _ => other.push(vec![op.clone()]),
        }
    }
    let mut out = vec![create];
    out.extend(chains.into_iter().map(|(_, u)| u));
    out.extend(other);
    out
}

/// A `NETLINK_NETFILTER` socket in one network namespace (podnet-netlink's [`NftSocket`]), with
/// what it needs to encode.
pub struct Netlink {
    socket: NftSocket,
    /// The network namespace it was opened in (inode of `/proc/thread-self/ns/net`).
    netns: u64,
    enc: Encoder,
    /// The largest batch to send (the socket's send buffer, less a margin).
    max_batch: usize,
    /// Transactions sent by the last [`Netlink::apply`].
    pub last_transactions: usize,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").field("netns", &self.netns).field("max_batch", &self.max_batch).finish()
    }
}

/// The network namespace of the calling thread (its inode).
pub fn current_netns() -> Result<u64, Error> {
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .map_err(|e| Error::Io { what: "nftables netlink: read /proc/thread-self/ns/net".into(), source: e })
}

/// The default send buffer of new sockets (`net.core.wmem_default`).
fn send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(212_992)
}

/// The text of an operation, for errors.
fn op_text(op: &Op) -> String {
    let mut t = String::new();
    op.write_text(&mut t);
    t.trim_end().to_string()
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, Error> {
        let netns = current_netns()?;
        let socket = NftSocket::open().map_err(netlink_err)?;
        // Room for the errors of a big batch and for dumps.
        let _ = socket.socket().set_rx_buf_sz(4 << 20);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let run = (now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(20)) & 0xffff_ffff;
        // The kernel refuses a message longer than the send buffer less 32 bytes. A bigger
        // buffer (as far as net.core.wmem_max allows) means fewer transactions: every
        // transaction costs a walk of the table's chains and a validation of what its base
        // chains reach, but one with too many anonymous sets is quadratic (see the module's doc).
        let sock = socket2::SockRef::from(socket.socket());
        let _ = sock.set_send_buffer_size(BATCH_TARGET);
        let buffer = sock.send_buffer_size().unwrap_or_else(|_| send_buffer());
        let max_batch = buffer.saturating_sub(4096).clamp(16 * 1024, BATCH_TARGET);
        Ok(Netlink { socket, netns, enc: Encoder { run, anon: 0 }, max_batch, last_transactions: 0 })
    }

    /// The network namespace the socket is in.
    pub fn netns(&self) -> u64 {
        self.netns
    }

    /// Applies `ops`: in one transaction if they fit in one batch, else in several (see the
    /// module's doc). `what` names the operation in errors.
    pub fn apply(&mut self, ops: &[Op], what: &str) -> Result<(), Error> {
        self.last_transactions = 0;
        if ops.iter().all(|o| matches!(o, Op::Cut)) {
            return Ok(());
        }
        let units = units(ops);
        // Each unit encoded on its own; batches filled greedily. An op's messages carry the
        // sequence number `base + 1 + index of the op in the batch's list`, to name it in errors.
        let mut batch = MsgBuf::with_capacity(self.max_batch.min(1 << 20));
        let mut batch_ops: Unit<'_> = Vec::new();
        let mut base = self.socket.next_seq(1 << 20);
        batch.batch_begin(base);
        let mut pending: std::collections::VecDeque<Unit<'_>> = units.into();
        let mut enc = MsgBuf::new();
        while let Some(unit) = pending.pop_front() {
            enc.clear();
            for (i, op) in unit.iter().enumerate() {
                let seq = base.wrapping_add(1 + (batch_ops.len() + i) as u32);
                self.enc.op(&mut enc, seq, op).map_err(|e| nl_err(format!("{what}: {e}")))?;
            }
            if batch.len() + enc.len() + 64 <= self.max_batch {
                batch.append(&enc);
                batch_ops.extend(unit);
                continue;
            }
            if !batch_ops.is_empty() {
                // Send what is there, and encode the unit again for the next batch (its
                // sequence numbers change).
                self.commit(&mut batch, &batch_ops, base, what)?;
                batch.clear();
                batch_ops.clear();
                base = self.socket.next_seq(1 << 20);
                batch.batch_begin(base);
                pending.push_front(unit);
                continue;
            }
            // Alone and still too big: in smaller pieces, if it can be split.
            let pieces = split_unit(&unit);
            if pieces.len() <= 1 || pieces.iter().any(|p| p.len() == unit.len()) {
                return Err(nl_err(format!(
                    "{what}: {} needs {} bytes in one transaction, more than the {} a netlink message may have \
                     here (net.core.wmem_default)",
                    unit.first().map(|o| op_text(o)).unwrap_or_else(|| "an operation".into()),
                    enc.len(),
                    self.max_batch
                )));
            }
            for p in pieces.into_iter().rev() {
                pending.push_front(p);
            }
        }
        if !batch_ops.is_empty() {
            self.commit(&mut batch, &batch_ops, base, what)?;
        }
        Ok(())
    }

    /// Sends one batch (`batch` holds BEGIN and the messages of `ops`) and reads the answers.
    fn commit(
        &mut self,
        batch: &mut MsgBuf,
        ops: &[std::borrow::Cow<'_, Op>],
        base: u32,
        what: &str,
    ) -> Result<(), Error> {
        let end_seq = base.wrapping_add(1 + ops.len() as u32);
        self.last_transactions += 1;
        match self.socket.commit(batch, base, end_seq) {
            Ok(()) => Ok(()),
            Err(BatchError::Socket(e)) => Err(nl_err(format!("{what}: {e}"))),
            Err(e @ BatchError::Rejected { seq, .. }) => {
                let op = (seq.wrapping_sub(base) as usize).checked_sub(1).and_then(|i| ops.get(i));
                Err(nl_err(match op {
                    Some(op) => format!("{what}: {}: {e}", op_text(op)),
                    None => format!("{what}: the transaction failed: {e}"),
                }))
            }
            Err(e @ BatchError::Unanswered) => Err(nl_err(format!("{what}: {e}"))),
        }
    }

    /// How many chains, sets (anonymous ones too) and other objects the proxy's table of
    /// `family` holds (the kernel's `use` count of the table); `None` without the table. Cheap,
    /// unlike listing the names.
    pub fn table_use(&mut self, family: Family) -> Result<Option<u32>, Error> {
        self.socket.table_use(family.af(), TABLE).map_err(netlink_err)
    }

    /// Whether the proxy's table of `family` has the chain `name` (one lookup, no listing).
    pub fn has_chain(&mut self, family: Family, name: &str) -> Result<bool, Error> {
        self.socket.has_chain(family.af(), TABLE, name).map_err(netlink_err)
    }

    /// The names of the chains, sets and maps of the proxy's table of `family` (anonymous sets
    /// left out); empty when the table does not exist.
    pub fn table_state(&mut self, family: Family) -> Result<TableState, Error> {
        let mut state = TableState::default();
        state.chains.extend(self.socket.chains(family.af(), TABLE).map_err(netlink_err)?);
        for set in self.socket.sets(family.af(), TABLE).map_err(netlink_err)? {
            if set.is_anonymous() {
                continue;
            }
            if set.is_map() {
                state.maps.insert(set.name);
            } else {
                state.sets.insert(set.name);
            }
        }
        Ok(state)
    }

    /// The elements of the proxy's set or map `set` in `family` (of `nodeport-ips` and of the
    /// dispatch maps, as [`Elem`]s written as the proxy writes them).
    pub fn elements(&mut self, family: Family, set: &str) -> Result<BTreeSet<Elem>, Error> {
        let kind = match set {
            NODEPORT_IPS => 0,
            SERVICE_IPS | NO_ENDPOINT_SERVICES | FIREWALL_IPS => 1,
            SERVICE_NODEPORTS | NO_ENDPOINT_NODEPORTS => 2,
            HAIRPIN => 3,
            _ => return Err(nl_err(format!("list the elements of {set}: not a set of the proxy's"))),
        };
        let mut out = BTreeSet::new();
        for e in self.socket.set_elements(family.af(), TABLE, set).map_err(netlink_err)? {
            match decode_elem(kind, family, &e) {
                Some(e) => {
                    out.insert(e);
                }
                None => {
                    return Err(nl_err(format!(
                        "list the elements of {family} {TABLE} {set}: cannot read an element {e:02x?}"
                    )))
                }
            }
        }
        Ok(out)
    }
}

impl Netlink {
    /// The elements of the endpoint map `map` in `family`: key and endpoint.
    pub fn endpoint_map(&mut self, family: Family, map: &str) -> Result<Vec<(u32, std::net::SocketAddr)>, Error> {
        let alen = if family == Family::Ipv4 { 4 } else { 16 };
        let mut out = Vec::new();
        for e in self.socket.set_elements(family.af(), TABLE, map).map_err(netlink_err)? {
            let decoded = (|| {
                let key = u32::from_ne_bytes(e.key.get(..4)?.try_into().ok()?);
                let data = e.data.as_ref()?;
                let ip: IpAddr = match family {
                    Family::Ipv4 => Ipv4Addr::from(<[u8; 4]>::try_from(data.get(..4)?).ok()?).into(),
                    Family::Ipv6 => Ipv6Addr::from(<[u8; 16]>::try_from(data.get(..16)?).ok()?).into(),
                };
                let port = u16::from_be_bytes([*data.get(alen)?, *data.get(alen + 1)?]);
                Some((key, std::net::SocketAddr::new(ip, port)))
            })();
            out.push(decoded.ok_or_else(|| nl_err(format!("list {family} {TABLE} {map}: cannot read {e:02x?}")))?);
        }
        Ok(out)
    }
}

/// One element of a dump: a set of addresses (kind 0), an address map (1), a port map (2), a
/// set of address pairs (3).
fn decode_elem(kind: u8, family: Family, elem: &SetElem) -> Option<Elem> {
    let key = &elem.key;
    let verdict = elem.verdict.as_ref().map(verdict_text);
    let addr = |b: &[u8]| -> Option<IpAddr> {
        match family {
            Family::Ipv4 => Some(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(..4)?).ok()?).into()),
            Family::Ipv6 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(b.get(..16)?).ok()?).into()),
        }
    };
    let alen = if family == Family::Ipv4 { 4 } else { 16 };
    let proto_port = |b: &[u8]| -> Option<String> {
        let proto = *b.first()?;
        let port = u16::from_be_bytes([*b.get(4)?, *b.get(5)?]);
        Some(format!("{} . {port}", proto_name(proto)))
    };
    match kind {
        0 => Some(Elem::Addr(addr(key)?)),
        3 => {
            let (a, b) = (addr(key)?, addr(key.get(alen..)?)?);
            (a == b).then_some(Elem::Pair(a))
        }
        1 => {
            let a = addr(key)?;
            Some(Elem::Map { key: format!("{a} . {}", proto_port(key.get(alen..)?)?), verdict: verdict? })
        }
        _ => Some(Elem::Map { key: proto_port(key)?, verdict: verdict? }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keys_and_verdicts() {
        assert_eq!(map_key("10.96.0.10 . tcp . 80").unwrap(), [10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(map_key("udp . 30053").unwrap(), [17, 0, 0, 0, 0x75, 0x65, 0, 0]);
        assert_eq!(map_key("fd00::1 . sctp . 9000").unwrap().len(), 24);
        assert!(map_key("nonsense").is_none());
        assert_eq!(parse_verdict("goto service-X"), Some((NFT_GOTO, Some("service-X"))));
        assert_eq!(parse_verdict("drop"), Some((NF_DROP, None)));
    }

    #[test]
    fn intervals_are_merged_as_nft_does() {
        let items: Vec<SetItem> = vec![
            SetItem::Net("192.168.1.0/24".parse().unwrap()),
            SetItem::Addr("198.51.100.2".parse().unwrap()),
            SetItem::Addr("198.51.100.1".parse().unwrap()),
            SetItem::Net("192.168.1.128/25".parse().unwrap()),
        ];
        let r = merged_ranges(&items, 32);
        assert_eq!(r, [(0xc0a8_0100, 0xc0a8_01ff), (0xc633_6401, 0xc633_6402)]);
    }

    #[test]
    fn dumped_elements_read_back_as_written() {
        let mut b = MsgBuf::new();
        b.value(NFTA_SET_ELEM_KEY, &map_key("10.96.0.10 . tcp . 80").unwrap());
        b.verdict_code(NFTA_SET_ELEM_DATA, NFT_GOTO, Some("service-X"));
        let e = decode_elem(1, Family::Ipv4, &nl::parse::parse_elem(b.as_bytes()).unwrap()).unwrap();
        assert_eq!(e, Elem::Map { key: "10.96.0.10 . tcp . 80".into(), verdict: "goto service-X".into() });
        let mut b = MsgBuf::new();
        b.value(NFTA_SET_ELEM_KEY, &map_key("tcp . 30080").unwrap());
        b.verdict_code(NFTA_SET_ELEM_DATA, NF_DROP, None);
        assert_eq!(
            decode_elem(2, Family::Ipv6, &nl::parse::parse_elem(b.as_bytes()).unwrap()).unwrap(),
            Elem::Map { key: "tcp . 30080".into(), verdict: "drop".into() }
        );
    }

    #[test]
    fn units_pair_an_elements_delete_and_add() {
        let f = Family::Ipv4;
        let e = |k: &str, v: &str| Elem::Map { key: k.into(), verdict: v.into() };
        let ops = vec![
            Op::DeleteElements { family: f, set: "m".into(), elems: vec![e("a", "drop"), e("b", "drop")] },
            Op::Cut,
            Op::AddChain { family: f, name: "c".into(), base: None },
            Op::FlushChain { family: f, name: "old".into(), stale: true },
            Op::AddElements { family: f, set: "m".into(), elems: vec![e("a", "goto c")] },
            Op::DeleteSet { family: f, name: "s".into() },
        ];
        let u = units(&ops);
        let texts: Vec<String> = u
            .iter()
            .map(|u| super::super::script::render(&u.iter().map(|o| o.as_ref().clone()).collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            texts,
            [
                "add chain ip podnet c\n",
                "delete element ip podnet m { a }\nadd element ip podnet m { a : goto c }\n",
                "delete element ip podnet m { b }\n",
                "flush chain ip podnet old\n",
                "delete set ip podnet s\n",
            ]
        );
    }
}
