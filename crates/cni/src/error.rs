//! CNI errors: every failure of the plugin is a [`CniError`], which carries the error code of the
//! CNI specification (1–7, 11, 50, 51) or one of podnet's own (100 and up), and is printed on
//! stdout as the spec's error JSON (`cniVersion`, `code`, `msg`, `details`).

use serde_json::{json, Value};

/// podnet's own error codes (the spec reserves 0–99 for itself).
pub mod codes {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration (the message names the key and value).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// The container is unknown or does not exist (e.g. its network namespace is gone).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (the message names them).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure (e.g. reading stdin).
    pub const IO: u32 = 5;
    /// Failed to decode content (malformed JSON).
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// A transient condition: try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, and existing containers may have limited connectivity.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// podnet: an internal error (a bug or an unexpected system state).
    pub const INTERNAL: u32 = 100;
    /// podnet: no free address left in a range set.
    pub const RANGE_EXHAUSTED: u32 = 101;
    /// podnet: the interface name asked for is already in use in the container.
    pub const INTERFACE_EXISTS: u32 = 102;
    /// podnet: an address cannot be given (requested address taken, outside the ranges, or
    /// already allocated to this attachment).
    pub const ADDRESS_UNAVAILABLE: u32 = 103;
    /// podnet: a netlink operation (link, address, route, sysctl, namespace) failed.
    pub const NETLINK: u32 = 104;
    /// podnet: an nftables operation failed.
    pub const NFTABLES: u32 = 105;
    /// podnet: CHECK found the attachment not as expected.
    pub const CHECK_FAILED: u32 = 106;
    /// podnet: the IPAM store on disk could not be read or written.
    pub const STORE: u32 = 107;
    /// podnet: an eBPF operation (the same-node redirect) failed.
    pub const BPF: u32 = 108;
}

/// Every failure of the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CniError {
    #[error("{0}")]
    IncompatibleVersion(String),
    #[error("unsupported field in network configuration: {key}={value}")]
    UnsupportedField { key: String, value: String },
    #[error("{0}")]
    UnknownContainer(String),
    #[error("{0}")]
    InvalidEnv(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Decode(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    TryAgain(String),
    #[error("{0}")]
    NotAvailable(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    RangeExhausted(String),
    #[error("{0}")]
    InterfaceExists(String),
    #[error("{0}")]
    AddressUnavailable(String),
    #[error("{0}")]
    Netlink(String),
    #[error("{0}")]
    Nftables(String),
    #[error("{0}")]
    CheckFailed(String),
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Bpf(String),
    /// An error reported by a delegated plugin (an external IPAM), passed on unchanged.
    #[error("{msg}")]
    Delegate { code: u32, msg: String, details: String },
}

impl CniError {
    /// The CNI error code.
    pub fn code(&self) -> u32 {
        use codes::*;
        match self {
            CniError::IncompatibleVersion(_) => INCOMPATIBLE_VERSION,
            CniError::UnsupportedField { .. } => UNSUPPORTED_FIELD,
            CniError::UnknownContainer(_) => UNKNOWN_CONTAINER,
            CniError::InvalidEnv(_) => INVALID_ENV,
            CniError::Io(_) => IO,
            CniError::Decode(_) => DECODE,
            CniError::InvalidConfig(_) => INVALID_CONFIG,
            CniError::TryAgain(_) => TRY_AGAIN,
            CniError::NotAvailable(_) => NOT_AVAILABLE,
            CniError::Internal(_) => INTERNAL,
            CniError::RangeExhausted(_) => RANGE_EXHAUSTED,
            CniError::InterfaceExists(_) => INTERFACE_EXISTS,
            CniError::AddressUnavailable(_) => ADDRESS_UNAVAILABLE,
            CniError::Netlink(_) => NETLINK,
            CniError::Nftables(_) => NFTABLES,
            CniError::CheckFailed(_) => CHECK_FAILED,
            CniError::Store(_) => STORE,
            CniError::Bpf(_) => BPF,
            CniError::Delegate { code, .. } => *code,
        }
    }

    /// The spec's `details`: a longer description, when there is one.
    pub fn details(&self) -> &str {
        match self {
            CniError::Delegate { details, .. } => details,
            _ => "",
        }
    }

    /// The same error with `context` put before its message (the code is kept).
    pub fn context(self, context: impl std::fmt::Display) -> CniError {
        let wrap = |m: String| format!("{context}: {m}");
        match self {
            CniError::IncompatibleVersion(m) => CniError::IncompatibleVersion(wrap(m)),
            CniError::UnsupportedField { key, value } => CniError::UnsupportedField { key, value },
            CniError::UnknownContainer(m) => CniError::UnknownContainer(wrap(m)),
            CniError::InvalidEnv(m) => CniError::InvalidEnv(wrap(m)),
            CniError::Io(m) => CniError::Io(wrap(m)),
            CniError::Decode(m) => CniError::Decode(wrap(m)),
            CniError::InvalidConfig(m) => CniError::InvalidConfig(wrap(m)),
            CniError::TryAgain(m) => CniError::TryAgain(wrap(m)),
            CniError::NotAvailable(m) => CniError::NotAvailable(wrap(m)),
            CniError::Internal(m) => CniError::Internal(wrap(m)),
            CniError::RangeExhausted(m) => CniError::RangeExhausted(wrap(m)),
            CniError::InterfaceExists(m) => CniError::InterfaceExists(wrap(m)),
            CniError::AddressUnavailable(m) => CniError::AddressUnavailable(wrap(m)),
            CniError::Netlink(m) => CniError::Netlink(wrap(m)),
            CniError::Nftables(m) => CniError::Nftables(wrap(m)),
            CniError::CheckFailed(m) => CniError::CheckFailed(wrap(m)),
            CniError::Store(m) => CniError::Store(wrap(m)),
            CniError::Bpf(m) => CniError::Bpf(wrap(m)),
            CniError::Delegate { code, msg, details } => CniError::Delegate { code, msg: wrap(msg), details },
        }
    }

    /// The spec's error JSON for this error, in `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut v = json!({ "cniVersion": cni_version, "code": self.code(), "msg": self.to_string() });
        if !self.details().is_empty() {
            v["details"] = Value::String(self.details().to_string());
        }
        v
    }

    /// Reads an error JSON printed by another plugin (a delegate).
    pub fn from_json(v: &Value) -> Option<CniError> {
        let code = v.get("code")?.as_u64()? as u32;
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or("").to_string();
        let details = v.get("details").and_then(Value::as_str).unwrap_or("").to_string();
        Some(CniError::Delegate { code, msg, details })
    }
}

/// A shorthand for results of the plugin.
pub type CniResult<T> = Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec() {
        assert_eq!(CniError::IncompatibleVersion("x".into()).code(), 1);
        assert_eq!(CniError::UnsupportedField { key: "k".into(), value: "v".into() }.code(), 2);
        assert_eq!(CniError::UnknownContainer("x".into()).code(), 3);
        assert_eq!(CniError::InvalidEnv("x".into()).code(), 4);
        assert_eq!(CniError::Io("x".into()).code(), 5);
        assert_eq!(CniError::Decode("x".into()).code(), 6);
        assert_eq!(CniError::InvalidConfig("x".into()).code(), 7);
        assert_eq!(CniError::TryAgain("x".into()).code(), 11);
        assert_eq!(CniError::NotAvailable("x".into()).code(), 50);
        assert!(CniError::RangeExhausted("x".into()).code() >= 100);
        assert!(CniError::InterfaceExists("x".into()).code() >= 100);
    }

    #[test]
    fn error_json_has_the_spec_fields() {
        let e = CniError::InvalidConfig("bridge: \"x y\" is not a valid interface name".into());
        let v = e.to_json("1.1.0");
        assert_eq!(
            v,
            json!({"cniVersion": "1.1.0", "code": 7, "msg": "bridge: \"x y\" is not a valid interface name"})
        );
        let e = CniError::UnsupportedField { key: "vlanTrunk".into(), value: "[1]".into() };
        assert_eq!(e.to_json("1.0.0")["msg"], "unsupported field in network configuration: vlanTrunk=[1]");
        let d = CniError::Delegate { code: 999, msg: "boom".into(), details: "more".into() };
        assert_eq!(d.to_json("1.0.0"), json!({"cniVersion": "1.0.0", "code": 999, "msg": "boom", "details": "more"}));
        assert_eq!(CniError::from_json(&d.to_json("1.0.0")), Some(d));
    }

    #[test]
    fn context_keeps_the_code() {
        let e = CniError::RangeExhausted("no IP addresses available".into()).context("failed to allocate for range 0");
        assert_eq!(e.code(), codes::RANGE_EXHAUSTED);
        assert_eq!(e.to_string(), "failed to allocate for range 0: no IP addresses available");
    }
}
