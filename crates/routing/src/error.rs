//! Errors of [`crate::apply`], each naming the operation that failed.

use crate::apply::Changes;

/// An error of applying a routing plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink operation (or namespace entry, or sysctl) failed.
    #[error("{op}: {source}")]
    Netlink {
        /// What was attempted, e.g. `route to node n2`.
        op: String,
        /// The netlink layer's error (it names the request and the errno).
        #[source]
        source: podnet_netlink::Error,
    },
    /// Running `nft` failed.
    #[error("{op}: {message}")]
    Nftables {
        /// What was attempted, e.g. `write nftables table ip podnet_node`.
        op: String,
        /// `nft`'s complaint.
        message: String,
    },
    /// Some operations failed; the others were done (`changes`). The next apply retries.
    #[error("routing only partly applied: {} operation(s) failed, the first: {}", failures.len(), first(failures))]
    Incomplete {
        /// What was changed nevertheless.
        changes: Changes,
        /// What failed.
        failures: Vec<Error>,
    },
}

fn first(failures: &[Error]) -> String {
    failures.first().map(ToString::to_string).unwrap_or_default()
}

impl Error {
    pub(crate) fn netlink(op: impl Into<String>) -> impl FnOnce(podnet_netlink::Error) -> Error {
        let op = op.into();
        move |source| Error::Netlink { op, source }
    }

    pub(crate) fn nft(op: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Nftables { op: op.into(), message: message.into() }
    }
}
