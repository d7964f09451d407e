//! The network configuration on stdin: the fields every plugin shares (`cniVersion`, `name`,
//! `type`, `prevResult`, `runtimeConfig`, `args`, `dns`, GC's `cni.dev/valid-attachments`),
//! read and checked in the spec's order: malformed JSON is code 6, an unsupported `cniVersion`
//! code 1, a missing or bad `name` or `type` code 7.

use serde_json::Value;

use crate::error::{CniError, CniResult};
use crate::fields::Obj;
use crate::types::{AddResult, Attachment, Dns};
use crate::version::{self, Version};

/// The shared part of a plugin's configuration, and the whole JSON for the plugin's own fields.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// The configuration as received.
    pub raw: Value,
    /// `cniVersion` as written.
    pub cni_version: String,
    pub version: Version,
    pub name: String,
    pub plugin_type: String,
    /// `prevResult`, when chained.
    pub prev_result: Option<AddResult>,
    /// The top-level `dns`.
    pub dns: Dns,
}

/// The version to write an error in: the configuration's when it can be read and is supported.
pub fn error_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_string))
        .filter(|v| version::check(v).is_ok())
        .unwrap_or_else(|| version::CURRENT.to_string())
}

/// Parses stdin as a JSON value (code 6 when it is not JSON).
pub fn decode(stdin: &[u8]) -> CniResult<Value> {
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::Decode("the network configuration on stdin is empty".into()));
    }
    serde_json::from_slice(stdin)
        .map_err(|e| CniError::Decode(format!("failed to decode the network configuration (malformed JSON): {e}")))
}

impl NetConf {
    /// Reads the shared fields of a decoded configuration.
    pub fn parse(raw: Value) -> CniResult<NetConf> {
        let root = Obj::root(&raw)?;
        let cni_version = root.str("cniVersion")?.unwrap_or("").to_string();
        let version = version::check(&cni_version)?;
        let name = root.str("name")?.unwrap_or("").to_string();
        validate_network_name(&name)?;
        let plugin_type = root.str("type")?.unwrap_or("").to_string();
        if plugin_type.is_empty() {
            return Err(CniError::InvalidConfig("type: missing (the plugin type)".into()));
        }
        let prev_result = match root.get("prevResult") {
            None => None,
            Some(v) => Some(AddResult::from_json(v).map_err(|e| e.context("prevResult"))?),
        };
        let dns = match root.get("dns") {
            None => Dns::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| CniError::InvalidConfig(format!("dns: {e}")))?,
        };
        Ok(NetConf { cni_version, version, name, plugin_type, prev_result, dns, raw })
    }

    /// The top-level object.
    pub fn root(&self) -> Obj<'_> {
        Obj::root(&self.raw).expect("checked in parse")
    }

    /// GC's list of attachments to keep (`cni.dev/valid-attachments`, or the older
    /// `cni.dev/attachments`). None when neither is given.
    pub fn valid_attachments(&self) -> CniResult<Option<Vec<Attachment>>> {
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            if let Some(v) = self.root().get(key) {
                return serde_json::from_value(v.clone())
                    .map(Some)
                    .map_err(|e| CniError::InvalidConfig(format!("{key}: {e}")));
            }
        }
        Ok(None)
    }
}

/// A network name starts with a letter or digit, followed by letters, digits, `_`, `.` or `-`
/// (it names the IPAM store's directory).
pub fn validate_network_name(name: &str) -> CniResult<()> {
    if name.is_empty() {
        return Err(CniError::InvalidConfig("name: missing (the network name)".into()));
    }
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(CniError::InvalidConfig(format!(
            "name: {name:?} is not a valid network name (a letter or digit, then letters, digits, '_', '.' or '-')"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shared_fields() {
        let c = NetConf::parse(json!({
            "cniVersion": "1.0.0", "name": "net-1", "type": "podnet",
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]},
            "dns": {"nameservers": ["10.96.0.10"]}
        }))
        .unwrap();
        assert_eq!(c.version, Version::V1_0_0);
        assert_eq!(c.prev_result.unwrap().ips.len(), 1);
        assert_eq!(c.dns.nameservers, ["10.96.0.10"]);
    }

    #[test]
    fn errors_in_spec_order() {
        assert_eq!(decode(b"{").unwrap_err().code(), 6);
        assert!(decode(b"{").unwrap_err().to_string().contains("malformed JSON"));
        assert_eq!(decode(b"  ").unwrap_err().code(), 6);
        let e = NetConf::parse(json!({"cniVersion": "0.2.0", "name": "n", "type": "podnet"})).unwrap_err();
        assert_eq!(e.code(), 1);
        let e = NetConf::parse(json!({"name": "n", "type": "podnet"})).unwrap_err();
        assert_eq!(e.code(), 1);
        let e = NetConf::parse(json!({"cniVersion": "1.0.0", "type": "podnet"})).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (7, "name: missing (the network name)".to_string()));
        let e = NetConf::parse(json!({"cniVersion": "1.0.0", "name": "../etc", "type": "podnet"})).unwrap_err();
        assert_eq!(e.code(), 7);
        let e = NetConf::parse(json!({"cniVersion": "1.0.0", "name": "n"})).unwrap_err();
        assert!(e.to_string().starts_with("type"));
        let e = NetConf::parse(json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "prevResult": {"ips": 3}}))
            .unwrap_err();
        assert!(e.to_string().starts_with("prevResult: "), "{e}");
        assert_eq!(error_version(br#"{"cniVersion":"1.0.0"}"#), "1.0.0");
        assert_eq!(error_version(br#"{"cniVersion":"7.0.0"}"#), version::CURRENT);
        assert_eq!(error_version(b"garbage"), version::CURRENT);
    }

    #[test]
    fn valid_attachments() {
        let c = NetConf::parse(json!({
            "cniVersion": "1.1.0", "name": "n", "type": "podnet",
            "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]
        }))
        .unwrap();
        assert_eq!(c.valid_attachments().unwrap().unwrap()[0].container_id, "a");
        let c = NetConf::parse(json!({"cniVersion": "1.1.0", "name": "n", "type": "podnet",
            "cni.dev/attachments": [{"containerID": "b", "ifname": "eth0"}]}))
        .unwrap();
        assert_eq!(c.valid_attachments().unwrap().unwrap()[0].container_id, "b");
    }
}
