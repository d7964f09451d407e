//! Same-node redirect: a packet from one pod to another pod of the same node is handed from the
//! sender's veth straight into the receiver's, instead of crossing the node's bridge — Cilium's
//! `bpf_redirect_peer` path, for podnet's bridge network.
//!
//! One program per node, attached to the tc ingress hook of every pod's host-side veth (a
//! direct-action classifier under `clsact`: tcx would cost an RCU grace period per pod), and one
//! hash map per node from a pod's IPv4 address to its host-side veth's ifindex (both pinned on a
//! bpffs, so that each CNI ADD and DEL — a process of its own — finds them). For a packet a pod
//! sends, the program:
//!
//! 1. passes it on (to the bridge, as without the program) unless it is IPv4 TCP or UDP without
//!    IP options or fragmentation, addressed to a pod in the map;
//! 2. looks the connection up in conntrack (`bpf_skb_ct_lookup`) and passes it on when the
//!    connection is NATed: the reply of a pod behind a Service must meet netfilter, which undoes
//!    the Service's DNAT (with the bridge, `br_netfilter` sees it);
//! 3. otherwise marks it for the host (the bridge port's promiscuous receive marked it
//!    `PACKET_OTHERHOST`) and redirects it to the peer of the destination's host-side veth —
//!    the pod's own `eth0` — whose network stack receives it at once, without a second pass
//!    through the CPU's backlog, the bridge or netfilter.
//!
//! Everything else — ARP, ICMP, IPv6, Service addresses, other nodes, the node itself — takes the
//! bridge as before.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::asm::{self, Asm, Cond, Reg, Size};
use crate::btf::{Btf, Kind};
use crate::error::{Error, Result};
use crate::sys::{Map, Program, F_NO_PREALLOC};
use podnet_netlink::Handle;

/// The pin names, versioned with the map's layout and the program's behaviour.
pub const MAP_PIN: &str = "podnet_local_pods_v1";
pub const PROG_PIN: &str = "podnet_redirect_v1";
/// How many pods a node's map holds.
pub const MAX_PODS: u32 = 65536;
/// The classifier's tc priority on a pod's veth.
pub const PRIORITY: u16 = 1;

// Helpers (`enum bpf_func_id`).
const MAP_LOOKUP_ELEM: i32 = 1;
const SKB_CHANGE_TYPE: i32 = 32;
const REDIRECT_PEER: i32 = 155;
// `struct __sk_buff` fields.
const SKB_PROTOCOL: i16 = 16;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;
/// `TC_ACT_UNSPEC`: go on with the next classifier, then the stack as without one.
const TC_ACT_UNSPEC: i32 = -1;
/// `IPS_SRC_NAT | IPS_DST_NAT` of a conntrack entry's status.
const IPS_NAT_MASK: i32 = (1 << 4) | (1 << 5);
/// `BPF_F_CURRENT_NETNS`: conntrack of the packet's own namespace.
const CURRENT_NETNS: i32 = -1;
const ETH_P_IP: u16 = 0x0800;

/// What the program needs from the running kernel's BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelTypes {
    /// BTF ids of the kfuncs `bpf_skb_ct_lookup` and `bpf_ct_release`.
    pub ct_lookup: u32,
    pub ct_release: u32,
    /// The byte offset of `status` in `struct nf_conn`.
    pub ct_status: u32,
    /// `sizeof(struct bpf_ct_opts)`.
    pub ct_opts_size: u32,
}

impl KernelTypes {
    /// Reads them from `btf`.
    pub fn from_btf(btf: &Btf) -> Result<KernelTypes> {
        Ok(KernelTypes {
            ct_lookup: btf.find(Kind::Func, "bpf_skb_ct_lookup")?,
            ct_release: btf.find(Kind::Func, "bpf_ct_release")?,
            ct_status: btf.member_offset("nf_conn", "status")?,
            ct_opts_size: btf.struct_size("bpf_ct_opts")?,
        })
    }
}

/// The program's instructions, for the map with descriptor `map_fd`.
pub fn program(map_fd: i32, k: &KernelTypes) -> Vec<asm::Insn> {
    // Packet offsets: Ethernet header, then an IPv4 header without options, then the ports.
    const IP: i16 = 14;
    const IP_FRAG: i16 = IP + 6;
    const IP_PROTO: i16 = IP + 9;
    const IP_SADDR: i16 = IP + 12;
    const IP_DADDR: i16 = IP + 16;
    const PORTS: i16 = IP + 20;
    // Stack: the map key, then the conntrack tuple (saddr, daddr, sport, dport) and options.
    const KEY: i16 = -4;
    const TUPLE: i16 = -48;
    const OPTS: i16 = -32;

    let (ctx, data, end, target) = (Reg::R6, Reg::R7, Reg::R8, Reg::R9);
    let mut a = Asm::new();
    let pass = a.label();
    let l4 = a.label();
    let redirect = a.label();

    a.mov(ctx, Reg::R1);
    // IPv4, long enough for the ports, no options, TCP or UDP, not a fragment.
    a.load(Size::W, Reg::R2, ctx, SKB_PROTOCOL);
    a.jump_if(Cond::Ne, Reg::R2, ETH_P_IP.to_be() as i32, pass);
    a.load(Size::W, data, ctx, SKB_DATA);
    a.load(Size::W, end, ctx, SKB_DATA_END);
    a.mov(Reg::R2, data).add_imm(Reg::R2, (PORTS + 4) as i32);
    a.jump_if_reg(Cond::Gt, Reg::R2, end, pass);
    a.load(Size::B, Reg::R2, data, IP);
    a.jump_if(Cond::Ne, Reg::R2, 0x45, pass);
    a.load(Size::H, Reg::R2, data, IP_FRAG);
    a.jump_if(Cond::Set, Reg::R2, 0x3fffu16.to_be() as i32, pass); // MF or a fragment offset
    a.load(Size::B, Reg::R2, data, IP_PROTO);
    a.jump_if(Cond::Eq, Reg::R2, libc::IPPROTO_TCP, l4);
    a.jump_if(Cond::Ne, Reg::R2, libc::IPPROTO_UDP, pass);
    a.bind(l4);

    // A pod of this node? Its host-side veth's ifindex.
    a.load(Size::W, Reg::R2, data, IP_DADDR);
    a.store(Size::W, Reg::R10, KEY, Reg::R2);
    a.load_map_fd(Reg::R1, map_fd);
    a.mov(Reg::R2, Reg::R10).add_imm(Reg::R2, KEY as i32);
    a.call(MAP_LOOKUP_ELEM);
    a.jump_if(Cond::Eq, Reg::R0, 0, pass);
    a.load(Size::W, target, Reg::R0, 0);

    // A NATed connection's packets go to netfilter.
    a.load(Size::W, Reg::R2, data, IP_SADDR);
    a.store(Size::W, Reg::R10, TUPLE, Reg::R2);
    a.load(Size::W, Reg::R2, data, IP_DADDR);
    a.store(Size::W, Reg::R10, TUPLE + 4, Reg::R2);
    a.load(Size::W, Reg::R2, data, PORTS);
    a.store(Size::W, Reg::R10, TUPLE + 8, Reg::R2);
    a.store_imm(Size::W, Reg::R10, OPTS, CURRENT_NETNS);
    a.store_imm(Size::W, Reg::R10, OPTS + 4, 0);
    a.store_imm(Size::DW, Reg::R10, OPTS + 8, 0);
    a.load(Size::B, Reg::R2, data, IP_PROTO);
    a.store(Size::B, Reg::R10, OPTS + 8, Reg::R2);
    a.mov(Reg::R1, ctx);
    a.mov(Reg::R2, Reg::R10).add_imm(Reg::R2, TUPLE as i32);
    a.mov_imm(Reg::R3, 12);
    a.mov(Reg::R4, Reg::R10).add_imm(Reg::R4, OPTS as i32);
    a.mov_imm(Reg::R5, k.ct_opts_size as i32);
    a.call_kfunc(k.ct_lookup);
    a.jump_if(Cond::Eq, Reg::R0, 0, redirect);
    a.load(Size::DW, end, Reg::R0, k.ct_status as i16);
    a.mov(Reg::R1, Reg::R0);
    a.call_kfunc(k.ct_release);
    a.jump_if(Cond::Set, end, IPS_NAT_MASK, pass);

    // Into the destination pod's eth0.
    a.bind(redirect);
    a.mov(Reg::R1, ctx).mov_imm(Reg::R2, libc::PACKET_HOST as i32);
    a.call(SKB_CHANGE_TYPE);
    a.mov(Reg::R1, target).mov_imm(Reg::R2, 0);
    a.call(REDIRECT_PEER);
    a.exit();

    a.bind(pass);
    a.mov_imm(Reg::R0, TC_ACT_UNSPEC);
    a.exit();
    a.finish().expect("every label is bound and near")
}

/// The node's redirect program and its map of local pods.
#[derive(Debug)]
pub struct LocalRedirect {
    map: Map,
    prog: Program,
}

fn load(map: &Map) -> Result<Program> {
    use std::os::fd::AsRawFd;
    let kernel = KernelTypes::from_btf(&Btf::vmlinux()?)?;
    let insns = asm::encode(&program(map.fd().as_raw_fd(), &kernel));
    // GPL: the conntrack kfuncs are only for GPL-compatible programs.
    Program::load_sched_cls("podnet_redirect", &insns, "Dual MIT/GPL")
}

impl LocalRedirect {
    /// Opens the program and map pinned in `dir` (a bpffs), loading and pinning them first if
    /// they are not there yet. Safe to race with another ADD: whoever pins first wins and the
    /// other uses the winner's.
    pub fn open_or_load(dir: &Path) -> Result<LocalRedirect> {
        if !dir.exists() && dir.parent().is_some_and(is_bpffs) {
            match std::fs::create_dir(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
                    return Err(Error::Fs { path: dir.into(), what: "creating the pin directory", errno });
                }
                _ => {}
            }
        }
        if !is_bpffs(dir) {
            return Err(Error::Mismatch {
                path: dir.into(),
                what: "not a bpffs (mount one there: mount -t bpf bpf DIR)".into(),
            });
        }
        let map_path = dir.join(MAP_PIN);
        let map = match Map::open_pinned(&map_path, 4, 4) {
            Ok(m) => m,
            Err(e) if e.errno() == Some(Errno::ENOENT) => {
                let m = Map::create_hash("podnet_local", 4, 4, MAX_PODS, F_NO_PREALLOC)?;
                match m.pin(&map_path) {
                    Ok(()) => m,
                    Err(e) if e.errno() == Some(Errno::EEXIST) => Map::open_pinned(&map_path, 4, 4)?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let prog_path = dir.join(PROG_PIN);
        let prog = match Program::open_pinned(&prog_path) {
            Ok(p) => p,
            Err(e) if e.errno() == Some(Errno::ENOENT) => {
                let p = load(&map)?;
                match p.pin(&prog_path) {
                    Ok(()) => p,
                    Err(e) if e.errno() == Some(Errno::EEXIST) => Program::open_pinned(&prog_path)?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(LocalRedirect { map, prog })
    }

    /// Opens what is pinned in `dir`; None when nothing is (no pod was ever added there).
    pub fn open(dir: &Path) -> Result<Option<LocalRedirect>> {
        if !is_bpffs(dir) {
            return Ok(None);
        }
        let map = match Map::open_pinned(&dir.join(MAP_PIN), 4, 4) {
            Ok(m) => m,
            Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let prog = Program::open_pinned(&dir.join(PROG_PIN))?;
        Ok(Some(LocalRedirect { map, prog }))
    }

    /// Makes `ip` a local pod behind host-side veth `host_ifindex` (of `host`'s namespace), and
    /// runs the program on that veth's ingress (the pod's outgoing packets). Again is fine.
    pub fn add_pod(&self, host: &mut Handle, ip: Ipv4Addr, host_ifindex: u32) -> Result<()> {
        self.attach(host, host_ifindex)?;
        self.map.update(&ip.octets(), &host_ifindex.to_ne_bytes())
    }

    /// Runs the program on the ingress of device `ifindex`: a `clsact` qdisc (unless it has
    /// one) with the program as its ingress classifier (unless it is there).
    fn attach(&self, host: &mut Handle, ifindex: u32) -> Result<()> {
        let exists = |e: &podnet_netlink::Error| e.kind() == podnet_netlink::ErrorKind::AlreadyExists;
        let attach_err = |e: podnet_netlink::Error| Error::Attach(e.to_string());
        match host.add_clsact(ifindex) {
            Err(e) if !exists(&e) => return Err(attach_err(e)),
            _ => {}
        }
        match host.add_ingress_bpf(ifindex, self.prog.fd(), "podnet_redirect", PRIORITY) {
            Err(e) if !exists(&e) => Err(attach_err(e)),
            _ => Ok(()),
        }
    }

    /// Forgets local pod `ip`; false if it was not there.
    pub fn remove_pod(&self, ip: Ipv4Addr) -> Result<bool> {
        self.map.delete(&ip.octets())
    }

    /// The host-side veth `ip` is behind, if it is a local pod.
    pub fn pod(&self, ip: Ipv4Addr) -> Result<Option<u32>> {
        Ok(self.map.lookup(&ip.octets())?.map(|v| u32::from_ne_bytes(v.try_into().expect("4 bytes"))))
    }
}

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Whether `dir` is the root of a bpffs.
pub fn is_bpffs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
}

/// Creates `dir` and mounts a bpffs on it, unless it already is one. (Not safe to race with
/// itself: two mounts would stack, each with its own pins. The node agent calls it once.)
pub fn ensure_bpffs(dir: &Path) -> Result<()> {
    if is_bpffs(dir) {
        return Ok(());
    }
    let fs_err = |what, e: Errno| Error::Fs { path: PathBuf::from(dir), what, errno: e };
    std::fs::create_dir_all(dir)
        .map_err(|e| fs_err("creating the pin directory", Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    use nix::mount::{mount, MsFlags};
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("bpf"), dir, Some("bpf"), flags, Some("mode=0700")).map_err(|e| fs_err("mounting a bpffs", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> KernelTypes {
        KernelTypes { ct_lookup: 1000, ct_release: 1001, ct_status: 128, ct_opts_size: 16 }
    }

    #[test]
    fn every_path_ends_in_an_exit_and_jumps_stay_inside() {
        let insns = program(7, &kernel());
        assert_eq!(insns.last().unwrap().code, 0x95);
        for (i, insn) in insns.iter().enumerate() {
            if insn.code & 0x07 == 0x05 && insn.code & 0xf0 != 0x80 && insn.code & 0xf0 != 0x90 {
                let to = i as i64 + 1 + insn.off as i64;
                assert!(to > i as i64 && to < insns.len() as i64, "jump {i} → {to}");
            }
        }
    }

    #[test]
    fn calls_the_kfuncs_named_by_the_kernels_btf() {
        let insns = program(7, &kernel());
        let kfuncs: Vec<i32> = insns.iter().filter(|i| i.code == 0x85 && i.src == 2).map(|i| i.imm).collect();
        assert_eq!(kfuncs, [1000, 1001]);
        let helpers: Vec<i32> = insns.iter().filter(|i| i.code == 0x85 && i.src == 0).map(|i| i.imm).collect();
        assert_eq!(helpers, [MAP_LOOKUP_ELEM, SKB_CHANGE_TYPE, REDIRECT_PEER]);
        assert!(insns.iter().any(|i| i.code == 0x79 && i.off == 128), "status read at its BTF offset");
        assert!(insns.iter().any(|i| i.code == 0x18 && i.src == 1 && i.imm == 7), "the map's descriptor");
    }
}
