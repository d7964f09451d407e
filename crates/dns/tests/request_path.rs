//! The request path on malformed and unusual input, on every build: the invariants of
//! `podnet_dns::fuzz::check` (the fuzz target's, `fuzz/`) over well-formed queries of every type
//! the server answers and over 20,000 deterministic mutations of them (bytes flipped, cut,
//! repeated, inserted). The fuzz target explores further with coverage guidance.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use podnet_dns::fuzz::{chain, check};

/// Queries for the names the fuzz chain answers, with and without EDNS.
fn seeds() -> Vec<Vec<u8>> {
    let names = [
        ("web.default.svc.cluster.local.", RecordType::A),
        ("web.default.svc.cluster.local.", RecordType::AAAA),
        ("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV),
        ("db.ns.svc.cluster.local.", RecordType::A),
        ("_pg._tcp.db.ns.svc.cluster.local.", RecordType::SRV),
        ("db-1.db.ns.svc.cluster.local.", RecordType::A),
        ("ext.ns.svc.cluster.local.", RecordType::A),
        ("ext-in.ns.svc.cluster.local.", RecordType::A),
        ("ext-loop.ns.svc.cluster.local.", RecordType::CNAME),
        ("10-244-1-1.ns.pod.cluster.local.", RecordType::A),
        ("10.0.96.10.in-addr.arpa.", RecordType::PTR),
        ("nothere.ns.svc.cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::SOA),
        ("dns-version.cluster.local.", RecordType::TXT),
        ("a.example.org.", RecordType::ANY),
    ];
    let mut out = Vec::new();
    for (i, (name, rtype)) in names.iter().enumerate() {
        for edns in [false, true] {
            let mut m = Message::new();
            m.set_id(i as u16 * 2 + u16::from(edns)).set_message_type(MessageType::Query).set_op_code(OpCode::Query);
            m.set_recursion_desired(true);
            m.add_query(Query::query(Name::from_ascii(name).unwrap(), *rtype));
            if edns {
                let mut e = Edns::new();
                e.set_max_payload(1232);
                m.set_edns(e);
            }
            out.push(m.to_vec().unwrap());
        }
    }
    out
}

/// A small deterministic generator (xorshift), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `seed`.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8);
            }
            _ if !b.is_empty() => {
                let from = rng.below(b.len());
                let len = rng.below(b.len() - from + 1);
                let piece = b[from..from + len].to_vec();
                let at = rng.below(b.len() + 1);
                b.splice(at..at, piece);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn well_formed_queries_get_well_formed_answers() {
    let chain = chain();
    let mut wire_answers = 0;
    for seed in seeds() {
        wire_answers += check(&chain, &seed);
    }
    // Asked again, every answer the cache keeps and loadbalance would not reorder comes from the
    // wire path: 12 of the 15 names (not the 40 endpoints of db, its SRV, nor ANY with A and AAAA).
    assert!(wire_answers >= 48, "the wire path answered {wire_answers} of 60 repeated queries");
}

#[test]
fn mutated_queries_never_break_the_request_path() {
    let chain = chain();
    let seeds = seeds();
    let mut rng = Rng(0x5eed_0f9d_2026);
    for i in 0..20_000 {
        let input = mutate(&seeds[i % seeds.len()], &mut rng);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&chain, &input);
        }));
        assert!(outcome.is_ok(), "input {i} broke the request path: {input:02x?}");
    }
}

#[test]
fn short_and_empty_inputs() {
    let chain = chain();
    for len in 0..16 {
        check(&chain, &vec![0u8; len]);
        check(&chain, &vec![0xffu8; len]);
    }
}
