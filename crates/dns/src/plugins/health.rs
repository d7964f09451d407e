//! `health`: liveness on `:8080/health` (200 `OK` while the process serves). On shutdown the
//! endpoint and the server stay up for the lameduck duration ([`crate::plugins::ChainContext::shutdown`]).
//! In the chain it only passes queries on.

use hickory_proto::op::Message;

use crate::wire::{WireAnswer, WireNext, WireQuery};
use crate::{BoxFuture, Handler, Next, Request};

/// The `health` plugin's place in the chain.
#[derive(Debug, Default)]
pub struct HealthPlugin;

impl Handler for HealthPlugin {
    fn name(&self) -> &'static str {
        "health"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        next.run(req)
    }

    /// Nothing to do for an answer served from stored bytes: passed on.
    fn wire(&self, q: &WireQuery<'_>, next: WireNext<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        next.run(q, out)
    }
}
