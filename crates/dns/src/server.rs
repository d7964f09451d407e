//! The DNS server: UDP and TCP on one address, each query run down a plugin chain.
//!
//! - UDP: one receive loop per core, each answering the datagrams it reads in its own task (an
//!   answer ready at once is sent inline; nothing is handed to another thread per query); at most
//!   [`ServerConfig::udp_concurrency`] queries in flight over all loops (past that the socket is
//!   not read, and the kernel drops the excess); an answer that does not fit 512 bytes, or the
//!   client's EDNS0 buffer size, is cut to the records that fit and gets the TC flag.
//! - TCP: length-prefixed messages, several per connection (answered as they complete, at most
//!   [`ServerConfig::tcp_pipeline`] at once), closed after [`ServerConfig::tcp_idle_timeout`]
//!   without a query; at most [`ServerConfig::tcp_connections`] connections (more are closed).
//! - Only QUERY is served: other opcodes get NOTIMP; a message that is a response, or without
//!   exactly one question, or that does not parse, FORMERR (when its header can be read; else it
//!   is dropped — and an error response is never answered, so two servers cannot ping-pong);
//!   an EDNS version other than 0, BADVERS. A panicking plugin gets the client a SERVFAIL.
//! - A query of the common shape is first offered to the chain's wire path ([`crate::wire`]:
//!   a cache hit answered from stored bytes); the others, and those it declines, are parsed and
//!   run down the chain as messages.
//! - Shutdown stops reading at once and lets the queries in flight finish, for at most
//!   [`ServerConfig::grace`].

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use std::os::fd::AsRawFd;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Mutex, Semaphore};
use tokio::task::JoinSet;

use crate::batch::{self, RecvBuffers, BATCH};
use crate::wire::{self, HEADER_LEN};
use crate::{Handler, Next, Request, Transport};

/// The server's limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// UDP queries answered at once.
    pub udp_concurrency: usize,
    /// TCP connections open at once.
    pub tcp_connections: usize,
    /// Queries answered at once on one TCP connection.
    pub tcp_pipeline: usize,
    /// How long a TCP connection may wait for its next query (or a write may block).
    pub tcp_idle_timeout: Duration,
    /// How long shutdown waits for the queries in flight.
    pub grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            udp_concurrency: 1024,
            tcp_connections: 256,
            tcp_pipeline: 16,
            tcp_idle_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(5),
        }
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// The UDP payload size this server advertises in its OPT records.
pub const ADVERTISED_UDP_PAYLOAD: u16 = 1232;
/// The size of a UDP answer to a client without EDNS0.
pub const MIN_UDP_PAYLOAD: usize = 512;

/// A plugin chain, as a server block runs it.
pub type Chain = Arc<Vec<Arc<dyn Handler>>>;

/// Sockets bound, not yet serving.
pub struct Server {
    udp: UdpSocket,
    tcp: TcpListener,
    config: ServerConfig,
}

impl Server {
    /// Binds UDP and TCP on `addr` (with port 0, on one free port for both).
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> Result<Server, ServerError> {
        let err = |addr, source| ServerError::Bind { addr, source };
        let mut attempts = 0;
        loop {
            let udp = UdpSocket::bind(addr).await.map_err(|e| err(addr, e))?;
            let bound = udp.local_addr().map_err(|e| err(addr, e))?;
            match TcpListener::bind(bound).await {
                Ok(tcp) => return Ok(Server { udp, tcp, config }),
                Err(_) if addr.port() == 0 && attempts < 20 => attempts += 1,
                Err(e) => return Err(err(bound, e)),
            }
        }
    }

    /// The address served (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.udp.local_addr().expect("bound socket")
    }

    /// Serves `chain` until `shutdown` resolves, then lets the queries in flight finish.
    pub async fn run(self, chain: Chain, shutdown: impl Future<Output = ()> + Send) {
        let (stop_tx, stop) = watch::channel(false);
        let config = Arc::new(self.config);
        let mut tasks = JoinSet::new();
        // Several loops on the one socket: each reads and answers its own datagrams.
        let loops = udp_loops();
        let limit = config.udp_concurrency.max(1).div_ceil(loops);
        let udp = Arc::new(self.udp);
        for _ in 0..loops {
            tasks.spawn(udp_loop(udp.clone(), chain.clone(), limit, stop.clone()));
        }
        tasks.spawn(tcp_loop(self.tcp, chain, config.clone(), stop));
        shutdown.await;
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(config.grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("dns server: queries still in flight after the grace period; dropping them");
            tasks.abort_all();
        }
    }
}

/// Binds `addr` and serves `chain` on it until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    chain: Chain,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    Server::bind(addr, ServerConfig::default()).await?.run(chain, shutdown).await;
    Ok(())
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// How many UDP receive loops to run: one per core the process may use.
fn udp_loops() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).max(1)
}

/// A UDP query being answered: the encoded answer and whom to send it to.
type UdpAnswer<'a> = Pin<Box<dyn Future<Output = (Vec<u8>, SocketAddr)> + Send + 'a>>;

/// One UDP receive loop. Each loop reads what is waiting on the socket in one batch
/// ([`crate::batch`]) and answers the datagrams itself: a query whose answer is ready at once (a
/// cache hit, a cluster record) is answered inline — the batch's ready answers go out together —
/// without a task or a hand-off to another thread; one that must wait (forwarded upstream) joins
/// this loop's own set of queries in flight, at most `limit`, so it holds up nothing else. Past
/// `limit` the loop stops reading until one finishes (and the kernel drops the excess).
async fn udp_loop(sock: Arc<UdpSocket>, chain: Chain, limit: usize, mut stop: watch::Receiver<bool>) {
    let chain: &[Arc<dyn Handler>] = &chain;
    let mut inflight: FuturesUnordered<UdpAnswer<'_>> = FuturesUnordered::new();
    let mut bufs = RecvBuffers::default();
    let mut ready: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    let fd = sock.as_raw_fd();
    let limit = limit.max(1);
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            Some((bytes, peer)) = inflight.next(), if !inflight.is_empty() => {
                let _ = sock.send_to(&bytes, peer).await;
            }
            r = sock.readable(), if inflight.len() < limit => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "dns server: udp readiness");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let read = sock.try_io(Interest::READABLE, || {
                    bufs.recv(fd, |data, peer, cut| {
                        if cut {
                            // Longer than any query a client sends over UDP: not read whole.
                            if data.len() >= HEADER_LEN && data[2] & 0x80 == 0 {
                                ready.push((header_reply(data, ResponseCode::FormErr), peer));
                            }
                            return;
                        }
                        if let Some(answer) = wire::answer(chain, data, peer, Transport::Udp) {
                            return ready.push((answer, peer));
                        }
                        let m = match parse_query(data) {
                            Parsed::Drop => return,
                            Parsed::Reply(bytes) => return ready.push((bytes, peer)),
                            Parsed::Query(m) => m,
                        };
                        let mut answer: UdpAnswer<'_> =
                            Box::pin(async move { (respond(chain, m, peer, Transport::Udp).await, peer) });
                        match answer.as_mut().now_or_never() {
                            Some(done) => ready.push(done),
                            None => inflight.push(answer),
                        }
                    })
                });
                if let Err(e) = read {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        tracing::debug!(error = %e, "dns server: udp receive");
                    }
                }
                send_ready(&sock, fd, &mut ready).await;
            }
        }
    }
    while let Some((bytes, peer)) = inflight.next().await {
        let _ = sock.send_to(&bytes, peer).await;
    }
}

/// Sends the answers of a batch: together, then one by one whatever that could not send.
async fn send_ready(sock: &UdpSocket, fd: std::os::fd::RawFd, ready: &mut Vec<(Vec<u8>, SocketAddr)>) {
    let sent = match sock.try_io(Interest::WRITABLE, || batch::send(fd, ready)) {
        Ok(n) => n,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                tracing::debug!(error = %e, "dns server: udp send");
            }
            0
        }
    };
    for (bytes, peer) in ready.drain(..).skip(sent) {
        let _ = sock.send_to(&bytes, peer).await;
    }
}

enum Reply {
    Ready(Vec<u8>),
    Query(Message),
}

async fn tcp_loop(listener: TcpListener, chain: Chain, config: Arc<ServerConfig>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(config.tcp_connections.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "dns server: tcp accept");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "dns server: too many tcp connections; closing");
            continue;
        };
        let (chain, config, stop) = (chain.clone(), config.clone(), stop.clone());
        tasks.spawn(async move {
            connection(stream, peer, chain, config, stop).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn read_message(rd: &mut tokio::net::tcp::OwnedReadHalf) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    rd.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    rd.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    chain: Chain,
    config: Arc<ServerConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let wr = Arc::new(Mutex::new(wr));
    let slots = Arc::new(Semaphore::new(config.tcp_pipeline.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        let bytes = tokio::select! {
            _ = stopped(&mut stop) => break,
            r = tokio::time::timeout(config.tcp_idle_timeout, read_message(&mut rd)) => match r {
                Ok(Ok(b)) => b,
                _ => break,
            },
        };
        if let Some(answer) = wire::answer(&chain, &bytes, peer, Transport::Tcp) {
            write_framed(&wr, &answer, config.tcp_idle_timeout, peer).await;
            continue;
        }
        let reply = match parse_query(&bytes) {
            Parsed::Drop => break,
            Parsed::Reply(b) => Reply::Ready(b),
            Parsed::Query(m) => Reply::Query(m),
        };
        let Ok(permit) = slots.clone().acquire_owned().await else { break };
        let (wr, chain, timeout) = (wr.clone(), chain.clone(), config.tcp_idle_timeout);
        tasks.spawn(async move {
            let _permit = permit;
            let bytes = match reply {
                Reply::Ready(b) => b,
                Reply::Query(m) => respond(&chain, m, peer, Transport::Tcp).await,
            };
            write_framed(&wr, &bytes, timeout, peer).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let _ = wr.lock().await.shutdown().await;
}

/// Writes one answer on a TCP connection, length-prefixed, giving up after `timeout`.
async fn write_framed(wr: &Mutex<tokio::net::tcp::OwnedWriteHalf>, bytes: &[u8], timeout: Duration, peer: SocketAddr) {
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    framed.extend_from_slice(bytes);
    let mut w = wr.lock().await;
    if tokio::time::timeout(timeout, w.write_all(&framed)).await.is_err() {
        tracing::debug!(%peer, "dns server: tcp write timed out");
    }
}

/// What to do with a message as received.
#[derive(Debug)]
pub enum Parsed {
    /// A query to run down the chain.
    Query(Message),
    /// An error to answer at once (encoded).
    Reply(Vec<u8>),
    /// Nothing to answer.
    Drop,
}

/// An answer of a bare header: the query's id, opcode and RD, `rcode`, no sections.
fn header_reply(bytes: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let flags = u16::from_be_bytes([bytes[2], bytes[3]]);
    let reply = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | (u16::from(rcode) & 0x000f);
    let mut out = vec![0u8; HEADER_LEN];
    out[..2].copy_from_slice(&bytes[..2]);
    out[2..4].copy_from_slice(&reply.to_be_bytes());
    out
}

/// Reads a message: a query to answer, an error to reply at once, or nothing to answer.
pub fn parse_query(bytes: &[u8]) -> Parsed {
    if bytes.len() < HEADER_LEN {
        return Parsed::Drop;
    }
    let flags = u16::from_be_bytes([bytes[2], bytes[3]]);
    let is_response = flags & 0x8000 != 0;
    if is_response {
        // Never answer an error response: two servers would answer each other forever.
        return if flags & 0x000f != 0 {
            Parsed::Drop
        } else {
            Parsed::Reply(header_reply(bytes, ResponseCode::FormErr))
        };
    }
    if (flags >> 11) & 0xf != u16::from(u8::from(OpCode::Query)) {
        return Parsed::Reply(header_reply(bytes, ResponseCode::NotImp));
    }
    let Ok(m) = Message::from_vec(bytes) else {
        return Parsed::Reply(header_reply(bytes, ResponseCode::FormErr));
    };
    if m.queries().len() != 1 {
        return Parsed::Reply(header_reply(bytes, ResponseCode::FormErr));
    }
    if m.extensions().as_ref().is_some_and(|e| e.version() != 0) {
        let mut r = Message::error_msg(m.id(), OpCode::Query, ResponseCode::BADVERS);
        r.add_queries(m.queries().to_vec());
        r.set_recursion_desired(m.recursion_desired());
        r.set_edns(response_edns(&m));
        return match r.to_vec() {
            Ok(b) => Parsed::Reply(b),
            Err(_) => Parsed::Reply(header_reply(bytes, ResponseCode::FormErr)),
        };
    }
    Parsed::Query(m)
}

/// Runs a query down the chain and encodes the answer for `transport`.
pub async fn respond(
    chain: &[Arc<dyn Handler>],
    message: Message,
    client: SocketAddr,
    transport: Transport,
) -> Vec<u8> {
    let req = Request { message, client, transport };
    let answer = AssertUnwindSafe(Next::new(chain).run(&req)).catch_unwind().await;
    let answer = answer.unwrap_or_else(|_| {
        tracing::error!(query = ?req.message.queries().first(), "dns server: a plugin panicked");
        req.response(ResponseCode::ServFail)
    });
    let bytes = encode_response(&req.message, answer, transport);
    for plugin in chain {
        plugin.encoded(&req, bytes.len());
    }
    bytes
}

/// Our OPT record for an answer to `req`: version 0, our payload size, DO echoed.
fn response_edns(req: &Message) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(ADVERTISED_UDP_PAYLOAD).set_version(0);
    if let Some(q) = req.extensions() {
        e.set_dnssec_ok(q.flags().dnssec_ok);
    }
    e
}

/// The largest answer `req` may get over `transport`.
pub fn max_response_size(req: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => {
            req.extensions().as_ref().map_or(MIN_UDP_PAYLOAD, |e| usize::from(e.max_payload()).max(MIN_UDP_PAYLOAD))
        }
    }
}

/// Encodes `resp` as the answer to `req`: the query's id and question, an OPT record only if the
/// query had one, cut to the records that fit (TC set) when too large for `transport`.
pub fn encode_response(req: &Message, mut resp: Message, transport: Transport) -> Vec<u8> {
    resp.set_id(req.id()).set_message_type(MessageType::Response).set_op_code(OpCode::Query);
    if resp.queries().is_empty() {
        resp.add_queries(req.queries().to_vec());
    }
    *resp.extensions_mut() = req.extensions().as_ref().map(|_| response_edns(req));
    let max = max_response_size(req, transport);
    match resp.to_vec() {
        Ok(b) if b.len() <= max => return b,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "dns server: cannot encode an answer");
            let mut fail = Message::error_msg(req.id(), OpCode::Query, ResponseCode::ServFail);
            fail.add_queries(req.queries().to_vec());
            fail.set_recursion_desired(req.recursion_desired());
            return fail.to_vec().unwrap_or_default();
        }
    }
    truncate(resp, max)
}

/// The message with the longest prefix of its records (answers, authority, additional, in that
/// order) that fits in `max` bytes, with TC set.
fn truncate(resp: Message, max: usize) -> Vec<u8> {
    let mut parts = resp.into_parts();
    let answers = std::mem::take(&mut parts.answers);
    let authority = std::mem::take(&mut parts.name_servers);
    let additionals = std::mem::take(&mut parts.additionals);
    let (na, nn) = (answers.len(), authority.len());
    let all: Vec<Record> = answers.into_iter().chain(authority).chain(additionals).collect();
    parts.header.set_truncated(true);
    let base: Message = parts.into();
    let build = |k: usize| -> Option<Vec<u8>> {
        let mut m = base.clone();
        for (i, r) in all.iter().take(k).enumerate() {
            if i < na {
                m.add_answer(r.clone());
            } else if i < na + nn {
                m.add_name_server(r.clone());
            } else {
                m.add_additional(r.clone());
            }
        }
        m.to_vec().ok().filter(|b| b.len() <= max)
    };
    let (mut lo, mut hi) = (0usize, all.len());
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if build(mid).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    build(lo).or_else(|| base.truncate().to_vec().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, RecordType};

    fn query(edns: Option<u16>) -> Message {
        let mut m = Message::new();
        m.set_id(7).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii("big.example.").unwrap(), RecordType::A));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m
    }

    fn big_answer(req: &Message, n: u32) -> Message {
        let mut m = Message::new();
        m.add_queries(req.queries().to_vec());
        for i in 0..n {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            m.add_answer(Record::from_rdata(Name::from_ascii("big.example.").unwrap(), 5, RData::A(A(ip))));
        }
        m
    }

    #[test]
    fn malformed_input() {
        assert!(matches!(parse_query(&[]), Parsed::Drop));
        assert!(matches!(parse_query(&[1, 2, 3]), Parsed::Drop));
        // A readable header, garbage after it: FORMERR with the id.
        let mut junk = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        junk.extend_from_slice(&[0xff; 7]);
        let Parsed::Reply(r) = parse_query(&junk) else { panic!("expected a reply") };
        let m = Message::from_vec(&r).unwrap();
        assert_eq!(
            (m.id(), m.response_code(), m.message_type()),
            (0xabcd, ResponseCode::FormErr, MessageType::Response)
        );
        assert!(m.recursion_desired());
        // A response: FORMERR; an error response: dropped.
        let mut resp = query(None);
        resp.set_message_type(MessageType::Response);
        assert!(matches!(parse_query(&resp.to_vec().unwrap()), Parsed::Reply(_)));
        resp.set_response_code(ResponseCode::FormErr);
        assert!(matches!(parse_query(&resp.to_vec().unwrap()), Parsed::Drop));
        // Another opcode: NOTIMP.
        let mut update = query(None);
        update.set_op_code(OpCode::Update);
        let Parsed::Reply(r) = parse_query(&update.to_vec().unwrap()) else { panic!() };
        assert_eq!(Message::from_vec(&r).unwrap().response_code(), ResponseCode::NotImp);
        // No question: FORMERR.
        let mut none = Message::new();
        none.set_id(9);
        let Parsed::Reply(r) = parse_query(&none.to_vec().unwrap()) else { panic!() };
        assert_eq!(Message::from_vec(&r).unwrap().response_code(), ResponseCode::FormErr);
        // EDNS version 1: BADVERS.
        let mut v1 = query(Some(1232));
        v1.extensions_mut().as_mut().unwrap().set_version(1);
        let Parsed::Reply(r) = parse_query(&v1.to_vec().unwrap()) else { panic!() };
        let m = Message::from_vec(&r).unwrap();
        assert_eq!(m.extensions().as_ref().unwrap().rcode_high(), 1, "BADVERS is 16: high bits 1");
        assert!(matches!(parse_query(&query(None).to_vec().unwrap()), Parsed::Query(_)));
    }

    #[test]
    fn truncates_to_the_buffer() {
        let req = query(None);
        let out = encode_response(&req, big_answer(&req, 100), Transport::Udp);
        assert!(out.len() <= 512);
        let m = Message::from_vec(&out).unwrap();
        assert!(m.truncated() && !m.answers().is_empty() && m.answers().len() < 100);
        assert!(m.extensions().is_none(), "no OPT without one in the query");

        let req = query(Some(4096));
        let out = encode_response(&req, big_answer(&req, 100), Transport::Udp);
        let m = Message::from_vec(&out).unwrap();
        assert!(!m.truncated() && m.answers().len() == 100 && out.len() <= 4096);
        assert_eq!(m.extensions().as_ref().unwrap().max_payload(), ADVERTISED_UDP_PAYLOAD);

        let req = query(Some(1232));
        let out = encode_response(&req, big_answer(&req, 1000), Transport::Udp);
        let m = Message::from_vec(&out).unwrap();
        assert!(m.truncated() && out.len() <= 1232 && m.extensions().is_some());

        let out = encode_response(&req, big_answer(&req, 1000), Transport::Tcp);
        let m = Message::from_vec(&out).unwrap();
        assert!(!m.truncated() && m.answers().len() == 1000);
        assert_eq!(m.id(), 7);
    }
}
