//! CNI specification versions: which ones podnet speaks, how they compare, and what each allows
//! (CHECK from 0.4.0, GC and STATUS from 1.1.0; results of 0.3.x/0.4.0 carry `ips[].version`,
//! results of 1.1.0 the new interface and route fields).

use std::fmt;

use serde_json::{json, Value};

use crate::error::{CniError, CniResult};

/// The versions podnet accepts in `cniVersion`, oldest first.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version podnet implements.
pub const CURRENT: &str = "1.1.0";

/// A parsed `MAJOR.MINOR.PATCH` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub const V0_4_0: Version = Version(0, 4, 0);
    pub const V1_0_0: Version = Version(1, 0, 0);
    pub const V1_1_0: Version = Version(1, 1, 0);

    /// Parses `1.0.0` (a missing patch or minor counts as 0, as the reference library does).
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.trim().split('.');
        let mut next = |required: bool| -> Option<u32> {
            match parts.next() {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
                Some(_) => None,
                None if required => None,
                None => Some(0),
            }
        };
        let v = Version(next(true)?, next(false)?, next(false)?);
        if parts.next().is_some() {
            return None;
        }
        Some(v)
    }

    /// True when results of this version carry `ips[].version` (before 1.0.0).
    pub fn has_ip_version_field(self) -> bool {
        self < Version::V1_0_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Checks a configuration's `cniVersion`: an empty, malformed or unsupported one is error code 1.
pub fn check(cni_version: &str) -> CniResult<Version> {
    if cni_version.is_empty() {
        return Err(CniError::IncompatibleVersion(format!(
            "the network configuration has no cniVersion (podnet supports {})",
            SUPPORTED.join(", ")
        )));
    }
    let parsed = Version::parse(cni_version);
    match parsed {
        Some(v) if SUPPORTED.iter().any(|s| Version::parse(s) == Some(v)) => Ok(v),
        _ => Err(CniError::IncompatibleVersion(format!(
            "incompatible CNI version {cni_version:?}: podnet supports {}",
            SUPPORTED.join(", ")
        ))),
    }
}

/// Checks that `command` may be used with `version` (CHECK needs 0.4.0, GC and STATUS 1.1.0).
pub fn check_command(command: &str, version: Version) -> CniResult<()> {
    let needed = match command {
        "CHECK" => Version::V0_4_0,
        "GC" | "STATUS" => Version::V1_1_0,
        _ => return Ok(()),
    };
    if version < needed {
        return Err(CniError::IncompatibleVersion(format!(
            "{command} needs cniVersion {needed} or later, the configuration has {version}"
        )));
    }
    Ok(())
}

/// The answer to VERSION: `cniVersion` is the one asked for when podnet supports it.
pub fn info(requested: Option<&str>) -> Value {
    let version = requested.filter(|v| check(v).is_ok()).unwrap_or(CURRENT);
    json!({ "cniVersion": version, "supportedVersions": SUPPORTED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(Version::parse("1.1.0"), Some(Version(1, 1, 0)));
        assert_eq!(Version::parse("0.3"), Some(Version(0, 3, 0)));
        assert_eq!(Version::parse("1.x"), None);
        assert_eq!(Version::parse(""), None);
        assert_eq!(Version::parse("1.0.0.0"), None);
        assert!(Version(0, 4, 0) < Version(1, 0, 0));
        assert!(!Version(1, 0, 0).has_ip_version_field() && Version(0, 3, 1).has_ip_version_field());
    }

    #[test]
    fn unsupported_versions_are_code_1() {
        assert_eq!(check("1.0.0"), Ok(Version(1, 0, 0)));
        assert_eq!(check("1.1.0"), Ok(Version(1, 1, 0)));
        assert_eq!(check("0.3.1"), Ok(Version(0, 3, 1)));
        for bad in ["0.2.0", "2.0.0", "", "banana", "1.2.0"] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.code(), 1, "{bad}");
        }
        assert!(check("9.9.9").unwrap_err().to_string().contains("\"9.9.9\""));
    }

    #[test]
    fn commands_need_versions() {
        assert!(check_command("GC", Version(1, 0, 0)).is_err());
        assert!(check_command("GC", Version(1, 1, 0)).is_ok());
        assert!(check_command("STATUS", Version(1, 0, 0)).is_err());
        assert!(check_command("CHECK", Version(0, 3, 1)).is_err());
        assert!(check_command("CHECK", Version(0, 4, 0)).is_ok());
        assert!(check_command("ADD", Version(0, 3, 0)).is_ok());
    }

    #[test]
    fn version_info() {
        assert_eq!(info(Some("1.0.0"))["cniVersion"], "1.0.0");
        assert_eq!(info(Some("0.1.0"))["cniVersion"], CURRENT);
        assert_eq!(info(None)["supportedVersions"], json!(SUPPORTED));
    }
}
