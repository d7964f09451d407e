//! `ipMasq`: source NAT for traffic from a pod to outside its subnet, in nftables (table
//! `inet podnet_masq`, base chain `postrouting` at the srcnat priority). One rule per pod address,
//! as the reference plugin's rules do: from the address, not to its own subnet and not to
//! multicast, masquerade. The rules carry the attachment's tag as comment, so DEL removes exactly
//! them (without needing the address) and GC those of attachments no longer valid.

use std::collections::HashSet;

use ipnet::IpNet;

use crate::error::CniResult;
use crate::nft;

pub const TABLE: &str = "podnet_masq";
pub const CHAIN: &str = "postrouting";

/// The script adding the rules of one attachment (its addresses with their subnets).
pub fn add_script(tag: &str, addrs: &[IpNet]) -> String {
    let mut s = format!(
        "add table inet {TABLE}\nadd chain inet {TABLE} {CHAIN} {{ type nat hook postrouting priority 100; policy accept; }}\n"
    );
    for a in addrs {
        let (fam, mcast) = if a.addr().is_ipv4() { ("ip", "224.0.0.0/4") } else { ("ip6", "ff00::/8") };
        s += &format!(
            "add rule inet {TABLE} {CHAIN} {fam} saddr {} {fam} daddr != {} {fam} daddr != {mcast} masquerade comment \"{tag}\"\n",
            a.addr(),
            a.trunc()
        );
    }
    s
}

/// Adds the rules of one attachment.
pub fn add(tag: &str, addrs: &[IpNet]) -> CniResult<()> {
    if addrs.is_empty() {
        return Ok(());
    }
    nft::apply(&add_script(tag, addrs))
}

/// Removes the rules of one attachment (none is fine).
pub fn del(tag: &str) -> CniResult<usize> {
    nft::delete_rules_where("inet", TABLE, |r| r.comment == tag)
}

/// How many rules the attachment has (CHECK).
pub fn count(tag: &str) -> CniResult<usize> {
    let Some(listing) = nft::list(&["table", "inet", TABLE])? else { return Ok(0) };
    Ok(nft::rules(&listing).iter().filter(|r| r.comment == tag).count())
}

/// GC: removes the rules of `network` whose tag is not in `valid_tags`.
pub fn gc(network: &str, valid_tags: &HashSet<String>) -> CniResult<usize> {
    let prefix = nft::network_tag(network);
    nft::delete_rules_where("inet", TABLE, |r| r.comment.starts_with(&prefix) && !valid_tags.contains(&r.comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_per_family() {
        let s = add_script("podnet:x:y", &["10.1.2.5/24".parse().unwrap(), "fd00::5/64".parse().unwrap()]);
        assert!(s.contains(
            "add rule inet podnet_masq postrouting ip saddr 10.1.2.5 ip daddr != 10.1.2.0/24 ip daddr != 224.0.0.0/4 masquerade comment \"podnet:x:y\"\n"
        ));
        assert!(s.contains("ip6 saddr fd00::5 ip6 daddr != fd00::/64 ip6 daddr != ff00::/8 masquerade"));
        assert!(s.starts_with("add table inet podnet_masq\n"));
    }
}
