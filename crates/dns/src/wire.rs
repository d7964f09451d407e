//! The wire path: the common query — one question, at most an OPT record — answered straight
//! from an answer a plugin keeps as bytes (the `cache`), without parsing the query into a
//! hickory `Message` or encoding an answer.
//!
//! A plugin takes part through [`crate::Handler::wire`]: it answers from its bytes, passes the
//! query on with [`WireNext::run`] (counting it on the way back, as `prometheus` does), or
//! declines. The default declines, so a chain with a plugin that must see every query as a
//! message never takes this path; a declined query goes down the Message path
//! ([`crate::Handler::handle`]), which gives the same answer. Declining must leave no trace:
//! whatever a plugin counts, it counts once the answer is written.
//!
//! The pure parts are here: [`WireQuery::parse`] (the query shape the path takes, and the
//! cache key in lowercased wire form), [`StoredAnswer`] (an encoded answer with the offsets of
//! its TTLs, written out for a query with its id, question, RD bit, TTLs counted down and an OPT
//! record when the query had one) and [`in_zone`] for zones matched on wire names.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::server::{ADVERTISED_UDP_PAYLOAD, MIN_UDP_PAYLOAD};
use crate::{Handler, Transport};

/// The DNS header's length.
pub const HEADER_LEN: usize = 12;
/// The longest name in wire form (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// A cache key: the lowercased wire name, then type, class and the DO bit.
const MAX_KEY: usize = MAX_NAME + 5;
const TYPE_OPT: u16 = 41;

/// The EDNS0 of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireEdns {
    pub payload: u16,
    pub dnssec_ok: bool,
}

/// A query of the shape the wire path takes: QUERY opcode, one question with an uncompressed
/// name, no answer or authority records, at most one OPT record of EDNS version 0 (its options
/// are ignored, as the Message path ignores them) and nothing after it.
#[derive(Debug)]
pub struct WireQuery<'a> {
    bytes: &'a [u8],
    question_end: usize,
    key: [u8; MAX_KEY],
    name_len: usize,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<WireEdns>,
    pub client: SocketAddr,
    pub transport: Transport,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Whether EDNS options are well formed and none is one the Message path reads (client subnet,
/// code 8, is parsed and can be refused there); the others are ignored on both paths.
fn plain_options(mut options: &[u8]) -> bool {
    while !options.is_empty() {
        let (Some(code), Some(len)) = (u16_at(options, 0), u16_at(options, 2)) else {
            return false;
        };
        let end = 4 + usize::from(len);
        if code == 8 || options.len() < end {
            return false;
        }
        options = &options[end..];
    }
    true
}

impl<'a> WireQuery<'a> {
    /// `bytes` as a query for the wire path, or `None` for anything else (which the Message path
    /// answers, errors included).
    pub fn parse(bytes: &'a [u8], client: SocketAddr, transport: Transport) -> Option<WireQuery<'a>> {
        let flags = u16_at(bytes, 2)?;
        // A query (QR 0) of opcode QUERY with one question and nothing but an optional OPT.
        if flags & 0xf800 != 0 || u16_at(bytes, 4)? != 1 || u16_at(bytes, 6)? != 0 || u16_at(bytes, 8)? != 0 {
            return None;
        }
        let additional = u16_at(bytes, 10)?;
        let mut key = [0u8; MAX_KEY];
        let mut i = HEADER_LEN;
        loop {
            let len = usize::from(*bytes.get(i)?);
            if len > 63 {
                return None; // a pointer (or a reserved label type) in the question
            }
            let label = bytes.get(i..i + 1 + len)?;
            let at = i - HEADER_LEN;
            if at + label.len() > MAX_NAME {
                return None;
            }
            for (k, b) in key[at..at + label.len()].iter_mut().zip(label) {
                *k = b.to_ascii_lowercase();
            }
            i += 1 + len;
            if len == 0 {
                break;
            }
        }
        let name_len = i - HEADER_LEN;
        let qtype = u16_at(bytes, i)?;
        let qclass = u16_at(bytes, i + 2)?;
        let question_end = i + 4;
        if matches!(RecordType::from(qtype), RecordType::AXFR | RecordType::IXFR | RecordType::OPT) {
            return None;
        }
        let edns = match additional {
            0 if bytes.len() == question_end => None,
            1 => {
                let opt = &bytes[question_end..];
                // Root name, type OPT, class = payload, TTL = extended rcode, version, flags.
                if opt.len() < 11 || opt[0] != 0 || u16_at(opt, 1)? != TYPE_OPT || opt[6] != 0 {
                    return None;
                }
                let rdlen = usize::from(u16_at(opt, 9)?);
                if opt.len() != 11 + rdlen || !plain_options(&opt[11..]) {
                    return None;
                }
                Some(WireEdns { payload: u16_at(opt, 3)?, dnssec_ok: opt[7] & 0x80 != 0 })
            }
            _ => return None,
        };
        let dnssec_ok = edns.is_some_and(|e| e.dnssec_ok);
        key[name_len..name_len + 2].copy_from_slice(&qtype.to_be_bytes());
        key[name_len + 2..name_len + 4].copy_from_slice(&qclass.to_be_bytes());
        key[name_len + 4] = u8::from(dnssec_ok);
        Some(WireQuery { bytes, question_end, key, name_len, qtype, qclass, edns, client, transport })
    }

    /// The query's id.
    pub fn id(&self) -> [u8; 2] {
        [self.bytes[0], self.bytes[1]]
    }

    /// Whether the query asks for recursion.
    pub fn recursion_desired(&self) -> bool {
        self.bytes[2] & 0x01 != 0
    }

    /// The question as received (name in the client's case, type, class).
    pub fn question(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..self.question_end]
    }

    /// The question's name in wire form, lowercased.
    pub fn name(&self) -> &[u8] {
        &self.key[..self.name_len]
    }

    /// The cache key (see [`key_of`]).
    pub fn key(&self) -> &[u8] {
        &self.key[..self.name_len + 5]
    }

    pub fn record_type(&self) -> RecordType {
        RecordType::from(self.qtype)
    }

    /// The whole query as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The largest answer the client takes over this transport (as the Message path computes it).
    pub fn max_response(&self) -> usize {
        match (self.transport, self.edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => MIN_UDP_PAYLOAD,
            (Transport::Udp, Some(e)) => usize::from(e.payload).max(MIN_UDP_PAYLOAD),
        }
    }
}

/// Appends `name` in wire form, lowercased.
pub fn push_name(name: &Name, out: &mut Vec<u8>) {
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
}

/// The cache key of a question, as [`WireQuery::key`] reads it off the wire.
pub fn key_of(name: &Name, qtype: RecordType, qclass: u16, dnssec_ok: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 6);
    push_name(name, &mut key);
    key.extend_from_slice(&u16::from(qtype).to_be_bytes());
    key.extend_from_slice(&qclass.to_be_bytes());
    key.push(u8::from(dnssec_ok));
    key
}

/// `zone` (text, `cluster.local.`) in the lowercased wire form [`in_zone`] takes; `None` if it is
/// not a name.
pub fn zone_name(zone: &str) -> Option<Vec<u8>> {
    let name = Name::from_ascii(zone).ok().filter(Name::is_fqdn)?;
    let mut out = Vec::with_capacity(name.len() + 1);
    push_name(&name, &mut out);
    Some(out)
}

/// Whether `name` is `zone` or below it (both lowercased wire names).
pub fn in_zone(zone: &[u8], name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        if name[i..] == *zone {
            return true;
        }
        i += 1 + usize::from(name[i]);
    }
    false
}

/// The name that `name` (a wire name) spells, as text with a trailing dot.
pub fn name_text(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while let Some(&len) = name.get(i) {
        if len == 0 {
            break;
        }
        let label = name.get(i + 1..i + 1 + usize::from(len)).unwrap_or_default();
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        i += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// How the TTLs of a stored answer are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttls {
    /// As stored (`keepttl`).
    Keep,
    /// Counted down by `age` seconds and capped at `left` (the item's remaining life).
    Aged { age: u32, left: u32 },
    /// Zero (a stale answer).
    Zero,
}

/// An answer kept as its encoding (id 0, no OPT record), with where its TTLs are: one
/// allocation, the answer's bytes followed by the offsets of its TTLs (big-endian `u16`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    data: Box<[u8]>,
    answer_len: u16,
    question_end: u16,
    reorderable: bool,
}

/// Skips the name at `i`, returning the offset after it.
fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *b.get(i)?;
        match len & 0xc0 {
            0xc0 => return Some(i + 2),
            0 if len == 0 => return Some(i + 1),
            0 => i += 1 + usize::from(len),
            _ => return None,
        }
    }
}

impl StoredAnswer {
    /// `m` encoded for keeping; `None` if it does not encode or is not the answer to one question.
    pub fn new(m: &Message) -> Option<StoredAnswer> {
        let mut m = m.clone();
        m.set_id(0);
        *m.extensions_mut() = None;
        let bytes = m.to_vec().ok()?;
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: Vec<u8>) -> Option<StoredAnswer> {
        if u16_at(&bytes, 4)? != 1 || bytes.len() > usize::from(u16::MAX) {
            return None;
        }
        let sections = [u16_at(&bytes, 6)?, u16_at(&bytes, 8)?, u16_at(&bytes, 10)?];
        let question_end = skip_name(&bytes, HEADER_LEN)? + 4;
        let mut i = question_end;
        let mut ttls = Vec::new();
        let mut reorderable = false;
        for count in sections {
            let (mut addresses, mut mx) = (0, 0);
            for _ in 0..count {
                i = skip_name(&bytes, i)?;
                match RecordType::from(u16_at(&bytes, i)?) {
                    RecordType::A | RecordType::AAAA => addresses += 1,
                    RecordType::MX => mx += 1,
                    _ => {}
                }
                ttls.push(u16::try_from(i + 4).ok()?);
                i += 10 + usize::from(u16_at(&bytes, i + 8)?);
            }
            reorderable |= addresses > 1 || mx > 1;
        }
        if i != bytes.len() {
            return None;
        }
        let answer_len = bytes.len() as u16;
        let mut data = bytes;
        data.reserve_exact(ttls.len() * 2);
        data.extend(ttls.iter().flat_map(|t| t.to_be_bytes()));
        Some(StoredAnswer { data: data.into_boxed_slice(), answer_len, question_end: question_end as u16, reorderable })
    }

    /// The answer's bytes as kept.
    fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.answer_len)]
    }

    /// Where the answer's TTLs are.
    fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        self.data[usize::from(self.answer_len)..].chunks_exact(2).map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])))
    }

    /// The answer's rcode.
    pub fn response_code(&self) -> ResponseCode {
        rcode_of(self.bytes())
    }

    /// Whether a section holds more than one address (or MX) record: `loadbalance` would shuffle it.
    pub fn reorderable(&self) -> bool {
        self.reorderable
    }

    /// The answer's size in bytes as kept (for accounting).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn write_ttls(&self, out: &mut [u8], ttls: Ttls) {
        for at in self.ttl_offsets() {
            let old = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
            let new = match ttls {
                Ttls::Keep => old,
                Ttls::Aged { age, left } => old.saturating_sub(age).min(left),
                Ttls::Zero => 0,
            };
            out[at..at + 4].copy_from_slice(&new.to_be_bytes());
        }
    }

    /// The answer as a message, TTLs written as `ttls` (for the Message path).
    pub fn message(&self, ttls: Ttls) -> Option<Message> {
        let mut bytes = self.bytes().to_vec();
        self.write_ttls(&mut bytes, ttls);
        Message::from_vec(&bytes).ok()
    }

    /// Writes the answer to `q` into `out`: its id, its RD bit, the TTLs as `ttls`, and an OPT
    /// record (our payload size, DO echoed) if `q` had one. False — `out` then holds nothing
    /// useful — when the question is not spelled as the stored one (records may point at its
    /// name, so the Message path answers other spellings) or the answer does not fit what the
    /// client takes (the Message path truncates it).
    pub fn write(&self, q: &WireQuery<'_>, ttls: Ttls, out: &mut Vec<u8>) -> bool {
        if self.bytes()[HEADER_LEN..usize::from(self.question_end)] != *q.question() {
            return false;
        }
        out.clear();
        out.extend_from_slice(self.bytes());
        out[..2].copy_from_slice(&q.id());
        out[2] = (out[2] & !0x01) | u8::from(q.recursion_desired());
        self.write_ttls(out, ttls);
        if let Some(e) = q.edns {
            let additional = u16::from_be_bytes([out[10], out[11]]).wrapping_add(1);
            out[10..12].copy_from_slice(&additional.to_be_bytes());
            let payload = ADVERTISED_UDP_PAYLOAD.to_be_bytes();
            let flags = if e.dnssec_ok { 0x80 } else { 0 };
            out.extend_from_slice(&[0, 0, 41, payload[0], payload[1], 0, 0, flags, 0, 0, 0]);
        }
        out.len() <= q.max_response()
    }
}

/// The rcode in the header of `answer`.
pub fn rcode_of(answer: &[u8]) -> ResponseCode {
    ResponseCode::from(0, answer.get(3).map_or(0, |b| b & 0x0f))
}

/// What a plugin's wire answer tells the plugins in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireAnswer {
    pub rcode: ResponseCode,
}

/// The rest of the chain after a plugin, on the wire path.
#[derive(Clone, Copy)]
pub struct WireNext<'a> {
    chain: &'a [Arc<dyn Handler>],
    ordered: bool,
}

impl<'a> WireNext<'a> {
    pub fn new(chain: &'a [Arc<dyn Handler>]) -> WireNext<'a> {
        WireNext { chain, ordered: false }
    }

    /// The rest of the chain, told that a plugin in front reorders address records (so an
    /// answer with any to reorder must take the Message path).
    pub fn reordered(self) -> WireNext<'a> {
        WireNext { ordered: true, ..self }
    }

    /// Whether a plugin in front reorders address records.
    pub fn reorders(&self) -> bool {
        self.ordered
    }

    /// Runs the rest of the chain on the wire path; `None` at its end (nobody answered).
    pub fn run(self, q: &WireQuery<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        let (first, rest) = self.chain.split_first()?;
        first.wire(q, WireNext { chain: rest, ..self }, out)
    }
}

/// The answer to the query in `bytes` from the wire path of `chain`; `None` when the query is not
/// of the shape it takes or the chain declines (the Message path answers then).
pub fn answer(chain: &[Arc<dyn Handler>], bytes: &[u8], client: SocketAddr, transport: Transport) -> Option<Vec<u8>> {
    let q = WireQuery::parse(bytes, client, transport)?;
    let mut out = Vec::new();
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| WireNext::new(chain).run(&q, &mut out)));
    matches!(done, Ok(Some(_))).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Query};
    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::{DNSClass, RData, Record};

    const CLIENT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5300);

    fn query(name: &str, edns: Option<(u16, bool)>) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(0x1234).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if let Some((size, dnssec_ok)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size).set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn answer_of(name: &str, addresses: &[u8], ttl: u32) -> Message {
        let owner = Name::from_ascii(name).unwrap();
        let mut m = Message::new();
        m.set_message_type(hickory_proto::op::MessageType::Response).set_authoritative(true);
        m.add_query(Query::query(owner.clone(), RecordType::A));
        for (i, last) in addresses.iter().enumerate() {
            m.add_answer(Record::from_rdata(owner.clone(), ttl + i as u32, RData::A(A::new(10, 0, 0, *last))));
        }
        m
    }

    #[test]
    fn parses_the_common_query_and_keys_it_like_a_message() {
        let bytes = query("Web.Apps.svc.cluster.local.", Some((1232, true)));
        let q = WireQuery::parse(&bytes, CLIENT, Transport::Udp).unwrap();
        assert_eq!(q.edns, Some(WireEdns { payload: 1232, dnssec_ok: true }));
        assert_eq!(q.record_type(), RecordType::A);
        assert_eq!(name_text(q.name()), "web.apps.svc.cluster.local.");
        let name = Name::from_ascii("WEB.apps.svc.cluster.local.").unwrap();
        assert_eq!(q.key(), key_of(&name, RecordType::A, u16::from(DNSClass::IN), true).as_slice());
        assert_eq!(q.max_response(), 1232);
        let plain = query("a.example.", None);
        let q = WireQuery::parse(&plain, CLIENT, Transport::Udp).unwrap();
        assert_eq!((q.edns, q.max_response()), (None, 512));
        assert_eq!(WireQuery::parse(&plain, CLIENT, Transport::Tcp).unwrap().max_response(), 65535);
    }

    #[test]
    fn other_shapes_take_the_message_path() {
        let good = query("a.example.", Some((1232, false)));
        assert!(WireQuery::parse(&good, CLIENT, Transport::Udp).is_some());
        for cut in 0..good.len() {
            assert!(WireQuery::parse(&good[..cut], CLIENT, Transport::Udp).is_none(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(WireQuery::parse(&trailing, CLIENT, Transport::Udp).is_none());
        let mut response = good.clone();
        response[2] |= 0x80;
        assert!(WireQuery::parse(&response, CLIENT, Transport::Udp).is_none());
        let mut version1 = good.clone();
        let opt = version1.len() - 11;
        version1[opt + 6] = 1;
        assert!(WireQuery::parse(&version1, CLIENT, Transport::Udp).is_none());
        let mut pointer = query("a.example.", None);
        pointer.truncate(HEADER_LEN);
        pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(WireQuery::parse(&pointer, CLIENT, Transport::Udp).is_none());
        let mut two = query("a.example.", None);
        two[5] = 2;
        assert!(WireQuery::parse(&two, CLIENT, Transport::Udp).is_none());
    }

    #[test]
    fn zones_match_whole_labels() {
        let zone = zone_name("cluster.local.").unwrap();
        let key = |n: &str| key_of(&Name::from_ascii(n).unwrap(), RecordType::A, 1, false);
        let name = |n: &str| {
            let k = key(n);
            k[..k.len() - 5].to_vec()
        };
        assert!(in_zone(&zone, &name("a.svc.Cluster.Local.")));
        assert!(in_zone(&zone, &name("cluster.local.")));
        assert!(!in_zone(&zone, &name("a.svccluster.local.")));
        assert!(!in_zone(&zone, &name("local.")));
        assert!(in_zone(&zone_name(".").unwrap(), &name("anything.example.")));
    }

    #[test]
    fn writes_a_stored_answer_for_the_query() {
        let stored = StoredAnswer::new(&answer_of("web.example.", &[1], 30)).unwrap();
        assert!(!stored.reorderable());
        let bytes = query("web.example.", Some((1232, true)));
        let q = WireQuery::parse(&bytes, CLIENT, Transport::Udp).unwrap();
        let mut out = Vec::new();
        assert!(stored.write(&q, Ttls::Aged { age: 10, left: 25 }, &mut out));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.id(), 0x1234);
        assert!(m.recursion_desired() && m.authoritative());
        assert_eq!(m.queries()[0].name().to_ascii(), "web.example.");
        // Another spelling of the name: for the Message path.
        let other = query("WEB.example.", Some((1232, true)));
        let q2 = WireQuery::parse(&other, CLIENT, Transport::Udp).unwrap();
        assert!(!stored.write(&q2, Ttls::Keep, &mut Vec::new()));
        assert_eq!(m.answers()[0].ttl(), 20);
        let e = m.extensions().as_ref().unwrap();
        assert_eq!((e.max_payload(), e.flags().dnssec_ok), (ADVERTISED_UDP_PAYLOAD, true));
        // Capped by the item's remaining life; zero when stale; as stored with keepttl.
        assert!(stored.write(&q, Ttls::Aged { age: 1, left: 5 }, &mut out));
        assert_eq!(Message::from_vec(&out).unwrap().answers()[0].ttl(), 5);
        assert_eq!(stored.message(Ttls::Zero).unwrap().answers()[0].ttl(), 0);
        assert_eq!(stored.message(Ttls::Keep).unwrap().answers()[0].ttl(), 30);
        // A query without EDNS gets no OPT record.
        let plain = query("web.example.", None);
        let q = WireQuery::parse(&plain, CLIENT, Transport::Udp).unwrap();
        assert!(stored.write(&q, Ttls::Keep, &mut out));
        assert!(Message::from_vec(&out).unwrap().extensions().is_none());
    }

    #[test]
    fn large_or_reorderable_answers_are_marked() {
        let big = StoredAnswer::new(&answer_of("web.example.", &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 30)).unwrap();
        assert!(big.reorderable());
        let cname = {
            let mut m = answer_of("web.example.", &[1], 30);
            let target = Name::from_ascii("other.example.").unwrap();
            m.add_answer(Record::from_rdata(Name::from_ascii("web.example.").unwrap(), 5, RData::CNAME(CNAME(target))));
            m
        };
        assert!(!StoredAnswer::new(&cname).unwrap().reorderable());
        // 40 records do not fit 512 bytes: the Message path truncates.
        let many: Vec<u8> = (1..=40).collect();
        let stored = StoredAnswer::new(&answer_of("web.example.", &many, 30)).unwrap();
        let plain = query("web.example.", None);
        let q = WireQuery::parse(&plain, CLIENT, Transport::Udp).unwrap();
        assert!(!stored.write(&q, Ttls::Keep, &mut Vec::new()));
        let tcp = WireQuery::parse(&plain, CLIENT, Transport::Tcp).unwrap();
        let mut out = Vec::new();
        assert!(stored.write(&tcp, Ttls::Keep, &mut out));
        assert_eq!(Message::from_vec(&out).unwrap().answers().len(), 40);
    }
}
