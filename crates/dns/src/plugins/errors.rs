//! `errors`: logs the errors the plugins below it met while answering a query, as CoreDNS's
//! `[ERROR] plugin/errors: 2 example.org. A: …` (the rcode, the name, the type, the error).
//! A plugin reports an error with [`report_error`]; without `errors` in the chain nothing is
//! logged.

use std::cell::RefCell;
use std::fmt::Display;

use hickory_proto::op::Message;

use crate::corefile::ErrorsOptions;
use crate::wire::{WireAnswer, WireNext, WireQuery};
use crate::{BoxFuture, Handler, Next, Request};

tokio::task_local! {
    static REPORTED: RefCell<Vec<String>>;
}

/// Records an error met answering the current query, for the `errors` plugin above to log.
pub fn report_error(plugin: &str, error: impl Display) {
    let _ = REPORTED.try_with(|r| r.borrow_mut().push(format!("plugin/{plugin}: {error}")));
}

/// The `errors` plugin.
#[derive(Debug, Default)]
pub struct ErrorsPlugin {
    #[allow(dead_code)]
    options: ErrorsOptions,
}

impl ErrorsPlugin {
    pub fn new(options: ErrorsOptions) -> Self {
        ErrorsPlugin { options }
    }

    /// Runs `next` and returns its answer with the errors reported meanwhile.
    pub async fn collect<'a>(req: &'a Request, next: Next<'a>) -> (Message, Vec<String>) {
        REPORTED
            .scope(RefCell::new(Vec::new()), async move {
                let resp = next.run(req).await;
                let errors = REPORTED.with(|r| r.take());
                (resp, errors)
            })
            .await
    }
}

impl Handler for ErrorsPlugin {
    fn name(&self) -> &'static str {
        "errors"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let (resp, errors) = Self::collect(req, next).await;
            if !errors.is_empty() {
                let (name, qtype) =
                    req.message.query().map(|q| (q.name().to_ascii(), q.query_type().to_string())).unwrap_or_default();
                let rcode = u16::from(resp.response_code());
                for e in errors {
                    tracing::error!(target: "podnet_dns::errors", "{rcode} {name} {qtype}: {e}");
                }
            }
            resp
        })
    }

    /// Nothing to do for an answer served from stored bytes: passed on.
    fn wire(&self, q: &WireQuery<'_>, next: WireNext<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        next.run(q, out)
    }
}
