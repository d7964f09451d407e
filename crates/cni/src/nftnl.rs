//! nftables over netlink (`NETLINK_NETFILTER`), without running the `nft` program: what the
//! plugin's hot path (ipMasq on every ADD and DEL) needs — tables, base chains, rules made of a
//! few expressions (meta, payload, bitwise, cmp, masq) with a comment, listing the rules of a
//! table, deleting rules by handle. Changes go in one batch (`NFNL_MSG_BATCH_BEGIN` … `END`), which
//! the kernel applies atomically, as `nft -f` does.
//!
//! The messages are encoded by podnet-netlink's [`podnet_netlink::nftables`] (shared with the
//! service proxy), exactly as `nft` 1.0 encodes the same rule text (see [`match_addr`]), so `nft
//! list ruleset` shows them as if they had been added with `nft`, and the comment is libnftnl's
//! user data (`NFTNL_UDATA_RULE_COMMENT`). This module holds the plugin's own vocabulary: the
//! [`Change`]s and [`Expr`]s ipMasq is made of.
//!
//! Running `nft` costs a process start and a dump of the ruleset into its cache per call (once per
//! ADD, twice per DEL); this is one socket and one or two round trips.

use std::net::IpAddr;

use ipnet::IpNet;
use podnet_netlink::nftables::{
    self as nl, addr_offset, BaseHook, BatchError, MsgBuf, NftSocket, PrefixMatch, META_NFPROTO, PAYLOAD_NETWORK, REG_1,
};

pub use podnet_netlink::nftables::{family_name, CmpOp, FAMILY_INET, HOOK_POSTROUTING};

use crate::error::{CniError, CniResult};
use crate::nft::RuleRef;

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

impl Expr {
    /// Appends the expression's encoding to a rule's expressions.
    fn encode(&self, b: &mut MsgBuf) {
        match self {
            Expr::MetaNfproto => b.meta_load(META_NFPROTO, REG_1),
            Expr::Payload { offset, len } => b.payload(REG_1, PAYLOAD_NETWORK, *offset, *len),
            Expr::Bitwise { mask } => b.bitwise(REG_1, mask, &vec![0; mask.len()]),
            Expr::Cmp { op, data } => b.cmp(REG_1, *op, data),
            Expr::Masq => b.masq(None),
        }
    }
}

/// `ip saddr A` / `ip6 saddr A` in an inet table: the family check, then the address.
pub fn match_family(ip: IpAddr) -> Vec<Expr> {
    let proto = if ip.is_ipv4() { nl::FAMILY_IPV4 } else { nl::FAMILY_IPV6 };
    vec![Expr::MetaNfproto, Expr::Cmp { op: CmpOp::Eq, data: vec![proto] }]
}

/// The source (`source` true) or destination address against `net`, as `nft` encodes
/// `ip saddr 10.1.2.5`, `ip daddr != 10.1.2.0/24` or `ip daddr != 224.0.0.0/4`: a prefix on a
/// byte boundary loads and compares only its bytes; any other prefix loads the whole address and
/// masks it ([`PrefixMatch`]). (The family check of [`match_family`] must come first.)
pub fn match_addr(source: bool, net: IpNet, op: CmpOp) -> Vec<Expr> {
    let offset = addr_offset(net.addr().is_ipv4(), source);
    let m = PrefixMatch::of(&net);
    let mut out = vec![Expr::Payload { offset, len: m.load_len }];
    if let Some(mask) = m.mask {
        out.push(Expr::Bitwise { mask });
    }
    out.push(Expr::Cmp { op, data: m.data });
    out
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
    /// Appends the change's message (sequence number `seq`) to `b`.
    fn encode(&self, b: &mut MsgBuf, seq: u32) {
        match self {
            Change::AddTable { family, name } => b.new_table(seq, *family, name),
            Change::AddBaseChain { family, table, name, chain_type, hook, priority } => {
                let base = BaseHook { chain_type, hook: *hook, priority: *priority };
                b.new_chain(seq, *family, table, name, Some(base))
            }
            Change::AddRule { family, table, chain, exprs, comment } => {
                let mut e = MsgBuf::new();
                for x in exprs {
                    x.encode(&mut e);
                }
                b.new_rule(seq, *family, table, chain, &e, comment)
            }
            Change::DeleteRule { family, table, chain, handle } => b.del_rule(seq, *family, table, chain, *handle),
        }
    }

    /// The change as `nft` syntax, for error messages.
    fn text(&self) -> String {
        match self {
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
}

/// The batch of `changes`: BEGIN at `begin_seq`, change `i` at `begin_seq + 1 + i` (END goes at
/// `begin_seq + 1 + changes.len()`).
fn batch(changes: &[Change], begin_seq: u32) -> MsgBuf {
    let mut b = MsgBuf::with_capacity(256 * (changes.len() + 1));
    b.batch_begin(begin_seq);
    for (i, c) in changes.iter().enumerate() {
        c.encode(&mut b, begin_seq.wrapping_add(1 + i as u32));
    }
    b
}

/// A `NETLINK_NETFILTER` socket.
#[derive(Debug)]
pub struct Nft {
    socket: NftSocket,
}

fn nl_err(e: podnet_netlink::Error) -> CniError {
    CniError::Nftables(format!("nftables: {e}"))
}

impl Nft {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> CniResult<Nft> {
        Ok(Nft { socket: NftSocket::open().map_err(nl_err)? })
    }

    /// Applies `changes` in one transaction: all of them, or none and the first error.
    pub fn apply(&mut self, changes: &[Change]) -> CniResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let n = changes.len() as u32;
        let begin = self.socket.next_seq(n + 2);
        let mut b = batch(changes, begin);
        match self.socket.commit(&mut b, begin, begin.wrapping_add(n + 1)) {
            Ok(()) => Ok(()),
            Err(BatchError::Socket(e)) => Err(nl_err(e)),
            Err(e @ BatchError::Rejected { seq, .. }) => {
                let idx = seq.wrapping_sub(begin).wrapping_sub(1) as usize;
                Err(CniError::Nftables(match changes.get(idx) {
                    Some(c) => format!("nftables: {}: {e}", c.text()),
                    None => format!("nftables: the transaction failed: {e}"),
                }))
            }
            Err(e @ BatchError::Unanswered) => Err(CniError::Nftables(format!("nftables: {e}"))),
        }
    }

    /// The rules of table `table` of `family` (none when the table does not exist).
    pub fn rules(&mut self, family: u8, table: &str) -> CniResult<Vec<RuleRef>> {
        Ok(self
            .socket
            .rules(family, table)
            .map_err(nl_err)?
            .into_iter()
            .map(|r| RuleRef {
                family: family_name(r.family).into(),
                table: r.table,
                chain: r.chain,
                handle: r.handle,
                comment: r.comment,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use podnet_netlink::nftables::parse::{attrs, parse_rule};
    use podnet_netlink::nftables::NFTA_RULE_USERDATA;

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
    fn batch_layout() {
        let changes = [
            Change::AddTable { family: FAMILY_INET, name: "podnet_masq".into() },
            Change::AddRule {
                family: FAMILY_INET,
                table: "podnet_masq".into(),
                chain: "postrouting".into(),
                exprs: vec![Expr::Masq],
                comment: "podnet:x:y".into(),
            },
        ];
        let b = batch(&changes, 100);
        let bytes = b.as_bytes();
        // BEGIN, the table, the rule: each with its sequence number.
        let mut at = 0;
        let mut seqs = Vec::new();
        let mut last = 0;
        while at < bytes.len() {
            let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            seqs.push(u32::from_ne_bytes(bytes[at + 8..at + 12].try_into().unwrap()));
            last = at;
            at += len;
        }
        assert_eq!(seqs, [100, 101, 102]);
        let rule = &bytes[last..];
        assert_eq!(u16::from_ne_bytes([rule[4], rule[5]]), (10 << 8) | 6);
        assert_eq!(rule[16], FAMILY_INET);
        let udata = attrs(&rule[20..]).into_iter().find(|(t, _)| *t == NFTA_RULE_USERDATA).unwrap().1;
        assert_eq!(udata, b"\x00\x0bpodnet:x:y\x00");
        // Without a handle it is no listed rule.
        assert!(parse_rule(FAMILY_INET, &rule[20..]).is_none());
        assert_eq!(changes[1].text(), "add rule inet podnet_masq postrouting … comment \"podnet:x:y\"");
    }
}
