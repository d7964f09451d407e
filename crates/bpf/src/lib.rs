//! podnet's eBPF layer, kept to what podnet's programs need and written without a C toolchain:
//! programs are assembled in Rust ([`asm`]) against the running kernel's types ([`btf`]), and
//! loaded, pinned and attached with bpf(2) ([`sys`], the crate's only unsafe code).
//!
//! - [`redirect`]: the same-node redirect — pod-to-pod packets between two pods of one node go
//!   from one veth straight into the other instead of across the bridge.

pub mod asm;
pub mod btf;
pub mod error;
pub mod redirect;
pub mod sys;

pub use error::{Error, Result};
pub use redirect::{ensure_bpffs, is_bpffs, LocalRedirect};
