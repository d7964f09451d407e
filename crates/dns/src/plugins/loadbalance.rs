//! `loadbalance`: shuffles the A and AAAA (and MX) records of NOERROR answers so clients spread
//! over the addresses, keeping CNAMEs first as CoreDNS does ([`shuffle_records`] is pure).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::wire::{WireAnswer, WireNext, WireQuery};
use crate::{BoxFuture, Handler, Next, Request};

/// Reorders a section: CNAMEs, other records, then shuffled addresses, then shuffled MX.
pub fn shuffle_records(records: Vec<Record>, rng: &mut impl Rng) -> Vec<Record> {
    let (mut cname, mut rest, mut address, mut mx) = (vec![], vec![], vec![], vec![]);
    for r in records {
        match r.record_type() {
            RecordType::CNAME => cname.push(r),
            RecordType::A | RecordType::AAAA => address.push(r),
            RecordType::MX => mx.push(r),
            _ => rest.push(r),
        }
    }
    address.shuffle(rng);
    mx.shuffle(rng);
    cname.extend(rest);
    cname.extend(address);
    cname.extend(mx);
    cname
}

/// The `loadbalance` plugin (round_robin).
#[derive(Debug, Default)]
pub struct LoadBalancePlugin;

impl Handler for LoadBalancePlugin {
    fn name(&self) -> &'static str {
        "loadbalance"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let mut resp = next.run(req).await;
            let transfer = resp.query().is_some_and(|q| matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR));
            if resp.response_code() == ResponseCode::NoError && !transfer {
                let mut rng = rand::rng();
                let answers = shuffle_records(resp.take_answers(), &mut rng);
                resp.insert_answers(answers);
                let ns = shuffle_records(resp.take_name_servers(), &mut rng);
                resp.insert_name_servers(ns);
                let extra = shuffle_records(resp.take_additionals(), &mut rng);
                resp.insert_additionals(extra);
            }
            resp
        })
    }

    /// Only answers with nothing to shuffle may take the wire path.
    fn wire(&self, q: &WireQuery<'_>, next: WireNext<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        next.reordered().run(q, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::{Name, RData};
    use std::collections::HashSet;

    fn a(last: u8) -> Record {
        Record::from_rdata(Name::from_ascii("web.example.").unwrap(), 30, RData::A(A::new(10, 0, 0, last)))
    }

    #[test]
    fn shuffles_addresses_and_keeps_cnames_first() {
        let cname = Record::from_rdata(
            Name::from_ascii("www.example.").unwrap(),
            30,
            RData::CNAME(CNAME(Name::from_ascii("web.example.").unwrap())),
        );
        let mut input = vec![a(1), a(2), cname.clone(), a(3), a(4)];
        input.push(a(5));
        let mut orders = HashSet::new();
        let mut rng = rand::rng();
        for _ in 0..200 {
            let out = shuffle_records(input.clone(), &mut rng);
            assert_eq!(out.len(), 6);
            assert_eq!(out[0], cname);
            let order: Vec<String> = out[1..].iter().map(|r| r.data().to_string()).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
            orders.insert(order);
        }
        assert!(orders.len() > 10, "only {} orders seen", orders.len());
    }
}
