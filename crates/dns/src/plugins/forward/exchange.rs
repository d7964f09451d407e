//! One query to one upstream over UDP or TCP, bounded by a timeout. A UDP answer must carry the
//! query's id (others are ignored); TCP frames carry a two-byte length.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::Message;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why an exchange failed.
#[derive(Debug, Error)]
pub enum ExchangeError {
    #[error("{proto} {addr}: {source}")]
    Io { proto: &'static str, addr: SocketAddr, source: io::Error },
    #[error("{proto} {addr}: i/o timeout")]
    Timeout { proto: &'static str, addr: SocketAddr },
    #[error("{proto} {addr}: bad answer: {message}")]
    Bad { proto: &'static str, addr: SocketAddr, message: String },
}

/// Sends `query` to `addr` and waits for its answer for at most `timeout`.
pub async fn exchange(
    addr: SocketAddr,
    query: &Message,
    tcp: bool,
    timeout: Duration,
) -> Result<Message, ExchangeError> {
    let proto = if tcp { "tcp" } else { "udp" };
    let bad = |message: String| ExchangeError::Bad { proto, addr, message };
    let bytes = query.to_vec().map_err(|e| bad(e.to_string()))?;
    let io_err = |source| ExchangeError::Io { proto, addr, source };
    let work = async {
        if tcp {
            tcp_exchange(addr, &bytes, query.id()).await
        } else {
            udp_exchange(addr, &bytes, query.id()).await
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(ExchangeError::Timeout { proto, addr }),
        Ok(Err(Failure::Io(e))) => Err(io_err(e)),
        Ok(Err(Failure::Bad(m))) => Err(bad(m)),
        Ok(Ok(m)) => Ok(m),
    }
}

enum Failure {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

async fn udp_exchange(addr: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, Failure> {
    let local: SocketAddr =
        if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    socket.send(bytes).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.id() == id => return Ok(m),
            // A stray or forged datagram: keep waiting for ours.
            _ => continue,
        }
    }
}

async fn tcp_exchange(addr: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, Failure> {
    let mut stream = TcpStream::connect(addr).await?;
    let len = u16::try_from(bytes.len()).map_err(|_| Failure::Bad("query too large".into()))?;
    let mut frame = Vec::with_capacity(bytes.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(bytes);
    stream.write_all(&frame).await?;
    let len = stream.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    let m = Message::from_vec(&buf).map_err(|e| Failure::Bad(e.to_string()))?;
    if m.id() != id {
        return Err(Failure::Bad(format!("id {} does not match {id}", m.id())));
    }
    Ok(m)
}
