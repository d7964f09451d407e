//! UDP datagrams in batches: what is waiting on the socket read with one `recvmmsg(2)`, and the
//! answers ready at once sent with one `sendmmsg(2)` — as NSD and Knot do — instead of a system
//! call per datagram each way. Non-blocking: the caller waits for readiness (tokio) and falls back
//! to one datagram at a time for what a batch could not send.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use nix::sys::socket::{recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};

/// Datagrams per batch.
pub const BATCH: usize = 32;
/// The largest query read whole (a bigger one is cut and flagged, and answered FORMERR): queries
/// are small, and a DNS client does not send UDP queries over 4,096 bytes.
pub const MAX_QUERY: usize = 4096;

/// The receive buffers of one loop, kept between batches.
#[derive(Debug)]
pub struct RecvBuffers {
    bufs: Vec<Vec<u8>>,
}

impl Default for RecvBuffers {
    fn default() -> Self {
        RecvBuffers { bufs: (0..BATCH).map(|_| vec![0u8; MAX_QUERY]).collect() }
    }
}

fn to_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(*a));
    }
    s.as_sockaddr_in6().map(|a| SocketAddr::from(*a))
}

impl RecvBuffers {
    /// Reads the datagrams waiting on `fd` (up to [`BATCH`]) and hands each to `each` with its
    /// sender and whether it was cut to [`MAX_QUERY`] bytes. `WouldBlock` when none is waiting.
    pub fn recv(&mut self, fd: RawFd, mut each: impl FnMut(&[u8], SocketAddr, bool)) -> io::Result<usize> {
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        let received = recvmmsg(fd, &mut headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None).map_err(to_io)?;
        let mut n = 0;
        for msg in received {
            n += 1;
            let cut = msg.flags.contains(MsgFlags::MSG_TRUNC);
            let (Some(peer), Some(data)) = (msg.address.as_ref().and_then(socket_addr), msg.iovs().next()) else {
                continue;
            };
            each(&data[..msg.bytes.min(data.len())], peer, cut);
        }
        Ok(n)
    }
}

/// Sends `answers` from `fd` in one system call; how many were sent (the rest did not fit in the
/// socket's buffer now).
pub fn send(fd: RawFd, answers: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    if answers.is_empty() {
        return Ok(0);
    }
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(answers.len(), None);
    let slices: Vec<[IoSlice<'_>; 1]> = answers.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = answers.iter().map(|(_, p)| Some(SockaddrStorage::from(*p))).collect();
    let none: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(fd, &mut headers, &slices, &addrs, none, MsgFlags::MSG_DONTWAIT).map_err(to_io)?;
    Ok(sent.count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_each_way() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        for i in 0..5u8 {
            client.send_to(&[i; 3], to).unwrap();
        }
        client.send_to(&[9u8; MAX_QUERY + 10], to).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut bufs = RecvBuffers::default();
        let mut got = Vec::new();
        let n = bufs.recv(server.as_raw_fd(), |d, p, cut| got.push((d.to_vec(), p, cut))).unwrap();
        assert_eq!(n, 6);
        let cut = got.pop().unwrap();
        assert_eq!((cut.0.len(), cut.2), (MAX_QUERY, true), "the big datagram is cut and says so");
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, (d, p, cut))| *d == [i as u8; 3] && *p == client.local_addr().unwrap() && !cut));
        let e = bufs.recv(server.as_raw_fd(), |_, _, _| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let answers: Vec<(Vec<u8>, SocketAddr)> = got.iter().map(|(d, p, _)| (d.repeat(2), *p)).collect();
        assert_eq!(send(server.as_raw_fd(), &answers).unwrap(), 5);
        let mut buf = [0u8; 16];
        for i in 0..5u8 {
            let (len, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], &[i; 6]);
        }
    }
}
