//! The cluster DNS server's request path on arbitrary bytes (issue 7): parse, the chain of a
//! kubeadm-like server block over a fixed cluster snapshot, encode — over UDP and TCP. The
//! invariants are `podnet_dns::fuzz::check`'s: no panic, and every answer parses, has the
//! query's id and QR set, repeats the question and fits the transport; the wire path takes only
//! what the Message path takes, and answers as it does.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use podnet_dns::Handler;

static CHAIN: OnceLock<Vec<Arc<dyn Handler>>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let chain = CHAIN.get_or_init(podnet_dns::fuzz::chain);
    podnet_dns::fuzz::check(chain, data);
});
