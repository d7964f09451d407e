//! Helpers of the plugin tests: queries, canned answers, a mock upstream handler and a tiny UDP
//! DNS responder on 127.0.0.1.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::{BoxFuture, Handler, Next, Request, Transport};

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A UDP query for `qname`/`qtype` from 127.0.0.1.
pub fn query(qname: &str, qtype: RecordType) -> Request {
    let mut m = Message::new();
    m.set_id(rand::random()).set_recursion_desired(true);
    m.add_query(Query::query(name(qname), qtype));
    Request { message: m, client: SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)), transport: Transport::Udp }
}

pub fn a_record(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A::new(ip[0], ip[1], ip[2], ip[3])))
}

pub fn soa_record(zone: &str, ttl: u32, minimum: u32) -> Record {
    let n = name(zone);
    Record::from_rdata(n.clone(), ttl, RData::SOA(SOA::new(n.clone(), n, 1, 7200, 1800, 86400, minimum)))
}

/// An answer to `q` with `records`.
pub fn answer(q: &Message, code: ResponseCode, records: Vec<Record>) -> Message {
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(hickory_proto::op::MessageType::Response)
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code);
    m.add_queries(q.queries().to_vec());
    m.add_answers(records);
    m
}

/// The A records' addresses of `m`, as text.
pub fn addresses(m: &Message) -> Vec<String> {
    m.answers().iter().filter(|r| r.record_type() == RecordType::A).map(|r| r.data().to_string()).collect()
}

type Respond = dyn Fn(&Request) -> Message + Send + Sync;

/// A handler that answers with a function and counts its calls.
pub struct Mock {
    pub calls: AtomicUsize,
    respond: Mutex<Box<Respond>>,
}

impl Mock {
    pub fn new(f: impl Fn(&Request) -> Message + Send + Sync + 'static) -> Arc<Mock> {
        Arc::new(Mock { calls: AtomicUsize::new(0), respond: Mutex::new(Box::new(f)) })
    }

    /// Answers with A `ip` and `ttl` for any name.
    pub fn a(ttl: u32, ip: [u8; 4]) -> Arc<Mock> {
        Mock::new(move |req| {
            let owner = req.message.query().unwrap().name().to_ascii();
            answer(&req.message, ResponseCode::NoError, vec![a_record(&owner, ttl, ip)])
        })
    }

    pub fn set(&self, f: impl Fn(&Request) -> Message + Send + Sync + 'static) {
        *self.respond.lock().unwrap() = Box::new(f);
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Handler for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, Message> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let m = (self.respond.lock().unwrap())(req);
        Box::pin(async move { m })
    }
}

/// A UDP DNS server on 127.0.0.1:0 answering with `f` (no answer when it returns `None`).
pub async fn udp_responder(
    f: impl Fn(&Message) -> Option<Message> + Send + Sync + 'static,
) -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            if let Some(resp) = f(&q) {
                let _ = socket.send_to(&resp.to_vec().unwrap(), from).await;
            }
        }
    });
    (addr, task)
}
