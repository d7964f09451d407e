//! Traffic control, as much as attaching a BPF program to a device's ingress needs:
//! the `clsact` qdisc and a direct-action BPF classifier on its ingress hook
//! (`tc qdisc add dev X clsact`, `tc filter add dev X ingress bpf direct-action fd FD`).
//!
//! This is tc's classic attachment rather than tcx (Linux 6.6): attaching through tcx waits for
//! an RCU grace period per device (10 ms and more), which a CNI ADD would pay for every pod.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Result;
use crate::handle::Handle;

/// `ETH_P_ALL`, the classifier's protocol: every packet.
const ETH_P_ALL: u16 = 0x0003;

impl Handle {
    /// Adds the `clsact` qdisc to device `ifindex`; fails with "already exists" if it has one.
    pub fn add_clsact(&mut self, ifindex: u32) -> Result<()> {
        let mut msg = TcMessage::with_index(ifindex as i32);
        msg.header.handle = TcHandle { major: 0xffff, minor: 0 };
        msg.header.parent = TcHandle::CLSACT;
        msg.attributes.push(TcAttribute::Kind("clsact".into()));
        self.execute(RouteNetlinkMessage::NewQueueDiscipline(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.op(format!("add clsact qdisc to link {ifindex}")))
    }

    /// Adds the loaded BPF program `prog` (a `sched_cls` program, named `name` in listings) as a
    /// direct-action classifier of every packet on the ingress hook of device `ifindex`, at
    /// priority `priority` (one classifier per priority; a second fails with "already exists").
    pub fn add_ingress_bpf(&mut self, ifindex: u32, prog: BorrowedFd<'_>, name: &str, priority: u16) -> Result<()> {
        let mut msg = TcMessage::with_index(ifindex as i32);
        msg.header.parent = TcHandle { major: TcHandle::CLSACT.major, minor: TcHandle::MIN_INGRESS };
        msg.header.handle = TcHandle { major: 0, minor: 1 };
        msg.header.info = (u32::from(priority) << 16) | u32::from(ETH_P_ALL.to_be());
        msg.attributes.push(TcAttribute::Kind("bpf".into()));
        msg.attributes.push(TcAttribute::Options(vec![
            TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
            TcOption::Bpf(TcFilterBpfOption::ProgName(name.into())),
            TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
        ]));
        self.execute(RouteNetlinkMessage::NewTrafficFilter(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.op(format!("add ingress bpf classifier {name} to link {ifindex}")))
    }
}
