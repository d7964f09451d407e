//! UDP: a frontend socket receives datagrams and relays them through one "session" per client
//! address (IP and port), as kube-proxy's userspace proxy did: the first datagram of a client
//! chooses a backend and opens a socket connected to it; the client's datagrams go out on it,
//! and whatever the backend sends back is sent to the client from the frontend socket — so
//! replies come from the service address the client sent to. A session ends after
//! [`super::Options::udp_idle_timeout`] without traffic either way, or when the backend
//! refuses (ICMP port unreachable). Without a backend a datagram is dropped: the frontend socket
//! exists, so the kernel sends no ICMP port unreachable either (the client times out).
//!
//! An idle session holds no buffer: it waits for readability and receives into a buffer made
//! for that datagram.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::balancer::Lease;
use super::SharedBinding;

/// The largest UDP payload.
pub const MAX_DATAGRAM: usize = 65_535;

/// One client's session.
struct Session {
    id: u64,
    backend: Arc<UdpSocket>,
    /// Milliseconds since the frontend's epoch at the last datagram either way.
    last: Arc<AtomicU64>,
    abort: AbortHandle,
}

/// The clock of one frontend: milliseconds since it started.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    fn at(self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

/// Relays datagrams on `socket` until `stop`; then ends every session.
pub async fn serve(socket: UdpSocket, binding: SharedBinding, stop: CancellationToken, idle: Duration) {
    let socket = Arc::new(socket);
    let clock = Clock(Instant::now());
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut tasks: JoinSet<(SocketAddr, u64)> = JoinSet::new();
    let mut next_id = 0u64;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok((client, id)) = done {
                    if sessions.get(&client).is_some_and(|s| s.id == id) {
                        sessions.remove(&client);
                    }
                }
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((n, client)) = received else { continue };
                let session = match sessions.entry(client) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let Some((backend, lease)) = open(&socket, &binding, client).await else { continue };
                        next_id += 1;
                        let backend = Arc::new(backend);
                        let last = Arc::new(AtomicU64::new(clock.now()));
                        let reply = replies(socket.clone(), backend.clone(), client, last.clone(), clock, idle, lease);
                        let id = next_id;
                        let abort = tasks.spawn(async move {
                            reply.await;
                            (client, id)
                        });
                        e.insert(Session { id, backend, last, abort })
                    }
                };
                session.last.store(clock.now(), Ordering::Relaxed);
                if let Err(e) = session.backend.send(&buf[..n]).await {
                    tracing::debug!(client = %client, error = %e, "userspace proxy: udp send to backend");
                    session.abort.abort();
                    sessions.remove(&client);
                }
            }
        }
    }
    tasks.shutdown().await;
}

/// A socket connected to a backend chosen for `client`; `None` when there is none (the
/// datagram is dropped).
async fn open(front: &UdpSocket, binding: &SharedBinding, client: SocketAddr) -> Option<(UdpSocket, Lease)> {
    let binding = super::current(binding);
    let client_ip = client.ip().to_canonical();
    if !binding.target.allows(client_ip) {
        return None;
    }
    let service = front.local_addr().map(|a| a.ip().to_canonical()).unwrap_or(client_ip);
    let lease = binding.balancer.pick(binding.target.scope, client_ip, service, &[])?;
    match connect(lease.addr).await {
        Ok(sock) => Some((sock, lease)),
        Err(e) => {
            tracing::debug!(backend = %lease.addr, error = %e, "userspace proxy: udp session");
            None
        }
    }
}

async fn connect(backend: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr =
        if backend.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = UdpSocket::bind(any).await?;
    sock.connect(backend).await?;
    Ok(sock)
}

/// Sends the backend's datagrams to `client` from the frontend socket until the session is idle
/// for `idle` or the backend refuses. Holds the lease (the session counts as a connection).
async fn replies(
    front: Arc<UdpSocket>,
    backend: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    clock: Clock,
    idle: Duration,
    lease: Lease,
) {
    loop {
        let deadline = clock.at(last.load(Ordering::Relaxed)) + idle;
        match tokio::time::timeout_at(deadline.into(), backend.readable()).await {
            Err(_) => {
                // Idle, unless the client sent something meanwhile.
                if clock.at(last.load(Ordering::Relaxed)) + idle <= Instant::now() {
                    break;
                }
            }
            Ok(Err(_)) => break,
            Ok(Ok(())) => {
                let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
                match backend.try_recv_buf(&mut datagram) {
                    Ok(_) => {
                        last.store(clock.now(), Ordering::Relaxed);
                        let _ = front.send_to(&datagram, client).await;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        tracing::debug!(backend = %lease.addr, error = %e, "userspace proxy: udp session ends");
                        break;
                    }
                }
            }
        }
    }
    drop(lease);
}
