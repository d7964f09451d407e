//! The proxy's listening sockets: bound with `IP_FREEBIND` / `IPV6_FREEBIND` (an address may be
//! bound before its local route exists, and IPv6 would otherwise refuse an address that is only
//! routed as local, not configured), `SO_REUSEADDR` (a listener reopened on an address with
//! connections of the previous one in `TIME_WAIT`), and `IPV6_V6ONLY` (an IPv6 wildcard leaves
//! IPv4 to its own socket). Made non-blocking for tokio; they must be created on a thread of
//! the mode's network namespace.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, Type};

/// The backlog of a listener (kube-proxy's userspace listeners used Go's default, the kernel's
/// `somaxconn`).
pub const BACKLOG: i32 = 4096;

fn socket(addr: SocketAddr, kind: Type, protocol: SockProtocol) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv4() {
        sock.set_freebind_v4(true)?;
    } else {
        sock.set_only_v6(true)?;
        sock.set_freebind_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::from(addr))?;
    Ok(sock)
}

/// A TCP listener on `addr`.
pub fn tcp_listener(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let sock = socket(addr, Type::STREAM, SockProtocol::TCP)?;
    sock.listen(BACKLOG)?;
    tokio::net::TcpListener::from_std(sock.into())
}

/// A UDP socket on `addr`.
pub fn udp_socket(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let sock = socket(addr, Type::DGRAM, SockProtocol::UDP)?;
    tokio::net::UdpSocket::from_std(sock.into())
}
