//! nftables over netlink (`NETLINK_NETFILTER`, nfnetlink's nf_tables subsystem), without the
//! `nft` program: the one encoder of nf_tables messages that podnet has, shared by the CNI
//! plugin's ipMasq (`podnet-cni`, on every ADD and DEL) and the service proxy's nftables mode
//! (`podnet-proxy`, thousands of chains per sync).
//!
//! - [`MsgBuf`] ([`msg`]): messages written in place — batch begin and end, tables, chains (base
//!   chains with their hook), rules with a comment, sets and maps (anonymous ones too), set
//!   elements, and the expressions of a rule (`payload`, `cmp`, `meta`, `bitwise`, `lookup`,
//!   `immediate`, `ct`, `fib`, `numgen`, `masq`, `reject`, `nat`, `dynset`) encoded as `nft` 1.0
//!   encodes the same rule text, so that `nft list ruleset` shows them as if `nft` had added them.
//! - [`parse`]: what comes back — attributes, rules with handle and comment, chains, sets,
//!   set elements, error answers with the kernel's extended-ack message.
//! - [`NftSocket`] ([`socket`]): commits a batch (one atomic kernel transaction, as `nft -f`
//!   does) and reports the first message the kernel refused by its sequence number; lists rules,
//!   chains, sets, elements.
//! - [`consts`]: the protocol's numbers.
//!
//! What a caller's own objects mean (which rules ipMasq writes, the proxy's chains and maps) stays
//! with the caller: this module knows messages, not rulesets.

pub mod consts;
pub mod msg;
pub mod parse;
pub mod socket;

pub use consts::*;
pub use msg::{
    addr_bytes, addr_offset, comment_udata, hook_number, BaseHook, CmpOp, MsgBuf, PrefixMatch, SetRef, SetSpec,
    Verdict, MAX_ATTR,
};
pub use parse::{RuleInfo, SetElem, SetInfo};
pub use socket::{family_name, BatchError, NftSocket};
