//! `ipMasq`: source NAT for traffic from a pod to outside its subnet, in nftables (table
//! `inet podnet_masq`, base chain `postrouting` at the srcnat priority). One rule per pod address,
//! as the reference plugin's rules do: from the address, not to its own subnet and not to
//! multicast, masquerade. The rules carry the attachment's tag as comment, so DEL removes exactly
//! them (without needing the address) and GC those of attachments no longer valid.
//!
//! The rules are made over netlink ([`crate::nftnl`]), not with the `nft` program (which cost a
//! process start and a full cache dump on every ADD and two on every DEL); `nft list ruleset`
//! shows them as
//! `ip saddr 10.244.1.5 ip daddr != 10.244.1.0/24 ip daddr != 224.0.0.0/4 masquerade comment "…"`.

use std::collections::HashSet;

use ipnet::IpNet;

use crate::error::CniResult;
use crate::nft;
use crate::nftnl::{self, Change, CmpOp, Expr, Nft, FAMILY_INET, HOOK_POSTROUTING};

pub const TABLE: &str = "podnet_masq";
pub const CHAIN: &str = "postrouting";
/// The srcnat priority.
pub const PRIORITY: i32 = 100;

/// The changes adding the rules of one attachment (its addresses with their subnets), the table
/// and chain first (no error when they exist).
pub fn add_changes(tag: &str, addrs: &[IpNet]) -> Vec<Change> {
    let mut v = vec![
        Change::AddTable { family: FAMILY_INET, name: TABLE.into() },
        Change::AddBaseChain {
            family: FAMILY_INET,
            table: TABLE.into(),
            name: CHAIN.into(),
            chain_type: "nat".into(),
            hook: HOOK_POSTROUTING,
            priority: PRIORITY,
        },
    ];
    for a in addrs {
        let mcast: IpNet = if a.addr().is_ipv4() { "224.0.0.0/4" } else { "ff00::/8" }.parse().expect("multicast");
        let host = IpNet::new(a.addr(), a.max_prefix_len()).expect("host prefix");
        let mut exprs = nftnl::match_family(a.addr());
        exprs.extend(nftnl::match_addr(true, host, CmpOp::Eq));
        exprs.extend(nftnl::match_addr(false, a.trunc(), CmpOp::Neq));
        exprs.extend(nftnl::match_addr(false, mcast, CmpOp::Neq));
        exprs.push(Expr::Masq);
        v.push(Change::AddRule {
            family: FAMILY_INET,
            table: TABLE.into(),
            chain: CHAIN.into(),
            exprs,
            comment: tag.into(),
        });
    }
    v
}

/// Adds the rules of one attachment.
///
/// Once a network has its table and chain, only the rules are sent: re-adding an existing base
/// chain is an update of it, which the kernel frees after an RCU grace period, and closing the
/// socket (at the plugin's exit) then waits for that grace period (`nft_rcv_nl_event` flushes the
/// pending destroy work): 10–15 ms per ADD. So the rules go first on their own, and only if that
/// fails (no table or chain yet, the first ADD) is the whole set sent again with table and chain.
pub fn add(tag: &str, addrs: &[IpNet]) -> CniResult<()> {
    if addrs.is_empty() {
        return Ok(());
    }
    let changes = add_changes(tag, addrs);
    let mut nft = Nft::open()?;
    if nft.apply(&changes[2..]).is_ok() {
        return Ok(());
    }
    nft.apply(&changes)
}

/// Deletes the rules of the table for which `doomed` holds; returns how many.
fn delete_where(doomed: impl Fn(&nft::RuleRef) -> bool) -> CniResult<usize> {
    delete_where_with(&mut Nft::open()?, doomed)
}

fn delete_where_with(nft: &mut Nft, doomed: impl Fn(&nft::RuleRef) -> bool) -> CniResult<usize> {
    let victims: Vec<Change> = nft
        .rules(FAMILY_INET, TABLE)?
        .into_iter()
        .filter(|r| doomed(r))
        .map(|r| Change::DeleteRule { family: FAMILY_INET, table: r.table, chain: r.chain, handle: r.handle })
        .collect();
    nft.apply(&victims)?;
    Ok(victims.len())
}

/// Removes the rules of one attachment (none is fine).
pub fn del(tag: &str) -> CniResult<usize> {
    delete_where(|r| r.comment == tag)
}

/// Removes the rules of one attachment through `nft`, an open socket. Deleted rules are freed
/// after an RCU grace period, and closing the socket waits for it (see [`add`]): a caller that
/// has other slow work to do (DEL: deleting the veth pair, which waits for grace periods itself)
/// does this first and drops the socket last, so that the two waits overlap.
pub fn del_with(nft: &mut Nft, tag: &str) -> CniResult<usize> {
    delete_where_with(nft, |r| r.comment == tag)
}

/// How many rules the attachment has (CHECK).
pub fn count(tag: &str) -> CniResult<usize> {
    Ok(Nft::open()?.rules(FAMILY_INET, TABLE)?.iter().filter(|r| r.comment == tag).count())
}

/// GC: removes the rules of `network` whose tag is not in `valid_tags`.
pub fn gc(network: &str, valid_tags: &HashSet<String>) -> CniResult<usize> {
    let prefix = nft::network_tag(network);
    delete_where(|r| r.comment.starts_with(&prefix) && !valid_tags.contains(&r.comment))
}

/// Whether nftables can be used (STATUS): the table can be listed.
pub fn available() -> bool {
    Nft::open().and_then(|mut n| n.rules(FAMILY_INET, TABLE)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_per_family() {
        let c = add_changes("podnet:x:y", &["10.1.2.5/24".parse().unwrap(), "fd00::5/64".parse().unwrap()]);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0], Change::AddTable { family: FAMILY_INET, name: "podnet_masq".into() });
        assert!(
            matches!(&c[1], Change::AddBaseChain { chain_type, hook: 4, priority: 100, .. } if chain_type == "nat")
        );
        // ip saddr 10.1.2.5 ip daddr != 10.1.2.0/24 ip daddr != 224.0.0.0/4 masquerade
        let Change::AddRule { exprs, comment, .. } = &c[2] else { panic!("{:?}", c[2]) };
        assert_eq!(comment, "podnet:x:y");
        assert_eq!(exprs[..2], nftnl::match_family("10.1.2.5".parse().unwrap())[..]);
        assert_eq!(exprs[3], Expr::Cmp { op: CmpOp::Eq, data: vec![10, 1, 2, 5] });
        assert_eq!(exprs[5], Expr::Cmp { op: CmpOp::Neq, data: vec![10, 1, 2] });
        assert_eq!(exprs[8], Expr::Cmp { op: CmpOp::Neq, data: vec![0xe0, 0, 0, 0] });
        assert_eq!(exprs.last(), Some(&Expr::Masq));
        // ip6 saddr fd00::5 ip6 daddr != fd00::/64 ip6 daddr != ff00::/8 masquerade
        let Change::AddRule { exprs, .. } = &c[3] else { panic!("{:?}", c[3]) };
        assert_eq!(exprs[2], Expr::Payload { offset: 8, len: 16 });
        assert_eq!(exprs[4], Expr::Payload { offset: 24, len: 8 });
        assert_eq!(exprs[7], Expr::Cmp { op: CmpOp::Neq, data: vec![0xff] });
    }
}
