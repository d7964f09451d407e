//! The crate's one error type.
//!
//! Every error says which operation failed on what (`create link veth0 (veth)`, `add address
//! 10.0.0.2/24 to link eth0`, …) and, when the kernel refused, the errno by name (`EEXIST`,
//! `ENODEV`, …) and the kernel's extended-ack message when it sent one. [`Error::kind`] sorts the
//! errno into the few classes a caller branches on — above all [`ErrorKind::AlreadyExists`] and
//! [`ErrorKind::NotFound`], which the CNI plugin maps to its own error codes.

use std::fmt;
use std::io;

pub use nix::errno::Errno;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of an error, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object exists already (`EEXIST`): a link name, an address, a route, a namespace.
    AlreadyExists,
    /// The object does not exist (`ENODEV`, `ENOENT`, `ESRCH`, `EADDRNOTAVAIL`): a link, an
    /// address, a route, a neighbour, a namespace file.
    NotFound,
    /// Not allowed (`EPERM`, `EACCES`): usually not root / no `CAP_NET_ADMIN`.
    PermissionDenied,
    /// The object is in use (`EBUSY`).
    Busy,
    /// The kernel (or this crate) rejected an argument (`EINVAL`, `EOPNOTSUPP`, `ERANGE`, …).
    InvalidArgument,
    /// Anything else.
    Other,
}

/// An error of the netlink layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel answered a netlink request with an error.
    #[error("{op}: {}{}", errno_text(*errno), ext_ack_text(message.as_deref()))]
    Netlink {
        /// What was attempted, e.g. `create link veth0 (veth)`.
        op: String,
        /// The errno the kernel returned.
        errno: Errno,
        /// The kernel's extended-ack message (`NLMSGERR_ATTR_MSG`), if it sent one.
        message: Option<String>,
    },
    /// A system call outside netlink failed (socket, namespace, mount, `/proc/sys`).
    #[error("{op}: {}", io_text(source))]
    Io {
        /// What was attempted, e.g. `create network namespace pod1`.
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel's answer could not be decoded.
    #[error("{op}: malformed netlink answer: {message}")]
    Protocol {
        /// What was attempted.
        op: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// An argument was rejected before anything was sent to the kernel.
    #[error("{op}: invalid argument: {message}")]
    Invalid {
        /// What was attempted.
        op: String,
        /// What is wrong with the argument.
        message: String,
    },
}

impl Error {
    /// The errno behind this error, if there is one ([`Error::Invalid`] counts as `EINVAL`).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Netlink { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Protocol { .. } => None,
            Error::Invalid { .. } => Some(Errno::EINVAL),
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self.errno() {
            Some(errno) => kind_of(errno),
            None => match self {
                Error::Io { source, .. } => match source.kind() {
                    io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                    io::ErrorKind::NotFound => ErrorKind::NotFound,
                    io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                    io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
                    _ => ErrorKind::Other,
                },
                _ => ErrorKind::Other,
            },
        }
    }

    /// Whether the object exists already (`EEXIST`).
    pub fn is_already_exists(&self) -> bool {
        self.kind() == ErrorKind::AlreadyExists
    }

    /// Whether the object does not exist (`ENODEV`, `ENOENT`, `ESRCH`, `EADDRNOTAVAIL`).
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// What was attempted, e.g. `create link veth0 (veth)`.
    pub fn op(&self) -> &str {
        match self {
            Error::Netlink { op, .. }
            | Error::Io { op, .. }
            | Error::Protocol { op, .. }
            | Error::Invalid { op, .. } => op,
        }
    }

    /// Prefixes the operation description: `set master of veth0 to cni0: get link cni0: …`.
    pub fn with_context(self, outer: impl fmt::Display) -> Error {
        match self {
            Error::Netlink { errno, message, op } => Error::Netlink { op: format!("{outer}: {op}"), errno, message },
            Error::Io { source, op } => Error::Io { op: format!("{outer}: {op}"), source },
            Error::Protocol { message, op } => Error::Protocol { op: format!("{outer}: {op}"), message },
            Error::Invalid { message, op } => Error::Invalid { op: format!("{outer}: {op}"), message },
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Error {
        Error::Io { op: op.into(), source }
    }

    pub(crate) fn from_errno(op: impl Into<String>, errno: Errno) -> Error {
        Error::Io { op: op.into(), source: io::Error::from_raw_os_error(errno as i32) }
    }

    pub(crate) fn invalid(op: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid { op: op.into(), message: message.into() }
    }
}

/// The class of an errno.
pub fn kind_of(errno: Errno) -> ErrorKind {
    match errno {
        Errno::EEXIST => ErrorKind::AlreadyExists,
        Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL | Errno::ENXIO => ErrorKind::NotFound,
        Errno::EPERM | Errno::EACCES => ErrorKind::PermissionDenied,
        Errno::EBUSY => ErrorKind::Busy,
        Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ERANGE | Errno::E2BIG | Errno::EAFNOSUPPORT | Errno::ENETUNREACH => {
            ErrorKind::InvalidArgument
        }
        _ => ErrorKind::Other,
    }
}

/// `EEXIST (File exists)`.
fn errno_text(errno: Errno) -> String {
    format!("{errno:?} ({})", errno.desc())
}

fn ext_ack_text(message: Option<&str>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

fn io_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => errno_text(Errno::from_raw(code)),
        None => err.to_string(),
    }
}

/// An error of the socket layer before the operation's description is attached.
#[derive(Debug)]
pub(crate) enum RawError {
    Kernel { errno: Errno, message: Option<String> },
    Io(io::Error),
    Protocol(String),
}

impl RawError {
    /// Attaches the description of the operation.
    pub(crate) fn op(self, op: impl fmt::Display) -> Error {
        let op = op.to_string();
        match self {
            RawError::Kernel { errno, message } => Error::Netlink { op, errno, message },
            RawError::Io(source) => Error::Io { op, source },
            RawError::Protocol(message) => Error::Protocol { op, message },
        }
    }
}

impl From<io::Error> for RawError {
    fn from(e: io::Error) -> Self {
        RawError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netlink_error_names_the_errno_and_the_message() {
        let e = RawError::Kernel { errno: Errno::EEXIST, message: None }.op("create link veth0 (veth)");
        assert_eq!(e.to_string(), "create link veth0 (veth): EEXIST (File exists)");
        assert!(e.is_already_exists());
        assert!(!e.is_not_found());
        let e = RawError::Kernel { errno: Errno::EINVAL, message: Some("Unknown device type".into()) }.op("x");
        assert_eq!(e.to_string(), "x: EINVAL (Invalid argument): Unknown device type");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn not_found_errnos() {
        for errno in [Errno::ENODEV, Errno::ENOENT, Errno::ESRCH, Errno::EADDRNOTAVAIL] {
            let e = RawError::Kernel { errno, message: None }.op("x");
            assert!(e.is_not_found(), "{errno:?}");
            assert_eq!(e.errno(), Some(errno));
        }
    }

    #[test]
    fn io_errors_carry_their_errno() {
        let e = Error::from_errno("open /run/netns/x", Errno::ENOENT);
        assert_eq!(e.to_string(), "open /run/netns/x: ENOENT (No such file or directory)");
        assert!(e.is_not_found());
        assert_eq!(e.op(), "open /run/netns/x");
        let e = Error::invalid("sysctl kernel.x", "not a net.* key");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.errno(), Some(Errno::EINVAL));
    }
}
