//! The socket: [`NftSocket`], one `NETLINK_NETFILTER` socket in the network namespace it was
//! opened in, that commits batches (one atomic kernel transaction each) and makes requests and
//! dumps (rules, chains, sets, set elements, a table's use count).
//!
//! A batch asks for an acknowledgement of its last message only, so that a big batch cannot
//! overflow the socket's receive buffer with acks: the kernel handles the whole batch inside the
//! `sendmsg`, so when it returns every answer is queued — an error for each message that failed
//! (whatever its flags), the ack of the last message, and an error for the batch if its commit
//! failed. Answers carrying a sequence number outside the batch (left over from an earlier
//! request) are ignored.
//!
//! A dump that the kernel marks as interrupted (`NLM_F_DUMP_INTR`: another process changed the
//! ruleset between two datagrams of the dump — the CNI plugin adding a pod's masquerade rule
//! while the proxy lists its 100,000 chains) is made again, so a listing is never half old, half
//! new.

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::errno::Errno;

use super::consts::*;
use super::msg::MsgBuf;
use super::parse::{self, attrs, RuleInfo, SetElem, SetInfo};
use crate::error::{Error, Result};

const MSG_DONTWAIT: i32 = 0x40;
/// `NLM_F_DUMP_INTR`: the dump is inconsistent (the ruleset changed during it).
const NLM_F_DUMP_INTR: u16 = 0x10;
/// How often a dump is made before an interrupted one is an error.
const DUMP_TRIES: usize = 5;

/// One netlink message read back: (type, flags, sequence number, payload).
type Message = (u16, u16, u32, Vec<u8>);

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The socket failed (send, receive).
    #[error(transparent)]
    Socket(#[from] Error),
    /// The kernel refused the message with sequence number `seq` (the first refused one; the
    /// batch's BEGIN or END sequence number when the transaction as a whole failed). Nothing of
    /// the batch was applied.
    #[error("{errno:?} ({}){}", errno.desc(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Rejected {
        /// The sequence number of the refused message.
        seq: u32,
        /// The errno.
        errno: Errno,
        /// The kernel's extended-ack message, if it sent one.
        message: Option<String>,
    },
    /// No answer to the batch's last message came back.
    #[error("the kernel did not answer the transaction")]
    Unanswered,
}

/// A `NETLINK_NETFILTER` socket for nf_tables.
pub struct NftSocket {
    socket: Socket,
    seq: u32,
    rbuf: Vec<u8>,
}

impl std::fmt::Debug for NftSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftSocket").field("seq", &self.seq).finish()
    }
}

impl NftSocket {
    /// Opens a socket in the calling thread's network namespace (with extended and capped acks).
    pub fn open() -> Result<NftSocket> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| Error::io("open a netfilter netlink socket", e))?;
        socket.bind_auto().map_err(|e| Error::io("bind a netfilter netlink socket", e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| Error::io("connect a netfilter netlink socket", e))?;
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(NftSocket { socket, seq: (now.subsec_nanos() | 1) & 0x0fff_ffff, rbuf: Vec::with_capacity(1 << 20) })
    }

    /// The underlying socket (to size its buffers).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Reserves `n` sequence numbers; returns the first.
    pub fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }

    /// Commits a batch: `batch` holds `NFNL_MSG_BATCH_BEGIN` (sequence number `begin_seq`) and
    /// the messages; this asks for an ack of the last message, appends `NFNL_MSG_BATCH_END`
    /// (`end_seq`, which must be past the messages' sequence numbers), sends it and reads the
    /// answers. Answers with a sequence number outside `begin_seq..=end_seq` are ignored.
    pub fn commit(&mut self, batch: &mut MsgBuf, begin_seq: u32, end_seq: u32) -> Result<(), BatchError> {
        let last = match batch.last_message() {
            Some(at) if at > 0 => at,
            _ => return Ok(()), // nothing but BEGIN
        };
        let last_seq = batch.add_flags(last, NLM_F_ACK);
        batch.batch_end(end_seq);
        loop {
            match self.socket.send(batch.as_bytes(), 0) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("send a batch of {} bytes", batch.len()), e).into()),
            }
        }
        let span = end_seq.wrapping_sub(begin_seq);
        let mut answered = false;
        let mut error: Option<(u32, Errno, Option<String>)> = None;
        loop {
            let msgs = self.recv(true)?;
            if msgs.is_empty() {
                break;
            }
            for (ty, flags, seq, payload) in msgs {
                if ty != NLMSG_ERROR || payload.len() < 4 || seq.wrapping_sub(begin_seq) > span {
                    continue;
                }
                let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                if seq == last_seq {
                    answered = true;
                }
                let idx = seq.wrapping_sub(begin_seq);
                if code != 0 && error.as_ref().is_none_or(|(i, ..)| idx < i.wrapping_sub(begin_seq)) {
                    let (errno, message) = parse::error_answer(code, flags, &payload[4..]);
                    error = Some((seq, errno, message));
                }
            }
        }
        match error {
            Some((seq, errno, message)) => Err(BatchError::Rejected { seq, errno, message }),
            None if !answered => Err(BatchError::Unanswered),
            None => Ok(()),
        }
    }

    /// Reads one datagram: its messages. With `nowait`, none when nothing is queued.
    fn recv(&mut self, nowait: bool) -> Result<Vec<Message>> {
        self.rbuf.clear();
        let len = loop {
            match self.socket.recv(&mut self.rbuf, if nowait { MSG_DONTWAIT } else { 0 }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Vec::new()),
                Err(e) => return Err(Error::io("receive from a netfilter netlink socket", e)),
            }
        };
        let mut rest = &self.rbuf[..len.min(self.rbuf.len())];
        let mut out = Vec::new();
        while rest.len() >= 16 {
            let mlen = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if mlen < 16 || mlen > rest.len() {
                break;
            }
            let ty = u16::from_ne_bytes([rest[4], rest[5]]);
            let flags = u16::from_ne_bytes([rest[6], rest[7]]);
            let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
            out.push((ty, flags, seq, rest[16..mlen].to_vec()));
            rest = &rest[((mlen + 3) & !3).min(rest.len())..];
        }
        Ok(out)
    }

    /// A request `msg` (`NFT_MSG_GET*`, a dump with [`NLM_F_DUMP`] in `flags`) with string
    /// attributes; calls `each` with the payload (after `nfgenmsg`) of every answer. `ENOENT`
    /// (no such table, chain or set) is no answer. A dump that the kernel marks as interrupted
    /// (`NLM_F_DUMP_INTR`: the ruleset changed between two of its datagrams, so the listing may
    /// miss or repeat objects) is made again. `op` names the request in errors.
    pub fn request(
        &mut self,
        op: &str,
        msg: u16,
        flags: u16,
        family: u8,
        attributes: &[(u16, &str)],
        mut each: impl FnMut(&[u8]),
    ) -> Result<()> {
        let mut tries = 0;
        loop {
            let (answers, interrupted) = self.request_once(op, msg, flags, family, attributes)?;
            tries += 1;
            if interrupted && tries < DUMP_TRIES {
                continue;
            }
            if interrupted {
                return Err(Error::Protocol {
                    op: op.to_string(),
                    message: format!("the dump was interrupted by changes {DUMP_TRIES} times"),
                });
            }
            for a in &answers {
                each(a);
            }
            return Ok(());
        }
    }

    /// One request: the payloads of its answers, and whether the dump was interrupted.
    fn request_once(
        &mut self,
        op: &str,
        msg: u16,
        flags: u16,
        family: u8,
        attributes: &[(u16, &str)],
    ) -> Result<(Vec<Vec<u8>>, bool)> {
        let seq = self.next_seq(1);
        let mut b = MsgBuf::new();
        let m = b.nft(msg, flags, seq, family);
        for (ty, v) in attributes {
            b.str(*ty, v);
        }
        b.end(m);
        loop {
            match self.socket.send(b.as_bytes(), 0) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("{op}: send"), e)),
            }
        }
        let mut answers = Vec::new();
        let mut interrupted = false;
        loop {
            for (ty, mflags, mseq, mut payload) in self.recv(false)? {
                if mseq != seq {
                    continue;
                }
                interrupted |= mflags & NLM_F_DUMP_INTR != 0;
                match ty {
                    NLMSG_DONE => return Ok((answers, interrupted)),
                    NLMSG_ERROR => {
                        let code = payload.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if code == 0 || code == -(Errno::ENOENT as i32) {
                            return Ok((answers, interrupted));
                        }
                        let (errno, message) = parse::error_answer(code, mflags, &payload[4..]);
                        return Err(Error::Netlink { op: op.to_string(), errno, message });
                    }
                    _ if payload.len() >= 4 => {
                        payload.drain(..4);
                        answers.push(payload);
                        if mflags & NLM_F_MULTI == 0 {
                            return Ok((answers, interrupted));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// A dump: [`NftSocket::request`] with [`NLM_F_DUMP`].
    pub fn dump(
        &mut self,
        op: &str,
        msg: u16,
        family: u8,
        attributes: &[(u16, &str)],
        each: impl FnMut(&[u8]),
    ) -> Result<()> {
        self.request(op, msg, NLM_F_DUMP, family, attributes, each)
    }

    /// The rules of table `table` of `family` (none when the table does not exist).
    pub fn rules(&mut self, family: u8, table: &str) -> Result<Vec<RuleInfo>> {
        self.list_table(family, table, "rules", NFT_MSG_GETRULE, NFTA_RULE_TABLE, |p| {
            parse::parse_rule(family, p).map(|r| (r.table.clone(), r))
        })
    }

    /// The names of the chains of table `table` of `family` (none without the table).
    pub fn chains(&mut self, family: u8, table: &str) -> Result<Vec<String>> {
        self.list_table(family, table, "chains", NFT_MSG_GETCHAIN, NFTA_CHAIN_TABLE, parse::parse_chain)
    }

    /// The sets and maps (anonymous ones too) of table `table` of `family`.
    pub fn sets(&mut self, family: u8, table: &str) -> Result<Vec<SetInfo>> {
        self.list_table(family, table, "sets", NFT_MSG_GETSET, NFTA_SET_TABLE, |p| {
            parse::parse_set(p).map(|s| (s.table.clone(), s))
        })
    }

    /// The objects of one kind (`what`, listed by `msg` filtered on attribute `table_attr`) in
    /// table `table`: `parse` reads one answer as its table's name and the object.
    fn list_table<T>(
        &mut self,
        family: u8,
        table: &str,
        what: &str,
        msg: u16,
        table_attr: u16,
        parse: impl Fn(&[u8]) -> Option<(String, T)>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let op = format!("list the {what} of table {} {table}", family_name(family));
        self.dump(&op, msg, family, &[(table_attr, table)], |p| {
            if let Some((t, item)) = parse(p) {
                if t == table {
                    out.push(item);
                }
            }
        })?;
        Ok(out)
    }

    /// The elements of set `set` of table `table` (none without the set); an element that
    /// cannot be read is an error.
    pub fn set_elements(&mut self, family: u8, table: &str, set: &str) -> Result<Vec<SetElem>> {
        let mut out = Vec::new();
        let mut bad = false;
        let op = format!("list the elements of {} {table} {set}", family_name(family));
        self.dump(
            &op,
            NFT_MSG_GETSETELEM,
            family,
            &[(NFTA_SET_ELEM_LIST_TABLE, table), (NFTA_SET_ELEM_LIST_SET, set)],
            |p| {
                for e in parse::parse_elems(p) {
                    match e {
                        Some(e) => out.push(e),
                        None => bad = true,
                    }
                }
            },
        )?;
        if bad {
            return Err(Error::Protocol { op, message: "an element without a key".into() });
        }
        Ok(out)
    }

    /// How many chains, sets (anonymous ones too) and other objects table `table` of `family`
    /// holds (the kernel's `use` count); `None` without the table. Cheap, unlike listing.
    pub fn table_use(&mut self, family: u8, table: &str) -> Result<Option<u32>> {
        let mut out = None;
        let op = format!("get table {} {table}", family_name(family));
        self.request(&op, NFT_MSG_GETTABLE, 0, family, &[(NFTA_TABLE_NAME, table)], |p| {
            for (ty, v) in attrs(p) {
                if ty == NFTA_TABLE_USE && v.len() == 4 {
                    out = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                }
            }
        })?;
        Ok(out)
    }

    /// Whether table `table` of `family` has chain `chain` (one lookup, no listing).
    pub fn has_chain(&mut self, family: u8, table: &str, chain: &str) -> Result<bool> {
        let mut found = false;
        let op = format!("get chain {} {table} {chain}", family_name(family));
        self.request(&op, NFT_MSG_GETCHAIN, 0, family, &[(NFTA_CHAIN_TABLE, table), (NFTA_CHAIN_NAME, chain)], |_| {
            found = true
        })?;
        Ok(found)
    }
}

/// A family's name as `nft` writes it.
pub fn family_name(family: u8) -> &'static str {
    match family {
        1 => "inet",
        2 => "ip",
        10 => "ip6",
        3 => "arp",
        7 => "bridge",
        5 => "netdev",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_name_the_errno_and_the_message() {
        let e = BatchError::Rejected { seq: 3, errno: Errno::ENOENT, message: Some("Unknown chain".into()) };
        assert_eq!(e.to_string(), "ENOENT (No such file or directory): Unknown chain");
        let e = BatchError::Rejected { seq: 3, errno: Errno::EEXIST, message: None };
        assert_eq!(e.to_string(), "EEXIST (File exists)");
        assert_eq!(family_name(FAMILY_INET), "inet");
        assert_eq!(family_name(FAMILY_IPV6), "ip6");
    }
}
