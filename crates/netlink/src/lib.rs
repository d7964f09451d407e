//! podnet's netlink layer: a small synchronous wrapper over rtnetlink (netlink-packet-route and
//! netlink-sys), in the spirit of netavark's, for a CNI plugin (a short-lived process) and the
//! node agent. No `ip` is ever run.
//!
//! - [`Netns`]: network namespaces — create and bind-mount under `/run/netns` exactly as
//!   `ip netns add` does, open any namespace file (`CNI_NETNS`, `/proc/PID/ns/net`), list,
//!   delete; [`run_in`] runs a closure on a dedicated thread inside a namespace (the calling
//!   thread's namespace never changes).
//! - [`Handle`]: one rtnetlink socket bound to one namespace ([`Handle::new`] for the current one,
//!   [`Handle::in_netns`] for any other), with verbs for links ([`link`]: veth, bridge, vxlan,
//!   dummy; up/down, MTU, MAC, master, namespace, promiscuous and hairpin mode, bridge VLANs),
//!   addresses ([`addr`]), routes ([`route`]), neighbours and FDB entries ([`neigh`]).
//! - [`nftables`]: nf_tables over netlink (`NETLINK_NETFILTER`): batches of tables, chains,
//!   rules, sets and elements encoded as `nft` encodes them, and listings — shared by the CNI
//!   plugin's ipMasq and the service proxy.
//! - [`tc`]: the `clsact` qdisc and a direct-action BPF classifier on a device's ingress.
//! - [`sysctl`]: `net.*` sysctls read and written through `/proc/sys` from inside a namespace.
//! - [`Error`]: one error type naming the operation and the errno (`EEXIST`, `ENODEV`, …), with
//!   [`Error::kind`] to tell "already exists" from "not found".
//!
//! ```no_run
//! use podnet_netlink::{Handle, Netns, NewLink, Route};
//! # fn main() -> podnet_netlink::Result<()> {
//! let pod = Netns::open("/var/run/netns/cni-1234")?;
//! let mut host = Handle::new()?;
//! let veth = host.create_link(&NewLink::veth("veth1234", "eth0").peer_netns(&pod).mtu(1450))?;
//! host.set_master(veth.index, "cni0")?;
//! host.set_up(veth.index)?;
//! let mut inside = Handle::in_netns(&pod)?;
//! inside.add_addr("eth0", "10.244.1.5/24".parse().unwrap())?;
//! inside.set_up("eth0")?;
//! inside.add_route(&Route::default_via("10.244.1.1".parse().unwrap()))?;
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod error;
pub mod handle;
pub mod link;
pub mod mac;
pub mod neigh;
pub mod netns;
pub mod nftables;
pub mod route;
pub mod sysctl;
pub mod tc;

pub use addr::{AddrOptions, Address};
pub use error::{Errno, Error, ErrorKind, Result};
pub use handle::Handle;
pub use ipnet::IpNet;
pub use link::{
    BridgeInfo, BridgeOptions, BridgePortInfo, BridgeVlan, Link, LinkId, LinkKind, NewLink, VethPeer, VxlanInfo,
    VxlanOptions,
};
pub use mac::MacAddr;
pub use neigh::{FdbEntry, Neighbour};
pub use netns::{run_in, Netns, NetnsId};
pub use route::{Route, RouteKind};
pub use sysctl::{read_sysctl, write_sysctl, write_sysctls};
