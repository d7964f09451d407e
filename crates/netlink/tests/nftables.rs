//! Privileged integration tests of the nf_tables encoder and socket
//! (`podnet_netlink::nftables`). Each test works only in a network namespace it creates itself
//! (`pn-nl-<pid>-<n>`, deleted by a guard even when the test fails), checks what it wrote with
//! `nft list` inside that namespace, and checks at the end that the host's own namespace was not
//! changed.

mod common;

use common::{require_root, HostState, TestNs};
use podnet_netlink::nftables::{
    addr_offset, BaseHook, BatchError, CmpOp, MsgBuf, NftSocket, SetRef, SetSpec, Verdict, FAMILY_INET, FAMILY_IPV4,
    HOOK_POSTROUTING, META_NFPROTO, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY, NFT_DATA_VERDICT, NFT_SET_MAP, REG_1,
    TYPE_IPADDR,
};
use podnet_netlink::{run_in, Errno};

/// `ip saddr 10.1.2.5 ip daddr != 10.1.2.0/24 ip daddr != 224.0.0.0/4 masquerade` in an inet table.
fn masq_rule() -> MsgBuf {
    let mut e = MsgBuf::new();
    e.meta_load(META_NFPROTO, REG_1);
    e.cmp(REG_1, CmpOp::Eq, &[2]);
    e.prefix_match(addr_offset(true, true), &"10.1.2.5/32".parse().unwrap(), CmpOp::Eq);
    e.prefix_match(addr_offset(true, false), &"10.1.2.0/24".parse().unwrap(), CmpOp::Neq);
    e.prefix_match(addr_offset(true, false), &"224.0.0.0/4".parse().unwrap(), CmpOp::Neq);
    e.masq(None);
    e
}

#[test]
fn batches_listings_and_rejections() {
    if !require_root("batches_listings_and_rejections") {
        return;
    }
    let host = HostState::capture();
    let t = TestNs::new();
    run_in(&t.ns, || {
        let mut s = NftSocket::open().unwrap();
        // Nothing yet: listings of a missing table are empty.
        assert!(s.rules(FAMILY_INET, "pn_test").unwrap().is_empty());
        assert_eq!(s.table_use(FAMILY_INET, "pn_test").unwrap(), None);

        // One batch: a table, a base chain, a rule with a comment.
        let begin = s.next_seq(10);
        let mut b = MsgBuf::new();
        b.batch_begin(begin);
        b.new_table(begin + 1, FAMILY_INET, "pn_test");
        let hook = BaseHook { chain_type: "nat", hook: HOOK_POSTROUTING, priority: 100 };
        b.new_chain(begin + 2, FAMILY_INET, "pn_test", "postrouting", Some(hook));
        b.new_rule(begin + 3, FAMILY_INET, "pn_test", "postrouting", &masq_rule(), "podnet:x:y");
        s.commit(&mut b, begin, begin + 4).unwrap();
        let rules = s.rules(FAMILY_INET, "pn_test").unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!((rules[0].chain.as_str(), rules[0].comment.as_str()), ("postrouting", "podnet:x:y"));
        assert!(s.has_chain(FAMILY_INET, "pn_test", "postrouting").unwrap());
        assert!(!s.has_chain(FAMILY_INET, "pn_test", "nope").unwrap());
        assert_eq!(s.chains(FAMILY_INET, "pn_test").unwrap(), ["postrouting"]);

        // A verdict map with elements, in an ip table.
        let begin = s.next_seq(10);
        let mut b = MsgBuf::new();
        b.batch_begin(begin);
        b.new_table(begin + 1, FAMILY_IPV4, "pn_test");
        b.new_chain(begin + 2, FAMILY_IPV4, "pn_test", "target", None);
        let spec = SetSpec {
            table: "pn_test",
            name: "dispatch",
            flags: NFT_SET_MAP,
            key_type: TYPE_IPADDR,
            key_len: 4,
            data: Some((NFT_DATA_VERDICT, 0)),
            id: 1,
            timeout_ms: None,
            size: None,
            userdata: &[0, 4, 2, 0, 0, 0],
        };
        b.new_set(begin + 3, FAMILY_IPV4, &spec);
        b.set_elems::<()>(begin + 4, FAMILY_IPV4, "pn_test", SetRef::Name("dispatch"), true, 2, |b, i| {
            b.value(NFTA_SET_ELEM_KEY, &[10, 96, 0, 1 + i as u8]);
            let v = if i == 0 { Verdict::Goto("target".into()) } else { Verdict::Drop };
            b.verdict(NFTA_SET_ELEM_DATA, &v);
            Ok(())
        })
        .unwrap();
        s.commit(&mut b, begin, begin + 5).unwrap();
        let sets = s.sets(FAMILY_IPV4, "pn_test").unwrap();
        assert_eq!(sets.len(), 1);
        assert!(sets[0].is_map() && !sets[0].is_anonymous());
        let elems = s.set_elements(FAMILY_IPV4, "pn_test", "dispatch").unwrap();
        let mut got: Vec<(Vec<u8>, Option<Verdict>)> = elems.into_iter().map(|e| (e.key, e.verdict)).collect();
        got.sort();
        assert_eq!(
            got,
            [(vec![10, 96, 0, 1], Some(Verdict::Goto("target".into()))), (vec![10, 96, 0, 2], Some(Verdict::Drop))]
        );
        assert_eq!(s.table_use(FAMILY_IPV4, "pn_test").unwrap(), Some(2)); // a chain and a map

        // A batch with a bad message: nothing of it is applied, and the refused message is named
        // by its sequence number.
        let begin = s.next_seq(10);
        let mut b = MsgBuf::new();
        b.batch_begin(begin);
        b.new_chain(begin + 1, FAMILY_IPV4, "pn_test", "fresh", None);
        b.flush_chain(begin + 2, FAMILY_IPV4, "pn_test", "missing");
        match s.commit(&mut b, begin, begin + 3) {
            Err(BatchError::Rejected { seq, errno, .. }) => {
                assert_eq!((seq, errno), (begin + 2, Errno::ENOENT));
            }
            other => panic!("{other:?}"),
        }
        assert!(!s.has_chain(FAMILY_IPV4, "pn_test", "fresh").unwrap());

        // Deleting the rule by its handle.
        let handle = s.rules(FAMILY_INET, "pn_test").unwrap()[0].handle;
        let begin = s.next_seq(10);
        let mut b = MsgBuf::new();
        b.batch_begin(begin);
        b.del_rule(begin + 1, FAMILY_INET, "pn_test", "postrouting", handle);
        s.commit(&mut b, begin, begin + 2).unwrap();
        assert!(s.rules(FAMILY_INET, "pn_test").unwrap().is_empty());
    })
    .unwrap();

    // What nft shows: the rule text nft itself would have written (checked before deleting it in
    // a second pass), and the map.
    let listing = t.exec(&["nft", "list", "table", "ip", "pn_test"]);
    assert!(listing.contains("10.96.0.1 : goto target"), "{listing}");
    assert!(listing.contains("10.96.0.2 : drop"), "{listing}");
    run_in(&t.ns, || {
        let mut s = NftSocket::open().unwrap();
        let begin = s.next_seq(10);
        let mut b = MsgBuf::new();
        b.batch_begin(begin);
        b.new_rule(begin + 1, FAMILY_INET, "pn_test", "postrouting", &masq_rule(), "podnet:x:y");
        s.commit(&mut b, begin, begin + 2).unwrap();
    })
    .unwrap();
    let listing = t.exec(&["nft", "list", "table", "inet", "pn_test"]);
    assert!(
        listing.contains(
            "ip saddr 10.1.2.5 ip daddr != 10.1.2.0/24 ip daddr != 224.0.0.0/4 masquerade comment \"podnet:x:y\""
        ),
        "{listing}"
    );
    assert!(listing.contains("type nat hook postrouting priority srcnat; policy accept;"), "{listing}");
    drop(t);
    host.assert_unchanged();
}
