//! podnet's cluster DNS — the CoreDNS job in a Kubernetes cluster.
//!
//! As in CoreDNS, a server block answers a query by passing it down a chain of plugins, each a
//! [`Handler`]: a plugin answers, or hands the query to the rest of the chain with [`Next`]
//! (`cache` asks the rest and keeps the answer, `kubernetes` answers its zones and falls through
//! for others, `forward` asks the upstreams). The wire format is hickory-proto's.
#![forbid(unsafe_code)]

pub mod batch;
pub mod corefile;
pub mod daemon;
pub mod fuzz;
pub mod kubernetes;
pub mod plugins;
pub mod server;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};

/// How a query arrived (a UDP answer must fit the client's buffer; TCP takes any size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One query, as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub message: Message,
    pub client: SocketAddr,
    pub transport: Transport,
}

impl Request {
    /// A response skeleton for this query: same id, the question, RD copied, QR set.
    pub fn response(&self, code: ResponseCode) -> Message {
        let mut m = Message::new();
        m.set_id(self.message.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(self.message.recursion_desired())
            .set_response_code(code);
        m.add_queries(self.message.queries().to_vec());
        m
    }
}

/// A boxed future, as the chain passes them around.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A plugin of a server block's chain.
pub trait Handler: Send + Sync {
    /// The plugin's name as the Corefile writes it (`kubernetes`, `forward`, …).
    fn name(&self) -> &'static str;

    /// Answers `req`, or passes it on with `next.run(req)`.
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message>;

    /// Told the size in bytes of the answer to `req` once the server has encoded what the chain
    /// answered (the `prometheus` plugin's response sizes: a plugin sees a message, not its
    /// encoding, and encoding it twice would cost every query). Most plugins ignore it.
    fn encoded(&self, _req: &Request, _wire_len: usize) {}

    /// The wire path ([`wire`]): answers `q` into `out` from bytes the plugin keeps, or passes it
    /// on with `next.run(q, out)`, or declines with `None` — then the query goes down the
    /// Message path ([`Handler::handle`]), which must give the same answer, so a plugin counts
    /// nothing on a declined query. The default declines: a plugin that must see every query as
    /// a message keeps the chain off the wire path.
    fn wire(
        &self,
        _q: &wire::WireQuery<'_>,
        _next: wire::WireNext<'_>,
        _out: &mut Vec<u8>,
    ) -> Option<wire::WireAnswer> {
        None
    }
}

/// The rest of the chain after a plugin.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    chain: &'a [Arc<dyn Handler>],
}

impl<'a> Next<'a> {
    /// A chain to run from its first plugin.
    pub fn new(chain: &'a [Arc<dyn Handler>]) -> Next<'a> {
        Next { chain }
    }

    /// Runs the rest of the chain; at its end, with nobody to answer, SERVFAIL (as CoreDNS does
    /// when no plugin writes a response).
    pub fn run(self, req: &'a Request) -> BoxFuture<'a, Message> {
        match self.chain.split_first() {
            Some((first, rest)) => first.handle(req, Next { chain: rest }),
            None => Box::pin(async move { req.response(ResponseCode::ServFail) }),
        }
    }
}
