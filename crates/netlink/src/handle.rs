//! The rtnetlink socket: a small synchronous request/answer loop.
//!
//! A [`Handle`] owns one `NETLINK_ROUTE` socket. Each request gets a fresh sequence number, is
//! sent, and the answer is read until its end: an acknowledgement (`NLMSG_ERROR` with code 0) for
//! a change, `NLMSG_DONE` for a dump, the single answer for a get. Answers that carry another
//! sequence number (left over from an earlier request that failed half-way) are skipped. The
//! socket asks the kernel for extended acks, so an error carries the kernel's own message
//! ("Unknown device type", "Nexthop has invalid gateway", …) when it gives one. A dump that the
//! kernel marks as interrupted (`NLM_F_DUMP_INTR`: the table changed during the dump) is retried.
//!
//! The verbs live beside the objects they act on: [`crate::link`], [`crate::addr`],
//! [`crate::route`], [`crate::neigh`].

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTIPART,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;

use crate::error::{Error, RawError, Result};
use crate::netns::{run_in, Netns};

/// Receive buffer size. The kernel sizes dump datagrams by the reader's buffer, capped at 32 KiB;
/// single answers (a link with its statistics) are far smaller.
const RECV_BUF: usize = 64 * 1024;

/// How often a dump interrupted by a concurrent change is retried.
const DUMP_RETRIES: usize = 5;

/// `NLM_F_CAPPED`: the error message carries only the header of the request.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS`: the error message carries extended-ack attributes.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A synchronous rtnetlink socket, bound to the network namespace it was opened in.
///
/// Open it with [`Handle::new`] (the calling thread's namespace) or [`Handle::in_netns`] (any
/// namespace, without switching the calling thread). The socket keeps acting on that namespace
/// whichever thread uses it afterwards. Verbs take `&mut self`; one handle serves one thread at
/// a time (it is `Send`, not `Sync`).
#[derive(Debug)]
pub struct Handle {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// How a request ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// An acknowledgement (requests sent with `NLM_F_ACK`).
    Ack,
    /// `NLMSG_DONE` (dumps).
    Done,
    /// The first answer that is not part of a multipart message (gets).
    Answer,
}

impl Handle {
    /// Opens a socket in the calling thread's network namespace.
    pub fn new() -> Result<Handle> {
        let op = "open rtnetlink socket";
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(op, e))?;
        socket.bind_auto().map_err(|e| Error::io(op, e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| Error::io(op, e))?;
        // Both are optional niceties (kernels ≥ 4.3 / 4.12): shorter errors, kernel messages.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        Ok(Handle { socket, seq: 0, buf: Vec::with_capacity(RECV_BUF) })
    }

    /// Opens a socket inside `netns`: the socket is created on a thread that has entered the
    /// namespace, and stays bound to it.
    pub fn in_netns(netns: &Netns) -> Result<Handle> {
        run_in(netns, Handle::new)?
    }

    /// Sends a change request and waits for its acknowledgement.
    pub(crate) fn execute(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), RawError> {
        let seq = self.send(msg, flags | NLM_F_REQUEST | NLM_F_ACK)?;
        self.receive(seq, Until::Ack).map(|_| ())
    }

    /// Sends a get request and returns the single answer.
    pub(crate) fn get(&mut self, msg: RouteNetlinkMessage) -> Result<RouteNetlinkMessage, RawError> {
        let seq = self.send(msg, NLM_F_REQUEST)?;
        let (mut answers, _) = self.receive(seq, Until::Answer)?;
        answers.pop().ok_or_else(|| RawError::Protocol("no answer to a get request".into()))
    }

    /// Sends a dump request and returns every answer.
    pub(crate) fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, RawError> {
        let mut attempt = 0;
        loop {
            let seq = self.send(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            let (answers, interrupted) = self.receive(seq, Until::Done)?;
            attempt += 1;
            if !interrupted || attempt >= DUMP_RETRIES {
                return Ok(answers);
            }
        }
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<u32, RawError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        loop {
            match self.socket.send(&out, 0) {
                Ok(_) => return Ok(self.seq),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads answers to request `seq` until `until`; returns them and whether the kernel flagged
    /// the dump as interrupted.
    fn receive(&mut self, seq: u32, until: Until) -> Result<(Vec<RouteNetlinkMessage>, bool), RawError> {
        let mut answers = Vec::new();
        let mut interrupted = false;
        loop {
            self.buf.clear();
            let len = loop {
                match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            if len > self.buf.len() {
                return Err(RawError::Protocol(format!("answer of {len} bytes truncated to {}", self.buf.len())));
            }
            let mut rest = &self.buf[..len];
            while rest.len() >= 16 {
                let msg_len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if msg_len < 16 || msg_len > rest.len() {
                    return Err(RawError::Protocol(format!("bad message length {msg_len}")));
                }
                let raw = &rest[..msg_len];
                rest = &rest[align4(msg_len).min(rest.len())..];
                let msg_flags = u16::from_ne_bytes([raw[6], raw[7]]);
                let msg_seq = u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]]);
                if msg_seq != seq {
                    continue;
                }
                if msg_flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw)
                    .map_err(|e| RawError::Protocol(e.to_string()))?;
                match msg.payload {
                    NetlinkPayload::Error(err) => match err.code {
                        None => return Ok((answers, interrupted)),
                        Some(code) => {
                            let errno = Errno::from_raw(code.get().abs());
                            return Err(RawError::Kernel { errno, message: ext_ack_message(msg_flags, &err.header) });
                        }
                    },
                    NetlinkPayload::Done(done) => {
                        if done.code != 0 {
                            return Err(RawError::Kernel { errno: Errno::from_raw(done.code.abs()), message: None });
                        }
                        return Ok((answers, interrupted));
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        answers.push(inner);
                        if until == Until::Answer && msg_flags & NLM_F_MULTIPART == 0 {
                            return Ok((answers, interrupted));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The text of an extended ack: the payload of an `NLMSG_ERROR` is the request's header (only the
/// header if `NLM_F_CAPPED`, else the whole request), then attributes if `NLM_F_ACK_TLVS`.
pub(crate) fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 16 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize
    };
    let mut tlvs = payload.get(align4(request_len)..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = &tlvs[align4(len).min(tlvs.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn ext_ack_capped() {
        let mut payload = vec![0u8; 16];
        payload[0..4].copy_from_slice(&40u32.to_ne_bytes());
        payload.extend(nla(2, &7u32.to_ne_bytes()));
        payload.extend(nla(NLMSGERR_ATTR_MSG, b"Unknown device type\0"));
        assert_eq!(ext_ack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload).as_deref(), Some("Unknown device type"));
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &payload), None);
    }

    #[test]
    fn ext_ack_uncapped() {
        let mut payload = vec![0u8; 22];
        payload[0..4].copy_from_slice(&22u32.to_ne_bytes());
        payload.extend([0, 0]);
        payload.extend(nla(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0"));
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, &payload).as_deref(), Some("Nexthop has invalid gateway"));
    }

    #[test]
    fn ext_ack_garbage() {
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, &[0; 4]), None);
        let mut payload = vec![0u8; 16];
        payload.extend([200, 0, 1, 0]);
        assert_eq!(ext_ack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload), None);
    }
}
